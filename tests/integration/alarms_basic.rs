//! Alarms: one persistent, at-least-once alarm per object, transactional with the event that
//! sets it, retried with backoff, surviving crashes, cheap in numbers.

use std::time::Duration;

use serde_json::{Value, json};
use wasmdo_test_artifacts::ALARMS_BASIC;

use crate::harness::{TestHost, post_concurrently};

pub(crate) const COVERS: () = ();

const WAIT: Duration = Duration::from_secs(20);

fn host_with(config: &str) -> TestHost {
    let host = TestHost::with_config(config);
    host.deploy("probe", ALARMS_BASIC).expect(201);
    host
}

fn deliveries(host: &TestHost, name: &str) -> Vec<Value> {
    host.call("probe", name, "deliveries", json!([]))
        .as_array()
        .unwrap()
        .clone()
}

#[test]
fn an_alarm_fires_once_at_its_time_and_is_then_gone() {
    let host = host_with("");
    let at = host
        .call("probe", "a", "set-in", json!([300]))
        .as_i64()
        .unwrap();
    assert_eq!(host.call("probe", "a", "get", json!([])), at);
    assert_eq!(host.metric("wasmdo_pending_alarms"), 1);
    host.wait_for(WAIT, "the alarm", || deliveries(&host, "a").len() == 1);
    let delivery = &deliveries(&host, "a")[0];
    assert!(
        delivery["at"].as_i64().unwrap() >= at,
        "fired early: {delivery}"
    );
    assert_eq!(delivery["retry-count"], 0);
    assert_eq!(delivery["is-retry"], false);
    assert_eq!(
        delivery["name"], "a",
        "the object knows its name when an alarm wakes it"
    );
    assert_eq!(host.call("probe", "a", "get", json!([])), json!(null));
    host.wait_for(WAIT, "the schedule to settle", || {
        host.metric("wasmdo_pending_alarms") == 0
    });
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(deliveries(&host, "a").len(), 1, "fired more than once");
}

#[test]
fn a_replaced_alarm_fires_only_at_the_new_time_and_a_deleted_one_never() {
    let host = host_with("");
    host.call("probe", "replaced", "set-in", json!([200]));
    let later = host
        .call("probe", "replaced", "set-in", json!([1500]))
        .as_i64()
        .unwrap();
    host.call("probe", "deleted", "set-in", json!([200]));
    host.call("probe", "deleted", "delete", json!([]));
    host.wait_for(WAIT, "the replaced alarm", || {
        deliveries(&host, "replaced").len() == 1
    });
    assert!(deliveries(&host, "replaced")[0]["at"].as_i64().unwrap() >= later);
    assert!(deliveries(&host, "deleted").is_empty());
    assert_eq!(host.metric("wasmdo_alarms_total"), 1);
}

#[test]
fn rolling_back_an_event_cancels_the_alarm_it_set() {
    let host = host_with("");
    host.rpc("probe", "a", "set-then-fail", json!([100]))
        .expect(422);
    assert_eq!(host.call("probe", "a", "get", json!([])), json!(null));
    std::thread::sleep(Duration::from_millis(600));
    assert!(deliveries(&host, "a").is_empty());
    assert_eq!(host.metric("wasmdo_alarms_total"), 0);
}

#[test]
fn a_failing_alarm_is_retried_with_backoff_and_counts_its_retries() {
    let host = host_with("[limits]\nalarm-retry-base-ms = 100\n");
    host.call("probe", "a", "fail-next", json!([2]));
    host.call("probe", "a", "set-in", json!([0]));
    host.wait_for(WAIT, "the third delivery", || {
        deliveries(&host, "a").len() == 1
    });
    let delivery = &deliveries(&host, "a")[0];
    assert_eq!(delivery["retry-count"], 2);
    assert_eq!(delivery["is-retry"], true);
    assert_eq!(host.call("probe", "a", "attempts", json!([])), 3);
    assert_eq!(host.metric("wasmdo_alarm_failures_total"), 2);
    assert_eq!(host.call("probe", "a", "get", json!([])), json!(null));
}

#[test]
fn an_alarm_that_keeps_failing_is_dropped_after_the_last_retry() {
    let host = host_with("[limits]\nalarm-retry-base-ms = 50\nalarm-max-retries = 2\n");
    host.call("probe", "a", "fail-next", json!([10]));
    host.call("probe", "a", "set-in", json!([0]));
    host.wait_for(WAIT, "the alarm to be dropped", || {
        host.metric("wasmdo_alarm_failures_total") == 3 && host.metric("wasmdo_pending_alarms") == 0
    });
    assert_eq!(host.call("probe", "a", "attempts", json!([])), 3);
    assert_eq!(host.call("probe", "a", "get", json!([])), json!(null));
}

#[test]
fn a_handler_that_sets_a_new_alarm_keeps_it() {
    let host = host_with("");
    host.call("probe", "a", "rearm-next", json!([200]));
    host.call("probe", "a", "set-in", json!([0]));
    host.wait_for(WAIT, "two deliveries", || deliveries(&host, "a").len() == 2);
    assert_eq!(host.call("probe", "a", "get", json!([])), json!(null));
}

#[test]
fn an_alarm_due_during_a_kill_9_downtime_fires_after_restart() {
    let mut host = host_with("");
    host.call("probe", "a", "set-in", json!([300]));
    host.call("probe", "b", "set-in", json!([60_000]));
    host.kill();
    std::thread::sleep(Duration::from_millis(600));
    host.crash_and_restart();
    host.wait_for(WAIT, "the alarm after restart", || {
        deliveries(&host, "a").len() == 1
    });
    assert_eq!(deliveries(&host, "a")[0]["name"], "a");
    assert!(
        deliveries(&host, "b").is_empty(),
        "a future alarm waits for its time"
    );
    assert_eq!(host.metric("wasmdo_pending_alarms"), 1);
}

#[test]
fn ten_thousand_objects_with_alarms_all_fire_without_exhausting_file_descriptors() {
    let host = host_with("[limits]\nmax-live-objects = 500\nmax-open-databases = 200\n");
    let objects = 10_000;
    post_concurrently(&host.url, 8, objects as usize, |i| {
        (format!("/rpc/probe/o-{i}/set-in"), "[2000]".to_string())
    });
    host.wait_for(Duration::from_secs(240), "every alarm to fire", || {
        host.metric("wasmdo_alarms_total") >= objects
    });
    host.wait_for(WAIT, "the schedule to empty", || {
        host.metric("wasmdo_pending_alarms") == 0
    });
    assert_eq!(
        host.metric("wasmdo_alarms_total"),
        objects,
        "each alarm fired once"
    );
    assert_eq!(host.metric("wasmdo_alarm_failures_total"), 0);
    let fds = std::fs::read_dir(format!("/proc/{}/fd", host.pid()))
        .unwrap()
        .count();
    assert!(fds < 1000, "{fds} open file descriptors");
    for i in (0..objects).step_by(997) {
        assert_eq!(deliveries(&host, &format!("o-{i}")).len(), 1);
    }
}

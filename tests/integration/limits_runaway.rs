//! Runaway guests are stopped by the limit they hit, answered with a JSON error naming it, rolled
//! back, and never disturb the host or other objects.

use serde_json::json;
use wasmdo_test_artifacts::LIMITS_RUNAWAY;

use crate::harness::TestHost;

pub(crate) const COVERS: () = ();

/// Small budgets so the tests run fast: ~0.1 s of fuel, 2 s wall clock, 32 MiB memory.
const CONFIG: &str = r#"
[limits]
fuel-per-event = 1000000000
wall-clock-ms = 2000
max-memory-bytes = 33554432
max-body-bytes = 1048576
"#;

fn host() -> TestHost {
    let host = TestHost::with_config(CONFIG);
    host.deploy("runaway", LIMITS_RUNAWAY).expect(201);
    host
}

#[test]
fn infinite_loop_is_stopped_by_the_cpu_limit_and_the_object_recovers() {
    let host = host();
    let message = host
        .rpc("runaway", "a", "spin", json!([]))
        .expect_error(500, "CpuLimitExceeded");
    assert!(message.contains("1000000000 fuel"), "{message}");
    // the same object serves again on a fresh instance
    assert_eq!(host.call("runaway", "a", "ok", json!([])), "ok");
    assert!(host.metric("wasmdo_traps_total") >= 1);
}

#[test]
fn wall_clock_deadline_stops_a_guest_when_fuel_is_plentiful() {
    let host =
        TestHost::with_config("[limits]\nfuel-per-event = 100000000000000\nwall-clock-ms = 300\n");
    host.deploy("runaway", LIMITS_RUNAWAY).expect(201);
    let message = host
        .rpc("runaway", "a", "spin", json!([]))
        .expect_error(500, "WallClockLimitExceeded");
    assert!(message.contains("300 ms"), "{message}");
    assert_eq!(host.call("runaway", "a", "ok", json!([])), "ok");
}

#[test]
fn memory_bomb_is_stopped_by_the_memory_limit() {
    let host = host();
    host.rpc("runaway", "a", "grow", json!([256]))
        .expect_error(500, "MemoryLimitExceeded");
    // within the limit works
    host.call("runaway", "a", "grow", json!([4]));
}

#[test]
fn deep_recursion_is_a_stack_overflow_not_a_crash() {
    let host = host();
    host.rpc("runaway", "a", "recurse", json!([100_000_000]))
        .expect_error(500, "StackOverflow");
    assert_eq!(host.call("runaway", "a", "recurse", json!([10])), 10);
}

#[test]
fn a_panic_is_a_trap_carrying_the_panic_message() {
    let host = host();
    let message = host
        .rpc("runaway", "a", "boom", json!([]))
        .expect_error(500, "Trap");
    assert!(message.contains("panicked"), "{message}");
}

#[test]
fn writes_of_a_trapping_event_are_rolled_back() {
    let host = host();
    host.call("runaway", "a", "put", json!(["k", "before"]));
    host.rpc("runaway", "a", "put-then-trap", json!(["k"]))
        .expect_error(500, "Trap");
    host.rpc("runaway", "a", "put-then-spin", json!(["k"]))
        .expect_error(500, "CpuLimitExceeded");
    assert_eq!(host.call("runaway", "a", "get", json!(["k"])), "before");
}

#[test]
fn a_runaway_object_does_not_block_other_objects() {
    let host =
        TestHost::with_config("[limits]\nfuel-per-event = 100000000000000\nwall-clock-ms = 3000\n");
    host.deploy("runaway", LIMITS_RUNAWAY).expect(201);
    let url = host.url.clone();
    let spinner = std::thread::spawn(move || {
        let agent = crate::harness::agent(None);
        agent
            .post(format!("{url}/rpc/runaway/spinner/spin"))
            .send("[]")
            .map(|r| r.status().as_u16())
    });
    std::thread::sleep(std::time::Duration::from_millis(200));
    // while one object spins until its 3 s deadline, others are served
    for i in 0..20 {
        assert_eq!(
            host.call("runaway", &format!("other-{i}"), "ok", json!([])),
            "ok"
        );
    }
    assert!(
        !spinner.is_finished(),
        "other objects were only served after the spinning one was stopped"
    );
    assert_eq!(spinner.join().unwrap().unwrap(), 500);
}

#[test]
fn oversize_bodies_are_refused_with_413() {
    let host = host();
    let big = format!("[\"{}\"]", "x".repeat(2 * 1024 * 1024));
    host.request("POST", "/rpc/runaway/a/ok", big.as_bytes())
        .expect_error(413, "BodyTooLarge");
    assert_eq!(host.call("runaway", "a", "ok", json!([])), "ok");
}

fn xorshift(iterations: u64) -> u64 {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for _ in 0..iterations {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
    }
    x
}

#[test]
fn cpu_bound_work_within_the_budget_completes() {
    let host = host();
    assert_eq!(
        host.call("runaway", "a", "work", json!([100_000])),
        xorshift(100_000)
    );
}

#[test]
fn without_fuel_metering_the_wall_clock_still_stops_a_loop() {
    let host = TestHost::with_config("[limits]\nfuel-metering = false\nwall-clock-ms = 300\n");
    host.deploy("runaway", LIMITS_RUNAWAY).expect(201);
    host.rpc("runaway", "a", "spin", json!([]))
        .expect_error(500, "WallClockLimitExceeded");
    assert_eq!(
        host.call("runaway", "a", "work", json!([1000])),
        xorshift(1000)
    );
}

#[test]
fn fuel_is_accounted_exactly_and_deterministically() {
    let host = host();
    let fuel = || host.metric("wasmdo_fuel_consumed_total");
    // the first call also activates the object (instantiation and init burn fuel too)
    host.call("runaway", "a", "work", json!([1000]));
    let a = fuel();
    host.call("runaway", "a", "work", json!([1000]));
    let b = fuel();
    host.call("runaway", "a", "work", json!([1000]));
    let c = fuel();
    host.call("runaway", "a", "work", json!([100_000]));
    let d = fuel();
    assert!(b > a, "a call burns fuel");
    assert_eq!(b - a, c - b, "the same call burns the same fuel");
    assert!(d - c > 10 * (c - b), "more work burns more fuel");
}

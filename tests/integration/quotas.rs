//! Storage quotas across objects: objects per class, bytes per class and per host. A quota
//! refuses what would cross it with a clear error and loses nothing already written; the counts
//! survive a restart (they are read from the files).

use serde_json::json;
use wasmdo_test_artifacts::STORAGE_KV;

use crate::harness::TestHost;

#[test]
fn a_class_at_its_object_quota_takes_no_new_object() {
    let mut host = TestHost::with_config("[limits]\nmax-objects-per-class = 3\n");
    host.deploy("kv", STORAGE_KV).expect(201);
    host.deploy("other", STORAGE_KV).expect(201);
    for name in ["a", "b", "c"] {
        host.call("kv", name, "put", json!(["k", name]));
    }
    // an object that never wrote has no database: reading does not count
    assert_eq!(
        host.call("other", "reader", "get", json!(["k"])),
        json!(null)
    );
    for method in ["put", "get"] {
        let args = if method == "put" {
            json!(["k", "d"])
        } else {
            json!(["k"])
        };
        let message = host
            .rpc("kv", "d", method, args)
            .expect_error(507, "QuotaExceeded");
        assert!(message.contains("max-objects-per-class"), "{message}");
    }
    // the objects that exist go on; another class has a quota of its own
    host.call("kv", "a", "put", json!(["k2", "more"]));
    host.call("other", "x", "put", json!(["k", "x"]));
    // the count is read back from the files at start
    host.crash_and_restart();
    host.rpc("kv", "d", "put", json!(["k", "d"]))
        .expect_error(507, "QuotaExceeded");
    assert_eq!(host.call("kv", "a", "get", json!(["k2"])), json!("more"));
    assert_eq!(host.call("kv", "c", "get", json!(["k"])), json!("c"));
}

/// Puts values of ~`size` bytes under keys `k0`, `k1`, … into `class/name` until a put is
/// refused; the number of puts that succeeded, and the refusal's message.
fn fill(host: &TestHost, class: &str, name: &str, size: usize) -> (usize, String) {
    let value = "v".repeat(size);
    for i in 0..10_000 {
        let reply = host.rpc(class, name, "put", json!([format!("k{i}"), value]));
        if reply.status != 200 {
            return (i, reply.expect_error(422, "MethodError"));
        }
    }
    panic!("no quota stopped 10,000 puts");
}

#[test]
fn class_and_host_byte_quotas_refuse_writes_and_keep_what_was_written() {
    let mut host = TestHost::with_config(
        "[limits]\nmax-class-storage-bytes = 600000\nmax-host-storage-bytes = 1000000\n",
    );
    host.deploy("kv", STORAGE_KV).expect(201);
    host.deploy("other", STORAGE_KV).expect(201);
    // two objects of one class share its 600 kB
    let (first, message) = fill(&host, "kv", "a", 50_000);
    assert!(message.contains("quota-exceeded"), "{message}");
    assert!(
        (5..12).contains(&first),
        "{first} puts of 50 kB before 600 kB"
    );
    let (second, _) = fill(&host, "kv", "b", 50_000);
    assert!(second <= 2, "{second} more puts in the same class");
    // the host's 1 MB leaves another class less than its own 600 kB
    let (third, message) = fill(&host, "other", "c", 50_000);
    assert!(message.contains("quota-exceeded"), "{message}");
    assert!(
        third < first,
        "{third} puts, the host quota should stop them first"
    );
    // nothing written before the refusals is lost, across a restart
    host.crash_and_restart();
    for i in 0..first {
        let value = host.call("kv", "a", "get", json!([format!("k{i}")]));
        assert_eq!(value.as_str().map(str::len), Some(50_000), "k{i}");
    }
    // still full after the restart
    host.rpc("kv", "a", "put", json!(["more", "v".repeat(50_000)]))
        .expect_error(422, "MethodError");
    // small writes into pages the database already has still fit
    host.call("kv", "a", "put", json!(["k0", "small"]));
}

#[test]
fn an_event_that_fails_on_a_quota_refusal_is_answered_507() {
    // the counter traps on any storage error: the refusal is the reason it gives
    let host = TestHost::with_config("[limits]\nmax-class-storage-bytes = 200000\n");
    host.deploy("counter", wasmdo_test_artifacts::EXAMPLE_COUNTER)
        .expect(201);
    let mut created = 0;
    let message = loop {
        let reply = host.rpc("counter", &format!("c{created}"), "increment", json!([1]));
        if reply.status != 200 {
            break reply.expect_error(507, "QuotaExceeded");
        }
        created += 1;
        assert!(created < 1000, "no quota stopped 1,000 new objects");
    };
    assert!(message.contains("storage quota"), "{message}");
    assert!(created > 0, "the first object was already refused");
    // what was written before stays
    assert_eq!(host.call("counter", "c0", "get", json!([])), json!(1));
}

//! Python Durable Objects (guest-sdk-python, componentize-py) through the real host: the
//! `examples/counter-py` class as its README says, and `tests/fixtures-py/probe.py` — typed RPC
//! of every supported type, raised errors, methods reached by name only, the key-value API and
//! its encoding (the JavaScript and Rust SDKs' bytes), SQL cursors, alarms, env vars, fetch.

use std::time::Duration;

use serde_json::json;
use wasmdo_test_artifacts::{EXAMPLE_COUNTER_PY, PY_PROBE};

use crate::harness::TestHost;

pub(crate) const COVERS: () = ();

fn probe_host() -> TestHost {
    let host = TestHost::with_config("[classes.probe.env]\nGREETING = \"hi\"\n");
    host.deploy("probe", PY_PROBE).expect(201);
    host
}

#[test]
fn the_python_counter_works_as_its_readme_says() {
    let host = TestHost::start();
    let deployed = host.deploy("counter-py", EXAMPLE_COUNTER_PY).expect(201);
    let methods: Vec<&str> = deployed["methods"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    assert_eq!(methods, ["get", "hits", "increment"]);
    assert_eq!(host.call("counter-py", "alice", "increment", json!([5])), 5);
    // `by: int = 1`: the argument may be left out
    assert_eq!(host.call("counter-py", "alice", "increment", json!([])), 6);
    assert_eq!(host.call("counter-py", "alice", "get", json!([])), 6);
    assert_eq!(host.call("counter-py", "alice", "hits", json!([])), 2);
    assert_eq!(host.call("counter-py", "bob", "get", json!([])), 0);
    let page = host.request("GET", "/objects/counter-py/alice/", b"");
    assert_eq!((page.status, page.text.as_str()), (200, "count 6"));
    // wrong arguments are the host's clear errors, before any Python runs
    let msg = host
        .rpc("counter-py", "alice", "increment", json!(["x"]))
        .expect_error(400, "InvalidArgument");
    assert!(msg.contains("`by`"), "{msg}");
    host.rpc("counter-py", "alice", "nope", json!([]))
        .expect_error(404, "UnknownMethod");
}

#[test]
fn typed_rpc_carries_every_supported_type_and_raised_errors() {
    let host = probe_host();
    let sent = json!([
        "-9223372036854775808",
        1.5,
        "héllo",
        true,
        [0, 255],
        ["a", ""],
        [2, "two"],
        null
    ]);
    let mut back = sent.clone();
    // (64-bit integers are taken as decimal strings too, and answered as numbers)
    back[0] = json!(i64::MIN);
    assert_eq!(host.call("probe", "p", "echo", sent), back);
    assert_eq!(host.call("probe", "p", "defaults", json!(["x"])), "x,7");
    assert_eq!(host.call("probe", "p", "defaults", json!(["x", 3])), "x,3");
    // a method of the project's own base class
    assert_eq!(
        host.call("probe", "p", "hello", json!(["you"])),
        "hello you"
    );
    // what a method raises is its error (name and message), its writes rolled back
    let raised = host.rpc("probe", "p", "fail", json!(["value"]));
    assert_eq!(raised.status, 422, "{}", raised.text);
    assert_eq!(raised.body["kind"], "MethodError");
    assert_eq!(
        raised.body["value"],
        json!({"name": "ValueError", "message": "bad value"})
    );
    let wrong = host.rpc("probe", "p", "wrong-result", json!([]));
    assert_eq!(wrong.body["value"]["name"], "TypeError", "{}", wrong.text);
    let message = wrong.body["value"]["message"].as_str().unwrap().to_owned();
    assert!(message.contains("the signature says int"), "{message}");
    // `_private` is nobody's to call
    host.rpc("probe", "p", "_private", json!([]))
        .expect_error(404, "UnknownMethod");
    // in-memory state lives with the instance
    assert_eq!(host.call("probe", "p", "count-activation", json!([])), 1);
    assert_eq!(host.call("probe", "p", "count-activation", json!([])), 2);
    // identity and env
    let who = host.call("probe", "named", "who", json!([]));
    assert_eq!(who[1], "named");
    assert_eq!(who[2], "hi");
}

#[test]
fn untyped_methods_are_reached_by_name() {
    let host = probe_host();
    assert_eq!(
        host.call("probe", "p", "anything", json!([{"a": [1, "two", null]}])),
        json!({"got": {"a": [1, "two", null]}, "type": "dict"})
    );
    assert_eq!(
        host.call("probe", "p", "anything", json!([3])),
        json!({"got": 3, "type": "int"})
    );
}

#[test]
fn storage_speaks_the_encoding_every_sdk_reads() {
    let host = probe_host();
    // JSON values are stored as their JSON text, as the JavaScript and Rust SDKs store them
    host.call(
        "probe",
        "p",
        "remember",
        json!(["plain", r#"{"a": [1, "two", null]}"#]),
    );
    let bytes = host.call("probe", "p", "stored-bytes", json!(["plain"]));
    let text: Vec<u8> = serde_json::from_value(bytes).unwrap();
    assert_eq!(String::from_utf8(text).unwrap(), r#"{"a":[1,"two",null]}"#);
    assert_eq!(
        host.call("probe", "p", "recall", json!(["plain"])),
        r#"{"a": [1, "two", null]}"#
    );
    // the key-value API: batches, list with a prefix, bytes and big integers (tagged)
    let kv: serde_json::Value =
        serde_json::from_str(host.call("probe", "p", "kv", json!([])).as_str().unwrap()).unwrap();
    assert_eq!(
        kv,
        json!({
            "listed": ["k1", "k2", "k3"], "k2": [true, null], "k3": [1, 2], "missing": false,
            "deleted": 1, "big": "18446744073709551616", "after": ["big", "k2", "k3", "plain"]
        })
    );
    let tagged: Vec<u8> =
        serde_json::from_value(host.call("probe", "p", "stored-bytes", json!(["k3"]))).unwrap();
    assert_eq!(tagged[0], 1);
    assert_eq!(
        std::str::from_utf8(&tagged[1..]).unwrap(),
        r#"["t","Uint8Array","AQI="]"#
    );
}

#[test]
fn sql_alarms_and_fetch() {
    let host = probe_host();
    assert_eq!(host.call("probe", "p", "note", json!(["first", 1.5])), 1);
    assert_eq!(host.call("probe", "p", "note", json!(["second", 2.25])), 1);
    assert_eq!(
        host.call("probe", "p", "notes", json!([])),
        json!([[1, "first", 1.5], [2, "second", 2.25]])
    );
    assert_eq!(
        host.call("probe", "p", "bad-sql", json!([])),
        "StorageError sql"
    );

    host.call("probe", "p", "arm", json!([200]));
    host.wait_for(Duration::from_secs(20), "the alarm fired", || {
        host.call("probe", "p", "fired", json!([])) == 1
    });

    let get = host.request("GET", "/objects/probe/p/some/path?q=1", b"");
    assert_eq!(get.status, 200);
    assert!(get.text.starts_with("GET http"), "{}", get.text);
    assert!(get.text.ends_with("/some/path?q=1"), "{}", get.text);
    assert!(
        get.headers
            .iter()
            .any(|(k, v)| k == "x-probe" && v == "yes")
    );
    let post = host.request("POST", "/objects/probe/p/x", br#"{"n": 1}"#);
    assert_eq!(post.status, 201, "{}", post.text);
    assert_eq!(post.body["echo"], json!({"n": 1}));
}

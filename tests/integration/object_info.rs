//! Identity, environment, `fetch` delivery, isolation between objects, and the object lifecycle
//! (eviction and re-activation, redeploys).

use std::time::Duration;

use serde_json::json;
use wasmdo_test_artifacts::{OBJECT_INFO, STORAGE_KV};

use crate::harness::TestHost;

pub(crate) const COVERS: () = ();

const CONFIG: &str = r#"
[limits]
idle-timeout-ms = 300

[classes.info.env]
GREETING = "hello"
"#;

fn host() -> TestHost {
    let host = TestHost::with_config(CONFIG);
    host.deploy("info", OBJECT_INFO).expect(201);
    host
}

#[test]
fn an_object_knows_its_id_name_class_and_env() {
    let host = host();
    let id = host.call("info", "alice", "id", json!([]));
    assert_eq!(id.as_str().unwrap().len(), 64);
    assert_eq!(
        host.call("info", "alice", "id", json!([])),
        id,
        "ids are stable"
    );
    assert_ne!(host.call("info", "bob", "id", json!([])), id);
    assert_eq!(host.call("info", "alice", "name", json!([])), "alice");
    assert_eq!(host.call("info", "alice", "class-name", json!([])), "info");
    assert_eq!(
        host.call("info", "alice", "env", json!(["GREETING"])),
        "hello"
    );
    assert_eq!(
        host.call("info", "alice", "env", json!(["HOME"])),
        json!(null)
    );
    // names are arbitrary strings, percent-encoded in the path
    assert_eq!(host.call("info", "a%20b%2Fc", "name", json!([])), "a b/c");
}

#[test]
fn fetch_receives_method_path_query_headers_and_body() {
    let host = host();
    let reply = host.request_with(
        "PUT",
        "/objects/info/alice/some/path?x=1&y=2",
        &[("x-custom", "yes")],
        b"payload",
    );
    assert_eq!(reply.header("content-type"), Some("application/json"));
    let echo = reply.expect(200);
    assert_eq!(echo["method"], "PUT");
    assert_eq!(echo["path"], "/some/path");
    assert_eq!(echo["query"], "x=1&y=2");
    assert_eq!(echo["body"], "payload");
    assert!(
        echo["url"]
            .as_str()
            .unwrap()
            .ends_with("/objects/info/alice/some/path?x=1&y=2")
    );
    let headers = echo["headers"].as_array().unwrap();
    assert!(headers.contains(&json!(["x-custom", "yes"])), "{headers:?}");
    // the object's own status codes pass through; the root path is "/"
    host.request("GET", "/objects/info/alice/status/418", b"")
        .expect(418);
    assert_eq!(
        host.request("GET", "/objects/info/alice", b"").expect(200)["path"],
        "/"
    );
}

#[test]
fn idle_objects_are_evicted_and_reactivated_with_init() {
    let host = host();
    assert_eq!(host.call("info", "alice", "init-count", json!([])), 1);
    let activations = host.metric("wasmdo_activations_total");
    host.wait_for(Duration::from_secs(10), "eviction", || {
        host.metric("wasmdo_evictions_total") >= 1
    });
    assert_eq!(host.metric("wasmdo_live_objects"), 0);
    // the next event activates it afresh: init ran again on a new instance
    assert_eq!(host.call("info", "alice", "init-count", json!([])), 1);
    assert_eq!(host.metric("wasmdo_activations_total"), activations + 1);
}

#[test]
fn objects_are_isolated_from_each_other() {
    let host = TestHost::start();
    host.deploy("kv", STORAGE_KV).expect(201);
    host.call("kv", "alice", "put", json!(["k", "alice's"]));
    assert_eq!(host.call("kv", "bob", "get", json!(["k"])), json!(null));
    host.call("kv", "bob", "put", json!(["k", "bob's"]));
    assert_eq!(host.call("kv", "alice", "get", json!(["k"])), "alice's");
}

#[test]
fn a_redeploy_makes_the_next_event_use_the_new_version() {
    let host = host();
    assert_eq!(host.call("info", "alice", "class-name", json!([])), "info");
    let v2 = host.deploy("info", STORAGE_KV).expect(201);
    assert_eq!(v2["version"], 2);
    // the live object switches to the new code at its next event
    host.rpc("info", "alice", "class-name", json!([]))
        .expect_error(404, "UnknownMethod");
    host.call("info", "alice", "put", json!(["k", "v"]));
}

#[test]
fn unknown_classes_methods_and_routes_are_json_errors() {
    let host = host();
    host.rpc("nope", "a", "id", json!([]))
        .expect_error(404, "UnknownClass");
    let msg = host
        .rpc("info", "a", "nope", json!([]))
        .expect_error(404, "UnknownMethod");
    assert!(
        msg.contains("init-count"),
        "lists the available methods: {msg}"
    );
    host.request("GET", "/nowhere", b"")
        .expect_error(404, "NotFound");
    host.request("GET", "/rpc/info/a/id", b"")
        .expect_error(404, "NotFound");
    host.request("POST", "/rpc/info/a/id", b"{not json")
        .expect_error(400, "InvalidArgument");
    host.request("GET", "/objects/nope/a/", b"")
        .expect_error(404, "UnknownClass");
}

#[test]
fn objects_are_addressed_by_id_as_well_as_by_name() {
    let host = host();
    host.deploy("other", STORAGE_KV).expect(201);
    let minted = host
        .request("GET", "/_admin/classes/info/id-from-name/alice", b"")
        .expect(200);
    let id = minted["id"].as_str().unwrap().to_owned();
    assert_eq!(minted["name"], "alice");
    // the same object either way: it reports that id, and the id path reaches its state
    assert_eq!(host.call("info", "alice", "id", json!([])), id.as_str());
    let by_id = format!("id:{id}");
    assert_eq!(host.call("info", &by_id, "id", json!([])), id.as_str());
    assert_eq!(
        host.call("info", &by_id, "env", json!(["GREETING"])),
        "hello"
    );
    // a live object keeps the name it was activated with
    assert_eq!(host.call("info", &by_id, "name", json!([])), "alice");
    let fetched = host.request("GET", &format!("/objects/info/{by_id}/path"), b"");
    assert_eq!(fetched.status, 200, "{}", fetched.text);

    // new-unique-id: a fresh, valid id each time, usable at once
    let unique = |class: &str| {
        host.request(
            "POST",
            &format!("/_admin/classes/{class}/new-unique-id"),
            b"",
        )
        .expect(200)["id"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let (u1, u2) = (unique("info"), unique("info"));
    assert_ne!(u1, u2);
    assert_eq!(
        host.call("info", &format!("id:{u1}"), "id", json!([])),
        u1.as_str()
    );
    assert_eq!(
        host.request(
            "GET",
            &format!("/_admin/classes/info/id-from-string/{u1}"),
            b""
        )
        .expect(200)["id"],
        u1.as_str()
    );

    // ids are scoped to their class, and made-up ids are refused
    let foreign = unique("other");
    let err = host
        .request(
            "GET",
            &format!("/_admin/classes/info/id-from-string/{foreign}"),
            b"",
        )
        .expect_error(400, "InvalidName");
    assert!(err.contains("invalid object id"), "{err}");
    host.rpc("info", &format!("id:{foreign}"), "id", json!([]))
        .expect_error(400, "InvalidName");
    let mut forged = id.clone();
    forged.replace_range(0..1, if forged.starts_with('0') { "1" } else { "0" });
    host.rpc("info", &format!("id:{forged}"), "id", json!([]))
        .expect_error(400, "InvalidName");
    host.rpc("info", "id:nothex", "id", json!([]))
        .expect_error(400, "InvalidName");
    host.request("POST", "/_admin/classes/nope/new-unique-id", b"")
        .expect_error(404, "UnknownClass");
}

#[test]
fn an_activation_in_a_reused_slot_starts_from_the_components_image() {
    // one live object at a time: every activation takes the slot (and, with the pages kept
    // resident, the very memory) the previous object used, which must be reset to the image
    let host = TestHost::with_config(
        "[limits]\nmax-live-objects = 1\ninstance-keep-resident-bytes = 8388608\n",
    );
    host.deploy("info", OBJECT_INFO).expect(201);
    for i in 0..20 {
        let name = format!("o{}", i % 3);
        assert_eq!(
            host.call("info", &name, "init-count", json!([])),
            1,
            "{name}: the static counter of the previous object leaked into this one"
        );
        assert_eq!(
            host.call("info", &name, "id", json!([]))
                .as_str()
                .unwrap()
                .len(),
            64
        );
    }
    assert!(host.metric("wasmdo_evictions_total") >= 19);
}

//! Uploads: validation with precise errors, the precompiled cache, classes surviving restarts.

use serde_json::json;
use wasmdo_test_artifacts::{
    EXAMPLE_COUNTER, REGISTRY_MISSING_HANDLER, REGISTRY_UNKNOWN_IMPORT, STORAGE_KV,
};

use crate::harness::TestHost;

pub(crate) const COVERS: () = ();

#[test]
fn bad_uploads_are_refused_with_precise_messages_and_change_nothing() {
    let mut host = TestHost::start();
    let msg = host
        .deploy_bytes("c", b"hello, I am not wasm")
        .expect_error(400, "InvalidComponent");
    assert!(msg.contains("not a WebAssembly binary"), "{msg}");
    // the smallest core module
    let msg = host
        .deploy_bytes("c", b"\0asm\x01\0\0\0")
        .expect_error(400, "InvalidComponent");
    assert!(msg.contains("core WebAssembly module"), "{msg}");
    // a component header followed by garbage
    let msg = host
        .deploy_bytes("c", b"\0asm\x0d\0\x01\0\xff\xff\xff")
        .expect_error(400, "InvalidComponent");
    assert!(msg.contains("does not validate"), "{msg}");
    let msg = host
        .deploy("c", REGISTRY_MISSING_HANDLER)
        .expect_error(400, "InvalidComponent");
    assert!(msg.contains("wasmdo:object/handler"), "{msg}");
    let msg = host
        .deploy("c", REGISTRY_UNKNOWN_IMPORT)
        .expect_error(400, "InvalidComponent");
    assert!(msg.contains("fixture:unknown/thing"), "{msg}");
    host.deploy("bad%20name!", EXAMPLE_COUNTER)
        .expect_error(400, "InvalidName");
    // nothing was deployed
    assert_eq!(
        host.request("GET", "/_admin/classes", b"").expect(200),
        json!([])
    );
    assert!(host.is_running());
}

#[test]
fn classes_survive_a_restart_without_recompiling() {
    let mut host = TestHost::with_config("compile-cache = \"data/compiled\"\n");
    let deployed = host.deploy("kv", STORAGE_KV).expect(201);
    host.call("kv", "o", "put", json!(["k", "v"]));
    let artifacts: Vec<_> = std::fs::read_dir(host.compiled_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(
        artifacts.len(),
        1,
        "one precompiled artifact: {artifacts:?}"
    );
    let modified = std::fs::metadata(&artifacts[0])
        .unwrap()
        .modified()
        .unwrap();
    host.crash_and_restart();
    let listed = host.request("GET", "/_admin/classes/kv", b"").expect(200);
    assert_eq!(listed["hash"], deployed["hash"]);
    assert_eq!(listed["version"], 1);
    assert_eq!(host.call("kv", "o", "get", json!(["k"])), "v");
    assert_eq!(
        std::fs::metadata(&artifacts[0])
            .unwrap()
            .modified()
            .unwrap(),
        modified
    );
    // deploying the same bytes again reuses the artifact and bumps the version
    assert_eq!(host.deploy("kv", STORAGE_KV).expect(201)["version"], 2);
    assert_eq!(std::fs::read_dir(host.compiled_dir()).unwrap().count(), 1);
}

#[test]
fn health_and_class_listing() {
    let host = TestHost::start();
    assert_eq!(
        host.request("GET", "/_admin/health", b"").expect(200)["status"],
        "ok"
    );
    host.deploy("counter", EXAMPLE_COUNTER).expect(201);
    let classes = host.request("GET", "/_admin/classes", b"").expect(200);
    assert_eq!(classes[0]["class"], "counter");
    host.request("GET", "/_admin/classes/missing", b"")
        .expect_error(404, "UnknownClass");
}

#[test]
fn a_second_host_on_the_same_data_dir_refuses_to_start() {
    let host = TestHost::start();
    let data = host.data.to_str().unwrap().to_string();
    let (ok, _, err) = crate::harness::cli(&["serve", "--listen", "127.0.0.1:0", "--data", &data]);
    assert!(!ok, "a second host started on the same data dir");
    assert!(err.contains("in use by another wasmdo host"), "{err}");
    assert_eq!(
        host.request("GET", "/_admin/health", b"").expect(200)["status"],
        "ok"
    );
}

#[test]
fn a_class_describes_its_rpc_interfaces_in_wit() {
    let host = TestHost::start();
    host.deploy("counter", EXAMPLE_COUNTER).expect(201);
    host.deploy("probe", wasmdo_test_artifacts::JS_RUNTIME)
        .expect(201);
    let wit = host.request("GET", "/_admin/classes/counter/wit", b"");
    assert_eq!(wit.status, 200);
    assert_eq!(
        wit.header("content-type"),
        Some("text/plain; charset=utf-8")
    );
    for line in [
        "package example:counter;",
        "interface counter {",
        "increment: func(by: s64) -> s64;",
        "get: func() -> s64;",
    ] {
        assert!(wit.text.contains(line), "no `{line}` in:\n{}", wit.text);
    }
    // the shared handler interfaces and WASI are not part of a class's description
    assert!(!wit.text.contains("wasmdo:object"), "{}", wit.text);
    assert!(!wit.text.contains("wasi:"), "{}", wit.text);
    // a JS class's named types survive: records, enums, the error record
    let (ok, out, err) = crate::harness::cli(&["wit", "probe", "--server", &host.url]);
    assert!(ok, "{err}");
    for line in [
        "package js:runtime-probe;",
        "record point {",
        "enum color {",
        "record js-error {",
        "echo: func(value: everything) -> result<everything, js-error>;",
    ] {
        assert!(out.contains(line), "no `{line}` in:\n{out}");
    }
    host.request("GET", "/_admin/classes/nope/wit", b"")
        .expect_error(404, "UnknownClass");
}

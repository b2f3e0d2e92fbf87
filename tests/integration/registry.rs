//! Uploads: validation with precise errors, the precompiled cache, classes surviving restarts.

use serde_json::json;
use wasmdo_test_artifacts::{
    EXAMPLE_COUNTER, JS_RUNTIME, JS_STORAGE, REGISTRY_MISSING_HANDLER, REGISTRY_UNKNOWN_IMPORT,
    STORAGE_KV,
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

/// The hashes `GET /_admin/components` lists, with the classes running each.
fn components(host: &TestHost) -> Vec<(String, Vec<String>)> {
    let listed = host.request("GET", "/_admin/components", b"").expect(200);
    listed
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let classes = c["classes"].as_array().unwrap();
            (
                c["hash"].as_str().unwrap().to_owned(),
                classes
                    .iter()
                    .map(|n| n.as_str().unwrap().to_owned())
                    .collect(),
            )
        })
        .collect()
}

fn upload(host: &TestHost, path: &str) -> String {
    let bytes = std::fs::read(path).unwrap();
    let stored = host
        .request("PUT", "/_admin/components", &bytes)
        .expect(201);
    stored["hash"].as_str().unwrap().to_owned()
}

#[test]
fn unused_components_can_be_deleted_and_used_ones_cannot() {
    let host = TestHost::start();
    host.deploy("kv", STORAGE_KV).expect(201);
    let used = upload(&host, STORAGE_KV);
    let unused = upload(&host, EXAMPLE_COUNTER);
    let listed = components(&host);
    assert!(
        listed.contains(&(used.clone(), vec!["kv".to_owned()])),
        "{listed:?}"
    );
    assert!(listed.contains(&(unused.clone(), vec![])), "{listed:?}");
    let message = host
        .request("DELETE", &format!("/_admin/components/{used}"), b"")
        .expect_error(409, "ComponentInUse");
    assert!(message.contains("kv"), "{message}");
    let deleted = host
        .request("DELETE", &format!("/_admin/components/{unused}"), b"")
        .expect(200);
    assert_eq!(deleted["deleted"], unused.as_str());
    assert_eq!(components(&host), [(used.clone(), vec!["kv".to_owned()])]);
    host.request("DELETE", &format!("/_admin/components/{unused}"), b"")
        .expect_error(404, "NotFound");
    host.request("DELETE", "/_admin/components/..%2F..%2Fclasses.json", b"")
        .expect_error(404, "NotFound");
    // the class runs on, and a project deploy naming the deleted hash is refused
    host.call("kv", "a", "put", json!(["k", "v"]));
    let manifest = json!({ "classes": { "counter": { "component": unused } } });
    host.request(
        "PUT",
        "/_admin/projects/p",
        &serde_json::to_vec(&manifest).unwrap(),
    )
    .expect_error(400, "InvalidManifest");
}

#[test]
fn components_no_class_runs_are_collected_after_their_retention() {
    let mut host = TestHost::with_config("[limits]\nunused-component-retention-ms = 1000\n");
    host.deploy("kv", STORAGE_KV).expect(201);
    let unused = upload(&host, EXAMPLE_COUNTER);
    assert_eq!(components(&host).len(), 2);
    host.wait_for(
        std::time::Duration::from_secs(15),
        "the unused component to be collected",
        || components(&host).len() == 1,
    );
    assert!(!components(&host).iter().any(|(h, _)| *h == unused));
    // the class and its component survive, across a restart too
    host.crash_and_restart();
    host.call("kv", "a", "put", json!(["k", "v"]));
    assert_eq!(components(&host).len(), 1);
}

/// A second JavaScript class is the same engine with another heap snapshot: its compilation
/// takes the engine's functions from the first one's instead of compiling them again.
#[test]
fn a_second_javascript_class_reuses_the_compiled_engine() {
    // a private compile cache: the suite's shared one may hold these components compiled already
    let host = TestHost::with_config("compile-cache = \"data/compiled\"\n");
    host.deploy("store", JS_STORAGE).expect(201);
    let kept = host.metric("wasmdo_compiled_functions_kept_total");
    assert!(kept > 1_000, "the engine's functions are kept: {kept}");
    // (identical functions within one component are compiled once too)
    let reused_before = host.metric("wasmdo_compiled_functions_reused_total");
    host.deploy("probe", JS_RUNTIME).expect(201);
    let reused = host.metric("wasmdo_compiled_functions_reused_total") - reused_before;
    let compiled = host.metric("wasmdo_compiled_functions_kept_total") - kept;
    eprintln!("first class: {kept} compiled; second: {reused} reused, {compiled} compiled");
    assert!(reused > kept / 2, "reused {reused} of {kept}");
    assert!(
        compiled < kept / 10,
        "the second class compiled {compiled} functions"
    );
    // both classes run
    assert!(host.call("probe", "a", "now", json!([])).is_number());

    // with no budget nothing is kept, and every compilation is a whole one
    let host = TestHost::with_config(
        "compile-cache = \"data/compiled\"\n[limits]\ncompiled-function-cache-bytes = 0\n",
    );
    host.deploy("store", JS_STORAGE).expect(201);
    host.deploy("probe", JS_RUNTIME).expect(201);
    assert_eq!(host.metric("wasmdo_compiled_functions_kept_total"), 0);
    assert_eq!(host.metric("wasmdo_compiled_functions_reused_total"), 0);
}

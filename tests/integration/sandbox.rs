//! Guests have no ambient authority: an object cannot read or write the host's files, see its
//! environment, reach the network outside its class's allow-list (`http_outbound` covers that
//! for `wasi:http` and JavaScript's `fetch`), or reach another object's database — whatever its
//! language offers for it (Rust `std` over WASI here; JavaScript below).

use serde_json::{Value, json};
use wasmdo_test_artifacts::{JS_RUNTIME, OBJECT_SANDBOX, STORAGE_KV};

use crate::harness::TestHost;

pub(crate) const COVERS: () = ();

/// The error of a probe that must fail.
#[track_caller]
fn refused(host: &TestHost, method: &str, args: Value) -> String {
    let reply = host.rpc("sandbox", "probe", method, args.clone());
    let message = reply.expect_error(422, "MethodError");
    assert!(!message.is_empty(), "{method} {args}");
    message
}

#[test]
fn a_rust_object_reaches_no_host_file_environment_socket_or_other_database() {
    let host = TestHost::start();
    host.deploy("sandbox", OBJECT_SANDBOX).expect(201);
    host.deploy("kv", STORAGE_KV).expect(201);
    let data = host.data.canonicalize().unwrap();
    let secret = data.join("host.key");
    assert!(secret.is_file());

    // files: none to read, list or write, by absolute or relative path
    for path in [
        "/etc/passwd",
        secret.to_str().unwrap(),
        "host.key",
        ".",
        "/",
    ] {
        refused(&host, "read-file", json!([path]));
        refused(&host, "list-dir", json!([path]));
    }
    let planted = std::env::temp_dir().join("wasmdo-sandbox-probe");
    let _ = std::fs::remove_file(&planted);
    refused(&host, "write-file", json!([planted.to_str().unwrap(), "x"]));
    refused(&host, "write-file", json!(["escape.txt", "x"]));
    assert!(!planted.exists());
    // the current directory is only wasi-libc's idea ("/"); there is nothing in it
    let cwd = host.rpc("sandbox", "probe", "current-dir", json!([]));
    if cwd.status == 200 {
        refused(&host, "list-dir", json!([cwd.body]));
    }

    // the host's environment and arguments: nothing (the host runs with WASMDO_LOG and more)
    assert_eq!(
        host.call("sandbox", "probe", "env-vars", json!([])),
        json!([])
    );
    let args = host.call("sandbox", "probe", "args", json!([]));
    assert!(args.as_array().unwrap().is_empty(), "{args}");

    // the network: the host's own port, name lookups, listening, UDP
    let own = host.url.strip_prefix("http://").unwrap();
    refused(&host, "connect", json!([own]));
    refused(&host, "connect", json!(["1.1.1.1:443"]));
    refused(&host, "resolve", json!(["localhost:80"]));
    refused(&host, "listen", json!(["127.0.0.1:0"]));
    refused(&host, "send-udp", json!(["0.0.0.0:0", "127.0.0.1:53"]));

    // another object's database: SQL cannot attach it (nor any file), nor read it otherwise
    host.call("kv", "victim", "put", json!(["secret", "s3cr3t"]));
    let victim = crate::harness::walk(&data.join("objects/kv"))
        .into_iter()
        .find(|p| p.extension().is_some_and(|e| e == "sqlite"))
        .expect("the victim's database");
    let attach = format!("ATTACH DATABASE '{}' AS other", victim.display());
    let message = refused(&host, "sql", json!([attach]));
    assert!(
        message.contains("not authorized") || message.contains("ATTACH"),
        "{message}"
    );
    refused(&host, "sql", json!(["SELECT * FROM pragma_database_list"]));
    refused(
        &host,
        "sql",
        json!([format!("VACUUM INTO '{}'", planted.display())]),
    );
    assert!(!planted.exists());
    // its own database works, and another object of the same class sees nothing of the victim
    assert_eq!(
        host.call("sandbox", "probe", "sql", json!(["SELECT 1"])),
        json!(1)
    );
    assert_eq!(
        host.call("kv", "thief", "get", json!(["secret"])),
        json!(null)
    );
    assert_eq!(
        host.call("kv", "victim", "get", json!(["secret"])),
        json!("s3cr3t")
    );
}

#[test]
fn a_javascript_object_has_no_node_or_host_globals() {
    let host = TestHost::start();
    host.deploy("rt", JS_RUNTIME).expect(201);
    assert_eq!(
        host.call("rt", "a", "ambientAuthority", json!([])),
        json!([]),
        "globals that reach the host"
    );
}

//! The two planes: the control plane (`/_admin`, `/rpc`, `/objects`) behind bearer tokens with
//! two scopes, the public plane serving only the entry Worker, and a host that refuses to put an
//! open control plane on a network.

use std::process::{Command, Stdio};

use serde_json::json;
use wasmdo_test_artifacts::{OBJECT_INFO, STORAGE_KV, WEBSOCKETS_BASIC, WORKER_FRONT};

use crate::harness::{TestHost, binary};

const ADMIN: &str = "admin-5e1f0c2a9b7d4e33";
const CALL: &str = "call-0a9b8c7d6e5f4a3b";

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

#[test]
fn control_routes_need_a_token_of_the_right_scope() {
    let mut host = TestHost::with_admin_token(&format!("call-token = {CALL:?}"), ADMIN);
    host.deploy("kv", STORAGE_KV).expect(201);
    let component = std::fs::read(STORAGE_KV).unwrap();
    let call = bearer(CALL);
    let as_call = [("authorization", call.as_str())];
    let wrong = [("authorization", "Bearer admin-5e1f0c2a9b7d4e34")];
    let basic = [("authorization", "Basic YWRtaW46YWRtaW4=")];
    host.token = None;

    // no token: every control route but health is refused, and says how to authenticate
    let reply = host.request("PUT", "/_admin/classes/evil", &component);
    assert_eq!(
        reply.header("www-authenticate"),
        Some("Bearer realm=\"wasmdo\"")
    );
    let message = reply.expect_error(401, "Unauthorized");
    assert!(message.contains("Authorization: Bearer"), "{message}");
    for (method, path) in [
        ("POST", "/rpc/kv/a/get"),
        ("GET", "/objects/kv/a/"),
        ("GET", "/_admin/classes"),
        ("GET", "/_admin/metrics"),
        ("PUT", "/_admin/components"),
        ("PUT", "/_admin/projects/p"),
        ("GET", "/_admin/projects"),
        ("GET", "/_admin/classes/kv/id-from-name/a"),
    ] {
        host.request(method, path, b"[]")
            .expect_error(401, "Unauthorized");
        host.request_with(method, path, &wrong, b"[]")
            .expect_error(401, "Unauthorized");
        host.request_with(method, path, &basic, b"[]")
            .expect_error(401, "Unauthorized");
    }
    assert_eq!(host.request("GET", "/_admin/health", b"").status, 200);

    // the call scope: calls, objects, reading classes and ids; never deploys or metrics
    host.request_with("POST", "/rpc/kv/a/put", &as_call, br#"["k", "v"]"#)
        .expect(200);
    assert_eq!(
        host.request_with("POST", "/rpc/kv/a/get", &as_call, br#"["k"]"#)
            .expect(200),
        json!("v")
    );
    host.request_with("GET", "/_admin/classes/kv", &as_call, b"")
        .expect(200);
    host.request_with("GET", "/_admin/classes/kv/wit", &as_call, b"")
        .expect(200);
    host.request_with("GET", "/_admin/classes/kv/id-from-name/a", &as_call, b"")
        .expect(200);
    for (method, path) in [
        ("PUT", "/_admin/classes/evil"),
        ("PUT", "/_admin/components"),
        ("GET", "/_admin/metrics"),
        ("PUT", "/_admin/projects/p"),
    ] {
        let message = host
            .request_with(method, path, &as_call, &component)
            .expect_error(403, "Forbidden");
        assert!(message.contains("admin token"), "{message}");
    }
    // nothing the refused requests sent was deployed
    let classes = host
        .request_with("GET", "/_admin/classes", &as_call, b"")
        .expect(200);
    assert_eq!(classes.as_array().unwrap().len(), 1, "{classes}");

    // the admin token covers everything
    host.token = Some(ADMIN.into());
    host.deploy("info", OBJECT_INFO).expect(201);
    assert_eq!(host.call("kv", "a", "get", json!(["k"])), json!("v"));
    assert!(host.metric("wasmdo_deploys_total") >= 2);
    assert!(host.metric("wasmdo_unauthorized_total") >= 24);
    // the token never reaches the log
    let log = host.log();
    assert!(!log.contains(ADMIN) && !log.contains(CALL), "{log}");
}

#[test]
fn the_cli_sends_the_token_from_the_environment_or_the_config_file() {
    let host = TestHost::with_admin_token(&format!("call-token = {CALL:?}"), ADMIN);
    let server = host.url.as_str();
    let run = |args: &[&str], env: &[(&str, &str)]| {
        let out = Command::new(binary())
            .args(args)
            .args(["--server", server])
            .env_remove("WASMDO_ADMIN_TOKEN")
            .env_remove("WASMDO_CALL_TOKEN")
            .envs(env.iter().copied())
            .output()
            .expect("run wasmdo");
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        (out.status.success(), text)
    };
    let (ok, text) = run(&["deploy", "kv", STORAGE_KV], &[]);
    assert!(!ok && text.contains("Unauthorized"), "{text}");
    let (ok, text) = run(
        &["deploy", "kv", STORAGE_KV],
        &[("WASMDO_CALL_TOKEN", CALL)],
    );
    assert!(!ok && text.contains("Forbidden"), "{text}");
    let (ok, text) = run(
        &["deploy", "kv", STORAGE_KV],
        &[("WASMDO_ADMIN_TOKEN", ADMIN)],
    );
    assert!(ok, "{text}");
    // a call with the call token from the environment
    let (ok, text) = run(
        &["call", "kv/a", "put", r#"["k", "seven"]"#],
        &[("WASMDO_CALL_TOKEN", CALL)],
    );
    assert!(ok, "{text}");
    // the host's own wasmdo.toml names the token (`--config`)
    let config = host.data.parent().unwrap().join("wasmdo.toml");
    let config = config.to_str().unwrap();
    let (ok, text) = run(
        &["call", "kv/a", "get", r#"["k"]"#, "--config", config],
        &[],
    );
    assert!(ok && text.contains("seven"), "{text}");
    let (ok, text) = run(&["wit", "kv", "--config", config], &[]);
    assert!(ok && text.contains("interface"), "{text}");
    let (ok, text) = run(&["call", "kv/a", "get", r#"["k"]"#], &[]);
    assert!(!ok && text.contains("Unauthorized"), "{text}");
}

#[test]
fn the_public_plane_serves_only_the_entry_worker() {
    let host = TestHost::with_admin_token(
        r#"
public-listen = "127.0.0.1:0"
entry = "front"

[classes.front]
bindings = { ROOMS = "rooms" }
"#,
        ADMIN,
    );
    host.deploy("rooms", WEBSOCKETS_BASIC).expect(201);
    host.deploy("front", WORKER_FRONT).expect(201);
    host.deploy("info", OBJECT_INFO).expect(201);
    let public = host.public_url.clone().expect("a public URL");
    let get = |path: &str| host.request_to(&public, "GET", path, &[], b"");
    // the Worker answers, and reaches objects through its bindings
    assert!(get("/whoami").text.starts_with("worker-"));
    assert_eq!(get("/rooms/lobby/ws").status, 426);
    // the host's own routes are the Worker's paths there, with or without a token
    for path in [
        "/_admin/health",
        "/_admin/classes",
        "/rpc/info/a/describe",
        "/objects/info/a/",
    ] {
        let reply = get(path);
        assert_eq!(reply.status, 404, "{path}: {}", reply.text);
        assert_eq!(reply.text, format!("the worker has no route for {path}"));
    }
    let reply = host.request_to(&public, "PUT", "/_admin/classes/evil", &[], b"\0asm");
    assert_eq!(
        reply.text,
        "the worker has no route for /_admin/classes/evil"
    );
    // the control plane still serves them
    assert_eq!(host.request("GET", "/_admin/health", b"").status, 200);
    assert_eq!(
        host.request("GET", "/_admin/classes", b"")
            .expect(200)
            .as_array()
            .unwrap()
            .len(),
        3
    );
}

#[test]
fn a_public_plane_without_a_worker_answers_404_to_everything() {
    let host = TestHost::with_admin_token(r#"public-listen = "127.0.0.1:0""#, ADMIN);
    let public = host.public_url.clone().expect("a public URL");
    for path in ["/", "/_admin/health", "/rpc/a/b/c"] {
        host.request_to(&public, "GET", path, &[], b"")
            .expect_error(404, "NotFound");
    }
}

#[test]
fn an_open_control_plane_off_loopback_or_a_weak_token_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let serve = |listen: &str, config: &str, env: &[(&str, &str)]| {
        let file = dir.path().join("wasmdo.toml");
        std::fs::write(&file, config).unwrap();
        let mut child = Command::new(binary())
            .args(["serve", "--listen", listen, "--data"])
            .arg(&data)
            .arg("--config")
            .arg(&file)
            .env_remove("WASMDO_ADMIN_TOKEN")
            .env_remove("WASMDO_CALL_TOKEN")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start wasmdo");
        // a host that starts prints its address; one that refuses exits
        let mut line = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(child.stdout.take().unwrap()),
            &mut line,
        )
        .unwrap();
        let _ = child.kill();
        let out = child.wait_with_output().unwrap();
        (line, String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let (line, err) = serve("0.0.0.0:0", "", &[]);
    assert!(line.is_empty(), "started: {line}");
    assert!(
        err.contains("refusing to serve the control plane") && err.contains("WASMDO_ADMIN_TOKEN"),
        "{err}"
    );
    let (line, err) = serve("0.0.0.0:0", r#"admin-token = "short""#, &[]);
    assert!(
        line.is_empty() && err.contains("shorter than 16 bytes"),
        "{err}"
    );
    let (line, err) = serve("127.0.0.1:0", &format!("call-token = {CALL:?}"), &[]);
    assert!(
        line.is_empty() && err.contains("needs an admin-token"),
        "{err}"
    );
    let (line, err) = serve(
        "127.0.0.1:0",
        &format!("admin-token = {ADMIN:?}\ncall-token = {ADMIN:?}"),
        &[],
    );
    assert!(
        line.is_empty() && err.contains("callers would be able to deploy"),
        "{err}"
    );
    // a token from the environment lets it start off loopback
    let (line, err) = serve("0.0.0.0:0", "", &[("WASMDO_ADMIN_TOKEN", ADMIN)]);
    assert!(line.starts_with("wasmdo listening on"), "{line} {err}");
    assert!(!err.contains(ADMIN), "{err}");
}

#[test]
fn objects_see_the_peer_address_not_a_client_claim() {
    let host = TestHost::start();
    host.deploy("info", OBJECT_INFO).expect(201);
    let reply = host
        .request_with(
            "GET",
            "/objects/info/a/",
            &[("cf-connecting-ip", "203.0.113.9")],
            b"",
        )
        .expect(200);
    let values = |name: &str| crate::harness::header_values(&reply, name);
    assert_eq!(values("cf-connecting-ip"), ["127.0.0.1"]);
    assert_eq!(values("x-real-ip"), ["127.0.0.1"]);
}

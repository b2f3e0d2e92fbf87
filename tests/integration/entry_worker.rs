//! The entry Worker (`tests/fixtures/worker_front`, a Worker written in Rust) in front of objects
//! (`tests/fixtures/websockets_basic`): every request outside the host's own routes reaches the
//! Worker, which calls objects with `objects.fetch` (Cloudflare's `stub.fetch`) and passes
//! WebSocket upgrades on, so the client talks to the object through a socket the object owns.

use std::time::Duration;

use serde_json::json;
use tungstenite::Message;
use wasmdo_test_artifacts::{WEBSOCKETS_BASIC, WORKER_FRONT};

use crate::harness::{TestHost, ws_text};

pub(crate) const COVERS: () = ();

const CONFIG: &str = r#"
entry = "front"

[classes.front]
bindings = { ROOMS = "rooms" }
"#;

fn host() -> TestHost {
    let host = TestHost::with_config(CONFIG);
    host.deploy("rooms", WEBSOCKETS_BASIC).expect(201);
    host.deploy("front", WORKER_FRONT).expect(201);
    host
}

#[test]
fn requests_outside_the_host_routes_reach_the_worker_and_objects_through_it() {
    let host = host();
    // a plain request forwarded to the room: its own answer comes back through the Worker
    let reply = host.request("GET", "/rooms/lobby/ws", b"");
    assert_eq!(reply.status, 426, "{}", reply.text);
    assert_eq!(reply.text, "expected a WebSocket upgrade");
    let reply = host.request("GET", "/rooms/lobby/elsewhere", b"");
    assert_eq!((reply.status, reply.text.as_str()), (404, "not found"));
    // the Worker's own answers
    let reply = host.request("GET", "/no/such/route", b"");
    assert_eq!(reply.status, 404);
    assert_eq!(reply.text, "the worker has no route for /no/such/route");
    assert!(
        host.request("GET", "/whoami", b"")
            .text
            .starts_with("worker-")
    );
    // the host's own routes still answer, the Worker does not see them
    assert_eq!(host.request("GET", "/_admin/health", b"").status, 200);
    host.request("GET", "/_admin/nonsense", b"")
        .expect_error(404, "NotFound");
    assert_eq!(
        host.call("rooms", "lobby", "open-sockets", json!([null])),
        json!([])
    );
}

#[test]
fn a_websocket_passed_on_by_the_worker_belongs_to_the_object() {
    let host = host();
    let url = format!(
        "{}/rooms/lobby/ws?tags=a",
        host.url.replace("http://", "ws://")
    );
    let (mut ws, response) = tungstenite::connect(&url).expect("connect through the worker");
    assert_eq!(response.status(), 101);
    let welcome = ws_text(&mut ws);
    assert!(welcome.starts_with("welcome "), "{welcome}");
    ws.send(Message::text("echo hi")).unwrap();
    assert_eq!(ws_text(&mut ws), "hi");
    ws.send(Message::text("tags")).unwrap();
    assert_eq!(ws_text(&mut ws), "a");
    // the room holds the socket; RPC events of the room reach it
    let open = host.call("rooms", "lobby", "open-sockets", json!([null]));
    assert_eq!(open.as_array().map(Vec::len), Some(1), "{open}");
    assert_eq!(
        host.call("rooms", "lobby", "send-all", json!(["to all"])),
        json!(1)
    );
    assert_eq!(ws_text(&mut ws), "to all");
    // a second client in the same room, through another request to the Worker
    let (mut other, _) = tungstenite::connect(&url).expect("second client");
    ws_text(&mut other);
    other.send(Message::text("broadcast hello")).unwrap();
    assert_eq!(ws_text(&mut ws), "broadcast hello");
    assert_eq!(ws_text(&mut other), "broadcast hello");
    ws.close(None).unwrap();
    host.wait_for(Duration::from_secs(10), "the room sees the close", || {
        host.call("rooms", "lobby", "open-sockets", json!([null]))
            .as_array()
            .map(Vec::len)
            == Some(1)
    });
}

#[test]
fn upgrades_the_object_refuses_or_the_worker_drops_are_plain_answers() {
    let host = host();
    let base = host.url.replace("http://", "ws://");
    // the room refuses: its 403 comes back, no socket
    match tungstenite::connect(format!("{base}/rooms/lobby/ws?refuse")) {
        Err(tungstenite::Error::Http(response)) => assert_eq!(response.status(), 403),
        other => panic!("expected 403, got {other:?}"),
    }
    // the room accepts but the Worker answers 404: the client gets the 404, the room no socket
    match tungstenite::connect(format!("{base}/refuse-after-accept/lobby")) {
        Err(tungstenite::Error::Http(response)) => assert_eq!(response.status(), 404),
        other => panic!("expected 404, got {other:?}"),
    }
    assert_eq!(
        host.call("rooms", "lobby", "open-sockets", json!([null])),
        json!([])
    );
    // 101 without a WebSocket is the Worker's bug, reported as such
    let message = host
        .request("GET", "/fake-101", b"")
        .expect_error(500, "FetchFailed");
    assert!(message.contains("101 without a WebSocket"), "{message}");
    // a binding the Worker does not have
    let reply = host.request("GET", "/unbound", b"");
    assert_eq!(reply.status, 502);
    assert!(
        reply.text.starts_with("unknown-binding: "),
        "{}",
        reply.text
    );
}

#[test]
fn a_runaway_worker_is_stopped_and_disturbs_nothing() {
    let host = TestHost::with_config(&format!("{CONFIG}\n[limits]\nfuel-per-event = 200000000\n"));
    host.deploy("rooms", WEBSOCKETS_BASIC).expect(201);
    host.deploy("front", WORKER_FRONT).expect(201);
    let url = format!("{}/rooms/lobby/ws", host.url.replace("http://", "ws://"));
    let (mut ws, _) = tungstenite::connect(&url).expect("connect through the worker");
    ws_text(&mut ws);
    host.request("GET", "/spin", b"")
        .expect_error(500, "CpuLimitExceeded");
    // the next request gets a working instance; the room and its socket never noticed
    assert!(
        host.request("GET", "/whoami", b"")
            .text
            .starts_with("worker-")
    );
    ws.send(Message::text("echo still here")).unwrap();
    assert_eq!(ws_text(&mut ws), "still here");
}

#[test]
fn without_an_entry_worker_unknown_paths_are_404() {
    let host = TestHost::start();
    let message = host
        .request("GET", "/rooms/lobby/ws", b"")
        .expect_error(404, "NotFound");
    assert!(message.contains("entry Worker"), "{message}");
}

#[test]
fn concurrent_requests_spread_over_worker_instances() {
    let host = host();
    // requests that wait on a busy room keep their Worker instance busy: others take the next
    let names: std::collections::BTreeSet<String> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|_| s.spawn(|| host.request("GET", "/whoami", b"").text))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(names.iter().all(|n| n.starts_with("worker-")), "{names:?}");
}

//! Hibernatable WebSockets (`tests/fixtures/websockets_basic`), with real WebSocket clients:
//! accept and refuse, tags, the output gate, broadcast, hibernation (the instance really dropped,
//! attachments kept), auto-responses without waking, close and error handlers, limits, and
//! malformed frames or dropped connections that disturb no other socket.

use std::io::Write;
use std::time::Duration;

use serde_json::json;
use tungstenite::Message;
use tungstenite::protocol::CloseFrame;
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::stream::MaybeTlsStream;
use wasmdo_test_artifacts::WEBSOCKETS_BASIC;

use crate::harness::{TestHost, WsClient as Client, ws_text as text};

pub(crate) const COVERS: () = ();

fn host(config: &str) -> TestHost {
    let host = TestHost::with_config(config);
    host.deploy("ws", WEBSOCKETS_BASIC).expect(201);
    host
}

fn ws_url(host: &TestHost, object: &str, query: &str) -> String {
    let base = host.url.replace("http://", "ws://");
    format!("{base}/objects/ws/{object}/ws?{query}")
}

/// A client of `object`'s socket with `tags`, past its welcome message; returns it and the
/// socket id the object gave it.
#[track_caller]
fn connect(host: &TestHost, object: &str, tags: &str) -> (Client, u64) {
    let (mut ws, response) = tungstenite::connect(ws_url(host, object, &format!("tags={tags}")))
        .unwrap_or_else(|e| panic!("connect: {e}; log:\n{}", host.log()));
    if let MaybeTlsStream::Plain(s) = ws.get_mut() {
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    }
    let id: u64 = response.headers()["x-socket"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(text(&mut ws), format!("welcome {id}"));
    (ws, id)
}

#[track_caller]
fn ask(ws: &mut Client, command: &str) -> String {
    ws.send(Message::text(command)).expect("send");
    text(ws)
}

fn log(host: &TestHost, object: &str) -> Vec<String> {
    let lines = host.call("ws", object, "log", json!([]));
    lines
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap().to_string())
        .collect()
}

#[test]
fn an_object_accepts_or_refuses_and_tags_its_sockets() {
    let host = host("");
    let (mut a, a_id) = connect(&host, "room", "red,blue");
    let (mut b, b_id) = connect(&host, "room", "blue");
    assert_ne!(a_id, b_id);
    assert_eq!(ask(&mut a, "tags"), "red,blue");
    assert_eq!(ask(&mut a, "count"), "2");
    assert_eq!(ask(&mut b, "count blue"), "2");
    assert_eq!(ask(&mut b, "count red"), "1");
    assert_eq!(ask(&mut b, "count green"), "0");
    assert_eq!(ask(&mut a, "echo hello"), "hello");
    // a message far larger than a socket's read buffer arrives whole, both ways
    let big = "é".repeat(100_000);
    assert_eq!(ask(&mut a, &format!("echo {big}")), big);
    a.send(Message::binary(vec![1u8, 2, 3])).unwrap();
    assert_eq!(a.read().unwrap(), Message::binary(vec![3u8, 2, 1]));
    // another object's sockets are its own
    let (mut c, _) = connect(&host, "other-room", "red");
    assert_eq!(ask(&mut c, "count"), "1");
    // the RPC view, and sends from an RPC event
    assert_eq!(
        host.call("ws", "room", "open-sockets", json!(["red"])),
        json!([a_id])
    );
    assert_eq!(host.call("ws", "room", "send-all", json!(["from rpc"])), 2);
    assert_eq!(text(&mut a), "from rpc");
    assert_eq!(text(&mut b), "from rpc");
    // `accept` only in the fetch of an upgrade, once
    assert!(ask(&mut a, "accept-again").starts_with("refused: Error::NotUpgrade("));

    // a refusal is the object's HTTP response
    match tungstenite::connect(ws_url(&host, "room", "refuse")) {
        Err(tungstenite::Error::Http(response)) => assert_eq!(response.status(), 403),
        other => panic!("expected a 403 refusal, got {other:?}"),
    }
    // a plain GET is a plain request
    let plain = host.request("GET", "/objects/ws/room/ws", b"");
    assert_eq!(plain.status, 426);
    // Cloudflare's tag limits
    let eleven = (0..11)
        .map(|i| format!("t{i}"))
        .collect::<Vec<_>>()
        .join(",");
    let too_many = host.request_with(
        "GET",
        &format!("/objects/ws/room/ws?tags={eleven}"),
        &upgrade_headers(),
        b"",
    );
    assert_eq!(too_many.status, 400);
    assert!(too_many.text.contains("InvalidTags"), "{}", too_many.text);
    let long = host.request_with(
        "GET",
        &format!("/objects/ws/room/ws?tags={}", "x".repeat(257)),
        &upgrade_headers(),
        b"",
    );
    assert!(long.text.contains("257 bytes"), "{}", long.text);
}

fn upgrade_headers() -> Vec<(&'static str, &'static str)> {
    vec![
        ("connection", "upgrade"),
        ("upgrade", "websocket"),
        ("sec-websocket-version", "13"),
        ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
    ]
}

#[test]
fn what_a_failed_event_sends_is_never_sent() {
    let host = host("");
    let (mut a, _) = connect(&host, "room", "");
    a.send(Message::text("fail")).unwrap();
    // the next reply is the next command's: "never sent" was rolled back with the event
    assert_eq!(ask(&mut a, "echo after"), "after");
    assert!(!log(&host, "room").contains(&"failed event".to_string()));
    assert!(
        host.log().contains("failing on purpose"),
        "the failure is logged"
    );
}

#[test]
fn a_broadcast_reaches_a_hundred_clients() {
    let host = host("");
    let mut clients: Vec<Client> = (0..100).map(|_| connect(&host, "big", "").0).collect();
    assert_eq!(ask(&mut clients[0], "count"), "100");
    clients[0].send(Message::text("broadcast hi all")).unwrap();
    for (i, client) in clients.iter_mut().enumerate() {
        assert_eq!(text(client), "broadcast hi all", "client {i}");
    }
    assert_eq!(host.metric("wasmdo_websockets_open"), 100);
}

#[test]
fn a_hibernated_object_is_dropped_keeps_its_sockets_and_wakes_on_a_message() {
    let host = host("[limits]\nhibernate-after-ms = 300\n");
    let (mut a, _) = connect(&host, "sleepy", "t");
    assert_eq!(ask(&mut a, "attach alice"), "attached");
    assert_eq!(ask(&mut a, "auto"), "auto on");
    assert!(ask(&mut a, "instance-events").parse::<u32>().unwrap() >= 3);
    host.wait_for(Duration::from_secs(10), "hibernation", || {
        host.metric("wasmdo_hibernations_total") == 1
    });
    assert_eq!(
        host.metric("wasmdo_live_objects"),
        0,
        "the instance is gone"
    );
    assert_eq!(
        host.metric("wasmdo_websockets_open"),
        1,
        "the socket is not"
    );
    let activations = host.metric("wasmdo_activations_total");

    // the auto-response is the host's: it does not wake the object
    assert_eq!(ask(&mut a, "ping"), "pong");
    assert_eq!(host.metric("wasmdo_live_objects"), 0);
    assert_eq!(host.metric("wasmdo_activations_total"), activations);

    // a message wakes it: a fresh instance (in-memory state gone), the attachment kept
    assert_eq!(ask(&mut a, "instance-events"), "1");
    assert_eq!(host.metric("wasmdo_activations_total"), activations + 1);
    assert_eq!(ask(&mut a, "attachment"), "attachment alice");
    assert_eq!(ask(&mut a, "tags"), "t");
}

#[test]
fn closes_reach_the_object_from_either_side() {
    let host = host("");
    let (mut a, a_id) = connect(&host, "room", "");
    let (mut b, b_id) = connect(&host, "room", "");
    let (c, c_id) = connect(&host, "room", "");
    assert_eq!(ask(&mut a, "attach ann"), "attached");

    // the client closes: the handler sees the code, reason and attachment
    a.close(Some(CloseFrame {
        code: CloseCode::Normal,
        reason: "bye".into(),
    }))
    .unwrap();
    while a.read().is_ok() {} // until the close handshake completes
    // the object closes: the client gets its code and reason
    b.send(Message::text("close see you")).unwrap();
    loop {
        match b.read() {
            Ok(Message::Close(Some(frame))) => {
                assert_eq!(u16::from(frame.code), 4000);
                assert_eq!(frame.reason.as_str(), "see you");
                break;
            }
            Ok(_) => continue,
            Err(e) => panic!("expected a close frame, got {e}"),
        }
    }
    // the connection just drops: 1006, not clean
    drop(c);
    // (reading on lets the client answer the close)
    assert!(b.read().is_err());
    host.wait_for(Duration::from_secs(10), "three closes", || {
        log(&host, "room").len() == 3
    });
    let log = log(&host, "room");
    assert!(
        log.contains(&format!("close {a_id} 1000 bye true ann")),
        "{log:?}"
    );
    assert!(
        log.contains(&format!("close {b_id} 4000 see you true ")),
        "{log:?}"
    );
    assert!(
        log.contains(&format!("close {c_id} 1006  false ")),
        "{log:?}"
    );
    host.wait_for(Duration::from_secs(5), "no sockets left", || {
        host.metric("wasmdo_websockets_open") == 0
    });
    assert_eq!(
        host.call("ws", "room", "open-sockets", json!([null])),
        json!([])
    );
}

#[test]
fn limits_are_clean_errors_and_bad_clients_disturb_no_one() {
    let host =
        host("[limits]\nmax-websocket-message-bytes = 1024\nmax-websockets-per-object = 3\n");
    let (mut a, _) = connect(&host, "room", "");
    let (mut b, b_id) = connect(&host, "room", "");
    let (mut c, c_id) = connect(&host, "room", "");

    // the object's own mistakes are errors it can handle
    assert_eq!(
        ask(&mut a, "big 2000"),
        "refused: Error::MessageTooLarge(1024)"
    );
    assert!(ask(&mut a, "attach-big").starts_with("refused: "));
    assert!(ask(&mut a, "bad-close").starts_with("refused: Error::InvalidClose("));
    assert_eq!(
        ask(&mut a, "send-to-stale"),
        format!("refused: Error::UnknownSocket({})", u64::MAX)
    );
    // one socket too many
    let fourth = host.request_with("GET", "/objects/ws/room/ws", &upgrade_headers(), b"");
    assert_eq!(fourth.status, 400);
    assert!(fourth.text.contains("TooManySockets(3)"), "{}", fourth.text);

    // a client's message over the limit closes that socket with 1009
    b.send(Message::text("x".repeat(2000))).unwrap();
    loop {
        match b.read() {
            Ok(Message::Close(Some(frame))) => {
                assert_eq!(frame.code, CloseCode::Size);
                break;
            }
            Ok(_) => continue,
            Err(_) => break, // the server may close before the client reads the frame
        }
    }
    // garbage on the wire closes that socket as a protocol error
    if let MaybeTlsStream::Plain(stream) = c.get_mut() {
        // a final frame with the reserved opcode 0xF, masked, empty
        stream.write_all(&[0x8f, 0x80, 0, 0, 0, 0]).unwrap();
    }
    host.wait_for(Duration::from_secs(10), "two errors", || {
        let l = log(&host, "room");
        l.iter().filter(|l| l.starts_with("error ")).count() == 2
    });
    let log = log(&host, "room");
    assert!(
        log.iter()
            .any(|l| l.starts_with(&format!("error {b_id} message too large"))),
        "{log:?}"
    );
    assert!(
        log.iter()
            .any(|l| l.starts_with(&format!("error {c_id} protocol error"))),
        "{log:?}"
    );
    // the other socket, and the object, go on
    assert_eq!(ask(&mut a, "echo still here"), "still here");
    assert_eq!(ask(&mut a, "count"), "1");
    assert_eq!(host.metric("wasmdo_traps_total"), 0);
}

#[test]
fn a_snapshot_brings_in_memory_state_back_and_a_redeploy_discards_it() {
    let host = TestHost::with_config(
        "[limits]\nhibernate-after-ms = 300\n\n[classes.snap]\nenv = { SNAPSHOT = \"1\" }\n",
    );
    host.deploy("snap", WEBSOCKETS_BASIC).expect(201);
    let url = format!(
        "{}/objects/snap/room/ws?tags=",
        host.url.replace("http://", "ws://")
    );
    let (mut a, _) = tungstenite::connect(url).expect("connect");
    text(&mut a); // welcome
    assert_eq!(ask(&mut a, "echo one"), "one");
    assert_eq!(ask(&mut a, "echo two"), "two");
    // fetch, two echoes, this one
    assert_eq!(ask(&mut a, "instance-events"), "4");
    host.wait_for(Duration::from_secs(10), "hibernation", || {
        host.metric("wasmdo_hibernations_total") == 1
    });
    assert_eq!(host.metric("wasmdo_snapshots_total"), 1);
    assert_eq!(host.metric("wasmdo_live_objects"), 0);
    // woken from the snapshot, not by init: the count went on
    assert_eq!(ask(&mut a, "instance-events"), "5");
    assert_eq!(host.metric("wasmdo_restores_total"), 1);

    // a new deployment of the class discards the snapshot taken by the old one
    host.wait_for(Duration::from_secs(10), "a second hibernation", || {
        host.metric("wasmdo_hibernations_total") == 2
    });
    host.deploy("snap", WEBSOCKETS_BASIC).expect(201);
    assert_eq!(ask(&mut a, "instance-events"), "1");
    assert_eq!(host.metric("wasmdo_restores_total"), 1);
}

#[test]
fn a_javascript_object_keeps_its_fields_across_hibernation_with_a_snapshot() {
    let host = TestHost::with_config("[limits]\nhibernate-after-ms = 300\n");
    host.deploy("js", wasmdo_test_artifacts::JS_SOCKETS)
        .expect(201);
    let url = format!("{}/objects/js/a/", host.url.replace("http://", "ws://"));
    let (mut a, _) = tungstenite::connect(url).expect("connect");
    assert_eq!(ask(&mut a, "x"), "1 constructed 1");
    assert_eq!(ask(&mut a, "x"), "2 constructed 1");
    host.wait_for(Duration::from_secs(20), "hibernation", || {
        host.metric("wasmdo_hibernations_total") == 1
    });
    assert_eq!(host.metric("wasmdo_snapshots_total"), 1);
    // rebuilt from the snapshot, without the constructor
    assert_eq!(ask(&mut a, "x"), "3 restored 1");
    assert_eq!(host.metric("wasmdo_restores_total"), 1);
}

#[test]
fn a_javascript_broadcast_keeps_every_clients_order() {
    // the JS SDK sends a run of the same message to many sockets as one host call
    let host = TestHost::start();
    host.deploy("js", wasmdo_test_artifacts::JS_SOCKETS)
        .expect(201);
    let url = format!("{}/objects/js/burst/", host.url.replace("http://", "ws://"));
    let (mut a, _) = tungstenite::connect(&url).expect("connect");
    let (mut b, _) = tungstenite::connect(&url).expect("connect");
    a.send(Message::text("burst")).unwrap();
    assert_eq!(text(&mut a), "one");
    assert_eq!(text(&mut a), "two");
    // sent as it was when `send` was called
    assert_eq!(a.read().unwrap(), Message::binary(vec![1u8, 2, 3]));
    assert_eq!(text(&mut a), "x".repeat(20_000));
    assert_eq!(text(&mut a), "three");
    for expected in ["one", "two", "three"] {
        assert_eq!(text(&mut b), expected);
    }
    // a send before a close arrives before the close
    a.send(Message::text("last words")).unwrap();
    assert_eq!(text(&mut a), "bye");
    match a.read() {
        Ok(Message::Close(Some(frame))) => assert_eq!(u16::from(frame.code), 4001),
        other => panic!("expected the close, got {other:?}"),
    }
    // the sends of a broadcast to a socket that left are dropped, the others delivered
    drop(a);
    b.send(Message::text("burst")).unwrap();
    for expected in ["one", "two"] {
        assert_eq!(text(&mut b), expected);
    }
}

#[test]
fn a_host_shutting_down_closes_its_websockets_with_1001_and_exits_cleanly() {
    let mut host = host("");
    let (mut ws, _) = connect(&host, "leaving", "t");
    assert_eq!(ask(&mut ws, "echo still here"), "still here");
    let status = host.terminate();
    assert!(status.success(), "exit status after SIGTERM: {status}");
    assert_eq!(crate::harness::ws_close_code(&mut ws), Some(1001));
}

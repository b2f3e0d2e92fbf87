//! Connection and request hygiene against raw sockets: slow clients are timed out, connection
//! caps answer 503 instead of exhausting file descriptors, buffered bodies share one budget,
//! smuggling shapes and bad headers never reach a guest, and a WebSocket text
//! message that is not UTF-8 is closed with 1007.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use serde_json::Value;
use wasmdo_test_artifacts::{OBJECT_INFO, WEBSOCKETS_BASIC};

use crate::harness::TestHost;

fn addr(host: &TestHost) -> SocketAddr {
    host.url
        .strip_prefix("http://")
        .unwrap()
        .parse()
        .expect("host address")
}

/// A connection from `local` (a loopback address) to the host.
fn connect_from(host: &TestHost, local: &str) -> TcpStream {
    crate::harness::connect_from(local, addr(host))
}

/// Sends `request` as is and reads the reply until the host closes the connection (or 10 s):
/// (status, JSON body, everything read).
fn raw(host: &TestHost, request: &[u8]) -> (u16, Value, String) {
    let mut socket = connect_from(host, "127.0.0.1");
    socket.write_all(request).unwrap();
    read_reply(&mut socket)
}

fn read_reply(socket: &mut TcpStream) -> (u16, Value, String) {
    socket
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut text = Vec::new();
    let _ = socket.read_to_end(&mut text);
    let text = String::from_utf8_lossy(&text).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .and_then(|(_, b)| serde_json::from_str(b.trim()).ok())
        .unwrap_or(Value::Null);
    (status, body, text)
}

/// Whether the host closes `socket` within `within` (reads return EOF or an error).
fn closed_within(socket: &mut TcpStream, within: Duration) -> bool {
    socket.set_read_timeout(Some(within)).unwrap();
    let start = Instant::now();
    let mut buf = [0u8; 4096];
    loop {
        match socket.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue, // a 408 the server may write first
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut =>
            {
                return false;
            }
            Err(_) => return start.elapsed() <= within + Duration::from_secs(1),
        }
    }
}

#[test]
fn slow_heads_idle_connections_and_trickled_bodies_are_timed_out() {
    let host = TestHost::with_config(
        "[limits]\nheader-read-timeout-ms = 300\nbody-read-timeout-ms = 500\n",
    );
    host.deploy("info", OBJECT_INFO).expect(201);
    // half a request head
    let mut slow = connect_from(&host, "127.0.0.1");
    slow.write_all(b"GET /_admin/health HTTP/1.1\r\nHo")
        .unwrap();
    assert!(closed_within(&mut slow, Duration::from_secs(5)));
    // a keep-alive connection that sends nothing more after its first request
    let mut idle = connect_from(&host, "127.0.0.1");
    idle.write_all(b"GET /_admin/health HTTP/1.1\r\nHost: a\r\n\r\n")
        .unwrap();
    assert!(closed_within(&mut idle, Duration::from_secs(5)));
    // a body that never arrives in full
    let mut trickle = connect_from(&host, "127.0.0.1");
    trickle
        .write_all(b"POST /rpc/info/a/describe HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\n[")
        .unwrap();
    let (status, body, text) = read_reply(&mut trickle);
    assert_eq!(status, 408, "{text}");
    assert_eq!(body["kind"], "RequestTimeout", "{text}");
    // the host still serves everyone else, and counted them all
    assert_eq!(host.request("GET", "/_admin/health", b"").status, 200);
    assert!(host.metric("wasmdo_request_timeouts_total") >= 3);
}

#[test]
fn connections_past_the_caps_get_503_and_others_are_still_served() {
    let host = TestHost::with_config(
        "[limits]\nmax-connections = 16\nmax-connections-per-peer = 4\nheader-read-timeout-ms = 60000\n",
    );
    // one client holds its 4 connections, idle
    let held: Vec<TcpStream> = (0..4).map(|_| connect_from(&host, "127.0.0.1")).collect();
    std::thread::sleep(Duration::from_millis(200));
    let mut fifth = connect_from(&host, "127.0.0.1");
    fifth
        .write_all(b"GET /_admin/health HTTP/1.1\r\nHost: a\r\n\r\n")
        .unwrap();
    let (status, body, text) = read_reply(&mut fifth);
    assert_eq!(status, 503, "{text}");
    assert_eq!(body["kind"], "Overloaded");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("per client address"),
        "{text}"
    );
    // another client address is still served (and keeps its connection)
    let mut other = connect_from(&host, "127.0.0.2");
    other
        .write_all(b"GET /_admin/health HTTP/1.1\r\nHost: a\r\n\r\n")
        .unwrap();
    other
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut head = [0u8; 12];
    other.read_exact(&mut head).unwrap();
    assert_eq!(&head, b"HTTP/1.1 200");
    // fill the listener's 16: three more clients with 4, 4 and 3
    let more: Vec<TcpStream> = ["127.0.0.3", "127.0.0.4", "127.0.0.5"]
        .iter()
        .flat_map(|from| [*from; 4])
        .take(11)
        .map(|from| connect_from(&host, from))
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    let mut late = connect_from(&host, "127.0.0.7");
    let (status, body, text) = {
        late.write_all(b"GET /_admin/health HTTP/1.1\r\nHost: a\r\n\r\n")
            .unwrap();
        read_reply(&mut late)
    };
    assert_eq!(status, 503, "{text}");
    assert!(
        body["error"].as_str().unwrap().contains("max-connections"),
        "{text}"
    );
    assert_eq!(
        metric_from(&mut other, "wasmdo_connections_refused_total"),
        2
    );
    // closing connections frees their slots
    drop((held, more, other));
    crate::harness::wait_until(Duration::from_secs(10), "free slots", || {
        let mut probe = connect_from(&host, "127.0.0.1");
        probe
            .write_all(b"GET /_admin/health HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
            .unwrap();
        read_reply(&mut probe).0 == 200
    });
}

#[test]
fn request_bodies_share_one_budget() {
    let host = TestHost::with_config("[limits]\nmax-buffered-body-bytes = 1048576\n");
    host.deploy("info", OBJECT_INFO).expect(201);
    // one client is sending a 1000 KiB body and has sent 900 KiB of it
    let mut big = connect_from(&host, "127.0.0.1");
    big.write_all(
        b"PUT /objects/info/a/upload HTTP/1.1\r\nHost: a\r\nConnection: close\r\nContent-Length: 1024000\r\n\r\n",
    )
    .unwrap();
    big.write_all(&vec![b'x'; 900 * 1024]).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    // a second body does not fit in what is left of the 1 MiB
    let reply = host.request("PUT", "/objects/info/b/upload", &vec![b'y'; 200 * 1024]);
    let message = reply.expect_error(503, "Overloaded");
    assert!(message.contains("max-buffered-body-bytes"), "{message}");
    assert_eq!(host.metric("wasmdo_bodies_refused_total"), 1);
    // the first one completes; then the budget is free again
    big.write_all(&vec![b'x'; 100 * 1024]).unwrap();
    let (status, body, text) = read_reply(&mut big);
    assert_eq!(status, 200, "{}", &text[..text.len().min(300)]);
    assert_eq!(body["body"].as_str().unwrap().len(), 1000 * 1024);
    let reply = host.request("PUT", "/objects/info/b/upload", &vec![b'y'; 200 * 1024]);
    let echoed: Value = reply.expect(200);
    assert_eq!(echoed["body"].as_str().unwrap().len(), 200 * 1024);
}

#[test]
fn smuggling_shapes_and_bad_headers_are_refused_before_any_guest_runs() {
    let host = TestHost::start();
    host.deploy("info", OBJECT_INFO).expect(201);
    let cases: [(&[u8], &str); 4] = [
        (
            b"GET /objects/info/a/ HTTP/1.1\r\nHost: a b\r\n\r\n",
            "Host header",
        ),
        (
            b"GET /objects/info/a/ HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
            "more than one Host",
        ),
        (
            b"GET /objects/info/a/ HTTP/1.1\r\n\r\n",
            "needs a Host header",
        ),
        (
            b"GET /objects/info/a/ HTTP/1.1\r\nHost: a\r\nX-Name: caf\xe9\r\n\r\n",
            "`x-name` is not UTF-8",
        ),
    ];
    for (request, expected) in cases {
        let (status, body, text) = raw(&host, request);
        assert_eq!(status, 400, "{text}");
        assert_eq!(body["kind"], "InvalidRequest", "{text}");
        assert!(body["error"].as_str().unwrap().contains(expected), "{text}");
    }
    // framing proxies could read two ways: refused, or read one way and the connection closed
    let (status, _, text) = raw(
        &host,
        b"POST /objects/info/a/ HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n",
    );
    assert_eq!(status, 400, "{text}");
    let (status, _, text) = raw(
        &host,
        b"POST /objects/info/a/ HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
    );
    assert_eq!(status, 400, "{text}");
    // both lengths, in either order: refused, the connection closed after the one reply, so
    // the request hidden behind it (in one of the two readings) never runs
    for request in [
        &b"POST /objects/info/a/ HTTP/1.1\r\nHost: a\r\nContent-Length: 50\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /objects/info/smuggled/ HTTP/1.1\r\nHost: a\r\n\r\n"[..],
        b"POST /objects/info/a/ HTTP/1.1\r\nHost: a\r\ntransfer-encoding: chunked\r\ncontent-length: 3\r\n\r\n0\r\n\r\nGET /objects/info/smuggled/ HTTP/1.1\r\nHost: a\r\n\r\n",
    ] {
        let (status, body, text) = raw(&host, request);
        assert_eq!(status, 400, "{text}");
        assert_eq!(body["kind"], "InvalidRequest", "{text}");
        assert!(text.contains("both Content-Length and Transfer-Encoding"), "{text}");
        assert_eq!(text.matches("HTTP/1.1 ").count(), 1, "{text}");
    }
    // none of them reached the object: it was never activated
    assert_eq!(host.metric("wasmdo_activations_total"), 0);
    // pipelined requests with bodies of both kinds are read as sent
    let (_, _, text) = raw(
        &host,
        b"POST /objects/info/a/ HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nhi\
POST /objects/info/b/ HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nyo\r\n0\r\n\r\n\
GET /objects/info/c/ HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(text.matches("HTTP/1.1 200").count(), 3, "{text}");
    // a well-formed request runs
    let (status, _, text) = raw(
        &host,
        b"GET /objects/info/a/ HTTP/1.1\r\nHost: example.com:8080\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(status, 200, "{text}");
}

#[test]
fn a_text_message_that_is_not_utf8_closes_the_socket_with_1007() {
    use tungstenite::protocol::frame::Frame;
    use tungstenite::protocol::frame::coding::{Data, OpCode};

    let host = TestHost::start();
    host.deploy("rooms", WEBSOCKETS_BASIC).expect(201);
    let url = host.url.replace("http://", "ws://") + "/objects/rooms/lobby/ws";
    let (mut ws, _) = tungstenite::connect(url).expect("upgrade");
    let frame = Frame::message(vec![0xc3, 0x28], OpCode::Data(Data::Text), true);
    ws.send(tungstenite::Message::Frame(frame)).unwrap();
    let code = loop {
        match ws.read() {
            Ok(tungstenite::Message::Close(frame)) => break frame.map(|f| u16::from(f.code)),
            Ok(_) => continue,
            Err(e) => panic!("no close frame: {e}"),
        }
    };
    assert_eq!(code, Some(1007));
}

#[test]
fn rpc_arguments_are_charged_at_their_parsed_size() {
    let host = TestHost::with_config("[limits]\nmax-buffered-body-bytes = 4194304\n");
    host.deploy("kv", wasmdo_test_artifacts::STORAGE_KV)
        .expect(201);
    // 100,000 small strings: a 700 kB body that would take ~8 MB parsed
    let keys: Vec<String> = (0..100_000).map(|i| format!("{i}")).collect();
    let message = host
        .rpc("kv", "a", "get-many", serde_json::json!([keys]))
        .expect_error(400, "InvalidArgument");
    assert!(message.contains("max-buffered-body-bytes"), "{message}");
    // 1,000 of them fit
    let reply = host.rpc("kv", "a", "get-many", serde_json::json!([&keys[..1000]]));
    assert_eq!(reply.expect(200), serde_json::json!([]));
}

/// A metric read over a connection the host already holds (a new one would be refused).
fn metric_from(socket: &mut TcpStream, name: &str) -> u64 {
    socket
        .write_all(b"GET /_admin/metrics HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        .unwrap();
    let (_, _, text) = read_reply(socket);
    // what is left of an earlier reply on this connection comes first
    let last = &text[text.rfind("HTTP/1.1 ").expect("a reply")..];
    assert!(last.starts_with("HTTP/1.1 200"), "{last}");
    let body = last.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    crate::harness::metric_value(body, name)
}

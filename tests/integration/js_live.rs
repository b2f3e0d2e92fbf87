//! Cloudflare JavaScript that relies on a living event loop and on the standard WebSocket API,
//! unmodified, through the real host (`wasmdo dev` on `tests/fixtures-js/live-project`): timers
//! the handler does not await fire while the object is live (no event needed), so does what
//! follows an unawaited `fetch` once its answer arrives, `setInterval` and
//! `clearTimeout` behave, `server.accept()` with event listeners works in an object and in a
//! Worker, such a socket keeps its object from hibernating and is closed with 1001 when the
//! instance goes, and a Worker can send an error over a WebSocket and close it.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::json;
use tungstenite::Message;
use tungstenite::protocol::CloseFrame;
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::stream::MaybeTlsStream;

use crate::harness::{WsClient, metric_value, ws_text as text};
use crate::wrangler::{Dev, copy_project, get, get_json};

/// A WebSocket to `path` of the dev host, reading with a timeout.
#[track_caller]
fn connect(dev: &Dev, path: &str) -> WsClient {
    let url = format!("{}{path}", dev.url.replace("http://", "ws://"));
    let (mut ws, _) = tungstenite::connect(&url)
        .unwrap_or_else(|e| panic!("connect {url}: {e}; log:\n{}", dev.log()));
    if let MaybeTlsStream::Plain(s) = ws.get_mut() {
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    }
    ws
}

#[track_caller]
fn send(ws: &mut WsClient, text: &str) {
    ws.send(Message::text(text)).expect("send");
}

/// The close frame the server sends next (text messages before it fail the test).
#[track_caller]
fn close_frame(ws: &mut WsClient) -> (u16, String) {
    loop {
        match ws.read() {
            Ok(Message::Close(Some(frame))) => {
                return (u16::from(frame.code), frame.reason.to_string());
            }
            Ok(Message::Ping(_) | Message::Pong(_)) => continue,
            other => panic!("expected a close frame, got {other:?}"),
        }
    }
}

fn metric(dev: &Dev, name: &str) -> u64 {
    metric_value(&get(&format!("{}/_admin/metrics", dev.url)).1, name)
}

#[test]
fn timers_and_standard_websockets_of_untouched_cloudflare_javascript() {
    let from = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures-js/live-project");
    let project = copy_project(&from, "js-live");
    // objects with sockets hibernate quickly here: a socket accepted in memory must stop that;
    // a short wall clock stops the runaway listener soon
    let dev = Dev::start_with(
        &project,
        "[limits]\nhibernate-after-ms = 300\nwall-clock-ms = 3000\n\n[classes.Ticker]\nfetch = [\"127.0.0.1\"]\n",
        false,
        Duration::from_secs(600),
    );
    let url = dev.url.clone();

    // the standard API in an object, reached through the Worker's stub.fetch
    let mut ws = connect(&dev, "/ticker/a/ws");
    send(&mut ws, "hello");
    assert_eq!(text(&mut ws), "echo hello");

    // a timer set by a listener and not awaited fires while the object is live: the client
    // sends nothing more and still gets it
    let wakeups = metric(&dev, "wasmdo_timer_wakeups_total");
    send(&mut ws, "late");
    assert_eq!(text(&mut ws), "late");
    assert!(metric(&dev, "wasmdo_timer_wakeups_total") > wakeups);
    // setInterval ticks until it clears itself; a cleared timeout never fires
    send(&mut ws, "ticks");
    for n in 1..=3 {
        assert_eq!(text(&mut ws), format!("tick {n}"));
    }
    send(&mut ws, "cancelled");
    assert_eq!(text(&mut ws), "after the cancelled one");

    // the socket is the instance's: not listed by getWebSockets, and the object did not
    // hibernate (far longer than hibernate-after-ms went by without a message from it)
    std::thread::sleep(Duration::from_millis(1_200));
    let state = get_json(&format!("{url}/ticker/a/state"));
    assert_eq!(state["hibernatable"], 0, "{state}");
    assert_eq!(
        state["heard"],
        json!(["hello", "late", "ticks", "cancelled"]),
        "the instance (its memory) was kept: {state}"
    );
    // the client closes: the close listener runs as an event and its write commits
    ws.close(Some(CloseFrame {
        code: CloseCode::Normal,
        reason: "bye".into(),
    }))
    .expect("close");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let state = get_json(&format!("{url}/ticker/a/state"));
        if state["closed"] == "1000 bye" {
            break;
        }
        assert!(Instant::now() < deadline, "no close event ran: {state}");
        std::thread::sleep(Duration::from_millis(50));
    }

    // a fire-and-forget async helper sleeping on a timer: its write lands with no event to run it
    assert_eq!(
        get(&format!("{url}/ticker/b/later?ms=200")),
        (200, "scheduled".to_owned())
    );
    let ran = Instant::now() + Duration::from_secs(20);
    while metric(&dev, "wasmdo_timer_wakeups_total") == 0 || {
        // the state request is an event of its own: look only once a wake-up has run
        get_json(&format!("{url}/ticker/b/state"))["later"] != "ran"
    } {
        assert!(
            Instant::now() < ran,
            "the unawaited helper never ran; log:\n{}",
            dev.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    // an unawaited fetch: its answer comes 300 ms after the event ended, and the object reads
    // it and sends a second request with no event to run it
    let slow = SlowServer::start();
    let target = format!("http://127.0.0.1:{}/slow", slow.port);
    assert_eq!(
        get(&format!("{url}/ticker/e/fetch-later?url={target}")),
        (200, "fetching".to_owned())
    );
    let reported = Instant::now() + Duration::from_secs(20);
    while !slow
        .requests()
        .iter()
        .any(|r| r.starts_with("GET /slow/report?got=payload "))
    {
        assert!(
            Instant::now() < reported,
            "what followed the unawaited fetch never ran: {:?}; log:\n{}",
            slow.requests(),
            dev.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    // the hibernation API: a timer set in webSocketMessage fires too
    let mut hibernatable = connect(&dev, "/ticker/c/hibernatable");
    send(&mut hibernatable, "x");
    assert_eq!(text(&mut hibernatable), "late x");
    assert_eq!(
        get_json(&format!("{url}/ticker/c/state"))["hibernatable"],
        1
    );

    // a Worker's own WebSocketPair: an error sent over it, then a close with 1011
    let mut refused = connect(&dev, "/worker-ws/refuse");
    assert_eq!(text(&mut refused), r#"{"error":"no room for you"}"#);
    assert_eq!(close_frame(&mut refused), (1011, "refused".to_owned()));
    // and listeners in a Worker
    let mut echo = connect(&dev, "/worker-ws/echo");
    send(&mut echo, "hi");
    assert_eq!(text(&mut echo), "worker hi");
    send(&mut echo, "again");
    assert_eq!(text(&mut echo), "worker again");

    // when the instance goes (here a runaway listener stopped by the wall clock), the sockets it
    // accepted in memory are closed with 1001; its other objects and the Worker's go on
    let mut doomed = connect(&dev, "/ticker/d/ws");
    send(&mut doomed, "spin");
    assert_eq!(close_frame(&mut doomed).0, 1001);
    send(&mut echo, "still here");
    assert_eq!(text(&mut echo), "worker still here");
    let mut again = connect(&dev, "/ticker/d/ws");
    send(&mut again, "back");
    assert_eq!(text(&mut again), "echo back");
}

/// A local HTTP server that answers every request with `payload`, 300 ms late, and records the
/// request line of each.
struct SlowServer {
    port: u16,
    requests: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl SlowServer {
    fn start() -> SlowServer {
        use std::io::{BufRead, BufReader, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let requests = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = requests.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let seen = seen.clone();
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(&stream);
                    let mut first = String::new();
                    let _ = reader.read_line(&mut first);
                    let mut line = String::new();
                    while reader.read_line(&mut line).is_ok_and(|n| n > 0) && line != "\r\n" {
                        line.clear();
                    }
                    seen.lock().unwrap().push(first.trim_end().to_owned());
                    std::thread::sleep(Duration::from_millis(300));
                    let _ = write!(
                        stream,
                        "HTTP/1.1 200 OK\r\ncontent-length: 7\r\nconnection: close\r\n\r\npayload"
                    );
                });
            }
        });
        SlowServer { port, requests }
    }

    fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }
}

//! Outbound HTTP through `wasi:http`: a class reaches only the hosts its `fetch` list names, a
//! denied request is a clear error in the guest and a warning in the object's log, and a server
//! that never answers cannot hold an object past its event's deadline.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use wasmdo_test_artifacts::{HTTP_OUTBOUND, JS_RUNTIME};

use crate::harness::TestHost;

pub(crate) const COVERS: () = ();

/// A local HTTP server on `127.0.0.1:0` that answers every request with `body`, or never
/// answers at all (`body: None`), and records the request line of every connection it accepts.
struct TestServer {
    port: u16,
    requests: Arc<Mutex<Vec<String>>>,
}

impl TestServer {
    fn start(body: Option<&'static str>) -> TestServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the test server");
        let port = listener.local_addr().expect("local addr").port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let seen = requests.clone();
        std::thread::spawn(move || {
            let mut held = Vec::new();
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let request_line = read_request(&stream);
                seen.lock().unwrap().push(request_line);
                match body {
                    Some(body) => answer(stream, body),
                    // keep the connection open and silent
                    None => held.push(stream),
                }
            }
        });
        TestServer { port, requests }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }
}

/// Reads a request's head; returns its first line.
fn read_request(stream: &TcpStream) -> String {
    let mut reader = BufReader::new(stream);
    let mut first = String::new();
    let _ = reader.read_line(&mut first);
    let mut line = String::new();
    while reader.read_line(&mut line).is_ok_and(|n| n > 0) && line != "\r\n" {
        line.clear();
    }
    first.trim_end().to_string()
}

fn answer(mut stream: TcpStream, body: &str) {
    let _ = write!(
        stream,
        "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
}

/// `get` that must fail with the method's own error (`result::err`); returns the error text.
#[track_caller]
fn get_err(host: &TestHost, class: &str, url: &str) -> String {
    let err = host.rpc(class, "o", "get", json!([url])).expect(422);
    assert_eq!(err["kind"], "MethodError", "{err}");
    err["value"].as_str().expect("error text").to_string()
}

#[test]
fn only_hosts_on_the_allow_list_are_fetched() {
    let server = TestServer::start(Some("hello from the test server"));
    let other = TestServer::start(Some("never reached"));
    let host = TestHost::with_config(&format!(
        "[classes.fetcher]\nfetch = [\"127.0.0.1:{}\", \"*.example.invalid\"]\n",
        server.port
    ));
    host.deploy("fetcher", HTTP_OUTBOUND).expect(201);
    host.deploy("sealed", HTTP_OUTBOUND).expect(201);

    let reply = host.call("fetcher", "o", "get", json!([server.url("/hello")]));
    assert_eq!(
        reply,
        json!({"status": 200, "body": "hello from the test server"})
    );
    assert_eq!(server.requests(), ["GET /hello HTTP/1.1"]);

    // a class without `fetch` sends nothing at all
    let err = get_err(&host, "sealed", &server.url("/secret"));
    assert!(err.contains("HttpRequestDenied"), "{err}");
    // the same host on another port, or another name for the same address, is not on the list
    let err = get_err(&host, "fetcher", &other.url("/"));
    assert!(err.contains("HttpRequestDenied"), "{err}");
    let err = get_err(
        &host,
        "fetcher",
        &format!("http://localhost:{}/", server.port),
    );
    assert!(err.contains("HttpRequestDenied"), "{err}");
    assert_eq!(
        server.requests().len(),
        1,
        "a denied request never connects"
    );
    assert!(
        other.requests().is_empty(),
        "a denied request never connects"
    );

    // the owner learns what to change from the object's log
    let log = host.log();
    let warning = |class: &str| {
        log.lines()
            .find(|l| l.contains("denied") && l.contains(&format!("class `{class}`")))
            .unwrap_or_else(|| panic!("no denial warning for `{class}` in the log:\n{log}"))
            .to_string()
    };
    let sealed = warning("sealed");
    assert!(sealed.contains("WARN"), "{sealed}");
    assert!(
        sealed.contains(&format!("127.0.0.1:{}", server.port)),
        "{sealed}"
    );
    assert!(sealed.contains("fetch = ["), "{sealed}");
    assert!(sealed.contains("[classes.sealed]"), "{sealed}");
    assert!(warning("fetcher").contains("add"), "{log}");

    // a denial is an error for the guest, not a trap: the objects go on
    let again = host.call("fetcher", "o", "get", json!([server.url("/again")]));
    assert_eq!(again["body"], "hello from the test server");
    let err = get_err(&host, "sealed", &server.url("/"));
    assert!(err.contains("HttpRequestDenied"), "{err}");
    assert_eq!(host.metric("wasmdo_traps_total"), 0);
}

#[test]
fn a_request_that_hangs_ends_with_the_event_deadline() {
    let silent = TestServer::start(None);
    let server = TestServer::start(Some("still here"));
    let host = TestHost::with_config(
        "[limits]\nwall-clock-ms = 1500\n\n[classes.fetcher]\nfetch = [\"127.0.0.1\"]\n",
    );
    host.deploy("fetcher", HTTP_OUTBOUND).expect(201);

    let message = host
        .rpc("fetcher", "o", "get", json!([silent.url("/slow")]))
        .expect_error(500, "WallClockLimitExceeded");
    assert!(message.contains("1500 ms"), "{message}");
    assert_eq!(silent.requests(), ["GET /slow HTTP/1.1"]);

    // the object serves again on a fresh instance
    let reply: Value = host.call("fetcher", "o", "get", json!([server.url("/")]));
    assert_eq!(reply["body"], "still here");
}

#[test]
fn javascript_fetch_goes_through_the_same_allow_list() {
    let server = TestServer::start(Some("hello, JavaScript"));
    let host = TestHost::with_config(&format!(
        "[limits]\nfuel-per-event = 1000000000\n\n[classes.js]\nfetch = [\"127.0.0.1:{}\"]\n",
        server.port
    ));
    host.deploy("js", JS_RUNTIME).expect(201);
    host.deploy("js-sealed", JS_RUNTIME).expect(201);
    assert_eq!(
        host.call("js", "o", "fetch-url", json!([server.url("/js")])),
        "200 hello, JavaScript"
    );
    assert_eq!(server.requests(), ["GET /js HTTP/1.1"]);
    for (class, url) in [
        ("js-sealed", server.url("/no")),
        ("js", "http://example.invalid/".to_string()),
    ] {
        let outcome = host.call(class, "o", "fetch-url", json!([url]));
        let outcome = outcome.as_str().unwrap();
        assert!(
            outcome.starts_with("threw TypeError: fetch to "),
            "{outcome}"
        );
        assert!(outcome.contains("`fetch` list"), "{outcome}");
    }
    assert_eq!(
        server.requests().len(),
        1,
        "a denied request never connects"
    );
    assert!(
        host.log()
            .contains("class `js-sealed` may not send HTTP requests")
    );
}

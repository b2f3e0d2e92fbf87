//! examples/chat-worker, a whole Cloudflare Workers project (a Worker in front of two Durable
//! Object classes), run as its user runs it: `wasmdo dev examples/chat-worker`. Two people chat in
//! headless Chromium through its page (tests/browser/chat.mjs), and WebSocket and HTTP clients
//! check the rest: the history route, the rate limiter's 429, members chatting through sockets
//! the Worker passed on to the room, and the room hibernating with them connected.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::Duration;

use serde_json::{Value, json};
use tungstenite::client::IntoClientRequest;
use tungstenite::stream::MaybeTlsStream;
use tungstenite::{Message, WebSocket};

use crate::harness::{metric_value, wait_until};
use crate::wrangler::Dev;

type Socket = WebSocket<MaybeTlsStream<TcpStream>>;

/// The repository's root.
fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Held while a `wasmdo dev` builds and deploys: builds of the one project directory (into its
/// `.wasmdo/build/`) must not overlap.
static STARTING: Mutex<()> = Mutex::new(());

/// A running `wasmdo dev examples/chat-worker`, with its own data directory; killed on drop.
struct DevHost {
    dev: Dev,
    /// `http://127.0.0.1:<port>`
    url: String,
    agent: ureq::Agent,
}

impl DevHost {
    /// Builds, deploys and serves the project, with these host settings (`wasmdo.toml`) besides
    /// the test hosts' shared compile cache; returns once it printed that it is ready.
    fn start(config: &str) -> DevHost {
        let _one_build_at_a_time = STARTING.lock().unwrap_or_else(|e| e.into_inner());
        // the first build of three JavaScript components and their compilation take minutes
        // in a debug build; wasmdo-js's cache and the compile cache make later starts quick
        let dev = Dev::start_with(
            &repo().join("examples/chat-worker"),
            config,
            false,
            Duration::from_secs(900),
        );
        assert_eq!(dev.name, "chat-worker", "log:\n{}", dev.log());
        let agent = crate::harness::agent(Some(Duration::from_secs(60)));
        DevHost {
            url: dev.url.clone(),
            dev,
            agent,
        }
    }

    fn log(&self) -> String {
        self.dev.log()
    }

    /// `GET path`: the status and the body's text.
    fn get(&self, path: &str) -> (u16, String, Option<String>) {
        let response = self
            .agent
            .get(format!("{}{path}", self.url))
            .call()
            .unwrap_or_else(|e| panic!("GET {path}: {e}; log:\n{}", self.log()));
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap_or_default().to_string());
        let text = response.into_body().read_to_string().expect("body");
        (status, text, content_type)
    }

    /// The room's history through the Worker's HTTP route, as `name: text` lines.
    fn history(&self, room: &str) -> Vec<String> {
        let (status, text, _) = self.get(&format!("/api/rooms/{room}/history"));
        assert_eq!(status, 200, "{text}");
        let body: Value = serde_json::from_str(&text).expect("JSON");
        lines(&body["messages"])
    }

    fn metric(&self, name: &str) -> u64 {
        metric_value(&self.get("/_admin/metrics").1, name)
    }

    #[track_caller]
    fn wait_for(&self, what: &str, check: impl FnMut() -> bool) {
        wait_until(Duration::from_secs(60), what, check);
    }

    /// A WebSocket join of `room` as `name`, from the client address `ip` (the
    /// `CF-Connecting-IP` Cloudflare's edge would set, which the Worker rate-limits by).
    fn try_join(&self, room: &str, name: &str, ip: &str) -> Result<Socket, tungstenite::Error> {
        let url = format!(
            "{}/api/rooms/{room}/websocket?name={name}",
            self.url.replace("http://", "ws://")
        );
        let request = url.into_client_request().expect("request");
        // the client's address is the connection's: the host sets CF-Connecting-IP from it
        let host_addr = self
            .url
            .strip_prefix("http://")
            .expect("url")
            .parse()
            .expect("addr");
        let stream = crate::harness::connect_from(ip, host_addr);
        let (mut ws, response) = tungstenite::client(request, MaybeTlsStream::Plain(stream))
            .map_err(|e| match e {
                tungstenite::HandshakeError::Failure(e) => e,
                tungstenite::HandshakeError::Interrupted(_) => unreachable!("a blocking stream"),
            })?;
        assert_eq!(response.status(), 101);
        if let MaybeTlsStream::Plain(s) = ws.get_mut() {
            s.set_read_timeout(Some(Duration::from_secs(30)))
                .expect("timeout");
        }
        Ok(ws)
    }

    /// `name` joins `room`: past the history it is sent (returned, as `name: text` lines) and
    /// its own `joined` notice (which lists who is online: checked against `online`).
    #[track_caller]
    fn join(&self, room: &str, name: &str, ip: &str, online: &[&str]) -> (Member, Vec<String>) {
        let ws = self
            .try_join(room, name, ip)
            .unwrap_or_else(|e| panic!("{name} joins {room}: {e}; log:\n{}", self.log()));
        let mut member = Member {
            name: name.to_string(),
            ws,
        };
        let history = member.receive("history");
        member.sees_join(name, online);
        (member, lines(&history["messages"]))
    }
}

impl Drop for DevHost {
    fn drop(&mut self) {
        // `dev` stops the host after this
        if std::thread::panicking() {
            eprintln!("---- wasmdo dev log ----\n{}", self.log());
        }
    }
}

/// Messages as `name: text` lines.
fn lines(messages: &Value) -> Vec<String> {
    messages
        .as_array()
        .unwrap_or_else(|| panic!("a list of messages: {messages}"))
        .iter()
        .map(|m| {
            format!(
                "{}: {}",
                m["name"].as_str().unwrap(),
                m["text"].as_str().unwrap()
            )
        })
        .collect()
}

/// A member of a room, connected with a WebSocket.
struct Member {
    name: String,
    ws: Socket,
}

impl Member {
    /// The next event the room sent, which must be of `kind`.
    #[track_caller]
    fn receive(&mut self, kind: &str) -> Value {
        let event = loop {
            match self.ws.read() {
                Ok(Message::Text(t)) => break serde_json::from_str::<Value>(&t).expect("JSON"),
                Ok(Message::Ping(_) | Message::Pong(_)) => continue,
                Ok(other) => panic!("{}: expected a text message, got {other:?}", self.name),
                Err(e) => panic!("{}: waiting for `{kind}`: {e}", self.name),
            }
        };
        assert_eq!(event["type"], kind, "{} got {event}", self.name);
        event
    }

    #[track_caller]
    fn say(&mut self, text: &str) {
        self.ws.send(Message::text(text)).expect("send");
    }

    /// The next event is `who`'s message `text`; returns its time.
    #[track_caller]
    fn sees_message(&mut self, who: &str, text: &str) -> u64 {
        let event = self.receive("message");
        assert_eq!(
            (event["name"].as_str(), event["text"].as_str()),
            (Some(who), Some(text))
        );
        event["time"].as_u64().expect("a time")
    }

    #[track_caller]
    fn sees_join(&mut self, who: &str, online: &[&str]) {
        let event = self.receive("joined");
        assert_eq!(event["name"], who);
        assert_eq!(event["online"], json!(online));
    }

    #[track_caller]
    fn sees_leave(&mut self, who: &str, online: &[&str]) {
        let event = self.receive("left");
        assert_eq!(event["name"], who);
        assert_eq!(event["online"], json!(online));
    }

    fn leave(mut self) {
        self.ws.close(None).expect("close");
        // the closing handshake: the room answers the close
        while self.ws.read().is_ok() {}
    }
}

#[test]
fn two_people_chat_in_headless_chromium() {
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        Path::new(&chromium).is_file(),
        "{chromium} is missing: `apt-get install chromium` (scripts/test installs it)"
    );
    assert!(
        repo()
            .join("tests/browser/node_modules/playwright-core")
            .is_dir(),
        "tests/browser's npm packages are missing: `scripts/npm-deps tests/browser` (scripts/test runs it)"
    );
    let host = DevHost::start("");
    let run = Command::new("node")
        .arg(repo().join("tests/browser/chat.mjs"))
        .arg(&host.url)
        .output()
        .expect("run node tests/browser/chat.mjs");
    let (out, err) = (
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr),
    );
    assert!(
        run.status.success(),
        "the browser test failed:\n{out}{err}\n---- wasmdo dev log ----\n{}",
        host.log()
    );
    assert!(
        out.contains("two browsers chatted through the app"),
        "{out}"
    );
}

#[test]
fn members_chat_through_sockets_the_worker_passed_on_and_the_room_keeps_its_history() {
    let host = DevHost::start("");
    let ip = "127.0.10.1";

    let (status, page, content_type) = host.get("/");
    assert_eq!(status, 200);
    assert_eq!(content_type.as_deref(), Some("text/html; charset=utf-8"));
    assert!(page.contains("<title>Chat</title>"), "{page}");
    assert_eq!(host.history("lobby"), Vec::<String>::new());

    let (mut ann, history) = host.join("lobby", "ann", ip, &["ann"]);
    assert!(history.is_empty());
    let (mut bob, _) = host.join("lobby", "bob", ip, &["ann", "bob"]);
    ann.sees_join("bob", &["ann", "bob"]);

    ann.say("hello bob");
    let first = ann.sees_message("ann", "hello bob");
    assert_eq!(bob.sees_message("ann", "hello bob"), first);
    bob.say("   ");
    assert!(
        bob.receive("error")["error"]
            .as_str()
            .unwrap()
            .contains("1–1000")
    );
    bob.say("hi ann");
    let second = bob.sees_message("bob", "hi ann");
    assert_eq!(ann.sees_message("bob", "hi ann"), second);
    assert!(second > first, "message times increase: {first}, {second}");

    assert_eq!(host.history("lobby"), ["ann: hello bob", "bob: hi ann"]);
    // another room is another object
    assert_eq!(host.history("other"), Vec::<String>::new());

    bob.leave();
    ann.sees_leave("bob", &["ann"]);
    let (mut cy, history) = host.join("lobby", "cy", ip, &["ann", "cy"]);
    assert_eq!(history, ["ann: hello bob", "bob: hi ann"]);
    ann.sees_join("cy", &["ann", "cy"]);
    cy.say("hey");
    ann.sees_message("cy", "hey");
    cy.sees_message("cy", "hey");

    // what the Worker and the room refuse
    assert_eq!(host.get("/nowhere").0, 404);
    assert_eq!(host.get("/api/rooms/no%20spaces/history").0, 400);
    assert_eq!(host.get("/api/rooms/lobby/websocket").0, 426);
    match host.try_join("lobby", "", ip) {
        Err(tungstenite::Error::Http(response)) => assert_eq!(response.status(), 400),
        Err(e) => panic!("a join without a name: {e}"),
        Ok(_) => panic!("a join without a name was accepted"),
    }
}

#[test]
fn the_rate_limiter_refuses_joins_from_one_address_past_its_bucket() {
    let host = DevHost::start("");
    // wrangler.toml: RATE_LIMIT = { joins = 20, per_seconds = 60 }: 20 at once, then one more
    // every 3 s. The joins below take far less than 3 s each, so the bucket runs dry.
    let mut joined = Vec::new();
    let refused = loop {
        assert!(joined.len() < 40, "40 joins from one address, none refused");
        match host.try_join("busy", &format!("m{}", joined.len()), "127.0.11.1") {
            Ok(ws) => joined.push(ws),
            Err(tungstenite::Error::Http(response)) => break response,
            Err(e) => panic!("join {}: {e}; log:\n{}", joined.len(), host.log()),
        }
    };
    assert_eq!(refused.status(), 429);
    assert!(joined.len() >= 20, "refused after {} joins", joined.len());
    let retry_after: u64 = refused.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=3).contains(&retry_after), "Retry-After: {retry_after}");
    let body = String::from_utf8_lossy(refused.body().as_deref().unwrap_or_default()).to_string();
    assert!(body.contains("too many joins"), "{body}");
    // another address has a bucket of its own
    host.join("calm", "other", "127.0.11.2", &["other"]);
}

#[test]
fn a_room_hibernates_with_its_members_connected_and_chats_on_when_woken() {
    let host = DevHost::start("[limits]\nhibernate-after-ms = 300\n");
    let ip = "127.0.12.1";
    let (mut ann, _) = host.join("sleepy", "ann", ip, &["ann"]);
    let (mut bob, _) = host.join("sleepy", "bob", ip, &["ann", "bob"]);
    ann.sees_join("bob", &["ann", "bob"]);
    ann.say("before");
    let before = ann.sees_message("ann", "before");
    bob.sees_message("ann", "before");

    // the room is the only object holding sockets: it alone hibernates, sockets kept open
    host.wait_for("the room to hibernate", || {
        host.metric("wasmdo_hibernations_total") >= 1
    });
    assert_eq!(host.metric("wasmdo_websockets_open"), 2);

    // a message wakes it: its attachments (names) and history survived, and a new message's
    // time follows the stored ones though the instance's memory was lost
    bob.say("after");
    let after = bob.sees_message("bob", "after");
    assert_eq!(ann.sees_message("bob", "after"), after);
    assert!(after > before, "{before}, {after}");

    host.wait_for("the room to hibernate again", || {
        host.metric("wasmdo_hibernations_total") >= 2
    });
    let (mut cy, history) = host.join("sleepy", "cy", ip, &["ann", "bob", "cy"]);
    assert_eq!(history, ["ann: before", "bob: after"]);
    ann.sees_join("cy", &["ann", "bob", "cy"]);
    bob.sees_join("cy", &["ann", "bob", "cy"]);
    cy.say("morning");
    for member in [&mut ann, &mut bob, &mut cy] {
        member.sees_message("cy", "morning");
    }
    assert_eq!(
        host.history("sleepy"),
        ["ann: before", "bob: after", "cy: morning"]
    );
}

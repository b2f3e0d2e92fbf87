//! The examples behave as the README says.

use serde_json::json;
use std::time::Duration;

use wasmdo_test_artifacts::{
    EXAMPLE_BATCHER, EXAMPLE_BOOKING, EXAMPLE_CHAT_JS, EXAMPLE_CHATROOM, EXAMPLE_CHATROOM_JS,
    EXAMPLE_COUNTER, EXAMPLE_COUNTER_JS, EXAMPLE_MODERATOR_PY, EXAMPLE_RATE_LIMITER_JS,
    EXAMPLE_ROOM_JS,
};

use crate::harness::{TestHost, cli};

#[test]
fn counter_counts_per_object_and_survives_a_crash() {
    let mut host = TestHost::start();
    host.deploy("counter", EXAMPLE_COUNTER).expect(201);
    assert_eq!(host.call("counter", "alice", "increment", json!([5])), 5);
    assert_eq!(host.call("counter", "alice", "increment", json!([5])), 10);
    assert_eq!(host.call("counter", "bob", "increment", json!([1])), 1);
    host.crash_and_restart();
    assert_eq!(host.call("counter", "alice", "get", json!([])), 10);
    assert_eq!(host.call("counter", "bob", "get", json!([])), 1);
    let text = host.request("GET", "/objects/counter/alice/", b"");
    assert_eq!(text.status, 200);
    assert!(text.text.contains("10"), "{}", text.text);
    // past the largest s64 the increment is refused, and the count stays what it was
    host.call("counter", "carol", "increment", json!([i64::MAX]));
    host.rpc("counter", "carol", "increment", json!([1]))
        .expect_error(500, "Trap");
    assert_eq!(host.call("counter", "carol", "get", json!([])), i64::MAX);
}

#[test]
fn booking_refuses_double_booking() {
    let host = TestHost::with_config("[classes.booking.env]\nSEATS = \"10\"\n");
    host.deploy("booking", EXAMPLE_BOOKING).expect(201);
    host.call("booking", "flight-1", "book", json!([3, "ann"]));
    let refused = host
        .rpc("booking", "flight-1", "book", json!([3, "bob"]))
        .expect(422);
    assert_eq!(refused["kind"], "MethodError");
    assert!(refused["value"].to_string().contains("ann"), "{refused}");
    host.rpc("booking", "flight-1", "book", json!([11, "bob"]))
        .expect(422);
    let seats = host.call("booking", "flight-1", "seats", json!([]));
    let seats = seats.as_array().unwrap();
    assert_eq!(seats.len(), 10);
    let taken: Vec<_> = seats.iter().filter(|s| !s["passenger"].is_null()).collect();
    assert_eq!(taken.len(), 1);
    assert_eq!(taken[0]["number"], 3);
    assert_eq!(taken[0]["passenger"], "ann");
    host.call("booking", "flight-1", "cancel", json!([3]));
    host.call("booking", "flight-1", "book", json!([3, "bob"]));
    // another flight is another object
    host.call("booking", "flight-2", "book", json!([3, "cy"]));
}

#[test]
fn batcher_flushes_what_was_queued_on_its_alarm() {
    let host = TestHost::with_config("[classes.batcher.env]\nFLUSH_AFTER_MS = \"300\"\n");
    host.deploy("batcher", EXAMPLE_BATCHER).expect(201);
    assert_eq!(host.call("batcher", "orders", "add", json!(["a"])), 1);
    assert_eq!(host.call("batcher", "orders", "add", json!(["b"])), 2);
    assert_eq!(
        host.call("batcher", "orders", "pending", json!([])),
        json!(["a", "b"])
    );
    let batches = || host.call("batcher", "orders", "batches", json!([]));
    host.wait_for(Duration::from_secs(20), "the first flush", || {
        batches().as_array().unwrap().len() == 1
    });
    assert_eq!(batches()[0]["items"], json!(["a", "b"]));
    assert_eq!(
        host.call("batcher", "orders", "pending", json!([])),
        json!([])
    );
    // an item too big to queue is the method's error; nothing is queued
    let message = host
        .rpc(
            "batcher",
            "orders",
            "add",
            json!(["x".repeat(3 * 1024 * 1024)]),
        )
        .expect_error(422, "MethodError");
    assert!(message.contains("value-too-large"), "{message}");
    assert_eq!(
        host.call("batcher", "orders", "pending", json!([])),
        json!([])
    );
    host.call("batcher", "orders", "add", json!(["c"]));
    host.wait_for(Duration::from_secs(20), "the second flush", || {
        batches().as_array().unwrap().len() == 2
    });
    assert_eq!(batches()[1]["number"], 2);
    assert_eq!(batches()[1]["items"], json!(["c"]));
}

#[test]
fn counter_js_works_as_its_readme_says() {
    let mut host = TestHost::start();
    host.deploy("counter", EXAMPLE_COUNTER_JS).expect(201);
    let (ok, out, err) = cli(&[
        "call",
        "--server",
        &host.url,
        "counter/alice",
        "increment",
        "[5]",
    ]);
    assert!(ok, "{err}");
    assert_eq!(out.trim(), "5");
    assert_eq!(host.call("counter", "alice", "increment", json!([])), 6);
    assert_eq!(host.call("counter", "bob", "get", json!([])), 0);
    let hello = host.request("GET", "/objects/counter/alice/x", b"");
    assert_eq!((hello.status, hello.text.as_str()), (200, "hello /x"));
    host.crash_and_restart();
    assert_eq!(host.call("counter", "alice", "get", json!([])), 6);
}

#[test]
fn chat_js_keeps_its_log_in_sql() {
    let host = TestHost::start();
    host.deploy("chat", EXAMPLE_CHAT_JS).expect(201);
    let first = host.call("chat", "lobby", "post", json!(["ann", "hello"]));
    assert_eq!(first["id"], 1);
    assert_eq!(first["author"], "ann");
    assert!(first["sent-at"].as_f64().unwrap() > 1.7e12, "{first}");
    host.call("chat", "lobby", "post", json!(["bob", "hi ann"]));
    let posted = host.request(
        "POST",
        "/objects/chat/lobby/messages",
        br#"{"author":"cy","text":"over HTTP"}"#,
    );
    assert_eq!(posted.status, 201, "{}", posted.text);
    assert_eq!(posted.body["id"], 3);
    let history = host.call("chat", "lobby", "history", json!([2]));
    let texts: Vec<_> = history
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["text"].clone())
        .collect();
    assert_eq!(texts, [json!("hi ann"), json!("over HTTP")]);
    let before = host.call("chat", "lobby", "history", json!([null, 2]));
    assert_eq!(before.as_array().unwrap().len(), 1);
    assert_eq!(
        host.call("chat", "lobby", "stats", json!([])),
        json!({"messages": 3, "authors": ["ann", "bob", "cy"]})
    );
    let listed = host.request("GET", "/objects/chat/lobby/messages?limit=1", b"");
    assert_eq!(listed.body.as_array().unwrap().len(), 1, "{}", listed.text);
    let refused = host
        .rpc("chat", "lobby", "post", json!(["", "x"]))
        .expect(422);
    assert_eq!(refused["value"]["name"], "TypeError");
    let bad = host.request(
        "POST",
        "/objects/chat/lobby/messages",
        format!(r#"{{"author":"dan","text":"{}"}}"#, "x".repeat(2001)).as_bytes(),
    );
    assert_eq!(bad.status, 400, "{}", bad.text);
    // other rooms are separate objects
    assert_eq!(
        host.call("chat", "other", "stats", json!([]))["messages"],
        0
    );
}

/// One app in three languages: the room (TypeScript) asks the author's moderator (Python)
/// before it posts, and numbers messages with the global counter (Rust); the moderator asks the
/// author's rate limiter (TypeScript) and counts refusals in the counter (Rust).
const ROOM_CONFIG: &str = r#"
[classes.limiter]
env = { CAPACITY = "3", REFILL_MS = "600000" }

[classes.moderator]
bindings = { LIMITER = "limiter", COUNTER = "counter" }

[classes.room]
bindings = { COUNTER = "counter", MODERATOR = "moderator" }
"#;

fn room_host() -> TestHost {
    let host = TestHost::with_config(ROOM_CONFIG);
    host.deploy("counter", EXAMPLE_COUNTER).expect(201);
    host.deploy("limiter", EXAMPLE_RATE_LIMITER_JS).expect(201);
    host.deploy("moderator", EXAMPLE_MODERATOR_PY).expect(201);
    host.deploy("room", EXAMPLE_ROOM_JS).expect(201);
    host
}

#[test]
fn room_js_moderator_py_limiter_js_and_counter_rust_are_one_app() {
    let host = room_host();
    for (i, remaining) in [2, 1, 0].into_iter().enumerate() {
        let posted = host.call("room", "lobby", "post", json!(["ann", format!("hi {i}")]));
        assert_eq!(posted, json!({"seq": i + 1, "remaining": remaining}));
    }
    // ann's bucket (the limiter object `ann`, asked by the moderator `ann`) is empty: the room
    // throws, and writes nothing
    let refused = host
        .rpc("room", "lobby", "post", json!(["ann", "one more"]))
        .expect(422);
    assert_eq!(refused["value"]["name"], "RateLimited", "{refused}");
    // a banned word: refused by the moderator before the limiter is asked
    let rejected = host
        .rpc("room", "garden", "post", json!(["bob", "cheap spam here"]))
        .expect(422);
    assert_eq!(rejected["value"]["name"], "Rejected", "{rejected}");
    // another author in another room: its own bucket, the same global counter (Rust)
    let posted = host.call("room", "garden", "post", json!(["bob", "hello"]));
    assert_eq!(posted["seq"], 4);
    assert_eq!(host.call("counter", "messages", "get", json!([])), 4);
    assert_eq!(host.call("room", "garden", "total", json!([])), 4);
    let history = host.call("room", "lobby", "history", json!([]));
    assert_eq!(history.as_array().unwrap().len(), 3, "{history}");
    assert_eq!(
        history[2],
        json!({"seq": 3, "author": "ann", "text": "hi 2"})
    );
    assert_eq!(host.call("limiter", "ann", "remaining", json!([])), 0);
    assert_eq!(host.call("limiter", "bob", "remaining", json!([])), 2);
    // the moderator's refusals: its own storage and the Rust counter `refusals`
    assert_eq!(host.call("moderator", "ann", "refusals", json!([])), 1);
    assert_eq!(host.call("counter", "refusals", "get", json!([])), 2);
    let page = host.request("GET", "/objects/moderator/bob/", b"");
    assert_eq!(page.text, "1 refused here, 2 in all");
    // the moderator's typed method, as HTTP clients see it
    assert_eq!(
        host.call("moderator", "carol", "review", json!(["hello"])),
        json!({"allowed": true, "reason": "ok", "remaining": 2})
    );
}

#[test]
fn the_polyglot_stubs_are_what_bindgen_generates() {
    for (class, wasm, binding) in [("counter", EXAMPLE_COUNTER, "COUNTER")] {
        for (lang, ext) in [("wit-stub", "wit"), ("ts-stub", "d.ts")] {
            crate::harness::assert_bindgen_output(
                &[class, "--wasm", wasm, "--lang", lang, "--binding", binding],
                &format!("examples/room-js/stubs/{class}.{ext}"),
            );
        }
    }
    for (class, wasm, binding) in [
        ("counter", EXAMPLE_COUNTER, "COUNTER"),
        ("limiter", EXAMPLE_RATE_LIMITER_JS, "LIMITER"),
    ] {
        crate::harness::assert_bindgen_output(
            &[
                class,
                "--wasm",
                wasm,
                "--lang",
                "py-stub",
                "--binding",
                binding,
            ],
            &format!("examples/moderator-py/src/stubs/{class}.py"),
        );
    }
}

#[test]
fn the_rust_room_client_posts_through_its_generated_client() {
    let host = room_host();
    let dir = std::path::Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/clients/room-rust"
    ));
    // its typed client is what bindgen generates for the room class today
    crate::harness::assert_bindgen_output(
        &["room", "--lang", "rust", "--server", &host.url],
        "examples/clients/room-rust/src/room.rs",
    );
    let run = |author: &str| {
        let out = std::process::Command::new(env!("CARGO"))
            .current_dir(dir)
            // shared with the bindgen tests' client: serde and ureq compile once
            .env(
                "CARGO_TARGET_DIR",
                std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("bindgen-rust-client"),
            )
            .env_remove("RUSTFLAGS")
            .env_remove("CARGO_ENCODED_RUSTFLAGS")
            .args(["run", "--quiet", "--offline", "--locked", "--"])
            .args([host.url.as_str(), "lobby", author, "hello from Rust"])
            .output()
            .expect("cargo run");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    };
    let first = run("rusty");
    assert!(
        first.starts_with("posted #1 (2 more allowed now)\n"),
        "{first}"
    );
    assert!(first.contains("#1 rusty: hello from Rust\n"), "{first}");
    assert!(
        first.trim_end().ends_with("1 messages in all rooms"),
        "{first}"
    );
    run("rusty");
    run("rusty");
    // the room's own error arrives typed: the thrown RateLimited's name and message
    let refused = run("rusty");
    assert!(
        refused.starts_with("refused: RateLimited: rusty is posting too fast"),
        "{refused}"
    );
}

type ChatClient = tungstenite::WebSocket<tungstenite::stream::MaybeTlsStream<std::net::TcpStream>>;

/// A member of the chat room `room` of `class` (examples/chatroom, chatroom-js), named `name`.
fn join(host: &TestHost, class: &str, room: &str, name: &str) -> ChatClient {
    let url = format!(
        "{}/objects/{class}/{room}/join?name={name}",
        host.url.replace("http://", "ws://")
    );
    let (mut ws, _) = tungstenite::connect(url).expect("join");
    if let tungstenite::stream::MaybeTlsStream::Plain(s) = ws.get_mut() {
        s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .unwrap();
    }
    ws
}

fn next_event(ws: &mut ChatClient) -> serde_json::Value {
    loop {
        if let tungstenite::Message::Text(t) = ws.read().expect("an event") {
            return serde_json::from_str(t.as_str()).expect("JSON");
        }
    }
}

/// A host serving the chat room `component` as `class` (hibernating after 300 ms): ann and bob
/// join the room `lobby`, ann says hello, both hear it, and the room then hibernates.
fn chat_until_hibernated(class: &str, component: &str) -> (TestHost, ChatClient, ChatClient) {
    let host = TestHost::with_config("[limits]\nhibernate-after-ms = 300\n");
    host.deploy(class, component).expect(201);
    let mut ann = join(&host, class, "lobby", "ann");
    assert_eq!(
        next_event(&mut ann),
        json!({"type": "history", "messages": []})
    );
    assert_eq!(
        next_event(&mut ann),
        json!({"type": "joined", "name": "ann"})
    );
    let mut bob = join(&host, class, "lobby", "bob");
    assert_eq!(next_event(&mut bob)["type"], "history");
    assert_eq!(
        next_event(&mut ann),
        json!({"type": "joined", "name": "bob"})
    );
    assert_eq!(
        next_event(&mut bob),
        json!({"type": "joined", "name": "bob"})
    );
    ann.send(tungstenite::Message::text("hello bob")).unwrap();
    let expected = json!({"type": "message", "seq": 1, "author": "ann", "text": "hello bob"});
    assert_eq!(next_event(&mut ann), expected);
    assert_eq!(next_event(&mut bob), expected);
    assert_eq!(
        host.call(class, "lobby", "online", json!([])),
        json!(["ann", "bob"])
    );
    host.wait_for(std::time::Duration::from_secs(10), "hibernation", || {
        host.metric("wasmdo_hibernations_total") >= 1 && host.metric("wasmdo_live_objects") == 0
    });
    (host, ann, bob)
}

#[test]
fn chatroom_broadcasts_keeps_history_and_names_across_hibernation() {
    let (host, mut ann, mut bob) = chat_until_hibernated("chatroom", EXAMPLE_CHATROOM);
    // the room hibernated; the names live on in the sockets' attachments
    bob.send(tungstenite::Message::text("hi ann, after a nap"))
        .unwrap();
    let expected =
        json!({"type": "message", "seq": 2, "author": "bob", "text": "hi ann, after a nap"});
    assert_eq!(next_event(&mut ann), expected);
    assert_eq!(next_event(&mut bob), expected);

    // leaving is announced; a newcomer gets the history from SQL
    drop(bob);
    assert_eq!(next_event(&mut ann), json!({"type": "left", "name": "bob"}));
    let mut cy = join(&host, "chatroom", "lobby", "cy");
    let history = next_event(&mut cy);
    assert_eq!(
        history["messages"].as_array().unwrap().len(),
        2,
        "{history}"
    );
    assert_eq!(
        host.call("chatroom", "lobby", "history", json!([1])),
        json!([{"seq": 2, "author": "bob", "text": "hi ann, after a nap"}])
    );
    // a bad name is refused with HTTP, not accepted
    let refused = tungstenite::connect(format!(
        "{}/objects/chatroom/lobby/join?name=",
        host.url.replace("http://", "ws://")
    ));
    assert!(
        matches!(refused, Err(tungstenite::Error::Http(ref r)) if r.status() == 400),
        "{refused:?}"
    );
}

#[test]
fn chatroom_js_runs_the_cloudflare_hibernation_api() {
    let (host, mut ann, mut bob) = chat_until_hibernated("chatroom-js", EXAMPLE_CHATROOM_JS);
    let activations = host.metric("wasmdo_activations_total");
    // the auto-response set in the constructor is answered without waking the room
    bob.send(tungstenite::Message::text("ping")).unwrap();
    loop {
        if let tungstenite::Message::Text(t) = bob.read().unwrap() {
            assert_eq!(t.as_str(), "pong");
            break;
        }
    }
    assert_eq!(host.metric("wasmdo_activations_total"), activations);
    // a message wakes it; the attachments kept the names
    bob.send(tungstenite::Message::text("back")).unwrap();
    let expected = json!({"type": "message", "seq": 2, "author": "bob", "text": "back"});
    assert_eq!(next_event(&mut ann), expected);
    assert_eq!(next_event(&mut bob), expected);
    drop(bob);
    assert_eq!(next_event(&mut ann), json!({"type": "left", "name": "bob"}));
    assert_eq!(
        host.call("chatroom-js", "lobby", "history", json!([5]))
            .as_array()
            .unwrap()
            .len(),
        2
    );
}

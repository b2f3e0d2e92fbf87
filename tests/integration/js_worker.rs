//! A JavaScript entry Worker through the real host: `wasmdo dev` on the project
//! `tests/fixtures-js/worker-project` (a Worker and two Durable Object classes in one module),
//! checking guest-sdk-js's Worker mode end to end: module rules (Text, Data), string and JSON
//! vars, the full URL, `stub.fetch` (with `new Request(url, request)` and the request passed on
//! unchanged), typed RPC from the Worker, fetch-only bindings, `ctx.waitUntil`, a WebSocket
//! passed on to a room, a thrown error, and concurrent requests over pooled Worker instances.

use std::path::Path;

use serde_json::json;
use tungstenite::Message;

use crate::harness::ws_text;
use crate::wrangler::{self, Dev, copy_project, get, get_json};

/// A POST with a header the rooms echo back.
fn post(url: &str, body: &str) -> (u16, String) {
    wrangler::post(url, body, &[("x-test", "kept")])
}

#[test]
fn a_javascript_worker_project_runs_whole_under_wasmdo_dev() {
    let from = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures-js/worker-project");
    let project = copy_project(&from, "js-worker");
    let dev = Dev::start(&project);
    assert_eq!(dev.name, "worker-fixture");
    let url = dev.url.clone();

    // module rules: a Text module from the project's rule and the default one, a Data module
    let (status, notes) = get(&format!("{url}/notes"));
    assert_eq!(status, 200);
    assert!(notes.starts_with("# Notes"), "{notes}");
    let (status, page) = get(&format!("{url}/"));
    assert_eq!(status, 200);
    assert!(
        page.contains("<html") || page.contains("<!doctype"),
        "{page}"
    );
    assert_eq!(
        get_json(&format!("{url}/table")),
        json!({"isArrayBuffer": true, "bytes": [0, 1, 2, 254, 255]})
    );

    // vars: a string, and a table that is JSON-parsed
    assert_eq!(
        get_json(&format!("{url}/env")),
        json!({"greeting": "hello from the worker", "limits": {"joins": 3, "burst": true}, "joins": "number"})
    );
    // the Worker sees the URL the client used
    let seen = get_json(&format!("{url}/url?x=1"));
    assert_eq!(seen["url"], format!("{url}/url?x=1"));

    // stub.fetch with Cloudflare's `new Request(url, request)`: the room sees its own path, the
    // method, headers and body come along; its status and headers come back
    let (status, body) = post(&format!("{url}/rooms/lobby/info?q=2"), "hi there");
    assert_eq!(status, 200, "{body}");
    let info: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(info["path"], "/info");
    assert_eq!(info["query"], "?q=2");
    assert_eq!(info["method"], "POST");
    assert_eq!(info["body"], "hi there");
    assert_eq!(info["test"], "kept");
    assert_eq!(info["greeting"], "hello from the worker");
    // reached through `getByName`, the room knows its name (as on Cloudflare)
    assert_eq!(info["name"], "lobby");
    // the request passed on unchanged: the room sees the Worker's URL
    let info = get_json(&format!("{url}/direct/lobby/info"));
    assert_eq!(info["url"], format!("{url}/direct/lobby/info"));
    let (status, body) = post(&format!("{url}/rooms/lobby/post"), "first post");
    assert_eq!((status, body.as_str()), (201, r#"{"posts":1}"#));
    let (status, _) = get(&format!("{url}/rooms/lobby/empty"));
    assert_eq!(status, 204);
    let (status, body) = get(&format!("{url}/rooms/lobby/nowhere"));
    assert_eq!(
        (status, body.as_str()),
        (404, "no route /nowhere in the room")
    );

    // typed RPC from the Worker (wasmdo dev gave ROOMS its stub package)
    assert_eq!(
        get_json(&format!("{url}/call/lobby")),
        json!(["first post"])
    );
    // COUNTERS has no stub package: a method is called by name (dynamic RPC), and Counter has
    // no `increment`
    let (status, body) = get(&format!("{url}/counter-method/c"));
    assert_eq!(status, 501, "{body}");
    assert!(
        body.starts_with(
            "CallError: bad-call: class `Counter` has no method `increment`; its methods are: (none) (typed), and its public methods by name"
        ),
        "{body}"
    );

    // ctx.waitUntil: the increment is done before the 202 is sent
    let (status, body) = get(&format!("{url}/count/c"));
    assert_eq!((status, body.as_str()), (200, "1"));
    let (status, body) = get(&format!("{url}/later/c"));
    assert_eq!((status, body.as_str()), (202, "queued"));
    let (_, body) = get(&format!("{url}/count/c"));
    assert_eq!(body, "3");

    // a WebSocket passed on by the Worker: two members of one room talk through it
    let ws_url = format!("{}/rooms/hall/join", url.replace("http://", "ws://"));
    let (mut ann, response) = tungstenite::connect(format!("{ws_url}?name=ann"))
        .unwrap_or_else(|e| panic!("ann joins: {e}; log:\n{}", dev.log()));
    assert_eq!(response.status(), 101);
    let (mut bob, _) = tungstenite::connect(format!("{ws_url}?name=bob")).expect("bob joins");
    ann.send(Message::text("hello")).unwrap();
    assert_eq!(ws_text(&mut ann), "ann: hello");
    assert_eq!(ws_text(&mut bob), "ann: hello");
    bob.send(Message::text("hi ann")).unwrap();
    assert_eq!(ws_text(&mut ann), "bob: hi ann");

    // a thrown error is a 500 JSON error; the next request is served
    let (status, body) = get(&format!("{url}/throw"));
    assert_eq!(status, 500, "{body}");
    let error: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(error["kind"], "FetchFailed", "{body}");
    assert!(
        error["error"]
            .as_str()
            .unwrap()
            .contains("the worker failed on purpose"),
        "{body}"
    );
    assert_eq!(
        get_json(&format!("{url}/env"))["greeting"],
        "hello from the worker"
    );

    // concurrent requests, over pooled Worker instances, all answered
    let bodies: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..12)
            .map(|i| {
                let url = &url;
                s.spawn(move || {
                    let (status, body) = post(&format!("{url}/rooms/busy{}/post", i % 3), "x");
                    assert_eq!(status, 201, "{body}");
                    body
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(bodies.len(), 12);
    for room in 0..3 {
        let posts = get_json(&format!("{url}/call/busy{room}"));
        assert_eq!(posts.as_array().map(Vec::len), Some(4), "{posts}");
    }
}

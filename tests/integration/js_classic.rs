//! Cloudflare JavaScript as published projects write it, unmodified, through the real host:
//! `wasmdo dev` on `tests/fixtures-js/classic-project` — plain untyped JavaScript without JSDoc,
//! a classic class (`constructor(state, env)`, no `extends DurableObject`), a class reaching
//! `DurableObject` through the project's own base class, and untyped helper methods, which the
//! build names as not RPC methods instead of failing on them.

use std::path::Path;

use serde_json::json;

use crate::wrangler::{self, Dev, copy_project, get, get_json};

/// `POST url` → (status, the JSON reply).
fn post(url: &str, body: &str) -> (u16, serde_json::Value) {
    let (status, text) = wrangler::post(url, body, &[]);
    (
        status,
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}")),
    )
}

#[test]
fn untyped_classic_and_inherited_classes_build_and_run_under_wasmdo_dev() {
    let from = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures-js/classic-project");
    let project = copy_project(&from, "js-classic");
    let dev = Dev::start(&project);
    let url = dev.url.clone();

    // the classic class: its state, its storage, its id's name
    assert_eq!(
        get(&format!("{url}/counter/a/increment")),
        (200, "count 1 for a".to_owned())
    );
    assert_eq!(
        get(&format!("{url}/counter/a/increment")),
        (200, "count 2 for a".to_owned())
    );
    assert_eq!(
        get(&format!("{url}/counter/b/")),
        (200, "count 0 for b".to_owned())
    );

    // the inherited class: the base's constructor and helper ran
    assert_eq!(
        get_json(&format!("{url}/room/lobby/")),
        json!({"visits": 1, "joined": 1})
    );
    assert_eq!(
        get_json(&format!("{url}/room/lobby/")),
        json!({"visits": 2, "joined": 2})
    );

    // dynamic RPC from the Worker to the untyped methods: values arrive as they were sent, a
    // thrown error as itself, an unknown method (or any method of a classic class) as bad-call
    assert_eq!(
        get_json(&format!("{url}/dynamic/lobby")),
        json!({
            "stats": {
                "since": 5, "when": "1970-01-01T00:00:00.000Z", "tags": ["a", "b"],
                "nothing": null, "missing": true, "big": "100000000000000000000", "name": "renamed"
            },
            "stubId": true,
            "byNameId": true,
            "fail": "RangeError: nope",
            "nope": "CallError bad-call",
            "classic": "bad-call",
        })
    );

    // and over HTTP: JSON arguments, the result as JSON (a Date as its ISO string, a Set as an
    // array, a bigint as its decimal string, undefined left out)
    assert_eq!(
        post(&format!("{url}/rpc/Room/hall/stats"), "[7]"),
        (
            200,
            json!({
                "since": 7, "when": "1970-01-01T00:00:00.000Z", "tags": ["a", "b"],
                "nothing": null, "big": "100000000000000000000", "name": null
            })
        )
    );
    let (status, error) = post(&format!("{url}/rpc/Room/hall/fail"), "[]");
    assert_eq!(
        (status, &error["kind"]),
        (422, &json!("MethodError")),
        "{error}"
    );
    assert!(error["error"].as_str().unwrap().contains("nope"), "{error}");
    let (status, error) = post(&format!("{url}/rpc/Room/hall/nope"), "[]");
    assert_eq!(
        (status, &error["kind"]),
        (404, &json!("UnknownMethod")),
        "{error}"
    );
    let (status, error) = post(
        &format!("{url}/rpc/Room/hall/stats"),
        "{\"not\": \"a list\"}",
    );
    assert_eq!(
        (status, &error["kind"]),
        (400, &json!("InvalidArgument")),
        "{error}"
    );
    let (status, _) = post(&format!("{url}/rpc/Counter/a/fetch"), "[]");
    assert_eq!(status, 404);

    // the analysis said what it found, and why the untyped methods are not RPC methods (also
    // when the builds come from the cache)
    let log = dev.log();
    for expected in [
        "[Counter] Counter is a plain class (constructor(state, env))",
        "[Room] `handle` is not an RPC method: parameter `socket` of Room.handle has no type",
        "[Room] `rename` is not an RPC method",
    ] {
        assert!(
            log.contains(expected),
            "{expected:?} not in the log:\n{log}"
        );
    }
}

//! Cloudflare JavaScript as published projects write it, unmodified, through the real host:
//! `wasmdo dev` on `tests/fixtures-js/classic-project` — plain untyped JavaScript without JSDoc,
//! a classic class (`constructor(state, env)`, no `extends DurableObject`), a class reaching
//! `DurableObject` through the project's own base class, and untyped helper methods, which the
//! build names as not RPC methods instead of failing on them.

use std::path::Path;

use serde_json::json;

use crate::wrangler::{Dev, copy_project, get, get_json};

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

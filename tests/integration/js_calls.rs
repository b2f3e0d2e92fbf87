//! A TypeScript object calling another (`tests/fixtures-js/caller` → `tests/fixtures-js/
//! runtime.ts`, bound as PROBE) through `env.PROBE`: Cloudflare's namespace API over the host's
//! typed stubs, values in componentize-js's mapping, thrown errors and call errors as the caller
//! catches them, and the committed stub files current.

use serde_json::json;
use wasmdo_test_artifacts::{JS_CALLER, JS_RUNTIME};

use crate::harness::TestHost;

pub(crate) const COVERS: () = ();

const CONFIG: &str =
    "[limits]\nfuel-per-event = 1000000000\n\n[classes.caller.bindings]\nPROBE = \"probe\"\n";

fn host() -> TestHost {
    let host = TestHost::with_config(CONFIG);
    host.deploy("probe", JS_RUNTIME).expect(201);
    host.deploy("caller", JS_CALLER).expect(201);
    host
}

#[test]
fn a_javascript_object_calls_another_through_env() {
    let host = host();
    assert_eq!(
        host.call("caller", "c", "defaults", json!(["p", "x", 3])),
        "x,3,undefined"
    );
    assert_eq!(
        host.call("caller", "c", "defaults", json!(["p", "y"])),
        "y,7,undefined"
    );
    assert_eq!(
        host.call("caller", "c", "echo-everything", json!(["p"])),
        "equal"
    );
    // a method whose values a typed call would change is called by name: null stays null, a
    // snake_case field keeps its name, an absent optional stays absent
    assert_eq!(
        host.call("caller", "c", "echo-exactly", json!(["p"])),
        json!(["true", "7", "false"])
    );
    // idFromName/getByName/get agree; the object learns its name only when reached by name
    // (`whoami` returns `[id, name ?? null]`: the caller sees that null, not undefined)
    assert_eq!(
        host.call("caller", "c", "ids", json!(["p"])),
        json!(["true", "p", "true", "true", "null"])
    );
}

#[test]
fn stubs_are_cheap_until_called() {
    let host = host();
    host.call("caller", "c", "defaults", json!(["p", "warm"]));
    let activations = host.metric("wasmdo_activations_total");
    assert_eq!(host.call("caller", "c", "make-stubs", json!([50])), 150);
    // 150 ids and stubs, and not one object activated for them
    assert_eq!(host.metric("wasmdo_activations_total"), activations);
    assert_eq!(host.metric("wasmdo_live_objects"), 2);
}

#[test]
fn thrown_errors_and_call_errors_reach_the_javascript_caller() {
    let host = host();
    assert_eq!(
        host.call("caller", "c", "failures", json!(["p"])),
        json!([
            "TypeError: wrong type of thing",
            "QuotaError: over quota",
            "Error: a bare string"
        ])
    );
    let errors = host.call("caller", "c", "call-errors", json!(["p"]));
    let errors: Vec<&str> = errors
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e.as_str().unwrap())
        .collect();
    assert!(
        errors[0].starts_with("CallError invalid-id remote=false retryable=false: invalid-id: "),
        "{errors:?}"
    );
    assert!(errors[1].starts_with("CallError invalid-id "), "{errors:?}");
    assert!(
        errors[2].starts_with(
            "CallError callee-failed remote=true retryable=false: callee-failed: CpuLimitExceeded: "
        ),
        "{errors:?}"
    );
    // the callee recovered from its runaway loop
    assert_eq!(
        host.call("caller", "c", "defaults", json!(["p", "z", 1])),
        "z,1,undefined"
    );
}

#[test]
fn the_committed_stubs_are_what_bindgen_generates() {
    for (lang, file) in [("wit-stub", "probe.wit"), ("ts-stub", "probe.d.ts")] {
        crate::harness::assert_bindgen_output(
            &[
                "probe",
                "--wasm",
                JS_RUNTIME,
                "--lang",
                lang,
                "--binding",
                "PROBE",
            ],
            &format!("tests/fixtures-js/caller/stubs/{file}"),
        );
    }
}

//! Object-to-object calls through typed stubs (`tests/fixtures/rpc_calls`): component values
//! cross without JSON, the callee's own errors stay typed, call errors are data, a call cycle
//! fails at once, and bindings are checked at deploy.

use serde_json::json;
use wasmdo_test_artifacts::{EXAMPLE_BATCHER, EXAMPLE_COUNTER, RPC_CALLS, RPC_TYPES};

use crate::harness::TestHost;

pub(crate) const COVERS: () = ();

const CONFIG: &str = "[classes.calls.bindings]\ntypes = \"types\"\npeer = \"calls\"\n";

fn host() -> TestHost {
    let host = TestHost::with_config(CONFIG);
    host.deploy("types", RPC_TYPES).expect(201);
    host.deploy("calls", RPC_CALLS).expect(201);
    host
}

#[test]
fn an_object_calls_another_with_typed_values_and_errors() {
    let host = host();
    assert_eq!(host.call("calls", "a", "add-remote", json!(["x", 2, 3])), 5);
    let person = json!({"name": "ann", "age": null, "home": {"x": 1, "y": -2}});
    assert_eq!(
        host.call("calls", "a", "echo-remote", json!(["x", person])),
        person
    );
    // the callee's own `result::err` arrives typed, as a value of its variant
    assert_eq!(
        host.call("calls", "a", "fail-remote", json!(["x"])),
        "method error: bad-input: not ok"
    );
    assert!(host.metric("wasmdo_events_total") >= 6);
}

#[test]
fn call_errors_are_data_for_the_caller() {
    let host = host();
    let err = host.rpc("calls", "a", "bad-id", json!([])).expect(422);
    assert!(
        err["value"].as_str().unwrap().starts_with("invalid-id: "),
        "{err}"
    );
    let err = host
        .rpc("calls", "a", "unknown-binding", json!([]))
        .expect(422);
    assert!(
        err["value"]
            .as_str()
            .unwrap()
            .contains("has no binding `nope`; add it under [classes.calls.bindings]"),
        "{err}"
    );
}

#[test]
fn a_stub_stale_after_its_callee_was_redeployed_is_a_bad_call_naming_the_fix() {
    let host = host();
    assert_eq!(host.call("calls", "a", "add-remote", json!(["x", 2, 3])), 5);
    // `types` is redeployed as a class whose `add` takes a string: the caller's stub for `add`
    // (two s32s) no longer fits, and the call says so instead of passing wrong values
    host.deploy("types", EXAMPLE_BATCHER).expect(201);
    let err = host
        .rpc("calls", "a", "add-remote", json!(["x", 2, 3]))
        .expect(422);
    let message = err["value"].as_str().unwrap();
    assert!(message.starts_with("bad-call: "), "{err}");
    assert!(
        message.contains("does not match the method's signature")
            && message.contains("regenerate the stub"),
        "{err}"
    );
    // the caller goes on
    assert_eq!(host.call("calls", "a", "ping", json!([])), "pong");
}

#[test]
fn a_callee_that_traps_is_a_call_error_and_the_caller_goes_on() {
    let host = host();
    let err = host
        .rpc("calls", "a", "boom-remote", json!(["b"]))
        .expect(422);
    let message = err["value"].as_str().unwrap();
    assert!(message.starts_with("callee-failed: Trap: "), "{err}");
    assert!(message.contains("boom on purpose"), "{err}");
    // the caller's instance was not disturbed, and the callee recovers on a fresh instance
    assert_eq!(host.call("calls", "a", "ping", json!([])), "pong");
    assert_eq!(host.call("calls", "a", "bounce", json!(["", "b"])), "pong");
}

#[test]
fn a_call_cycle_fails_at_once_instead_of_deadlocking() {
    let host = host();
    // a → b → c: no cycle
    assert_eq!(host.call("calls", "a", "bounce", json!(["b", "c"])), "pong");
    // a → b → a: b's call back into a (waiting on b) is refused
    let err = host
        .rpc("calls", "a", "bounce", json!(["b", "a"]))
        .expect(422);
    let message = err["value"].as_str().unwrap();
    assert!(message.starts_with("cycle: calls/"), "{err}");
    assert!(
        message.contains("would re-enter an object that is waiting"),
        "{err}"
    );
    // nothing is stuck: both objects answer
    assert_eq!(host.call("calls", "a", "ping", json!([])), "pong");
    assert_eq!(host.call("calls", "b", "ping", json!([])), "pong");
}

#[test]
fn bindings_are_checked_at_deploy() {
    // no binding for the stubs the component imports
    let host = TestHost::start();
    host.deploy("types", RPC_TYPES).expect(201);
    let err = host
        .deploy("calls", RPC_CALLS)
        .expect_error(400, "InvalidComponent");
    assert!(err.contains("`binding:"), "{err}");
    assert!(err.contains("[classes.calls.bindings]"), "{err}");

    // a binding to a class that is not deployed
    let host = TestHost::with_config(CONFIG);
    let err = host
        .deploy("calls", RPC_CALLS)
        .expect_error(400, "InvalidComponent");
    assert!(
        err.contains("to class `types`, which is not deployed"),
        "{err}"
    );

    // a stub that does not fit the bound class
    let host = TestHost::with_config(CONFIG);
    host.deploy("types", EXAMPLE_COUNTER).expect(201);
    let err = host
        .deploy("calls", RPC_CALLS)
        .expect_error(400, "InvalidComponent");
    assert!(err.contains("does not fit class `types`"), "{err}");
}

#[test]
fn every_wit_type_crosses_between_objects_unchanged() {
    let host = host();
    let checked = host.call("calls", "a", "round-trip-all", json!(["x"]));
    let checked: Vec<&str> = checked
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    // every method of the `types` class but `fail` and `add` (typed errors and arithmetic are
    // covered above)
    assert_eq!(checked.len(), 25, "{checked:?}");
    for method in [
        "echo_u64",
        "echo_char",
        "echo_flags",
        "echo_variant",
        "nothing",
    ] {
        assert!(checked.contains(&method), "{checked:?}");
    }
}

#[test]
fn the_fixtures_stubs_are_what_bindgen_generates() {
    let host = host();
    for (class, binding, file) in [
        ("types", "types", "binding-types/types.wit"),
        ("calls", "peer", "binding-peer/caller.wit"),
    ] {
        crate::harness::assert_bindgen_output(
            &[
                class,
                "--lang",
                "wit-stub",
                "--binding",
                binding,
                "--server",
                &host.url,
            ],
            &format!("tests/fixtures/rpc_calls/wit/deps/{file}"),
        );
    }
}

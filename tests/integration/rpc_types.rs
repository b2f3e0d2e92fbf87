//! Typed RPC over HTTP: every WIT type round-trips through JSON, mistakes get precise 400s, a
//! method's own error is a 422 carrying the typed error value, and deploy lists the signatures.

use serde_json::{Value, json};
use wasmdo_test_artifacts::RPC_TYPES;

use crate::harness::TestHost;

pub(crate) const COVERS: () = ();

fn host() -> TestHost {
    let host = TestHost::start();
    host.deploy("types", RPC_TYPES).expect(201);
    host
}

#[test]
fn every_wit_type_round_trips_through_json() {
    let host = host();
    let cases: &[(&str, Value)] = &[
        ("echo-bool", json!(true)),
        ("echo-u8", json!(255)),
        ("echo-u16", json!(65535)),
        ("echo-u32", json!(4294967295u32)),
        ("echo-u64", json!(18446744073709551615u64)),
        ("echo-s8", json!(-128)),
        ("echo-s16", json!(-32768)),
        ("echo-s32", json!(-2147483648i64)),
        ("echo-s64", json!(-9223372036854775808i64)),
        ("echo-f32", json!(1.5)),
        ("echo-f64", json!(-2.25e100)),
        ("echo-f64", json!("NaN")),
        ("echo-f64", json!("-Infinity")),
        ("echo-char", json!("é")),
        ("echo-string", json!("hello, 世界")),
        ("echo-bytes", json!([0, 1, 255])),
        ("echo-strings", json!(["a", "", "c"])),
        (
            "echo-record",
            json!({"name": "ann", "age": 33, "home": {"x": 1, "y": -2}}),
        ),
        (
            "echo-record",
            json!({"name": "bob", "age": null, "home": {"x": 0, "y": 0}}),
        ),
        ("echo-tuple", json!([7, "seven", false])),
        ("echo-variant", json!({"tag": "circle", "val": 2.5})),
        (
            "echo-variant",
            json!({"tag": "rectangle", "val": {"x": 3, "y": 4}}),
        ),
        ("echo-variant", json!({"tag": "empty"})),
        ("echo-enum", json!("green")),
        ("echo-flags", json!(["read", "execute"])),
        ("echo-flags", json!([])),
        ("echo-option", json!(null)),
        ("echo-option", json!(42)),
        ("echo-option-option", json!({"tag": "none"})),
        ("echo-option-option", json!({"tag": "some", "val": null})),
        ("echo-option-option", json!({"tag": "some", "val": 9})),
    ];
    for (method, value) in cases {
        let got = host.call("types", "o", method, json!([value]));
        assert_eq!(&got, value, "{method}");
    }
    // a u64 too big for JavaScript may be sent as a string; the reply is a number
    assert_eq!(
        host.call("types", "o", "echo-u64", json!(["18446744073709551615"])),
        json!(18446744073709551615u64)
    );
    // a missing option field is none
    assert_eq!(
        host.call(
            "types",
            "o",
            "echo-record",
            json!([{"name": "c", "home": {"x": 1, "y": 1}}])
        ),
        json!({"name": "c", "age": null, "home": {"x": 1, "y": 1}})
    );
    assert_eq!(host.call("types", "o", "add", json!([2, 3])), 5);
    assert_eq!(host.call("types", "o", "nothing", json!([])), json!(null));
    assert_eq!(
        host.request("POST", "/rpc/types/o/nothing", b"")
            .expect(200),
        json!(null)
    );
}

#[test]
fn results_are_unwrapped_at_the_top_level_and_errors_are_422() {
    let host = host();
    assert_eq!(
        host.call(
            "types",
            "o",
            "echo-result",
            json!([{"tag": "ok", "val": 7}])
        ),
        7
    );
    let err = host
        .rpc(
            "types",
            "o",
            "echo-result",
            json!([{"tag": "err", "val": "nope"}]),
        )
        .expect(422);
    assert_eq!(err["kind"], "MethodError");
    assert_eq!(err["value"], "nope");
    assert_eq!(
        host.call("types", "o", "echo-result-unit", json!([{"tag": "ok"}])),
        json!(null)
    );
    assert_eq!(host.call("types", "o", "fail", json!([true])), "ok");
    let err = host.rpc("types", "o", "fail", json!([false])).expect(422);
    assert_eq!(err["value"], json!({"tag": "bad-input", "val": "not ok"}));
}

#[test]
fn wrong_arguments_are_400_with_a_precise_message() {
    let host = host();
    let bad = |method: &str, args: Value| {
        host.rpc("types", "o", method, args)
            .expect_error(400, "InvalidArgument")
    };
    let msg = bad("add", json!([1]));
    assert!(
        msg.contains("expected 2 arguments (a: s32, b: s32), got 1"),
        "{msg}"
    );
    let msg = bad("echo-u8", json!([256]));
    assert!(msg.contains("u8") && msg.contains("256"), "{msg}");
    let msg = bad("echo-u32", json!([1.5]));
    assert!(msg.contains("integer"), "{msg}");
    let msg = bad("echo-string", json!([5]));
    assert!(msg.contains("expected string"), "{msg}");
    let msg = bad("echo-record", json!([{"name": "x", "home": {"x": 1}}]));
    assert!(msg.contains("/home") && msg.contains('y'), "{msg}");
    let msg = bad(
        "echo-record",
        json!([{"name": "x", "home": {"x": 1, "y": 2}, "extra": 1}]),
    );
    assert!(msg.contains("extra"), "{msg}");
    let msg = bad("echo-enum", json!(["purple"]));
    assert!(msg.contains("red") && msg.contains("purple"), "{msg}");
    let msg = bad("echo-variant", json!([{"tag": "hexagon"}]));
    assert!(msg.contains("circle"), "{msg}");
    let msg = bad("echo-flags", json!([["read", "fly"]]));
    assert!(msg.contains("fly"), "{msg}");
    let msg = bad("echo-char", json!(["ab"]));
    assert!(msg.contains("char"), "{msg}");
    let msg = bad("echo-tuple", json!([[1, "a"]]));
    assert!(msg.contains('3'), "{msg}");
    let msg = bad("add", json!({"a": 1}));
    assert!(msg.contains("array"), "{msg}");
    // none of this disturbed the object
    assert_eq!(host.call("types", "o", "add", json!([1, 1])), 2);
}

#[test]
fn deploy_lists_methods_with_their_wit_signatures() {
    let host = TestHost::start();
    let class = host.deploy("types", RPC_TYPES).expect(201);
    assert_eq!(class["class"], "types");
    assert_eq!(class["version"], 1);
    assert_eq!(class["hash"].as_str().unwrap().len(), 64);
    let methods = class["methods"].as_array().unwrap();
    let signature = |name: &str| {
        methods
            .iter()
            .find(|m| m["name"] == name)
            .unwrap_or_else(|| panic!("{name} missing from {methods:?}"))["signature"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(signature("add"), "func(a: s32, b: s32) -> s32");
    assert_eq!(signature("nothing"), "func()");
    assert_eq!(
        signature("echo-option"),
        "func(v: option<u32>) -> option<u32>"
    );
    assert_eq!(
        signature("echo-enum"),
        "func(v: enum { red, green, blue }) -> enum { red, green, blue }"
    );
    assert!(signature("fail").starts_with("func(ok: bool) -> result<string, variant {"));
    assert_eq!(methods.len(), 27);
    assert!(
        methods
            .iter()
            .all(|m| m["interface"] == "fixture:rpc-types/types")
    );
    // qualified names work too
    assert_eq!(host.call("types", "o", "types.add", json!([1, 2])), 3);
}

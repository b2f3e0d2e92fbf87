//! Internals the fuzz targets (`fuzz/`) drive directly, behind the `fuzzing` feature: not an
//! API, and never built into the `wasmdo` binary.

use serde_json::Value;
use wasmtime::component::types::Type;

use crate::rpc::json;

/// The JSON ⇄ WIT mapping's properties for one type and one JSON value: converting never
/// panics, and a value that converts comes back as JSON that converts again to the same JSON
/// (the mapping is a bijection on what it accepts). Panics when a property fails.
pub fn json_round_trip(ty: &Type, input: &Value) {
    let _ = json::check_rpc_type(ty);
    let Ok(args) = json::args_from_json(
        &[("value".to_owned(), ty.clone())],
        &Value::Array(vec![input.clone()]),
    ) else {
        return;
    };
    let val = &args[0];
    let encoded = json::val_to_json(ty, val);
    let again = json::args_from_json(
        &[("value".to_owned(), ty.clone())],
        &Value::Array(vec![encoded.clone()]),
    )
    .unwrap_or_else(|e| panic!("the JSON a value encodes to does not decode: {encoded}: {e:?}"));
    let re_encoded = json::val_to_json(ty, &again[0]);
    assert_eq!(
        encoded, re_encoded,
        "encoding is not stable for input {input}"
    );
}

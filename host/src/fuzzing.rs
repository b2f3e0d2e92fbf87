//! Internals the fuzz targets (`fuzz/`) drive directly, behind the `fuzzing` feature: not an
//! API, and never built into the `wasmdo` binary.

use serde_json::Value;
use wasmtime::component::types::Type;

use crate::rpc::json;

/// The JSON ⇄ WIT mapping's properties for one type and one JSON value: see
/// [`json_text_round_trip`], for the arguments `[input]`.
pub fn json_round_trip(ty: &Type, input: &Value) {
    json_text_round_trip(ty, Value::Array(vec![input.clone()]).to_string().as_bytes());
}

/// The JSON ⇄ WIT mapping's properties for one type and the text of a request body (any bytes:
/// repeated keys, `val` before `tag`, broken JSON): decoding never panics, and a value that
/// decodes comes back as JSON that decodes again to the same JSON (the mapping is a bijection on
/// what it accepts). Panics when a property fails.
pub fn json_text_round_trip(ty: &Type, body: &[u8]) {
    let _ = json::check_rpc_type(ty);
    let params = [("value".to_owned(), ty.clone())];
    let Ok(args) = json::args_from_json(&params, body) else {
        return;
    };
    let encoded = json::val_to_json(ty, &args[0]);
    let text = Value::Array(vec![encoded.clone()]).to_string();
    let again = json::args_from_json(&params, text.as_bytes()).unwrap_or_else(|e| {
        panic!("the JSON a value encodes to does not decode: {encoded}: {e:?}")
    });
    let re_encoded = json::val_to_json(ty, &again[0]);
    assert_eq!(
        encoded,
        re_encoded,
        "encoding is not stable for input {}",
        String::from_utf8_lossy(body)
    );
}

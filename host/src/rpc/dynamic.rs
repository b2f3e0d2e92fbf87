//! Dynamic RPC: methods called by name, with values in the SDKs' storage encoding instead of
//! WIT types — Cloudflare's RPC, for methods that have no typed WIT function (plain JavaScript,
//! `any`, …). The callee exports `wasmdo:object/dynamic-handler`; other objects reach it through
//! `dynamic.call`, HTTP clients through `POST /rpc/{class}/{name}/{method}`.
//!
//! The encoding (guest-sdk-js/runtime/values.js, shared by every SDK's storage): a value JSON
//! holds exactly is its UTF-8 JSON text; anything else is byte `0x01` and a tagged JSON tree. A
//! JSON array of arguments is therefore already an encoded list of arguments, and what a method
//! returns reaches an HTTP client as JSON: as itself when JSON holds it, otherwise as
//! [`encoded_to_json`] renders it.

use std::borrow::Cow;

use base64::Engine as _;
use serde_json::{Map, Value};
use wasmtime::component::{ComponentType, Lift};

use crate::bindings::dynamic_api::Thrown;
use crate::error::ObjectError;

/// The first byte of an encoded value that JSON could not hold.
const EXTENDED: u8 = 0x01;

/// Why a dynamic call produced no value (`dynamic-handler.dynamic-error`).
#[derive(ComponentType, Lift, Debug)]
#[component(variant)]
pub(crate) enum DynamicError {
    #[component(name = "unknown-method")]
    UnknownMethod(#[expect(dead_code, reason = "the host answers its own UnknownMethod")] String),
    #[component(name = "bad-arguments")]
    BadArguments(String),
    #[component(name = "threw")]
    Threw(Thrown),
}

/// What a thrown error looks like to an HTTP client: `{"name": …, "message": …}`, as a typed
/// JavaScript method's `js-error`.
pub(crate) fn thrown_json(thrown: &Thrown) -> Value {
    serde_json::json!({ "name": thrown.name, "message": thrown.message })
}

/// An encoded value as JSON for an HTTP client. JSON text is itself; a tagged value is what
/// `JSON.stringify` would write, except where that would lose the value: `undefined` is `null`
/// in an array and left out of an object, `NaN`/`±Infinity` are strings (as in the typed JSON
/// mapping), a bigint is its decimal string, a `Date` its ISO 8601 string, a `Map` an array of
/// `[key, value]` pairs, a `Set` an array, an `ArrayBuffer` or typed array an array of its
/// bytes, a `RegExp` its `/source/flags` string, an `Error` `{"name", "message"}`.
pub(crate) fn encoded_to_json(bytes: &[u8]) -> Result<Value, ObjectError> {
    let broken = |why: String| {
        ObjectError::Trap(format!(
            "the method's result is not an encoded value ({why})"
        ))
    };
    match bytes.split_first() {
        Some((&EXTENDED, tree)) => {
            let tree: Value = serde_json::from_slice(tree).map_err(|e| broken(e.to_string()))?;
            Ok(untag(&tree).map_err(broken)?.unwrap_or(Value::Null))
        }
        _ => serde_json::from_slice(bytes).map_err(|e| broken(e.to_string())),
    }
}

/// Encoded values as JSON text: text JSON already holds is itself (not parsed and printed
/// again); a tagged value is rendered by [`encoded_to_json`].
pub(crate) fn encoded_to_json_text(bytes: &[u8]) -> Result<Cow<'_, [u8]>, ObjectError> {
    if bytes.first() != Some(&EXTENDED) {
        return Ok(Cow::Borrowed(bytes));
    }
    let value = encoded_to_json(bytes)?;
    serde_json::to_vec(&value)
        .map(Cow::Owned)
        .map_err(|e| ObjectError::internal_from("an encoded value", e))
}

/// One tagged value as JSON; `None` for `undefined`.
fn untag(tree: &Value) -> Result<Option<Value>, String> {
    let Value::Array(items) = tree else {
        // a string, finite number, boolean or null is itself
        return Ok(Some(tree.clone()));
    };
    let tag = items.first().and_then(Value::as_str).unwrap_or_default();
    let arg = |i: usize| {
        items
            .get(i)
            .ok_or_else(|| format!("`{tag}` without its value"))
    };
    Ok(Some(match tag {
        "u" => return Ok(None),
        "a" | "s" => Value::Array(
            as_array(arg(1)?)?
                .iter()
                .map(|item| untag(item).map(|v| v.unwrap_or(Value::Null)))
                .collect::<Result<_, _>>()?,
        ),
        "o" => {
            let Value::Object(fields) = arg(1)? else {
                return Err("an object that is not one".to_owned());
            };
            let mut out = Map::new();
            for (key, value) in fields {
                if let Some(value) = untag(value)? {
                    out.insert(key.clone(), value);
                }
            }
            Value::Object(out)
        }
        "m" => Value::Array(
            as_array(arg(1)?)?
                .iter()
                .map(|pair| match pair.as_array().map(Vec::as_slice) {
                    Some([key, value]) => Ok(Value::Array(vec![
                        untag(key)?.unwrap_or(Value::Null),
                        untag(value)?.unwrap_or(Value::Null),
                    ])),
                    _ => Err("a map entry that is not a pair".to_owned()),
                })
                .collect::<Result<_, _>>()?,
        ),
        "n" => match arg(1)?.as_str() {
            Some("-0") => Value::from(0),
            Some(special) => Value::String(special.to_owned()),
            None => return Err("a number form that is not a string".to_owned()),
        },
        "i" => arg(1)?.clone(),
        "d" => match arg(1)?.as_f64() {
            Some(ms) => Value::String(iso_8601(ms)),
            None => Value::Null,
        },
        "b" => bytes_json(arg(1)?)?,
        "t" => bytes_json(arg(2)?)?,
        "r" => Value::String(format!(
            "/{}/{}",
            arg(1)?.as_str().unwrap_or_default(),
            arg(2)?.as_str().unwrap_or_default()
        )),
        "e" => serde_json::json!({ "name": arg(1)?, "message": arg(2)? }),
        "x" => return untag(arg(1)?),
        other => return Err(format!("unknown tag `{other}`")),
    }))
}

fn as_array(value: &Value) -> Result<&Vec<Value>, String> {
    value
        .as_array()
        .ok_or_else(|| "a list that is not an array".to_owned())
}

fn bytes_json(base64: &Value) -> Result<Value, String> {
    let text = base64.as_str().ok_or("bytes that are not base64 text")?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(|e| format!("bytes that are not base64: {e}"))?;
    Ok(Value::Array(bytes.into_iter().map(Value::from).collect()))
}

/// `Date.prototype.toISOString` of an epoch time in milliseconds.
fn iso_8601(ms: f64) -> String {
    #[expect(
        clippy::cast_possible_truncation,
        reason = "a Date is within ±8.64e15 ms"
    )]
    let ms = ms as i64;
    let (days, ms_of_day) = (ms.div_euclid(86_400_000), ms.rem_euclid(86_400_000));
    // days since 1970-01-01 → civil date (Howard Hinnant's algorithm)
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let (h, m, s, milli) = (
        ms_of_day / 3_600_000,
        ms_of_day / 60_000 % 60,
        ms_of_day / 1000 % 60,
        ms_of_day % 1000,
    );
    let year = if (0..=9999).contains(&year) {
        format!("{year:04}")
    } else {
        format!("{}{:06}", if year < 0 { '-' } else { '+' }, year.abs())
    };
    format!("{year}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}.{milli:03}Z")
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::encoded_to_json;

    fn extended(tree: serde_json::Value) -> Vec<u8> {
        let mut bytes = vec![0x01];
        bytes.extend(tree.to_string().into_bytes());
        bytes
    }

    #[test]
    fn json_text_is_itself() {
        assert_eq!(
            encoded_to_json(br#"{"a":[1,"x",null]}"#).unwrap(),
            json!({"a": [1, "x", null]})
        );
    }

    #[test]
    fn tagged_values_render_as_json() {
        let tree = json!(["o", {
            "gone": ["u"],
            "list": ["a", [1, ["u"], ["n", "NaN"]]],
            "big": ["i", "12345678901234567890"],
            "when": ["d", 1_700_000_000_123_i64],
            "epoch": ["d", 0],
            "invalid": ["d", null],
            "map": ["m", [["k", ["s", [1, 2]]]]],
            "bytes": ["t", "Uint8Array", "AAH/"],
            "buffer": ["b", ""],
            "re": ["r", "a+", "g"],
            "err": ["e", "TypeError", "no"],
            "boxed": ["x", "s"],
            "minus-zero": ["n", "-0"],
        }]);
        assert_eq!(
            encoded_to_json(&extended(tree)).unwrap(),
            json!({
                "list": [1, null, "NaN"],
                "big": "12345678901234567890",
                "when": "2023-11-14T22:13:20.123Z",
                "epoch": "1970-01-01T00:00:00.000Z",
                "invalid": null,
                "map": [["k", [1, 2]]],
                "bytes": [0, 1, 255],
                "buffer": [],
                "re": "/a+/g",
                "err": {"name": "TypeError", "message": "no"},
                "boxed": "s",
                "minus-zero": 0,
            })
        );
        assert_eq!(
            encoded_to_json(&extended(json!(["u"]))).unwrap(),
            json!(null)
        );
    }

    #[test]
    fn broken_encodings_are_errors() {
        assert!(encoded_to_json(b"{").is_err());
        assert!(encoded_to_json(&extended(json!(["z", 1]))).is_err());
        assert!(encoded_to_json(&[0x01, b'[']).is_err());
    }
}

//! Typed RPC: a class's own exported WIT functions, called with arguments converted from JSON by
//! the function's WIT types (`json`), described by their WIT signatures (`signature`) and, for a
//! whole class, by its WIT package (`wit`).
//!
//! A method whose WIT result is `result<T, E>` is unwrapped at the top level: `ok(v)` is the reply
//! `v`, `err(e)` becomes a `MethodError` carrying `e` (HTTP 422), and the event's writes are rolled
//! back, exactly as if the method had thrown.

pub(crate) mod calls;
pub(crate) mod dynamic;
pub(crate) mod json;
pub(crate) mod signature;
pub(crate) mod wit;

use wasmtime::component::Val;
use wasmtime::component::types::Type;

/// A method's outcome as the caller sees it.
pub(crate) enum Reply {
    Ok(serde_json::Value),
    MethodError(serde_json::Value),
}

/// Unwraps a top-level `result` and converts the value (of WIT type `ty`) to JSON.
pub(crate) fn reply(value: Option<Val>, ty: Option<&Type>) -> Reply {
    let to_json = |v: Option<Box<Val>>, ty: Option<Type>| match (v, ty) {
        (Some(v), Some(ty)) => json::val_to_json(&ty, &v),
        _ => serde_json::Value::Null,
    };
    match (value, ty) {
        (Some(Val::Result(Ok(v))), Some(Type::Result(r))) => Reply::Ok(to_json(v, r.ok())),
        (Some(Val::Result(Err(e))), Some(Type::Result(r))) => {
            Reply::MethodError(to_json(e, r.err()))
        }
        (Some(v), Some(ty)) => Reply::Ok(json::val_to_json(ty, &v)),
        _ => Reply::Ok(serde_json::Value::Null),
    }
}

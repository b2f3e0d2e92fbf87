//! Calls to other objects, through the class's bindings (`[classes.<class>.bindings]` in
//! `wasmdo.toml`, as Cloudflare's Durable Object namespace bindings).
//!
//! `wasmdo bindgen <class> --lang rust-stub --binding <NAME> -o src/<class>.rs` writes a module
//! with the bound class's types and its stub: `Counter::get_by_name("global")` (or
//! `Counter::new(&id)` with an id from this module) addresses one object without activating it,
//! and each method call is an event of that object, returning `Result<_, CallError>` around the
//! method's own result:
//!
//! ```ignore
//! mod counter; // generated
//!
//! fn bump() -> Result<i64, String> {
//!     let global = counter::Counter::get_by_name("global");
//!     Ok(global.increment(5)?) // CallError → String with `?`
//! }
//! ```
//!
//! [`call`] calls a method by name (dynamic RPC: a JavaScript class's untyped methods), with
//! the arguments as JSON text.
//!
//! [`fetch`] sends an HTTP request to another object's `fetch` (Cloudflare's `stub.fetch`). A
//! class answering a WebSocket upgrade can pass it on: when the callee accepts, its response has
//! status 101, and returning that response connects the client to the callee (a Worker in front
//! of a chat room does this).
//!
//! A call cannot re-enter an object that is waiting in the same call chain (A → B → A): it fails
//! at once with [`CallError::Cycle`]. Have B return what A needs instead of calling A back.

pub use crate::bindings::wasmdo::object::objects::{
    CallError, Failure, id_from_name, id_from_string, new_unique_id,
};

pub use crate::bindings::wasmdo::object::dynamic::Thrown;

use crate::bindings::wasmdo::object::{dynamic, http_types, objects};
use crate::{Request, Response};

/// Sends `request` to the `fetch` of the object `id` (from [`id_from_name`], …) of the class
/// bound as `binding`. The request goes as given: set its `path` and `query` to what the callee
/// should see. A WebSocket upgrade this object is handling may be passed on (keep its headers):
/// return the callee's 101 response to connect the client to the callee.
pub fn fetch(binding: &str, id: &str, request: &Request) -> Result<Response, CallError> {
    let request = http_types::Request {
        method: request.method.clone(),
        url: request.url.clone(),
        path: request.path.clone(),
        query: request.query.clone(),
        headers: request.headers.clone(),
        body: request.body.clone(),
    };
    let response = objects::fetch(binding, id, &request)?;
    Ok(Response {
        status: response.status,
        headers: response.headers,
        body: response.body,
    })
}

/// Dynamic RPC (Cloudflare's RPC by name, for methods without a typed WIT function — a
/// JavaScript class's untyped methods): calls `method` on the object `id` of the class bound as
/// `binding` with `args_json`, the JSON text of the argument list (`[5, "x"]`). `Ok(Ok(bytes))`
/// is the encoded value the method returned — its UTF-8 JSON text when JSON holds it, else byte
/// `0x01` and a tagged tree (guest-sdk-js/runtime/values.js) — and `Ok(Err(thrown))` what it
/// threw (its writes rolled back). A callee without dynamic methods, or without that method,
/// answers [`CallError::BadCall`].
pub fn call(
    binding: &str,
    id: &str,
    method: &str,
    args_json: &str,
) -> Result<Result<Vec<u8>, Thrown>, CallError> {
    dynamic::call(binding, id, method, args_json.as_bytes())
}

impl CallError {
    /// The case's name as written in WIT (`invalid-id`, `callee-failed`, …).
    pub fn kind(&self) -> &'static str {
        match self {
            CallError::UnknownBinding(_) => "unknown-binding",
            CallError::InvalidId(_) => "invalid-id",
            CallError::BadCall(_) => "bad-call",
            CallError::Cycle(_) => "cycle",
            CallError::CalleeFailed(_) => "callee-failed",
            CallError::Unavailable(_) => "unavailable",
        }
    }
}

impl CallError {
    /// `<kind>: <message>`, e.g. `cycle: calls/… would re-enter an object that is waiting …`
    /// (the generated `Display` prints the Rust value instead).
    pub fn describe(&self) -> String {
        let kind = self.kind();
        match self {
            CallError::UnknownBinding(m)
            | CallError::InvalidId(m)
            | CallError::BadCall(m)
            | CallError::Cycle(m)
            | CallError::Unavailable(m) => format!("{kind}: {m}"),
            CallError::CalleeFailed(failure) => {
                format!("{kind}: {}: {}", failure.kind, failure.message)
            }
        }
    }
}

/// For `?` in handlers that return `Result<_, String>`: the [`CallError::describe`] text.
impl From<CallError> for String {
    fn from(e: CallError) -> String {
        e.describe()
    }
}

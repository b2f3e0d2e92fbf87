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

use crate::bindings::wasmdo::object::{http_types, objects};
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

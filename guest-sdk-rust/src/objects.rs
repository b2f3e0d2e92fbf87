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
//! A call cannot re-enter an object that is waiting in the same call chain (A → B → A): it fails
//! at once with [`CallError::Cycle`]. Have B return what A needs instead of calling A back.

pub use crate::bindings::wasmdo::object::objects::{
    CallError, Failure, id_from_name, id_from_string, new_unique_id,
};

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

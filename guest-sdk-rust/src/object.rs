//! Who this object is and the configuration its class was granted (the `object` import).

use crate::bindings::wasmdo::object::object as wit;

/// This object's id: 64 lowercase hex characters, stable for the object's lifetime.
pub fn id() -> String {
    wit::id()
}

/// The name the object was addressed by, or `None` when it was reached by a unique id.
pub fn name() -> Option<String> {
    wit::name()
}

/// The class (namespace) this object belongs to, as deployed.
pub fn class_name() -> String {
    wit::class_name()
}

/// The value of the class's environment variable `key` (from the host's `wasmdo.toml`), or
/// `None` when the class has no such variable. Objects never see the host's environment.
pub fn env(key: &str) -> Option<String> {
    wit::env(key)
}

/// Every environment variable of the class, sorted by key.
pub fn env_vars() -> Vec<(String, String)> {
    wit::env_vars()
}

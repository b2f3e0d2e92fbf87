//! Stub names: how a class's binding (`env.ROOMS` in a wrangler project, `bindings` in a
//! manifest) appears in WIT. The host links a class's stub imports by these names and the
//! generators (`wasmdo bindgen --lang wit-stub|rust-stub|ts-stub`, `wasmdo dev`) write them, so
//! both take them from here.

/// The name of the resource a stub interface declares: one `stub` per object reached.
pub const STUB_RESOURCE: &str = "stub";

/// A binding name as configured (`COUNTER`, `my_counter`) in its WIT form (`counter`,
/// `my-counter`).
pub fn binding_wit_name(name: &str) -> String {
    name.to_ascii_lowercase().replace('_', "-")
}

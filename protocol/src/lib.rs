//! # wasmdo-protocol
//!
//! The wire contract between a `wasmdo` host and the tools that talk to it (`wasmdo deploy
//! --project`, `wasmdo dev`, generated stubs), written once so the two sides cannot drift:
//!
//! | module | what crosses the wire |
//! |---|---|
//! | [`manifest`] | the body of `PUT /_admin/projects/{name}`: classes by component hash, the entry Worker, wrangler's `[[migrations]]` |
//! | [`error`] | every error body: `{"error": "<message>", "kind": "<Kind>"}` (plus `"value"` for a method's own error) |
//! | [`stubs`] | how a binding is named in WIT and what its stub interface declares |
//!
//! It depends on `serde` only: no runtime, no client.
//!
//! ```
//! use wasmdo_protocol::manifest::Manifest;
//!
//! let manifest: Manifest = serde_json::from_str(
//!     r#"{"name": "chat", "classes": {"Room": {"component": "ab12"}},
//!         "migrations": [{"tag": "v1", "new_sqlite_classes": ["Room"]}]}"#,
//! )
//! .unwrap();
//! assert_eq!(manifest.migrations[0].new_sqlite_classes, ["Room"]);
//! assert_eq!(wasmdo_protocol::stubs::binding_wit_name("MY_ROOMS"), "my-rooms");
//! ```

#![deny(missing_docs)]

pub mod error;
pub mod manifest;
pub mod stubs;

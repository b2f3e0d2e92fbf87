//! Paths of the guest components the host's tests deploy, built from source by this crate's
//! build script (wasmtime's `test-programs/artifacts` pattern; see `build.rs`).
//!
//! Every directory of `tests/fixtures/` with a `Cargo.toml` is a fixture named
//! `<capability>_<scenario>`; every crate of `examples/` is an example. Each is built with
//! `cargo build --release --target wasm32-wasip2` and named here by a constant holding the
//! absolute path of its `.wasm`:
//!
//! - fixtures: the upper-cased name — `tests/fixtures/rpc_types` → [`RPC_TYPES`];
//! - examples: `EXAMPLE_` + the upper-cased name — `examples/counter` → [`EXAMPLE_COUNTER`].
//!
//! [`foreach_fixture!`] (and [`foreach_example!`]) invoke a macro once per fixture, so a test
//! suite can insist that every fixture has a test:
//!
//! ```ignore
//! macro_rules! assert_fixture_has_test {
//!     ($name:ident) => {
//!         #[allow(unused_imports)]
//!         use self::$name as _; // a test module named after the fixture
//!     };
//! }
//! wasmdo_test_artifacts::foreach_fixture!(assert_fixture_has_test);
//! ```
//!
//! Building needs the `wasm32-wasip2` target (`rustup target add wasm32-wasip2`). The guests
//! build into this crate's `OUT_DIR`, never into `tests/fixtures/target` or `examples/target`.

include!(concat!(env!("OUT_DIR"), "/artifacts.rs"));

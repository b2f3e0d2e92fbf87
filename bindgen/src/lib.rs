//! Code generated from a deployed wasmdo class's WIT (as `GET /_admin/classes/{class}/wit` prints
//! it), for the `wasmdo bindgen` and `wasmdo dev` commands. Two kinds of output:
//!
//! - **Typed clients**, for an ordinary program calling objects over the host's HTTP RPC and its
//!   JSON mapping (`rpc::json`): `counter.get("alice").increment(5)` with the class's types
//!   checked by its compiler. [`typescript`] writes one self-contained module using the
//!   platform's `fetch`; [`rust()`] one module over `serde`, `serde_json` and `ureq` 3.
//! - **Stubs**, for a class calling objects of another class through a binding (Cloudflare's
//!   `DurableObjectStub`): [`wit_stub`] writes the WIT package the calling component imports,
//!   [`ts_stub`] its TypeScript types for a class built with `wasmdo-js build --binding`, and
//!   [`rust_stub`] a module for a class written with the Rust SDK, and [`py_stub`] typed
//!   Python stubs for a class built with `wasmdo-py build --binding`.
//!
//! Each takes the class's WIT and name (and, for a stub, the binding's name) and returns the
//! generated source, or an [`Error`] saying why the class cannot have one.
//!
//! ```
//! // laid out as the host prints it: one function a line, the closing brace alone
//! let wit = "package example:counter;
//!
//! interface counter {
//!   increment: func(by: s64) -> s64;
//! }
//! ";
//!
//! // the WIT package a class imports to call `counter` objects through its binding `COUNTER`
//! let stub = wasmdo_bindgen::wit_stub(wit, "counter", "COUNTER")?;
//! assert!(stub.contains("package binding:counter;"));
//! assert!(stub.contains("increment: func(by: s64) -> result<s64, call-error>;"));
//!
//! // a TypeScript client over HTTP RPC, where a 64-bit integer is a JSON number
//! let client = wasmdo_bindgen::typescript(wit, "counter")?;
//! assert!(client.contains("increment(by: number): Promise<number> {"));
//! # Ok::<(), wasmdo_bindgen::Error>(())
//! ```

#![deny(missing_docs)]

mod py;
mod rust;
mod stubs;
mod ts;

use std::collections::BTreeSet;
use std::fmt::Write as _;

use wit_parser::{PackageId, Resolve, Type, TypeDefKind};

pub use py::py_stub;
pub use rust::rust;
pub use stubs::{rust_stub, ts_stub, wit_stub};
pub use ts::typescript;
/// The name of the resource a stub interface declares: one `stub` per object reached.
pub use wasmdo_protocol::stubs::STUB_RESOURCE;

/// Why a client or stub could not be generated from a class's WIT.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The WIT did not parse, or did not resolve on its own.
    #[error("parsing the class's WIT")]
    InvalidWit {
        /// wit-parser's error.
        #[source]
        source: anyhow::Error,
    },
    /// The class uses a type its clients cannot carry over RPC (`error-context`, a resource, a
    /// future or a stream), or one without the name a declaration needs.
    #[error("{0}")]
    Unsupported(String),
    /// A stub was asked for a class whose WIT has interfaces of several packages.
    #[error("class `{class}` exports interfaces of several packages; stubs need one")]
    SeveralPackages {
        /// The class's name.
        class: String,
    },
    /// The class declares a name its stub needs for itself (`stub`, `get-by-name`).
    #[error(
        "class `{class}` declares `{name}` in interface `{interface}`, a name its stub needs; rename it"
    )]
    NameConflict {
        /// The class's name.
        class: String,
        /// The interface declaring it.
        interface: String,
        /// The name taken.
        name: String,
    },
    /// The WIT text is not laid out as wit-parser prints it, which [`wit_stub`] rewrites line
    /// by line.
    #[error("{0}")]
    UnexpectedLayout(String),
}

/// `some-name` → `SomeName`.
fn pascal(name: &str) -> String {
    name.split(['-', '_'])
        .filter(|w| !w.is_empty())
        .map(|w| {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                .unwrap_or_default()
        })
        .collect()
}

/// `some-name` → `someName`.
fn camel(name: &str) -> String {
    let p = pascal(name);
    let mut c = p.chars();
    c.next()
        .map(|f| f.to_ascii_lowercase().to_string() + c.as_str())
        .unwrap_or_default()
}

/// JavaScript reserved words a generated method or parameter name must avoid.
const RESERVED: &[&str] = &[
    "break",
    "case",
    "catch",
    "class",
    "const",
    "continue",
    "debugger",
    "default",
    "delete",
    "do",
    "else",
    "enum",
    "export",
    "extends",
    "false",
    "finally",
    "for",
    "function",
    "if",
    "import",
    "in",
    "instanceof",
    "new",
    "null",
    "return",
    "super",
    "switch",
    "this",
    "throw",
    "true",
    "try",
    "typeof",
    "var",
    "void",
    "while",
    "with",
    "yield",
    "let",
    "static",
    "await",
    "call",
    "constructor",
];

/// `some-name` → `someName`, suffixed with `_` when a JavaScript reserved word.
fn ident(name: &str) -> String {
    let c = camel(name);
    if RESERVED.contains(&c.as_str()) {
        format!("{c}_")
    } else {
        c
    }
}

/// `some-name` → `some_name`, escaped when a Rust keyword.
fn snake(name: &str) -> String {
    const KEYWORDS: &[&str] = &[
        "as", "async", "await", "break", "const", "continue", "crate", "dyn", "else", "enum",
        "extern", "false", "fn", "for", "gen", "if", "impl", "in", "let", "loop", "match", "mod",
        "move", "mut", "pub", "ref", "return", "self", "static", "struct", "super", "trait",
        "true", "type", "unsafe", "use", "where", "while", "abstract", "become", "box", "do",
        "final", "macro", "override", "priv", "try", "typeof", "unsized", "virtual", "yield",
    ];
    let s = name.replace('-', "_");
    if KEYWORDS.contains(&s.as_str()) {
        format!("r#{s}")
    } else {
        s
    }
}

/// A WIT doc comment as a JSDoc block.
fn doc(text: &str) -> String {
    let mut out = String::from("/**\n");
    for line in text.lines() {
        let _ = writeln!(out, " * {line}");
    }
    out.push_str(" */\n");
    out
}

/// A class's WIT (as `GET /_admin/classes/{class}/wit` prints it), parsed; the second value is
/// its own package.
fn parse_class(wit: &str, class: &str) -> Result<(Resolve, PackageId), Error> {
    let mut resolve = Resolve::new();
    let main = resolve
        .push_str(format!("{class}.wit"), wit)
        .map_err(|source| Error::InvalidWit { source })?;
    Ok((resolve, main))
}

/// What a client method gets back: a top-level `result<T, E>` is unwrapped (its `err` is the
/// method's own error); anything else is the value itself.
enum Outcome<'a> {
    Value(Option<&'a Type>),
    Result {
        ok: Option<&'a Type>,
        err: Option<&'a Type>,
    },
}

/// One RPC method of a class, in the order clients list them (the class's own package first).
struct ClassMethod<'a> {
    /// The function's WIT name.
    name: &'a str,
    /// Its interface's name, when an earlier interface has a function of the same name: the
    /// route is then `interface.name`, and the client method is prefixed with it.
    qualifier: Option<String>,
    func: &'a wit_parser::Function,
    outcome: Outcome<'a>,
}

impl ClassMethod<'_> {
    /// The method's name in the RPC route.
    fn route(&self) -> String {
        match &self.qualifier {
            Some(iface) => format!("{iface}.{}", self.name),
            None => self.name.to_owned(),
        }
    }
}

/// Every function of every interface of the class, as [`ClassMethod`]s.
fn class_methods(resolve: &Resolve, main: PackageId) -> Vec<ClassMethod<'_>> {
    let mut packages: Vec<_> = resolve.packages.iter().map(|(id, _)| id).collect();
    packages.sort_by_key(|p| *p != main);
    let mut seen = BTreeSet::new();
    let mut methods = Vec::new();
    for package in packages {
        for iface_id in resolve.packages[package].interfaces.values() {
            let iface = &resolve.interfaces[*iface_id];
            for (name, func) in &iface.functions {
                let outcome = match &func.result {
                    Some(Type::Id(id)) => match &resolve.types[*id].kind {
                        TypeDefKind::Result(r) => Outcome::Result {
                            ok: r.ok.as_ref(),
                            err: r.err.as_ref(),
                        },
                        _ => Outcome::Value(func.result.as_ref()),
                    },
                    other => Outcome::Value(other.as_ref()),
                };
                let qualifier =
                    (!seen.insert(name.as_str())).then(|| iface.name.clone().unwrap_or_default());
                methods.push(ClassMethod {
                    name,
                    qualifier,
                    func,
                    outcome,
                });
            }
        }
    }
    methods
}

/// Whether JSON `null` is a value of `ty`: an option written as `null`/value, which is one
/// whose payload is not itself null-able (jco's rule; otherwise it is tagged).
fn nullable(resolve: &Resolve, ty: &Type) -> bool {
    match ty {
        Type::Id(id) => match &resolve.types[*id].kind {
            TypeDefKind::Option(inner) => !nullable(resolve, inner),
            TypeDefKind::Type(t) => nullable(resolve, t),
            _ => false,
        },
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use std::error::Error as _;

    use super::*;

    #[test]
    fn names_follow_each_language() {
        assert_eq!(pascal("slow-ish_mode"), "SlowIshMode");
        assert_eq!(camel("get-by-name"), "getByName");
        assert_eq!(ident("class"), "class_");
        assert_eq!(ident("new-item"), "newItem");
        assert_eq!(snake("get-by-name"), "get_by_name");
        assert_eq!(snake("type"), "r#type");
        assert_eq!(doc("One.\nTwo."), "/**\n * One.\n * Two.\n */\n");
    }

    #[test]
    fn a_function_named_as_an_earlier_one_is_qualified_by_its_interface() {
        let wit = "package example:two;\n\ninterface a {\n  f: func() -> result<u8, string>;\n}\n\ninterface b {\n  f: func(x: u8);\n}\n";
        let (resolve, main) = parse_class(wit, "two").unwrap();
        let methods = class_methods(&resolve, main);
        let routes: Vec<String> = methods.iter().map(ClassMethod::route).collect();
        assert_eq!(routes, ["f", "b.f"]);
        assert!(matches!(
            methods[0].outcome,
            Outcome::Result {
                ok: Some(Type::U8),
                err: Some(Type::String)
            }
        ));
        assert!(matches!(methods[1].outcome, Outcome::Value(None)));
    }

    #[test]
    fn wit_that_does_not_parse_is_reported_with_wit_parsers_error() {
        let err = typescript("package a:b;\ninterface x { f: func( }\n", "x").unwrap_err();
        assert!(matches!(err, Error::InvalidWit { .. }), "{err:?}");
        assert_eq!(err.to_string(), "parsing the class's WIT");
        let cause = err.source().expect("wit-parser's error").to_string();
        assert!(!cause.is_empty() && cause != err.to_string(), "{cause}");
    }
}

//! Typed Python stubs ([`py_stub`]): for a Python class (guest-sdk-python) calling objects of
//! another class through a binding, a module of that class's methods with Python types —
//! records as dataclasses, enums as `Enum`s — over the SDK's calls by name.

use std::collections::{BTreeSet, HashMap};
use std::fmt::Write as _;

use wit_parser::{Resolve, Type, TypeDefKind, TypeId};

use crate::{Error, Outcome, class_methods, parse_class, pascal};

/// Python's reserved words, which a field or parameter name gets a `_` after.
const KEYWORDS: &[&str] = &[
    "False", "None", "True", "and", "as", "assert", "async", "await", "break", "class", "continue",
    "def", "del", "elif", "else", "except", "finally", "for", "from", "global", "if", "import",
    "in", "is", "lambda", "nonlocal", "not", "or", "pass", "raise", "return", "try", "while",
    "with", "yield", "self",
];

/// `some-name` → `some_name`, escaped when a Python keyword.
fn py_ident(name: &str) -> String {
    let s = name.replace('-', "_");
    if KEYWORDS.contains(&s.as_str()) {
        format!("{s}_")
    } else {
        s
    }
}

/// A Python string literal of a WIT name or identifier (ASCII: Rust's quoting is Python's).
fn lit(s: &str) -> String {
    format!("{s:?}")
}

/// The Python classes a stub module declares for the callee's records and enums, and each WIT
/// type's annotation and descriptor (the SDK's format: `wasmdo_py/analyze.py`).
struct Py<'a> {
    resolve: &'a Resolve,
    decls: String,
    /// The records and enums declared so far: their annotation and descriptor.
    declared: HashMap<TypeId, (String, String)>,
}

impl<'a> Py<'a> {
    /// `ty` as (its Python annotation, its descriptor as a Python literal).
    fn ty(&mut self, ty: &Type) -> (String, String) {
        let simple = |a: &str, k: &str| (a.to_owned(), format!("{{\"k\": \"{k}\"}}"));
        match ty {
            Type::Bool => simple("bool", "bool"),
            Type::U8
            | Type::U16
            | Type::U32
            | Type::U64
            | Type::S8
            | Type::S16
            | Type::S32
            | Type::S64 => simple("int", "s64"),
            Type::F32 | Type::F64 => simple("float", "f64"),
            Type::Char | Type::String => simple("str", "string"),
            Type::ErrorContext => simple("Any", "any"),
            Type::Id(id) => self.named(*id),
        }
    }

    fn named(&mut self, id: TypeId) -> (String, String) {
        if let Some(known) = self.declared.get(&id) {
            return known.clone();
        }
        let resolve = self.resolve;
        let def = &resolve.types[id];
        match &def.kind {
            TypeDefKind::Type(t) => self.ty(t),
            TypeDefKind::Option(t) => {
                let (a, d) = self.ty(t);
                (
                    format!("{a} | None"),
                    format!("{{\"k\": \"option\", \"of\": {d}}}"),
                )
            }
            TypeDefKind::List(Type::U8) => ("bytes".into(), "{\"k\": \"bytes\"}".into()),
            TypeDefKind::List(t) | TypeDefKind::FixedLengthList(t, _) => {
                let (a, d) = self.ty(t);
                (
                    format!("list[{a}]"),
                    format!("{{\"k\": \"list\", \"of\": {d}}}"),
                )
            }
            TypeDefKind::Tuple(t) => {
                let parts: Vec<_> = t.types.iter().map(|t| self.ty(t)).collect();
                let annotations: Vec<_> = parts.iter().map(|(a, _)| a.as_str()).collect();
                let descs: Vec<_> = parts.iter().map(|(_, d)| d.as_str()).collect();
                (
                    format!("tuple[{}]", annotations.join(", ")),
                    format!("{{\"k\": \"tuple\", \"of\": [{}]}}", descs.join(", ")),
                )
            }
            TypeDefKind::Record(r) if def.name.is_some() => {
                let wit = def.name.clone().unwrap_or_default();
                let class = pascal(&wit);
                let mut fields = Vec::new();
                let mut body = String::new();
                for f in &r.fields {
                    let (a, d) = self.ty(&f.ty);
                    let name = py_ident(&f.name);
                    let _ = writeln!(body, "    {name}: {a}");
                    fields.push(format!(
                        "{{\"name\": {}, \"wit\": {}, \"desc\": {d}}}",
                        lit(&name),
                        lit(&f.name)
                    ));
                }
                let decl = format!(
                    "@dataclass\nclass {class}:\n    \"\"\"The record `{wit}`.\"\"\"\n\n{body}\n\n"
                );
                let desc = format!(
                    "{{\"k\": \"record\", \"name\": {}, \"py\": {}, \"dict\": False, \"fields\": [{}]}}",
                    lit(&wit),
                    lit(&class),
                    fields.join(", ")
                );
                self.declare(id, &decl, class, desc)
            }
            TypeDefKind::Enum(e) if def.name.is_some() => {
                let wit = def.name.clone().unwrap_or_default();
                let class = pascal(&wit);
                let mut cases = Vec::new();
                let mut body = String::new();
                for c in &e.cases {
                    let member = c.name.replace('-', "_").to_ascii_uppercase();
                    let _ = writeln!(body, "    {member} = {}", lit(&c.name));
                    cases.push(format!(
                        "{{\"wit\": {}, \"py\": {}}}",
                        lit(&c.name),
                        lit(&member)
                    ));
                }
                let decl = format!(
                    "class {class}(Enum):\n    \"\"\"The enum `{wit}`.\"\"\"\n\n{body}\n\n"
                );
                let desc = format!(
                    "{{\"k\": \"enum\", \"name\": {}, \"py\": {}, \"cases\": [{}]}}",
                    lit(&wit),
                    lit(&class),
                    cases.join(", ")
                );
                self.declare(id, &decl, class, desc)
            }
            // variants, flags, results, maps: as the callee's plain values
            _ => ("Any".into(), "{\"k\": \"any\"}".into()),
        }
    }

    /// Declares the record or enum `id` (its class `decl`), once; its annotation and descriptor.
    fn declare(&mut self, id: TypeId, decl: &str, class: String, desc: String) -> (String, String) {
        self.decls.push_str(decl);
        self.declared.insert(id, (class.clone(), desc.clone()));
        (class, desc)
    }
}

/// Whether `ty` is the record the Python or JavaScript SDK declares for a class's raised errors
/// (`py-error`, `js-error`): such an error crosses as the callee's exception, by name.
fn is_sdk_error(resolve: &Resolve, ty: &Type) -> bool {
    matches!(ty, Type::Id(id) if matches!(resolve.types[*id].name.as_deref(), Some("py-error" | "js-error")))
}

/// A Python module for a Python class calling objects of `class` through the binding
/// `binding`: the class's records as dataclasses, its enums as `Enum`s and a stub class whose
/// methods take and return them. Build the calling class with `wasmdo-py build --binding
/// BINDING=<this module>` (or the project's `[tool.wasmdo] bindings`): `env.BINDING.get_by_name(…)`
/// then gives this stub. A method's own error (a `result`'s `err`) is raised as `MethodError`
/// with its `value` typed; what a Python or JavaScript callee raised, as that exception.
pub fn py_stub(wit: &str, class: &str, binding: &str) -> Result<String, Error> {
    let (resolve, main) = parse_class(wit, class)?;
    let mut py = Py {
        resolve: &resolve,
        decls: String::new(),
        declared: HashMap::new(),
    };
    // a JavaScript callee reads records with camelCase keys; Rust's JSON mapping and Python's
    // SDK read WIT's names
    let javascript = resolve
        .types
        .iter()
        .any(|(_, t)| t.name.as_deref() == Some("js-error"));
    let spelling = if javascript { "camel" } else { "wit" };
    let stub = format!("{}Stub", pascal(class));
    let mut methods = String::new();
    let mut seen = BTreeSet::new();
    for method in class_methods(&resolve, main) {
        let name = py_ident(method.name);
        if !seen.insert(name.clone()) {
            continue;
        }
        let func = method.func;
        let optional_from = crate::ts::optional_from(&resolve, func);
        let mut params = Vec::new();
        let mut names = Vec::new();
        let mut descs = Vec::new();
        for (i, p) in func.params.iter().enumerate() {
            let (a, d) = py.ty(&p.ty);
            let n = py_ident(&p.name);
            let default = if i >= optional_from { " = None" } else { "" };
            params.push(format!(", {n}: {a}{default}"));
            names.push(n);
            descs.push(d);
        }
        let unit = ("None".to_owned(), "{\"k\": \"unit\"}".to_owned());
        let (result, error) = match method.outcome {
            Outcome::Value(t) => (t.map_or(unit, |t| py.ty(t)), "None".to_owned()),
            Outcome::Result { ok, err } => (
                ok.map_or(unit, |t| py.ty(t)),
                match err {
                    Some(e) if !is_sdk_error(&resolve, e) => py.ty(e).1,
                    _ => "None".to_owned(),
                },
            ),
        };
        let docs = func
            .docs
            .contents
            .as_deref()
            .map(|d| {
                format!(
                    "        \"\"\"{}\"\"\"\n",
                    d.replace("\"\"\"", "'''").replace('\n', "\n        ")
                )
            })
            .unwrap_or_default();
        let _ = write!(
            methods,
            "    async def {name}(self{}) -> {}:\n{docs}        return self._typed({}, [{}], [{}], {}, {error}, {spelling:?})\n\n",
            params.concat(),
            result.0,
            lit(&method.route()),
            names.join(", "),
            descs.join(", "),
            result.1,
        );
    }
    let mut out = format!(
        "# Generated by `wasmdo bindgen {class} --lang py-stub --binding {binding}`; do not edit.\n\
         \"\"\"Typed stubs of the class `{class}` for a Python class built with\n\
         `wasmdo-py build --binding {binding}=<this file>`: `self.env.{binding}.get_by_name(\"name\")`\n\
         is a `{stub}`, whose methods take and return the types below.\n\
         \"\"\"\n\n\
         import sys\n\
         from dataclasses import dataclass\n\
         from enum import Enum\n\
         from typing import Any\n\n\
         from wasmdo_runtime.namespace import DurableObjectStub\n\
         from wasmdo_runtime.types import Types\n\n\n"
    );
    out.push_str(&py.decls);
    let _ = write!(
        out,
        "class {stub}(DurableObjectStub):\n    \"\"\"An object of class `{class}`.\"\"\"\n\n    _types = Types(sys.modules[__name__])\n\n{methods}\n\
         # what `env.{binding}` makes its stubs of\nSTUB = {stub}\n"
    );
    Ok(out.replace("\n\n\n\n", "\n\n\n").trim_end().to_owned() + "\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_enums_and_options_become_python_types() {
        let wit = "package example:shop;\n\ninterface shop {\n  record item {\n    name: string,\n    class: option<u32>,\n  }\n\n  enum size { small, extra-large }\n\n  variant problem { none-left, other(string) }\n\n  /// Adds.\n  add: func(item: item, size: size, n: option<u32>) -> result<list<item>, problem>;\n\n  clear: func();\n}\n";
        let stub = py_stub(wit, "shop", "SHOP").unwrap();
        for line in [
            "@dataclass\nclass Item:",
            "    class_: int | None",
            "class Size(Enum):",
            "    EXTRA_LARGE = \"extra-large\"",
            "class ShopStub(DurableObjectStub):",
            "    async def add(self, item: Item, size: Size, n: int | None = None) -> list[Item]:\n        \"\"\"Adds.\"\"\"",
            "{\"k\": \"any\"}, \"wit\")",
            "    async def clear(self) -> None:",
            "STUB = ShopStub",
        ] {
            assert!(stub.contains(line), "missing {line:?} in\n{stub}");
        }
    }

    #[test]
    fn a_javascript_callee_reads_camel_case_and_sdk_errors_are_raised_by_name() {
        let wit = "package js:probe;\n\ninterface probe {\n  record js-error {\n    name: string,\n    message: string,\n  }\n\n  hello: func(who: string) -> result<string, js-error>;\n}\n";
        let stub = py_stub(wit, "probe", "PROBE").unwrap();
        assert!(
            stub.contains("self._typed(\"hello\", [who], [{\"k\": \"string\"}], {\"k\": \"string\"}, None, \"camel\")"),
            "{stub}"
        );
    }
}

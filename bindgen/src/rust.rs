//! The Rust client of a class (`wasmdo bindgen CLASS --lang rust`): one module for a program
//! depending on `serde` (with `derive`), `serde_json` and `ureq` 3, with structs and enums whose
//! serde attributes match the JSON mapping of RPC over HTTP, and a blocking client; a method's
//! `err` comes back as `Error::Method(e)`, typed.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use wit_parser::{Resolve, Type, TypeDefKind, TypeId};

use crate::{Error, Outcome, class_methods, nullable, parse_class, pascal, snake};

/// The Rust types of a class's values, declared as they are first used.
struct Rs<'a> {
    resolve: &'a Resolve,
    /// Named types already declared (by TypeId), to declare each once.
    declared: BTreeSet<TypeId>,
    decls: String,
}

/// What every generated type derives.
const DERIVE: &str = "#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]";

impl Rs<'_> {
    /// The Rust type of `ty`, declaring the named types it uses.
    fn ty(&mut self, ty: &Type) -> Result<String, Error> {
        Ok(match ty {
            Type::Bool => "bool".into(),
            Type::U8 => "u8".into(),
            Type::U16 => "u16".into(),
            Type::U32 => "u32".into(),
            Type::U64 => "u64".into(),
            Type::S8 => "i8".into(),
            Type::S16 => "i16".into(),
            Type::S32 => "i32".into(),
            Type::S64 => "i64".into(),
            Type::F32 => "f32".into(),
            Type::F64 => "f64".into(),
            Type::Char => "char".into(),
            Type::String => "String".into(),
            Type::ErrorContext => {
                return Err(Error::Unsupported("error-context cannot cross RPC".into()));
            }
            Type::Id(id) => self.id(*id)?,
        })
    }

    /// The Rust type of the type definition `id`, declared first when it is named.
    fn id(&mut self, id: TypeId) -> Result<String, Error> {
        let def = &self.resolve.types[id];
        let name = def.name.as_deref().map(pascal);
        let docs = def
            .docs
            .contents
            .as_deref()
            .map(|d| d.lines().map(|l| format!("/// {l}\n")).collect::<String>())
            .unwrap_or_default();
        match &def.kind {
            TypeDefKind::Record(r) => {
                let name = name.ok_or_else(|| Error::Unsupported("an anonymous record".into()))?;
                if self.declared.insert(id) {
                    let mut fields = String::new();
                    for f in &r.fields {
                        let t = self.ty(&f.ty)?;
                        let optional = t.starts_with("Option<");
                        let default = if optional { ", default" } else { "" };
                        let _ = writeln!(
                            fields,
                            "    #[serde(rename = {:?}{default})]\n    pub {}: {t},",
                            f.name,
                            snake(&f.name)
                        );
                    }
                    let _ = writeln!(
                        self.decls,
                        "{docs}{DERIVE}\npub struct {name} {{\n{fields}}}\n"
                    );
                }
                Ok(name)
            }
            TypeDefKind::Variant(v) => {
                let name = name.ok_or_else(|| Error::Unsupported("an anonymous variant".into()))?;
                if self.declared.insert(id) {
                    let mut cases = String::new();
                    for c in &v.cases {
                        let payload = match &c.ty {
                            Some(t) => format!("({})", self.ty(t)?),
                            None => String::new(),
                        };
                        let _ = writeln!(
                            cases,
                            "    #[serde(rename = {:?})]\n    {}{payload},",
                            c.name,
                            pascal(&c.name)
                        );
                    }
                    let _ = writeln!(
                        self.decls,
                        "{docs}{DERIVE}\n#[serde(tag = \"tag\", content = \"val\")]\npub enum {name} {{\n{cases}}}\n"
                    );
                }
                Ok(name)
            }
            TypeDefKind::Enum(e) => {
                let name = name.ok_or_else(|| Error::Unsupported("an anonymous enum".into()))?;
                if self.declared.insert(id) {
                    let cases = unit_cases(e.cases.iter().map(|c| c.name.as_str()));
                    let _ = writeln!(
                        self.decls,
                        "{docs}{DERIVE}\npub enum {name} {{\n{cases}}}\n"
                    );
                }
                Ok(name)
            }
            TypeDefKind::Flags(f) => {
                let name = name.ok_or_else(|| Error::Unsupported("anonymous flags".into()))?;
                if self.declared.insert(id) {
                    let cases = unit_cases(f.flags.iter().map(|c| c.name.as_str()));
                    let _ = writeln!(
                        self.decls,
                        "{docs}/// One flag of [`{name}`] (the set is the list of the flags that are on).\n{DERIVE}\npub enum {name}Flag {{\n{cases}}}\n{docs}pub type {name} = Vec<{name}Flag>;\n"
                    );
                }
                Ok(name)
            }
            TypeDefKind::Type(t) => {
                let target = self.ty(t)?;
                match name {
                    Some(name) => {
                        if self.declared.insert(id) {
                            let _ = writeln!(self.decls, "{docs}pub type {name} = {target};\n");
                        }
                        Ok(name)
                    }
                    None => Ok(target),
                }
            }
            TypeDefKind::Tuple(t) => {
                let items = t
                    .types
                    .iter()
                    .map(|t| self.ty(t))
                    .collect::<Result<Vec<_>, Error>>()?;
                Ok(format!("({},)", items.join(", ")))
            }
            TypeDefKind::Option(inner) => {
                let t = self.ty(inner)?;
                // jco's rule, as in the JSON mapping: tagged when `null` is already a value
                if nullable(self.resolve, inner) {
                    Ok(format!("WitOption<{t}>"))
                } else {
                    Ok(format!("Option<{t}>"))
                }
            }
            TypeDefKind::Result(r) => Ok(match (&r.ok, &r.err) {
                (Some(ok), Some(err)) => format!("WitResult<{}, {}>", self.ty(ok)?, self.ty(err)?),
                (None, Some(err)) => format!("WitResultNoOk<{}>", self.ty(err)?),
                (Some(ok), None) => format!("WitResultNoErr<{}>", self.ty(ok)?),
                (None, None) => "WitResultEmpty".into(),
            }),
            TypeDefKind::List(t) | TypeDefKind::FixedLengthList(t, _) => {
                Ok(format!("Vec<{}>", self.ty(t)?))
            }
            TypeDefKind::Map(k, v) => Ok(format!("Vec<({}, {})>", self.ty(k)?, self.ty(v)?)),
            TypeDefKind::Resource
            | TypeDefKind::Handle(_)
            | TypeDefKind::Future(_)
            | TypeDefKind::Stream(_)
            | TypeDefKind::Unknown => Err(Error::Unsupported(
                "a resource, future or stream cannot cross RPC".into(),
            )),
        }
    }
}

/// Rust enum cases without payload, each serialized as its WIT name.
fn unit_cases<'a>(names: impl Iterator<Item = &'a str>) -> String {
    let mut cases = String::new();
    for name in names {
        let _ = writeln!(
            cases,
            "    #[serde(rename = {name:?})]\n    {},",
            pascal(name)
        );
    }
    cases
}

/// The Rust client module for `class`, whose RPC interfaces are the WIT package(s) `wit`.
pub fn rust(wit: &str, class: &str) -> Result<String, Error> {
    let (resolve, main) = parse_class(wit, class)?;
    let mut rs = Rs {
        resolve: &resolve,
        declared: BTreeSet::new(),
        decls: String::new(),
    };
    let client = pascal(class);
    let stub = format!("{client}Stub");
    let mut methods = String::new();
    for method in class_methods(&resolve, main) {
        let func = method.func;
        let mut params = Vec::new();
        let mut args = Vec::new();
        for p in &func.params {
            let t = rs.ty(&p.ty)?;
            params.push(format!("{}: {t}", snake(&p.name)));
            args.push(format!("serde_json::json!({})", snake(&p.name)));
        }
        let (ok, err) = match method.outcome {
            Outcome::Value(None) => ("()".to_string(), "NoError".to_string()),
            Outcome::Value(Some(t)) => (rs.ty(t)?, "NoError".into()),
            Outcome::Result { ok, err } => (
                ok.map(|t| rs.ty(t))
                    .transpose()?
                    .unwrap_or_else(|| "()".into()),
                err.map(|t| rs.ty(t))
                    .transpose()?
                    .unwrap_or_else(|| "()".into()),
            ),
        };
        let fn_name = match &method.qualifier {
            Some(iface) => format!("{}_{}", snake(iface), snake(method.name)),
            None => snake(method.name),
        };
        let route = method.route();
        let docs = func
            .docs
            .contents
            .as_deref()
            .map(|d| {
                d.lines()
                    .map(|l| format!("    /// {l}\n"))
                    .collect::<String>()
            })
            .unwrap_or_default();
        let _ = writeln!(
            methods,
            "{docs}    pub fn {fn_name}(&self{}) -> Result<{ok}, Error<{err}>> {{\n        self.call({route:?}, vec![{}])\n    }}\n",
            params.iter().map(|p| format!(", {p}")).collect::<String>(),
            args.join(", "),
        );
    }
    let mut out = format!(
        "// Generated by `wasmdo bindgen {class} --lang rust`; do not edit.\n\
         // A typed client for the wasmdo class `{class}` over HTTP RPC. Needs the crates\n\
         // `serde` (feature `derive`), `serde_json` and `ureq` 3.\n\n\
         #![allow(dead_code, clippy::all)]\n\n"
    );
    out.push_str(&rs.decls);
    let _ = write!(
        out,
        r#"/// A `result` inside another type: `{{"tag": "ok", "val": …}}` / `{{"tag": "err", "val": …}}`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "tag", content = "val")]
pub enum WitResult<T, E> {{
    #[serde(rename = "ok")]
    Ok(T),
    #[serde(rename = "err")]
    Err(E),
}}

/// A `result<_, E>` inside another type.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "tag", content = "val")]
pub enum WitResultNoOk<E> {{
    #[serde(rename = "ok")]
    Ok,
    #[serde(rename = "err")]
    Err(E),
}}

/// A `result<T, _>` inside another type.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "tag", content = "val")]
pub enum WitResultNoErr<T> {{
    #[serde(rename = "ok")]
    Ok(T),
    #[serde(rename = "err")]
    Err,
}}

/// A bare `result` inside another type.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "tag")]
pub enum WitResultEmpty {{
    #[serde(rename = "ok")]
    Ok,
    #[serde(rename = "err")]
    Err,
}}

/// An `option<T>` whose `T` can itself be `null` (`option<option<u32>>`): written tagged.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "tag", content = "val")]
pub enum WitOption<T> {{
    #[serde(rename = "none")]
    None,
    #[serde(rename = "some")]
    Some(T),
}}

/// The error type of a method without one: no value of it exists.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
pub enum NoError {{}}

/// Why a call failed.
#[derive(Debug)]
pub enum Error<E> {{
    /// The method returned its own error (its WIT `result::err`), typed.
    Method(E),
    /// The host refused or failed the call: `kind` is its JSON error kind (`InvalidArgument`,
    /// `UnknownMethod`, `CpuLimitExceeded`, …).
    Host {{ status: u16, kind: String, message: String }},
    /// The host could not be reached, or its reply was not what the class's types say.
    Transport(String),
}}

impl<E: std::fmt::Debug> std::fmt::Display for Error<E> {{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {{
        match self {{
            Error::Method(e) => write!(f, "the method returned an error: {{e:?}}"),
            Error::Host {{ status, kind, message }} => write!(f, "{{kind}} (HTTP {{status}}): {{message}}"),
            Error::Transport(message) => f.write_str(message),
        }}
    }}
}}

impl<E: std::fmt::Debug> std::error::Error for Error<E> {{}}

/// The class `{class}` on a host: `get(name)` and `get_by_id(id)` give stubs (nothing is
/// activated until a call).
pub struct {client} {{
    base_url: String,
    class: String,
    agent: ureq::Agent,
}}

impl {client} {{
    /// The class as deployed under its own name, on the host at `base_url`.
    pub fn new(base_url: &str) -> Self {{
        Self::with_class(base_url, {class:?})
    }}

    /// The class as deployed under `class`.
    pub fn with_class(base_url: &str, class: &str) -> Self {{
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        {client} {{
            base_url: base_url.trim_end_matches('/').to_owned(),
            class: class.to_owned(),
            agent,
        }}
    }}

    /// The object named `name` (Cloudflare's `idFromName`).
    pub fn get(&self, name: &str) -> {stub}<'_> {{
        {stub} {{ client: self, object: name.to_owned() }}
    }}

    /// The object with id `id` (64 hex digits).
    pub fn get_by_id(&self, id: &str) -> {stub}<'_> {{
        {stub} {{ client: self, object: format!("id:{{id}}") }}
    }}
}}

/// One object of the class `{class}`.
pub struct {stub}<'a> {{
    client: &'a {client},
    object: String,
}}

impl {stub}<'_> {{
{methods}    fn call<T: serde::de::DeserializeOwned, E: serde::de::DeserializeOwned>(
        &self,
        method: &str,
        args: Vec<serde_json::Value>,
    ) -> Result<T, Error<E>> {{
        let url = format!(
            "{{}}/rpc/{{}}/{{}}/{{}}",
            self.client.base_url,
            encode(&self.client.class),
            encode(&self.object),
            encode(method)
        );
        let body = serde_json::to_string(&args).map_err(|e| Error::Transport(e.to_string()))?;
        let response = self
            .client
            .agent
            .post(&url)
            .header("content-type", "application/json")
            .send(body)
            .map_err(|e| Error::Transport(format!("POST {{url}}: {{e}}")))?;
        let status = response.status().as_u16();
        let text = response
            .into_body()
            .read_to_string()
            .map_err(|e| Error::Transport(e.to_string()))?;
        if (200..300).contains(&status) {{
            return serde_json::from_str(&text)
                .map_err(|e| Error::Transport(format!("unexpected reply {{text}}: {{e}}")));
        }}
        let reply: serde_json::Value =
            serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text.clone()));
        let kind = reply["kind"].as_str().unwrap_or("Http").to_owned();
        if kind == "MethodError" {{
            let value = serde_json::from_value(reply["value"].clone())
                .map_err(|e| Error::Transport(format!("unexpected error value {{text}}: {{e}}")))?;
            return Err(Error::Method(value));
        }}
        let message = reply["error"].as_str().unwrap_or(&text).to_owned();
        Err(Error::Host {{ status, kind, message }})
    }}
}}

/// Percent-encodes a path segment.
fn encode(segment: &str) -> String {{
    let mut out = String::new();
    for b in segment.bytes() {{
        if b.is_ascii_alphanumeric() || b"-._~:".contains(&b) {{
            out.push(b as char);
        }} else {{
            out.push_str(&format!("%{{b:02X}}"));
        }}
    }}
    out
}}
"#
    );
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_class_becomes_a_typed_rust_client() {
        let wit = r#"
            package example:shop;
            interface shop {
              /// An item.
              record item { name: string, qty: option<u32>, tags: list<string> }
              enum mode { fast, slow-ish }
              variant outcome { done(u64), pending }
              flags perms { read, write }
              add: func(item: item, mode: mode) -> result<outcome, string>;
              find: func(name: string, limit: option<option<u32>>) -> list<item>;
              grant: func(p: perms) -> result<_, string>;
              clear: func();
            }
        "#;
        let rs = rust(wit, "shop").unwrap();
        for line in [
            "/// An item.\n#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]\npub struct Item {",
            "    #[serde(rename = \"qty\", default)]\n    pub qty: Option<u32>,",
            "    #[serde(rename = \"slow-ish\")]\n    SlowIsh,",
            "#[serde(tag = \"tag\", content = \"val\")]\npub enum Outcome {",
            "    #[serde(rename = \"done\")]\n    Done(u64),",
            "pub enum PermsFlag {",
            "pub type Perms = Vec<PermsFlag>;",
            "pub fn add(&self, item: Item, mode: Mode) -> Result<Outcome, Error<String>> {",
            "self.call(\"add\", vec![serde_json::json!(item), serde_json::json!(mode)])",
            "pub fn find(&self, name: String, limit: WitOption<Option<u32>>) -> Result<Vec<Item>, Error<NoError>> {",
            "pub fn grant(&self, p: Perms) -> Result<(), Error<String>> {",
            "pub fn clear(&self) -> Result<(), Error<NoError>> {",
            "pub struct Shop {",
            "pub struct ShopStub<'a> {",
        ] {
            assert!(rs.contains(line), "no `{line}` in:\n{rs}");
        }
    }

    #[test]
    fn a_type_that_cannot_cross_rpc_is_refused() {
        let wit = "package a:b;\ninterface x { f: func(e: error-context); }\n";
        let err = rust(wit, "x").unwrap_err();
        assert!(matches!(err, Error::Unsupported(_)), "{err:?}");
        assert_eq!(err.to_string(), "error-context cannot cross RPC");
    }
}

//! Typed clients for a deployed class, generated from its WIT (`wasmdo bindgen CLASS --lang
//! ts|rust`): an ordinary program calls `counter.get("alice").increment(5)` with the class's types
//! checked by its compiler, over the host's HTTP RPC and its JSON mapping (`rpc::json`).
//!
//! The Rust client is one module for a program depending on `serde` (with `derive`),
//! `serde_json` and `ureq` 3: structs and enums with serde attributes matching the JSON mapping,
//! and a blocking client; a method's `err` comes back as `Error::Method(e)`, typed.
//!
//! The TypeScript client is one self-contained module using the platform's `fetch` (Node 18+,
//! browsers, Workers). Types follow the JSON mapping exactly: record fields keep their WIT
//! (kebab-case) names as JSON keys, `option<T>` is `T | null`, variants and results are
//! `{tag, val}` objects, a method's top-level `result` is unwrapped (its `err` is thrown as a
//! `WasmdoError` carrying the typed value).

use std::collections::BTreeSet;
use std::fmt::Write as _;

use anyhow::{Context, bail};
use wit_parser::{PackageId, Resolve, Type, TypeDefKind, TypeId};

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

fn ident(name: &str) -> String {
    let c = camel(name);
    if RESERVED.contains(&c.as_str()) {
        format!("{c}_")
    } else {
        c
    }
}

struct Ts<'a> {
    resolve: &'a Resolve,
    /// The JavaScript values of componentize-js's (jco's) mapping of WIT types, which a stub
    /// inside an object takes, instead of the JSON mapping of RPC over HTTP: bigints for 64-bit
    /// integers, camelCase record fields, `undefined` for `none`, typed arrays, flags objects.
    component: bool,
    /// Named types already declared (by TypeId), to declare each once.
    declared: BTreeSet<TypeId>,
    decls: String,
}

impl Ts<'_> {
    /// Whether JSON `null` is a value of `ty`: an option written as `null`/value, which is one
    /// whose payload is not itself null-able (jco's rule; otherwise it is tagged).
    fn nullable(&self, ty: &Type) -> bool {
        nullable(self.resolve, ty)
    }

    fn ty(&mut self, ty: &Type) -> anyhow::Result<String> {
        Ok(match ty {
            Type::Bool => "boolean".into(),
            Type::U8
            | Type::U16
            | Type::U32
            | Type::S8
            | Type::S16
            | Type::S32
            | Type::F32
            | Type::F64 => "number".into(),
            Type::U64 | Type::S64 if self.component => "bigint".into(),
            Type::U64 | Type::S64 => "number".into(),
            Type::Char | Type::String => "string".into(),
            Type::ErrorContext => bail!("error-context cannot cross RPC"),
            Type::Id(id) => self.named_or_inline(*id)?,
        })
    }

    fn named_or_inline(&mut self, id: TypeId) -> anyhow::Result<String> {
        let def = &self.resolve.types[id];
        let named = matches!(
            def.kind,
            TypeDefKind::Record(_)
                | TypeDefKind::Variant(_)
                | TypeDefKind::Enum(_)
                | TypeDefKind::Flags(_)
                | TypeDefKind::Type(_)
        );
        if let (true, Some(name)) = (named, def.name.as_deref()) {
            let ts_name = pascal(name);
            if self.declared.insert(id) {
                let body = self.inline(id)?;
                let docs = def.docs.contents.as_deref().map(doc).unwrap_or_default();
                let _ = writeln!(self.decls, "{docs}export type {ts_name} = {body};\n");
            }
            return Ok(ts_name);
        }
        self.inline(id)
    }

    fn inline(&mut self, id: TypeId) -> anyhow::Result<String> {
        let def = &self.resolve.types[id];
        Ok(match &def.kind {
            TypeDefKind::Record(r) => {
                let mut out = String::from("{ ");
                for f in &r.fields {
                    let optional = matches!(f.ty, Type::Id(t) if matches!(self.resolve.types[t].kind, TypeDefKind::Option(_)));
                    let t = self.ty(&f.ty)?;
                    let q = if optional { "?" } else { "" };
                    match self.component {
                        true => {
                            let _ = write!(out, "{}{q}: {t}; ", camel(&f.name));
                        }
                        false => {
                            let _ = write!(out, "{:?}{q}: {t}; ", f.name);
                        }
                    }
                }
                out.push('}');
                out
            }
            TypeDefKind::Variant(v) => {
                let mut cases = Vec::new();
                for c in &v.cases {
                    cases.push(match &c.ty {
                        Some(t) => format!("{{ tag: {:?}; val: {} }}", c.name, self.ty(t)?),
                        None => format!("{{ tag: {:?} }}", c.name),
                    });
                }
                cases.join(" | ")
            }
            TypeDefKind::Enum(e) => e
                .cases
                .iter()
                .map(|c| format!("{:?}", c.name))
                .collect::<Vec<_>>()
                .join(" | "),
            TypeDefKind::Flags(f) if self.component => {
                let fields: Vec<String> = f
                    .flags
                    .iter()
                    .map(|c| format!("{}?: boolean; ", camel(&c.name)))
                    .collect();
                format!("{{ {}}}", fields.concat())
            }
            TypeDefKind::Flags(f) => format!(
                "({})[]",
                f.flags
                    .iter()
                    .map(|c| format!("{:?}", c.name))
                    .collect::<Vec<_>>()
                    .join(" | ")
            ),
            TypeDefKind::Tuple(t) => {
                let items = t
                    .types
                    .iter()
                    .map(|t| self.ty(t))
                    .collect::<anyhow::Result<Vec<_>>>()?;
                format!("[{}]", items.join(", "))
            }
            TypeDefKind::Option(inner) => {
                let t = self.ty(inner)?;
                if self.nullable(inner) {
                    format!("{{ tag: \"none\" }} | {{ tag: \"some\"; val: {t} }}")
                } else if self.component {
                    format!("{t} | undefined")
                } else {
                    format!("{t} | null")
                }
            }
            TypeDefKind::Result(r) => {
                let ok = match &r.ok {
                    Some(t) => format!("{{ tag: \"ok\"; val: {} }}", self.ty(t)?),
                    None => "{ tag: \"ok\" }".into(),
                };
                let err = match &r.err {
                    Some(t) => format!("{{ tag: \"err\"; val: {} }}", self.ty(t)?),
                    None => "{ tag: \"err\" }".into(),
                };
                format!("{ok} | {err}")
            }
            TypeDefKind::List(t) | TypeDefKind::FixedLengthList(t, _)
                if self.component && typed_array(t).is_some() =>
            {
                typed_array(t).unwrap_or_default().into()
            }
            TypeDefKind::List(t) | TypeDefKind::FixedLengthList(t, _) => {
                let t = self.ty(t)?;
                if t.contains(['|', ' ']) {
                    format!("({t})[]")
                } else {
                    format!("{t}[]")
                }
            }
            TypeDefKind::Map(k, v) => format!("[{}, {}][]", self.ty(k)?, self.ty(v)?),
            TypeDefKind::Type(t) => self.ty(t)?,
            TypeDefKind::Resource
            | TypeDefKind::Handle(_)
            | TypeDefKind::Future(_)
            | TypeDefKind::Stream(_)
            | TypeDefKind::Unknown => {
                bail!("a resource, future or stream cannot cross RPC")
            }
        })
    }
}

/// The typed array jco maps a list of `ty` to, if any.
fn typed_array(ty: &Type) -> Option<&'static str> {
    Some(match ty {
        Type::U8 => "Uint8Array",
        Type::S8 => "Int8Array",
        Type::U16 => "Uint16Array",
        Type::S16 => "Int16Array",
        Type::U32 => "Uint32Array",
        Type::S32 => "Int32Array",
        Type::U64 => "BigUint64Array",
        Type::S64 => "BigInt64Array",
        Type::F32 => "Float32Array",
        Type::F64 => "Float64Array",
        _ => return None,
    })
}

fn doc(text: &str) -> String {
    let mut out = String::from("/**\n");
    for line in text.lines() {
        let _ = writeln!(out, " * {line}");
    }
    out.push_str(" */\n");
    out
}

/// The WIT of a component's own RPC interfaces, as `GET /_admin/classes/{class}/wit` prints it
/// for a deployed class (the input of the generators here).
pub fn component_wit(component: &[u8]) -> anyhow::Result<String> {
    crate::rpc::wit::class_wit(component)
}

/// A class's WIT (as `GET /_admin/classes/{class}/wit` prints it), parsed; the second value is
/// its own package.
fn parse_class(wit: &str, class: &str) -> anyhow::Result<(Resolve, PackageId)> {
    let mut resolve = Resolve::new();
    let main = resolve
        .push_str(format!("{class}.wit"), wit)
        .context("parsing the class's WIT")?;
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

/// The TypeScript client module for `class`, whose RPC interfaces are the WIT package(s) `wit`
/// (as `GET /_admin/classes/{class}/wit` returns them).
pub fn typescript(wit: &str, class: &str) -> anyhow::Result<String> {
    let (resolve, main) = parse_class(wit, class)?;
    let mut ts = Ts {
        resolve: &resolve,
        component: false,
        declared: BTreeSet::new(),
        decls: String::new(),
    };
    let stub = format!("{}Stub", pascal(class));
    let mut methods = String::new();
    for method in class_methods(&resolve, main) {
        let func = method.func;
        let mut params = Vec::new();
        let mut args = Vec::new();
        // trailing option parameters may be left out, as the host allows
        let optional_from = func
            .params
            .iter()
            .rposition(|p| !is_option(&resolve, &p.ty))
            .map_or(0, |i| i + 1);
        for (i, p) in func.params.iter().enumerate() {
            let t = ts.ty(&p.ty)?;
            let q = if i >= optional_from { "?" } else { "" };
            params.push(format!("{}{q}: {t}", ident(&p.name)));
            args.push(ident(&p.name));
        }
        let (ok, err) = match method.outcome {
            Outcome::Value(None) => ("void".to_string(), "never".to_string()),
            Outcome::Value(Some(t)) => (ts.ty(t)?, "never".into()),
            Outcome::Result { ok, err } => (
                ok.map(|t| ts.ty(t))
                    .transpose()?
                    .unwrap_or_else(|| "void".into()),
                err.map(|t| ts.ty(t))
                    .transpose()?
                    .unwrap_or_else(|| "null".into()),
            ),
        };
        let js_name = match &method.qualifier {
            Some(iface) => format!("{}_{}", camel(iface), ident(method.name)),
            None => ident(method.name),
        };
        let route = method.route();
        let docs = func
            .docs
            .contents
            .as_deref()
            .map(|d| doc(d).replace('\n', "\n  "))
            .unwrap_or_default();
        let _ = writeln!(
            methods,
            "  {docs}{js_name}({}): Promise<{ok}> {{\n    return this.call<{ok}, {err}>({route:?}, [{}]);\n  }}\n",
            params.join(", "),
            args.join(", "),
        );
    }
    let client = pascal(class);
    let mut out = format!(
        "// Generated by `wasmdo bindgen {class} --lang ts`; do not edit.\n\
         // A typed client for the wasmdo class `{class}` over HTTP RPC (POST /rpc/{{class}}/{{object}}/{{method}}).\n\n"
    );
    out.push_str(&ts.decls);
    let _ = write!(
        out,
        r#"/** An error reply: `kind` (`MethodError`, `InvalidArgument`, `UnknownMethod`, …), the HTTP status, and for a method's own error its typed `value`. */
export class WasmdoError<E = unknown> extends Error {{
  constructor(
    readonly status: number,
    readonly kind: string,
    message: string,
    readonly value?: E,
  ) {{
    super(message);
    this.name = "WasmdoError";
  }}
}}

/** The class `{class}` on a host: `get(name)` and `getById(id)` give stubs (nothing is activated until a call). */
export class {client} {{
  constructor(
    private readonly baseUrl: string,
    private readonly className: string = {class:?},
  ) {{}}

  /** The object named `name` (Cloudflare's `idFromName`). */
  get(name: string): {stub} {{
    return new {stub}(this.baseUrl, this.className, name);
  }}

  /** The object with id `id` (64 hex digits, from `idFromName` or `newUniqueId`). */
  getById(id: string): {stub} {{
    return new {stub}(this.baseUrl, this.className, `id:${{id}}`);
  }}
}}

/** One object of the class `{class}`. */
export class {stub} {{
  constructor(
    private readonly baseUrl: string,
    private readonly className: string,
    private readonly object: string,
  ) {{}}

{methods}  private async call<T, E>(method: string, args: unknown[]): Promise<T> {{
    while (args.length > 0 && args[args.length - 1] === undefined) args.pop();
    const url = `${{this.baseUrl.replace(/\/$/, "")}}/rpc/${{encodeURIComponent(this.className)}}/${{encodeURIComponent(this.object)}}/${{encodeURIComponent(method)}}`;
    const response = await fetch(url, {{
      method: "POST",
      headers: {{ "content-type": "application/json" }},
      body: JSON.stringify(args.map((a) => (a === undefined ? null : a))),
    }});
    const text = await response.text();
    const body = text ? JSON.parse(text) : null;
    if (!response.ok) {{
      throw new WasmdoError<E>(response.status, body?.kind ?? "Http", body?.error ?? text, body?.value);
    }}
    return body as T;
  }}
}}
"#
    );
    Ok(out)
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

fn is_option(resolve: &Resolve, ty: &Type) -> bool {
    match ty {
        Type::Id(id) => match &resolve.types[*id].kind {
            TypeDefKind::Option(_) => true,
            TypeDefKind::Type(t) => is_option(resolve, t),
            _ => false,
        },
        _ => false,
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

struct Rs<'a> {
    resolve: &'a Resolve,
    declared: BTreeSet<TypeId>,
    decls: String,
}

const DERIVE: &str = "#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]";

impl Rs<'_> {
    fn ty(&mut self, ty: &Type) -> anyhow::Result<String> {
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
            Type::ErrorContext => bail!("error-context cannot cross RPC"),
            Type::Id(id) => self.id(*id)?,
        })
    }

    fn id(&mut self, id: TypeId) -> anyhow::Result<String> {
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
                let name = name.context("an anonymous record")?;
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
                let name = name.context("an anonymous variant")?;
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
                let name = name.context("an anonymous enum")?;
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
                let name = name.context("anonymous flags")?;
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
                    .collect::<anyhow::Result<Vec<_>>>()?;
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
            | TypeDefKind::Unknown => bail!("a resource, future or stream cannot cross RPC"),
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
pub fn rust(wit: &str, class: &str) -> anyhow::Result<String> {
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

/// The name of the resource a stub interface declares: one `stub` per object reached.
pub(crate) const STUB_RESOURCE: &str = "stub";

/// The stub package a class calling `class` through the binding `binding` imports (see
/// `wit/objects.wit`): each of the class's interfaces with its types, and a resource `stub` —
/// Cloudflare's `DurableObjectStub` — made from an id (`constructor`) or a name (`get-by-name`),
/// whose methods are the class's functions with their results wrapped in
/// `result<_, call-error>`. `wit` is the class's WIT as `GET /_admin/classes/{class}/wit` prints
/// it.
pub fn wit_stub(wit: &str, class: &str, binding_arg: &str) -> anyhow::Result<String> {
    let binding = crate::rpc::calls::binding_wit_name(binding_arg);
    // parse first: the rewrite below relies on the printer's layout (one function per line, an
    // interface's closing brace alone at the start of a line)
    let (resolve, main) = parse_class(wit, class)?;
    if wit.matches("package ").count() != 1 {
        bail!("class `{class}` exports interfaces of several packages; stubs need one");
    }
    for iface in resolve.packages[main].interfaces.values() {
        let iface = &resolve.interfaces[*iface];
        for taken in [STUB_RESOURCE, "get-by-name"] {
            if iface.types.contains_key(taken) || iface.functions.contains_key(taken) {
                bail!(
                    "class `{class}` declares `{taken}` in interface `{}`, a name its stub needs; rename it",
                    iface.name.as_deref().unwrap_or_default()
                );
            }
        }
    }
    let mut out = format!(
        "// Generated by `wasmdo bindgen {class} --lang wit-stub --binding {binding_arg}`; do not edit.\n\
         // Import it (`import binding:{binding}/<interface>;`) to call objects of class `{class}`.\n"
    );
    // doc comment lines not yet placed, and the stub methods of the interface being rewritten
    let (mut docs, mut methods) = (String::new(), String::new());
    for line in wit.lines() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("///") {
            let _ = writeln!(docs, "{trimmed}");
        } else if trimmed.is_empty() {
            // the functions moved into the resource leave runs of blank lines behind
            if !out.ends_with("\n\n") {
                out.push('\n');
            }
        } else if trimmed.starts_with("package ") {
            out.push_str(&std::mem::take(&mut docs));
            let _ = writeln!(out, "package binding:{binding};");
        } else if trimmed.starts_with("interface ") && trimmed.ends_with('{') {
            out.push_str(&std::mem::take(&mut docs));
            let _ = writeln!(
                out,
                "{line}\n  use wasmdo:object/objects@0.1.0.{{call-error}};\n"
            );
        } else if let Some((name, rest)) = trimmed.split_once(": func(")
            && !name.contains(' ')
            && trimmed.ends_with(';')
        {
            let body = &rest[..rest.len() - 1];
            let close = body.rfind(')').context("a function without `)`")?;
            let (params, result) = (&body[..close], body[close + 1..].trim());
            let result = result.strip_prefix("->").map_or("_", str::trim);
            for doc in std::mem::take(&mut docs).lines() {
                let _ = writeln!(methods, "    {doc}");
            }
            let _ = writeln!(
                methods,
                "    {name}: func({params}) -> result<{result}, call-error>;"
            );
        } else if line == "}" {
            out.push_str(&std::mem::take(&mut docs));
            let _ = write!(
                out,
                "  /// An object of class `{class}` (Cloudflare's stub). Making one activates nothing; each\n\
                 \x20 /// call is an event of that object, answered after its writes are committed.\n\
                 \x20 resource {STUB_RESOURCE} {{\n\
                 \x20   /// The object with this id (from `wasmdo:object/objects`). An id that is not one of\n\
                 \x20   /// class `{class}` fails at the first call, with `invalid-id`.\n\
                 \x20   constructor(id: string);\n\
                 \x20   /// The object named `name` (Cloudflare's `getByName`).\n\
                 \x20   get-by-name: static func(name: string) -> {STUB_RESOURCE};\n\
                 {}  }}\n}}\n",
                std::mem::take(&mut methods)
            );
        } else {
            out.push_str(&std::mem::take(&mut docs));
            let _ = writeln!(out, "{line}");
        }
    }
    Ok(out)
}

/// TypeScript types for a JavaScript class calling objects of `class` through the binding
/// `binding` (`env.<BINDING>` of a class built with `wasmdo-js build --binding`): the class's
/// types and an interface of its methods as a stub has them, in componentize-js's mapping of WIT
/// values. A method's own `err` is thrown; a call that could not run throws a `CallError`.
pub fn ts_stub(wit: &str, class: &str, binding: &str) -> anyhow::Result<String> {
    let (resolve, main) = parse_class(wit, class)?;
    let mut ts = Ts {
        resolve: &resolve,
        component: true,
        declared: BTreeSet::new(),
        decls: String::new(),
    };
    let name = pascal(class);
    let mut methods = String::new();
    let mut seen = BTreeSet::new();
    for method in class_methods(&resolve, main) {
        let js_name = camel(method.name);
        // a stub merges the class's interfaces: the first method of a name wins
        if !seen.insert(js_name.clone()) {
            continue;
        }
        let func = method.func;
        let optional_from = func
            .params
            .iter()
            .rposition(|p| !is_option(&resolve, &p.ty))
            .map_or(0, |i| i + 1);
        let mut params = Vec::new();
        for (i, p) in func.params.iter().enumerate() {
            let t = ts.ty(&p.ty)?;
            let q = if i >= optional_from { "?" } else { "" };
            params.push(format!("{}{q}: {t}", ident(&p.name)));
        }
        let ok = match method.outcome {
            Outcome::Value(None) | Outcome::Result { ok: None, .. } => "void".to_string(),
            Outcome::Value(Some(t)) | Outcome::Result { ok: Some(t), .. } => ts.ty(t)?,
        };
        let docs = func
            .docs
            .contents
            .as_deref()
            .map(|d| doc(d).replace('\n', "\n  "))
            .unwrap_or_default();
        let _ = writeln!(
            methods,
            "  {docs}{js_name}({}): Promise<{ok}>;",
            params.join(", ")
        );
    }
    let env = binding_cfg(&crate::rpc::calls::binding_wit_name(binding));
    let mut out = format!(
        "// Generated by `wasmdo bindgen {class} --lang ts-stub --binding {binding}`; do not edit.\n\
         // The methods of class `{class}` as a stub calls them, for a class built with\n\
         // `wasmdo-js build --binding {env}=<stub.wit>`:\n\
         //\n\
         //   import type {{ DurableObjectNamespace }} from \"cloudflare:workers\";\n\
         //   interface Env {{ {env}: DurableObjectNamespace<{name}> }}\n\
         //   const n = await this.env.{env}.getByName(\"name\").someMethod(…);\n\n"
    );
    out.push_str(&ts.decls);
    let _ = write!(
        out,
        "/** An object of class `{class}`: a method's own error is thrown as an `Error` with its `name` and `message` (or `value`); a call that could not run throws a `CallError`. */\nexport interface {name} {{\n{methods}}}\n"
    );
    Ok(out)
}

/// The `wasmdo:object/objects` interface, which every stub package uses (for `call-error`).
const OBJECTS_WIT: &str = include_str!("../../wit/objects.wit");
/// `http-types` (with `handler`), which `objects` uses.
const HANDLER_WIT: &str = include_str!("../../wit/handler.wit");

/// A Rust module for a class written with the Rust SDK to call objects of `class` through the
/// binding `binding`: the stub package (see [`wit_stub`]) inlined in a `wit_bindgen::generate!`
/// that reuses the SDK's `objects` types, so `call-error` is `wasmdo::objects::CallError`
/// everywhere. Drop it in `src/` as `mod <name>;`; no WIT files or dependencies needed.
pub fn rust_stub(wit: &str, class: &str, binding: &str) -> anyhow::Result<String> {
    let stub = wit_stub(wit, class, binding)?;
    let (resolve, _) = parse_class(wit, class)?;
    let binding = crate::rpc::calls::binding_wit_name(binding);
    let package = format!("binding:{binding}");
    let interfaces: Vec<String> = resolve
        .interfaces
        .iter()
        .filter_map(|(_, i)| i.name.clone())
        .collect();
    // the stub's package, a world importing it, and the package it uses nested in it
    let body: String = stub
        .lines()
        .filter(|l| !l.starts_with("//"))
        .map(|l| format!("{l}\n"))
        .collect();
    let imports: String = interfaces
        .iter()
        .map(|i| format!("  import {i};\n"))
        .collect();
    let inline = format!(
        "{body}\nworld stubs {{\n{imports}}}\n\npackage wasmdo:object@0.1.0 {{\n{HANDLER_WIT}\n{OBJECTS_WIT}}}\n"
    );
    let modules: String = interfaces
        .iter()
        .map(|i| {
            format!(
                "pub use self::generated::binding::{}::{};\n",
                snake(&binding),
                snake(i)
            )
        })
        .collect();
    let single = match interfaces.as_slice() {
        [only] => format!(
            "\n/// The stub of an object of class `{class}`.\npub type {} = {}::Stub;\npub use {}::*;\n",
            pascal(class),
            snake(only),
            snake(only)
        ),
        _ => String::new(),
    };
    Ok(format!(
        r##"// Generated by `wasmdo bindgen {class} --lang rust-stub --binding {binding_cfg}`; do not edit.
//! Objects of class `{class}`, reached through the binding `{binding_cfg}` (grant it in
//! `wasmdo.toml`: `[classes.<this class>.bindings] {binding_cfg} = "{class}"`).
//!
//! A stub addresses one object and activates nothing until a call:
//! `Stub::get_by_name("name")`, or `Stub::new(&id)` with an id from
//! `wasmdo::objects::id_from_name("{binding}", …)` (`new_unique_id`, `id_from_string`). Each
//! method returns `Result<_, wasmdo::objects::CallError>` around the method's own result.

#[allow(missing_docs, unsafe_code, unreachable_pub, clippy::all, reason = "generated by wit-bindgen")]
mod generated {{
    ::wasmdo::wit_bindgen::generate!({{
        inline: r#"
{inline}"#,
        world: "{package}/stubs",
        runtime_path: "::wasmdo::wit_bindgen::rt",
        with: {{
            "wasmdo:object/objects@0.1.0": ::wasmdo::objects,
            "wasmdo:object/http-types@0.1.0": ::wasmdo::bindings::wasmdo::object::http_types,
        }},
    }});
}}

{modules}{single}"##,
        binding_cfg = binding_cfg(&binding),
    ))
}

/// How the binding is written in `wasmdo.toml` (`COUNTER` for the WIT name `counter`).
fn binding_cfg(wit_name: &str) -> String {
    wit_name.to_ascii_uppercase().replace('-', "_")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_class_becomes_a_stub_that_parses_with_the_objects_interface() {
        let wit = "package example:shop;\n\ninterface shop {\n  record item {\n    name: string,\n  }\n\n  /// Adds.\n  add: func(item: item, n: u32) -> result<u32, string>;\n\n  clear: func();\n}\n";
        let stub = wit_stub(wit, "shop", "SHOP_V1").unwrap();
        for line in [
            "package binding:shop-v1;",
            "  use wasmdo:object/objects@0.1.0.{call-error};",
            "  resource stub {",
            "    constructor(id: string);",
            "    get-by-name: static func(name: string) -> stub;",
            "    /// Adds.\n    add: func(item: item, n: u32) -> result<result<u32, string>, call-error>;",
            "    clear: func() -> result<_, call-error>;",
        ] {
            assert!(stub.contains(line), "no `{line}` in:\n{stub}");
        }
        let mut resolve = Resolve::new();
        resolve
            .push_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../wit"))
            .unwrap();
        resolve.push_str("stub.wit", &stub).unwrap();
    }

    #[test]
    fn a_class_whose_names_clash_with_the_stubs_is_refused() {
        let wit = "package example:shop;\n\ninterface shop {\n  get-by-name: func(name: string) -> u32;\n}\n";
        let err = wit_stub(wit, "shop", "SHOP").unwrap_err().to_string();
        assert!(
            err.contains("`get-by-name`") && err.contains("rename"),
            "{err}"
        );
    }

    #[test]
    fn a_class_becomes_a_typed_client() {
        let wit = r#"
            package example:shop;
            interface shop {
              /// An item.
              record item { name: string, qty: option<u32>, tags: list<string> }
              enum mode { fast, slow-ish }
              variant outcome { done(u64), pending }
              add: func(item: item, mode: mode) -> result<outcome, string>;
              find: func(name: string, limit: option<u32>) -> list<item>;
              clear: func();
            }
        "#;
        let ts = typescript(wit, "shop").unwrap();
        for line in [
            "export type Item = { \"name\": string; \"qty\"?: number | null; \"tags\": string[]; };",
            "export type Mode = \"fast\" | \"slow-ish\";",
            "export type Outcome = { tag: \"done\"; val: number } | { tag: \"pending\" };",
            "add(item: Item, mode: Mode): Promise<Outcome> {",
            "return this.call<Outcome, string>(\"add\", [item, mode]);",
            "find(name: string, limit?: number | null): Promise<Item[]> {",
            "clear(): Promise<void> {",
            "export class Shop {",
            "export class ShopStub {",
        ] {
            assert!(ts.contains(line), "no `{line}` in:\n{ts}");
        }
    }
}

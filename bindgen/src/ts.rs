//! The TypeScript client of a class (`wasmdo bindgen CLASS --lang ts`), and the TypeScript types
//! of its values that [`crate::ts_stub`] shares.
//!
//! The client is one self-contained module using the platform's `fetch` (Node 18+, browsers,
//! Workers). Types follow the JSON mapping exactly: record fields keep their WIT (kebab-case)
//! names as JSON keys, `option<T>` is `T | null`, variants and results are `{tag, val}` objects,
//! a method's top-level `result` is unwrapped (its `err` is thrown as a `WasmdoError` carrying the
//! typed value).

use std::collections::BTreeSet;
use std::fmt::Write as _;

use wit_parser::{Resolve, Type, TypeDefKind, TypeId};

use crate::{Error, Outcome, camel, class_methods, doc, ident, nullable, parse_class, pascal};

/// The TypeScript types of a class's values, declared as they are first used.
pub(crate) struct Ts<'a> {
    resolve: &'a Resolve,
    /// The JavaScript values of componentize-js's (jco's) mapping of WIT types, which a stub
    /// inside an object takes, instead of the JSON mapping of RPC over HTTP: bigints for 64-bit
    /// integers, camelCase record fields, `undefined` for `none`, typed arrays, flags objects.
    component: bool,
    /// Named types already declared (by TypeId), to declare each once.
    declared: BTreeSet<TypeId>,
    decls: String,
}

impl<'a> Ts<'a> {
    /// No types declared yet; `component` picks componentize-js's mapping over the JSON one.
    pub(crate) fn new(resolve: &'a Resolve, component: bool) -> Self {
        Ts {
            resolve,
            component,
            declared: BTreeSet::new(),
            decls: String::new(),
        }
    }

    /// The declarations of the named types met so far.
    pub(crate) fn decls(&self) -> &str {
        &self.decls
    }

    /// Whether JSON `null` is a value of `ty`: an option written as `null`/value, which is one
    /// whose payload is not itself null-able (jco's rule; otherwise it is tagged).
    fn nullable(&self, ty: &Type) -> bool {
        nullable(self.resolve, ty)
    }

    /// The TypeScript type of `ty`, declaring the named types it uses.
    pub(crate) fn ty(&mut self, ty: &Type) -> Result<String, Error> {
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
            Type::ErrorContext => {
                return Err(Error::Unsupported("error-context cannot cross RPC".into()));
            }
            Type::Id(id) => self.named_or_inline(*id)?,
        })
    }

    fn named_or_inline(&mut self, id: TypeId) -> Result<String, Error> {
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

    fn inline(&mut self, id: TypeId) -> Result<String, Error> {
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
                    .collect::<Result<Vec<_>, Error>>()?;
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
                return Err(Error::Unsupported(
                    "a resource, future or stream cannot cross RPC".into(),
                ));
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

/// The TypeScript client module for `class`, whose RPC interfaces are the WIT package(s) `wit`
/// (as `GET /_admin/classes/{class}/wit` returns them).
pub fn typescript(wit: &str, class: &str) -> Result<String, Error> {
    let (resolve, main) = parse_class(wit, class)?;
    let mut ts = Ts::new(&resolve, false);
    let stub = format!("{}Stub", pascal(class));
    let mut methods = String::new();
    for method in class_methods(&resolve, main) {
        let func = method.func;
        let mut params = Vec::new();
        let mut args = Vec::new();
        // trailing option parameters may be left out, as the host allows
        let optional_from = optional_from(&resolve, func);
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
    out.push_str(ts.decls());
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

/// Whether `ty` is an `option` (perhaps behind aliases): such trailing parameters may be left
/// out.
pub(crate) fn is_option(resolve: &Resolve, ty: &Type) -> bool {
    match ty {
        Type::Id(id) => match &resolve.types[*id].kind {
            TypeDefKind::Option(_) => true,
            TypeDefKind::Type(t) => is_option(resolve, t),
            _ => false,
        },
        _ => false,
    }
}

/// The index of a function's first parameter that callers may leave out: every parameter after
/// the last one that is not an `option` (the host lets trailing options be absent).
pub(crate) fn optional_from(resolve: &Resolve, func: &wit_parser::Function) -> usize {
    func.params
        .iter()
        .rposition(|p| !is_option(resolve, &p.ty))
        .map_or(0, |i| i + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn a_type_that_cannot_cross_rpc_is_refused() {
        let wit = "package a:b;\ninterface x { resource r; f: func(e: r); }\n";
        let err = typescript(wit, "x").unwrap_err();
        assert!(matches!(err, Error::Unsupported(_)), "{err:?}");
        assert_eq!(
            err.to_string(),
            "a resource, future or stream cannot cross RPC"
        );
    }
}

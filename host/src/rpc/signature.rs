//! WIT-like rendering of the types and signatures of a class's exported methods.
//!
//! Deploy replies, `GET /_admin/classes` and argument errors show users the signature of each
//! method as it would read in WIT (`func(by: s64) -> s64`), so this module turns wasmtime's
//! runtime [`Type`]s back into WIT syntax. It only renders: it never validates (that is
//! [`check_rpc_type`](super::json::check_rpc_type)) and never converts values.
//!
//! A compiled component keeps no names for its `record`, `variant`, `enum` and `flags` types,
//! nor for resources, so those are rendered structurally — `record { name: string, seats:
//! list<u32> }`, `variant { a, b(u32) }`, `enum { red, green }`, `flags { read, write }`,
//! `own<resource>` — which is longer than the WIT source but tells the caller everything the
//! JSON mapping needs. Everything else is exactly WIT: `list<T>`, `list<T, N>`, `map<K, V>`,
//! `tuple<A, B>`, `option<T>`, `result<T, E>`, `result<_, E>`, `result<T>`, `result`,
//! `future<T>`, `stream<T>`, `error-context`.

use wasmtime::component::types::{ComponentFunc, Type};

/// Renders `ty` as WIT, structurally for the nominal types whose names a component drops.
pub(crate) fn render_type(ty: &Type) -> String {
    let mut out = String::new();
    write_type(&mut out, ty);
    out
}

/// Renders a function signature as WIT: `func()`, `func(by: s64) -> s64`,
/// `func(a: list<string>) -> result<u32, string>`.
///
/// `results` holds at most one type in the component model; more are rendered as a tuple-like
/// list so that a future multi-result signature still reads unambiguously.
pub(crate) fn render_func(params: &[(String, Type)], results: &[Type]) -> String {
    let mut out = String::from("func(");
    out.push_str(&render_params(params));
    out.push(')');
    match results {
        [] => {}
        [one] => {
            out.push_str(" -> ");
            out.push_str(&render_type(one));
        }
        many => {
            out.push_str(" -> (");
            for (i, ty) in many.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                out.push_str(&render_type(ty));
            }
            out.push(')');
        }
    }
    out
}

/// Renders the signature of a function as the component declares it, including `async`.
pub(crate) fn render_component_func(func: &ComponentFunc) -> String {
    let params: Vec<(String, Type)> = func
        .params()
        .map(|(name, ty)| (name.to_owned(), ty))
        .collect();
    let results: Vec<Type> = func.results().collect();
    let rendered = render_func(&params, &results);
    if func.async_() {
        format!("async {rendered}")
    } else {
        rendered
    }
}

/// Renders a parameter list without parentheses: `a: u32, b: string`; empty for no parameters.
pub(crate) fn render_params(params: &[(String, Type)]) -> String {
    let mut out = String::new();
    for (i, (name, ty)) in params.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        out.push_str(name);
        out.push_str(": ");
        out.push_str(&render_type(ty));
    }
    out
}

fn write_type(out: &mut String, ty: &Type) {
    match ty {
        Type::Bool => out.push_str("bool"),
        Type::S8 => out.push_str("s8"),
        Type::U8 => out.push_str("u8"),
        Type::S16 => out.push_str("s16"),
        Type::U16 => out.push_str("u16"),
        Type::S32 => out.push_str("s32"),
        Type::U32 => out.push_str("u32"),
        Type::S64 => out.push_str("s64"),
        Type::U64 => out.push_str("u64"),
        Type::Float32 => out.push_str("f32"),
        Type::Float64 => out.push_str("f64"),
        Type::Char => out.push_str("char"),
        Type::String => out.push_str("string"),
        Type::List(list) => {
            out.push_str("list<");
            write_type(out, &list.ty());
            out.push('>');
        }
        Type::FixedLengthList(list) => {
            out.push_str("list<");
            write_type(out, &list.ty());
            out.push_str(", ");
            out.push_str(&list.len().to_string());
            out.push('>');
        }
        Type::Map(map) => {
            out.push_str("map<");
            write_type(out, &map.key());
            out.push_str(", ");
            write_type(out, &map.value());
            out.push('>');
        }
        Type::Record(record) => {
            out.push_str("record {");
            for (i, field) in record.fields().enumerate() {
                out.push_str(if i == 0 { " " } else { ", " });
                out.push_str(field.name);
                out.push_str(": ");
                write_type(out, &field.ty);
            }
            out.push_str(" }");
        }
        Type::Tuple(tuple) => {
            out.push_str("tuple<");
            for (i, ty) in tuple.types().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_type(out, &ty);
            }
            out.push('>');
        }
        Type::Variant(variant) => {
            out.push_str("variant {");
            for (i, case) in variant.cases().enumerate() {
                out.push_str(if i == 0 { " " } else { ", " });
                out.push_str(case.name);
                if let Some(payload) = &case.ty {
                    out.push('(');
                    write_type(out, payload);
                    out.push(')');
                }
            }
            out.push_str(" }");
        }
        Type::Enum(enum_) => write_names(out, "enum", enum_.names()),
        Type::Flags(flags) => write_names(out, "flags", flags.names()),
        Type::Option(option) => {
            out.push_str("option<");
            write_type(out, &option.ty());
            out.push('>');
        }
        Type::Result(result) => match (result.ok(), result.err()) {
            (None, None) => out.push_str("result"),
            (Some(ok), None) => {
                out.push_str("result<");
                write_type(out, &ok);
                out.push('>');
            }
            (ok, Some(err)) => {
                out.push_str("result<");
                match ok {
                    Some(ok) => write_type(out, &ok),
                    None => out.push('_'),
                }
                out.push_str(", ");
                write_type(out, &err);
                out.push('>');
            }
        },
        Type::Own(_) => out.push_str("own<resource>"),
        Type::Borrow(_) => out.push_str("borrow<resource>"),
        Type::Future(future) => write_payload(out, "future", future.ty()),
        Type::Stream(stream) => write_payload(out, "stream", stream.ty()),
        Type::ErrorContext => out.push_str("error-context"),
    }
}

/// `enum` and `flags` read the same: a keyword and the declared names.
fn write_names<'a>(out: &mut String, keyword: &str, names: impl Iterator<Item = &'a str>) {
    out.push_str(keyword);
    out.push_str(" {");
    for (i, name) in names.enumerate() {
        out.push_str(if i == 0 { " " } else { ", " });
        out.push_str(name);
    }
    out.push_str(" }");
}

fn write_payload(out: &mut String, keyword: &str, payload: Option<Type>) {
    out.push_str(keyword);
    if let Some(payload) = payload {
        out.push('<');
        write_type(out, &payload);
        out.push('>');
    }
}

/// Real wasmtime [`Type`]s for tests, taken from components written in WAT.
///
/// wasmtime offers no way to construct a `Type` by hand, so tests declare the types in a
/// component and read them back from its exports.
#[cfg(test)]
pub(crate) mod wat_types {
    use std::collections::HashMap;

    use wasmtime::component::Component;
    use wasmtime::component::types::{ComponentFunc, ComponentItem, Type};
    use wasmtime::{Config, Engine};

    fn engine() -> Engine {
        let mut config = Config::new();
        config.wasm_component_model_map(true);
        config.wasm_component_model_fixed_length_lists(true);
        Engine::new(&config).expect("engine for test components")
    }

    /// Compiles `(component {body})` and returns its exported types by export name.
    ///
    /// The component model requires `record`, `variant`, `enum`, `flags` and resources to be
    /// named wherever they are exported, so a test exports them first (`(export $point "point"
    /// (type $point'))`) and builds bigger types from the exported names.
    pub(crate) fn types(body: &str) -> HashMap<String, Type> {
        let engine = engine();
        let component = Component::new(&engine, format!("(component {body})"))
            .unwrap_or_else(|e| panic!("test component does not compile: {e:?}\n{body}"));
        component
            .component_type()
            .exports(&engine)
            .filter_map(|(name, export)| match export.ty {
                ComponentItem::Type(ty) => Some((name.to_owned(), ty)),
                _ => None,
            })
            .collect()
    }

    /// The type exported as `name` by `(component {body})`.
    pub(crate) fn ty(body: &str, name: &str) -> Type {
        types(body)
            .remove(name)
            .unwrap_or_else(|| panic!("test component exports no type `{name}`"))
    }

    /// The function imported as `name` by `(component {body})`.
    pub(crate) fn func(body: &str, name: &str) -> ComponentFunc {
        let engine = engine();
        let component = Component::new(&engine, format!("(component {body})"))
            .unwrap_or_else(|e| panic!("test component does not compile: {e:?}\n{body}"));
        let ty = component.component_type();
        match ty.get_import(&engine, name).map(|import| import.ty) {
            Some(ComponentItem::ComponentFunc(func)) => func,
            other => panic!("test component imports no function `{name}`: {other:?}"),
        }
    }

    /// A function's parameters and results in the shape the RPC layer stores them.
    pub(crate) fn signature(func: &ComponentFunc) -> (Vec<(String, Type)>, Vec<Type>) {
        (
            func.params()
                .map(|(name, ty)| (name.to_owned(), ty))
                .collect(),
            func.results().collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::wat_types::{func, signature, ty};
    use super::*;

    fn rendered(body: &str) -> String {
        render_type(&ty(body, "t"))
    }

    #[test]
    fn primitives_render_as_their_wit_names() {
        for name in [
            "bool", "s8", "u8", "s16", "u16", "s32", "u32", "s64", "u64", "char", "string",
        ] {
            assert_eq!(
                rendered(&format!(
                    "(type $t' (list {name})) (export \"t\" (type $t'))"
                )),
                format!("list<{name}>")
            );
        }
        assert_eq!(
            rendered("(type $t' (tuple f32 f64)) (export \"t\" (type $t'))"),
            "tuple<f32, f64>"
        );
    }

    #[test]
    fn generic_types_render_as_wit() {
        let cases = [
            ("(list (list string))", "list<list<string>>"),
            ("(list u8 4)", "list<u8, 4>"),
            ("(map string u32)", "map<string, u32>"),
            ("(tuple u8 string)", "tuple<u8, string>"),
            ("(option (option u32))", "option<option<u32>>"),
            ("(result u32 (error string))", "result<u32, string>"),
            ("(result (error string))", "result<_, string>"),
            ("(result u32)", "result<u32>"),
            ("(result)", "result"),
        ];
        for (wat, wit) in cases {
            assert_eq!(
                rendered(&format!("(type $t' {wat}) (export \"t\" (type $t'))")),
                wit,
                "{wat}"
            );
        }
    }

    #[test]
    fn nominal_types_render_structurally() {
        let body = r#"
            (type $flags' (flags "read" "write"))
            (export $flags "perms" (type $flags'))
            (type $enum' (enum "red" "green"))
            (export $enum "color" (type $enum'))
            (type $variant' (variant (case "a") (case "b" u32)))
            (export $variant "v" (type $variant'))
            (type $record' (record (field "name" string) (field "seats" (list u32))
                                   (field "color" $enum) (field "perms" $flags)
                                   (field "v" $variant)))
            (export "t" (type $record'))
        "#;
        assert_eq!(
            rendered(body),
            "record { name: string, seats: list<u32>, color: enum { red, green }, \
             perms: flags { read, write }, v: variant { a, b(u32) } }"
        );
    }

    #[test]
    fn resources_render_as_handles() {
        let body = r#"
            (import "r" (type $r (sub resource)))
            (type $own' (own $r))
            (export "own" (type $own'))
            (type $borrow' (borrow $r))
            (export "borrow" (type $borrow'))
        "#;
        assert_eq!(render_type(&ty(body, "own")), "own<resource>");
        assert_eq!(render_type(&ty(body, "borrow")), "borrow<resource>");
    }

    #[test]
    fn signatures_render_as_wit_funcs() {
        let cases = [
            ("(func)", "func()"),
            (
                "(func (param \"by\" s64) (result s64))",
                "func(by: s64) -> s64",
            ),
            (
                "(func (param \"a\" (list string)) (result (result u32 (error string))))",
                "func(a: list<string>) -> result<u32, string>",
            ),
            (
                "(func (param \"x\" u32) (param \"y\" (option string)))",
                "func(x: u32, y: option<string>)",
            ),
        ];
        for (wat, wit) in cases {
            let f = func(&format!("(import \"f\" {wat})"), "f");
            assert_eq!(render_component_func(&f), wit, "{wat}");
            let (params, results) = signature(&f);
            assert_eq!(render_func(&params, &results), wit, "{wat}");
        }
    }
}

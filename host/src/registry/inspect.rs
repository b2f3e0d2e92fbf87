//! Validation and inspection of a component against the `durable-object` world: the binary's
//! preamble, its imports (linked, with the stubs of its bindings checked against the bound
//! classes), its handler exports and its RPC methods, into a [`ClassVersion`].

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use wasmdo_protocol::stubs::binding_wit_name;
use wasmtime::component::types::{ComponentFunc, ComponentItem, Type};
use wasmtime::component::{Component, ComponentExportIndex};

use super::Registry;
use super::store::{ClassRecord, invalid};
use crate::bindings::{self, DurableObjectHostIndices};
use crate::class::{ClassVersion, Method, WebSocketHandler};
use crate::error::ObjectError;
use crate::rpc;
use crate::rpc::calls;

/// How a class's version looks up the classes its bindings name, to check its stubs against
/// their methods (`None`: link without checking).
type BoundClasses<'a> = Option<&'a dyn Fn(&str) -> Option<Arc<ClassVersion>>>;

impl Registry {
    /// Checks `component` against the world and collects its RPC methods. With `bound`, each
    /// binding must name a class `bound` knows (or `class` itself, deployed for the first time)
    /// and each stub must fit that class's methods.
    pub(super) fn inspect(
        &self,
        class: &str,
        component: Component,
        record: &ClassRecord,
        size: u64,
        bound: BoundClasses<'_>,
    ) -> Result<ClassVersion, ObjectError> {
        // the project deploy's settings, under `wasmdo.toml`'s
        let mut env = record.env.clone();
        env.extend(self.env.get(class).cloned().unwrap_or_default());
        let mut bindings: BTreeMap<String, String> = record
            .bindings
            .iter()
            .map(|(name, target)| (binding_wit_name(name), target.clone()))
            .collect();
        bindings.extend(self.bindings.get(class).cloned().unwrap_or_default());
        let bindings = Arc::new(bindings);
        let mut linker = self.linker.clone();
        let check = |target: &str, method: &str, stub: &ComponentFunc| -> Result<(), String> {
            let Some(bound) = bound else {
                return Ok(());
            };
            let Some(target_class) = bound(target) else {
                if target == class {
                    // a class calling its own kind, deployed for the first time
                    return Ok(());
                }
                return Err(format!(
                    "class `{target}` is not deployed: deploy it first (bindings name deployed classes)"
                ));
            };
            let method = target_class.methods.get(method).ok_or_else(|| {
                format!(
                    "it has no method `{method}` (it has {})",
                    target_class.method_names()
                )
            })?;
            let (params, result) = calls::stub_signature(stub)?;
            let fits = method.fits_stub(&params, result.as_ref());
            if fits {
                Ok(())
            } else {
                Err(format!(
                    "the method is `{}`: the stub method must take these parameters and return `result<T, call-error>` with T its result (`wasmdo bindgen <class> --lang wit-stub` writes it)",
                    method.signature
                ))
            }
        };
        if let Some(bound) = bound {
            for (binding, target) in bindings.iter() {
                if target != class && bound(target).is_none() {
                    return Err(invalid(format!(
                        "class `{class}` has the binding `{binding}` to class `{target}`, which is not deployed: deploy `{target}` first, or fix the class's bindings ([classes.{class}.bindings] in wasmdo.toml, or the project's manifest)"
                    )));
                }
            }
        }
        calls::link_stubs(
            &mut linker,
            &self.engine,
            &component,
            class,
            &bindings,
            &check,
        )
        .map_err(|why| invalid(format!("class `{class}` cannot be linked: {why}")))?;
        let pre = linker.instantiate_pre(&component).map_err(|e| {
            invalid(format!(
                "the component imports something this host does not provide: {e:#}. \
                 Objects may import `wasmdo:object/*` and the WASI 0.2 interfaces."
            ))
        })?;
        let ty = component.component_type();
        let has_handler = ty
            .exports(&self.engine)
            .any(|(name, _)| name.starts_with("wasmdo:object/handler@"));
        if !has_handler {
            return Err(invalid(format!(
                "the component does not export `{}` (`init` and `fetch`): build it with the \
                 wasmdo SDK (`wasmdo::export_object!`) or export the handler interface yourself",
                bindings::HANDLER_INTERFACE
            )));
        }
        let handler = DurableObjectHostIndices::new(&pre).map_err(|e| {
            invalid(format!(
                "the component's `{}` export does not match the world: {e:#}",
                bindings::HANDLER_INTERFACE
            ))
        })?;
        let methods = self.collect_methods(&component)?;
        let alarm = component
            .get_export_index(None, bindings::ALARM_HANDLER_INTERFACE)
            .and_then(|iface| component.get_export_index(Some(&iface), "alarm"));
        let websocket = component
            .get_export_index(None, bindings::WEBSOCKET_HANDLER_INTERFACE)
            .and_then(|iface| {
                let get = |name| component.get_export_index(Some(&iface), name);
                Some(WebSocketHandler {
                    message: get("websocket-message")?,
                    close: get("websocket-close")?,
                    error: get("websocket-error")?,
                })
            });
        let dynamic = dynamic_handler(&component)?;
        let packed_fetch = packed_handler(&component)?;
        let event_loop = component
            .get_export_index(None, bindings::EVENT_LOOP_HANDLER_INTERFACE)
            .and_then(|iface| component.get_export_index(Some(&iface), "run"));
        let snapshot = component
            .get_export_index(None, bindings::SNAPSHOT_HANDLER_INTERFACE)
            .and_then(|iface| {
                let get = |name| component.get_export_index(Some(&iface), name);
                Some((get("snapshot")?, get("restore")?))
            });
        Ok(ClassVersion {
            alarm,
            dynamic,
            packed_fetch,
            event_loop,
            websocket,
            snapshot,
            name: class.into(),
            version: record.version,
            hash: record.hash.clone(),
            size,
            deployed_at_ms: record.deployed_at_ms,
            pre,
            handler,
            methods,
            env: Arc::new(env),
            bindings,
            fetch: self.fetch.get(class).cloned().unwrap_or_default(),
            namespace: self.secret.namespace(record.namespace_name(class)),
            namespace_name: record.namespace_name(class).into(),
        })
    }

    fn collect_methods(
        &self,
        component: &Component,
    ) -> Result<BTreeMap<String, Arc<Method>>, ObjectError> {
        let ty = component.component_type();
        let mut all = Vec::new();
        for (interface, item) in ty.exports(&self.engine) {
            if interface.starts_with(bindings::PLATFORM_PACKAGE)
                || interface.starts_with("wasi:")
                || interface.starts_with("componentize-py:")
                // componentize-py's build-time initializer, left exported as `exports`
                || interface == "exports"
            {
                continue;
            }
            let ComponentItem::ComponentInstance(instance) = item.ty else {
                continue;
            };
            let iface_index = component
                .get_export_index(None, interface)
                .ok_or_else(|| ObjectError::internal(format!("export `{interface}` vanished")))?;
            for (name, item) in instance.exports(&self.engine) {
                let ComponentItem::ComponentFunc(func) = item.ty else {
                    continue;
                };
                let index = component
                    .get_export_index(Some(&iface_index), name)
                    .ok_or_else(|| ObjectError::internal(format!("export `{name}` vanished")))?;
                all.push(method(interface, name, &func, index)?);
            }
        }
        let mut methods = BTreeMap::new();
        let mut counts: HashMap<String, usize> = HashMap::new();
        for m in &all {
            *counts.entry(m.name.clone()).or_default() += 1;
        }
        for m in all {
            let m = Arc::new(m);
            let short = m.interface.rsplit('/').next().unwrap_or(&m.interface);
            let short = short.split('@').next().unwrap_or(short);
            methods.insert(format!("{short}.{}", m.name), m.clone());
            if counts[&m.name] == 1 {
                methods.insert(m.name.clone(), m);
            }
        }
        Ok(methods)
    }
}

/// The function `name` of the optional exported `interface`, if the component exports it and
/// `fits` its parameter and result types; a component whose export does not fit is refused with
/// what it must be (`required`, the WIT).
fn optional_handler(
    component: &Component,
    interface: &str,
    name: &str,
    required: &str,
    fits: impl Fn(&[Type], &[Type]) -> bool,
) -> Result<Option<ComponentExportIndex>, ObjectError> {
    let Some(iface) = component.get_export_index(None, interface) else {
        return Ok(None);
    };
    let wrong = || {
        invalid(format!(
            "the component's `{interface}` export does not match the world: it must be {required}"
        ))
    };
    let Some((ComponentItem::ComponentFunc(func), index)) =
        component.get_export(Some(&iface), name)
    else {
        return Err(wrong());
    };
    let params: Vec<Type> = func.params().map(|(_, ty)| ty).collect();
    let results: Vec<Type> = func.results().collect();
    if !fits(&params, &results) {
        return Err(wrong());
    }
    Ok(Some(index))
}

/// Whether `ty` is `list<u8>`.
fn is_bytes(ty: &Type) -> bool {
    matches!(ty, Type::List(list) if list.ty() == Type::U8)
}

/// The component's `dynamic-handler.call` (dynamic RPC), if it exports one, checked against the
/// WIT: `func(method: string, args: list<u8>) -> result<list<u8>, dynamic-error>`.
fn dynamic_handler(component: &Component) -> Result<Option<ComponentExportIndex>, ObjectError> {
    optional_handler(
        component,
        bindings::DYNAMIC_HANDLER_INTERFACE,
        "call",
        "`call: func(method: string, args: list<u8>) -> result<list<u8>, dynamic-error>`",
        |params, results| {
            matches!(params, [Type::String, args] if is_bytes(args))
                && matches!(results, [Type::Result(result)]
                    if result.ok().as_ref().is_some_and(is_bytes)
                        && matches!(result.err(), Some(Type::Variant(_))))
        },
    )
}

/// A record field's name and a check of its type.
type FieldCheck<'a> = (&'a str, &'a dyn Fn(&Type) -> bool);

/// The component's `packed-handler.fetch`, if it exports one, checked against the WIT:
/// `func(request: packed-request) -> result<packed-response, string>`.
fn packed_handler(component: &Component) -> Result<Option<ComponentExportIndex>, ObjectError> {
    let record = |ty: &Type, shape: &[FieldCheck<'_>]| {
        let Type::Record(record) = ty else {
            return false;
        };
        let fields: Vec<_> = record.fields().collect();
        fields.len() == shape.len()
            && fields
                .iter()
                .zip(shape)
                .all(|(field, (name, fits))| field.name == *name && fits(&field.ty))
    };
    let string = |ty: &Type| *ty == Type::String;
    optional_handler(
        component,
        bindings::PACKED_HANDLER_INTERFACE,
        "fetch",
        "`fetch: func(request: packed-request) -> result<packed-response, string>`, with `packed-request` { head: string, body: list<u8> } and `packed-response` { status: u16, headers: string, body: list<u8> }",
        |params, results| {
            matches!(params, [request] if record(request, &[("head", &string), ("body", &is_bytes)]))
                && matches!(results, [Type::Result(result)]
                    if result.ok().as_ref().is_some_and(|ok| record(ok, &[
                        ("status", &|ty: &Type| *ty == Type::U16),
                        ("headers", &string),
                        ("body", &is_bytes),
                    ]))
                        && result.err() == Some(Type::String))
        },
    )
}

fn method(
    interface: &str,
    name: &str,
    func: &ComponentFunc,
    index: ComponentExportIndex,
) -> Result<Method, ObjectError> {
    let params: Vec<(String, Type)> = func.params().map(|(n, t)| (n.to_string(), t)).collect();
    let results: Vec<Type> = func.results().collect();
    for (param, ty) in &params {
        rpc::json::check_rpc_type(ty).map_err(|why| {
            invalid(format!(
                "RPC method `{interface}#{name}` cannot be called over RPC: parameter `{param}`: {why}"
            ))
        })?;
    }
    for ty in &results {
        rpc::json::check_rpc_type(ty).map_err(|why| {
            invalid(format!(
                "RPC method `{interface}#{name}` cannot be called over RPC: its result: {why}"
            ))
        })?;
    }
    let signature = rpc::signature::render_component_func(func);
    Ok(Method {
        name: name.to_string(),
        interface: interface.to_string(),
        signature,
        index,
        params,
        result: results.into_iter().next(),
    })
}

/// Names the failing class in a refusal of one class among several.
pub(super) fn in_class(class: &str, e: ObjectError) -> ObjectError {
    match e {
        ObjectError::InvalidComponent(why) if !why.contains(&format!("`{class}`")) => {
            ObjectError::InvalidComponent(format!("class `{class}`: {why}"))
        }
        e => e,
    }
}

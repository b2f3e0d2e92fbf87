//! Object-to-object calls: the `objects` interface (ids through bindings) and the stubs a caller
//! imports from `binding:<name>` packages, linked per class as dynamic host functions that carry
//! component values straight to the callee's method (no JSON).
//!
//! Rules:
//! - a class may only import stubs for its bindings (`[classes.<class>.bindings]`), and a stub's
//!   methods must match the bound class's methods (the same parameters, the result wrapped in
//!   `result<_, call-error>`); both are checked at deploy, and again at each call, because the
//!   bound class may be redeployed;
//! - a stub (the resource `stub`: Cloudflare's `DurableObjectStub`) only holds its target's
//!   address, in the Store's resource table: making one activates nothing and cannot fail; an
//!   invalid id or name fails at the first call;
//! - a call is an event of the callee, serialized with its other events; its reply is released
//!   after the callee's commit (output gate);
//! - every event carries its call chain (the objects waiting on it); a call to an object in the
//!   chain (A → B → A) fails at once with `cycle` — an instance cannot be re-entered, and waiting
//!   would deadlock.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Weak};

use wasmdo_protocol::stubs::binding_wit_name;
use wasmtime::Engine;
use wasmtime::component::types::{ComponentFunc, ComponentItem, Type};
use wasmtime::component::{Component, HasData, Linker, Resource, ResourceTable, ResourceType, Val};

use crate::bindings::dynamic_api::{self, Thrown};
use crate::bindings::http_types::{Request, Response};
use crate::bindings::objects_api::{self, CallError, Failure};
use crate::bindings::packed_http_types::{PackedRequest, PackedResponse};
use crate::bindings::packed_objects_api;
use crate::error::ObjectError;
use crate::ids::ObjectKey;
use crate::limits::MAX_REMEMBERED_ADDRESSES;
use crate::packed_http;
use crate::router::{Address, Chain, Router, StubMethod};
use crate::websockets::WebSocketsCtx;

/// The package prefix of the stub interfaces a caller imports.
pub(crate) const STUB_PACKAGE: &str = "binding:";

/// What a stub resource stands for: its target object (of the class its interface is bound to).
pub(crate) struct StubTarget(Address);

/// What the stub functions need of a Store's data: the calling object's [`CallCtx`] and the
/// resource table its stubs live in.
pub(crate) trait CallsView: Send {
    fn calls_and_table(&mut self) -> (&mut CallCtx, &mut ResourceTable);
}

/// What an object needs to call others: its bindings, the router, and the chain of objects
/// waiting on the event it is running.
pub(crate) struct CallCtx {
    pub(crate) caller: ObjectKey,
    /// Binding (WIT form) → bound class.
    pub(crate) bindings: Arc<BTreeMap<String, String>>,
    pub(crate) router: Weak<dyn Router>,
    /// The objects waiting, in this event's call chain, for the call that delivered it (empty
    /// for requests from outside the host).
    pub(crate) chain: Chain,
    /// Objects this object called recently.
    pub(crate) resolved: ResolvedAddresses,
}

/// The object a called address resolved to, and the name it was addressed by.
type Resolved = (ObjectKey, Option<Arc<str>>);

/// Addresses an object called recently, by bound class, with what they resolved to. Resolving
/// costs HMACs (a name's id, an id's check), and an object tends to call the same few others,
/// often through a new stub each time (`get-by-name` per call). An address always resolves to
/// the same object (ids depend only on the class's namespace name and the host secret), so entries never go
/// stale; at most [`MAX_REMEMBERED_ADDRESSES`] are kept.
///
/// It also remembers the names behind ids this object derived (`id-from-name`), so that an
/// object called through such an id (`get(idFromName(n))`, `fetch(binding, id)`) knows its name,
/// as it does on Cloudflare.
#[derive(Default)]
pub(crate) struct ResolvedAddresses {
    by_class: HashMap<String, HashMap<Address, Resolved>>,
    /// (class, id hex) → the name it was derived from.
    names: HashMap<(String, String), String>,
    len: usize,
}

impl ResolvedAddresses {
    /// The address to call for `address`: by name if it is an id this object derived from one.
    fn named(&self, class: &str, address: &Address) -> Option<Address> {
        let Address::Id(hex) = address else {
            return None;
        };
        let name = self.names.get(&(class.to_string(), hex.clone()))?;
        Some(Address::Name(name.clone()))
    }

    fn remember_name(&mut self, class: &str, hex: String, name: String) {
        if self.len >= MAX_REMEMBERED_ADDRESSES {
            self.clear();
        }
        if self.names.insert((class.to_string(), hex), name).is_none() {
            self.len += 1;
        }
    }

    fn clear(&mut self) {
        self.by_class.clear();
        self.names.clear();
        self.len = 0;
    }

    fn get(&self, class: &str, address: &Address) -> Option<&Resolved> {
        self.by_class.get(class)?.get(address)
    }

    fn insert(&mut self, class: &str, address: Address, resolved: Resolved) {
        if self.len >= MAX_REMEMBERED_ADDRESSES {
            self.clear();
        }
        let addresses = match self.by_class.get_mut(class) {
            Some(addresses) => addresses,
            None => self.by_class.entry(class.to_string()).or_default(),
        };
        if addresses.insert(address, resolved).is_none() {
            self.len += 1;
        }
    }
}

impl CallCtx {
    fn class_of(&self, binding: &str) -> Result<&str, CallError> {
        self.bindings
            .get(&binding_wit_name(binding))
            .map(String::as_str)
            .ok_or_else(|| {
                CallError::UnknownBinding(format!(
                    "class `{}` has no binding `{binding}`; add it under [classes.{}.bindings] in wasmdo.toml, or to the project's `durable_objects.bindings` in wrangler.toml",
                    self.caller.class, self.caller.class
                ))
            })
    }

    /// The router, unless the host is shutting down.
    fn router(&self) -> Result<Arc<dyn Router>, CallError> {
        (self.router.upgrade())
            .ok_or_else(|| CallError::Unavailable("the host is shutting down".into()))
    }

    /// The call chain of a call this object makes: the event's chain with the caller added.
    fn chain_with_caller(&self) -> Chain {
        let mut chain = Vec::with_capacity(self.chain.len() + 1);
        chain.extend(self.chain.iter().cloned());
        chain.push(self.caller.clone());
        Arc::new(chain)
    }

    /// Resolves `address` in `class`, remembering it.
    fn resolve(
        &mut self,
        router: &dyn Router,
        class: &str,
        address: &Address,
    ) -> Result<Resolved, CallError> {
        let named = self.resolved.named(class, address);
        let address = named.as_ref().unwrap_or(address);
        if let Some(to) = self.resolved.get(class, address) {
            return Ok(to.clone());
        }
        let (key, name) = router.resolve(class, address).map_err(call_error)?;
        let to = (key, name.map(Arc::from));
        self.resolved.insert(class, address.clone(), to.clone());
        Ok(to)
    }

    /// The part of a `fetch` or a call by name that needs the caller: the target (the object
    /// `id` of the class bound as `binding`) and the call chain.
    fn start_call(&mut self, binding: &str, id: &str) -> Result<Outgoing, CallError> {
        let class = self.class_of(binding)?.to_string();
        let router = self.router()?;
        let to = self.resolve(&*router, &class, &Address::Id(id.to_string()))?;
        Ok(Outgoing {
            router,
            to,
            chain: self.chain_with_caller(),
        })
    }
}

/// The `objects` interface's view of an object's state: its calls, and its WebSockets (a
/// `fetch` may pass on the WebSocket upgrade the caller is handling).
pub(crate) struct ObjectsHost<'a> {
    pub(crate) calls: &'a mut CallCtx,
    pub(crate) websockets: &'a mut WebSocketsCtx,
}

/// Links `objects` with [`ObjectsHost`] as its host state.
pub(crate) struct ObjectsApi;

impl HasData for ObjectsApi {
    type Data<'a> = ObjectsHost<'a>;
}

impl objects_api::Host for ObjectsHost<'_> {
    fn id_from_name(
        &mut self,
        binding: String,
        name: String,
    ) -> wasmtime::Result<Result<String, CallError>> {
        let calls = &mut *self.calls;
        Ok((|| {
            let class = calls.class_of(&binding)?.to_string();
            let hex = calls
                .router()?
                .id_from_name(&class, &name)
                .map_err(call_error)?
                .to_hex();
            calls.resolved.remember_name(&class, hex.clone(), name);
            Ok(hex)
        })())
    }

    fn new_unique_id(&mut self, binding: String) -> wasmtime::Result<Result<String, CallError>> {
        let calls = &*self.calls;
        Ok((|| {
            let class = calls.class_of(&binding)?;
            let id = calls.router()?.new_unique_id(class).map_err(call_error)?;
            Ok(id.to_hex())
        })())
    }

    fn id_from_string(
        &mut self,
        binding: String,
        id: String,
    ) -> wasmtime::Result<Result<String, CallError>> {
        let calls = &*self.calls;
        Ok((|| {
            let class = calls.class_of(&binding)?;
            let id = calls
                .router()?
                .id_from_string(class, &id)
                .map_err(call_error)?;
            Ok(id.to_hex())
        })())
    }

    async fn fetch(
        &mut self,
        binding: String,
        id: String,
        request: Request,
    ) -> wasmtime::Result<Result<Response, CallError>> {
        let fetch = match self.calls.start_call(&binding, &id) {
            Ok(fetch) => fetch,
            Err(e) => return Ok(Err(e)),
        };
        // the caller's own upgrade request, passed on: the callee may accept it
        let upgrade = is_websocket_upgrade(&request) && self.websockets.upgrade_pending();
        let (key, name) = fetch.to;
        let fetched = fetch
            .router
            .fetch_object(key, name.as_deref(), request, upgrade, fetch.chain)
            .await;
        Ok(match fetched {
            Ok(fetched) => {
                if let Some(accepted) = fetched.accepted {
                    self.websockets.pass_on(accepted);
                }
                Ok(fetched.response)
            }
            Err(e) => Err(call_error(e)),
        })
    }
}

impl packed_objects_api::Host for ObjectsHost<'_> {
    /// `objects.fetch` with the head packed (a JavaScript `stub.fetch`).
    async fn fetch(
        &mut self,
        binding: String,
        id: String,
        request: PackedRequest,
    ) -> wasmtime::Result<Result<PackedResponse, CallError>> {
        let request = match packed_http::unpack_request(request) {
            Ok(request) => request,
            Err(why) => return Ok(Err(CallError::BadCall(why))),
        };
        let fetched = objects_api::Host::fetch(self, binding, id, request).await?;
        Ok(fetched
            .and_then(|response| packed_http::pack_response(response).map_err(CallError::BadCall)))
    }
}

impl dynamic_api::Host for ObjectsHost<'_> {
    /// Dynamic RPC to the object `id` of the class bound as `binding`.
    async fn call(
        &mut self,
        binding: String,
        id: String,
        method: String,
        args: Vec<u8>,
    ) -> wasmtime::Result<Result<Result<Vec<u8>, Thrown>, CallError>> {
        let call = match self.calls.start_call(&binding, &id) {
            Ok(call) => call,
            Err(e) => return Ok(Err(e)),
        };
        let (key, name) = call.to;
        Ok(call
            .router
            .call_dynamic(key, name.as_deref(), method, args, call.chain)
            .await
            .map_err(call_error))
    }
}

/// Adds the `objects`, `packed-objects` and `dynamic` interfaces to `linker`, over the [`ObjectsHost`] `get` returns (a class's
/// stub imports are linked per class: [`link_stubs`]).
pub(crate) fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    get: fn(&mut T) -> ObjectsHost<'_>,
) -> wasmtime::Result<()> {
    objects_api::add_to_linker::<T, ObjectsApi>(linker, get)?;
    packed_objects_api::add_to_linker::<T, ObjectsApi>(linker, get)?;
    dynamic_api::add_to_linker::<T, ObjectsApi>(linker, get)
}

/// Whether a request asks for a WebSocket (`upgrade: websocket`).
fn is_websocket_upgrade(request: &Request) -> bool {
    request.headers.iter().any(|(name, value)| {
        name.eq_ignore_ascii_case("upgrade")
            && value
                .split(',')
                .any(|t| t.trim().eq_ignore_ascii_case("websocket"))
    })
}

/// A `fetch` or a call by name to another object, ready to go (see [`CallCtx::start_call`]).
struct Outgoing {
    router: Arc<dyn Router>,
    to: Resolved,
    chain: Chain,
}

/// The `call-error` a failed call reports to its caller.
fn call_error(e: ObjectError) -> CallError {
    match e {
        ObjectError::CallCycle(m) => CallError::Cycle(m),
        ObjectError::InvalidName(m) => CallError::InvalidId(m),
        ObjectError::UnknownMethod { .. }
        | ObjectError::InvalidArgument(_)
        | ObjectError::StaleStub(_) => CallError::BadCall(e.to_string()),
        ObjectError::UnknownClass(_)
        | ObjectError::Overloaded(_)
        | ObjectError::NotOwner(_)
        | ObjectError::ClusterUnavailable(_) => CallError::Unavailable(e.to_string()),
        other => CallError::CalleeFailed(Failure {
            kind: other.kind().to_string(),
            message: other.message(),
        }),
    }
}

/// `call-error` as a component value (for the dynamically typed stub functions).
fn call_error_val(e: CallError) -> Val {
    let (case, payload) = match e {
        CallError::UnknownBinding(m) => ("unknown-binding", Val::String(m)),
        CallError::InvalidId(m) => ("invalid-id", Val::String(m)),
        CallError::BadCall(m) => ("bad-call", Val::String(m)),
        CallError::Cycle(m) => ("cycle", Val::String(m)),
        CallError::CalleeFailed(f) => (
            "callee-failed",
            Val::Record(vec![
                ("kind".into(), Val::String(f.kind)),
                ("message".into(), Val::String(f.message)),
            ]),
        ),
        CallError::Unavailable(m) => ("unavailable", Val::String(m)),
    };
    Val::Variant(case.into(), Some(Box::new(payload)))
}

/// Whether two component types are the same WIT type (structurally: the same shape, names of
/// fields and cases, in the same order). Types of different components are compared this way.
pub(crate) fn same_type(a: &Type, b: &Type) -> bool {
    use Type as T;
    match (a, b) {
        (T::Bool, T::Bool)
        | (T::S8, T::S8)
        | (T::U8, T::U8)
        | (T::S16, T::S16)
        | (T::U16, T::U16)
        | (T::S32, T::S32)
        | (T::U32, T::U32)
        | (T::S64, T::S64)
        | (T::U64, T::U64)
        | (T::Float32, T::Float32)
        | (T::Float64, T::Float64)
        | (T::Char, T::Char)
        | (T::String, T::String) => true,
        (T::List(x), T::List(y)) => same_type(&x.ty(), &y.ty()),
        (T::FixedLengthList(x), T::FixedLengthList(y)) => {
            x.len() == y.len() && same_type(&x.ty(), &y.ty())
        }
        (T::Map(x), T::Map(y)) => {
            same_type(&x.key(), &y.key()) && same_type(&x.value(), &y.value())
        }
        (T::Option(x), T::Option(y)) => same_type(&x.ty(), &y.ty()),
        (T::Record(x), T::Record(y)) => {
            x.fields().len() == y.fields().len()
                && x.fields()
                    .zip(y.fields())
                    .all(|(f, g)| f.name == g.name && same_type(&f.ty, &g.ty))
        }
        (T::Tuple(x), T::Tuple(y)) => {
            x.types().len() == y.types().len()
                && x.types().zip(y.types()).all(|(s, t)| same_type(&s, &t))
        }
        (T::Variant(x), T::Variant(y)) => {
            x.cases().len() == y.cases().len()
                && x.cases()
                    .zip(y.cases())
                    .all(|(c, d)| c.name == d.name && same_optional(c.ty.as_ref(), d.ty.as_ref()))
        }
        (T::Enum(x), T::Enum(y)) => x.names().eq(y.names()),
        (T::Flags(x), T::Flags(y)) => x.names().eq(y.names()),
        (T::Result(x), T::Result(y)) => {
            same_optional(x.ok().as_ref(), y.ok().as_ref())
                && same_optional(x.err().as_ref(), y.err().as_ref())
        }
        _ => false,
    }
}

/// Whether two optional types are both absent or structurally the same.
pub(crate) fn same_optional(a: Option<&Type>, b: Option<&Type>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(a), Some(b)) => same_type(a, b),
        _ => false,
    }
}

/// The callee's parameter types and result type a stub method promises: its parameters after
/// the stub itself, and the `ok` of its `result<_, call-error>`.
pub(crate) fn stub_signature(stub: &ComponentFunc) -> Result<(Vec<Type>, Option<Type>), String> {
    let mut params = stub.params().map(|(_, t)| t);
    if !matches!(params.next(), Some(Type::Borrow(_))) {
        return Err("it must be a method of the resource `stub`".into());
    }
    let results: Vec<Type> = stub.results().collect();
    let [Type::Result(result)] = results.as_slice() else {
        return Err("it must return `result<T, call-error>`".into());
    };
    Ok((params.collect(), result.ok()))
}

/// Adds to `linker` the stub interfaces `component` imports from `binding:` packages: the
/// resource `stub`, its constructor (from an id) and `get-by-name`, and its methods, each
/// forwarding to the bound class's method of the same name. `bindings` maps a binding (WIT form)
/// to its class; an import of an unknown binding is an error naming the fix. `check` verifies the
/// bound classes exist and the stubs match their methods (at deploy; classes loaded at start-up
/// were checked when deployed).
pub(crate) fn link_stubs<T: CallsView + 'static>(
    linker: &mut Linker<T>,
    engine: &Engine,
    component: &Component,
    class: &str,
    bindings: &BTreeMap<String, String>,
    check: &dyn Fn(&str, &str, &ComponentFunc) -> Result<(), String>,
) -> Result<(), String> {
    let resource = wasmdo_protocol::stubs::STUB_RESOURCE;
    let (constructor, by_name, method_prefix) = (
        format!("[constructor]{resource}"),
        format!("[static]{resource}.get-by-name"),
        format!("[method]{resource}."),
    );
    for (import, item) in component.component_type().imports(engine) {
        let Some(rest) = import.strip_prefix(STUB_PACKAGE) else {
            continue;
        };
        let binding = rest.split(['/', '@']).next().unwrap_or_default();
        let Some(target) = bindings.get(binding) else {
            return Err(format!(
                "it imports `{import}`, a stub for the binding `{binding}`, but class `{class}` has no such binding: add `{binding} = \"<class>\"` under [classes.{class}.bindings] in wasmdo.toml"
            ));
        };
        let ComponentItem::ComponentInstance(instance) = item.ty else {
            return Err(format!("`{import}` must be an interface"));
        };
        let mut stubs = linker
            .instance(import)
            .map_err(|e| format!("linking `{import}`: {e}"))?;
        let link_err = |name: &str, e: wasmtime::Error| format!("linking `{import}#{name}`: {e}");
        for (name, item) in instance.exports(engine) {
            match item.ty {
                ComponentItem::Resource(_) if name == resource => stubs
                    .resource(
                        resource,
                        ResourceType::host::<StubTarget>(),
                        |mut store, rep| {
                            let (_, table) = store.data_mut().calls_and_table();
                            table.delete(Resource::<StubTarget>::new_own(rep))?;
                            Ok(())
                        },
                    )
                    .map_err(|e| link_err(name, e))?,
                ComponentItem::ComponentFunc(_) if name == constructor || name == by_name => {
                    let by_id = name == constructor;
                    stubs
                        .func_wrap(name, move |mut store, (s,): (String,)| {
                            let address = match by_id {
                                true => Address::Id(s),
                                false => Address::Name(s),
                            };
                            let (_, table) = store.data_mut().calls_and_table();
                            Ok((table.push(StubTarget(address))?,))
                        })
                        .map_err(|e| link_err(name, e))?
                }
                ComponentItem::ComponentFunc(func) if name.starts_with(&method_prefix) => {
                    let method = &name[method_prefix.len()..];
                    check(target, method, &func).map_err(|why| {
                        format!("stub `{import}#{method}` does not fit class `{target}`: {why}")
                    })?;
                    let stub = stub_signature(&func).map(|(params, result)| {
                        Arc::new(StubMethod {
                            class: target.clone(),
                            method: method.to_string(),
                            params,
                            result,
                        })
                    });
                    stubs
                        .func_new_async(name, move |mut store, _, params, results| {
                            let call = start_call(&mut store, &stub, params);
                            Box::new(async move {
                                results[0] = match call? {
                                    Ok(call) => call.finish().await,
                                    Err(e) => Val::Result(Err(Some(Box::new(call_error_val(e))))),
                                };
                                Ok(())
                            })
                        })
                        .map_err(|e| link_err(name, e))?
                }
                ComponentItem::ComponentFunc(_) | ComponentItem::Resource(_) => {
                    return Err(format!(
                        "`{import}` declares `{name}`; a stub interface only has the resource `{resource}` with its constructor, `get-by-name` and methods (`wasmdo bindgen <class> --lang wit-stub` writes it)"
                    ));
                }
                _ => {}
            }
        }
    }
    Ok(())
}

/// A stub call ready to go: everything it needs, owned (the store's state is not `Sync`, and the
/// call awaits).
struct Call {
    router: Arc<dyn Router>,
    to: Resolved,
    stub: Arc<StubMethod>,
    args: Vec<Val>,
    chain: Chain,
}

/// The part of a stub call that needs the caller's store: the target object (resolved, or
/// remembered from an earlier call), the arguments after the stub, and the call chain with the
/// caller added. An error is the call's (`Ok(Err)`), or a trap for a malformed call.
fn start_call<T: CallsView>(
    store: &mut wasmtime::StoreContextMut<'_, T>,
    stub: &Result<Arc<StubMethod>, String>,
    params: &[Val],
) -> wasmtime::Result<Result<Call, CallError>> {
    let Some(Val::Resource(target)) = params.first() else {
        wasmtime::bail!("a stub method is called on a stub");
    };
    let target = Resource::<StubTarget>::try_from_resource_any(*target, &mut *store)?;
    let stub = match stub {
        Ok(stub) => stub.clone(),
        Err(why) => return Ok(Err(CallError::BadCall(why.clone()))),
    };
    let (calls, table) = store.data_mut().calls_and_table();
    let router = match calls.router() {
        Ok(router) => router,
        Err(e) => return Ok(Err(e)),
    };
    let address = &table.get(&target)?.0;
    let to = match calls.resolve(&*router, &stub.class, address) {
        Ok(to) => to,
        Err(e) => return Ok(Err(e)),
    };
    Ok(Ok(Call {
        router,
        to,
        stub,
        args: params[1..].to_vec(),
        chain: calls.chain_with_caller(),
    }))
}

impl Call {
    /// Sends the call to the callee and waits for its reply (released after the callee's
    /// commit): the callee's result, or the call's error, as the stub's `result<_, call-error>`.
    async fn finish(self) -> Val {
        let (key, name) = self.to;
        let outcome = self
            .router
            .invoke(key, name.as_deref(), self.stub, self.args, self.chain)
            .await
            .map_err(call_error);
        match outcome {
            Ok(value) => Val::Result(Ok(value.map(Box::new))),
            Err(e) => Val::Result(Err(Some(Box::new(call_error_val(e))))),
        }
    }
}

//! One deployed version of a class: its component, ready to instantiate, the handler exports it
//! has, its RPC methods and the settings its objects run with — what [`crate::registry`] keeps
//! per class and an activation is made from.

use std::collections::BTreeMap;
use std::sync::Arc;

use wasmtime::component::types::Type;
use wasmtime::component::{ComponentExportIndex, InstancePre};

use crate::bindings::DurableObjectHostIndices;
use crate::ids::Namespace;
use crate::outbound::AllowList;
use crate::rpc::calls::{same_optional, same_type};
use crate::state::ObjectState;

/// One deployed version of a class: everything needed to activate its objects.
pub struct ClassVersion {
    /// Class name.
    pub name: Arc<str>,
    /// 1 for the first deploy, +1 for each later one.
    pub version: u64,
    /// SHA-256 of the component, hex.
    pub hash: String,
    /// Size of the component in bytes.
    pub size: u64,
    /// Unix time of the deploy, in milliseconds.
    pub deployed_at_ms: u64,
    pub(crate) pre: InstancePre<ObjectState>,
    pub(crate) handler: DurableObjectHostIndices,
    /// The exported `alarm-handler.alarm` function, if the class has one.
    pub(crate) alarm: Option<ComponentExportIndex>,
    /// The exported `websocket-handler` functions, if the class has them.
    pub(crate) websocket: Option<WebSocketHandler>,
    /// The exported `packed-handler.fetch` function (`fetch` with the head packed), if the class
    /// has one.
    pub(crate) packed_fetch: Option<ComponentExportIndex>,
    /// The exported `dynamic-handler.call` function (dynamic RPC), if the class has one.
    pub(crate) dynamic: Option<ComponentExportIndex>,
    /// The exported `event-loop-handler.run` function (timers between events), if the class has
    /// one.
    pub(crate) event_loop: Option<ComponentExportIndex>,
    /// The exported `snapshot-handler` functions (`snapshot`, `restore`), if the class has them.
    pub(crate) snapshot: Option<(ComponentExportIndex, ComponentExportIndex)>,
    /// RPC methods by name (bare name when unique across interfaces, and always
    /// `interface.name`).
    pub(crate) methods: BTreeMap<String, Arc<Method>>,
    pub(crate) env: Arc<BTreeMap<String, String>>,
    /// Binding (WIT form) → bound class.
    pub(crate) bindings: Arc<BTreeMap<String, String>>,
    /// Hosts its objects may send HTTP requests to.
    pub(crate) fetch: Arc<AllowList>,
    /// Mints and checks the ids of its objects (the same for every version of the class).
    pub(crate) namespace: Namespace,
    /// The namespace's name: keys the ids, names the storage directory (the class name unless
    /// the class was renamed).
    pub namespace_name: Arc<str>,
}

/// A class's `websocket-handler` exports.
pub(crate) struct WebSocketHandler {
    pub(crate) message: ComponentExportIndex,
    pub(crate) close: ComponentExportIndex,
    pub(crate) error: ComponentExportIndex,
}

/// One RPC method of a class.
pub struct Method {
    /// The function's name in WIT.
    pub name: String,
    /// The exported interface it belongs to, e.g. `example:counter/counter`.
    pub interface: String,
    /// Its WIT signature, e.g. `func(by: s64) -> s64`.
    pub signature: String,
    pub(crate) index: ComponentExportIndex,
    pub(crate) params: Vec<(String, Type)>,
    pub(crate) result: Option<Type>,
}

impl ClassVersion {
    /// The JSON description returned by deploy and `GET /_admin/classes`.
    pub fn describe(&self) -> serde_json::Value {
        let mut seen = std::collections::BTreeSet::new();
        let methods: Vec<_> = self
            .methods
            .values()
            .filter(|m| seen.insert((m.interface.clone(), m.name.clone())))
            .map(|m| {
                serde_json::json!({
                    "name": m.name,
                    "interface": m.interface,
                    "signature": m.signature,
                })
            })
            .collect();
        serde_json::json!({
            "class": &*self.name,
            "version": self.version,
            "hash": self.hash,
            "size": self.size,
            "deployed_at_ms": self.deployed_at_ms,
            "namespace": &*self.namespace_name,
            "methods": methods,
        })
    }

    /// The method called `name`: its WIT name (`put-many`, or `interface.method`), or the same
    /// name in JavaScript's camelCase (`putMany`) or Python's snake_case (`put_many`), which is
    /// how JS, TS and Python callers spell it.
    pub(crate) fn find_method(&self, name: &str) -> Option<&Arc<Method>> {
        self.methods.get(name).or_else(|| {
            let mut kebab = String::with_capacity(name.len() + 4);
            for c in name.chars() {
                if c == '_' && !kebab.is_empty() {
                    kebab.push('-');
                } else if c.is_ascii_uppercase() {
                    if !kebab.is_empty() && !kebab.ends_with(['.', '-']) {
                        kebab.push('-');
                    }
                    kebab.push(c.to_ascii_lowercase());
                } else {
                    kebab.push(c);
                }
            }
            self.methods.get(&kebab)
        })
    }

    /// The sorted, comma-separated method names (for error messages).
    pub(crate) fn method_names(&self) -> String {
        let names: Vec<&str> = self
            .methods
            .keys()
            .map(String::as_str)
            .filter(|n| !n.contains('.'))
            .collect();
        if names.is_empty() {
            "(none)".into()
        } else {
            names.join(", ")
        }
    }
}

impl Method {
    /// Whether a caller's stub for this method (its parameter types and the `ok` of its
    /// `result<_, call-error>`) fits the method's signature: the same types, structurally.
    pub(crate) fn fits_stub(&self, params: &[Type], result: Option<&Type>) -> bool {
        self.params.len() == params.len()
            && (self.params.iter().zip(params)).all(|((_, a), b)| same_type(a, b))
            && same_optional(self.result.as_ref(), result)
    }
}

//! Uploaded classes: validation against the `durable-object` world, compilation, the on-disk
//! cache of precompiled artifacts, and the current version of every class.
//!
//! Layout under the data directory:
//! - `components/<sha256>.wasm` — every uploaded component, as uploaded;
//! - `compiled/<sha256>-<engine>.cwasm` — its precompiled form for this engine build, so a
//!   restart (or a redeploy of the same bytes) never recompiles (a 12 MB JS component takes ~14 s
//!   to compile, ~20 ms to load precompiled); the directory can be moved out of the data dir
//!   and shared between hosts with `compile-cache` in `wasmdo.toml`;
//! - `classes.json` — class name → current version and content hash, replaced atomically.
//!
//! Guarantees: a deploy either fully succeeds (artifacts on disk, `classes.json` updated, new
//! activations use it) or changes nothing. A component is refused with a precise message when it
//! is not a component, imports something the host does not provide, lacks the handler exports,
//! or exposes RPC methods whose types cannot cross the wire (resources, streams, futures).

use std::collections::{BTreeMap, HashMap};
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use wasmtime::component::types::{ComponentFunc, ComponentItem, Type};
use wasmtime::component::{Component, ComponentExportIndex, HasSelf, InstancePre, Linker};
use wasmtime::{Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use crate::bindings::{self, DurableObjectHostIndices};
use crate::config::ClassConfig;
use crate::error::ObjectError;
use crate::ids::{HostSecret, Namespace};
use crate::instance::ObjectState;
use crate::limits::Limits;
use crate::object::ObjectCtx;
use crate::outbound::{self, AllowList};
use crate::rpc;
use crate::rpc::calls::{self, DirectoryHandle};
use crate::storage::sqlite::SqliteStorage;
use crate::websockets::WebSocketsCtx;

/// Longest class name; class names are also directory names.
const MAX_CLASS_NAME: usize = 64;

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
            "methods": methods,
        })
    }

    /// The method called `name`: its WIT name (`put-many`, or `interface.method`), or the same
    /// name in JavaScript's camelCase (`putMany`), which is how JS and TS callers spell it.
    pub(crate) fn find_method(&self, name: &str) -> Option<&Arc<Method>> {
        self.methods.get(name).or_else(|| {
            let mut kebab = String::with_capacity(name.len() + 4);
            for c in name.chars() {
                if c.is_ascii_uppercase() {
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

#[derive(Serialize, Deserialize, Clone)]
struct ClassRecord {
    version: u64,
    hash: String,
    deployed_at_ms: u64,
}

/// All classes; the engine and linker every instance is made with.
pub struct Registry {
    engine: Engine,
    linker: Linker<ObjectState>,
    dir: PathBuf,
    engine_tag: String,
    /// Where precompiled artifacts live (`compile-cache`, default `<data>/compiled`).
    compile_cache: PathBuf,
    secret: HostSecret,
    env: BTreeMap<String, BTreeMap<String, String>>,
    /// Per class: binding (WIT form) → bound class, from `[classes.<class>.bindings]`.
    bindings: BTreeMap<String, Arc<BTreeMap<String, String>>>,
    /// Per class: the hosts it may fetch from, `fetch` in `[classes.<class>]`.
    fetch: BTreeMap<String, Arc<AllowList>>,
    /// The directory, for the stub functions linked into classes that call other objects.
    directory: DirectoryHandle,
    classes: RwLock<HashMap<String, Arc<ClassVersion>>>,
    /// The class whose `fetch` answers every request outside the host's own routes (a
    /// project's entry Worker), if any.
    entry: RwLock<Option<String>>,
    /// Serializes deploys so versions and `classes.json` stay consistent.
    deploy_lock: tokio::sync::Mutex<()>,
}

/// The engine every class runs on: async, fuel and epoch interruption on, pooling allocator
/// sized for `max_live_objects`.
pub(crate) fn new_engine(limits: &Limits) -> anyhow::Result<Engine> {
    let mut config = wasmtime::Config::new();
    config
        .wasm_component_model(true)
        .consume_fuel(limits.fuel_metering)
        .epoch_interruption(true)
        .max_wasm_stack(limits.max_wasm_stack)
        // the async stack must hold the wasm stack plus host frames
        .async_stack_size(limits.max_wasm_stack + 1024 * 1024);
    let live = limits.max_live_objects.max(1);
    let mut pool = PoolingAllocationConfig::new();
    pool.total_component_instances(live)
        // a Rust component has ~3 core instances, a JS one a few more
        .total_core_instances(live.saturating_mul(8))
        .max_core_instances_per_component(32)
        .total_memories(live.saturating_mul(2))
        .max_memories_per_component(4)
        .total_tables(live.saturating_mul(4))
        .max_tables_per_component(8)
        .total_stacks(live)
        .max_memory_size(usize::try_from(limits.max_memory_bytes).unwrap_or(usize::MAX))
        // component and core instance metadata of a 12 MB JS component exceed the defaults
        .max_component_instance_size(1 << 20)
        .max_core_instance_size(1 << 20);
    config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    Engine::new(&config).map_err(|e| anyhow::anyhow!("cannot create the wasm engine: {e}"))
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Checks a class name: 1–64 characters of `[A-Za-z0-9_-]`, starting with a letter or digit.
pub fn validate_class_name(name: &str) -> Result<(), ObjectError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_CLASS_NAME
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric());
    if ok {
        Ok(())
    } else {
        Err(ObjectError::InvalidName(format!(
            "invalid class name `{name}`: use 1-{MAX_CLASS_NAME} letters, digits, `-` or `_`, starting with a letter or digit"
        )))
    }
}

fn invalid(msg: impl Into<String>) -> ObjectError {
    ObjectError::InvalidComponent(msg.into())
}

/// Checks the binary's preamble, so the common mistakes get a precise message before compiling.
fn check_preamble(bytes: &[u8]) -> Result<(), ObjectError> {
    if bytes.len() < 8 || &bytes[..4] != b"\0asm" {
        return Err(invalid(
            "not a WebAssembly binary: the upload must be a component (`\\0asm` header); build with `cargo build --target wasm32-wasip2`",
        ));
    }
    match bytes[4..8] {
        [0x0d, 0x00, 0x01, 0x00] => Ok(()),
        [0x01, 0x00, 0x00, 0x00] => Err(invalid(
            "this is a core WebAssembly module, not a component: build for `wasm32-wasip2` (or wrap it with `wasm-tools component new`)",
        )),
        _ => Err(invalid(
            "unsupported WebAssembly binary version: expected a component (layer 1, version 0x0d)",
        )),
    }
}

impl Registry {
    /// Opens the registry under `data/`, loading every class recorded there; `classes` are the
    /// per-class settings of `wasmdo.toml` (what each class is granted).
    pub(crate) fn open(
        engine: Engine,
        data: &Path,
        compile_cache: &Path,
        secret: HostSecret,
        classes: &BTreeMap<String, ClassConfig>,
    ) -> anyhow::Result<Registry> {
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
        outbound::add_to_linker(&mut linker)?;
        bindings::object_api::add_to_linker::<ObjectState, HasSelf<ObjectCtx>>(&mut linker, |s| {
            &mut s.object
        })?;
        bindings::websockets_api::add_to_linker::<ObjectState, HasSelf<WebSocketsCtx>>(
            &mut linker,
            |s| &mut s.websockets,
        )?;
        bindings::storage_api::add_to_linker::<ObjectState, HasSelf<SqliteStorage>>(
            &mut linker,
            |s| &mut s.storage,
        )?;
        bindings::alarms_api::add_to_linker::<ObjectState, HasSelf<SqliteStorage>>(
            &mut linker,
            |s| &mut s.storage,
        )?;
        bindings::objects_api::add_to_linker::<ObjectState, calls::ObjectsApi>(
            &mut linker,
            ObjectState::objects,
        )?;
        let env = classes
            .iter()
            .map(|(class, config)| (class.clone(), config.env.clone()))
            .collect();
        let bindings = classes
            .iter()
            .map(|(class, config)| {
                let b = config
                    .bindings
                    .iter()
                    .map(|(name, target)| (calls::binding_wit_name(name), target.clone()))
                    .collect();
                (class.clone(), Arc::new(b))
            })
            .collect();
        let fetch = classes
            .iter()
            .map(|(class, config)| (class.clone(), Arc::new(config.fetch.clone())))
            .collect();
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        let engine_tag = format!("{:016x}", hasher.finish());
        std::fs::create_dir_all(data.join("components"))?;
        std::fs::create_dir_all(compile_cache)?;
        let registry = Registry {
            engine,
            linker,
            dir: data.to_path_buf(),
            compile_cache: compile_cache.to_path_buf(),
            engine_tag,
            secret,
            env,
            bindings,
            fetch,
            directory: DirectoryHandle::default(),
            classes: RwLock::new(HashMap::new()),
            entry: RwLock::new(None),
            deploy_lock: tokio::sync::Mutex::new(()),
        };
        let records = registry.read_records()?;
        for (name, record) in records {
            let bytes = std::fs::read(registry.component_path(&record.hash))?;
            let component = registry.load_or_compile(&record.hash, &bytes)?;
            // checked against the bound classes when deployed; they may load after this one
            let class = registry
                .inspect(&name, component, &record, bytes.len() as u64, false)
                .map_err(|e| anyhow::anyhow!("class `{name}` no longer loads: {e}"))?;
            registry.insert(class);
        }
        Ok(registry)
    }

    /// The directory handle the stub functions use (set once the directory exists).
    pub(crate) fn directory_handle(&self) -> DirectoryHandle {
        self.directory.clone()
    }

    /// Lets stub calls reach the directory.
    pub(crate) fn attach_directory(&self, directory: &Arc<crate::directory::Directory>) {
        let _ = self.directory.set(Arc::downgrade(directory));
    }

    /// The engine.
    pub(crate) fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The current version of `class`, if deployed.
    pub fn get(&self, class: &str) -> Option<Arc<ClassVersion>> {
        self.classes
            .read()
            .expect("registry lock")
            .get(class)
            .cloned()
    }

    /// The entry Worker's current version: the class whose `fetch` answers every request
    /// outside `/_admin/`, `/rpc/` and `/objects/`.
    pub fn entry_worker(&self) -> Option<Arc<ClassVersion>> {
        let entry = self.entry.read().expect("registry lock").clone()?;
        self.get(&entry)
    }

    /// Makes `class` the entry Worker (`None`: requests outside the host's routes get 404).
    pub(crate) fn set_entry_worker(&self, class: Option<String>) {
        *self.entry.write().expect("registry lock") = class;
    }

    /// Every class, sorted by name.
    pub fn list(&self) -> Vec<Arc<ClassVersion>> {
        let mut all: Vec<_> = self
            .classes
            .read()
            .expect("registry lock")
            .values()
            .cloned()
            .collect();
        all.sort_by(|a, b| a.name.cmp(&b.name));
        all
    }

    fn component_path(&self, hash: &str) -> PathBuf {
        self.dir.join("components").join(format!("{hash}.wasm"))
    }

    fn compiled_path(&self, hash: &str) -> PathBuf {
        self.compile_cache
            .join(format!("{hash}-{}.cwasm", self.engine_tag))
    }

    fn records_path(&self) -> PathBuf {
        self.dir.join("classes.json")
    }

    fn read_records(&self) -> anyhow::Result<BTreeMap<String, ClassRecord>> {
        match std::fs::read(self.records_path()) {
            Ok(bytes) => Ok(serde_json::from_slice(&bytes)?),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BTreeMap::new()),
            Err(e) => Err(e.into()),
        }
    }

    fn write_records(&self, records: &BTreeMap<String, ClassRecord>) -> std::io::Result<()> {
        write_durably(
            &self.records_path(),
            &serde_json::to_vec_pretty(records).expect("records serialize"),
        )
    }

    /// Loads the precompiled artifact for `hash`, compiling (and caching) it if absent or stale.
    fn load_or_compile(&self, hash: &str, bytes: &[u8]) -> anyhow::Result<Component> {
        let compiled = self.compiled_path(hash);
        if compiled.exists() {
            // SAFETY: the file was written by `Component::serialize` of this engine build (the
            // engine tag is part of its name) into the host's own data directory.
            #[expect(unsafe_code, reason = "deserializing our own precompiled artifact")]
            let loaded = unsafe { Component::deserialize_file(&self.engine, &compiled) };
            match loaded {
                Ok(component) => return Ok(component),
                Err(e) => tracing::warn!(
                    target: "wasmdo.registry",
                    "recompiling {hash}: cached artifact unusable: {e}"
                ),
            }
        }
        let component =
            Component::from_binary(&self.engine, bytes).map_err(|e| anyhow::anyhow!("{e:#}"))?;
        let serialized = component.serialize().map_err(|e| anyhow::anyhow!("{e}"))?;
        write_durably(&compiled, &serialized)?;
        Ok(component)
    }

    /// Validates, compiles, stores and activates a new version of `class`.
    pub async fn deploy(
        self: &Arc<Self>,
        class: &str,
        bytes: Vec<u8>,
    ) -> Result<Arc<ClassVersion>, ObjectError> {
        validate_class_name(class)?;
        check_preamble(&bytes)?;
        let _guard = self.deploy_lock.lock().await;
        let hash = hex::encode(Sha256::digest(&bytes));
        let registry = self.clone();
        let class_name = class.to_string();
        // compiling takes seconds for big components: keep it off the async workers
        tokio::task::spawn_blocking(move || registry.deploy_blocking(&class_name, &hash, bytes))
            .await
            .map_err(|e| ObjectError::Internal(format!("deploy task failed: {e}")))?
    }

    /// Deploys `bytes` as `class` unless they already are its current version (start-up deploys
    /// from `wasmdo.toml` must not bump versions on every restart).
    pub async fn deploy_if_changed(
        self: &Arc<Self>,
        class: &str,
        bytes: Vec<u8>,
    ) -> Result<Arc<ClassVersion>, ObjectError> {
        let hash = hex::encode(Sha256::digest(&bytes));
        match self.get(class) {
            Some(current) if current.hash == hash => Ok(current),
            _ => self.deploy(class, bytes).await,
        }
    }

    fn deploy_blocking(
        &self,
        class: &str,
        hash: &str,
        bytes: Vec<u8>,
    ) -> Result<Arc<ClassVersion>, ObjectError> {
        let component = self
            .load_or_compile(hash, &bytes)
            .map_err(|e| invalid(format!("the component does not validate or compile: {e}")))?;
        let mut records = self
            .read_records()
            .map_err(|e| ObjectError::Internal(format!("cannot read classes.json: {e}")))?;
        let version = records.get(class).map_or(1, |r| r.version + 1);
        let record = ClassRecord {
            version,
            hash: hash.to_string(),
            deployed_at_ms: now_ms(),
        };
        let size = bytes.len() as u64;
        let class_version = self.inspect(class, component, &record, size, true)?;
        let internal =
            |e: std::io::Error| ObjectError::Internal(format!("cannot store the component: {e}"));
        let path = self.component_path(hash);
        if !path.exists() {
            write_durably(&path, &bytes).map_err(internal)?;
        }
        records.insert(class.to_string(), record);
        self.write_records(&records).map_err(internal)?;
        let class_version = Arc::new(class_version);
        self.classes
            .write()
            .expect("registry lock")
            .insert(class.to_string(), class_version.clone());
        tracing::info!(target: "wasmdo.registry", class, version, hash, "deployed");
        Ok(class_version)
    }

    /// The WIT of `class`'s current version: the interfaces it exports for RPC (read from its
    /// stored component; decoding a 12 MB component takes a few milliseconds, off the async
    /// workers).
    pub async fn wit(&self, class: &str) -> Result<String, ObjectError> {
        let version = self
            .get(class)
            .ok_or_else(|| ObjectError::UnknownClass(class.to_string()))?;
        let path = self.component_path(&version.hash);
        tokio::task::spawn_blocking(move || {
            let bytes = std::fs::read(&path)
                .map_err(|e| ObjectError::Internal(format!("cannot read the component: {e}")))?;
            crate::rpc::wit::class_wit(&bytes).map_err(|e| {
                ObjectError::Internal(format!("cannot decode the component's WIT: {e:#}"))
            })
        })
        .await
        .map_err(|e| ObjectError::Internal(e.to_string()))?
    }

    fn insert(&self, class: ClassVersion) {
        self.classes
            .write()
            .expect("registry lock")
            .insert(class.name.to_string(), Arc::new(class));
    }

    /// Checks `component` against the world and collects its RPC methods.
    fn inspect(
        &self,
        class: &str,
        component: Component,
        record: &ClassRecord,
        size: u64,
        check_bindings: bool,
    ) -> Result<ClassVersion, ObjectError> {
        let bindings = self.bindings.get(class).cloned().unwrap_or_default();
        let mut linker = self.linker.clone();
        let check = |target: &str, method: &str, stub: &ComponentFunc| -> Result<(), String> {
            if !check_bindings {
                return Ok(());
            }
            let Some(target_class) = self.get(target) else {
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
            let fits = calls::stub_fits(method, &params, result.as_ref());
            if fits {
                Ok(())
            } else {
                Err(format!(
                    "the method is `{}`: the stub method must take these parameters and return `result<T, call-error>` with T its result (`wasmdo bindgen <class> --lang wit-stub` writes it)",
                    method.signature
                ))
            }
        };
        if check_bindings {
            for (binding, target) in bindings.iter() {
                if target != class && self.get(target).is_none() {
                    return Err(invalid(format!(
                        "class `{class}` has the binding `{binding}` to class `{target}`, which is not deployed: deploy `{target}` first, or fix [classes.{class}.bindings] in wasmdo.toml"
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
        let snapshot = component
            .get_export_index(None, bindings::SNAPSHOT_HANDLER_INTERFACE)
            .and_then(|iface| {
                let get = |name| component.get_export_index(Some(&iface), name);
                Some((get("snapshot")?, get("restore")?))
            });
        Ok(ClassVersion {
            alarm,
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
            env: Arc::new(self.env.get(class).cloned().unwrap_or_default()),
            bindings,
            fetch: self.fetch.get(class).cloned().unwrap_or_default(),
            namespace: self.secret.namespace(class),
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
            {
                continue;
            }
            let ComponentItem::ComponentInstance(instance) = item.ty else {
                continue;
            };
            let iface_index = component
                .get_export_index(None, interface)
                .ok_or_else(|| ObjectError::Internal(format!("export `{interface}` vanished")))?;
            for (name, item) in instance.exports(&self.engine) {
                let ComponentItem::ComponentFunc(func) = item.ty else {
                    continue;
                };
                let index = component
                    .get_export_index(Some(&iface_index), name)
                    .ok_or_else(|| ObjectError::Internal(format!("export `{name}` vanished")))?;
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

/// Writes `bytes` to `path` so that a crash leaves either the old file or the complete new one.
fn write_durably(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    if let Some(parent) = path.parent()
        && let Ok(dir) = std::fs::File::open(parent)
    {
        // make the rename itself durable
        let _ = dir.sync_all();
    }
    Ok(())
}

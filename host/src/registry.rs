//! Uploaded classes: validation against the `durable-object` world, compilation, the on-disk
//! cache of precompiled artifacts, and the current version of every class.
//!
//! Layout under the data directory:
//! - `components/<sha256>.wasm` — every uploaded component, as uploaded;
//! - `compiled/<sha256>-<engine>.cwasm` — its precompiled form for this engine build, so a
//!   restart (or a redeploy of the same bytes) never recompiles (a 12 MB JS component takes ~14 s
//!   to compile, ~20 ms to load precompiled); the directory can be moved out of the data dir
//!   and shared between hosts with `compile-cache` in `wasmdo.toml`;
//! - `classes.json` — class name → current version, content hash, namespace name and the
//!   settings of the project deploy that made it, replaced atomically.
//!
//! A class's *namespace name* keys its ids and names its storage directory
//! (`objects/<namespace>/`): the class name, unless the class was renamed by a project migration,
//! which keeps its predecessor's so the objects keep their ids and data (see `crate::projects`).
//! Its environment and bindings are the project deploy's (per version, in `classes.json`) merged
//! with `[classes.<class>]` of `wasmdo.toml`; a name in both takes `wasmdo.toml`'s value.
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

/// One class in `classes.json`.
#[derive(Serialize, Deserialize, Clone)]
struct ClassRecord {
    version: u64,
    hash: String,
    deployed_at_ms: u64,
    /// The namespace name, when it is not the class name (a renamed class keeps its
    /// predecessor's). Data dirs written before renames existed have none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    namespace: Option<String>,
    /// Environment variables from the project deploy that made this version.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    env: BTreeMap<String, String>,
    /// Bindings (as written: `ROOMS`) → bound class, from the project deploy that made this
    /// version.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    bindings: BTreeMap<String, String>,
}

impl ClassRecord {
    fn namespace_name<'a>(&'a self, class: &'a str) -> &'a str {
        self.namespace.as_deref().unwrap_or(class)
    }
}

/// One class of a project deploy: an uploaded component and the class's settings.
pub(crate) struct ClassSpec {
    pub(crate) name: String,
    /// The component's SHA-256 (hex), uploaded with [`Registry::store_component`].
    pub(crate) hash: String,
    pub(crate) env: BTreeMap<String, String>,
    /// Binding (as written: `ROOMS`) → bound class.
    pub(crate) bindings: BTreeMap<String, String>,
}

/// A class version a set deploy would activate, with the record to write for it (`None`: the
/// class's current version, unchanged).
type Prepared = (Arc<ClassVersion>, Option<ClassRecord>);

/// How a class's version looks up the classes its bindings name, to check its stubs against
/// their methods (`None`: link without checking).
type BoundClasses<'a> = Option<&'a dyn Fn(&str) -> Option<Arc<ClassVersion>>>;

/// All classes; the engine and linker every instance is made with.
pub struct Registry {
    engine: Engine,
    linker: Linker<ObjectState>,
    dir: PathBuf,
    engine_tag: String,
    /// Where precompiled artifacts live (`compile-cache`, default `<data>/compiled`).
    compile_cache: PathBuf,
    secret: HostSecret,
    /// Per class: `env` in `[classes.<class>]` of `wasmdo.toml`.
    env: BTreeMap<String, BTreeMap<String, String>>,
    /// Per class: binding (WIT form) → bound class, from `[classes.<class>.bindings]`.
    bindings: BTreeMap<String, BTreeMap<String, String>>,
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
                (class.clone(), b)
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
                .inspect(&name, component, &record, bytes.len() as u64, None)
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
        // a new version keeps the class's namespace and the settings of its last project deploy
        let record = match records.get(class) {
            Some(current) => ClassRecord {
                version: current.version + 1,
                hash: hash.to_string(),
                deployed_at_ms: now_ms(),
                ..current.clone()
            },
            None => ClassRecord {
                version: 1,
                hash: hash.to_string(),
                deployed_at_ms: now_ms(),
                namespace: free_namespace(&records, class),
                env: BTreeMap::new(),
                bindings: BTreeMap::new(),
            },
        };
        let size = bytes.len() as u64;
        let deployed = |target: &str| self.get(target);
        let class_version = self.inspect(class, component, &record, size, Some(&deployed))?;
        let internal =
            |e: std::io::Error| ObjectError::Internal(format!("cannot store the component: {e}"));
        let path = self.component_path(hash);
        if !path.exists() {
            write_durably(&path, &bytes).map_err(internal)?;
        }
        let version = record.version;
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

    /// Stores an uploaded component under its content hash (`components/<sha256>.wasm`) after
    /// checking that it compiles, and caches its compiled form; returns the hash and the size.
    /// Storing the same bytes again changes nothing.
    pub async fn store_component(
        self: &Arc<Self>,
        bytes: Vec<u8>,
    ) -> Result<(String, u64), ObjectError> {
        check_preamble(&bytes)?;
        // not serialized with deploys: uploads compile in parallel (a deploy tool uploads a
        // project's components at once), and files are written under unique temporary names
        let hash = hex::encode(Sha256::digest(&bytes));
        let size = bytes.len() as u64;
        let registry = self.clone();
        let stored = hash.clone();
        tokio::task::spawn_blocking(move || {
            registry
                .load_or_compile(&stored, &bytes)
                .map_err(|e| invalid(format!("the component does not validate or compile: {e}")))?;
            let path = registry.component_path(&stored);
            if !path.exists() {
                write_durably(&path, &bytes).map_err(|e| {
                    ObjectError::Internal(format!("cannot store the component: {e}"))
                })?;
            }
            Ok::<_, ObjectError>(())
        })
        .await
        .map_err(|e| ObjectError::Internal(format!("upload task failed: {e}")))??;
        tracing::info!(target: "wasmdo.registry", hash, size, "component stored");
        Ok((hash, size))
    }

    /// Whether the component with this hash (64 hex characters) has been uploaded.
    pub(crate) fn has_component(&self, hash: &str) -> bool {
        is_sha256_hex(hash) && self.component_path(hash).is_file()
    }

    /// Reads and loads the uploaded component `hash`.
    fn load_stored(&self, hash: &str) -> Result<(Component, u64), ObjectError> {
        let bytes = std::fs::read(self.component_path(hash))
            .map_err(|e| ObjectError::Internal(format!("cannot read the component {hash}: {e}")))?;
        let component = self
            .load_or_compile(hash, &bytes)
            .map_err(|e| invalid(format!("the component does not validate or compile: {e}")))?;
        Ok((component, bytes.len() as u64))
    }

    /// Checks that `specs` would deploy as a set — every component loads, matches the world and
    /// links, and every stub fits its bound class's methods, whether that class is in the set
    /// or is `other(class)` — without changing anything. Blocking (it may compile).
    pub(crate) fn check_set(
        &self,
        specs: &[ClassSpec],
        other: &dyn Fn(&str) -> Option<Arc<ClassVersion>>,
    ) -> Result<(), ObjectError> {
        let records = self
            .read_records()
            .map_err(|e| ObjectError::Internal(format!("cannot read classes.json: {e}")))?;
        self.prepare_set(specs, &records, other).map(drop)
    }

    /// Deploys `specs` as one set (a project's classes): bindings between them — cyclic ones
    /// and a class's binding to itself included — are checked once every class's new version
    /// exists, then all versions are recorded with one write of `classes.json` and activated
    /// together; if any class fails, nothing changes. A class whose component and settings are
    /// those of its current version keeps that version. Returns each class's version and
    /// whether it is new. Blocking (it may compile).
    pub(crate) fn deploy_set(
        &self,
        specs: &[ClassSpec],
    ) -> Result<Vec<(Arc<ClassVersion>, bool)>, ObjectError> {
        let _guard = self.deploy_lock.blocking_lock();
        let mut records = self
            .read_records()
            .map_err(|e| ObjectError::Internal(format!("cannot read classes.json: {e}")))?;
        let deployed = |target: &str| self.get(target);
        let prepared = self.prepare_set(specs, &records, &deployed)?;
        let changed = prepared.iter().any(|(_, record)| record.is_some());
        if changed {
            for (version, record) in &prepared {
                if let Some(record) = record {
                    records.insert(version.name.to_string(), record.clone());
                }
            }
            self.write_records(&records)
                .map_err(|e| ObjectError::Internal(format!("cannot write classes.json: {e}")))?;
        }
        let mut classes = self.classes.write().expect("registry lock");
        let mut out = Vec::with_capacity(prepared.len());
        for (version, record) in prepared {
            if record.is_some() {
                classes.insert(version.name.to_string(), version.clone());
                tracing::info!(target: "wasmdo.registry", class = &*version.name,
                    version = version.version, hash = version.hash, "deployed");
            }
            out.push((version, record.is_some()));
        }
        Ok(out)
    }

    /// The versions `specs` would deploy as (with the record to write, or `None` for a class
    /// left as it is), checked as a set: see [`Self::deploy_set`].
    fn prepare_set(
        &self,
        specs: &[ClassSpec],
        records: &BTreeMap<String, ClassRecord>,
        other: &dyn Fn(&str) -> Option<Arc<ClassVersion>>,
    ) -> Result<Vec<Prepared>, ObjectError> {
        enum Plan<'s> {
            Same(Arc<ClassVersion>),
            New(&'s ClassSpec, Component, u64, ClassRecord),
        }
        // first every class without checking its stubs (their targets may be in the set) ...
        // every recorded class keeps its namespace; new ones must not take one of those
        let mut used: Vec<String> = records
            .iter()
            .map(|(name, r)| r.namespace_name(name).to_string())
            .collect();
        let mut first: HashMap<String, Arc<ClassVersion>> = HashMap::new();
        let mut plans = Vec::with_capacity(specs.len());
        for spec in specs {
            let current = records.get(&spec.name);
            let unchanged = current.is_some_and(|r| {
                r.hash == spec.hash && r.env == spec.env && r.bindings == spec.bindings
            });
            if let Some(version) = self.get(&spec.name).filter(|_| unchanged) {
                first.insert(spec.name.clone(), version.clone());
                plans.push(Plan::Same(version));
                continue;
            }
            let namespace = match current {
                Some(record) => record.namespace.clone(),
                None => free_namespace_among(&used, &spec.name),
            };
            used.push(namespace.clone().unwrap_or_else(|| spec.name.clone()));
            let record = ClassRecord {
                version: current.map_or(1, |r| r.version + 1),
                hash: spec.hash.clone(),
                deployed_at_ms: now_ms(),
                namespace,
                env: spec.env.clone(),
                bindings: spec.bindings.clone(),
            };
            let (component, size) = self
                .load_stored(&spec.hash)
                .map_err(|e| in_class(&spec.name, e))?;
            let unchecked = self
                .inspect(&spec.name, component.clone(), &record, size, None)
                .map_err(|e| in_class(&spec.name, e))?;
            first.insert(spec.name.clone(), Arc::new(unchecked));
            plans.push(Plan::New(spec, component, size, record));
        }
        // ... then each again, its stubs checked against the whole set
        let bound = |target: &str| first.get(target).cloned().or_else(|| other(target));
        let mut out = Vec::with_capacity(specs.len());
        for plan in plans {
            match plan {
                Plan::Same(version) => out.push((version, None)),
                Plan::New(spec, component, size, record) => {
                    let version = self
                        .inspect(&spec.name, component, &record, size, Some(&bound))
                        .map_err(|e| in_class(&spec.name, e))?;
                    out.push((Arc::new(version), Some(record)));
                }
            }
        }
        Ok(out)
    }

    /// Renames `from` to `to` (a project migration): the class keeps its versions, settings
    /// and namespace — so its objects keep their ids and storage — under its new name. Nothing
    /// to do if `from` is no longer recorded (the rename was made before a crash). Blocking.
    pub(crate) fn rename_class(&self, from: &str, to: &str) -> Result<(), ObjectError> {
        let _guard = self.deploy_lock.blocking_lock();
        let mut records = self
            .read_records()
            .map_err(|e| ObjectError::Internal(format!("cannot read classes.json: {e}")))?;
        let Some(mut record) = records.remove(from) else {
            return Ok(());
        };
        if records.contains_key(to) {
            return Err(ObjectError::Internal(format!(
                "cannot rename class `{from}` to `{to}`: `{to}` exists"
            )));
        }
        let namespace = record.namespace_name(from).to_string();
        record.namespace = (namespace != to).then_some(namespace);
        let (component, size) = self.load_stored(&record.hash)?;
        let version = self
            .inspect(to, component, &record, size, None)
            .map_err(|e| in_class(to, e))?;
        records.insert(to.to_string(), record);
        self.write_records(&records)
            .map_err(|e| ObjectError::Internal(format!("cannot write classes.json: {e}")))?;
        let mut classes = self.classes.write().expect("registry lock");
        classes.remove(from);
        classes.insert(to.to_string(), Arc::new(version));
        tracing::info!(target: "wasmdo.registry", from, to, "class renamed");
        Ok(())
    }

    /// Forgets `class` (a project migration deleted it; its objects' storage is deleted by the
    /// caller). Blocking.
    pub(crate) fn remove_class(&self, class: &str) -> Result<(), ObjectError> {
        let _guard = self.deploy_lock.blocking_lock();
        let mut records = self
            .read_records()
            .map_err(|e| ObjectError::Internal(format!("cannot read classes.json: {e}")))?;
        if records.remove(class).is_some() {
            self.write_records(&records)
                .map_err(|e| ObjectError::Internal(format!("cannot write classes.json: {e}")))?;
        }
        self.classes.write().expect("registry lock").remove(class);
        tracing::info!(target: "wasmdo.registry", class, "class deleted");
        Ok(())
    }

    /// The namespace name `classes.json` records for `class`, if the class is recorded.
    pub(crate) fn recorded_namespace(&self, class: &str) -> Result<Option<String>, ObjectError> {
        let records = self
            .read_records()
            .map_err(|e| ObjectError::Internal(format!("cannot read classes.json: {e}")))?;
        Ok(records
            .get(class)
            .map(|r| r.namespace_name(class).to_string()))
    }

    /// Makes `class` unreachable until [`Self::put_back`] or a later deploy: new events for
    /// it fail with `UnknownClass` (so its live objects can be stopped for a migration).
    /// Changes nothing on disk.
    pub(crate) fn take_class(&self, class: &str) -> Option<Arc<ClassVersion>> {
        self.classes.write().expect("registry lock").remove(class)
    }

    /// Undoes [`Self::take_class`].
    pub(crate) fn put_back(&self, version: Arc<ClassVersion>) {
        self.classes
            .write()
            .expect("registry lock")
            .entry(version.name.to_string())
            .or_insert(version);
    }

    /// The namespace name of `class`: names its storage directory (the class name for a class
    /// not deployed).
    pub(crate) fn namespace_name(&self, class: &Arc<str>) -> Arc<str> {
        self.get(class)
            .map_or_else(|| class.clone(), |v| v.namespace_name.clone())
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

    /// Checks `component` against the world and collects its RPC methods. With `bound`, each
    /// binding must name a class `bound` knows (or `class` itself, deployed for the first time)
    /// and each stub must fit that class's methods.
    fn inspect(
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
            .map(|(name, target)| (calls::binding_wit_name(name), target.clone()))
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

/// Names the failing class in a refusal of one class among several.
fn in_class(class: &str, e: ObjectError) -> ObjectError {
    match e {
        ObjectError::InvalidComponent(why) if !why.contains(&format!("`{class}`")) => {
            ObjectError::InvalidComponent(format!("class `{class}`: {why}"))
        }
        e => e,
    }
}

/// Whether `s` is a SHA-256 in lowercase hex (an uploaded component's name).
pub(crate) fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The namespace of a new class `class` (`None`: its own name) given the records: its own name
/// unless a renamed class holds it, else `<class>.<n>` with the smallest free `n` from 2 (a `.`
/// never occurs in class names).
fn free_namespace(records: &BTreeMap<String, ClassRecord>, class: &str) -> Option<String> {
    let used: Vec<&str> = records
        .iter()
        .filter(|(name, _)| *name != class)
        .map(|(name, r)| r.namespace_name(name))
        .collect();
    free_namespace_among(&used, class)
}

fn free_namespace_among(used: &[impl AsRef<str>], class: &str) -> Option<String> {
    let taken = |name: &str| used.iter().any(|u| u.as_ref() == name);
    if !taken(class) {
        return None;
    }
    (2u64..)
        .map(|n| format!("{class}.{n}"))
        .find(|name| !taken(name))
}

/// Writes `bytes` to `path` so that a crash leaves either the old file or the complete new one.
pub(crate) fn write_durably(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::sync::atomic::{AtomicU64, Ordering};
    // unique per write: two writers of one path (the same component uploaded twice at once)
    // each rename a complete file of their own
    static WRITES: AtomicU64 = AtomicU64::new(0);
    let n = WRITES.fetch_add(1, Ordering::Relaxed);
    let tmp = path.with_extension(format!("tmp{}-{n}", std::process::id()));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_class_gets_its_own_name_unless_a_renamed_class_holds_it() {
        assert_eq!(free_namespace_among(&["Room"], "Store"), None);
        // `Vault` was renamed from `Store` and keeps its namespace: a new `Store` needs another
        assert_eq!(
            free_namespace_among(&["Store"], "Store").as_deref(),
            Some("Store.2")
        );
        assert_eq!(
            free_namespace_among(&["Store", "Store.2"], "Store").as_deref(),
            Some("Store.3")
        );
    }

    #[test]
    fn records_written_before_namespaces_existed_still_load() {
        let old = r#"{"counter":{"version":3,"hash":"ab","deployed_at_ms":1}}"#;
        let records: BTreeMap<String, ClassRecord> = serde_json::from_str(old).unwrap();
        let record = &records["counter"];
        assert_eq!(record.namespace_name("counter"), "counter");
        assert!(record.env.is_empty() && record.bindings.is_empty());
        // and a class that never changed namespace is written as before
        let written = serde_json::to_string(&records).unwrap();
        assert_eq!(written, old);
    }

    #[test]
    fn component_hashes_are_lowercase_sha256_hex() {
        assert!(is_sha256_hex(&"0a".repeat(32)));
        assert!(!is_sha256_hex(&"0A".repeat(32)));
        assert!(!is_sha256_hex("../../etc/passwd"));
        assert!(!is_sha256_hex(&"0".repeat(63)));
    }
}

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
//!
//! One file per job:
//! - `mod.rs` (here) — the [`Registry`]: the current version of every class, deploys (one class,
//!   or a project's classes as one set), renames and deletes, the entry Worker;
//! - `store` — the on-disk component store: components, precompiled artifacts, `classes.json`;
//! - `inspect` — validation and inspection of a component against the world, into a
//!   [`ClassVersion`] (what one deployed version is: `crate::class`);
//! - `linker` — the engine, and the linker composed of every capability's `add_to_linker`;
//! - `functions` — compiled functions kept across compilations (a new version recompiles only
//!   what changed).

mod functions;
mod inspect;
mod linker;
mod store;

use std::collections::{BTreeMap, HashMap};
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use sha2::{Digest, Sha256};
use wasmdo_protocol::stubs::binding_wit_name;
use wasmtime::Engine;
use wasmtime::component::{Component, Linker};

pub use crate::class::{ClassVersion, Method};
pub(crate) use linker::new_engine;
pub(crate) use store::{is_sha256_hex, write_durably};

use crate::config::ClassConfig;
use crate::error::{BoxError, Cause, ObjectError, StartError};
use crate::ids::HostSecret;
use crate::outbound::AllowList;
use crate::state::ObjectState;
use inspect::in_class;
use store::{ClassRecord, free_namespace, free_namespace_among};
use store::{check_preamble, invalid};

/// Longest class name; class names are also directory names.
const MAX_CLASS_NAME: usize = 64;

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
    classes: RwLock<HashMap<String, Arc<ClassVersion>>>,
    /// The class whose `fetch` answers every request outside the host's own routes (a
    /// project's entry Worker), if any.
    entry: RwLock<Option<String>>,
    /// Serializes deploys so versions and `classes.json` stay consistent.
    deploy_lock: tokio::sync::Mutex<()>,
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

impl Registry {
    /// Opens the registry under `data/`, loading every class recorded there; `classes` are the
    /// per-class settings of `wasmdo.toml` (what each class is granted).
    pub(crate) fn open(
        engine: Engine,
        data: &Path,
        compile_cache: &Path,
        secret: HostSecret,
        classes: &BTreeMap<String, ClassConfig>,
    ) -> Result<Registry, StartError> {
        let linker = linker::new_linker(&engine)
            .map_err(|e| StartError::Engine(Arc::from(BoxError::from(e))))?;
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
                    .map(|(name, target)| (binding_wit_name(name), target.clone()))
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
        for dir in [&data.join("components"), compile_cache] {
            std::fs::create_dir_all(dir)
                .map_err(|e| StartError::data_dir("cannot create", dir, e))?;
        }
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
            classes: RwLock::new(HashMap::new()),
            entry: RwLock::new(None),
            deploy_lock: tokio::sync::Mutex::new(()),
        };
        let records = (registry.read_records())
            .map_err(|e| StartError::data_dir("cannot read", &registry.records_path(), e))?;
        for (name, record) in records {
            let path = registry.component_path(&record.hash);
            let bytes =
                std::fs::read(&path).map_err(|e| StartError::data_dir("cannot read", &path, e))?;
            let no_longer_loads = |source: Cause| StartError::ClassNoLongerLoads {
                class: name.clone(),
                source,
            };
            let component = (registry.load_or_compile(&record.hash, &bytes))
                .map_err(|e| no_longer_loads(Arc::from(e)))?;
            // checked against the bound classes when deployed; they may load after this one
            let class = registry
                .inspect(&name, component, &record, bytes.len() as u64, None)
                .map_err(|e| no_longer_loads(Arc::new(e)))?;
            registry.insert(class);
        }
        Ok(registry)
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

    /// The current version of `class`, or `UnknownClass`.
    pub fn deployed(&self, class: &str) -> Result<Arc<ClassVersion>, ObjectError> {
        self.get(class)
            .ok_or_else(|| ObjectError::UnknownClass(class.to_string()))
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
            .map_err(|e| ObjectError::internal_from("deploy task failed", e))?
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
            .map_err(|e| ObjectError::internal_from("cannot read classes.json", e))?;
        // a new version keeps the class's namespace and the settings of its last project deploy
        let record = match records.get(class) {
            Some(current) => ClassRecord {
                version: current.version + 1,
                hash: hash.to_string(),
                deployed_at_ms: deployed_now(),
                ..current.clone()
            },
            None => ClassRecord {
                version: 1,
                hash: hash.to_string(),
                deployed_at_ms: deployed_now(),
                namespace: free_namespace(&records, class),
                env: BTreeMap::new(),
                bindings: BTreeMap::new(),
            },
        };
        let size = bytes.len() as u64;
        let deployed = |target: &str| self.get(target);
        let class_version = self.inspect(class, component, &record, size, Some(&deployed))?;
        let internal =
            |e: std::io::Error| ObjectError::internal_from("cannot store the component", e);
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
            .map_err(|e| ObjectError::internal_from("cannot read classes.json", e))?;
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
            .map_err(|e| ObjectError::internal_from("cannot read classes.json", e))?;
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
                .map_err(|e| ObjectError::internal_from("cannot write classes.json", e))?;
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
                deployed_at_ms: deployed_now(),
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
            .map_err(|e| ObjectError::internal_from("cannot read classes.json", e))?;
        let Some(mut record) = records.remove(from) else {
            return Ok(());
        };
        if records.contains_key(to) {
            return Err(ObjectError::internal(format!(
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
            .map_err(|e| ObjectError::internal_from("cannot write classes.json", e))?;
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
            .map_err(|e| ObjectError::internal_from("cannot read classes.json", e))?;
        if records.remove(class).is_some() {
            self.write_records(&records)
                .map_err(|e| ObjectError::internal_from("cannot write classes.json", e))?;
        }
        self.classes.write().expect("registry lock").remove(class);
        tracing::info!(target: "wasmdo.registry", class, "class deleted");
        Ok(())
    }

    /// The namespace name `classes.json` records for `class`, if the class is recorded.
    pub(crate) fn recorded_namespace(&self, class: &str) -> Result<Option<String>, ObjectError> {
        let records = self
            .read_records()
            .map_err(|e| ObjectError::internal_from("cannot read classes.json", e))?;
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
        let version = self.deployed(class)?;
        let path = self.component_path(&version.hash);
        tokio::task::spawn_blocking(move || {
            let bytes = std::fs::read(&path)
                .map_err(|e| ObjectError::internal_from("cannot read the component", e))?;
            crate::rpc::wit::class_wit(&bytes)
                .map_err(|e| ObjectError::internal_from("cannot decode the component's WIT", e))
        })
        .await
        .map_err(|e| ObjectError::internal_from("WIT task failed", e))?
    }

    fn insert(&self, class: ClassVersion) {
        self.classes
            .write()
            .expect("registry lock")
            .insert(class.name.to_string(), Arc::new(class));
    }
}

/// A deploy's time, as `classes.json` records it.
fn deployed_now() -> u64 {
    u64::try_from(crate::clock::now_ms()).unwrap_or(0)
}

//! # wasmdo host
//!
//! Runs Durable Objects compiled to WebAssembly components. Data flows one way:
//!
//! ```text
//! gateway ─→ directory ─→ actor ─→ instance ─→ capability hosts ─→ storage
//! (HTTP)     (id → live    (mailbox, serial     (wasmtime Store,   (object,      (one SQLite
//!             object, one   events, implicit     limits, traps)     storage)      file per
//!             activation)   transaction,                                           object)
//!                           output gate)
//! ```
//!
//! | module | owns |
//! |---|---|
//! | [`gateway`] | hyper server, routing, JSON errors → HTTP statuses |
//! | [`registry`] | uploaded components: validation, compilation, precompiled cache, versions |
//! | `projects` | project deploys: a manifest's classes as one set, migrations (rename, delete), the entry Worker |
//! | [`directory`] | object id → live actor; one activation per id; eviction |
//! | [`actor`] | mailbox, serial events, implicit transaction, batching + output gate |
//! | [`instance`] | the wasmtime Store of one object, calls under limits, trap classification |
//! | [`limits`] | every cap with its default and reason |
//! | [`object`], [`storage`], [`alarms`] | the capability hosts of the `wasmdo:object` world; `alarms` also owns the host-wide alarm schedule |
//! | [`outbound`] | `wasi:http` outgoing requests, behind each class's allow-list (`fetch`) |
//! | [`rpc`] | WIT types ⇄ JSON, signatures |
//!
//! Nothing here blocks the async runtime for long: guests yield on fuel, compilation runs on the
//! blocking pool, and commits (fsync) run in `block_in_place`.
//!
//! ```no_run
//! # async fn run() -> anyhow::Result<()> {
//! let config = wasmdo_host::config::Config::default();
//! let host = wasmdo_host::Host::start(config).await?;
//! println!("listening on {}", host.addr());
//! host.serve().await;
//! # Ok(()) }
//! ```

mod actor;
pub mod alarms;
pub mod bindgen;
mod bindings;
pub mod config;
pub mod directory;
pub mod error;
mod gateway;
pub mod ids;
mod instance;
pub mod limits;
pub mod metrics;
mod object;
pub mod outbound;
mod projects;
pub mod registry;
mod rpc;
mod storage;
mod websockets;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;

use crate::alarms::Schedule;
use crate::config::Config;
use crate::directory::Directory;
use crate::ids::HostSecret;
use crate::limits::EPOCH_TICK_MS;
use crate::metrics::Metrics;
use crate::projects::Projects;
use crate::registry::Registry;

/// A started host: classes loaded, listener bound, not yet serving.
pub struct Host {
    registry: Arc<Registry>,
    directory: Arc<Directory>,
    projects: Arc<Projects>,
    listener: TcpListener,
    addr: SocketAddr,
    /// Held (locked) while the host runs: two hosts on one data dir would corrupt it.
    data_lock: std::fs::File,
}

impl Host {
    /// Opens the data directory, loads every class, deploys the components named in the config,
    /// starts the epoch ticker and binds the listener.
    pub async fn start(config: Config) -> anyhow::Result<Host> {
        let data = config.data_dir();
        std::fs::create_dir_all(&data)
            .map_err(|e| anyhow::anyhow!("cannot create data dir {}: {e}", data.display()))?;
        let data_lock = std::fs::File::create(data.join("host.lock"))?;
        data_lock.try_lock().map_err(|_| {
            anyhow::anyhow!(
                "data dir {} is in use by another wasmdo host; stop it or pick another --data",
                data.display()
            )
        })?;
        let secret = HostSecret::load_or_create(&data.join("host.key"))?;
        let engine = registry::new_engine(&config.limits)?;
        let registry = {
            let (engine, data, cache) = (engine.clone(), data.clone(), config.compile_cache_dir());
            let classes = config.classes.clone();
            tokio::task::spawn_blocking(move || {
                Registry::open(engine, &data, &cache, secret, &classes)
            })
            .await??
        };
        let registry = Arc::new(registry);
        if config.entry.is_some() {
            registry.set_entry_worker(config.entry.clone());
        }
        for class in deploy_order(&config) {
            let settings = &config.classes[class];
            if let Some(path) = &settings.component {
                let bytes = std::fs::read(path).map_err(|e| {
                    anyhow::anyhow!("class `{class}`: cannot read {}: {e}", path.display())
                })?;
                registry
                    .deploy_if_changed(class, bytes)
                    .await
                    .map_err(|e| anyhow::anyhow!("class `{class}` ({}): {e}", path.display()))?;
            }
        }
        start_epoch_ticker(registry.engine());
        let metrics = Arc::new(Metrics::default());
        let schedule = Arc::new(Schedule::open(
            &data.join("alarms.sqlite"),
            config.limits.durable_commits,
        )?);
        let directory = Directory::new(
            registry.clone(),
            config.limits.clone(),
            data,
            metrics,
            schedule.clone(),
        );
        registry.attach_directory(&directory);
        let projects = Projects::open(registry.clone(), directory.clone(), &config.data_dir())?;
        // before alarms go out: a migration a crash interrupted moves or deletes some
        projects.start(config.entry.as_deref()).await;
        tokio::spawn(schedule.run(Arc::downgrade(&directory)));
        let listener = TcpListener::bind(config.listen)
            .await
            .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", config.listen))?;
        let addr = listener.local_addr()?;
        Ok(Host {
            registry,
            directory,
            projects: Arc::new(projects),
            listener,
            addr,
            data_lock,
        })
    }

    /// The bound address (useful with port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The class registry.
    pub fn registry(&self) -> &Arc<Registry> {
        &self.registry
    }

    /// The directory of live objects.
    pub fn directory(&self) -> &Arc<Directory> {
        &self.directory
    }

    /// Serves HTTP until the process ends.
    pub async fn serve(self) {
        let gateway = Arc::new(gateway::Gateway {
            workers: gateway::WorkerPool::new(self.directory.limits().max_worker_instances),
            registry: self.registry,
            directory: self.directory,
            projects: self.projects,
        });
        let _held = self.data_lock;
        gateway::serve(self.listener, gateway).await;
    }
}

/// Advances the engine's epoch every tick so wall-clock deadlines fire; stops with the engine.
fn start_epoch_ticker(engine: &wasmtime::Engine) {
    let weak = engine.weak();
    std::thread::Builder::new()
        .name("wasmdo-epoch".into())
        .spawn(move || {
            while let Some(engine) = weak.upgrade() {
                engine.increment_epoch();
                drop(engine);
                std::thread::sleep(Duration::from_millis(EPOCH_TICK_MS));
            }
        })
        .expect("spawn the epoch thread");
}

/// The start-up deploys of `config`, bound classes before the classes that call them (a deploy
/// checks its bindings against the deployed classes). Classes in a binding cycle come last, in
/// name order.
fn deploy_order(config: &Config) -> Vec<&str> {
    let mut order: Vec<&str> = Vec::new();
    let mut left: Vec<&str> = config.classes.keys().map(String::as_str).collect();
    while !left.is_empty() {
        let ready: Vec<&str> = left
            .iter()
            .copied()
            .filter(|class| {
                config.classes[*class].bindings.values().all(|t| {
                    t == class || order.contains(&t.as_str()) || !config.classes.contains_key(t)
                })
            })
            .collect();
        if ready.is_empty() {
            order.append(&mut left);
            break;
        }
        left.retain(|c| !ready.contains(c));
        order.extend(ready);
    }
    order
}

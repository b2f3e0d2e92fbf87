//! # wasmdo-host
//!
//! The runtime library: runs Durable Objects compiled to WebAssembly components. No CLI, no
//! file watcher, no HTTP client, no code generator (those are the `wasmdo` binary's and
//! `wasmdo-bindgen`'s); the wire types it shares with them are `wasmdo-protocol`'s. Data flows
//! one way, arrows pointing down:
//!
//! ```text
//! gateway ─→ router ◁── directory ─→ actor ─→ instance ─→ capabilities ─→ backends
//! (HTTP,     (trait:    (id → live    (mailbox,  (wasmtime   (object,        (storage:
//!  sockets)   reach an   actor, one    batch,     Store,      storage,        SQLite file
//!             object)    activation)   output     limits,     alarms, calls,  per object;
//!                                      gate)      traps)      websockets,     schedule; hub)
//!                                                             outbound)
//! ```
//!
//! | module | owns |
//! |---|---|
//! | `gateway` | hyper listeners of the control and public planes, bearer tokens, connection caps and timeouts, the body budget, routes (`admin`, `objects`), JSON errors → HTTP statuses, one task per WebSocket connection, the entry Worker's instances |
//! | `projects` | project deploys: a manifest's classes as one set, migrations (rename, delete), the entry Worker |
//! | [`router`] | the trait every ingress and capability reaches an object through (this host: the directory; a cluster host: the cluster router) |
//! | `cluster` | cluster mode on PostgreSQL: membership, ownership with epochs, fenced commits, forwarding, takeover (see docs/CLUSTER.md) |
//! | [`directory`] | object id → live actor; one activation per id; eviction; nothing else |
//! | [`runtime`] | what an actor is handed: registry, limits, metrics, schedule, WebSocket hub, databases, snapshots |
//! | [`registry`] | uploaded components: store, validation, compilation, versions; composes each capability's linker |
//! | [`class`] | one deployed version of a class |
//! | `actor` | mailbox, serial events, implicit transaction, batching + output gate |
//! | `instance` | the wasmtime Store of one object, calls under limits, trap classification |
//! | `state` | the Store's data: one context per capability |
//! | `object`, `storage`, [`alarms`], `websockets`, `rpc`, [`outbound`] | the capabilities of the `wasmdo:object` world (and `wasi:http`), each with its backend; `storage` also keeps the host's usage against the storage quotas |
//! | `packed_http` | HTTP heads packed into one string each way (`packed-handler`, `packed-objects`: what JavaScript components exchange) |
//! | [`ids`], [`limits`], [`metrics`], [`error`], [`config`] | leaves: ids and object keys, every cap with its reason, counters, errors, `wasmdo.toml` |
//!
//! Nothing here blocks the async runtime for long: guests yield on fuel, compilation runs on the
//! blocking pool, and commits (fsync) run in `block_in_place`.
//!
//! ```no_run
//! # async fn run() -> Result<(), wasmdo_host::error::StartError> {
//! let config = wasmdo_host::config::Config::default();
//! let host = wasmdo_host::Host::start(config).await?;
//! println!("listening on {}", host.addr());
//! host.serve().await;
//! # Ok(()) }
//! ```

mod actor;
pub mod alarms;
mod bindings;
pub mod class;
mod clock;
mod cluster;
pub mod config;
pub mod directory;
pub mod error;
mod event_loop;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
mod gateway;
pub mod ids;
mod instance;
pub mod limits;
pub mod metrics;
mod object;
pub mod outbound;
mod packed_http;
mod projects;
pub mod registry;
pub mod router;
mod rpc;
pub mod runtime;
mod state;
mod storage;
mod websockets;

pub use rpc::wit::class_wit;

/// For the cluster bench: commits per second the cluster store sustains by itself.
#[doc(hidden)]
pub use cluster::measure::store_commits as measure_cluster_store;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;

use crate::alarms::Schedule;
use crate::cluster::ClusterRouter;
use crate::config::Config;
use crate::directory::Directory;
use crate::error::StartError;
use crate::ids::HostSecret;
use crate::limits::EPOCH_TICK_MS;
use crate::metrics::Metrics;
use crate::projects::Projects;
use crate::registry::Registry;
use crate::router::Router;
use crate::runtime::Runtime;
use crate::storage::commit::CommitLog;
use crate::storage::journal::Journal;

/// A started host: classes loaded, listener bound, not yet serving.
pub struct Host {
    runtime: Arc<Runtime>,
    directory: Arc<Directory>,
    /// How events reach objects: the directory, or in a cluster the cluster router.
    router: Arc<dyn Router>,
    /// The router for events another host of the cluster forwarded here (never forwards).
    forwarded: Arc<dyn Router>,
    /// This host's place in its cluster, if it is one.
    cluster: Option<Arc<cluster::Cluster>>,
    projects: Arc<Projects>,
    listener: TcpListener,
    addr: SocketAddr,
    /// The public plane's listener (the entry Worker only), if configured.
    public: Option<(TcpListener, SocketAddr)>,
    /// The control plane's tokens.
    credentials: gateway::Credentials,
    /// Held (locked) while the host runs: two hosts on one data dir would corrupt it.
    data_lock: std::fs::File,
}

impl Host {
    /// Opens the data directory, loads every class, deploys the components named in the config,
    /// starts the epoch ticker and binds the listener.
    pub async fn start(config: Config) -> Result<Host, StartError> {
        config.check_planes()?;
        let listen = |source| StartError::Listen {
            addr: config.listen,
            source,
        };
        // bound first: a cluster host advertises the address it got
        let listener = TcpListener::bind(config.listen).await.map_err(listen)?;
        let addr = listener.local_addr().map_err(listen)?;
        let data = config.data_dir();
        std::fs::create_dir_all(&data)
            .map_err(|e| StartError::data_dir("cannot create data dir", &data, e))?;
        let lock_path = data.join("host.lock");
        let data_lock = std::fs::File::create(&lock_path)
            .map_err(|e| StartError::data_dir("cannot create", &lock_path, e))?;
        data_lock
            .try_lock()
            .map_err(|_| StartError::DataDirInUse { path: data.clone() })?;
        let metrics = Arc::new(Metrics::default());
        let cluster = match &config.cluster {
            Some(settings) => Some(Arc::new(
                join_cluster(settings, &config, addr, &data, metrics.clone()).await?,
            )),
            None => None,
        };
        // before anything reads an object file: bring every one up to date from the journal (a
        // cluster host keeps none: the store holds every commit)
        let journal_dir = config.journal_dir();
        let recovered = if cluster.is_some() {
            storage::journal::Recovered::default()
        } else {
            let (dir, journal) = (data.clone(), journal_dir.clone());
            tokio::task::spawn_blocking(move || storage::journal::recover(&dir, &journal))
                .await
                .map_err(|e| {
                    StartError::data_dir("cannot recover the commit journal of", &data, e)
                })?
                .map_err(|e| {
                    StartError::data_dir("cannot recover the commit journal of", &data, e)
                })?
        };
        let secret_path = data.join("host.key");
        let mut secret = HostSecret::load_or_create(&secret_path)
            .map_err(|e| StartError::data_dir("cannot read or create", &secret_path, e))?;
        if let Some(cluster) = &cluster {
            // every host derives ids from one secret: the first host's
            let shared = cluster
                .store
                .secret(secret.bytes().to_vec())
                .await
                .and_then(|bytes| {
                    HostSecret::from_bytes(&bytes).ok_or_else(|| {
                        cluster::store::StoreError("the stored id secret is not 32 bytes".into())
                    })
                })
                .map_err(|e| StartError::Cluster(e.to_string()))?;
            secret = shared;
        }
        let engine = registry::new_engine(&config.limits, &metrics)?;
        let registry = {
            let (engine, dir, cache) = (engine.clone(), data.clone(), config.compile_cache_dir());
            let classes = config.classes.clone();
            tokio::task::spawn_blocking(move || {
                Registry::open(engine, &dir, &cache, secret, &classes)
            })
            .await
            .map_err(|e| StartError::data_dir("cannot load the classes of", &data, e))??
        };
        let registry = Arc::new(registry);
        if config.entry.is_some() {
            registry.set_entry_worker(config.entry.clone());
        }
        for class in deploy_order(&config) {
            let settings = &config.classes[class];
            if let Some(path) = &settings.component {
                let bytes = std::fs::read(path).map_err(|source| StartError::ReadComponent {
                    class: class.to_owned(),
                    component: path.clone(),
                    source,
                })?;
                (registry.deploy_if_changed(class, bytes).await).map_err(|source| {
                    StartError::Deploy {
                        class: class.to_owned(),
                        component: path.clone(),
                        source,
                    }
                })?;
            }
        }
        start_epoch_ticker(registry.engine());
        let schedule_path = data.join("alarms.sqlite");
        let schedule =
            Schedule::open(&schedule_path, config.limits.durable_commits).map_err(|e| {
                StartError::data_dir("cannot open the alarm schedule", &schedule_path, e)
            })?;
        let schedule = Arc::new(schedule);
        let journal: Option<Arc<dyn CommitLog>> = match config.limits.durable_commits {
            _ if cluster.is_some() => cluster.clone().map(|c| c as Arc<dyn CommitLog>),
            true => Some(Arc::new(
                Journal::start(
                    &data,
                    &journal_dir,
                    recovered.next_segment,
                    config.limits.journal_segment_bytes,
                    metrics.clone(),
                )
                .map_err(|e| {
                    StartError::data_dir("cannot start the commit journal in", &data, e)
                })?,
            )),
            false => None,
        };
        // after recovery: the files hold every commit
        let usage = storage::sqlite::Usage::scan(&data, config.limits.quotas())
            .map_err(|e| StartError::data_dir("cannot measure the object databases in", &data, e))?
            .map(Arc::new);
        let mut runtime = Runtime::new(
            registry.clone(),
            config.limits.clone(),
            data,
            metrics,
            schedule.clone(),
            journal,
            usage,
        );
        if let Some(cluster) = &cluster {
            runtime = runtime.with_tenure(cluster.clone());
        }
        let runtime = Arc::new(runtime);
        let directory = Directory::new(runtime.clone());
        let (router, forwarded): (Arc<dyn Router>, Arc<dyn Router>) = match &cluster {
            Some(cluster) => {
                let router =
                    ClusterRouter::new(cluster.clone(), directory.clone(), runtime.clone());
                let forwarded = Arc::new(router.forwarded());
                router.adopt_orphaned_alarms();
                let router = Arc::new(router);
                directory.route_through(Arc::downgrade(&(router.clone() as Arc<dyn Router>)));
                let evict = Arc::downgrade(&directory);
                tokio::spawn(cluster::Cluster::beat(
                    Arc::downgrade(cluster),
                    move |keys| {
                        if let Some(directory) = evict.upgrade() {
                            keys.iter().for_each(|key| directory.evict(key));
                        }
                    },
                ));
                (router, forwarded)
            }
            None => (directory.clone(), directory.clone()),
        };
        let projects = Projects::open(runtime.clone(), router.clone(), &config.data_dir())?;
        // before alarms go out: a migration a crash interrupted moves or deletes some
        projects.start(config.entry.as_deref()).await;
        tokio::spawn(schedule.run(Arc::downgrade(&router)));
        let retention = Duration::from_millis(config.limits.unused_component_retention_ms);
        tokio::spawn(collect_components(Arc::downgrade(&registry), retention));
        let public = match config.public_listen {
            Some(public) => {
                let listen = |source| StartError::Listen {
                    addr: public,
                    source,
                };
                let listener = TcpListener::bind(public).await.map_err(listen)?;
                let addr = listener.local_addr().map_err(listen)?;
                Some((listener, addr))
            }
            None => None,
        };
        Ok(Host {
            runtime,
            directory,
            router,
            forwarded,
            cluster,
            projects: Arc::new(projects),
            listener,
            addr,
            public,
            credentials: gateway::Credentials::new(
                config.admin_token.as_ref(),
                config.call_token.as_ref(),
            ),
            data_lock,
        })
    }

    /// The bound address (useful with port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The public plane's bound address, if it has one.
    pub fn public_addr(&self) -> Option<SocketAddr> {
        self.public.as_ref().map(|(_, addr)| *addr)
    }

    /// The class registry.
    pub fn registry(&self) -> &Arc<Registry> {
        &self.runtime.registry
    }

    /// The directory of live objects.
    pub fn directory(&self) -> &Arc<Directory> {
        &self.directory
    }

    /// What the host's objects run with (registry, limits, counters, schedule).
    pub fn runtime(&self) -> &Arc<Runtime> {
        &self.runtime
    }

    /// Serves HTTP until the process ends.
    pub async fn serve(self) {
        self.serve_until(std::future::pending()).await
    }

    /// Serves HTTP until `stop` completes, then shuts down: stops accepting connections,
    /// answers the requests under way, closes every WebSocket with 1001 ("going away"), and, in
    /// a cluster, leaves it so that other hosts take this host's objects over at once.
    pub async fn serve_until(self, stop: impl std::future::Future<Output = ()>) {
        let limits = &self.runtime.limits;
        let (max_connections, per_peer) = connection_caps(limits);
        let gateway = Arc::new(gateway::Gateway {
            workers: gateway::WorkerPool::new(limits.max_worker_instances),
            bodies: Arc::new(tokio::sync::Semaphore::new(
                usize::try_from(limits.max_buffered_body_bytes)
                    .unwrap_or(usize::MAX)
                    .min(tokio::sync::Semaphore::MAX_PERMITS),
            )),
            credentials: self.credentials,
            router: self.router,
            forwarded: self.forwarded,
            replication: self
                .cluster
                .clone()
                .map(|c| gateway::Replication::new(c, &self.runtime.data)),
            cluster: self.cluster,
            runtime: self.runtime,
            directory: self.directory,
            projects: self.projects,
            stopping: tokio::sync::watch::Sender::new(false),
        });
        let _held = self.data_lock;
        if gateway.replication.is_some() {
            // every deploy made through any host, before this one serves
            match gateway.catch_up().await {
                Ok(0) => {}
                Ok(n) => {
                    tracing::info!(target: "wasmdo.cluster", "applied {n} deploys from the cluster's log")
                }
                Err(e) => {
                    tracing::warn!(target: "wasmdo.cluster", "cannot read the cluster's deploy log: {e}; following it from now")
                }
            }
            tokio::spawn(gateway.clone().follow());
        }
        let caps = || gateway::Connections::new(max_connections, per_peer);
        let mut planes = vec![caps()];
        let public = self.public.map(|(public, _)| {
            planes.push(caps());
            let plane = gateway::Plane::Public;
            tokio::spawn(gateway::serve(
                public,
                gateway.clone(),
                plane,
                planes[1].clone(),
            ))
        });
        let control = gateway::Plane::Control;
        tokio::select! {
            () = gateway::serve(self.listener, gateway.clone(), control, planes[0].clone()) => {}
            () = stop => {}
        }
        // no new connections from here on (the listeners close with their accept loops)
        if let Some(public) = public {
            public.abort();
        }
        gateway.shut_down(&planes).await;
    }
}

/// Joins the cluster `settings` name: a data directory used by a single host before is refused
/// (its objects are not in the cluster store; importing them is not supported yet).
async fn join_cluster(
    settings: &config::ClusterConfig,
    config: &Config,
    addr: SocketAddr,
    data: &std::path::Path,
    metrics: Arc<Metrics>,
) -> Result<cluster::Cluster, StartError> {
    let marker = data.join("cluster");
    if !marker.exists() && data.join("objects").exists() {
        return Err(StartError::Cluster(format!(
            "{} holds objects of a single host; a cluster host needs a data directory of its own (its files are a cache of the cluster store)",
            data.display()
        )));
    }
    std::fs::write(&marker, format!("{}\n", settings.host_id))
        .map_err(|e| StartError::data_dir("cannot write", &marker, e))?;
    let url = settings
        .advertise
        .clone()
        .unwrap_or_else(|| format!("http://{addr}"));
    let token = config.admin_token.as_ref().map(|t| t.expose().to_owned());
    cluster::Cluster::join(settings, url, token, metrics)
        .await
        .map_err(|e| StartError::Cluster(e.to_string()))
}

/// The connection caps in effect: the configured ones, lowered so that sockets can take at most
/// half of the process's file descriptors (the rest are databases, WALs, the journal), and one
/// client address at most a quarter of that.
fn connection_caps(limits: &limits::Limits) -> (usize, usize) {
    let files = rustix::process::getrlimit(rustix::process::Resource::Nofile)
        .current
        .and_then(|n| usize::try_from(n).ok())
        .unwrap_or(usize::MAX);
    let total = limits.max_connections.min(files / 2).max(1);
    let per_peer = limits.max_connections_per_peer.min(total / 4).max(1);
    if total < limits.max_connections {
        tracing::info!(target: "wasmdo.gateway",
            "max-connections lowered to {total} (half of the open-file limit {files})");
    }
    (total, per_peer)
}

/// Deletes stored components no class runs once they are older than `retention`: at start, and
/// then every half retention (between 1 s and 10 min); stops with the registry.
async fn collect_components(registry: std::sync::Weak<Registry>, retention: Duration) {
    let every = (retention / 2).clamp(Duration::from_secs(1), Duration::from_secs(600));
    loop {
        let Some(registry) = registry.upgrade() else {
            return;
        };
        match registry.collect_components(retention).await {
            Ok(deleted) if !deleted.is_empty() => {
                tracing::info!(target: "wasmdo.registry", count = deleted.len(), "unused components collected")
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(target: "wasmdo.registry", "collecting unused components: {e}")
            }
        }
        drop(registry);
        tokio::time::sleep(every).await;
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

//! Cluster mode: many hosts, one writer per object, on a shared [`ClusterStore`] (PostgreSQL).
//!
//! | file | owns |
//! |---|---|
//! | [`protocol`] | the ownership protocol without I/O: decisions, and the predicates the store checks |
//! | [`store`] | the `ClusterStore` trait: membership, claims, fenced commits, batches, the id secret |
//! | [`postgres`] | the store on PostgreSQL |
//! | `router` | [`ClusterRouter`]: the `Router` of a cluster host (here, forwarded, or claimed) |
//! | `forward` | events sent to the owner host over HTTP |
//! | `measure` | what the store sustains by itself (commits per second), for the bench |
//!
//! [`Cluster`] is this host's membership and ownership state: its incarnation, the lease, which
//! objects it owns under which epoch (the protocol's [`Ownership`]), and the other hosts. It is
//! also the host's commit log (every batch commit becomes a fenced store transaction; the output
//! gate waits for it) and the actors' tenure (an actor runs events only while its host owns the
//! object).
//!
//! Local object files are a cache: a host that takes an object over rebuilds the file from the
//! store's batches unless it already holds exactly them (`router.rs`, `prepare`).

mod forward;
pub(crate) mod measure;
#[cfg(test)]
mod model;
pub(crate) mod postgres;
pub(crate) mod protocol;
mod router;
pub(crate) mod store;

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub(crate) use forward::{CHAIN, CLIENT_AUTHORIZATION, FORWARDED, THROWN};
pub(crate) use router::ClusterRouter;

use crate::config::ClusterConfig;
use crate::ids::ObjectKey;
use crate::metrics::Metrics;
use crate::runtime::Tenure;
use crate::storage::commit::{Changes, CommitLog, Durable};
use protocol::{Incarnation, Ownership};
use store::{ClusterStore, HostStatus, StoreError};

/// This host's place in the cluster.
pub(crate) struct Cluster {
    pub(crate) store: Arc<dyn ClusterStore>,
    pub(crate) me: Incarnation,
    pub(crate) url: String,
    pub(crate) lease: Duration,
    /// Who owns what, as far as this host knows.
    books: Arc<Books>,
    /// Every registered host, as of the last heartbeat.
    hosts: Mutex<Vec<HostStatus>>,
    /// When the last heartbeat succeeded.
    renewed: Mutex<Instant>,
    /// The bearer token hosts send each other (the control plane's admin token), if any.
    pub(crate) token: Option<String>,
    /// How many recent batches of an object stay restorable (superseded page versions older
    /// than that are compacted away).
    retain_batches: u64,
    /// The host's counters (the `cluster_*` ones are this module's).
    pub(crate) metrics: Arc<Metrics>,
    /// Set once the host has left the cluster (it is shutting down): no more heartbeats.
    left: std::sync::atomic::AtomicBool,
    /// Held while a heartbeat is on its way, so that leaving waits for it (a heartbeat landing
    /// after the lease was ended would renew it).
    beating: tokio::sync::Mutex<()>,
}

/// An object's superseded page versions are compacted every this many batches.
const COMPACT_EVERY: u64 = 1024;

impl Cluster {
    /// Joins the cluster `config` describes: creates the store's tables if needed and registers
    /// a new incarnation of this host. `url` is the address other hosts reach this one at.
    pub(crate) async fn join(
        config: &ClusterConfig,
        url: String,
        token: Option<String>,
        metrics: Arc<Metrics>,
    ) -> Result<Cluster, StoreError> {
        let store: Arc<dyn ClusterStore> = Arc::new(postgres::Postgres::new(&config.postgres));
        store.migrate().await?;
        let me = store.register(&config.host_id, &url).await?;
        tracing::info!(target: "wasmdo.cluster", host = %me.host, incarnation = me.number, url = %url, "joined the cluster");
        Ok(Cluster {
            store,
            books: Arc::new(Books {
                ownership: Mutex::new(Ownership::new(me.clone())),
                names: Mutex::new(HashMap::new()),
            }),
            me,
            url,
            lease: Duration::from_millis(config.lease_ms),
            hosts: Mutex::new(Vec::new()),
            renewed: Mutex::new(Instant::now()),
            token,
            retain_batches: config.retain_batches,
            metrics,
            left: Default::default(),
            beating: Default::default(),
        })
    }

    /// Leaves the cluster (the host is shutting down): stops the heartbeat and ends the lease in
    /// the store, so that other hosts take the objects over at once instead of after the lease.
    /// The objects stay in this host's books while it finishes what it is serving: their
    /// commits still land unless another host has claimed the object meanwhile (then the fence
    /// refuses them, and their callers get `503`). [`Cluster::give_up`] ends that.
    pub(crate) async fn leave(&self) {
        self.left.store(true, Ordering::Relaxed);
        let _beats = self.beating.lock().await;
        match self.store.leave(&self.me, self.lease).await {
            Ok(()) => {
                tracing::info!(target: "wasmdo.cluster", objects = self.owned(), "left the cluster: other hosts take this host's objects over")
            }
            Err(e) => {
                tracing::warn!(target: "wasmdo.cluster", "leaving the cluster: {e}; other hosts take this host's objects over when its lease runs out")
            }
        }
    }

    /// Gives up every object (after [`Cluster::leave`]): a commit after this is refused.
    pub(crate) fn give_up(&self) {
        self.books.ownership().lease_lapsed();
        self.books.names().clear();
    }

    /// Every registered host, as of the last heartbeat.
    pub(crate) fn hosts(&self) -> Vec<HostStatus> {
        self.hosts.lock().expect("hosts lock").clone()
    }

    /// The store's row for `key`, for `GET /_admin/cluster/objects/{class}/{name}`.
    pub(crate) async fn owner(
        &self,
        key: &ObjectKey,
        runtime: &crate::runtime::Runtime,
    ) -> Result<serde_json::Value, crate::error::ObjectError> {
        let namespace = runtime.registry.namespace_name(&key.class);
        let name = runtime.databases.name(&namespace, key.id);
        let found = self
            .store
            .lookup(&name, self.lease)
            .await
            .map_err(|e| crate::error::ObjectError::ClusterUnavailable(e.to_string()))?;
        let Some(found) = found else {
            return Err(crate::error::ObjectError::NotFound(
                "no host has claimed this object yet".into(),
            ));
        };
        let (pages, bytes) = self
            .store
            .footprint(&name)
            .await
            .map_err(|e| crate::error::ObjectError::ClusterUnavailable(e.to_string()))?;
        Ok(serde_json::json!({
            "id": key.id.to_hex(),
            "owner": found.claim.owner.host,
            "incarnation": found.claim.owner.number,
            "alive": found.alive,
            "epoch": found.claim.epoch,
            "batches": found.claim.seq,
            "stored_pages": pages,
            "stored_bytes": bytes,
        }))
    }

    /// Objects this host owns, as far as it knows.
    pub(crate) fn owned(&self) -> usize {
        self.books.ownership().owned()
    }

    /// The URL of the host run `owner`, if it is registered under that incarnation.
    fn url_of(&self, owner: &Incarnation) -> Option<String> {
        let hosts = self.hosts.lock().expect("hosts lock");
        hosts
            .iter()
            .find(|h| h.id == owner.host && h.incarnation == owner.number)
            .map(|h| h.url.clone())
    }

    /// Reads the registered hosts again (a host that just started is not in the last
    /// heartbeat's list yet).
    async fn refresh_hosts(&self) -> Result<(), StoreError> {
        let hosts = self.store.hosts(self.lease).await?;
        *self.hosts.lock().expect("hosts lock") = hosts;
        Ok(())
    }

    /// Whether a host that is alive (as of the last reading of the hosts) is reached at `url`.
    fn alive_at(&self, url: &str) -> bool {
        let hosts = self.hosts.lock().expect("hosts lock");
        hosts.iter().any(|h| h.url == url && h.alive)
    }

    /// Whether the host run `owner` is alive, as of the last heartbeat.
    fn is_alive(&self, owner: &Incarnation) -> bool {
        let hosts = self.hosts.lock().expect("hosts lock");
        hosts
            .iter()
            .any(|h| h.id == owner.host && h.incarnation == owner.number && h.alive)
    }

    /// Forgets what was known about `key` (and its name, if this host owned it).
    fn forget(&self, key: &ObjectKey) {
        self.books.forget(key);
    }

    /// Renews this host's heartbeat every third of the lease, learns who else is alive, and
    /// forgets every object it owned when its own lease lapsed (by the store's judgement, or
    /// because the store was unreachable for longer than the lease). `drop_owned` is handed the
    /// objects to drop. Stops when the cluster is dropped.
    pub(crate) async fn beat(
        cluster: std::sync::Weak<Cluster>,
        drop_owned: impl Fn(Vec<ObjectKey>) + Send + 'static,
    ) {
        loop {
            let Some(me) = cluster.upgrade() else { return };
            let beating = me.beating.lock().await;
            if me.left.load(Ordering::Relaxed) {
                return;
            }
            let every = me.lease / 3;
            let beat = me.store.heartbeat(&me.me, me.lease).await;
            drop(beating);
            let lapsed = match beat {
                Ok(beat) => {
                    let mut ownership = me.books.ownership();
                    for host in beat.hosts.iter().filter(|h| !h.alive) {
                        ownership.host_died(&Incarnation {
                            host: host.id.clone(),
                            number: host.incarnation,
                        });
                    }
                    drop(ownership);
                    *me.hosts.lock().expect("hosts lock") = beat.hosts;
                    let stale = me.renewed.lock().expect("renewed lock").elapsed() > me.lease;
                    *me.renewed.lock().expect("renewed lock") = Instant::now();
                    beat.lapsed || stale
                }
                Err(e) => {
                    tracing::warn!(target: "wasmdo.cluster", "heartbeat failed: {e}");
                    me.renewed.lock().expect("renewed lock").elapsed() > me.lease
                }
            };
            if lapsed {
                let owned = me.books.ownership().lease_lapsed();
                me.books.names().clear();
                if !owned.is_empty() {
                    tracing::warn!(target: "wasmdo.cluster", objects = owned.len(),
                        "this host's lease lapsed: dropping every object it owned (another host may have taken them over)");
                    drop_owned(owned);
                }
            }
            drop(me);
            tokio::time::sleep(every).await;
        }
    }
}

impl Tenure for Cluster {
    fn holds(&self, key: &ObjectKey) -> bool {
        self.books.ownership().epoch(key).is_some()
    }
}

/// The cluster as the host's commit log: each batch is one fenced store transaction.
impl CommitLog for Cluster {
    fn append(&self, changes: Changes) -> Durable {
        let owner = self.books.names().get(&changes.object).cloned();
        let epoch = owner
            .as_ref()
            .and_then(|key| self.books.ownership().epoch(key));
        let (Some(key), Some(epoch)) = (owner, epoch) else {
            return Durable::refused(
                "this host no longer owns the object (its lease lapsed or another host took it over)"
                    .into(),
            );
        };
        let (tx, durable) = Durable::from_cluster();
        let store = self.store.clone();
        let me = self.me.clone();
        // the outcome reaches the actor through `tx`; a refused batch also ends this host's
        // ownership, which the commit's waiter learns from the error
        let books = self.books.clone();
        let retain = self.retain_batches;
        let metrics = self.metrics.clone();
        tokio::spawn(async move {
            let outcome = match store.commit(&me, epoch, &changes).await {
                Ok(true) => {
                    metrics.cluster_commits.fetch_add(1, Ordering::Relaxed);
                    let seq = changes.seq;
                    if seq.is_multiple_of(COMPACT_EVERY) && seq > retain {
                        // off the output gate's path: the reply does not wait for it
                        let (store, object) = (store.clone(), changes.object.clone());
                        tokio::spawn(async move {
                            match store.compact(&object, (seq - retain) as i64).await {
                                Ok(dropped) => {
                                    tracing::debug!(target: "wasmdo.cluster", %object, dropped, "compacted")
                                }
                                Err(e) => {
                                    tracing::warn!(target: "wasmdo.cluster", %object, "compacting: {e}")
                                }
                            }
                        });
                    }
                    Ok(())
                }
                Ok(false) => {
                    metrics.cluster_fenced.fetch_add(1, Ordering::Relaxed);
                    books.forget(&key);
                    Err(format!(
                        "refused by the cluster store: another host owns the object now (this host's epoch {epoch} is stale)"
                    ))
                }
                Err(e) => {
                    // the store may or may not hold it: the next event checks the file against it
                    books.forget(&key);
                    Err(e.to_string())
                }
            };
            let _ = tx.send(outcome);
        });
        durable
    }

    /// The store holds the only durable copy of every batch.
    fn local_fallback(&self) -> bool {
        false
    }

    /// Object files are a cache in a cluster: nothing to fold.
    fn checkpoint(&self) -> Result<(), String> {
        Ok(())
    }
}

/// Which objects this host owns, under which epoch, and their names in the store.
struct Books {
    ownership: Mutex<Ownership<ObjectKey>>,
    /// The objects this host owns, by their name in the store (their database path): what a
    /// commit names.
    names: Mutex<HashMap<Arc<str>, ObjectKey>>,
}

impl Books {
    fn ownership(&self) -> std::sync::MutexGuard<'_, Ownership<ObjectKey>> {
        self.ownership.lock().expect("ownership lock")
    }

    fn names(&self) -> std::sync::MutexGuard<'_, HashMap<Arc<str>, ObjectKey>> {
        self.names.lock().expect("names lock")
    }

    /// Forgets what was known about `key` (and its name, if this host owned it).
    fn forget(&self, key: &ObjectKey) {
        self.ownership().forget(key);
        self.names().retain(|_, k| k != key);
    }
}

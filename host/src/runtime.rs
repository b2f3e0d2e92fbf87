//! What every object of a host runs with, and what an actor is handed when it starts: the class
//! registry, the limits, the host's counters, the alarm schedule, the WebSocket hub, the object
//! databases (paths, open count, parked connections) and the snapshots of hibernated objects.
//!
//! One owner per piece of state: each field is the only home of what it holds; the runtime only
//! groups them, so an actor needs one handle instead of a service locator. It knows nothing of
//! live actors (the directory's) or of how events reach them (the router's).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use crate::alarms::Schedule;
use crate::ids::ObjectKey;
use crate::limits::Limits;
use crate::metrics::Metrics;
use crate::registry::Registry;
use crate::storage::commit::CommitLog;
use crate::storage::sqlite::{Databases, SqliteStorage, Usage};
use crate::websockets::Hub;

/// The shared state of one host's objects.
pub struct Runtime {
    /// Classes and their versions.
    pub(crate) registry: Arc<Registry>,
    pub(crate) limits: Limits,
    pub(crate) metrics: Arc<Metrics>,
    /// The host-wide alarm schedule.
    pub(crate) schedule: Arc<Schedule>,
    /// Every object's WebSockets; they outlive the objects' actors (hibernation).
    pub(crate) websockets: Arc<Hub>,
    /// Where object databases live; how many are open; those parked for a next activation.
    pub(crate) databases: Databases,
    /// Snapshots of hibernated objects' in-memory state.
    pub(crate) snapshots: Snapshots,
    /// Where every object's commits become durable (`None`: `durable-commits = false`).
    pub(crate) journal: Option<Arc<dyn CommitLog>>,
    /// What the object databases take, against the storage quotas (`None`: no quota set).
    pub(crate) usage: Option<Arc<Usage>>,
    /// The data directory.
    pub(crate) data: PathBuf,
    /// Whether this host may run an object's events (`None`: always, a single host).
    pub(crate) tenure: Option<Arc<dyn Tenure>>,
}

/// Whether this host may run an object's events: always on a single host; in a cluster, only
/// while it owns the object (an actor checks before every event that runs guest code).
pub(crate) trait Tenure: Send + Sync {
    fn holds(&self, key: &ObjectKey) -> bool;
}

impl Runtime {
    pub(crate) fn new(
        registry: Arc<Registry>,
        limits: Limits,
        data: PathBuf,
        metrics: Arc<Metrics>,
        schedule: Arc<Schedule>,
        journal: Option<Arc<dyn CommitLog>>,
        usage: Option<Arc<Usage>>,
    ) -> Runtime {
        Runtime {
            registry,
            databases: Databases::new(data.clone(), limits.max_open_databases),
            data,
            tenure: None,
            limits,
            metrics,
            schedule,
            websockets: Arc::new(Hub::default()),
            snapshots: Snapshots::default(),
            journal,
            usage,
        }
    }

    /// Runs events only while `tenure` holds (cluster mode).
    pub(crate) fn with_tenure(mut self, tenure: Arc<dyn Tenure>) -> Runtime {
        self.tenure = Some(tenure);
        self
    }

    /// The class registry objects are activated from.
    pub fn registry(&self) -> &Arc<Registry> {
        &self.registry
    }

    /// The host's counters.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// The host-wide alarm schedule.
    pub fn schedule(&self) -> &Arc<Schedule> {
        &self.schedule
    }

    /// The host's limits.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Number of object databases open right now.
    pub fn open_databases(&self) -> usize {
        self.databases.open()
    }

    /// The storage of the object `key`: its database, journaled when commits are durable.
    pub(crate) fn storage(&self, key: &ObjectKey) -> SqliteStorage {
        let namespace = self.registry.namespace_name(&key.class);
        let mut storage = SqliteStorage::new(
            self.databases.path(&namespace, key.id),
            self.limits.storage(),
        );
        if let Some(usage) = &self.usage {
            storage = storage.with_usage(usage.clone(), namespace.clone());
        }
        match &self.journal {
            Some(journal) => {
                storage.journaled(journal.clone(), self.databases.name(&namespace, key.id))
            }
            None => storage,
        }
    }

    /// Makes every commit so far durable in the object files themselves (before files are
    /// deleted: a later recovery must not bring them back). A no-op without a journal.
    pub(crate) fn checkpoint(&self) -> Result<(), String> {
        match &self.journal {
            Some(journal) => journal.checkpoint(),
            None => Ok(()),
        }
    }
}

/// Snapshots of hibernated objects' in-memory state, each with the class version that took it
/// (only that version may restore it).
#[derive(Default)]
pub(crate) struct Snapshots(Mutex<HashMap<ObjectKey, (u64, Vec<u8>)>>);

impl Snapshots {
    /// Keeps a hibernating object's snapshot (taken by class version `version`).
    pub(crate) fn keep(&self, key: ObjectKey, version: u64, state: Vec<u8>) {
        let mut snapshots = self.0.lock().expect("snapshots lock");
        snapshots.insert(key, (version, state));
    }

    /// Takes the object's snapshot, if one was kept.
    pub(crate) fn take(&self, key: &ObjectKey) -> Option<(u64, Vec<u8>)> {
        let mut snapshots = self.0.lock().expect("snapshots lock");
        snapshots.remove(key)
    }

    /// Drops the snapshots of every object of `class`.
    pub(crate) fn drop_class(&self, class: &str) {
        let mut snapshots = self.0.lock().expect("snapshots lock");
        snapshots.retain(|k, _| &*k.class != class);
    }
}

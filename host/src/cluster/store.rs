//! The cluster store: what a host of a cluster needs from the engine that keeps the cluster's
//! shared state — membership, ownership, every object's committed batches, the id secret. One
//! small trait, so that another engine (FoundationDB, etcd + object storage) can be added without
//! touching actors; [`super::postgres`] is today's implementation.
//!
//! Every method is one short conversation with the store. Claims and commits evaluate the
//! protocol's predicates ([`super::protocol`]) atomically with their writes.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use super::protocol::{Claimed, Found, Incarnation};
use crate::storage::commit::{Changes, Image};

/// A store call in flight.
pub(crate) type StoreFuture<'a, T> =
    Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// Why the store could not answer: it is unreachable, or refused the statement. Requests that
/// need it fail with a `503` until it is back.
#[derive(Debug, Clone, thiserror::Error)]
#[error("the cluster store is unavailable: {0}")]
pub(crate) struct StoreError(pub(crate) String);

/// A host as the store sees it.
#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct HostStatus {
    pub(crate) id: String,
    pub(crate) incarnation: i64,
    pub(crate) url: String,
    /// Whether its heartbeat is within the lease.
    pub(crate) alive: bool,
    /// Milliseconds since its last heartbeat, by the store's clock.
    pub(crate) heartbeat_age_ms: i64,
    /// Objects whose row names this incarnation.
    pub(crate) objects: i64,
}

/// What a heartbeat learned.
#[derive(Debug, Clone)]
pub(crate) struct Beat {
    /// This host's previous heartbeat was older than the lease (or its row names a newer run):
    /// other hosts may have claimed its objects.
    pub(crate) lapsed: bool,
    /// Every registered host.
    pub(crate) hosts: Vec<HostStatus>,
}

/// A change to what the cluster runs (a deploy), recorded for every host to apply in order:
/// `kind` says which (`class`, `component`, `delete-component`, `project`), `target` names what
/// it changes, `body` is the request body.
#[derive(Debug, Clone)]
pub(crate) struct Change {
    pub(crate) kind: String,
    pub(crate) target: String,
    pub(crate) body: Vec<u8>,
}

/// The store every host of a cluster shares.
pub(crate) trait ClusterStore: Send + Sync {
    /// Creates the store's tables if they are missing (safe to run from many hosts at once).
    fn migrate(&self) -> StoreFuture<'_, ()>;

    /// The secret every host derives object ids from: `proposal` if none is stored yet.
    fn secret(&self, proposal: Vec<u8>) -> StoreFuture<'_, Vec<u8>>;

    /// Registers a new run of the host `id`, reachable at `url`; its incarnation.
    fn register<'a>(&'a self, id: &'a str, url: &'a str) -> StoreFuture<'a, Incarnation>;

    /// Renews `me`'s heartbeat.
    fn heartbeat<'a>(&'a self, me: &'a Incarnation, lease: Duration) -> StoreFuture<'a, Beat>;

    /// Ends `me`'s lease now (the host is shutting down): every host judges it dead from here
    /// on, and claims its objects without waiting for the lease to run out.
    fn leave<'a>(&'a self, me: &'a Incarnation, lease: Duration) -> StoreFuture<'a, ()>;

    /// Every registered host.
    fn hosts(&self, lease: Duration) -> StoreFuture<'_, Vec<HostStatus>>;

    /// Who owns `object`, if anyone ever claimed it.
    fn lookup<'a>(&'a self, object: &'a str, lease: Duration) -> StoreFuture<'a, Option<Found>>;

    /// Claims `object` (of `class`) for `me` (see [`super::protocol::claim_applies`]).
    fn claim<'a>(
        &'a self,
        object: &'a str,
        class: &'a str,
        me: &'a Incarnation,
        lease: Duration,
    ) -> StoreFuture<'a, Claimed>;

    /// Objects with an alarm due by `by` (ms since the Unix epoch) whose owner is not alive:
    /// (class, object), at most `limit`.
    fn orphaned_alarms(
        &self,
        by: i64,
        lease: Duration,
        limit: i64,
    ) -> StoreFuture<'_, Vec<(String, String)>>;

    /// Stores one batch of `object`, fenced (see [`super::protocol::commit_applies`]), and the
    /// alarm it left: `false` if the fence refused it (nothing was written).
    fn commit<'a>(
        &'a self,
        me: &'a Incarnation,
        epoch: i64,
        changes: &'a Changes,
    ) -> StoreFuture<'a, bool>;

    /// Takes the cluster-wide deploy lock, held until the returned guard is dropped (or the host
    /// dies): one deploy at a time in the whole cluster, so that every host applies deploys in
    /// the order of the log.
    fn lock_deploys(&self) -> StoreFuture<'_, Box<dyn Send + Sync>>;

    /// Appends `change` to the cluster's deploy log; its number.
    fn record<'a>(&'a self, change: &'a Change) -> StoreFuture<'a, i64>;

    /// The deploy log after number `after`, in order.
    fn recorded(&self, after: i64) -> StoreFuture<'_, Vec<(i64, Change)>>;

    /// `object` as of its last batch (`None`: it has none).
    fn image<'a>(&'a self, object: &'a str) -> StoreFuture<'a, Option<Image>>;

    /// What the store holds of `object`: (page versions, their bytes).
    fn footprint<'a>(&'a self, object: &'a str) -> StoreFuture<'a, (i64, i64)>;

    /// Forgets the versions of `object`'s pages that a later version written at or before batch
    /// `upto` supersedes: the object can no longer be restored to a batch before `upto`, and is
    /// rebuilt from fewer pages. Safe at any time (the state at every batch from `upto` on stays
    /// whole); returns how many page versions were dropped.
    fn compact<'a>(&'a self, object: &'a str, upto: i64) -> StoreFuture<'a, u64>;
}

//! Deploys in a cluster: a deploy to any host (a class, a component, a project, a component
//! deleted) is recorded in the cluster store's deploy log and applied by every host, in the
//! log's order, so that deploying to one host makes the class available on all.
//!
//! The host a client deployed to takes the cluster-wide deploy lock, applies every earlier change
//! it has not, applies the change (its answer is that host's outcome) and, if it succeeded,
//! records it — so the log's order is the order every host applies changes in; every host follows the log every [`FOLLOW_EVERY`] and applies what it
//! has not, and catches up with the whole log before it serves after a start. The number of the
//! last change applied is kept in `<data>/cluster-deploys`.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hyper::StatusCode;

use super::Gateway;
use crate::cluster::Cluster;
use crate::cluster::store::Change;
use crate::error::ObjectError;

/// How often a host looks for deploys made through the other hosts.
const FOLLOW_EVERY: Duration = Duration::from_millis(500);

/// This host's place in the cluster's deploy log.
pub(crate) struct Replication {
    cluster: Arc<Cluster>,
    /// The last change applied in order, and changes applied ahead of their turn (recorded by
    /// this host, applied when its client asked).
    applied: Mutex<(i64, HashSet<i64>)>,
    /// One change at a time.
    applying: tokio::sync::Mutex<()>,
    file: PathBuf,
}

impl Replication {
    pub(crate) fn new(cluster: Arc<Cluster>, data: &std::path::Path) -> Replication {
        let file = data.join("cluster-deploys");
        let applied = std::fs::read_to_string(&file)
            .ok()
            .and_then(|text| text.trim().parse().ok())
            .unwrap_or(0);
        Replication {
            cluster,
            applied: Mutex::new((applied, HashSet::new())),
            applying: tokio::sync::Mutex::new(()),
            file,
        }
    }

    fn advance(&self, seq: i64) {
        let mut applied = self.applied.lock().expect("applied lock");
        let (last, ahead) = &mut *applied;
        ahead.insert(seq);
        while ahead.remove(&(*last + 1)) {
            *last += 1;
        }
        let last = *last;
        drop(applied);
        if let Err(e) = std::fs::write(&self.file, format!("{last}\n")) {
            tracing::warn!(target: "wasmdo.cluster", "cannot write {}: {e}", self.file.display());
        }
    }
}

impl Gateway {
    /// Applies `change` to this host: the status and JSON body of its answer.
    pub(super) async fn apply(
        &self,
        change: &Change,
    ) -> Result<(StatusCode, serde_json::Value), ObjectError> {
        let registry = &self.runtime.registry;
        match change.kind.as_str() {
            "class" => {
                let version = registry.deploy(&change.target, change.body.clone()).await?;
                self.runtime.metrics.deploys.fetch_add(1, Ordering::Relaxed);
                Ok((StatusCode::CREATED, version.describe()))
            }
            "component" => {
                let (hash, size) = registry.store_component(change.body.clone()).await?;
                let body = serde_json::json!({ "hash": hash, "size": size });
                Ok((StatusCode::CREATED, body))
            }
            "delete-component" => {
                registry.delete_component(&change.target).await?;
                Ok((
                    StatusCode::OK,
                    serde_json::json!({ "deleted": change.target }),
                ))
            }
            "project" => {
                let manifest = serde_json::from_slice(&change.body).map_err(|e| {
                    ObjectError::InvalidManifest(format!("the manifest is not valid: {e}"))
                })?;
                let (reply, deployed) = self.projects.deploy(&change.target, manifest).await?;
                let deploys = &self.runtime.metrics.deploys;
                deploys.fetch_add(deployed as u64, Ordering::Relaxed);
                Ok((StatusCode::OK, reply))
            }
            other => Err(ObjectError::internal(format!(
                "unknown kind of deploy `{other}` in the cluster's deploy log"
            ))),
        }
    }

    /// A change a client asked for: applied here, then (in a cluster) recorded in the deploy log
    /// for the other hosts — only if it succeeded, so a refused deploy leaves no trace.
    pub(super) async fn change(
        &self,
        change: Change,
    ) -> Result<(StatusCode, serde_json::Value), ObjectError> {
        let Some(replication) = &self.replication else {
            return self.apply(&change).await;
        };
        // one deploy at a time in the cluster, applied after every earlier one: the log's order
        // is the order every host applies them in
        let _cluster_wide = (replication.cluster.store.lock_deploys().await)
            .map_err(|e| ObjectError::ClusterUnavailable(e.to_string()))?;
        self.catch_up().await?;
        let _one = replication.applying.lock().await;
        let outcome = self.apply(&change).await?;
        let seq = (replication.cluster.store.record(&change).await).map_err(|e| {
            ObjectError::ClusterUnavailable(format!(
                "deployed on this host, but not recorded for the other hosts ({e}); deploy again"
            ))
        })?;
        replication.advance(seq);
        Ok(outcome)
    }

    /// Applies every change of the deploy log this host has not applied yet, in order.
    pub(crate) async fn catch_up(&self) -> Result<usize, ObjectError> {
        let Some(replication) = &self.replication else {
            return Ok(0);
        };
        let _one = replication.applying.lock().await;
        let after = replication.applied.lock().expect("applied lock").0;
        let changes = (replication.cluster.store.recorded(after).await)
            .map_err(|e| ObjectError::ClusterUnavailable(e.to_string()))?;
        let mut count = 0;
        for (seq, change) in changes {
            let done = {
                let applied = replication.applied.lock().expect("applied lock");
                seq <= applied.0 || applied.1.contains(&seq)
            };
            if !done {
                // a change that fails here failed on the host it was made on too
                if let Err(e) = self.apply(&change).await {
                    tracing::warn!(target: "wasmdo.cluster", seq, kind = change.kind, target = change.target, "a deploy from the cluster's log failed here: {e}");
                }
                count += 1;
            }
            replication.advance(seq);
        }
        Ok(count)
    }

    /// Follows the deploy log for as long as the host serves.
    pub(crate) async fn follow(self: Arc<Self>) {
        loop {
            tokio::time::sleep(FOLLOW_EVERY).await;
            match self.catch_up().await {
                Ok(0) => {}
                Ok(n) => {
                    tracing::info!(target: "wasmdo.cluster", "applied {n} deploys made through other hosts")
                }
                Err(e) => tracing::warn!(target: "wasmdo.cluster", "following the deploy log: {e}"),
            }
        }
    }
}

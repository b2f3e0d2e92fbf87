//! Projects: a Cloudflare Worker project (its Durable Object classes and its entry Worker)
//! deployed as one unit, with its migrations.
//!
//! A project deploy (`PUT /_admin/projects/{name}`) names uploaded components
//! (`PUT /_admin/components`) by hash in a manifest (`wasmdo_protocol::manifest`). The host
//! 1. validates the whole manifest against the deployed classes, as they will be after the new
//!    migrations, and checks every class's component as one set (bindings between them may be
//!    cyclic); a refusal (`InvalidManifest`, `InvalidComponent`) changes nothing;
//! 2. applies the migrations it has not applied for this project, in order, each exactly once:
//!    a renamed class keeps its objects, their ids and storage (it keeps its predecessor's
//!    namespace name, so this is a change of `classes.json` and of the alarm schedule, no file
//!    moves); a deleted class loses its objects' databases, its alarms and its record;
//! 3. deploys every class with its environment and bindings (`Registry::deploy_set`: one write
//!    of `classes.json`; an unchanged class keeps its version) and sets the entry Worker.
//!
//! `<data>/projects.json` records each project's applied migration tags, its classes and its
//! entry, and the host's entry Worker (restored at start unless `wasmdo.toml` names one). It is
//! replaced atomically, like `classes.json`. A migration is first written there as *pending*
//! and recorded as applied once done; each of its steps can be repeated, so a migration a crash
//! interrupted is finished at the next start (before any alarm is delivered) or deploy.
//!
//! `validate.rs` checks a manifest (phase 1); this file applies it (phases 2 and 3).

mod validate;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use wasmdo_protocol::manifest::{Manifest, Migration, Rename};

use crate::class::ClassVersion;
use crate::error::{ObjectError, StartError};
use crate::registry;
use crate::router::Router;
use crate::runtime::Runtime;

/// How long a migration waits for the live objects of a class it renames or deletes to finish
/// their events and stop; past it, the deploy fails (`Overloaded`) and can be retried.
const STOP_WAIT: Duration = Duration::from_secs(10);

/// WebSocket close code for the sockets of a renamed or deleted class: 1012, "service restart"
/// (the client may reconnect).
const CLOSE_SERVICE_RESTART: u16 = 1012;

/// `projects.json`.
#[derive(Serialize, Deserialize, Default, Clone)]
struct ProjectsFile {
    /// The entry Worker the last project deploy set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    entry: Option<String>,
    #[serde(default)]
    projects: BTreeMap<String, ProjectRecord>,
    /// A migration started and not finished (a crash or a failure interrupted it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pending: Option<Pending>,
}

/// One project in `projects.json`.
#[derive(Serialize, Deserialize, Default, Clone, PartialEq)]
struct ProjectRecord {
    /// Tags of the applied migrations, in order.
    migrations: Vec<String>,
    /// Its classes at its last deploy.
    classes: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    entry: Option<String>,
}

#[derive(Serialize, Deserialize, Clone)]
struct Pending {
    project: String,
    migration: Migration,
}

/// The projects of this host; deploys them one at a time.
pub(crate) struct Projects {
    runtime: Arc<Runtime>,
    router: Arc<dyn Router>,
    path: PathBuf,
    /// What `projects.json` holds; locked for a whole deploy.
    file: tokio::sync::Mutex<ProjectsFile>,
}

pub(super) fn refuse(message: impl Into<String>) -> ObjectError {
    ObjectError::InvalidManifest(message.into())
}

fn internal(what: &str) -> impl Fn(std::io::Error) -> ObjectError + '_ {
    move |e| ObjectError::internal_from(what, e)
}

impl Projects {
    /// Reads `<data>/projects.json` (none yet: no projects).
    pub(crate) fn open(
        runtime: Arc<Runtime>,
        router: Arc<dyn Router>,
        data: &Path,
    ) -> Result<Projects, StartError> {
        let path = data.join("projects.json");
        let file = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| StartError::data_dir("invalid projects file", &path, e))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => ProjectsFile::default(),
            Err(e) => return Err(StartError::data_dir("cannot read", &path, e)),
        };
        Ok(Projects {
            runtime,
            router,
            path,
            file: tokio::sync::Mutex::new(file),
        })
    }

    /// At start, before alarms are delivered: finishes a migration a crash interrupted, and
    /// makes the last project deploy's entry Worker the entry unless `wasmdo.toml` names one.
    pub(crate) async fn start(&self, config_entry: Option<&str>) {
        let mut file = self.file.lock().await;
        if let Err(e) = self.finish_pending(&mut file).await {
            tracing::error!(target: "wasmdo.projects",
                "an interrupted migration could not be finished (retried at the next project deploy): {e}");
        }
        if config_entry.is_none() && file.entry.is_some() {
            self.runtime.registry.set_entry_worker(file.entry.clone());
        }
    }

    /// `GET /_admin/projects[/{name}]`.
    pub(crate) async fn describe(
        &self,
        name: Option<&str>,
    ) -> Result<serde_json::Value, ObjectError> {
        let file = self.file.lock().await;
        let describe = |name: &str, p: &ProjectRecord| {
            serde_json::json!({
                "project": name,
                "entry": p.entry,
                "classes": p.classes,
                "migrations": p.migrations,
            })
        };
        match name {
            Some(name) => file
                .projects
                .get(name)
                .map(|p| describe(name, p))
                .ok_or_else(|| {
                    ObjectError::NotFound(format!("no project named `{name}` is deployed"))
                }),
            None => Ok(serde_json::json!({
                "entry": file.entry,
                "projects": file.projects.iter().map(|(n, p)| describe(n, p)).collect::<Vec<_>>(),
            })),
        }
    }

    /// Deploys project `name` (see the module docs). The reply: the project, its entry, its
    /// classes (described), the migrations this deploy applied and the classes it deployed a
    /// new version of.
    pub(crate) async fn deploy(
        &self,
        name: &str,
        manifest: Manifest,
    ) -> Result<(serde_json::Value, usize), ObjectError> {
        let mut file = self.file.lock().await;
        self.finish_pending(&mut file).await?;
        let applied = (file.projects.get(name))
            .map(|p| p.migrations.as_slice())
            .unwrap_or_default();
        let plan = validate::validate(&self.runtime.registry, name, &manifest, applied)?;
        // every component, linked as it will be after the migrations: refused now, nothing has
        // changed yet
        let registry = self.runtime.registry.clone();
        let (classes, after) = (plan.classes, plan.after);
        let classes = tokio::task::spawn_blocking(move || {
            let other = |class: &str| match after.get(class) {
                Some(Some(deployed)) => registry.get(deployed),
                _ => None,
            };
            registry.check_set(&classes, &other).map(|()| classes)
        })
        .await
        .map_err(|e| ObjectError::internal_from("deploy task failed", e))??;
        let mut applied = Vec::new();
        for migration in plan.migrations {
            let tag = migration.tag.clone();
            file.pending = Some(Pending {
                project: name.to_string(),
                migration,
            });
            self.write(&file)?;
            self.finish_pending(&mut file).await?;
            applied.push(tag);
        }
        let registry = self.runtime.registry.clone();
        let deployed = tokio::task::spawn_blocking(move || registry.deploy_set(&classes))
            .await
            .map_err(|e| ObjectError::internal_from("deploy task failed", e))??;
        // the entry: this project's, or none if this project's was the entry and it has none now
        let before = file.projects.get(name).and_then(|p| p.entry.clone());
        let entry_before = file.entry.clone();
        match &manifest.entry {
            Some(entry) => file.entry = Some(entry.clone()),
            None if before.is_some() && file.entry == before => file.entry = None,
            None => {}
        }
        if manifest.entry.is_some() || before.is_some() {
            self.runtime.registry.set_entry_worker(file.entry.clone());
        }
        let entry_changed = file.entry != entry_before;
        let record = file.projects.entry(name.to_string()).or_default();
        let updated = ProjectRecord {
            migrations: record.migrations.clone(),
            classes: manifest.classes.keys().cloned().collect(),
            entry: manifest.entry.clone(),
        };
        if *record != updated || entry_changed {
            *record = updated;
            self.write(&file)?;
        }
        let new: Vec<&str> = (deployed.iter())
            .filter(|(_, new)| *new)
            .map(|(v, _)| &*v.name)
            .collect();
        tracing::info!(target: "wasmdo.projects", project = name, migrations = ?applied, deployed = ?new, "project deployed");
        let reply = serde_json::json!({
            "project": name,
            "entry": manifest.entry,
            "classes": deployed.iter().map(|(v, _)| v.describe()).collect::<Vec<_>>(),
            "migrations_applied": applied,
            "deployed": new,
        });
        Ok((reply, new.len()))
    }

    fn write(&self, file: &ProjectsFile) -> Result<(), ObjectError> {
        let bytes = serde_json::to_vec_pretty(file).expect("projects serialize");
        registry::write_durably(&self.path, &bytes).map_err(internal("cannot write projects.json"))
    }

    /// Finishes the pending migration, if any, and records it as applied.
    async fn finish_pending(&self, file: &mut ProjectsFile) -> Result<(), ObjectError> {
        let Some(pending) = file.pending.clone() else {
            return Ok(());
        };
        let migration = &pending.migration;
        for Rename { from, to } in &migration.renamed_classes {
            self.rename(from, to).await?;
        }
        for class in &migration.deleted_classes {
            self.delete(class).await?;
        }
        let project = file.projects.entry(pending.project.clone()).or_default();
        project.migrations.push(migration.tag.clone());
        file.pending = None;
        self.write(file)?;
        tracing::info!(target: "wasmdo.projects", project = pending.project, tag = migration.tag, "migration applied");
        Ok(())
    }

    /// Makes `class` unreachable and stops its live objects, closing their WebSockets; on
    /// failure the class is reachable again.
    async fn stop(&self, class: &str) -> Result<Option<Arc<ClassVersion>>, ObjectError> {
        let taken = self.runtime.registry.take_class(class);
        if let Err(e) = self.router.stop_class(class, STOP_WAIT).await {
            if let Some(version) = taken {
                self.runtime.registry.put_back(version);
            }
            return Err(e);
        }
        let reason = "the class was renamed or deleted by a migration; reconnect";
        let closed = (self.runtime.websockets).close_class(class, CLOSE_SERVICE_RESTART, reason);
        if closed > 0 {
            tracing::info!(target: "wasmdo.projects", class, closed, "closed the WebSockets of a migrated class");
        }
        Ok(taken)
    }

    /// Renames class `from` to `to`, keeping its objects, ids, storage and alarms. Repeatable.
    async fn rename(&self, from: &str, to: &str) -> Result<(), ObjectError> {
        let schedule = self.runtime.schedule.clone();
        // neither class's alarms go out (and get dropped) while neither name is deployed
        let _hold = schedule.hold(&[from, to]);
        let taken = self.stop(from).await?;
        // no object may live under the new name yet (its storage path would be the name's own)
        if let Err(e) = self.router.stop_class(to, STOP_WAIT).await {
            if let Some(version) = taken {
                self.runtime.registry.put_back(version);
            }
            return Err(e);
        }
        let registry = self.runtime.registry.clone();
        let (old, new) = (from.to_string(), to.to_string());
        let renamed = tokio::task::spawn_blocking(move || registry.rename_class(&old, &new))
            .await
            .map_err(|e| ObjectError::internal_from("rename task failed", e))?;
        if let Err(e) = renamed {
            if let Some(version) = taken {
                self.runtime.registry.put_back(version);
            }
            return Err(e);
        }
        schedule
            .rename_class(from, to)
            .map_err(ObjectError::internal)
    }

    /// Deletes class `class`: its objects' databases, their alarms, its record. Repeatable.
    async fn delete(&self, class: &str) -> Result<(), ObjectError> {
        let schedule = self.runtime.schedule.clone();
        let _hold = schedule.hold(&[class]);
        let taken = self.stop(class).await?;
        let registry = self.runtime.registry.clone();
        let namespace = self.runtime.registry.recorded_namespace(class);
        let storage = match &namespace {
            Ok(namespace) => namespace
                .as_ref()
                .map(|ns| self.runtime.databases.namespace_dir(ns)),
            Err(e) => {
                if let Some(version) = taken {
                    self.runtime.registry.put_back(version);
                }
                return Err(e.clone());
            }
        };
        // the files first and the record last: an interrupted delete is found and finished.
        // Before the files go, the journal lets go of their batches (a checkpoint), so recovery
        // after a crash cannot make them again.
        let runtime = self.runtime.clone();
        let removed = tokio::task::spawn_blocking(move || {
            let Some(storage) = storage else {
                return Ok(());
            };
            runtime.checkpoint().map_err(ObjectError::internal)?;
            match std::fs::remove_dir_all(&storage) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(
                    ObjectError::internal_from(format!("cannot delete {}", storage.display()), e),
                ),
                _ => Ok(()),
            }
        })
        .await
        .map_err(|e| ObjectError::internal_from("delete task failed", e))
        .and_then(|r| r);
        if let Err(e) = removed {
            if let Some(version) = taken {
                self.runtime.registry.put_back(version);
            }
            return Err(e);
        }
        if let (Some(usage), Ok(Some(namespace))) = (&self.runtime.usage, &namespace) {
            usage.forget(namespace);
        }
        let name = class.to_string();
        schedule
            .remove_class(class)
            .map_err(ObjectError::internal)?;
        tokio::task::spawn_blocking(move || registry.remove_class(&name))
            .await
            .map_err(|e| ObjectError::internal_from("delete task failed", e))?
    }
}

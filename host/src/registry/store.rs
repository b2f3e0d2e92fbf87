//! The on-disk component store: `components/<sha256>.wasm` (uploads, as uploaded),
//! `compiled/<sha256>-<engine>.cwasm` (their precompiled form, in the compile cache) and
//! `classes.json` (one [`ClassRecord`] per class), each written durably.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use wasmtime::component::Component;

use super::Registry;
use crate::error::{BoxError, ObjectError};

/// One class in `classes.json`.
#[derive(Serialize, Deserialize, Clone)]
pub(super) struct ClassRecord {
    pub(super) version: u64,
    pub(super) hash: String,
    pub(super) deployed_at_ms: u64,
    /// The namespace name, when it is not the class name (a renamed class keeps its
    /// predecessor's). Data dirs written before renames existed have none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) namespace: Option<String>,
    /// Environment variables from the project deploy that made this version.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub(super) env: BTreeMap<String, String>,
    /// Bindings (as written: `ROOMS`) → bound class, from the project deploy that made this
    /// version.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub(super) bindings: BTreeMap<String, String>,
}

impl ClassRecord {
    pub(super) fn namespace_name<'a>(&'a self, class: &'a str) -> &'a str {
        self.namespace.as_deref().unwrap_or(class)
    }
}

impl Registry {
    pub(super) fn component_path(&self, hash: &str) -> PathBuf {
        self.dir.join("components").join(format!("{hash}.wasm"))
    }

    fn compiled_path(&self, hash: &str) -> PathBuf {
        self.compile_cache
            .join(format!("{hash}-{}.cwasm", self.engine_tag))
    }

    pub(super) fn records_path(&self) -> PathBuf {
        self.dir.join("classes.json")
    }

    pub(super) fn read_records(&self) -> Result<BTreeMap<String, ClassRecord>, BoxError> {
        match std::fs::read(self.records_path()) {
            Ok(bytes) => Ok(serde_json::from_slice(&bytes)?),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BTreeMap::new()),
            Err(e) => Err(e.into()),
        }
    }

    pub(super) fn write_records(
        &self,
        records: &BTreeMap<String, ClassRecord>,
    ) -> std::io::Result<()> {
        write_durably(
            &self.records_path(),
            &serde_json::to_vec_pretty(records).expect("records serialize"),
        )
    }

    /// Loads the precompiled artifact for `hash`, compiling (and caching) it if absent or stale.
    pub(super) fn load_or_compile(&self, hash: &str, bytes: &[u8]) -> Result<Component, BoxError> {
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
        // the whole chain in one message: it is the reason a deploy is refused
        let component =
            Component::from_binary(&self.engine, bytes).map_err(|e| format!("{e:#}"))?;
        let serialized = component.serialize()?;
        write_durably(&compiled, &serialized)?;
        Ok(component)
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
                write_durably(&path, &bytes)
                    .map_err(|e| ObjectError::internal_from("cannot store the component", e))?;
            } else {
                // uploaded again (for a deploy to come): the retention of unused components
                // counts from now
                let _ = std::fs::File::options()
                    .write(true)
                    .open(&path)
                    .and_then(|f| f.set_modified(std::time::SystemTime::now()));
            }
            Ok::<_, ObjectError>(())
        })
        .await
        .map_err(|e| ObjectError::internal_from("upload task failed", e))??;
        tracing::info!(target: "wasmdo.registry", hash, size, "component stored");
        Ok((hash, size))
    }

    /// The class records, for the component store's routes.
    fn class_records(&self) -> Result<BTreeMap<String, ClassRecord>, ObjectError> {
        self.read_records()
            .map_err(|e| ObjectError::internal_from("cannot read the class records", e))
    }

    /// Every stored component: its hash, size, and the classes whose current version runs it.
    pub(crate) fn components(&self) -> Result<Vec<serde_json::Value>, ObjectError> {
        let records = self.class_records()?;
        let mut out = Vec::new();
        for (hash, size, _) in self.stored_components()? {
            let classes = runners(&records, &hash);
            out.push(serde_json::json!({ "hash": hash, "size": size, "classes": classes }));
        }
        Ok(out)
    }

    /// Deletes the stored component `hash` and its compiled form; `ComponentInUse` while a
    /// class runs it, `NotFound` if there is none. Serialized with deploys.
    pub(crate) async fn delete_component(self: &Arc<Self>, hash: &str) -> Result<(), ObjectError> {
        if !self.has_component(hash) {
            return Err(ObjectError::NotFound(format!(
                "no component {hash} is stored"
            )));
        }
        let _guard = self.deploy_lock.lock().await;
        let records = self.class_records()?;
        let users = runners(&records, hash);
        if !users.is_empty() {
            return Err(ObjectError::ComponentInUse(format!(
                "component {hash} runs class {}: deploy another component to it (or delete the class) first",
                users.join(", ")
            )));
        }
        self.remove_component(hash)
            .map_err(|e| ObjectError::internal_from(format!("cannot delete component {hash}"), e))
    }

    /// Deletes the stored components no class runs that were uploaded (or last re-uploaded)
    /// more than `retention` ago: an upload waiting for its project deploy is younger. Returns
    /// their hashes. Serialized with deploys.
    pub(crate) async fn collect_components(
        self: &Arc<Self>,
        retention: std::time::Duration,
    ) -> Result<Vec<String>, ObjectError> {
        let _guard = self.deploy_lock.lock().await;
        let registry = self.clone();
        tokio::task::spawn_blocking(move || {
            let records = registry.class_records()?;
            let now = std::time::SystemTime::now();
            let mut deleted = Vec::new();
            for (hash, _, modified) in registry.stored_components()? {
                let unused = runners(&records, &hash).is_empty();
                let old = now.duration_since(modified).unwrap_or_default() >= retention;
                if unused && old {
                    registry.remove_component(&hash).map_err(|e| {
                        ObjectError::internal_from(format!("cannot delete component {hash}"), e)
                    })?;
                    deleted.push(hash);
                }
            }
            Ok(deleted)
        })
        .await
        .map_err(|e| ObjectError::internal_from("component collection task failed", e))?
    }

    /// (hash, size, last modified) of every component file.
    fn stored_components(&self) -> Result<Vec<(String, u64, std::time::SystemTime)>, ObjectError> {
        let dir = self.dir.join("components");
        let entries = std::fs::read_dir(&dir)
            .map_err(|e| ObjectError::internal_from(format!("cannot list {}", dir.display()), e))?;
        let mut out = Vec::new();
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(hash) = name.to_str().and_then(|n| n.strip_suffix(".wasm")) else {
                continue;
            };
            if !is_sha256_hex(hash) {
                continue;
            }
            let Ok(meta) = entry.metadata() else { continue };
            let modified = meta.modified().unwrap_or(std::time::UNIX_EPOCH);
            out.push((hash.to_owned(), meta.len(), modified));
        }
        out.sort();
        Ok(out)
    }

    /// Removes a component file and its compiled form (a missing file is no error).
    fn remove_component(&self, hash: &str) -> std::io::Result<()> {
        for path in [self.component_path(hash), self.compiled_path(hash)] {
            match std::fs::remove_file(&path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        tracing::info!(target: "wasmdo.registry", hash, "component deleted");
        Ok(())
    }

    /// Whether the component with this hash (64 hex characters) has been uploaded.
    pub(crate) fn has_component(&self, hash: &str) -> bool {
        is_sha256_hex(hash) && self.component_path(hash).is_file()
    }

    /// Reads and loads the uploaded component `hash`.
    pub(super) fn load_stored(&self, hash: &str) -> Result<(Component, u64), ObjectError> {
        let bytes = std::fs::read(self.component_path(hash)).map_err(|e| {
            ObjectError::internal_from(format!("cannot read the component {hash}"), e)
        })?;
        let component = self
            .load_or_compile(hash, &bytes)
            .map_err(|e| invalid(format!("the component does not validate or compile: {e}")))?;
        Ok((component, bytes.len() as u64))
    }
}

/// The classes whose current version runs the component `hash`.
fn runners<'a>(records: &'a BTreeMap<String, ClassRecord>, hash: &str) -> Vec<&'a str> {
    records
        .iter()
        .filter(|(_, r)| r.hash == hash)
        .map(|(class, _)| class.as_str())
        .collect()
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
pub(super) fn free_namespace(
    records: &BTreeMap<String, ClassRecord>,
    class: &str,
) -> Option<String> {
    let used: Vec<&str> = records
        .iter()
        .filter(|(name, _)| *name != class)
        .map(|(name, r)| r.namespace_name(name))
        .collect();
    free_namespace_among(&used, class)
}

pub(super) fn free_namespace_among(used: &[impl AsRef<str>], class: &str) -> Option<String> {
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

/// A component the registry refuses (`InvalidComponent`).
pub(super) fn invalid(msg: impl Into<String>) -> ObjectError {
    ObjectError::InvalidComponent(msg.into())
}

/// Checks the binary's preamble, so the common mistakes get a precise message before compiling.
pub(super) fn check_preamble(bytes: &[u8]) -> Result<(), ObjectError> {
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

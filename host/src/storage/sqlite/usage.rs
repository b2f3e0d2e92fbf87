//! What the object databases of a host take, per namespace (class) and in all, against the
//! storage quotas of `[limits]`: objects per class, bytes per class, bytes per host. An object
//! exists, for these counts, once it has a database file (its first write); its bytes are its
//! database's size (`page_count · page_size`) as of its last commit.
//!
//! The counts are read from the files at start and kept up to date by every object's storage:
//! a new database is admitted before its file is made ([`Usage::admit_object`]), every write
//! call checks its batch's growth ([`Usage::check_growth`]), and a commit books it
//! ([`Usage::committed`]). Growth is checked against committed sizes, so objects writing at the
//! same moment can overshoot a byte quota by what their open batches add — never by more.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;

/// The storage quotas; 0 is "no limit".
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Quotas {
    pub(crate) max_objects_per_class: u64,
    pub(crate) max_class_storage_bytes: u64,
    pub(crate) max_host_storage_bytes: u64,
}

impl Quotas {
    fn any(&self) -> bool {
        self.max_objects_per_class > 0
            || self.max_class_storage_bytes > 0
            || self.max_host_storage_bytes > 0
    }
}

/// The storage of every namespace of one host.
#[derive(Debug)]
pub(crate) struct Usage {
    quotas: Quotas,
    counts: Mutex<Counts>,
}

#[derive(Debug, Default)]
struct Counts {
    namespaces: HashMap<String, Namespace>,
    host_bytes: u64,
}

/// One namespace's objects (database files) and their bytes.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Namespace {
    pub(crate) objects: u64,
    pub(crate) bytes: u64,
}

impl Usage {
    /// The usage of the databases under `<data>/objects` (`<namespace>/<xx>/<id>.sqlite`), read
    /// from their files; `None` when no quota is set (nothing to count).
    pub(crate) fn scan(data: &Path, quotas: Quotas) -> std::io::Result<Option<Usage>> {
        if !quotas.any() {
            return Ok(None);
        }
        let mut counts = Counts::default();
        let objects = data.join("objects");
        let namespaces = match std::fs::read_dir(&objects) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Some(Usage::new(quotas, counts)));
            }
            Err(e) => return Err(e),
        };
        for namespace in namespaces {
            let namespace = namespace?;
            let Ok(name) = namespace.file_name().into_string() else {
                continue;
            };
            let mut usage = Namespace::default();
            for fan in std::fs::read_dir(namespace.path())? {
                let fan = fan?;
                if !fan.file_type()?.is_dir() {
                    continue;
                }
                for file in std::fs::read_dir(fan.path())? {
                    let file = file?;
                    if file.path().extension().is_some_and(|e| e == "sqlite") {
                        usage.objects += 1;
                        usage.bytes += file.metadata()?.len();
                    }
                }
            }
            counts.host_bytes += usage.bytes;
            counts.namespaces.insert(name, usage);
        }
        Ok(Some(Usage::new(quotas, counts)))
    }

    fn new(quotas: Quotas, counts: Counts) -> Usage {
        Usage {
            quotas,
            counts: Mutex::new(counts),
        }
    }

    /// One namespace's usage now.
    pub(crate) fn of(&self, namespace: &str) -> Namespace {
        let counts = self.counts.lock().expect("usage lock");
        counts
            .namespaces
            .get(namespace)
            .copied()
            .unwrap_or_default()
    }

    /// Counts a new object database of `namespace` of `bytes`, unless the namespace is at its
    /// object quota (the reason, then).
    pub(crate) fn admit_object(&self, namespace: &str, bytes: u64) -> Result<(), String> {
        let mut counts = self.counts.lock().expect("usage lock");
        let usage = counts.namespaces.entry(namespace.to_owned()).or_default();
        if let Some(full) = self.full(namespace, usage.objects) {
            return Err(full);
        }
        usage.objects += 1;
        usage.bytes += bytes;
        counts.host_bytes += bytes;
        Ok(())
    }

    /// Uncounts an object admitted whose database could not be made after all.
    pub(crate) fn release_object(&self, namespace: &str) {
        let mut counts = self.counts.lock().expect("usage lock");
        if let Some(usage) = counts.namespaces.get_mut(namespace) {
            usage.objects = usage.objects.saturating_sub(1);
        }
    }

    /// Whether `namespace` is at its object quota: a new object of it could not write.
    pub(crate) fn objects_full(&self, namespace: &str) -> Option<String> {
        self.full(namespace, self.of(namespace).objects)
    }

    /// Why `namespace`, holding `objects`, can take no new object, if it cannot.
    fn full(&self, namespace: &str, objects: u64) -> Option<String> {
        let max = self.quotas.max_objects_per_class;
        (max > 0 && objects >= max).then(|| {
            format!("class `{namespace}` has {objects} objects, its quota (max-objects-per-class)")
        })
    }

    /// Whether a batch growing a database of `namespace` by `growth` bytes (over its committed
    /// size) stays within the byte quotas; the quota it would cross, if not.
    pub(crate) fn check_growth(&self, namespace: &str, growth: u64) -> Result<(), &'static str> {
        if growth == 0 {
            return Ok(());
        }
        let counts = self.counts.lock().expect("usage lock");
        let class = counts.namespaces.get(namespace).map_or(0, |n| n.bytes);
        let (class_max, host_max) = (
            self.quotas.max_class_storage_bytes,
            self.quotas.max_host_storage_bytes,
        );
        if class_max > 0 && class.saturating_add(growth) > class_max {
            return Err("max-class-storage-bytes");
        }
        if host_max > 0 && counts.host_bytes.saturating_add(growth) > host_max {
            return Err("max-host-storage-bytes");
        }
        Ok(())
    }

    /// Books a commit that took a database of `namespace` from `before` to `after` bytes.
    pub(crate) fn committed(&self, namespace: &str, before: u64, after: u64) {
        if before == after {
            return;
        }
        let mut counts = self.counts.lock().expect("usage lock");
        let usage = counts.namespaces.entry(namespace.to_owned()).or_default();
        usage.bytes = (usage.bytes + after).saturating_sub(before);
        counts.host_bytes = (counts.host_bytes + after).saturating_sub(before);
    }

    /// Forgets a namespace whose databases were deleted.
    pub(crate) fn forget(&self, namespace: &str) {
        let mut counts = self.counts.lock().expect("usage lock");
        if let Some(usage) = counts.namespaces.remove(namespace) {
            counts.host_bytes = counts.host_bytes.saturating_sub(usage.bytes);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_objects_and_bytes_against_the_quotas() {
        let quotas = Quotas {
            max_objects_per_class: 2,
            max_class_storage_bytes: 10_000,
            max_host_storage_bytes: 15_000,
        };
        let dir = tempfile::tempdir().unwrap();
        let fan = dir.path().join("objects/a/0f");
        std::fs::create_dir_all(&fan).unwrap();
        std::fs::write(fan.join("0f00.sqlite"), vec![0; 4096]).unwrap();
        std::fs::write(fan.join("0f00.sqlite-wal"), vec![0; 999]).unwrap();
        let usage = Usage::scan(dir.path(), quotas).unwrap().unwrap();
        assert_eq!(
            usage.of("a"),
            Namespace {
                objects: 1,
                bytes: 4096
            }
        );
        usage.admit_object("a", 4096).unwrap();
        assert!(usage.objects_full("a").is_some());
        assert!(
            usage
                .admit_object("a", 4096)
                .unwrap_err()
                .contains("max-objects-per-class")
        );
        assert_eq!(usage.check_growth("a", 1808), Ok(()));
        assert_eq!(
            usage.check_growth("a", 1809),
            Err("max-class-storage-bytes")
        );
        usage.admit_object("b", 4096).unwrap();
        usage.committed("b", 4096, 8192);
        // a: 8192, b: 8192 → the host's 15,000 is crossed first
        assert_eq!(usage.check_growth("a", 1000), Err("max-host-storage-bytes"));
        usage.forget("b");
        assert_eq!(usage.check_growth("a", 1000), Ok(()));
        assert!(
            Usage::scan(dir.path(), Quotas::default())
                .unwrap()
                .is_none()
        );
    }
}

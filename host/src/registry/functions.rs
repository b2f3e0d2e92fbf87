//! Compiled functions kept across compilations (Cranelift's incremental compilation cache): a
//! component that shares functions with one compiled before — the next version of a class, or
//! another class built on the same engine — compiles only the functions it does not share. Every
//! JavaScript class is the same SpiderMonkey engine (tens of thousands of functions) with its own
//! snapshot of the heap, so a project's second class, and every rebuild after an edit, compile
//! almost nothing.
//!
//! Kept in memory for the host's lifetime, up to a byte budget (`compiled-function-cache-bytes`):
//! once full, new functions are compiled as before and not kept. Cranelift keys each entry by a
//! hash of the function's IR and of the compiler's settings, so an entry is only ever reused for
//! the same code.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use wasmtime::CacheStore;

use crate::metrics::Metrics;

/// The compiled functions of this host's compilations, within `max_bytes`; counts what it
/// reuses and keeps in `metrics`.
pub(crate) struct FunctionCache {
    entries: Mutex<Entries>,
    max_bytes: u64,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for FunctionCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FunctionCache")
            .field("max_bytes", &self.max_bytes)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Default)]
struct Entries {
    by_key: HashMap<Box<[u8]>, Box<[u8]>>,
    bytes: u64,
}

impl FunctionCache {
    pub(crate) fn new(max_bytes: u64, metrics: Arc<Metrics>) -> FunctionCache {
        FunctionCache {
            entries: Mutex::default(),
            max_bytes,
            metrics,
        }
    }

    /// Bytes kept (keys and compiled functions).
    #[cfg(test)]
    fn bytes(&self) -> u64 {
        self.entries.lock().expect("function cache lock").bytes
    }
}

impl CacheStore for FunctionCache {
    fn get(&self, key: &[u8]) -> Option<Cow<'_, [u8]>> {
        let entries = self.entries.lock().ok()?;
        let value = entries.by_key.get(key).map(|v| Cow::Owned(v.to_vec()));
        if value.is_some() {
            (self.metrics.compiled_functions_reused).fetch_add(1, Ordering::Relaxed);
        }
        value
    }

    fn insert(&self, key: &[u8], value: Vec<u8>) -> bool {
        let Ok(mut entries) = self.entries.lock() else {
            return false;
        };
        let size = (key.len() + value.len()) as u64;
        if entries.bytes + size > self.max_bytes || entries.by_key.contains_key(key) {
            return false;
        }
        entries.bytes += size;
        entries.by_key.insert(key.into(), value.into_boxed_slice());
        (self.metrics.compiled_functions_kept).fetch_add(1, Ordering::Relaxed);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_kept_within_the_budget() {
        let cache = FunctionCache::new(100, Arc::default());
        assert!(cache.insert(b"a", vec![1; 40]));
        assert_eq!(cache.get(b"a").as_deref(), Some(&[1u8; 40][..]));
        assert_eq!(
            cache
                .metrics
                .compiled_functions_reused
                .load(Ordering::Relaxed),
            1
        );
        assert_eq!(cache.get(b"b"), None);
        // over the budget: not kept, the cache is unchanged
        assert!(!cache.insert(b"b", vec![2; 80]));
        assert_eq!(cache.get(b"b"), None);
        assert!(cache.insert(b"c", vec![3; 50]));
        assert_eq!(cache.bytes(), 41 + 51);
        // a key already kept is not counted twice
        assert!(!cache.insert(b"a", vec![1; 40]));
        assert_eq!(cache.bytes(), 41 + 51);
    }

    #[test]
    fn a_zero_budget_keeps_nothing() {
        let cache = FunctionCache::new(0, Arc::default());
        assert!(!cache.insert(b"a", vec![1]));
        assert_eq!(cache.get(b"a"), None);
    }
}

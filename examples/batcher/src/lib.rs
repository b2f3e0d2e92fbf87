//! A batcher Durable Object: `add` queues items in KV storage, the first item of a batch sets
//! the object's alarm, and the alarm flushes the queue into a SQL table as one batch — the
//! Cloudflare pattern for coalescing writes, in Rust. The alarm is transactional: an `add` that
//! fails leaves neither its item nor its alarm behind, and a flush that fails is retried by the
//! host with backoff, the items still queued.

use std::time::Duration;

use wasmdo::{AlarmInfo, DurableObject, alarms, params, sql, storage};

wasmdo::wit_bindgen::generate!({
    world: "batcher-object",
    runtime_path: "wasmdo::wit_bindgen::rt",
});

use exports::example::batcher::batcher::{Batch, Guest};

/// KV key of the queued items.
const PENDING: &str = "pending";
/// Flush delay when the class sets no `FLUSH_AFTER_MS`.
const DEFAULT_FLUSH_AFTER_MS: u64 = 1_000;

struct Batcher;

fn pending() -> Vec<String> {
    storage::get(PENDING)
        .expect("reading the queue")
        .unwrap_or_default()
}

fn flush_after() -> Duration {
    let ms = wasmdo::env("FLUSH_AFTER_MS")
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(DEFAULT_FLUSH_AFTER_MS);
    Duration::from_millis(ms)
}

impl Guest for Batcher {
    fn add(item: String) -> Result<u32, String> {
        let mut items = pending();
        items.push(item);
        // too big for one entry is the caller's error, not a fault: say so, queue nothing
        storage::put(PENDING, &items).map_err(|e| e.to_string())?;
        if alarms::get().is_none() {
            alarms::set_in(flush_after());
        }
        Ok(u32::try_from(items.len()).unwrap_or(u32::MAX))
    }

    fn pending() -> Vec<String> {
        pending()
    }

    fn batches() -> Vec<Batch> {
        let rows: Vec<(u32, String, i64)> = sql::exec(
            "SELECT number, items, flushed_at FROM batches ORDER BY number",
            [],
        )
        .and_then(|cursor| cursor.deserialize())
        .expect("reading the batches");
        rows.into_iter()
            .map(|(number, items, flushed_at)| Batch {
                number,
                items: serde_json::from_str(&items).unwrap_or_default(),
                flushed_at,
            })
            .collect()
    }
}

impl DurableObject for Batcher {
    fn init() -> Result<(), String> {
        sql::exec(
            "CREATE TABLE IF NOT EXISTS batches (
                 number INTEGER PRIMARY KEY, items TEXT NOT NULL, flushed_at INTEGER NOT NULL)",
            [],
        )?;
        Ok(())
    }

    fn alarm(info: AlarmInfo) -> Result<(), String> {
        let items = pending();
        if items.is_empty() {
            return Ok(());
        }
        if info.is_retry {
            wasmdo::log::warn!("flushing {} items, retry {}", items.len(), info.retry_count);
        }
        let encoded = serde_json::to_string(&items).map_err(|e| e.to_string())?;
        sql::exec(
            "INSERT INTO batches (items, flushed_at) VALUES (?, ?)",
            params![encoded, alarms::now_ms()],
        )?;
        storage::delete(PENDING)?;
        Ok(())
    }
}

wasmdo::export_object!(Batcher);
export!(Batcher);

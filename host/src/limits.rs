//! Every resource cap of the host in one place: CPU (fuel + wall-clock epoch deadline), memory,
//! request sizes, mailbox depth, storage sizes. Each default is a named constant that says what it
//! protects; every value can be changed in `wasmdo.toml` (`[limits]`).
//!
//! Which limits trap and which are errors: exceeding CPU, wall clock or memory *traps* (the
//! instance is dropped and the event rolled back); exceeding a storage size is an error returned to
//! the guest as data (see `storage`).

use serde::Deserialize;
use thiserror::Error;

use crate::storage::sqlite::StorageLimits;

/// Fuel granted to one event. Fuel burns at roughly 10 units per nanosecond of guest CPU on the
/// reference machine, so 3e11 ≈ 30 s, Cloudflare's default CPU limit per request.
pub const DEFAULT_FUEL_PER_EVENT: u64 = 300_000_000_000;
/// Wall-clock deadline of one event: stops a guest even where fuel is not being burnt.
pub const DEFAULT_WALL_CLOCK_MS: u64 = 60_000;
/// How often the epoch advances; the wall-clock deadline is enforced at this granularity.
pub const EPOCH_TICK_MS: u64 = 10;
/// A guest yields to the async runtime after this much fuel (~1 ms), so one busy object never
/// starves the others sharing a worker thread.
pub const FUEL_YIELD_INTERVAL: u64 = 10_000_000;
/// Linear memory per instance (Cloudflare: 128 MB per isolate).
pub const DEFAULT_MAX_MEMORY_BYTES: u64 = 128 * 1024 * 1024;
/// Largest wasm stack; deeper recursion traps with `StackOverflow` instead of crashing the host.
pub const DEFAULT_MAX_WASM_STACK: usize = 1024 * 1024;
/// Largest request body the gateway buffers for `fetch` or RPC (axum's default is 2 MB; objects
/// commonly take uploads, Cloudflare allows 100 MB).
pub const DEFAULT_MAX_BODY_BYTES: u64 = 32 * 1024 * 1024;
/// Request bodies buffered at once, host-wide: past it a request is refused with `Overloaded`
/// (503) instead of the host's memory growing with every slow or parallel upload.
pub const DEFAULT_MAX_BUFFERED_BODY_BYTES: u64 = 256 * 1024 * 1024;
/// Time a client has to send a whole request head; a keep-alive connection waiting for its next
/// request is closed after it too (slowloris; nginx's `client_header_timeout` is 60 s).
pub const DEFAULT_HEADER_READ_TIMEOUT_MS: u64 = 10_000;
/// Time a client has to send a whole request body (`RequestTimeout`, 408): a body trickled in
/// never holds its buffer for longer.
pub const DEFAULT_BODY_READ_TIMEOUT_MS: u64 = 60_000;
/// Connections one listener holds at once; past it a new one is answered 503 and closed. The
/// host lowers it to half its open-file limit, so sockets never starve databases of descriptors.
pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;
/// Connections one client address may hold on one listener (also lowered to a quarter of the
/// effective `max-connections`), so one client cannot take every slot.
pub const DEFAULT_MAX_CONNECTIONS_PER_PEER: usize = 1_000;
/// Stored components that no class runs are deleted once this old (since their last upload):
/// long enough for a deploy tool's uploads to be named by its project deploy.
pub const DEFAULT_UNUSED_COMPONENT_RETENTION_MS: u64 = 60 * 60 * 1000;
/// Largest component upload (a JS component is ~12 MB; Python ~18 MB).
pub const DEFAULT_MAX_COMPONENT_BYTES: u64 = 100 * 1024 * 1024;
/// Events waiting in one object's mailbox before new ones are refused with `Overloaded`
/// (Cloudflare rejects with "overloaded" too, instead of queueing without bound).
pub const DEFAULT_MAX_QUEUED_EVENTS: usize = 10_000;
/// Events run in one batch (one commit, one fsync) before replies are released.
pub const DEFAULT_MAX_BATCH: usize = 128;
/// Objects live at once (instances in memory). Sizes the pooling allocator; past it the least
/// recently used idle object is evicted to make room.
pub const DEFAULT_MAX_LIVE_OBJECTS: u32 = 1_000;
/// Object databases kept open at once (each holds 2 file descriptors: the database and its WAL;
/// exclusive locking keeps the WAL index in memory). Past it, an object closes its database after each batch and
/// reopens it on its next storage call, so live objects do not cost open files.
pub const DEFAULT_MAX_OPEN_DATABASES: usize = 1_000;
/// An object with no event for this long is evicted: instance dropped, database closed.
pub const DEFAULT_IDLE_TIMEOUT_MS: u64 = 30_000;
/// Retries of a failing alarm handler before the alarm is dropped (Cloudflare: 6).
pub const DEFAULT_ALARM_MAX_RETRIES: u32 = 6;
/// First retry delay of a failed alarm; each further retry doubles it (Cloudflare: 2 s).
pub const DEFAULT_ALARM_RETRY_BASE_MS: u64 = 2_000;
/// Longest object name (`id-from-name` input). Names are hashed into ids, but the object can
/// read its name back, and it travels in every request path.
pub const MAX_OBJECT_NAME_BYTES: usize = 4 * 1024;
/// Outbound HTTP requests (`wasi:http`) one object may have open at once; each holds a socket
/// and a task in the host until its response is read or dropped. Past it a request fails with
/// `connection-limit-reached`.
pub const MAX_OUTBOUND_REQUESTS: usize = 16;
/// An object with WebSockets open and no event for this long hibernates: its instance is dropped,
/// its sockets stay open in the host, and the next message wakes it (Cloudflare: ~10 s).
pub const DEFAULT_HIBERNATE_AFTER_MS: u64 = 10_000;
/// Largest WebSocket message, either way (Cloudflare: 1 MiB); a bigger incoming one closes the
/// socket with 1009, a bigger outgoing one is refused (`message-too-large`).
pub const DEFAULT_MAX_WEBSOCKET_MESSAGE_BYTES: u64 = 1024 * 1024;
/// WebSockets one object may hold (Cloudflare: 32,768).
pub const DEFAULT_MAX_WEBSOCKETS_PER_OBJECT: u32 = 32_768;
/// Largest snapshot of an object's in-memory state kept at hibernation; a bigger one is dropped
/// (the object wakes with `init`).
pub const DEFAULT_MAX_SNAPSHOT_BYTES: u64 = 16 * 1024 * 1024;
/// Bytes of compiled functions kept in memory across compilations, so that a component sharing
/// functions with one compiled before (a JavaScript class's next version, another JavaScript
/// class) compiles only the rest. A JavaScript engine's functions take ~100 MB.
pub const DEFAULT_COMPILED_FUNCTION_CACHE_BYTES: u64 = 256 * 1024 * 1024;
/// Bytes of an evicted object's linear memory kept resident for the next activation in its
/// slot: the pages it wrote are reset in place to the component's image (the kernel's
/// `PAGEMAP_SCAN` finds them) instead of being unmapped and faulted in again. A JavaScript
/// activation writes ~0.8 MiB, a Rust one a few pages.
pub const DEFAULT_INSTANCE_KEEP_RESIDENT_BYTES: u64 = 2 * 1024 * 1024;
/// Instances of the entry Worker run at once: requests go to an idle one, or queue behind the
/// least busy one past this. Each is a live instance (a JS Worker holds a few MB).
pub const DEFAULT_MAX_WORKER_INSTANCES: u32 = 8;
/// Tags per WebSocket, and bytes per tag (Cloudflare's limits).
pub const MAX_WEBSOCKET_TAGS: usize = 10;
/// Bytes per WebSocket tag.
pub const MAX_WEBSOCKET_TAG_BYTES: usize = 256;
/// Bytes of a WebSocket's attachment (Cloudflare: 2,048).
pub const MAX_WEBSOCKET_ATTACHMENT_BYTES: usize = 2_048;

/// Addresses (of objects it called) one object remembers the ids of, so that calling the same
/// objects again skips re-deriving their ids; past it the object forgets them all and starts
/// over. Bounds the memory an object calling many distinct objects keeps (~150 bytes each).
pub const MAX_REMEMBERED_ADDRESSES: usize = 64;

/// Longest log line kept from a guest.
pub const MAX_LOG_LINE_BYTES: usize = 16 * 1024;

/// All the host's limits. `Default` gives the documented defaults.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct Limits {
    /// Fuel per event (`CpuLimitExceeded` when exhausted).
    pub fuel_per_event: u64,
    /// Wall-clock milliseconds per event (`WallClockLimitExceeded`).
    pub wall_clock_ms: u64,
    /// Linear memory per instance in bytes (`MemoryLimitExceeded`).
    pub max_memory_bytes: u64,
    /// Wasm stack size in bytes (`StackOverflow`).
    pub max_wasm_stack: usize,
    /// Request body limit in bytes (`BodyTooLarge`, 413).
    pub max_body_bytes: u64,
    /// Component upload limit in bytes.
    pub max_component_bytes: u64,
    /// Milliseconds a stored component no class runs is kept (since its last upload) before it
    /// is collected.
    pub unused_component_retention_ms: u64,
    /// Request bodies buffered at once, host-wide, in bytes (`Overloaded`, 503).
    pub max_buffered_body_bytes: u64,
    /// Milliseconds a client has to send a request head (and an idle keep-alive connection
    /// stays open).
    pub header_read_timeout_ms: u64,
    /// Milliseconds a client has to send a request body (`RequestTimeout`, 408).
    pub body_read_timeout_ms: u64,
    /// Connections per listener.
    pub max_connections: usize,
    /// Connections per client address, per listener.
    pub max_connections_per_peer: usize,
    /// Mailbox depth per object (`Overloaded`, 503).
    pub max_queued_events: usize,
    /// Events coalesced into one commit.
    pub max_batch: usize,
    /// Live objects at once.
    pub max_live_objects: u32,
    /// Idle time before eviction, in milliseconds.
    pub idle_timeout_ms: u64,
    /// Object databases open at once (soft cap).
    pub max_open_databases: usize,
    /// Key + value bytes per KV entry.
    pub max_entry_bytes: u64,
    /// SQL statement length in bytes.
    pub max_statement_bytes: u64,
    /// Bound parameters per SQL statement.
    pub max_bound_parameters: u32,
    /// Database size per object in bytes.
    pub max_database_bytes: u64,
    /// Objects (databases) per class; 0: no limit. A new object of a full class is refused
    /// (`QuotaExceeded`, 507) and its writes fail with `quota-exceeded`.
    pub max_objects_per_class: u64,
    /// Bytes of every database of one class; 0: no limit (writes past it: `quota-exceeded`).
    pub max_class_storage_bytes: u64,
    /// Bytes of every object database of the host; 0: no limit.
    pub max_host_storage_bytes: u64,
    /// Bytes one storage call may return to a guest.
    pub max_result_bytes: u64,
    /// `true`: no reply leaves before the writes it depends on are on disk (the host-wide commit
    /// journal: one fsync for every object's batches waiting at that moment; survives power
    /// loss); `false`: commits survive a crash of the process, not of the machine.
    pub durable_commits: bool,
    /// Size at which a commit journal segment is checkpointed (object files synced, the segment
    /// deleted); also bounds how much recovery replays after a crash.
    pub journal_segment_bytes: u64,
    /// Retries of a failing alarm before it is dropped.
    pub alarm_max_retries: u32,
    /// First retry delay of a failed alarm in milliseconds (doubling each retry).
    pub alarm_retry_base_ms: u64,
    /// `true`: exact CPU accounting with fuel (`fuel-per-event`); `false`: only the wall-clock
    /// deadline limits an event, and guest code runs faster (see docs/BENCHMARKS.md).
    pub fuel_metering: bool,
    /// Idle time before an object with WebSockets hibernates, in milliseconds.
    pub hibernate_after_ms: u64,
    /// Largest WebSocket message in bytes.
    pub max_websocket_message_bytes: u64,
    /// WebSockets per object.
    pub max_websockets_per_object: u32,
    /// Largest snapshot of in-memory state kept at hibernation, in bytes.
    pub max_snapshot_bytes: u64,
    /// Instances of the entry Worker run at once.
    pub max_worker_instances: u32,
    /// Bytes of compiled functions kept across compilations (0: none kept).
    pub compiled_function_cache_bytes: u64,
    /// Bytes of a freed instance's memory kept resident for the next activation (0: none).
    pub instance_keep_resident_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        let storage = StorageLimits::default();
        Limits {
            fuel_per_event: DEFAULT_FUEL_PER_EVENT,
            wall_clock_ms: DEFAULT_WALL_CLOCK_MS,
            max_memory_bytes: DEFAULT_MAX_MEMORY_BYTES,
            max_wasm_stack: DEFAULT_MAX_WASM_STACK,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            max_component_bytes: DEFAULT_MAX_COMPONENT_BYTES,
            unused_component_retention_ms: DEFAULT_UNUSED_COMPONENT_RETENTION_MS,
            max_buffered_body_bytes: DEFAULT_MAX_BUFFERED_BODY_BYTES,
            header_read_timeout_ms: DEFAULT_HEADER_READ_TIMEOUT_MS,
            body_read_timeout_ms: DEFAULT_BODY_READ_TIMEOUT_MS,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_connections_per_peer: DEFAULT_MAX_CONNECTIONS_PER_PEER,
            max_queued_events: DEFAULT_MAX_QUEUED_EVENTS,
            max_batch: DEFAULT_MAX_BATCH,
            max_live_objects: DEFAULT_MAX_LIVE_OBJECTS,
            idle_timeout_ms: DEFAULT_IDLE_TIMEOUT_MS,
            max_open_databases: DEFAULT_MAX_OPEN_DATABASES,
            max_entry_bytes: storage.max_entry_bytes,
            max_statement_bytes: storage.max_statement_bytes,
            max_bound_parameters: storage.max_bound_parameters,
            max_database_bytes: storage.max_database_bytes,
            max_objects_per_class: 0,
            max_class_storage_bytes: 0,
            max_host_storage_bytes: 0,
            max_result_bytes: storage.max_result_bytes,
            durable_commits: true,
            journal_segment_bytes: crate::storage::journal::DEFAULT_SEGMENT_BYTES,
            fuel_metering: true,
            alarm_max_retries: DEFAULT_ALARM_MAX_RETRIES,
            alarm_retry_base_ms: DEFAULT_ALARM_RETRY_BASE_MS,
            hibernate_after_ms: DEFAULT_HIBERNATE_AFTER_MS,
            max_websocket_message_bytes: DEFAULT_MAX_WEBSOCKET_MESSAGE_BYTES,
            max_websockets_per_object: DEFAULT_MAX_WEBSOCKETS_PER_OBJECT,
            max_snapshot_bytes: DEFAULT_MAX_SNAPSHOT_BYTES,
            max_worker_instances: DEFAULT_MAX_WORKER_INSTANCES,
            compiled_function_cache_bytes: DEFAULT_COMPILED_FUNCTION_CACHE_BYTES,
            instance_keep_resident_bytes: DEFAULT_INSTANCE_KEEP_RESIDENT_BYTES,
        }
    }
}

impl Limits {
    /// The storage part of the limits, as the storage backend takes them.
    pub(crate) fn storage(&self) -> StorageLimits {
        StorageLimits {
            max_entry_bytes: self.max_entry_bytes,
            max_statement_bytes: self.max_statement_bytes,
            max_bound_parameters: self.max_bound_parameters,
            max_database_bytes: self.max_database_bytes,
            max_result_bytes: self.max_result_bytes,
        }
    }

    /// The storage quotas across objects.
    pub(crate) fn quotas(&self) -> crate::storage::sqlite::Quotas {
        crate::storage::sqlite::Quotas {
            max_objects_per_class: self.max_objects_per_class,
            max_class_storage_bytes: self.max_class_storage_bytes,
            max_host_storage_bytes: self.max_host_storage_bytes,
        }
    }

    /// Delay before retry number `retry` (1-based) of a failed alarm: base · 2^(retry-1).
    pub(crate) fn alarm_retry_delay_ms(&self, retry: u32) -> u64 {
        let doublings = retry.saturating_sub(1).min(30);
        self.alarm_retry_base_ms.saturating_mul(1 << doublings)
    }
}

/// Raised by [`MemoryLimiter`] as the trap payload when a guest grows past its memory limit, so
/// the actor can name the limit instead of reporting a bare trap.
#[derive(Debug, Error)]
#[error("memory limit exceeded: the instance asked for {requested} bytes, the limit is {limit}")]
pub(crate) struct MemoryLimitExceeded {
    pub(crate) requested: usize,
    pub(crate) limit: usize,
}

/// Per-store memory cap. Growing past it traps with [`MemoryLimitExceeded`] (rather than letting
/// `memory.grow` fail quietly) so a memory bomb is reported as such.
pub(crate) struct MemoryLimiter {
    limit: usize,
}

impl MemoryLimiter {
    pub(crate) fn new(limit: u64) -> Self {
        MemoryLimiter {
            limit: usize::try_from(limit).unwrap_or(usize::MAX),
        }
    }
}

impl wasmtime::ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.limit {
            return Err(wasmtime::Error::new(MemoryLimitExceeded {
                requested: desired,
                limit: self.limit,
            }));
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        // Tables hold function references; a million entries is far beyond any real guest.
        Ok(desired <= 1_000_000)
    }
}

//! Host-wide counters, rendered as Prometheus text at `GET /_admin/metrics`.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

/// Counters since start-up.
#[derive(Default)]
pub struct Metrics {
    /// Objects activated (actor started).
    pub activations: AtomicU64,
    /// Objects evicted (actor retired, instance dropped, database closed).
    pub evictions: AtomicU64,
    /// Events run.
    pub events: AtomicU64,
    /// Batches committed (one commit each).
    pub batches: AtomicU64,
    /// Instances dropped after a trap or limit.
    pub traps: AtomicU64,
    /// Deploys that succeeded.
    pub deploys: AtomicU64,
    /// Alarm handlers run (first deliveries and retries).
    pub alarms: AtomicU64,
    /// Alarm deliveries that failed (and were retried or dropped).
    pub alarm_failures: AtomicU64,
    /// Objects that hibernated: retired with WebSockets open (instance dropped, sockets kept).
    pub hibernations: AtomicU64,
    /// Wake-ups of a live instance's own event loop (its timers), each an event.
    pub timer_wakeups: AtomicU64,
    /// Snapshots of in-memory state taken at hibernation.
    pub snapshots: AtomicU64,
    /// Functions a compilation took compiled from an earlier one (`compiled-function-cache-bytes`).
    pub compiled_functions_reused: AtomicU64,
    /// Compiled functions kept for later compilations.
    pub compiled_functions_kept: AtomicU64,
    /// Activations that restored a snapshot instead of running `init`.
    pub restores: AtomicU64,
    /// Syncs of the commit journal (each makes every batch waiting at that moment durable).
    pub journal_syncs: AtomicU64,
    /// Batches the commit journal made durable.
    pub journal_batches: AtomicU64,
    /// Bytes appended to the commit journal.
    pub journal_bytes: AtomicU64,
    /// Journal checkpoints (object files synced, old segments deleted).
    pub journal_checkpoints: AtomicU64,
    /// Fuel burned by guest code (with fuel metering on): exact, deterministic CPU accounting.
    pub fuel: AtomicU64,
    /// Connections answered 503 and closed at a connection cap (in total or per client).
    pub connections_refused: AtomicU64,
    /// Connections closed because a client took too long to send a request head (or stayed
    /// idle), or requests answered 408 because the body took too long.
    pub request_timeouts: AtomicU64,
    /// Control-plane requests refused for a missing, wrong or out-of-scope token (401, 403).
    pub unauthorized: AtomicU64,
    /// Requests refused because request bodies held host-wide were at their budget.
    pub bodies_refused: AtomicU64,
    /// Cluster mode: claims this host won (an object it started owning).
    pub cluster_claims: AtomicU64,
    /// Cluster mode: object files rebuilt from the cluster store on a takeover.
    pub cluster_rebuilds: AtomicU64,
    /// Cluster mode: events forwarded to the owner host.
    pub cluster_forwarded: AtomicU64,
    /// Cluster mode: batches the cluster store committed.
    pub cluster_commits: AtomicU64,
    /// Cluster mode: batches the store's fence refused (this host no longer owned the object).
    pub cluster_fenced: AtomicU64,
}

impl Metrics {
    /// Prometheus text exposition, with the current gauges: live objects, open object
    /// databases, deployed classes, pending alarms, open WebSockets.
    pub fn render(
        &self,
        live: usize,
        open_databases: usize,
        classes: usize,
        pending_alarms: usize,
        websockets: u64,
    ) -> String {
        let mut out = String::new();
        let mut gauge = |name: &str, help: &str, kind: &str, value: u64| {
            let _ = writeln!(
                out,
                "# HELP wasmdo_{name} {help}\n# TYPE wasmdo_{name} {kind}\nwasmdo_{name} {value}"
            );
        };
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        gauge(
            "live_objects",
            "Objects with a live actor.",
            "gauge",
            live as u64,
        );
        gauge(
            "open_databases",
            "Object databases open.",
            "gauge",
            open_databases as u64,
        );
        gauge("classes", "Deployed classes.", "gauge", classes as u64);
        gauge(
            "activations_total",
            "Objects activated.",
            "counter",
            get(&self.activations),
        );
        gauge(
            "evictions_total",
            "Objects evicted.",
            "counter",
            get(&self.evictions),
        );
        gauge("events_total", "Events run.", "counter", get(&self.events));
        gauge(
            "commits_total",
            "Batches committed.",
            "counter",
            get(&self.batches),
        );
        gauge(
            "journal_syncs_total",
            "Syncs of the commit journal (each covers every batch waiting at that moment).",
            "counter",
            get(&self.journal_syncs),
        );
        gauge(
            "journal_batches_total",
            "Batches made durable by the commit journal.",
            "counter",
            get(&self.journal_batches),
        );
        gauge(
            "journal_bytes_total",
            "Bytes appended to the commit journal.",
            "counter",
            get(&self.journal_bytes),
        );
        gauge(
            "journal_checkpoints_total",
            "Commit journal checkpoints.",
            "counter",
            get(&self.journal_checkpoints),
        );
        for (name, help, counter) in [
            (
                "cluster_claims_total",
                "Cluster mode: objects this host claimed.",
                &self.cluster_claims,
            ),
            (
                "cluster_rebuilds_total",
                "Cluster mode: object files rebuilt from the cluster store on a takeover.",
                &self.cluster_rebuilds,
            ),
            (
                "cluster_forwarded_total",
                "Cluster mode: events forwarded to the owner host.",
                &self.cluster_forwarded,
            ),
            (
                "cluster_commits_total",
                "Cluster mode: batches the cluster store committed.",
                &self.cluster_commits,
            ),
            (
                "cluster_fenced_total",
                "Cluster mode: batches refused by the store's fence (another host owned the object).",
                &self.cluster_fenced,
            ),
        ] {
            gauge(name, help, "counter", get(counter));
        }
        gauge(
            "traps_total",
            "Instances dropped after a trap or limit.",
            "counter",
            get(&self.traps),
        );
        gauge(
            "deploys_total",
            "Successful deploys.",
            "counter",
            get(&self.deploys),
        );
        gauge(
            "pending_alarms",
            "Objects with an alarm scheduled.",
            "gauge",
            pending_alarms as u64,
        );
        gauge(
            "alarms_total",
            "Alarm handlers run.",
            "counter",
            get(&self.alarms),
        );
        gauge(
            "alarm_failures_total",
            "Alarm deliveries that failed.",
            "counter",
            get(&self.alarm_failures),
        );
        gauge(
            "websockets_open",
            "WebSockets held by the host (hibernating objects' included).",
            "gauge",
            websockets,
        );
        gauge(
            "hibernations_total",
            "Objects that hibernated (instance dropped, WebSockets kept open).",
            "counter",
            get(&self.hibernations),
        );
        gauge(
            "timer_wakeups_total",
            "Wake-ups of live instances' own event loops (timers due between events).",
            "counter",
            get(&self.timer_wakeups),
        );
        gauge(
            "compiled_functions_reused_total",
            "Functions a compilation took from an earlier one instead of compiling them.",
            "counter",
            get(&self.compiled_functions_reused),
        );
        gauge(
            "compiled_functions_kept_total",
            "Compiled functions kept for later compilations.",
            "counter",
            get(&self.compiled_functions_kept),
        );
        gauge(
            "snapshots_total",
            "Snapshots of in-memory state taken at hibernation.",
            "counter",
            get(&self.snapshots),
        );
        gauge(
            "restores_total",
            "Activations that restored a snapshot instead of running init.",
            "counter",
            get(&self.restores),
        );
        gauge(
            "fuel_consumed_total",
            "Fuel burned by guest code (fuel metering on; ~10 fuel per ns of Rust guest CPU).",
            "counter",
            get(&self.fuel),
        );
        gauge(
            "connections_refused_total",
            "Connections answered 503 and closed at max-connections or max-connections-per-peer.",
            "counter",
            get(&self.connections_refused),
        );
        gauge(
            "request_timeouts_total",
            "Connections closed for a slow or idle request head, and 408s for slow bodies.",
            "counter",
            get(&self.request_timeouts),
        );
        gauge(
            "unauthorized_total",
            "Control-plane requests refused for their token (401, 403).",
            "counter",
            get(&self.unauthorized),
        );
        gauge(
            "bodies_refused_total",
            "Requests refused at max-buffered-body-bytes.",
            "counter",
            get(&self.bodies_refused),
        );
        out
    }
}

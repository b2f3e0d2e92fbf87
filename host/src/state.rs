//! The data of an object's wasmtime `Store`: one field per capability (each capability's
//! context: object, storage, calls, WebSockets, outbound HTTP) plus WASI's, the memory limiter
//! and the per-event budget. The capabilities' host traits are implemented over views of it
//! (`WasiView`, `WasiHttpView`, [`ObjectState::objects`]); the actor owns it between instances,
//! so storage and identity outlive any trap.

use std::time::Instant;

use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtxView, WasiHttpView};

use crate::bindings::object_api::LogLevel;
use crate::event_loop::EventLoopCtx;
use crate::limits::{Limits, MemoryLimiter};
use crate::object::{GuestOutput, ObjectCtx};
use crate::outbound::OutboundCtx;
use crate::rpc::calls::{CallCtx, CallsView, ObjectsHost};
use crate::storage::sqlite::SqliteStorage;
use crate::websockets::WebSocketsCtx;

/// The data of an object's Store: one field per capability.
pub(crate) struct ObjectState {
    pub(crate) object: ObjectCtx,
    pub(crate) storage: SqliteStorage,
    /// Calls to other objects: bindings, the router, the running event's call chain.
    pub(crate) calls: CallCtx,
    /// The object's WebSockets (held by the host's hub; this is the object's view of them).
    pub(crate) websockets: WebSocketsCtx,
    /// Outbound HTTP (`wasi:http`): the class's allow-list, bounded by the event's deadline.
    pub(crate) outbound: OutboundCtx,
    /// When the instance's own event loop (its timers) next wants to run.
    pub(crate) event_loop: EventLoopCtx,
    pub(crate) wasi: WasiCtx,
    pub(crate) table: ResourceTable,
    pub(crate) limiter: MemoryLimiter,
    pub(crate) stderr: GuestOutput,
    /// Whether an instance has run with this state (and left WASI resources behind).
    pub(crate) used: bool,
    /// When the running event's wall-clock time is up. Checked on every epoch tick, so time the
    /// guest spends blocked in host calls (an outbound request, a call to another object) counts.
    pub(crate) deadline: Instant,
    /// Fuel burned by this object's guest code since the actor last took it (for metrics).
    pub(crate) fuel_used: u64,
}

impl ObjectState {
    pub(crate) fn new(
        object: ObjectCtx,
        storage: SqliteStorage,
        calls: CallCtx,
        outbound: OutboundCtx,
        websockets: WebSocketsCtx,
        limits: &Limits,
    ) -> Self {
        let stdout = GuestOutput::new(object.class.clone(), object.id, LogLevel::Info);
        let stderr = GuestOutput::new(object.class.clone(), object.id, LogLevel::Warn);
        ObjectState {
            wasi: Self::wasi(&stdout, &stderr),
            object,
            storage,
            calls,
            outbound,
            websockets,
            event_loop: EventLoopCtx::default(),
            table: ResourceTable::new(),
            limiter: MemoryLimiter::new(limits.max_memory_bytes),
            stderr,
            used: false,
            deadline: Instant::now(),
            fuel_used: 0,
        }
    }

    /// The fuel burned since the last call, resetting the count.
    pub(crate) fn take_fuel_used(&mut self) -> u64 {
        std::mem::take(&mut self.fuel_used)
    }

    /// No filesystem, no network, no host environment: real clocks and secure randomness only,
    /// and stdout/stderr into the object's log.
    fn wasi(stdout: &GuestOutput, stderr: &GuestOutput) -> WasiCtx {
        WasiCtxBuilder::new()
            .stdout(stdout.clone())
            .stderr(stderr.clone())
            .build()
    }

    /// Resets what an instance left behind (WASI resources), keeping the object's identity and
    /// storage, so the state can seed a fresh instance.
    pub(crate) fn reset(&mut self) {
        self.table = ResourceTable::new();
        let stdout = GuestOutput::new(self.object.class.clone(), self.object.id, LogLevel::Info);
        self.wasi = Self::wasi(&stdout, &self.stderr);
    }

    /// The instance is going (dropped, retired, replaced): what belonged to it alone goes too —
    /// its timers' wake-up and the sockets it accepted in memory (closed with 1001).
    pub(crate) fn instance_gone(&mut self) {
        self.event_loop.forget();
        self.websockets.close_in_memory();
    }
}

impl ObjectState {
    /// What the `objects` interface works on: calls, and the WebSockets (an upgrade passed on by
    /// `fetch`).
    pub(crate) fn objects(&mut self) -> ObjectsHost<'_> {
        ObjectsHost {
            calls: &mut self.calls,
            websockets: &mut self.websockets,
        }
    }
}

impl CallsView for ObjectState {
    /// The call context and the resource table together: a stub call reads its target from the
    /// table and resolves it through the context.
    fn calls_and_table(&mut self) -> (&mut CallCtx, &mut ResourceTable) {
        (&mut self.calls, &mut self.table)
    }
}

impl WasiView for ObjectState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for ObjectState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        self.outbound.view(&mut self.table)
    }
}

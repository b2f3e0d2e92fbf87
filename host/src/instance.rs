//! One live instance of a class: the wasmtime `Store` with everything an object's capabilities
//! need ([`ObjectState`]), and the calls into the guest under the per-event limits.
//!
//! Invariants: every call starts with a full fuel tank and a fresh epoch deadline; any error out of
//! a call poisons the Store (wasmtime refuses to re-enter an instance after a trap), so the caller
//! must drop the [`Instance`] and reclaim its [`ObjectState`] (the object's storage survives, the
//! in-memory state does not). Failures are classified into the limit that was hit.

use std::sync::Arc;
use std::time::{Duration, Instant};

use wasmtime::component::Val;
use wasmtime::{Store, Trap, UpdateDeadline};

use crate::bindings::DurableObjectHost;
use crate::bindings::http_types::{Request, Response};
use crate::bindings::packed_http_types::{PackedRequest, PackedResponse};
use crate::class::{ClassVersion, Method};
use crate::error::ObjectError;
use crate::limits::{FUEL_YIELD_INTERVAL, Limits, MemoryLimitExceeded};
use crate::packed_http;
use crate::rpc::dynamic::DynamicError;
use crate::state::ObjectState;
use crate::websockets::{SocketEvent, SocketId};

/// Gives the store a fresh budget for one event: a full fuel tank (when metering) and a new
/// wall-clock deadline. A new Store starts with no fuel and an expired deadline.
fn arm(store: &mut Store<ObjectState>, limits: &Limits) -> Result<(), ObjectError> {
    if limits.fuel_metering {
        store
            .set_fuel(limits.fuel_per_event)
            .map_err(|e| ObjectError::internal_from("setting the event's fuel", e))?;
    }
    let state = store.data_mut();
    state.deadline = Instant::now() + Duration::from_millis(limits.wall_clock_ms);
    state.outbound.set_deadline(state.deadline);
    state.stderr.clear_tail();
    store.set_epoch_deadline(1);
    Ok(())
}

/// Adds the fuel the store burned since `arm` to the object's count (fuel metering only).
fn account_fuel(store: &mut Store<ObjectState>, limits: &Limits) {
    if limits.fuel_metering
        && let Ok(left) = store.get_fuel()
    {
        store.data_mut().fuel_used += limits.fuel_per_event.saturating_sub(left);
        // a later account_fuel before the next arm must not count the same fuel again
        let _ = store.set_fuel(limits.fuel_per_event);
    }
}

/// A live instance of one class version.
pub(crate) struct Instance {
    store: Store<ObjectState>,
    instance: wasmtime::component::Instance,
    handler: DurableObjectHost,
    class: Arc<ClassVersion>,
}

impl Instance {
    /// Instantiates `class` with `state`. On failure the state is handed back.
    pub(crate) async fn new(
        class: Arc<ClassVersion>,
        mut state: ObjectState,
        limits: &Limits,
    ) -> Result<Instance, (ObjectError, ObjectState)> {
        if state.used {
            state.reset();
        }
        state.used = true;
        let mut store = Store::new(class.pre.engine(), state);
        store.limiter(|s| &mut s.limiter);
        // Every epoch tick (10 ms) a running guest yields to the runtime, so one busy object
        // never holds a worker thread; once the event's deadline has passed, it is interrupted.
        // The clock, not a count of ticks, decides: the epoch is only checked while guest code
        // runs, so a count would not see the time spent blocked in host calls.
        store.epoch_deadline_callback(|ctx| {
            if Instant::now() >= ctx.data().deadline {
                return Ok(UpdateDeadline::Interrupt);
            }
            Ok(UpdateDeadline::Yield(1))
        });
        // instantiation runs start functions (guest code): it gets one event's budget
        let armed = arm(&mut store, limits).and_then(|()| {
            if limits.fuel_metering {
                // with fuel, yield far more often than the epoch does (~1 ms of guest CPU)
                store
                    .fuel_async_yield_interval(Some(FUEL_YIELD_INTERVAL))
                    .map_err(|e| {
                        ObjectError::internal_from("setting the fuel yield interval", e)
                    })?;
            }
            Ok(())
        });
        if let Err(e) = armed {
            return Err((e, store.into_data()));
        }
        let instantiated = class.pre.instantiate_async(&mut store).await;
        account_fuel(&mut store, limits);
        let instance = match instantiated {
            Ok(i) => i,
            Err(e) => {
                let msg = format!("instantiation failed: {e:#}");
                return Err((ObjectError::InitFailed(msg), store.into_data()));
            }
        };
        let handler = match class.handler.load(&mut store, &instance) {
            Ok(h) => h,
            Err(e) => {
                let msg = format!("handler exports unusable: {e:#}");
                return Err((ObjectError::InitFailed(msg), store.into_data()));
            }
        };
        Ok(Instance {
            store,
            instance,
            handler,
            class,
        })
    }

    /// The class version this instance runs.
    pub(crate) fn class(&self) -> &Arc<ClassVersion> {
        &self.class
    }

    /// The object's state, for the actor's transaction bookkeeping between events.
    pub(crate) fn state(&mut self) -> &mut ObjectState {
        self.store.data_mut()
    }

    /// Drops the instance, keeping the object's identity and storage (and forgetting what was
    /// the instance's alone: its timers, its in-memory sockets).
    pub(crate) fn into_state(self) -> ObjectState {
        let mut state = self.store.into_data();
        state.instance_gone();
        state
    }

    fn arm(&mut self, limits: &Limits) -> Result<(), ObjectError> {
        arm(&mut self.store, limits)
    }

    /// Turns an error out of a guest call into the limit or trap it was.
    fn classify(&self, e: wasmtime::Error, limits: &Limits) -> ObjectError {
        if let Some(m) = e.downcast_ref::<MemoryLimitExceeded>() {
            return ObjectError::MemoryLimitExceeded(m.to_string());
        }
        match e.downcast_ref::<Trap>() {
            Some(Trap::OutOfFuel) => ObjectError::CpuLimitExceeded(limits.fuel_per_event),
            Some(Trap::Interrupt) => ObjectError::WallClockLimitExceeded(limits.wall_clock_ms),
            Some(Trap::StackOverflow) => ObjectError::StackOverflow(limits.max_wasm_stack),
            _ => {
                let tail = self.store.data().stderr.tail();
                let what = if tail.is_empty() {
                    format!("{e:#}")
                } else {
                    // a Rust panic message is far more useful than "unreachable executed"
                    format!("{tail} ({e})")
                };
                if self.store.data().storage.quota_refused() {
                    // the guest did not take `quota-exceeded` for an answer: that is the cause
                    return ObjectError::QuotaExceeded(format!(
                        "a write was refused by a storage quota (max-database-bytes, max-class-storage-bytes, max-host-storage-bytes or max-objects-per-class) and the event then failed: {what}; its writes were rolled back"
                    ));
                }
                ObjectError::Trap(what)
            }
        }
    }

    /// Runs the guest's `init`. Err means the instance must be dropped.
    pub(crate) async fn init(&mut self, limits: &Limits) -> Result<(), ObjectError> {
        self.arm(limits)?;
        let handler = self.handler.wasmdo_object_handler();
        let outcome = handler.call_init(&mut self.store).await;
        account_fuel(&mut self.store, limits);
        match outcome {
            Ok(Ok(())) => Ok(()),
            Ok(Err(msg)) => Err(ObjectError::InitFailed(msg)),
            Err(e) => Err(ObjectError::InitFailed(
                self.classify(e, limits).to_string(),
            )),
        }
    }

    /// Delivers an HTTP request to `fetch`. `Err(_, true)` means the instance is poisoned.
    pub(crate) async fn fetch(
        &mut self,
        request: Request,
        limits: &Limits,
    ) -> Result<Response, (ObjectError, bool)> {
        self.arm(limits).map_err(|e| (e, false))?;
        // the packed head when the class takes it (JavaScript: far fewer strings to decode)
        let outcome = match self.class.packed_fetch {
            Some(index) if packed_http::packs(&request) => {
                let packed = packed_http::pack_request(request);
                self.fetch_packed(index, packed).await
            }
            _ => {
                let handler = self.handler.wasmdo_object_handler();
                handler.call_fetch(&mut self.store, &request).await
            }
        };
        account_fuel(&mut self.store, limits);
        match outcome {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(msg)) => Err((ObjectError::FetchFailed(msg), false)),
            Err(e) => Err((self.classify(e, limits), true)),
        }
    }

    /// `packed-handler.fetch`, its response unpacked (a response that does not unpack is the
    /// handler's error).
    async fn fetch_packed(
        &mut self,
        index: wasmtime::component::ComponentExportIndex,
        request: PackedRequest,
    ) -> wasmtime::Result<Result<Response, String>> {
        let func = self
            .instance
            .get_typed_func::<(PackedRequest,), (Result<PackedResponse, String>,)>(
                &mut self.store,
                index,
            )?;
        let (result,) = func.call_async(&mut self.store, (request,)).await?;
        Ok(result.and_then(|packed| {
            packed_http::unpack_response(packed)
                .map_err(|why| format!("its packed response does not unpack: {why}"))
        }))
    }

    /// Runs the class's alarm handler; `Ok(false)` if the class has none. `Err(_, true)` means
    /// the instance is poisoned.
    pub(crate) async fn alarm(
        &mut self,
        retry_count: u32,
        limits: &Limits,
    ) -> Result<bool, (ObjectError, bool)> {
        let Some(index) = self.class.alarm else {
            return Ok(false);
        };
        self.arm(limits).map_err(|e| (e, false))?;
        let func = self
            .instance
            .get_func(&mut self.store, index)
            .ok_or_else(|| (ObjectError::internal("the alarm handler vanished"), false))?;
        let info = Val::Record(vec![
            ("retry-count".to_string(), Val::U32(retry_count)),
            ("is-retry".to_string(), Val::Bool(retry_count > 0)),
        ]);
        let mut results = [Val::Bool(false)];
        let outcome = func
            .call_async(&mut self.store, &[info], &mut results)
            .await;
        account_fuel(&mut self.store, limits);
        match outcome {
            Ok(()) => match &results[0] {
                Val::Result(Ok(_)) => Ok(true),
                Val::Result(Err(Some(e))) => match &**e {
                    Val::String(msg) => Err((ObjectError::AlarmFailed(msg.clone()), false)),
                    other => Err((ObjectError::AlarmFailed(format!("{other:?}")), false)),
                },
                other => Err((
                    ObjectError::internal(format!("the alarm handler returned {other:?}")),
                    false,
                )),
            },
            Err(e) => Err((self.classify(e, limits), true)),
        }
    }

    /// Runs the class's WebSocket handler for `event` on `socket`; `Ok(false)` if the class has
    /// none. `Err(_, true)` means the instance is poisoned.
    pub(crate) async fn websocket(
        &mut self,
        socket: SocketId,
        event: SocketEvent,
        limits: &Limits,
    ) -> Result<bool, (ObjectError, bool)> {
        let Some(handler) = &self.class.websocket else {
            return Ok(false);
        };
        let (message, close, error) = (handler.message, handler.close, handler.error);
        self.arm(limits).map_err(|e| (e, false))?;
        // typed calls: a binary message crosses as bytes, not as one component value per byte
        let outcome = match event {
            SocketEvent::Message(m) => self.call_handler(message, (socket, m)).await,
            SocketEvent::Close {
                code,
                reason,
                clean,
            } => {
                self.call_handler(close, (socket, code, reason, clean))
                    .await
            }
            SocketEvent::Error(e) => self.call_handler(error, (socket, e)).await,
        };
        account_fuel(&mut self.store, limits);
        self.handled(outcome, limits)
    }

    /// Runs the instance's own event loop (`event-loop-handler.run`: its due timers); `Ok(false)`
    /// if the class has none. `Err(_, true)` means the instance is poisoned.
    pub(crate) async fn run_event_loop(
        &mut self,
        limits: &Limits,
    ) -> Result<bool, (ObjectError, bool)> {
        let Some(index) = self.class.event_loop else {
            return Ok(false);
        };
        self.arm(limits).map_err(|e| (e, false))?;
        let outcome = self.call_handler(index, ()).await;
        account_fuel(&mut self.store, limits);
        self.handled(outcome, limits)
    }

    /// Calls `method` by name through the class's `dynamic-handler` with `args` (an encoded list
    /// of values); `Ok(None)` if the class has none. `Err(_, true)` means the instance is
    /// poisoned.
    pub(crate) async fn call_dynamic(
        &mut self,
        method: &str,
        args: &[u8],
        limits: &Limits,
    ) -> Result<Option<Result<Vec<u8>, DynamicError>>, (ObjectError, bool)> {
        let Some(index) = self.class.dynamic else {
            return Ok(None);
        };
        self.arm(limits).map_err(|e| (e, false))?;
        let func = self
            .instance
            .get_typed_func::<(&str, &[u8]), (Result<Vec<u8>, DynamicError>,)>(
                &mut self.store,
                index,
            )
            .map_err(|e| (ObjectError::internal_from("the dynamic handler", e), false))?;
        let outcome = func.call_async(&mut self.store, (method, args)).await;
        account_fuel(&mut self.store, limits);
        match outcome {
            Ok((result,)) => Ok(Some(result)),
            Err(e) => Err((self.classify(e, limits), true)),
        }
    }

    /// What a handler call returning `result<_, string>` came to: `Ok(true)`, its `err` (the
    /// instance is fine), or a trap or limit (`Err(_, true)`: the instance is poisoned).
    fn handled(
        &self,
        outcome: wasmtime::Result<Result<(), String>>,
        limits: &Limits,
    ) -> Result<bool, (ObjectError, bool)> {
        match outcome {
            Ok(Ok(())) => Ok(true),
            Ok(Err(msg)) => Err((
                ObjectError::MethodError(serde_json::Value::String(msg)),
                false,
            )),
            Err(e) => Err((self.classify(e, limits), true)),
        }
    }

    /// Calls an exported handler `index` taking `params` and returning `result<_, string>`.
    async fn call_handler<P>(
        &mut self,
        index: wasmtime::component::ComponentExportIndex,
        params: P,
    ) -> wasmtime::Result<Result<(), String>>
    where
        P: wasmtime::component::ComponentNamedList + wasmtime::component::Lower + Send + Sync,
    {
        let func = self
            .instance
            .get_typed_func::<P, (Result<(), String>,)>(&mut self.store, index)?;
        let (result,) = func.call_async(&mut self.store, params).await?;
        Ok(result)
    }

    /// The class's snapshot of its in-memory state: `None` if the class has no snapshot handler
    /// or keeps nothing. An error leaves the instance unusable (it is about to be dropped anyway).
    pub(crate) async fn snapshot(
        &mut self,
        limits: &Limits,
    ) -> Result<Option<Vec<u8>>, ObjectError> {
        let Some((index, _)) = self.class.snapshot else {
            return Ok(None);
        };
        self.arm(limits)?;
        let func = self
            .instance
            .get_typed_func::<(), (Option<Vec<u8>>,)>(&mut self.store, index)
            .map_err(|e| ObjectError::internal_from("the snapshot handler", e))?;
        let outcome = func.call_async(&mut self.store, ()).await;
        account_fuel(&mut self.store, limits);
        match outcome {
            Ok((state,)) => Ok(state),
            Err(e) => Err(self.classify(e, limits)),
        }
    }

    /// Rebuilds the object's in-memory state from a snapshot, instead of `init`. Err means the
    /// instance must be dropped (the caller then activates afresh, with `init`).
    pub(crate) async fn restore(
        &mut self,
        state: Vec<u8>,
        limits: &Limits,
    ) -> Result<(), ObjectError> {
        let Some((_, index)) = self.class.snapshot else {
            return Err(ObjectError::internal("the class has no snapshot handler"));
        };
        self.arm(limits)?;
        let func = self
            .instance
            .get_typed_func::<(Vec<u8>,), (Result<(), String>,)>(&mut self.store, index)
            .map_err(|e| ObjectError::internal_from("the restore handler", e))?;
        let outcome = func.call_async(&mut self.store, (state,)).await;
        account_fuel(&mut self.store, limits);
        match outcome {
            Ok((Ok(()),)) => Ok(()),
            Ok((Err(msg),)) => Err(ObjectError::InitFailed(format!("restore failed: {msg}"))),
            Err(e) => Err(self.classify(e, limits)),
        }
    }

    /// Calls an RPC method with already-typed arguments. `Err(_, true)` means the instance is
    /// poisoned.
    pub(crate) async fn call(
        &mut self,
        method: &Method,
        args: &[Val],
        limits: &Limits,
    ) -> Result<Option<Val>, (ObjectError, bool)> {
        self.arm(limits).map_err(|e| (e, false))?;
        let func = self
            .instance
            .get_func(&mut self.store, method.index)
            .ok_or_else(|| {
                (
                    ObjectError::internal(format!("method `{}` vanished", method.name)),
                    false,
                )
            })?;
        let mut results = vec![Val::Bool(false); usize::from(method.result.is_some())];
        let outcome = func.call_async(&mut self.store, args, &mut results).await;
        account_fuel(&mut self.store, limits);
        match outcome {
            Ok(()) => Ok(results.pop()),
            Err(e) => Err((self.classify(e, limits), true)),
        }
    }
}

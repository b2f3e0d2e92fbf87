//! One actor per live object: a task that owns the object's instance and storage, takes events
//! from its mailbox one at a time, and runs each inside the object's implicit transaction.
//!
//! Batching and the output gate: the actor drains up to `max-batch` queued events, runs them one
//! after another (each in its own savepoint, so a failing event rolls back only its own writes),
//! then commits the batch once and only then releases the replies. One fsync thus acknowledges
//! many writes, and no reply ever reports a write that is not durable. If the commit fails, every
//! reply of the batch becomes `CommitFailed`.
//!
//! Failure: a trap (limit or guest fault) drops the instance; the next event re-instantiates it
//! and runs `init` again. Storage is never lost with an instance. Idle actors retire through
//! [`Liveness::retire`] (the directory's), which guarantees no event is lost in the race with a
//! new sender.
//!
//! An actor is handed the [`Runtime`] (registry, limits, schedule, hub, databases, snapshots),
//! its directory as [`Liveness`] (a live permit to start, retirement to stop) and the
//! [`Router`] its object's calls to other objects go through; it never sees the directory
//! itself.

use bytes::Bytes;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, mpsc, oneshot};
use wasmtime::component::Val;

use crate::bindings::dynamic_api::Thrown;
use crate::bindings::http_types::{Request, Response};
use crate::class::{ClassVersion, Method};
use crate::clock::now_ms;
use crate::error::ObjectError;
use crate::ids::ObjectKey;
use crate::instance::Instance;
use crate::limits::Limits;
use crate::object::ObjectCtx;
use crate::outbound::OutboundCtx;
use crate::router::{Chain, Dynamic, Fetched, Routed, Router, StubMethod};
use crate::rpc::calls::CallCtx;
use crate::rpc::dynamic::DynamicError;
use crate::rpc::{self, Reply};
use crate::runtime::Runtime;
use crate::state::ObjectState;
use crate::storage::commit::NotDurable;
use crate::websockets::{SocketEvent, SocketId, WebSocketsCtx};

/// The directory protocol an actor follows (implemented by the directory, which starts actors):
/// a permit among the live objects before it activates, and retirement when it stops.
pub(crate) trait Liveness: Send + Sync {
    /// Waits for room among the live objects (asking an idle one to retire if there is none).
    fn acquire_live_permit(&self, key: &ObjectKey) -> Routed<OwnedSemaphorePermit>;

    /// Retires the actor of `key` if no event is waiting in `rx`; false: take the next event.
    fn retire(&self, key: &ObjectKey, slot: &Slot, rx: &mpsc::UnboundedReceiver<Event>) -> bool;
}

/// What the directory keeps per live actor, shared with the actor.
pub(crate) struct Slot {
    /// Distinguishes this activation from a later one of the same object.
    generation: u64,
    /// Events sent and not yet taken by the actor.
    pub(crate) queued: AtomicUsize,
    /// When the actor last finished a batch (ms since `epoch`): for LRU eviction.
    last_active: AtomicU64,
    epoch: Instant,
    /// Set once the actor has left the directory.
    retired: AtomicBool,
}

impl Slot {
    /// The slot of activation number `generation`, active now.
    pub(crate) fn new(generation: u64, epoch: Instant) -> Slot {
        let slot = Slot {
            generation,
            queued: AtomicUsize::new(0),
            last_active: AtomicU64::new(0),
            epoch,
            retired: AtomicBool::new(false),
        };
        slot.touch();
        slot
    }

    pub(crate) fn generation(&self) -> u64 {
        self.generation
    }

    /// When the actor last finished a batch (ms since the directory started).
    pub(crate) fn last_active(&self) -> u64 {
        self.last_active.load(Ordering::Relaxed)
    }

    /// Whether the actor has left the directory (its key may have a newer activation).
    pub(crate) fn is_retired(&self) -> bool {
        self.retired.load(Ordering::Relaxed)
    }

    /// Marks the actor as gone from the directory.
    pub(crate) fn mark_retired(&self) {
        self.retired.store(true, Ordering::Relaxed);
    }

    pub(crate) fn touch(&self) {
        let now = self.epoch.elapsed().as_millis() as u64;
        self.last_active.store(now, Ordering::Relaxed);
    }

    /// How long since the actor last finished a batch (to the millisecond).
    pub(crate) fn idle_for(&self) -> Duration {
        let now = self.epoch.elapsed().as_millis() as u64;
        Duration::from_millis(now.saturating_sub(self.last_active()))
    }
}

/// A unit of work for an object.
pub(crate) enum Event {
    /// Typed RPC with JSON arguments (from the HTTP gateway or the CLI): `args` is the JSON
    /// array's text, decoded against the method's types once the method is known.
    Call {
        method: String,
        args: Bytes,
        /// The objects waiting on this call: empty from a client; in a cluster, those of the
        /// host that forwarded another object's call here.
        chain: Chain,
        reply: oneshot::Sender<Result<serde_json::Value, ObjectError>>,
    },
    /// A call from another object's stub, with component values (no JSON): `stub` says which
    /// method and what the stub promises, `chain` the objects waiting on this call.
    Invoke {
        stub: Arc<StubMethod>,
        args: Vec<Val>,
        chain: Chain,
        reply: oneshot::Sender<Result<Option<Val>, ObjectError>>,
    },
    /// Dynamic RPC from another object (`dynamic.call`): `method` by name, `args` an encoded
    /// list of values; the reply is the encoded result, or what the method threw.
    CallDynamic {
        method: String,
        args: Vec<u8>,
        chain: Chain,
        reply: oneshot::Sender<Result<Dynamic, ObjectError>>,
    },
    /// An HTTP request for the object's `fetch`; `upgrade`: a WebSocket upgrade request, which
    /// the object may accept.
    Fetch {
        request: Request,
        upgrade: bool,
        /// The objects waiting on this request (empty for requests from outside the host).
        chain: Chain,
        reply: oneshot::Sender<Result<Fetched, ObjectError>>,
    },
    /// Something happened on one of the object's WebSockets.
    WebSocket {
        socket: SocketId,
        event: SocketEvent,
    },
    /// The object's alarm is due (as far as the schedule knows); `retry` failures so far.
    Alarm { retry: u32 },
    /// The live instance's own event loop asked to run now (its timers): never sent, the actor
    /// makes it when the instance's wake-up comes.
    Wake,
    /// The directory needs room: retire if idle.
    Evict,
}

/// A reply waiting for the batch's commit (output gate).
enum Pending {
    Call(
        oneshot::Sender<Result<serde_json::Value, ObjectError>>,
        Result<serde_json::Value, ObjectError>,
    ),
    Fetch(
        oneshot::Sender<Result<Fetched, ObjectError>>,
        Result<Fetched, ObjectError>,
    ),
    Invoke(
        oneshot::Sender<Result<Option<Val>, ObjectError>>,
        Result<Option<Val>, ObjectError>,
    ),
    Dynamic(
        oneshot::Sender<Result<Dynamic, ObjectError>>,
        Result<Dynamic, ObjectError>,
    ),
}

impl Pending {
    fn release(self, commit: &Result<(), ObjectError>) {
        // a receiver that went away (client disconnected) is not an error
        let failed = |e: &ObjectError| match e {
            // the cluster did not commit the batch: the caller may retry, as the error says
            ObjectError::ClusterUnavailable(_) => e.clone(),
            _ => ObjectError::CommitFailed(e.to_string()),
        };
        match (self, commit) {
            (Pending::Call(tx, r), Ok(())) => drop(tx.send(r)),
            (Pending::Fetch(tx, r), Ok(())) => drop(tx.send(r)),
            (Pending::Invoke(tx, r), Ok(())) => drop(tx.send(r)),
            (Pending::Dynamic(tx, r), Ok(())) => drop(tx.send(r)),
            (Pending::Dynamic(tx, _), Err(e)) => drop(tx.send(Err(failed(e)))),
            (Pending::Invoke(tx, _), Err(e)) => drop(tx.send(Err(failed(e)))),
            (Pending::Call(tx, _), Err(e)) => drop(tx.send(Err(failed(e)))),
            (Pending::Fetch(tx, _), Err(e)) => drop(tx.send(Err(failed(e)))),
        }
    }
}

/// Where the object's state lives right now.
enum Occupant {
    /// No instance: identity and storage only.
    Dormant(Box<ObjectState>),
    /// A live instance (which owns the state).
    Live(Box<Instance>),
    /// Transiently empty while moving between the two.
    Moving,
}

pub(crate) struct Actor {
    key: ObjectKey,
    /// The name the object was first addressed by, if any (kept with its alarm so an alarm
    /// activation can tell the object its name).
    name: Option<String>,
    slot: Arc<Slot>,
    runtime: Arc<Runtime>,
    home: Arc<dyn Liveness>,
    rx: mpsc::UnboundedReceiver<Event>,
    occupant: Occupant,
}

impl Actor {
    pub(crate) fn new(
        key: ObjectKey,
        name: Option<String>,
        slot: Arc<Slot>,
        runtime: Arc<Runtime>,
        home: Arc<dyn Liveness>,
        router: Weak<dyn Router>,
        rx: mpsc::UnboundedReceiver<Event>,
    ) -> Actor {
        let limits = &runtime.limits;
        let mut storage = runtime.storage(&key);
        // the database a previous actor of this object left open, if it still is
        if let Some(parked) = runtime.databases.unpark(&key) {
            storage.adopt(parked);
        }
        // what the class grants; set again from the version each activation runs
        let class = runtime.registry.get(&key.class);
        let object = ObjectCtx {
            id: key.id,
            name,
            class: key.class.clone(),
            env: class.as_ref().map(|c| c.env.clone()).unwrap_or_default(),
        };
        let calls = CallCtx {
            caller: key.clone(),
            bindings: class
                .as_ref()
                .map(|c| c.bindings.clone())
                .unwrap_or_default(),
            router,
            chain: Arc::new(Vec::new()),
            resolved: Default::default(),
        };
        let outbound = OutboundCtx::new(
            key.class.clone(),
            key.id,
            class.map(|c| c.fetch.clone()).unwrap_or_default(),
        );
        let websockets = WebSocketsCtx::new(key.clone(), runtime.websockets.clone(), limits);
        let state = ObjectState::new(object, storage, calls, outbound, websockets, limits);
        Actor {
            name: state.object.name.clone(),
            key,
            slot,
            runtime,
            home,
            rx,
            occupant: Occupant::Dormant(Box::new(state)),
        }
    }

    /// The event loop; returns when the object retires.
    pub(crate) async fn run(mut self) {
        let permit = match self.home.acquire_live_permit(&self.key).await {
            Ok(p) => p,
            Err(e) => return self.refuse_all(e).await,
        };
        self.runtime
            .metrics
            .activations
            .fetch_add(1, Ordering::Relaxed);
        let limits = &self.runtime.limits;
        let idle = Duration::from_millis(limits.idle_timeout_ms);
        let hibernate = Duration::from_millis(limits.hibernate_after_ms);
        // One timer for the actor's life, moved on only when it fires (at least every `check`):
        // arming a fresh one for every event would cost a timer-wheel insertion and removal per
        // event.
        let check = idle.min(hibernate);
        let timer = tokio::time::sleep(check);
        tokio::pin!(timer);
        // the instance's own wake-up (its timers), armed only when it changes
        let wake = tokio::time::sleep(Duration::ZERO);
        tokio::pin!(wake);
        let mut wake_armed = None;
        loop {
            let wake_at = self.wake_at();
            if wake_at != wake_armed {
                if let Some(at) = wake_at {
                    wake.as_mut().reset(at);
                }
                wake_armed = wake_at;
            }
            let first = tokio::select! {
                biased;
                event = self.rx.recv() => match event {
                    Some(event) => event,
                    None => break,
                },
                () = &mut wake, if wake_armed.is_some() => Event::Wake,
                () = &mut timer => {
                    // an object holding WebSockets hibernates (sooner); one without is evicted;
                    // one with pending timers does not hibernate (as on Cloudflare) but is still
                    // evicted when idle; one holding sockets of its instance alone does neither
                    let (sockets, in_memory) = self.runtime.websockets.holds(&self.key);
                    let wait = match (in_memory, sockets && wake_armed.is_none()) {
                        (true, _) => Duration::MAX,
                        (false, true) => hibernate,
                        (false, false) => idle,
                    };
                    let idle_for = self.slot.idle_for();
                    let next = if idle_for < wait {
                        // not idle long enough; look again when it would be (or sooner: the
                        // object may open a WebSocket meanwhile, and then hibernate sooner)
                        (wait - idle_for).min(check)
                    } else {
                        if sockets {
                            self.take_snapshot().await;
                        }
                        if self.try_retire() {
                            if sockets {
                                self.runtime
                                    .metrics
                                    .hibernations
                                    .fetch_add(1, Ordering::Relaxed);
                            }
                            break;
                        }
                        // not retiring after all: the live instance goes on, its snapshot is stale
                        self.runtime.snapshots.take(&self.key);
                        wait
                    };
                    timer.as_mut().reset(tokio::time::Instant::now() + next);
                    continue;
                }
            };
            if matches!(first, Event::Evict) {
                if self.try_retire() {
                    break;
                }
                continue;
            }
            self.run_batch(first).await;
        }
        self.shut_down();
        // the instance's pool slot must be free before the permit lets another object in
        drop(self);
        drop(permit);
    }

    /// When the live instance's event loop wants to run, if it asked.
    fn wake_at(&mut self) -> Option<tokio::time::Instant> {
        match &mut self.occupant {
            Occupant::Live(instance) => instance.state().event_loop.wake_at(),
            _ => None,
        }
    }

    /// Before hibernating: keeps a snapshot of the live instance's in-memory state, if its class
    /// takes them, for the next activation to restore instead of running `init`.
    async fn take_snapshot(&mut self) {
        let Occupant::Live(instance) = &mut self.occupant else {
            return;
        };
        if instance.class().snapshot.is_none() {
            return;
        }
        let limits = self.runtime.limits.clone();
        let version = instance.class().version;
        let outcome = instance.snapshot(&limits).await;
        let _ = instance.state().storage.end_event(true);
        match outcome {
            Ok(Some(state)) if state.len() as u64 <= limits.max_snapshot_bytes => {
                self.runtime
                    .snapshots
                    .keep(self.key.clone(), version, state);
                self.runtime
                    .metrics
                    .snapshots
                    .fetch_add(1, Ordering::Relaxed);
            }
            Ok(Some(state)) => {
                tracing::warn!(target: "wasmdo.actor", class = &*self.key.class, id = %self.key.id,
                    "a snapshot of {} bytes is over max-snapshot-bytes ({}): dropped, the object will wake with init",
                    state.len(), limits.max_snapshot_bytes);
            }
            Ok(None) => {}
            Err(e) => {
                self.log_failure("snapshot", &e);
                self.after_failure(true);
            }
        }
    }

    /// Retires if no event is waiting. The database is parked *first*: once retired, the next
    /// event starts a new actor for this object at once, which adopts it (the file is held
    /// exclusively by its one connection). If an event arrives meanwhile, it is taken back.
    fn try_retire(&mut self) -> bool {
        if !self.rx.is_empty() {
            return false;
        }
        // parked, not closed: the next activation adopts it (opening the file costs ~300 µs)
        let was_open = self.state_mut().storage.is_open();
        match self.state_mut().storage.park() {
            Some(db) => self.runtime.databases.park(self.key.clone(), db),
            None if was_open => {
                self.runtime.databases.opened_or_closed(false);
            }
            None => {}
        }
        if self.home.retire(&self.key, &self.slot, &self.rx) {
            return true;
        }
        // an event slipped in: take the database back
        if let Some(db) = self.runtime.databases.unpark(&self.key) {
            self.state_mut().storage.adopt(db);
        }
        false
    }

    /// Closes the object's database, if open, keeping the host-wide count of open databases.
    /// Closing does not checkpoint (the WAL stays), so it does no fsync and runs on the worker.
    fn release_database(&mut self) {
        let storage = &mut self.state_mut().storage;
        if storage.is_open() {
            storage.close();
            self.runtime.databases.opened_or_closed(false);
        }
    }

    /// Fails every queued event (the object could not be activated) and retires.
    async fn refuse_all(mut self, error: ObjectError) {
        loop {
            while let Ok(event) = self.rx.try_recv() {
                self.take_one();
                if let Event::Alarm { retry } = event {
                    // the alarm was taken off the queue when dispatched: put it back for later
                    let at = now_ms() + self.runtime.limits.alarm_retry_delay_ms(1) as i64;
                    let key = self.key.clone();
                    if let Err(e) = self.runtime.schedule.set(&key, None, at, retry) {
                        tracing::error!(target: "wasmdo.alarms", "{e}");
                    }
                }
                reply_error(event, &error);
            }
            if self.home.retire(&self.key, &self.slot, &self.rx) {
                return;
            }
            tokio::task::yield_now().await;
        }
    }

    fn take_one(&self) {
        self.slot.queued.fetch_sub(1, Ordering::Relaxed);
    }

    async fn run_batch(&mut self, first: Event) {
        let limits = self.runtime.limits.clone();
        let was_open = self.state_mut().storage.is_open();
        let mut pending = Vec::new();
        let mut next = Some(first);
        let mut count = 0;
        // a batch of the object's own wake-ups only is not activity (an object kept busy by its
        // timers alone is still evicted when idle, as on Cloudflare)
        let mut active = false;
        while let Some(event) = next.take() {
            if !matches!(event, Event::Evict) {
                if !matches!(event, Event::Wake) {
                    self.take_one();
                    active = true;
                }
                count += 1;
                if let Some(p) = self.run_event(event, &limits).await {
                    pending.push(p);
                }
            }
            if count < limits.max_batch
                && let Ok(event) = self.rx.try_recv()
            {
                next = Some(event);
            }
        }
        let alarm = self.sync_alarm_before_commit();
        let commit = match alarm {
            Ok(alarm) => {
                self.state_mut().storage.alarm_for_commit(alarm);
                let commit = self.commit().await;
                if commit.is_ok() && alarm == Some(None) {
                    self.unschedule_alarm();
                }
                commit
            }
            Err(e) => {
                self.state_mut().storage.rollback_batch();
                Err(e)
            }
        };
        if commit.is_err() {
            self.resync_alarm();
        }
        self.account_database(was_open);
        if active {
            self.slot.touch();
        }
        let fuel = self.state_mut().take_fuel_used();
        let metrics = &self.runtime.metrics;
        metrics.fuel.fetch_add(fuel, Ordering::Relaxed);
        metrics.events.fetch_add(count as u64, Ordering::Relaxed);
        metrics.batches.fetch_add(1, Ordering::Relaxed);
        self.state_mut().websockets.release(commit.is_ok());
        for p in pending {
            p.release(&commit);
        }
    }

    /// If the batch touched the object's alarm, brings the host-wide schedule in line *before*
    /// the commit: a new time is made durable in the schedule first, so a crash between the two
    /// writes can only cause a spurious wake-up, never a lost alarm. Returns `Some(alarm)` when
    /// the alarm was touched (`Some(None)`: deleted, to be unscheduled after the commit).
    fn sync_alarm_before_commit(&mut self) -> Result<Option<Option<i64>>, ObjectError> {
        let storage = &mut self.state_mut().storage;
        if !storage.take_alarm_touched() {
            return Ok(None);
        }
        let alarm = storage
            .peek_alarm()
            .map_err(|e| ObjectError::CommitFailed(e.to_string()))?;
        if let Some(time) = alarm {
            let key = self.key.clone();
            self.runtime
                .schedule
                .set(&key, self.name.as_deref(), time, 0)
                .map_err(ObjectError::CommitFailed)?;
        }
        Ok(Some(alarm))
    }

    /// After a failed commit the batch's alarm changes are gone, but the schedule may already
    /// have been told about them (an alarm event unschedules eagerly): put the schedule back in
    /// line with what the object's database holds, so no alarm is lost.
    fn resync_alarm(&mut self) {
        let storage = &mut self.state_mut().storage;
        storage.take_alarm_touched();
        let alarm = storage.get_alarm();
        let _ = storage.end_event(true);
        let _ = storage.commit_batch();
        match alarm {
            Ok(Some(time)) => {
                let key = self.key.clone();
                if let Err(e) = self
                    .runtime
                    .schedule
                    .set(&key, self.name.as_deref(), time, 0)
                {
                    tracing::error!(target: "wasmdo.alarms", "{e}");
                }
            }
            Ok(None) => {}
            Err(e) => {
                tracing::error!(target: "wasmdo.alarms", "cannot re-read the alarm after a failed commit: {e}")
            }
        }
    }

    fn unschedule_alarm(&self) {
        if let Err(e) = self.runtime.schedule.remove(&self.key.clone()) {
            // the object has no alarm: the stale entry only causes a harmless wake-up later
            tracing::warn!(target: "wasmdo.alarms", "{e}");
        }
    }

    /// Delivers a due alarm: checks the object's own alarm, runs the handler, and settles the
    /// schedule (delete on success, retry with backoff on failure, give up after the last retry).
    async fn alarm(&mut self, retry: u32, limits: &Limits) {
        let key = self.key.clone();
        let schedule = self.runtime.schedule.clone();
        let due = match self.state_mut().storage.get_alarm() {
            Ok(due) => due,
            Err(e) => {
                tracing::error!(target: "wasmdo.alarms", "reading the alarm: {e}");
                self.after_failure(false);
                let _ = schedule.set(
                    &key,
                    None,
                    now_ms() + limits.alarm_retry_delay_ms(1) as i64,
                    retry,
                );
                return;
            }
        };
        let time = match due {
            None => {
                // deleted (or never committed) since it was scheduled
                let _ = self.end_event(true);
                self.unschedule_alarm();
                return;
            }
            Some(time) if time > now_ms() => {
                // replaced by a later time since it was scheduled
                let _ = self.end_event(true);
                let _ = schedule.set(&key, None, time, 0);
                return;
            }
            Some(time) => time,
        };
        self.runtime.metrics.alarms.fetch_add(1, Ordering::Relaxed);
        let outcome = match self.ensure_live().await {
            Ok(instance) => instance.alarm(retry, limits).await,
            Err(e) => Err((e, false)),
        };
        match outcome {
            Ok(handled) => {
                if !handled {
                    tracing::warn!(target: "wasmdo.alarms", class = &*key.class, id = %key.id,
                        "the class exports no alarm handler: alarm dropped");
                }
                // done: delete the alarm unless the handler set a new one
                let storage = &mut self.state_mut().storage;
                let settled = match storage.get_alarm() {
                    Ok(Some(t)) if t == time => storage.delete_alarm(),
                    Ok(_) => Ok(()),
                    Err(e) => Err(e),
                };
                if let Err(e) = settled {
                    tracing::error!(target: "wasmdo.alarms", "settling the alarm: {e}");
                }
                let _ = self.end_event(true);
            }
            Err((e, poisoned)) => {
                self.runtime
                    .metrics
                    .alarm_failures
                    .fetch_add(1, Ordering::Relaxed);
                self.after_failure(poisoned);
                // what the failed handler did to the alarm was rolled back with it
                self.state_mut().storage.take_alarm_touched();
                let next = retry + 1;
                if next <= limits.alarm_max_retries {
                    tracing::warn!(target: "wasmdo.alarms", class = &*key.class, id = %key.id,
                        retry = next, "alarm failed, retrying: {e}");
                    let at = now_ms() + limits.alarm_retry_delay_ms(next) as i64;
                    if let Err(e) = schedule.set(&key, None, at, next) {
                        tracing::error!(target: "wasmdo.alarms", "{e}");
                    }
                } else {
                    tracing::error!(target: "wasmdo.alarms", class = &*key.class, id = %key.id,
                        "alarm failed after {retry} retries, dropped: {e}");
                    let storage = &mut self.state_mut().storage;
                    if let Err(e) = storage.delete_alarm() {
                        tracing::error!(target: "wasmdo.alarms", "dropping the alarm: {e}");
                    }
                    let _ = self.end_event(true);
                }
            }
        }
    }

    /// Keeps the host-wide count of open databases, and closes this object's database after the
    /// batch when too many are open (it reopens lazily), so live objects do not pin files.
    fn account_database(&mut self, was_open: bool) {
        let open = self.state_mut().storage.is_open();
        let over = match (was_open, open) {
            (false, true) => self.runtime.databases.opened_or_closed(true),
            (true, false) => {
                self.runtime.databases.opened_or_closed(false);
                false
            }
            _ => open && self.runtime.databases.too_many_open(),
        };
        if over {
            self.release_database();
        }
    }

    /// Commits the batch and waits until it is durable (the output gate): with the commit
    /// journal, the wait is for the journal's next fsync, which covers every object's batches
    /// waiting with this one. If the journal cannot keep the batch, the storage takes it back out
    /// of the database and the live instance is dropped, since its memory may hold what was
    /// taken back.
    async fn commit(&mut self) -> Result<(), ObjectError> {
        let storage = &mut self.state_mut().storage;
        let committed = storage.commit_batch().map(|_| storage.take_durable());
        let outcome = match committed {
            Ok(None) => Ok(()),
            Ok(Some(durable)) => {
                let outcome = durable.wait().await;
                let settled = self.state_mut().storage.settle(outcome);
                if settled.is_err() {
                    self.drop_instance();
                }
                settled
            }
            Err(e) => Err(NotDurable::Failed(e.to_string())),
        };
        outcome.map_err(|e| {
            tracing::error!(target: "wasmdo.actor", class = &*self.key.class, id = %self.key.id, "commit failed: {e}");
            match e {
                // nothing was committed: the caller may retry
                NotDurable::Refused(_) => ObjectError::ClusterUnavailable(e.to_string()),
                NotDurable::Failed(why) => ObjectError::CommitFailed(why),
            }
        })
    }

    fn state_mut(&mut self) -> &mut ObjectState {
        match &mut self.occupant {
            Occupant::Dormant(state) => state,
            Occupant::Live(instance) => instance.state(),
            Occupant::Moving => unreachable!("occupant is restored before any await returns"),
        }
    }

    /// Makes sure a live instance of the class's current version exists, running `init` in its
    /// own savepoint when it is created.
    async fn ensure_live(&mut self) -> Result<&mut Instance, ObjectError> {
        if let Some(tenure) = &self.runtime.tenure
            && !tenure.holds(&self.key)
        {
            // another host may be writing the object: nothing of this host's copy may serve
            self.drop_instance();
            self.state_mut().storage.close();
            return Err(ObjectError::NotOwner(
                "this host no longer owns the object".into(),
            ));
        }
        let current = self.runtime.registry.deployed(&self.key.class)?;
        let stale = match &self.occupant {
            Occupant::Live(instance) => instance.class().version != current.version,
            _ => true,
        };
        if stale {
            self.activate(current).await?;
        }
        match &mut self.occupant {
            Occupant::Live(instance) => Ok(instance),
            _ => unreachable!("activate left a live instance"),
        }
    }

    async fn activate(&mut self, class: Arc<ClassVersion>) -> Result<(), ObjectError> {
        let mut state = match std::mem::replace(&mut self.occupant, Occupant::Moving) {
            Occupant::Dormant(state) => *state,
            Occupant::Live(instance) => instance.into_state(),
            Occupant::Moving => unreachable!("occupant is restored before any await returns"),
        };
        // a class at its object quota takes no new object (one with no database yet)
        if let Some(usage) = &self.runtime.usage
            && state.storage.absent()
            && let Some(why) =
                usage.objects_full(&self.runtime.registry.namespace_name(&self.key.class))
        {
            self.occupant = Occupant::Dormant(Box::new(state));
            return Err(ObjectError::QuotaExceeded(why));
        }
        state.object.env = class.env.clone();
        state.outbound.set_allowed(class.fetch.clone());
        if !Arc::ptr_eq(&state.calls.bindings, &class.bindings) {
            // a new version may bind other classes (a project deploy, a rename)
            state.calls.bindings = class.bindings.clone();
            state.calls.resolved = Default::default();
        }
        let limits = self.runtime.limits.clone();
        let mut instance = match Instance::new(class, state, &limits).await {
            Ok(instance) => instance,
            Err((e, state)) => {
                self.occupant = Occupant::Dormant(Box::new(state));
                self.log_failure("activation", &e);
                return Err(e);
            }
        };
        // a snapshot taken by this very version stands in for `init`
        let snapshot = self
            .runtime
            .snapshots
            .take(&self.key)
            .filter(|(version, _)| *version == instance.class().version);
        let mut restored = false;
        if let Some((_, state)) = snapshot {
            match instance.restore(state, &limits).await {
                Ok(()) => {
                    restored = instance.state().storage.end_event(true).is_ok();
                    self.runtime
                        .metrics
                        .restores
                        .fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => {
                    // activate afresh, with init
                    self.log_failure("restore", &e);
                    let _ = instance.state().storage.end_event(false);
                    let class = instance.class().clone();
                    let state = instance.into_state();
                    instance = match Instance::new(class, state, &limits).await {
                        Ok(instance) => instance,
                        Err((e, state)) => {
                            self.occupant = Occupant::Dormant(Box::new(state));
                            self.log_failure("activation", &e);
                            return Err(e);
                        }
                    };
                }
            }
        }
        let result = match restored {
            true => Ok(()),
            false => instance.init(&limits).await,
        };
        let ended = match restored {
            true => Ok(()),
            false => instance.state().storage.end_event(result.is_ok()),
        };
        match (result, ended) {
            (Ok(()), Ok(())) => {
                self.occupant = Occupant::Live(Box::new(instance));
                Ok(())
            }
            (Err(e), _) => {
                self.log_failure("init", &e);
                self.runtime.metrics.traps.fetch_add(1, Ordering::Relaxed);
                self.occupant = Occupant::Dormant(Box::new(instance.into_state()));
                Err(e)
            }
            (Ok(()), Err(e)) => {
                self.occupant = Occupant::Dormant(Box::new(instance.into_state()));
                Err(ObjectError::internal_from("storage after init", e))
            }
        }
    }

    /// Runs one event and ends its savepoint; returns the reply to hold until the commit.
    async fn run_event(&mut self, event: Event, limits: &Limits) -> Option<Pending> {
        // the call chain is the event's: empty unless another object's call delivered it
        self.state_mut().calls.chain = match &event {
            Event::Invoke { chain, .. }
            | Event::Fetch { chain, .. }
            | Event::Call { chain, .. }
            | Event::CallDynamic { chain, .. } => chain.clone(),
            _ => Arc::new(Vec::new()),
        };
        match event {
            Event::Evict => None,
            Event::Wake => {
                self.wake(limits).await;
                None
            }
            Event::Alarm { retry } => {
                self.alarm(retry, limits).await;
                None
            }
            Event::Call {
                method,
                args,
                reply,
                ..
            } => {
                let result = self.call(&method, args, limits).await;
                Some(Pending::Call(reply, result))
            }
            Event::Fetch {
                request,
                upgrade,
                reply,
                ..
            } => {
                self.state_mut().websockets.upgrade_window(upgrade);
                let result = self.fetch(request, limits).await;
                let accepted = self.state_mut().websockets.upgrade_window(false);
                let result = result.map(|response| Fetched { response, accepted });
                Some(Pending::Fetch(reply, result))
            }
            Event::WebSocket { socket, event } => {
                self.websocket(socket, event, limits).await;
                None
            }
            Event::Invoke {
                stub, args, reply, ..
            } => {
                let result = self.invoke(&stub, &args, limits).await;
                Some(Pending::Invoke(reply, result))
            }
            Event::CallDynamic {
                method,
                args,
                reply,
                ..
            } => {
                let result = self.call_dynamic(&method, &args, limits).await;
                Some(Pending::Dynamic(reply, result))
            }
        }
    }

    /// Dynamic RPC: `method` by name through the class's `dynamic-handler`, `args` an encoded
    /// list of values. A thrown error is the method's own outcome (its writes rolled back), like
    /// a typed method's `err`.
    async fn call_dynamic(
        &mut self,
        method: &str,
        args: &[u8],
        limits: &Limits,
    ) -> Result<Dynamic, ObjectError> {
        let instance = self.ensure_live().await?;
        let class = instance.class().clone();
        let unknown = || ObjectError::UnknownMethod {
            class: class.name.to_string(),
            method: method.to_string(),
            available: if class.dynamic.is_some() {
                format!(
                    "{} (typed), and its public methods by name",
                    class.method_names()
                )
            } else {
                class.method_names()
            },
        };
        let outcome = match instance.call_dynamic(method, args, limits).await {
            Ok(None) => {
                // a class without a dynamic handler (Rust) answers by name through its typed
                // functions, the values mapped as HTTP's `/rpc` maps them
                let Some(typed) = class.find_method(method).cloned() else {
                    return Err(unknown());
                };
                return self.call_typed_by_name(&typed, args, limits).await;
            }
            Ok(Some(outcome)) => outcome,
            Err((e, poisoned)) => {
                self.log_failure("rpc", &e);
                self.after_failure(poisoned);
                return Err(e);
            }
        };
        self.end_event(outcome.is_ok())?;
        match outcome {
            Ok(value) => Ok(Ok(value)),
            Err(DynamicError::Threw(thrown)) => Ok(Err(thrown)),
            Err(DynamicError::UnknownMethod(_)) => Err(unknown()),
            Err(DynamicError::BadArguments(why)) => Err(ObjectError::InvalidArgument(why)),
        }
    }

    /// A call by name of a typed method (of a class without a dynamic handler): the encoded
    /// arguments as JSON, through the typed function, its result encoded back as JSON text. The
    /// method's own `err` is thrown as a `MethodError` whose message is the error value's JSON
    /// (the SDKs give it back as the error's `value`).
    async fn call_typed_by_name(
        &mut self,
        method: &Method,
        args: &[u8],
        limits: &Limits,
    ) -> Result<Dynamic, ObjectError> {
        let body = rpc::dynamic::encoded_to_json_text(args).map_err(|_| {
            ObjectError::InvalidArgument("the arguments are not encoded values".into())
        })?;
        let encode = |v: &serde_json::Value| {
            serde_json::to_vec(v).map_err(|e| ObjectError::internal_from("the result", e))
        };
        Ok(match self.call_json(method, &body, limits).await? {
            Reply::Ok(value) => Ok(encode(&value)?),
            Reply::MethodError(value) => Err(Thrown {
                name: "MethodError".into(),
                message: String::from_utf8(encode(&value)?).unwrap_or_default(),
            }),
        })
    }

    /// A typed method with its arguments as a JSON array (HTTP's mapping), as one event: its
    /// value, or its own `err`, as JSON.
    async fn call_json(
        &mut self,
        method: &Method,
        body: &[u8],
        limits: &Limits,
    ) -> Result<Reply, ObjectError> {
        let args = rpc::json::args_from_json(&method.params, body)
            .map_err(|e| ObjectError::InvalidArgument(e.to_string()))?;
        let instance = self.ensure_live().await?;
        let result = match instance.call(method, &args, limits).await {
            Ok(value) => rpc::reply(value, method.result.as_ref()),
            Err((e, poisoned)) => {
                self.log_failure("rpc", &e);
                self.after_failure(poisoned);
                return Err(e);
            }
        };
        self.end_event(matches!(result, Reply::Ok(_)))?;
        Ok(result)
    }

    /// A stub call from another object: the method by its WIT name, checked against what the
    /// caller's stub promises (the class may have been redeployed since the caller was), called
    /// with the values as they are; the result goes back whole (a `result::err` included).
    async fn invoke(
        &mut self,
        stub: &StubMethod,
        args: &[Val],
        limits: &Limits,
    ) -> Result<Option<Val>, ObjectError> {
        let instance = self.ensure_live().await?;
        let class = instance.class().clone();
        let method = class
            .methods
            .get(&stub.method)
            .ok_or_else(|| ObjectError::UnknownMethod {
                class: class.name.to_string(),
                method: stub.method.clone(),
                available: class.method_names(),
            })?;
        let fits = method.fits_stub(&stub.params, stub.result.as_ref());
        if !fits {
            return Err(ObjectError::StaleStub(format!(
                "the caller's stub for `{}` does not match the method's signature `{}` (version {} of class `{}`): regenerate the stub",
                method.name, method.signature, class.version, class.name
            )));
        }
        match instance.call(method, args, limits).await {
            Ok(value) => {
                // as for RPC over HTTP: the method's own `err` rolls its writes back
                let keep = !matches!(value, Some(Val::Result(Err(_))));
                self.end_event(keep)?;
                Ok(value)
            }
            Err((e, poisoned)) => {
                self.log_failure("call", &e);
                self.after_failure(poisoned);
                Err(e)
            }
        }
    }

    async fn call(
        &mut self,
        method: &str,
        args: Bytes,
        limits: &Limits,
    ) -> Result<serde_json::Value, ObjectError> {
        let instance = self.ensure_live().await?;
        let class = instance.class().clone();
        let Some(method) = class.find_method(method) else {
            // a method without a typed WIT function is called by name (`UnknownMethod` for a
            // class without a dynamic handler): a JSON array of arguments is already an encoded
            // list of values
            let blank = args.iter().all(u8::is_ascii_whitespace);
            let args: &[u8] = if blank { b"[]" } else { &args };
            return match self.call_dynamic(method, args, limits).await? {
                Ok(value) => rpc::dynamic::encoded_to_json(&value),
                Err(thrown) => Err(ObjectError::MethodError(rpc::dynamic::thrown_json(&thrown))),
            };
        };
        match self.call_json(method, &args, limits).await? {
            Reply::Ok(v) => Ok(v),
            Reply::MethodError(v) => Err(ObjectError::MethodError(v)),
        }
    }

    async fn fetch(&mut self, request: Request, limits: &Limits) -> Result<Response, ObjectError> {
        let instance = self.ensure_live().await?;
        match instance.fetch(request, limits).await {
            Ok(response) => {
                self.end_event(true)?;
                Ok(response)
            }
            Err((e, poisoned)) => {
                self.log_failure("fetch", &e);
                self.after_failure(poisoned);
                Err(e)
            }
        }
    }

    /// Something happened on one of the object's WebSockets: its handler runs as an event (no
    /// reply; a failure is logged). A close or an error forgets the socket once handled.
    async fn websocket(&mut self, socket: SocketId, event: SocketEvent, limits: &Limits) {
        let ends = !matches!(event, SocketEvent::Message(_));
        let outcome = match self.ensure_live().await {
            Ok(instance) => instance.websocket(socket, event, limits).await,
            Err(e) => Err((e, false)),
        };
        match outcome {
            Ok(handled) => {
                if !handled {
                    tracing::warn!(target: "wasmdo.websockets", class = &*self.key.class, id = %self.key.id,
                        "the class exports no WebSocket handler: event dropped");
                }
                if let Err(e) = self.end_event(true) {
                    tracing::error!(target: "wasmdo.websockets", "{e}");
                }
            }
            Err((e, poisoned)) => {
                self.log_failure("WebSocket handler", &e);
                self.after_failure(poisoned);
            }
        }
        if ends {
            self.runtime.websockets.forget(&self.key, socket);
        }
    }

    /// The live instance's wake-up came: its event loop runs what is due (no reply; a failure is
    /// logged, and a trap drops the instance with its timers). An instance that went meanwhile
    /// took its timers with it: nothing to run.
    async fn wake(&mut self, limits: &Limits) {
        let Occupant::Live(instance) = &mut self.occupant else {
            return;
        };
        // the guest asks again for what is left
        instance.state().event_loop.forget();
        self.runtime
            .metrics
            .timer_wakeups
            .fetch_add(1, Ordering::Relaxed);
        match instance.run_event_loop(limits).await {
            Ok(_) => {
                if let Err(e) = self.end_event(true) {
                    tracing::error!(target: "wasmdo.actor", "{e}");
                }
            }
            Err((e, poisoned)) => {
                self.log_failure("timer", &e);
                self.after_failure(poisoned);
            }
        }
    }

    fn end_event(&mut self, keep: bool) -> Result<(), ObjectError> {
        self.state_mut().websockets.end_event(keep);
        self.state_mut()
            .storage
            .end_event(keep)
            .map_err(|e| ObjectError::internal_from("ending the event's transaction", e))
    }

    /// Rolls the failed event back and, if the instance is poisoned, drops it.
    /// Logs an event that failed inside the object (a trap, a limit, a failed activation), so
    /// operators see what callers saw as a 500.
    fn log_failure(&self, what: &str, e: &ObjectError) {
        tracing::warn!(target: "wasmdo.actor", class = &*self.key.class, id = %self.key.id,
            kind = e.kind(), "{what} failed: {e}");
    }

    fn after_failure(&mut self, poisoned: bool) {
        self.state_mut().websockets.end_event(false);
        if let Err(e) = self.state_mut().storage.end_event(false) {
            tracing::error!(target: "wasmdo.actor", "rolling back a failed event: {e}");
        }
        if poisoned {
            self.runtime.metrics.traps.fetch_add(1, Ordering::Relaxed);
            self.drop_instance();
        }
    }

    /// Drops the live instance, keeping the object's state (storage, sockets, context); the next
    /// event activates a new one.
    fn drop_instance(&mut self) {
        self.occupant = match std::mem::replace(&mut self.occupant, Occupant::Moving) {
            Occupant::Live(instance) => Occupant::Dormant(Box::new(instance.into_state())),
            other => other,
        };
    }

    fn shut_down(&mut self) {
        self.state_mut().instance_gone();
        self.runtime
            .metrics
            .evictions
            .fetch_add(1, Ordering::Relaxed);
        self.release_database();
        tracing::debug!(target: "wasmdo.actor", class = &*self.key.class, id = %self.key.id, "evicted");
    }
}

fn reply_error(event: Event, error: &ObjectError) {
    match event {
        Event::Call { reply, .. } => drop(reply.send(Err(error.clone()))),
        Event::Fetch { reply, .. } => drop(reply.send(Err(error.clone()))),
        // the socket's close (or error) will not be handled: forget it
        Event::WebSocket { .. } => {}
        Event::Invoke { reply, .. } => drop(reply.send(Err(error.clone()))),
        Event::CallDynamic { reply, .. } => drop(reply.send(Err(error.clone()))),
        // alarms are put back in the schedule by the caller
        Event::Alarm { .. } | Event::Evict | Event::Wake => {}
    }
}

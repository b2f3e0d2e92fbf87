//! The directory: object key → its live actor. It guarantees at most one activation per object
//! id on this host, creates actors on first use, caps how many are live at once, and lets idle
//! actors retire without losing an event. It is this host's `Router`; nothing else lives here
//! (what actors are handed — registry, hub, schedule, databases — is the [`Runtime`]).
//!
//! The protocol that makes retirement safe: events are sent while holding the directory lock, and
//! an actor retires only while holding the same lock and only if its mailbox is empty. So an
//! event is either in the mailbox of an actor that will run it, or it finds no actor and starts a
//! new one; it never lands in a mailbox nobody reads.

use bytes::Bytes;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot};
use wasmtime::component::Val;

use crate::actor::{Actor, Event, Liveness, Slot};
use crate::bindings::http_types::Request;
use crate::error::ObjectError;
use crate::ids::{ObjectId, ObjectKey};
use crate::router::{Address, Chain, Dynamic, Fetched, Routed, Router, StubMethod, check_cycle};
use crate::runtime::Runtime;
use crate::websockets::{SocketEvent, SocketId};

/// How long an activation waits for room among the live objects before giving up.
const ACTIVATION_WAIT: Duration = Duration::from_secs(10);

/// How many live objects an eviction looks at, from the front of the eviction order: it asks
/// the least recently active idle one among them to retire. With at most this many live, that
/// is exact LRU; beyond, an approximation that costs the same at any number of live objects
/// (a scan of every live object was 17% of a host's CPU with 5,000 live, creating new objects).
const EVICTION_SAMPLE: usize = 64;

struct Entry {
    tx: mpsc::UnboundedSender<Event>,
    slot: Arc<Slot>,
}

/// Live objects of this host.
pub struct Directory {
    runtime: Arc<Runtime>,
    /// This directory, handed to the actors it starts (as their [`Liveness`] and [`Router`]).
    me: Weak<Directory>,
    live: Mutex<HashMap<ObjectKey, Entry>>,
    /// Live activations in the order eviction looks at them: appended when started, moved to
    /// the back when looked at; retired ones drop out when next met. Each is its key and its
    /// slot, so looking at one needs no lookup in `live` (64 lookups per eviction were 1.5% of
    /// a host's CPU creating new objects). Locked only while `live` is.
    eviction_order: Mutex<VecDeque<(ObjectKey, Arc<Slot>)>>,
    permits: Arc<Semaphore>,
    next_generation: AtomicU64,
    epoch: Instant,
    /// The router actors are handed, if not this directory (a cluster host's).
    outer: std::sync::OnceLock<Weak<dyn Router>>,
}

impl Directory {
    pub(crate) fn new(runtime: Arc<Runtime>) -> Arc<Directory> {
        Arc::new_cyclic(|me| Directory {
            permits: Arc::new(Semaphore::new(runtime.limits.max_live_objects as usize)),
            runtime,
            me: me.clone(),
            live: Mutex::new(HashMap::new()),
            eviction_order: Mutex::new(VecDeque::new()),
            next_generation: AtomicU64::new(0),
            epoch: Instant::now(),
            outer: std::sync::OnceLock::new(),
        })
    }

    /// This directory, owned, to hand to an actor or a task; fails once the host is dropped.
    fn me(&self) -> Result<Arc<Directory>, ObjectError> {
        self.me
            .upgrade()
            .ok_or_else(|| ObjectError::internal("host shutting down"))
    }

    /// What the objects of this host run with.
    pub fn runtime(&self) -> &Arc<Runtime> {
        &self.runtime
    }

    /// Hands the actors started from now on `router` to reach other objects (a cluster host's,
    /// which forwards to other hosts), instead of this directory. Set once, before serving.
    pub(crate) fn route_through(&self, router: Weak<dyn Router>) {
        let _ = self.outer.set(router);
    }

    /// Number of live objects.
    pub fn live_objects(&self) -> usize {
        self.live.lock().expect("directory lock").len()
    }

    /// Calls `method` on an object with JSON arguments (the text of a JSON array); the reply is
    /// the JSON result (the same as `Router::call`, for embedders, without boxing the wait).
    pub async fn call(
        &self,
        class: &str,
        address: &Address,
        method: &str,
        args: Bytes,
    ) -> Result<serde_json::Value, ObjectError> {
        let (tx, rx) = oneshot::channel();
        let event = Event::Call {
            method: method.to_string(),
            args,
            chain: Arc::new(Vec::new()),
            reply: tx,
        };
        self.send(class, address, event)?;
        wait(rx).await
    }

    /// The id `name` addresses in `class` (`idFromName`; the same as `Router::id_from_name`,
    /// for embedders).
    pub fn id_from_name(&self, class: &str, name: &str) -> Result<ObjectId, ObjectError> {
        Router::id_from_name(self, class, name)
    }

    /// Queues the event `make` builds around its reply channel for the object `key` (called
    /// `name`), unless the call `chain` waiting on it already holds it; the reply to wait for.
    fn send_in_chain<T: Send + 'static>(
        &self,
        key: ObjectKey,
        name: Option<&str>,
        chain: Chain,
        make: impl FnOnce(oneshot::Sender<Result<T, ObjectError>>, Chain) -> Event,
    ) -> Routed<T> {
        if let Err(e) = check_cycle(&chain, &key) {
            return refused(e);
        }
        let (tx, rx) = oneshot::channel();
        let waiting = waiting(rx);
        match self.send_to(key, name, make(tx, chain)) {
            Ok(()) => waiting,
            Err(e) => refused(e),
        }
    }

    /// Queues `event` for the object `address` names in `class`.
    fn send(&self, class: &str, address: &Address, event: Event) -> Result<(), ObjectError> {
        let (key, name) = self.resolve(class, address)?;
        self.send_to(key, name.as_deref(), event)
    }

    /// Queues `event` for the object `key`, starting its actor (which learns `name`) if it is not
    /// live.
    fn send_to(&self, key: ObjectKey, name: Option<&str>, event: Event) -> Result<(), ObjectError> {
        self.try_send_to(key, name, event)
            .map_err(|refused| refused.0)
    }

    /// [`Directory::send_to`], giving the event back with the error when it was not queued.
    fn try_send_to(
        &self,
        key: ObjectKey,
        name: Option<&str>,
        event: Event,
    ) -> Result<(), Box<(ObjectError, Event)>> {
        let mut live = self.live.lock().expect("directory lock");
        let entry = match live.get(&key) {
            Some(entry) => entry,
            None => {
                let me = match self.me() {
                    Ok(me) => me,
                    Err(closed) => return Err(Box::new((closed, event))),
                };
                let (tx, rx) = mpsc::unbounded_channel();
                let slot = Arc::new(Slot::new(
                    self.next_generation.fetch_add(1, Ordering::Relaxed),
                    self.epoch,
                ));
                let name = name.map(str::to_owned);
                let router: Weak<dyn Router> = match self.outer.get() {
                    Some(outer) => outer.clone(),
                    None => self.me.clone(),
                };
                let actor = Actor::new(
                    key.clone(),
                    name,
                    slot.clone(),
                    self.runtime.clone(),
                    me,
                    router,
                    rx,
                );
                tokio::spawn(actor.run());
                self.queue_for_eviction(&live, &key, &slot);
                live.entry(key.clone()).or_insert(Entry { tx, slot })
            }
        };
        let max_queued = self.runtime.limits.max_queued_events;
        if entry.slot.queued.load(Ordering::Relaxed) >= max_queued {
            let full = ObjectError::Overloaded(format!(
                "the object has {max_queued} events queued; retry later"
            ));
            return Err(Box::new((full, event)));
        }
        entry.slot.queued.fetch_add(1, Ordering::Relaxed);
        entry.tx.send(event).map_err(|back| {
            let closed = ObjectError::internal("the object's mailbox is closed");
            Box::new((closed, back.0))
        })
    }

    /// Whether `key` has an actor on this host.
    pub(crate) fn is_live(&self, key: &ObjectKey) -> bool {
        self.live.lock().expect("directory lock").contains_key(key)
    }

    /// Asks the actor of `key`, if any, to retire once idle.
    pub(crate) fn evict(&self, key: &ObjectKey) {
        if let Some(entry) = self.live.lock().expect("directory lock").get(key) {
            let _ = entry.tx.send(Event::Evict);
        }
    }

    /// Appends a new activation to the eviction order (the caller holds `live`). Entries of
    /// retired activations are dropped when the order has grown past twice the live objects, so
    /// it stays proportional to them even when objects retire on their own (idle timeout).
    fn queue_for_eviction(
        &self,
        live: &HashMap<ObjectKey, Entry>,
        key: &ObjectKey,
        slot: &Arc<Slot>,
    ) {
        let mut order = self.eviction_order.lock().expect("eviction order lock");
        if order.len() >= 2 * live.len() + EVICTION_SAMPLE {
            order.retain(|(_, slot)| !slot.is_retired());
        }
        order.push_back((key.clone(), slot.clone()));
    }

    /// Asks the least recently active idle object among the next [`EVICTION_SAMPLE`] of the
    /// eviction order (other than `except`) to retire; every one looked at goes to the back.
    fn evict_one_idle(&self, except: &ObjectKey) {
        let live = self.live.lock().expect("directory lock");
        let mut order = self.eviction_order.lock().expect("eviction order lock");
        let mut victim: Option<(ObjectKey, Arc<Slot>)> = None;
        let mut looked = 0;
        while looked < EVICTION_SAMPLE.min(live.len()) {
            let Some((key, slot)) = order.pop_front() else {
                break;
            };
            if slot.is_retired() {
                continue;
            }
            looked += 1;
            let idle = slot.queued.load(Ordering::Relaxed) == 0;
            if idle
                && key != *except
                && victim
                    .as_ref()
                    .is_none_or(|(_, v)| slot.last_active() < v.last_active())
            {
                victim = Some((key.clone(), slot.clone()));
            }
            order.push_back((key, slot));
        }
        if let Some((key, slot)) = victim
            && let Some(entry) = live.get(&key)
            && Arc::ptr_eq(&entry.slot, &slot)
        {
            let _ = entry.tx.send(Event::Evict);
        }
    }

    /// Asks every live actor of `class` to retire; the number still live.
    fn evict_class(&self, class: &str) -> usize {
        let live = self.live.lock().expect("directory lock");
        let mut count = 0;
        for (_, entry) in live.iter().filter(|(k, _)| &*k.class == class) {
            // an actor takes `Evict` as "retire if idle"; ask again until it has
            let _ = entry.tx.send(Event::Evict);
            count += 1;
        }
        count
    }
}

impl Liveness for Directory {
    /// Succeeds (and removes the actor) only if no event is waiting for it. Events are sent
    /// under the same lock, so none can slip in afterwards.
    fn retire(&self, key: &ObjectKey, slot: &Slot, rx: &mpsc::UnboundedReceiver<Event>) -> bool {
        let mut live = self.live.lock().expect("directory lock");
        if !rx.is_empty() {
            return false;
        }
        if live
            .get(key)
            .is_some_and(|e| e.slot.generation() == slot.generation())
        {
            live.remove(key);
        }
        slot.mark_retired();
        true
    }

    /// Waits for room among the live objects, asking the least recently used idle object to
    /// retire when there is none.
    fn acquire_live_permit(&self, key: &ObjectKey) -> Routed<OwnedSemaphorePermit> {
        let me = self.me();
        let key = key.clone();
        Box::pin(async move {
            let directory = me?;
            if let Ok(permit) = directory.permits.clone().try_acquire_owned() {
                return Ok(permit);
            }
            let deadline = Instant::now() + ACTIVATION_WAIT;
            loop {
                directory.evict_one_idle(&key);
                let wait = Duration::from_millis(20)
                    .min(deadline.saturating_duration_since(Instant::now()));
                match tokio::time::timeout(wait, directory.permits.clone().acquire_owned()).await {
                    Ok(Ok(permit)) => return Ok(permit),
                    Ok(Err(_closed)) => {
                        return Err(ObjectError::internal("host shutting down"));
                    }
                    Err(_) if Instant::now() >= deadline => {
                        return Err(ObjectError::Overloaded(format!(
                            "all {} live-object slots are busy; raise `max-live-objects` or retry",
                            directory.runtime.limits.max_live_objects
                        )));
                    }
                    Err(_) => continue,
                }
            }
        })
    }
}

impl Router for Directory {
    fn resolve(
        &self,
        class: &str,
        address: &Address,
    ) -> Result<(ObjectKey, Option<String>), ObjectError> {
        let version = self.runtime.registry.deployed(class)?;
        let namespace = &version.namespace;
        let (id, name) = match address {
            Address::Name(name) => (namespace.id_from_name(name), Some(name.clone())),
            Address::Id(hex) => (
                namespace.id_from_string(hex).map_err(|e| {
                    ObjectError::InvalidName(format!("invalid object id `{hex}`: {e}"))
                })?,
                None,
            ),
        };
        Ok((ObjectKey::new(class, id), name))
    }

    fn new_unique_id(&self, class: &str) -> Result<ObjectId, ObjectError> {
        Ok(self
            .runtime
            .registry
            .deployed(class)?
            .namespace
            .new_unique_id())
    }

    fn call(
        &self,
        class: &str,
        address: &Address,
        method: &str,
        args: Bytes,
        chain: Chain,
    ) -> Routed<serde_json::Value> {
        let method = method.to_string();
        let (key, name) = match self.resolve(class, address) {
            Ok(resolved) => resolved,
            Err(e) => return refused(e),
        };
        self.send_in_chain(key, name.as_deref(), chain, |reply, chain| Event::Call {
            method,
            args,
            chain,
            reply,
        })
    }

    fn fetch(
        &self,
        class: &str,
        address: &Address,
        request: Request,
        upgrade: bool,
        chain: Chain,
    ) -> Routed<Fetched> {
        let (key, name) = match self.resolve(class, address) {
            Ok(resolved) => resolved,
            Err(e) => return refused(e),
        };
        self.send_in_chain(key, name.as_deref(), chain, |reply, chain| Event::Fetch {
            request,
            upgrade,
            chain,
            reply,
        })
    }

    fn invoke(
        &self,
        key: ObjectKey,
        name: Option<&str>,
        stub: Arc<StubMethod>,
        args: Vec<Val>,
        chain: Chain,
    ) -> Routed<Option<Val>> {
        self.send_in_chain(key, name, chain, |reply, chain| Event::Invoke {
            stub,
            args,
            chain,
            reply,
        })
    }

    fn call_dynamic(
        &self,
        key: ObjectKey,
        name: Option<&str>,
        method: String,
        args: Vec<u8>,
        chain: Chain,
    ) -> Routed<Dynamic> {
        self.send_in_chain(key, name, chain, |reply, chain| Event::CallDynamic {
            method,
            args,
            chain,
            reply,
        })
    }

    fn fetch_object(
        &self,
        key: ObjectKey,
        name: Option<&str>,
        request: Request,
        upgrade: bool,
        chain: Chain,
    ) -> Routed<Fetched> {
        self.send_in_chain(key, name, chain, |reply, chain| Event::Fetch {
            request,
            upgrade,
            chain,
            reply,
        })
    }

    fn deliver_websocket(
        &self,
        key: &ObjectKey,
        socket: SocketId,
        event: SocketEvent,
    ) -> Result<(), (ObjectError, SocketEvent)> {
        if self.runtime.registry.get(&key.class).is_none() {
            return Err((ObjectError::UnknownClass(key.class.to_string()), event));
        }
        let event = Event::WebSocket { socket, event };
        self.try_send_to(key.clone(), None, event)
            .map_err(|refused| {
                let (e, back) = *refused;
                let Event::WebSocket { event, .. } = back else {
                    unreachable!("the event sent is the one that comes back")
                };
                (e, event)
            })
    }

    /// An alarm of a class that is no longer deployed is dropped.
    fn deliver_alarm(&self, key: &ObjectKey, name: Option<&str>, retry: u32) {
        let schedule = &self.runtime.schedule;
        if self.runtime.registry.get(&key.class).is_none() {
            tracing::warn!(target: "wasmdo.alarms", class = &*key.class, id = %key.id, "dropping the alarm of an undeployed class");
            let _ = schedule.remove(key);
            return;
        }
        if let Err(e) = self.send_to(key.clone(), name, Event::Alarm { retry }) {
            // a full mailbox: try again shortly, keeping the alarm
            tracing::warn!(target: "wasmdo.alarms", class = &*key.class, id = %key.id, "alarm not delivered: {e}");
            let retry_at = crate::clock::now_ms() + 100;
            let _ = schedule.set(key, name, retry_at, retry);
        }
    }

    /// Asks each live object of `class` to retire until none is live (waiting at most `wait`),
    /// then closes their parked databases and drops their snapshots. The caller has made the
    /// class unreachable first (`Registry::take_class`), so the events still queued fail and no
    /// new activation starts.
    fn stop_class(&self, class: &str, wait: Duration) -> Routed<()> {
        let me = self.me();
        let class = class.to_owned();
        Box::pin(async move {
            let directory = me?;
            let deadline = Instant::now() + wait;
            loop {
                let live = directory.evict_class(&class);
                if live == 0 {
                    break;
                }
                if Instant::now() >= deadline {
                    return Err(ObjectError::Overloaded(format!(
                        "{live} objects of class `{class}` are still busy after {} s; retry the deploy",
                        wait.as_secs()
                    )));
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            directory.runtime.databases.close_class(&class);
            directory.runtime.snapshots.drop_class(&class);
            Ok(())
        })
    }
}

/// The reply an event's sender waits for; an actor that went away without replying is an
/// internal error.
async fn wait<T>(rx: oneshot::Receiver<Result<T, ObjectError>>) -> Result<T, ObjectError> {
    rx.await
        .map_err(|_| ObjectError::internal("the object stopped before replying"))?
}

/// [`wait`], boxed before the event is sent: the send wakes the object's actor, and the less
/// the sender does between that and waiting, the likelier the actor runs on the sender's
/// worker thread instead of being stolen by the other one.
fn waiting<T: Send + 'static>(rx: oneshot::Receiver<Result<T, ObjectError>>) -> Routed<T> {
    Box::pin(wait(rx))
}

/// A routed event refused before it was queued: its reply is the error.
fn refused<T: Send + 'static>(e: ObjectError) -> Routed<T> {
    Box::pin(std::future::ready(Err(e)))
}

//! The directory: object key → its live actor. It guarantees at most one activation per object
//! id on this host, creates actors on first use, caps how many are live at once, and lets idle
//! actors retire without losing an event.
//!
//! The protocol that makes retirement safe: events are sent while holding the directory lock, and
//! an actor retires only while holding the same lock and only if its mailbox is empty. So an
//! event is either in the mailbox of an actor that will run it, or it finds no actor and starts a
//! new one; it never lands in a mailbox nobody reads.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot};

use wasmtime::component::Val;

use crate::actor::{Actor, Event, Fetched};
use crate::alarms::{AlarmKey, Schedule};
use crate::bindings::http_types::Request;
use crate::error::ObjectError;
use crate::ids::ObjectId;
use crate::limits::Limits;
use crate::metrics::Metrics;
use crate::registry::Registry;
use crate::rpc::calls::StubMethod;
use crate::storage::sqlite::ParkedDatabase;
use crate::websockets::{Hub, SocketEvent, SocketId};

/// How long an activation waits for room among the live objects before giving up.
const ACTIVATION_WAIT: Duration = Duration::from_secs(10);

/// Identifies one object on this host.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub(crate) struct ObjectKey {
    pub(crate) class: Arc<str>,
    pub(crate) id: ObjectId,
}

/// How a caller addresses an object.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Address {
    /// By name (`id-from-name`); the object learns its name.
    Name(String),
    /// By an id rendered as hex.
    Id(String),
}

/// What the directory keeps per live actor.
pub(crate) struct Slot {
    /// Distinguishes this activation from a later one of the same object.
    generation: u64,
    /// Events sent and not yet taken by the actor.
    pub(crate) queued: AtomicUsize,
    /// When the actor last finished a batch (ms since the directory started): for LRU eviction.
    last_active: AtomicU64,
    epoch: Instant,
}

impl Slot {
    pub(crate) fn touch(&self) {
        let now = self.epoch.elapsed().as_millis() as u64;
        self.last_active.store(now, Ordering::Relaxed);
    }

    /// How long since the actor last finished a batch (to the millisecond).
    pub(crate) fn idle_for(&self) -> Duration {
        let now = self.epoch.elapsed().as_millis() as u64;
        Duration::from_millis(now.saturating_sub(self.last_active.load(Ordering::Relaxed)))
    }
}

struct Entry {
    tx: mpsc::UnboundedSender<Event>,
    slot: Arc<Slot>,
}

/// Live objects of this host.
pub struct Directory {
    registry: Arc<Registry>,
    limits: Limits,
    data: PathBuf,
    live: Mutex<HashMap<ObjectKey, Entry>>,
    permits: Arc<Semaphore>,
    next_generation: AtomicU64,
    epoch: Instant,
    metrics: Arc<Metrics>,
    /// Object databases currently open (kept by the actors as they open and close them).
    open_databases: AtomicUsize,
    schedule: Arc<Schedule>,
    /// Every object's WebSockets; they outlive the objects' actors (hibernation).
    websockets: Arc<Hub>,
    /// Databases of objects without an actor (evicted, hibernating), still open: the next
    /// activation adopts its database instead of opening the file. Counted as open databases,
    /// and closed oldest first when too many are open.
    parked: Mutex<Parked>,
    /// Snapshots of hibernated objects' in-memory state, with the class version that took them.
    snapshots: Mutex<HashMap<ObjectKey, (u64, Vec<u8>)>>,
}

#[derive(Default)]
struct Parked {
    databases: HashMap<ObjectKey, (u64, ParkedDatabase)>,
    next: u64,
}

impl Directory {
    pub(crate) fn new(
        registry: Arc<Registry>,
        limits: Limits,
        data: PathBuf,
        metrics: Arc<Metrics>,
        schedule: Arc<Schedule>,
    ) -> Arc<Directory> {
        Arc::new(Directory {
            registry,
            permits: Arc::new(Semaphore::new(limits.max_live_objects as usize)),
            limits,
            data,
            live: Mutex::new(HashMap::new()),
            next_generation: AtomicU64::new(0),
            epoch: Instant::now(),
            metrics,
            open_databases: AtomicUsize::new(0),
            schedule,
            websockets: Arc::new(Hub::default()),
            parked: Mutex::default(),
            snapshots: Mutex::default(),
        })
    }

    /// Keeps a hibernating object's snapshot (taken by class version `version`).
    pub(crate) fn keep_snapshot(&self, key: ObjectKey, version: u64, state: Vec<u8>) {
        let mut snapshots = self.snapshots.lock().expect("snapshots lock");
        snapshots.insert(key, (version, state));
    }

    /// Takes the object's snapshot, if one was kept.
    pub(crate) fn take_snapshot(&self, key: &ObjectKey) -> Option<(u64, Vec<u8>)> {
        let mut snapshots = self.snapshots.lock().expect("snapshots lock");
        snapshots.remove(key)
    }

    /// Keeps the open database of an object whose actor retires, for its next activation.
    pub(crate) fn park_database(&self, key: ObjectKey, database: ParkedDatabase) {
        let mut parked = self.parked.lock().expect("parked databases lock");
        parked.next += 1;
        let seq = parked.next;
        parked.databases.insert(key, (seq, database));
        drop(parked);
        self.close_parked_while_too_many();
    }

    /// The object's parked database, if it is still open.
    pub(crate) fn unpark_database(&self, key: &ObjectKey) -> Option<ParkedDatabase> {
        let mut parked = self.parked.lock().expect("parked databases lock");
        parked.databases.remove(key).map(|(_, db)| db)
    }

    /// Closes parked databases, oldest first, while more databases are open than allowed.
    fn close_parked_while_too_many(&self) {
        while self.too_many_open_databases() {
            let mut parked = self.parked.lock().expect("parked databases lock");
            let Some(oldest) = parked
                .databases
                .iter()
                .min_by_key(|(_, (seq, _))| *seq)
                .map(|(k, _)| k.clone())
            else {
                return;
            };
            let closed = parked.databases.remove(&oldest);
            drop(parked);
            drop(closed); // closes the connection
            self.open_databases.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// Every object's WebSockets.
    pub(crate) fn websockets(&self) -> &Arc<Hub> {
        &self.websockets
    }

    /// The class registry objects are activated from.
    pub fn registry(&self) -> &Arc<Registry> {
        &self.registry
    }

    pub(crate) fn limits(&self) -> &Limits {
        &self.limits
    }

    /// The host-wide alarm schedule.
    pub fn schedule(&self) -> &Arc<Schedule> {
        &self.schedule
    }

    /// The host's counters.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Records that an actor opened (`+1`) or closed (`-1`) its database; returns whether more
    /// databases are open than `max-open-databases`.
    pub(crate) fn database_opened_or_closed(&self, opened: bool) -> bool {
        if opened {
            self.open_databases.fetch_add(1, Ordering::Relaxed);
            // parked databases give way to those of live objects
            self.close_parked_while_too_many();
        } else {
            self.open_databases.fetch_sub(1, Ordering::Relaxed);
        }
        self.too_many_open_databases()
    }

    /// Whether more databases are open than `max-open-databases`.
    pub(crate) fn too_many_open_databases(&self) -> bool {
        self.open_databases.load(Ordering::Relaxed) > self.limits.max_open_databases
    }

    /// Number of object databases open right now.
    pub fn open_databases(&self) -> usize {
        self.open_databases.load(Ordering::Relaxed)
    }

    /// Number of live objects.
    pub fn live_objects(&self) -> usize {
        self.live.lock().expect("directory lock").len()
    }

    /// `<data>/objects/<namespace>/<first two hex>/<id>.sqlite`: fan out so no directory holds
    /// millions of files. The namespace name is the class name unless the class was renamed
    /// (it keeps its predecessor's, and so its objects' files).
    pub(crate) fn database_path(&self, key: &ObjectKey) -> PathBuf {
        let hex = key.id.to_hex();
        self.namespace_storage(&self.registry.namespace_name(&key.class))
            .join(&hex[..2])
            .join(format!("{hex}.sqlite"))
    }

    /// `<data>/objects/<namespace>`: the databases of every object of one namespace.
    pub(crate) fn namespace_storage(&self, namespace: &str) -> PathBuf {
        self.data.join("objects").join(namespace)
    }

    /// The id `name` addresses in `class` (`idFromName`).
    pub fn id_from_name(&self, class: &str, name: &str) -> Result<ObjectId, ObjectError> {
        let (key, _) = self.resolve(class, &Address::Name(name.to_owned()))?;
        Ok(key.id)
    }

    /// A fresh random id in `class` (`newUniqueId`); no object exists until it is used.
    pub fn new_unique_id(&self, class: &str) -> Result<ObjectId, ObjectError> {
        let version = self
            .registry
            .get(class)
            .ok_or_else(|| ObjectError::UnknownClass(class.to_string()))?;
        Ok(version.namespace.new_unique_id())
    }

    /// Checks that `hex` is an id minted for `class` (`idFromString`).
    pub fn id_from_string(&self, class: &str, hex: &str) -> Result<ObjectId, ObjectError> {
        let (key, _) = self.resolve(class, &Address::Id(hex.to_owned()))?;
        Ok(key.id)
    }

    /// The object `address` names in `class`, and its name if addressed by one.
    pub(crate) fn resolve(
        &self,
        class: &str,
        address: &Address,
    ) -> Result<(ObjectKey, Option<String>), ObjectError> {
        let version = self
            .registry
            .get(class)
            .ok_or_else(|| ObjectError::UnknownClass(class.to_string()))?;
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
        Ok((
            ObjectKey {
                class: class.into(),
                id,
            },
            name,
        ))
    }

    /// Calls `method` on an object with JSON arguments; the reply is the JSON result.
    pub async fn call(
        self: &Arc<Self>,
        class: &str,
        address: &Address,
        method: &str,
        args: serde_json::Value,
    ) -> Result<serde_json::Value, ObjectError> {
        let (tx, rx) = oneshot::channel();
        let event = Event::Call {
            method: method.to_string(),
            args,
            reply: tx,
        };
        self.send(class, address, event)?;
        reply(rx).await
    }

    /// Calls a method on the object `key` (called `name`, if addressed by one) with component
    /// values, from another object: `stub` is the caller's stub method (which method, and the
    /// types it promises), `chain` the objects waiting on this call. A call to an object in
    /// `chain` fails at once (`CallCycle`).
    pub(crate) async fn invoke(
        self: &Arc<Self>,
        key: ObjectKey,
        name: Option<&str>,
        stub: Arc<StubMethod>,
        args: Vec<Val>,
        chain: Arc<Vec<ObjectKey>>,
    ) -> Result<Option<Val>, ObjectError> {
        check_cycle(&chain, &key)?;
        let (tx, rx) = oneshot::channel();
        let event = Event::Invoke {
            stub,
            args,
            chain,
            reply: tx,
        };
        self.send_to(key, name, event)?;
        reply(rx).await
    }

    /// Delivers an HTTP request to an object's `fetch`; with `upgrade` (a WebSocket upgrade
    /// request) the object may accept the socket, which comes back with the response.
    pub(crate) async fn fetch(
        self: &Arc<Self>,
        class: &str,
        address: &Address,
        request: Request,
        upgrade: bool,
    ) -> Result<Fetched, ObjectError> {
        let (tx, rx) = oneshot::channel();
        let event = Event::Fetch {
            request,
            upgrade,
            chain: Arc::new(Vec::new()),
            reply: tx,
        };
        self.send(class, address, event)?;
        reply(rx).await
    }

    /// Delivers an HTTP request to the `fetch` of the object `key` (called `name`, if addressed
    /// by one) from another object (`stub.fetch`): `chain` holds the objects waiting on it, as
    /// for [`Self::invoke`]; with `upgrade` the callee may accept the WebSocket.
    pub(crate) async fn fetch_object(
        self: &Arc<Self>,
        key: ObjectKey,
        name: Option<&str>,
        request: Request,
        upgrade: bool,
        chain: Arc<Vec<ObjectKey>>,
    ) -> Result<Fetched, ObjectError> {
        check_cycle(&chain, &key)?;
        let (tx, rx) = oneshot::channel();
        let event = Event::Fetch {
            request,
            upgrade,
            chain,
            reply: tx,
        };
        self.send_to(key, name, event)?;
        reply(rx).await
    }

    /// Hands something that happened on one of an object's WebSockets to the object (waking it
    /// if it hibernates). The event comes back with the error when it could not be queued.
    pub(crate) fn deliver_websocket(
        self: &Arc<Self>,
        key: &ObjectKey,
        socket: SocketId,
        event: SocketEvent,
    ) -> Result<(), (ObjectError, SocketEvent)> {
        if self.registry.get(&key.class).is_none() {
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

    /// Hands a due alarm to its object (activating it if needed). An alarm of a class that is no
    /// longer deployed is dropped.
    pub(crate) fn deliver_alarm(self: &Arc<Self>, key: &AlarmKey, name: Option<&str>, retry: u32) {
        if self.registry.get(&key.class).is_none() {
            tracing::warn!(target: "wasmdo.alarms", class = &*key.class, id = %key.id, "dropping the alarm of an undeployed class");
            let _ = self.schedule.remove(key);
            return;
        }
        let object = ObjectKey {
            class: key.class.clone(),
            id: key.id,
        };
        if let Err(e) = self.send_to(object, name, Event::Alarm { retry }) {
            // a full mailbox: try again shortly, keeping the alarm
            tracing::warn!(target: "wasmdo.alarms", class = &*key.class, id = %key.id, "alarm not delivered: {e}");
            let retry_at = crate::alarms::now_ms() + 100;
            let _ = self.schedule.set(key, name, retry_at, retry);
        }
    }

    fn send(
        self: &Arc<Self>,
        class: &str,
        address: &Address,
        event: Event,
    ) -> Result<(), ObjectError> {
        let (key, name) = self.resolve(class, address)?;
        self.send_to(key, name.as_deref(), event)
    }

    /// Queues `event` for the object `key`, starting its actor (which learns `name`) if it is not
    /// live.
    fn send_to(
        self: &Arc<Self>,
        key: ObjectKey,
        name: Option<&str>,
        event: Event,
    ) -> Result<(), ObjectError> {
        self.try_send_to(key, name, event)
            .map_err(|refused| refused.0)
    }

    /// [`Directory::send_to`], giving the event back with the error when it was not queued.
    fn try_send_to(
        self: &Arc<Self>,
        key: ObjectKey,
        name: Option<&str>,
        event: Event,
    ) -> Result<(), Box<(ObjectError, Event)>> {
        let mut live = self.live.lock().expect("directory lock");
        let entry = match live.get(&key) {
            Some(entry) => entry,
            None => {
                let (tx, rx) = mpsc::unbounded_channel();
                let slot = Arc::new(Slot {
                    generation: self.next_generation.fetch_add(1, Ordering::Relaxed),
                    queued: AtomicUsize::new(0),
                    last_active: AtomicU64::new(0),
                    epoch: self.epoch,
                });
                slot.touch();
                let name = name.map(str::to_owned);
                let actor = Actor::new(key.clone(), name, slot.clone(), self.clone(), rx);
                tokio::spawn(actor.run());
                live.entry(key.clone()).or_insert(Entry { tx, slot })
            }
        };
        if entry.slot.queued.load(Ordering::Relaxed) >= self.limits.max_queued_events {
            let full = ObjectError::Overloaded(format!(
                "the object has {} events queued; retry later",
                self.limits.max_queued_events
            ));
            return Err(Box::new((full, event)));
        }
        entry.slot.queued.fetch_add(1, Ordering::Relaxed);
        entry.tx.send(event).map_err(|back| {
            let closed = ObjectError::Internal("the object's mailbox is closed".into());
            Box::new((closed, back.0))
        })
    }

    /// Called by an actor that wants to stop: succeeds (and removes it) only if no event is
    /// waiting for it. Events are sent under the same lock, so none can slip in afterwards.
    pub(crate) fn retire(
        &self,
        key: &ObjectKey,
        slot: &Slot,
        rx: &mpsc::UnboundedReceiver<Event>,
    ) -> bool {
        let mut live = self.live.lock().expect("directory lock");
        if !rx.is_empty() {
            return false;
        }
        if live
            .get(key)
            .is_some_and(|e| e.slot.generation == slot.generation)
        {
            live.remove(key);
        }
        true
    }

    /// Waits for room among the live objects, asking the least recently used idle object to
    /// retire when there is none.
    pub(crate) async fn acquire_live_permit(
        &self,
        key: &ObjectKey,
    ) -> Result<OwnedSemaphorePermit, ObjectError> {
        if let Ok(permit) = self.permits.clone().try_acquire_owned() {
            return Ok(permit);
        }
        let deadline = Instant::now() + ACTIVATION_WAIT;
        loop {
            self.evict_one_idle(key);
            let wait =
                Duration::from_millis(20).min(deadline.saturating_duration_since(Instant::now()));
            match tokio::time::timeout(wait, self.permits.clone().acquire_owned()).await {
                Ok(Ok(permit)) => return Ok(permit),
                Ok(Err(_closed)) => return Err(ObjectError::Internal("host shutting down".into())),
                Err(_) if Instant::now() >= deadline => {
                    return Err(ObjectError::Overloaded(format!(
                        "all {} live-object slots are busy; raise `max-live-objects` or retry",
                        self.limits.max_live_objects
                    )));
                }
                Err(_) => continue,
            }
        }
    }

    /// Stops every live object of `class`, for a migration that deletes or renames it: asks
    /// each to retire until none is live (waiting at most `wait`), then closes their parked
    /// databases and drops their snapshots. The caller has made the class unreachable first
    /// (`Registry::take_class`), so the events still queued fail and no new activation starts.
    pub(crate) async fn stop_class(&self, class: &str, wait: Duration) -> Result<(), ObjectError> {
        let deadline = Instant::now() + wait;
        loop {
            let live = {
                let live = self.live.lock().expect("directory lock");
                let mut count = 0;
                for (_, entry) in live.iter().filter(|(k, _)| &*k.class == class) {
                    // an actor takes `Evict` as "retire if idle"; ask again until it has
                    let _ = entry.tx.send(Event::Evict);
                    count += 1;
                }
                count
            };
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
        let closed: Vec<_> = {
            let mut parked = self.parked.lock().expect("parked databases lock");
            let keys: Vec<_> = (parked.databases.keys())
                .filter(|k| &*k.class == class)
                .cloned()
                .collect();
            keys.iter()
                .filter_map(|k| parked.databases.remove(k))
                .collect()
        };
        self.open_databases
            .fetch_sub(closed.len(), Ordering::Relaxed);
        drop(closed); // closes the connections
        let mut snapshots = self.snapshots.lock().expect("snapshots lock");
        snapshots.retain(|k, _| &*k.class != class);
        Ok(())
    }

    fn evict_one_idle(&self, except: &ObjectKey) {
        let live = self.live.lock().expect("directory lock");
        let victim = live
            .iter()
            .filter(|(k, e)| *k != except && e.slot.queued.load(Ordering::Relaxed) == 0)
            .min_by_key(|(_, e)| e.slot.last_active.load(Ordering::Relaxed));
        if let Some((_, entry)) = victim {
            let _ = entry.tx.send(Event::Evict);
        }
    }
}

/// Refuses a call to `key` from an event whose call `chain` already holds it (A → B → A): the
/// waiting instance cannot be re-entered, and waiting for it would deadlock.
fn check_cycle(chain: &[ObjectKey], key: &ObjectKey) -> Result<(), ObjectError> {
    if !chain.contains(key) {
        return Ok(());
    }
    let path: Vec<String> = chain
        .iter()
        .chain(std::iter::once(key))
        .map(|k| format!("{}/{}", k.class, &k.id.to_hex()[..8]))
        .collect();
    Err(ObjectError::CallCycle(format!(
        "{} would re-enter an object that is waiting for this call; objects must not call back into their callers (pass data down, or have the outer object make both calls)",
        path.join(" → ")
    )))
}

/// The reply an event's sender waits for; an actor that went away without replying is an
/// internal error.
async fn reply<T>(rx: oneshot::Receiver<Result<T, ObjectError>>) -> Result<T, ObjectError> {
    rx.await
        .map_err(|_| ObjectError::Internal("the object stopped before replying".into()))?
}

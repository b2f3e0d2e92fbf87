//! The hub: every object's WebSockets, held by the host so they outlive instances and actors
//! (hibernation). Per socket: its tags, its attachment, and the outbox its connection task
//! drains; per object: its auto-response pair. [`Accepted`] is a socket registered by a `fetch`
//! whose event has not committed yet.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;
use tokio_tungstenite::tungstenite::Message as WsMessage;

use crate::bindings::websockets_api::{Error, Message};
use crate::ids::ObjectKey;

/// A socket's id: unique in the host for its lifetime.
pub(crate) type SocketId = u64;

/// What an event asks of a socket's connection.
pub(crate) enum Outgoing {
    Message(WsMessage),
    Close(u16, String),
}

/// What happened on a socket, for the object's handler.
pub(crate) enum SocketEvent {
    Message(Message),
    Close {
        code: u16,
        reason: String,
        clean: bool,
    },
    Error(String),
}

/// A socket's outgoing messages, from the object's events to its connection task. Allocates
/// nothing while empty: an idle socket should cost little more than its connection.
#[derive(Default)]
pub(crate) struct Outbox {
    queue: Mutex<VecDeque<Outgoing>>,
    ready: Notify,
    closed: AtomicBool,
}

impl Outbox {
    pub(super) fn push(&self, out: Outgoing) {
        if !self.closed.load(Ordering::Acquire) {
            self.queue.lock().expect("outbox lock").push_back(out);
            self.ready.notify_one();
        }
    }

    /// The next message; `None` once the hub forgot the socket.
    pub(crate) async fn pop(&self) -> Option<Outgoing> {
        loop {
            if let Some(out) = self.queue.lock().expect("outbox lock").pop_front() {
                return Some(out);
            }
            if self.closed.load(Ordering::Acquire) {
                return None;
            }
            // a push between the check and here leaves a permit: no wake-up is lost
            self.ready.notified().await;
        }
    }

    pub(super) fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.ready.notify_one();
    }
}

pub(super) struct Socket {
    pub(super) tags: Vec<String>,
    pub(super) attachment: Vec<u8>,
    pub(super) outbox: Arc<Outbox>,
    /// The client closed it (or the connection ended): no longer listed, no longer sent to, but
    /// its tags and attachment stay readable until its close event has run.
    pub(super) closed: bool,
    /// Accepted for the instance alone (`accept-in-memory`): not listed, keeps the object from
    /// hibernating, closed when the instance goes.
    pub(super) in_memory: bool,
}

#[derive(Default)]
pub(super) struct ObjectSockets {
    pub(super) sockets: BTreeMap<SocketId, Socket>,
    pub(super) auto_response: Option<(String, String)>,
}

/// Every object's sockets.
#[derive(Default)]
pub(crate) struct Hub {
    pub(super) objects: Mutex<HashMap<ObjectKey, ObjectSockets>>,
    pub(super) next_id: AtomicU64,
    pub(super) open: AtomicU64,
}

impl Hub {
    pub(super) fn with<R>(
        &self,
        key: &ObjectKey,
        f: impl FnOnce(&mut ObjectSockets) -> R,
    ) -> Option<R> {
        let mut objects = self.objects.lock().expect("websocket hub lock");
        objects.get_mut(key).map(f)
    }

    pub(super) fn socket<R>(
        &self,
        key: &ObjectKey,
        id: SocketId,
        f: impl FnOnce(&mut Socket) -> Result<R, Error>,
    ) -> Result<R, Error> {
        self.with(key, |o| match o.sockets.get_mut(&id) {
            Some(socket) => f(socket),
            None => Err(Error::UnknownSocket(id)),
        })
        .unwrap_or(Err(Error::UnknownSocket(id)))
    }

    /// Sockets open now, in the whole host.
    pub(crate) fn open(&self) -> u64 {
        self.open.load(Ordering::Relaxed)
    }

    /// What the object holds: (hibernatable sockets, sockets of its instance alone). With the
    /// first it hibernates instead of being evicted; with the second it does neither.
    pub(crate) fn holds(&self, key: &ObjectKey) -> (bool, bool) {
        self.with(key, |o| {
            let in_memory = o.sockets.values().any(|s| s.in_memory);
            let hibernatable = o.sockets.values().any(|s| !s.in_memory);
            (hibernatable, in_memory)
        })
        .unwrap_or((false, false))
    }

    /// Closes the sockets the object's instance accepted in memory with 1001 and forgets them:
    /// the instance whose listeners they had is gone. Returns how many were closed.
    pub(crate) fn close_in_memory(&self, key: &ObjectKey, reason: &str) -> usize {
        let mut objects = self.objects.lock().expect("websocket hub lock");
        let Some(object) = objects.get_mut(key) else {
            return 0;
        };
        let ids: Vec<SocketId> = (object.sockets.iter())
            .filter(|(_, s)| s.in_memory)
            .map(|(id, _)| *id)
            .collect();
        for id in &ids {
            if let Some(socket) = object.sockets.remove(id) {
                self.close_removed(socket, 1001, reason);
            }
        }
        if object.sockets.is_empty() && object.auto_response.is_none() {
            objects.remove(key);
        }
        ids.len()
    }

    pub(super) fn register(
        &self,
        key: &ObjectKey,
        tags: Vec<String>,
        in_memory: bool,
        max: u32,
    ) -> Result<(SocketId, Arc<Outbox>), Error> {
        let mut objects = self.objects.lock().expect("websocket hub lock");
        let object = objects.entry(key.clone()).or_default();
        if object.sockets.len() >= max as usize {
            return Err(Error::TooManySockets(max));
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        let outbox = Arc::new(Outbox::default());
        object.sockets.insert(
            id,
            Socket {
                tags,
                attachment: Vec::new(),
                outbox: outbox.clone(),
                closed: false,
                in_memory,
            },
        );
        self.open.fetch_add(1, Ordering::Relaxed);
        Ok((id, outbox))
    }

    /// Removes a socket (its connection ended and its close was handled, or it never connected).
    pub(crate) fn forget(&self, key: &ObjectKey, id: SocketId) {
        let mut objects = self.objects.lock().expect("websocket hub lock");
        if let Some(object) = objects.get_mut(key) {
            if let Some(socket) = object.sockets.remove(&id) {
                socket.outbox.close();
                self.open.fetch_sub(1, Ordering::Relaxed);
            }
            if object.sockets.is_empty() {
                objects.remove(key);
            }
        }
    }

    /// Closes every socket of `class`'s objects with `code` and `reason`, and forgets them: a
    /// migration is deleting or renaming the class, whose objects could no longer get their
    /// events. Returns how many were closed.
    pub(crate) fn close_class(&self, class: &str, code: u16, reason: &str) -> usize {
        self.close_objects(|key| &*key.class == class, code, reason)
    }

    /// Closes every socket of this host with `code` and `reason`, and forgets them: the host is
    /// shutting down. Returns how many were closed.
    pub(crate) fn close_all(&self, code: u16, reason: &str) -> usize {
        self.close_objects(|_| true, code, reason)
    }

    /// Closes every socket of the objects `which` picks, and forgets them; how many.
    fn close_objects(&self, which: impl Fn(&ObjectKey) -> bool, code: u16, reason: &str) -> usize {
        let mut objects = self.objects.lock().expect("websocket hub lock");
        let mut closed = 0;
        for (_, object) in objects.extract_if(|key, _| which(key)) {
            for (_, socket) in object.sockets {
                self.close_removed(socket, code, reason);
                closed += 1;
            }
        }
        closed
    }

    /// Closes a socket just removed from its object: its connection task sends the close, then
    /// ends (the outbox is closed).
    fn close_removed(&self, socket: Socket, code: u16, reason: &str) {
        socket.outbox.push(Outgoing::Close(code, reason.to_owned()));
        socket.outbox.close();
        self.open.fetch_sub(1, Ordering::Relaxed);
    }

    pub(crate) fn mark_closed(&self, key: &ObjectKey, id: SocketId) {
        self.with(key, |o| {
            if let Some(socket) = o.sockets.get_mut(&id) {
                socket.closed = true;
            }
        });
    }

    pub(crate) fn auto_response(&self, key: &ObjectKey, text: &str) -> Option<String> {
        self.with(key, |o| match &o.auto_response {
            Some((request, response)) if request == text => Some(response.clone()),
            _ => None,
        })
        .flatten()
    }

    pub(super) fn deliver(&self, key: &ObjectKey, id: SocketId, out: Outgoing) {
        // a socket that closed meanwhile just misses it, as on Cloudflare
        let _ = self.socket(key, id, |s| {
            s.outbox.push(out);
            Ok(())
        });
    }
}

/// A WebSocket a `fetch` accepted, to switch the client's connection to once the reply is
/// released.
pub(crate) enum Accepted {
    /// A socket of an object on this host.
    Here(HereSocket),
    /// A socket another host of the cluster accepted (its object lives there): the client's
    /// connection is piped, byte for byte, to the connection this host upgraded to that host.
    Tunnel(hyper::upgrade::OnUpgrade),
}

/// A socket accepted by a `fetch` of an object on this host whose event has not committed yet.
/// Dropped without being connected (the event rolled back, the commit failed, the client left),
/// it forgets the socket.
pub(crate) struct HereSocket {
    pub(super) key: ObjectKey,
    pub(super) id: SocketId,
    pub(super) outbox: Option<Arc<Outbox>>,
    pub(super) hub: Arc<Hub>,
}

impl HereSocket {
    /// Hands the socket to its connection task: its key, id, hub and outbox; `None` if it was
    /// handed over already.
    pub(crate) fn connect(mut self) -> Option<(ObjectKey, SocketId, Arc<Hub>, Arc<Outbox>)> {
        let outbox = self.outbox.take()?;
        Some((self.key.clone(), self.id, self.hub.clone(), outbox))
    }
}

impl Drop for HereSocket {
    fn drop(&mut self) {
        if self.outbox.is_some() {
            self.hub.forget(&self.key, self.id);
        }
    }
}

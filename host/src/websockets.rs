//! Hibernatable WebSockets: the host holds every connection, so sockets outlive instances.
//!
//! - **Accept.** A WebSocket upgrade to `/objects/{class}/{name}/…` reaches the object's `fetch`
//!   like any request; the object accepts it (`websockets.accept(tags)`) or answers with an HTTP
//!   response (a refusal). An accepted socket is registered in the [`Hub`] at once; the client is
//!   switched to the WebSocket only after the event commits ([`Accepted`] is handed to the
//!   gateway with the reply), and a rolled-back event forgets the socket again.
//! - **Ownership.** The [`Hub`] owns every socket's registration (tags, attachment, the sender
//!   to its connection task); one task per connection ([`serve`]) owns the stream. Neither lives
//!   in the object's instance or actor, so both survive hibernation.
//! - **Events.** Messages, closes and errors become events of the object, serialized with its
//!   others, each in its own transaction. A message equal to the object's auto-response request
//!   is answered by the connection task itself, without an event (the object may be asleep).
//! - **Output gate.** What an event sends (`send`, `close`) is held until the event's batch
//!   commits, like a reply: a rolled-back event sends nothing.
//! - **Hibernation** is the actor retiring: an object with open sockets retires after
//!   `hibernate-after-ms` without events, its instance dropped, its sockets untouched.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use tokio::sync::Notify;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error as WsError, Message as WsMessage};

use crate::bindings::websockets_api::{self, Error, Message};
use crate::directory::{Directory, ObjectKey};
use crate::error::ObjectError;
use crate::limits::{
    Limits, MAX_WEBSOCKET_ATTACHMENT_BYTES, MAX_WEBSOCKET_TAG_BYTES, MAX_WEBSOCKET_TAGS,
};

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
    fn push(&self, out: Outgoing) {
        if !self.closed.load(Ordering::Acquire) {
            self.queue.lock().expect("outbox lock").push_back(out);
            self.ready.notify_one();
        }
    }

    /// The next message; `None` once the hub forgot the socket.
    async fn pop(&self) -> Option<Outgoing> {
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

    fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.ready.notify_one();
    }
}

struct Socket {
    tags: Vec<String>,
    attachment: Vec<u8>,
    outbox: Arc<Outbox>,
    /// The client closed it (or the connection ended): no longer listed, no longer sent to, but
    /// its tags and attachment stay readable until its close event has run.
    closed: bool,
}

#[derive(Default)]
struct ObjectSockets {
    sockets: BTreeMap<SocketId, Socket>,
    auto_response: Option<(String, String)>,
}

/// Every object's sockets.
#[derive(Default)]
pub(crate) struct Hub {
    objects: Mutex<HashMap<ObjectKey, ObjectSockets>>,
    next_id: AtomicU64,
    open: AtomicU64,
}

impl Hub {
    fn with<R>(&self, key: &ObjectKey, f: impl FnOnce(&mut ObjectSockets) -> R) -> Option<R> {
        let mut objects = self.objects.lock().expect("websocket hub lock");
        objects.get_mut(key).map(f)
    }

    fn socket<R>(
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

    /// Whether the object holds any socket (then it hibernates instead of being evicted).
    pub(crate) fn has_sockets(&self, key: &ObjectKey) -> bool {
        self.with(key, |o| !o.sockets.is_empty()).unwrap_or(false)
    }

    fn register(
        &self,
        key: &ObjectKey,
        tags: Vec<String>,
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
        let mut objects = self.objects.lock().expect("websocket hub lock");
        let keys: Vec<ObjectKey> = (objects.keys())
            .filter(|k| &*k.class == class)
            .cloned()
            .collect();
        let mut closed = 0;
        for key in keys {
            for (_, socket) in objects.remove(&key).map(|o| o.sockets).unwrap_or_default() {
                // the connection task sends the close, then ends (the outbox is closed)
                socket.outbox.push(Outgoing::Close(code, reason.to_owned()));
                socket.outbox.close();
                self.open.fetch_sub(1, Ordering::Relaxed);
                closed += 1;
            }
        }
        closed
    }

    fn mark_closed(&self, key: &ObjectKey, id: SocketId) {
        self.with(key, |o| {
            if let Some(socket) = o.sockets.get_mut(&id) {
                socket.closed = true;
            }
        });
    }

    fn auto_response(&self, key: &ObjectKey, text: &str) -> Option<String> {
        self.with(key, |o| match &o.auto_response {
            Some((request, response)) if request == text => Some(response.clone()),
            _ => None,
        })
        .flatten()
    }

    fn deliver(&self, key: &ObjectKey, id: SocketId, out: Outgoing) {
        // a socket that closed meanwhile just misses it, as on Cloudflare
        let _ = self.socket(key, id, |s| {
            s.outbox.push(out);
            Ok(())
        });
    }
}

/// A socket accepted by a `fetch` whose event has not committed yet. Dropped without being
/// connected (the event rolled back, the commit failed, the client left), it forgets the socket.
pub(crate) struct Accepted {
    key: ObjectKey,
    id: SocketId,
    outbox: Option<Arc<Outbox>>,
    hub: Arc<Hub>,
}

impl Drop for Accepted {
    fn drop(&mut self) {
        if self.outbox.is_some() {
            self.hub.forget(&self.key, self.id);
        }
    }
}

/// The `websockets` capability of one object.
pub(crate) struct WebSocketsCtx {
    key: ObjectKey,
    hub: Arc<Hub>,
    max_message_bytes: u64,
    max_sockets: u32,
    /// During `fetch` of an upgrade request: `Some(None)` until the object accepts it.
    upgrade: Option<Option<Accepted>>,
    /// Sends of the running event, and of the finished events of the batch (output gate).
    event_out: Vec<(SocketId, Outgoing)>,
    batch_out: Vec<(SocketId, Outgoing)>,
}

impl WebSocketsCtx {
    pub(crate) fn new(key: ObjectKey, hub: Arc<Hub>, limits: &Limits) -> Self {
        WebSocketsCtx {
            key,
            hub,
            max_message_bytes: limits.max_websocket_message_bytes,
            max_sockets: limits.max_websockets_per_object,
            upgrade: None,
            event_out: Vec::new(),
            batch_out: Vec::new(),
        }
    }

    /// Opens (or closes, with `false`) the window in which `accept` is allowed: the `fetch` of an
    /// upgrade request. Returns what was accepted in it.
    pub(crate) fn upgrade_window(&mut self, open: bool) -> Option<Accepted> {
        let accepted = self.upgrade.take().flatten();
        if open {
            self.upgrade = Some(None);
        }
        accepted
    }

    /// Whether the running `fetch` handles a WebSocket upgrade nobody has accepted yet.
    pub(crate) fn upgrade_pending(&self) -> bool {
        matches!(self.upgrade, Some(None))
    }

    /// The upgrade this `fetch` handles was passed on to another object (`objects.fetch`),
    /// which accepted it: if this `fetch` answers 101, the client is connected to that socket.
    pub(crate) fn pass_on(&mut self, accepted: Accepted) {
        if self.upgrade_pending() {
            self.upgrade = Some(Some(accepted));
        }
    }

    /// The running event ended: its sends join the batch's, or vanish with its rollback.
    pub(crate) fn end_event(&mut self, keep: bool) {
        if keep {
            self.batch_out.append(&mut self.event_out);
        } else {
            self.event_out.clear();
        }
    }

    /// The batch committed (or failed): its sends go out (or are dropped).
    pub(crate) fn release(&mut self, committed: bool) {
        self.event_out.clear();
        let out = std::mem::take(&mut self.batch_out);
        if committed {
            for (id, out) in out {
                self.hub.deliver(&self.key, id, out);
            }
        }
    }

    /// Whether a send to `id` goes out: `Ok(false)` for a socket the client has just closed (its
    /// close event is still to come), whose messages are dropped as the network would; an error
    /// for an id the object does not hold.
    fn check_open(&self, id: SocketId) -> Result<bool, Error> {
        self.hub.socket(&self.key, id, |s| Ok(!s.closed))
    }
}

fn check_tags(tags: &[String]) -> Result<(), Error> {
    if tags.len() > MAX_WEBSOCKET_TAGS {
        return Err(Error::InvalidTags(format!(
            "{} tags; at most {MAX_WEBSOCKET_TAGS} are allowed",
            tags.len()
        )));
    }
    if let Some(long) = tags.iter().find(|t| t.len() > MAX_WEBSOCKET_TAG_BYTES) {
        return Err(Error::InvalidTags(format!(
            "a tag of {} bytes; at most {MAX_WEBSOCKET_TAG_BYTES} are allowed",
            long.len()
        )));
    }
    if tags.iter().any(String::is_empty) {
        return Err(Error::InvalidTags("a tag is empty".into()));
    }
    Ok(())
}

impl websockets_api::Host for WebSocketsCtx {
    fn accept(&mut self, tags: Vec<String>) -> wasmtime::Result<Result<SocketId, Error>> {
        Ok((|| {
            match &self.upgrade {
                None => {
                    return Err(Error::NotUpgrade(
                        "accept is only possible in `fetch`, for a WebSocket upgrade request"
                            .into(),
                    ));
                }
                Some(Some(_)) => {
                    return Err(Error::NotUpgrade(
                        "this request's WebSocket was already accepted".into(),
                    ));
                }
                Some(None) => {}
            }
            check_tags(&tags)?;
            let (id, outbox) = self.hub.register(&self.key, tags, self.max_sockets)?;
            self.upgrade = Some(Some(Accepted {
                key: self.key.clone(),
                id,
                outbox: Some(outbox),
                hub: self.hub.clone(),
            }));
            Ok(id)
        })())
    }

    fn sockets(&mut self, tag: Option<String>) -> wasmtime::Result<Vec<SocketId>> {
        Ok(self
            .hub
            .with(&self.key, |o| {
                o.sockets
                    .iter()
                    .filter(|(_, s)| !s.closed)
                    .filter(|(_, s)| tag.as_ref().is_none_or(|t| s.tags.contains(t)))
                    .map(|(id, _)| *id)
                    .collect()
            })
            .unwrap_or_default())
    }

    fn tags(&mut self, socket: SocketId) -> wasmtime::Result<Result<Vec<String>, Error>> {
        Ok(self.hub.socket(&self.key, socket, |s| Ok(s.tags.clone())))
    }

    fn send(&mut self, socket: SocketId, message: Message) -> wasmtime::Result<Result<(), Error>> {
        Ok((|| {
            let open = self.check_open(socket)?;
            let (len, message) = match message {
                Message::Text(t) => (t.len(), WsMessage::text(t)),
                Message::Binary(b) => (b.len(), WsMessage::binary(b)),
            };
            if len as u64 > self.max_message_bytes {
                return Err(Error::MessageTooLarge(self.max_message_bytes));
            }
            if open {
                self.event_out.push((socket, Outgoing::Message(message)));
            }
            Ok(())
        })())
    }

    fn close(
        &mut self,
        socket: SocketId,
        code: u16,
        reason: String,
    ) -> wasmtime::Result<Result<(), Error>> {
        Ok((|| {
            if code != 1000 && !(3000..=4999).contains(&code) {
                return Err(Error::InvalidClose(format!(
                    "close code {code}: use 1000, or 3000–4999"
                )));
            }
            if reason.len() > 123 {
                return Err(Error::InvalidClose(format!(
                    "a close reason of {} bytes; at most 123 are allowed",
                    reason.len()
                )));
            }
            if self.check_open(socket)? {
                self.event_out.push((socket, Outgoing::Close(code, reason)));
            }
            Ok(())
        })())
    }

    fn set_attachment(
        &mut self,
        socket: SocketId,
        attachment: Vec<u8>,
    ) -> wasmtime::Result<Result<(), Error>> {
        Ok((|| {
            if attachment.len() > MAX_WEBSOCKET_ATTACHMENT_BYTES {
                return Err(Error::AttachmentTooLarge(
                    MAX_WEBSOCKET_ATTACHMENT_BYTES as u32,
                ));
            }
            self.hub.socket(&self.key, socket, |s| {
                s.attachment = attachment;
                Ok(())
            })
        })())
    }

    fn attachment(&mut self, socket: SocketId) -> wasmtime::Result<Result<Vec<u8>, Error>> {
        Ok(self
            .hub
            .socket(&self.key, socket, |s| Ok(s.attachment.clone())))
    }

    fn set_auto_response(&mut self, pair: Option<(String, String)>) -> wasmtime::Result<()> {
        let mut objects = self.hub.objects.lock().expect("websocket hub lock");
        match pair {
            Some(pair) => objects.entry(self.key.clone()).or_default().auto_response = Some(pair),
            None => {
                if let Some(o) = objects.get_mut(&self.key) {
                    o.auto_response = None;
                }
            }
        }
        Ok(())
    }
}

/// Serves one accepted socket's connection until it ends: outgoing messages from the object,
/// incoming ones to it as events (auto-responses answered here).
pub(crate) async fn serve(directory: Arc<Directory>, mut accepted: Accepted, upgraded: Upgraded) {
    let Some(outbox) = accepted.outbox.take() else {
        return;
    };
    let (key, id, hub) = (accepted.key.clone(), accepted.id, accepted.hub.clone());
    let limit =
        usize::try_from(directory.limits().max_websocket_message_bytes).unwrap_or(usize::MAX);
    let config = WebSocketConfig::default()
        // idle sockets are the common case: a small eagerly allocated read buffer, no batching
        .read_buffer_size(512)
        .write_buffer_size(0)
        .max_message_size(Some(limit))
        .max_frame_size(Some(limit));
    let mut ws =
        WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, Some(config)).await;
    // after the object's close: how long the client has to answer it
    let mut closing: Option<(tokio::time::Instant, u16, String)> = None;
    let closed = loop {
        let deadline = closing.as_ref().map(|(at, ..)| *at);
        tokio::select! {
            _ = tokio::time::sleep_until(deadline.unwrap_or_else(tokio::time::Instant::now)), if deadline.is_some() => {
                let (_, code, reason) = closing.take().expect("a close under way");
                break Some(SocketEvent::Close { code, reason, clean: false });
            }
            out = outbox.pop() => match out {
                Some(Outgoing::Message(m)) => {
                    if let Err(e) = ws.send(m).await {
                        break Some(lost(e));
                    }
                }
                Some(Outgoing::Close(code, reason)) => {
                    let frame = CloseFrame { code: CloseCode::from(code), reason: reason.clone().into() };
                    if let Err(e) = ws.send(WsMessage::Close(Some(frame))).await {
                        break Some(lost(e));
                    }
                    closing = Some((tokio::time::Instant::now() + CLOSE_TIMEOUT, code, reason));
                }
                // forgotten by the hub: nothing more to do
                None => break None,
            },
            incoming = ws.next() => match incoming {
                Some(Ok(WsMessage::Text(text))) => {
                    if let Some(response) = hub.auto_response(&key, text.as_str()) {
                        if let Err(e) = ws.send(WsMessage::text(response)).await {
                            break Some(lost(e));
                        }
                        continue;
                    }
                    let event = SocketEvent::Message(Message::Text(text.as_str().to_owned()));
                    if !deliver(&directory, &key, id, event).await {
                        let _ = ws.close(Some(overloaded())).await;
                        break Some(lost_quietly());
                    }
                }
                Some(Ok(WsMessage::Binary(data))) => {
                    let event = SocketEvent::Message(Message::Binary(data.to_vec()));
                    if !deliver(&directory, &key, id, event).await {
                        let _ = ws.close(Some(overloaded())).await;
                        break Some(lost_quietly());
                    }
                }
                Some(Ok(WsMessage::Close(frame))) => {
                    // tungstenite answers the close; the stream ends after it
                    let (code, reason) = frame
                        .map(|f| (u16::from(f.code), f.reason.to_string()))
                        .unwrap_or((1005, String::new()));
                    let _ = ws.flush().await;
                    break Some(SocketEvent::Close { code, reason, clean: true });
                }
                Some(Ok(_)) => {} // ping, pong (answered by tungstenite), raw frames
                Some(Err(e)) if dropped(&e) => break Some(lost(e)),
                Some(Err(e)) => {
                    let message = match &e {
                        WsError::Capacity(c) => {
                            let frame = CloseFrame { code: CloseCode::Size, reason: "message too big".into() };
                            let _ = ws.close(Some(frame)).await;
                            format!("message too large: {c}")
                        }
                        WsError::Protocol(p) => {
                            let frame = CloseFrame { code: CloseCode::Protocol, reason: "protocol error".into() };
                            let _ = ws.close(Some(frame)).await;
                            format!("protocol error: {p}")
                        }
                        other => other.to_string(),
                    };
                    break Some(SocketEvent::Error(message));
                }
                None => break Some(lost_quietly()),
            },
        }
    };
    hub.mark_closed(&key, id);
    match closed {
        // the close (or error) event forgets the socket once the object has handled it
        Some(event) => {
            if !deliver(&directory, &key, id, event).await {
                hub.forget(&key, id);
            }
        }
        None => hub.forget(&key, id),
    }
}

/// How long a client has to answer the object's close before the connection is dropped.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(10);

/// Whether `e` is the connection ending (rather than the client misbehaving).
fn dropped(e: &WsError) -> bool {
    use tokio_tungstenite::tungstenite::error::ProtocolError;
    matches!(
        e,
        WsError::ConnectionClosed
            | WsError::AlreadyClosed
            | WsError::Io(_)
            | WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake)
    )
}

/// The connection dropped without a closing handshake.
fn lost_quietly() -> SocketEvent {
    SocketEvent::Close {
        code: 1006,
        reason: String::new(),
        clean: false,
    }
}

fn lost(e: WsError) -> SocketEvent {
    tracing::debug!(target: "wasmdo.websockets", "connection lost: {e}");
    lost_quietly()
}

fn overloaded() -> CloseFrame {
    CloseFrame {
        code: CloseCode::Again,
        reason: "the object is overloaded".into(),
    }
}

/// Hands an event to the object, waiting while its mailbox is full (a socket's messages must
/// arrive in order, none dropped); false if it stays full for about 5 s, or the class is gone.
async fn deliver(
    directory: &Arc<Directory>,
    key: &ObjectKey,
    id: SocketId,
    event: SocketEvent,
) -> bool {
    let mut event = Some(event);
    for _ in 0..500 {
        match directory.deliver_websocket(key, id, event.take().expect("an event to deliver")) {
            Ok(()) => return true,
            Err((ObjectError::Overloaded(_), back)) => {
                event = Some(back);
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            Err((e, _)) => {
                tracing::warn!(target: "wasmdo.websockets", class = &*key.class, id = %key.id,
                    "a WebSocket event was not delivered: {e}");
                return false;
            }
        }
    }
    false
}

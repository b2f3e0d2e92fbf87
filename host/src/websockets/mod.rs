//! Hibernatable WebSockets: the host holds every connection, so sockets outlive instances.
//!
//! - **Accept.** A WebSocket upgrade to `/objects/{class}/{name}/…` reaches the object's `fetch`
//!   like any request; the object accepts it (`websockets.accept(tags)`) or answers with an HTTP
//!   response (a refusal). An accepted socket is registered in the [`Hub`] at once; the client is
//!   switched to the WebSocket only after the event commits ([`Accepted`] is handed to the
//!   gateway with the reply), and a rolled-back event forgets the socket again.
//! - **Ownership.** The [`Hub`] owns every socket's registration (tags, attachment, the sender
//!   to its connection task); one task per connection (the gateway's) owns the stream. Neither lives
//!   in the object's instance or actor, so both survive hibernation.
//! - **Events.** Messages, closes and errors become events of the object, serialized with its
//!   others, each in its own transaction. A message equal to the object's auto-response request
//!   is answered by the connection task itself, without an event (the object may be asleep).
//! - **Output gate.** What an event sends (`send`, `close`) is held until the event's batch
//!   commits, like a reply: a rolled-back event sends nothing.
//! - **Hibernation** is the actor retiring: an object with open sockets retires after
//!   `hibernate-after-ms` without events, its instance dropped, its sockets untouched.
//! - **In memory.** A socket accepted with `accept-in-memory` (Cloudflare's `server.accept()`)
//!   is the instance's: it keeps the object from hibernating or being evicted as idle, is not
//!   listed by `sockets`, and is closed (1001) when the instance goes.
//!
//! This module is the capability (the object's view, [`WebSocketsCtx`]); `hub.rs` holds the
//! host-wide registry of sockets.

mod hub;

pub(crate) use hub::{Accepted, HereSocket, Hub, Outgoing, SocketEvent, SocketId};

use std::sync::Arc;

use tokio_tungstenite::tungstenite::Message as WsMessage;

use crate::bindings::websockets_api::{self, Error, Message};
use crate::ids::ObjectKey;
use crate::limits::{
    Limits, MAX_WEBSOCKET_ATTACHMENT_BYTES, MAX_WEBSOCKET_TAG_BYTES, MAX_WEBSOCKET_TAGS,
};

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
    /// A message as the socket sends it, if it is within the size limit.
    fn outgoing(&self, message: Message) -> Result<WsMessage, Error> {
        let (len, message) = match message {
            Message::Text(t) => (t.len(), WsMessage::text(t)),
            Message::Binary(b) => (b.len(), WsMessage::binary(b)),
        };
        if len as u64 > self.max_message_bytes {
            return Err(Error::MessageTooLarge(self.max_message_bytes));
        }
        Ok(message)
    }

    fn check_open(&self, id: SocketId) -> Result<bool, Error> {
        self.hub.socket(&self.key, id, |s| Ok(!s.closed))
    }

    /// Closes (1001) and forgets the sockets the instance accepted in memory: it is going.
    pub(crate) fn close_in_memory(&mut self) {
        let closed = self
            .hub
            .close_in_memory(&self.key, "the object's instance went away");
        if closed > 0 {
            tracing::info!(target: "wasmdo.websockets", class = &*self.key.class, id = %self.key.id,
                "closed {closed} WebSocket(s) accepted in memory: the instance went away");
        }
    }

    /// Accepts the running `fetch`'s upgrade request (see `accept` and `accept-in-memory`).
    fn accept_upgrade(&mut self, tags: Vec<String>, in_memory: bool) -> Result<SocketId, Error> {
        match &self.upgrade {
            None => {
                return Err(Error::NotUpgrade(
                    "accept is only possible in `fetch`, for a WebSocket upgrade request".into(),
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
        let (id, outbox) = self
            .hub
            .register(&self.key, tags, in_memory, self.max_sockets)?;
        self.upgrade = Some(Some(Accepted::Here(HereSocket {
            key: self.key.clone(),
            id,
            outbox: Some(outbox),
            hub: self.hub.clone(),
        })));
        Ok(id)
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
        Ok(self.accept_upgrade(tags, false))
    }

    fn accept_in_memory(&mut self) -> wasmtime::Result<Result<SocketId, Error>> {
        Ok(self.accept_upgrade(Vec::new(), true))
    }

    fn sockets(&mut self, tag: Option<String>) -> wasmtime::Result<Vec<SocketId>> {
        Ok(self
            .hub
            .with(&self.key, |o| {
                o.sockets
                    .iter()
                    .filter(|(_, s)| !s.closed && !s.in_memory)
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
            let message = self.outgoing(message)?;
            if open {
                self.event_out.push((socket, Outgoing::Message(message)));
            }
            Ok(())
        })())
    }

    fn send_many(
        &mut self,
        sockets: Vec<SocketId>,
        message: Message,
    ) -> wasmtime::Result<Result<u32, Error>> {
        Ok((|| {
            let message = self.outgoing(message)?;
            // one look at the hub for all of them; the message's bytes are shared, not copied
            let open: Vec<SocketId> = self
                .hub
                .with(&self.key, |o| {
                    sockets
                        .iter()
                        .copied()
                        .filter(|id| o.sockets.get(id).is_some_and(|s| !s.closed))
                        .collect()
                })
                .unwrap_or_default();
            let sent = u32::try_from(open.len()).unwrap_or(u32::MAX);
            self.event_out.extend(
                open.into_iter()
                    .map(|id| (id, Outgoing::Message(message.clone()))),
            );
            Ok(sent)
        })())
    }

    fn close(
        &mut self,
        socket: SocketId,
        code: u16,
        reason: String,
    ) -> wasmtime::Result<Result<(), Error>> {
        Ok((|| {
            // what RFC 6455 (and IANA's registry) lets an endpoint send; 1005, 1006 and 1015
            // only report what happened, they are never sent
            let sendable = matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999);
            if !sendable {
                return Err(Error::InvalidClose(format!(
                    "close code {code}: use 1000–1003, 1007–1014 (1011: an unexpected condition) or 3000–4999"
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

/// Adds the `websockets` interface to `linker`, over the [`WebSocketsCtx`] `get` returns.
pub(crate) fn add_to_linker<T: Send + 'static>(
    linker: &mut wasmtime::component::Linker<T>,
    get: fn(&mut T) -> &mut WebSocketsCtx,
) -> wasmtime::Result<()> {
    websockets_api::add_to_linker::<T, wasmtime::component::HasSelf<WebSocketsCtx>>(linker, get)
}

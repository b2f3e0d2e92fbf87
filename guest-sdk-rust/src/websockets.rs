//! Hibernatable WebSockets: the host holds the connections, so they stay open while the object
//! sleeps (Cloudflare's WebSocket Hibernation API).
//!
//! In [`DurableObject::fetch`](crate::DurableObject::fetch), [`accept`] the request's upgrade
//! (check [`Request::is_websocket_upgrade`](crate::Request::is_websocket_upgrade)); messages,
//! closes and errors then arrive as [`DurableObject::websocket_message`](crate::DurableObject::websocket_message),
//! [`websocket_close`](crate::DurableObject::websocket_close) and
//! [`websocket_error`](crate::DurableObject::websocket_error), each an event in its own
//! transaction. Keep per-connection state in the socket's attachment
//! ([`WebSocket::set_attachment`]): it survives hibernation, statics do not.
//!
//! ```no_run
//! use wasmdo::websockets::{self, Message, WebSocket};
//! use wasmdo::{DurableObject, Request, Response};
//!
//! struct Echo;
//!
//! impl DurableObject for Echo {
//!     fn fetch(req: Request) -> Result<Response, String> {
//!         if !req.is_websocket_upgrade() {
//!             return Ok(Response::text(426, "expected a WebSocket"));
//!         }
//!         websockets::accept(&["echo"]).map_err(|e| e.to_string())?;
//!         Ok(Response::switching_protocols())
//!     }
//!
//!     fn websocket_message(ws: WebSocket, message: Message) -> Result<(), String> {
//!         ws.send(message).map_err(|e| e.to_string())
//!     }
//! }
//! # fn main() {}
//! ```
//!
//! What an event sends is held until the event commits (like a reply): a failed event sends
//! nothing.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::bindings::wasmdo::object::websockets as wit;
pub use wit::{Error, Message};

/// One of the object's WebSockets. A plain id: keep it (in storage, in another socket's
/// attachment) and it still names the socket after hibernation; once the socket is gone, calls
/// on it fail with [`Error::UnknownSocket`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WebSocket(pub u64);

/// Accepts the WebSocket upgrade of the request `fetch` is handling, with up to 10 tags of up
/// to 256 bytes (Cloudflare's `ctx.acceptWebSocket(ws, tags)`). The client switches to the
/// WebSocket once `fetch` returns and its event commits.
pub fn accept(tags: &[&str]) -> Result<WebSocket, Error> {
    let tags: Vec<String> = tags.iter().map(|t| t.to_string()).collect();
    wit::accept(&tags).map(WebSocket)
}

/// The object's open WebSockets, oldest first; with a tag, only those carrying it
/// (`ctx.getWebSockets(tag)`).
pub fn get_websockets(tag: Option<&str>) -> Vec<WebSocket> {
    wit::sockets(tag).into_iter().map(WebSocket).collect()
}

/// Text messages equal to `request` are answered with `response` by the host, without waking
/// the object (`ctx.setWebSocketAutoResponse`); `None` removes the pair.
pub fn set_auto_response(pair: Option<(&str, &str)>) {
    wit::set_auto_response(pair);
}

impl WebSocket {
    /// Sends a message (`ws.send`).
    pub fn send(self, message: Message) -> Result<(), Error> {
        wit::send(self.0, &message)
    }

    /// Sends a text message.
    pub fn send_text(self, text: &str) -> Result<(), Error> {
        wit::send(self.0, &Message::Text(text.to_string()))
    }

    /// Sends a binary message.
    pub fn send_binary(self, data: &[u8]) -> Result<(), Error> {
        wit::send(self.0, &Message::Binary(data.to_vec()))
    }

    /// Starts the closing handshake: `code` one an endpoint may send (1000–1003, 1007–1014,
    /// 3000–4999), `reason` up to 123 bytes.
    pub fn close(self, code: u16, reason: &str) -> Result<(), Error> {
        wit::close(self.0, code, reason)
    }

    /// The tags the socket was accepted with (`ctx.getTags(ws)`).
    pub fn tags(self) -> Result<Vec<String>, Error> {
        wit::tags(self.0)
    }

    /// Keeps `value` (as JSON, at most 2,048 bytes) with the socket; it survives hibernation
    /// (`ws.serializeAttachment`).
    pub fn set_attachment<T: Serialize + ?Sized>(self, value: &T) -> Result<(), crate::Error> {
        let bytes =
            serde_json::to_vec(value).map_err(|e| crate::Error::Serialization(e.to_string()))?;
        wit::set_attachment(self.0, &bytes)
            .map_err(|e| crate::Error::InvalidArgument(format!("{e:?}")))
    }

    /// The socket's attachment, if one was set (`ws.deserializeAttachment`).
    pub fn attachment<T: DeserializeOwned>(self) -> Result<Option<T>, crate::Error> {
        let bytes =
            wit::attachment(self.0).map_err(|e| crate::Error::InvalidArgument(format!("{e:?}")))?;
        if bytes.is_empty() {
            return Ok(None);
        }
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| crate::Error::Serialization(e.to_string()))
    }
}

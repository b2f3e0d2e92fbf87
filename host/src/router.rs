//! The router: how everything that must reach an object gets there — the gateway (RPC, `fetch`,
//! WebSocket upgrades), a WebSocket's connection task (its frames), the alarm dispatcher (a due
//! alarm) and an object calling another (a stub call, `stub.fetch`).
//!
//! `Router` is a small trait that sits low, so none of those imports the concrete directory
//! (arrows point down). On one host the [`crate::directory::Directory`] implements it: the
//! object's actor on this host, activated on first use. A cluster implements it by forwarding to
//! the object's owner.
//!
//! What every implementation guarantees: an event reaches at most one live instance of its
//! object; a reply is released only after the writes it depends on are committed (output gate);
//! a call whose chain already holds its target fails at once (`CallCycle`) instead of
//! deadlocking.

use bytes::Bytes;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use wasmtime::component::Val;
use wasmtime::component::types::Type;

use crate::bindings::http_types::{Request, Response};
use crate::error::ObjectError;
use crate::ids::{ObjectId, ObjectKey};
use crate::websockets::{Accepted, SocketEvent, SocketId};

/// How a caller addresses an object.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Address {
    /// By name (`id-from-name`); the object learns its name.
    Name(String),
    /// By an id rendered as hex.
    Id(String),
}

/// What `fetch` answered, and the WebSocket it accepted, if any (switched to once the reply is
/// released, after the commit).
pub(crate) struct Fetched {
    pub(crate) response: Response,
    pub(crate) accepted: Option<Accepted>,
}

/// One method of a stub interface, as linked: the bound class and method it calls, and the types
/// the stub promises (its parameters after the stub itself, the `ok` of its result), worked out
/// once at link time. The callee checks them against the method it actually runs, on every
/// call: the bound class may have been redeployed with another signature.
pub(crate) struct StubMethod {
    pub(crate) class: String,
    pub(crate) method: String,
    pub(crate) params: Vec<Type>,
    pub(crate) result: Option<Type>,
}

/// The objects waiting, in order, for the call that delivers an event (empty for events from
/// outside the host).
pub(crate) type Chain = Arc<Vec<ObjectKey>>;

/// A routed event's reply, once the object has answered and its writes are committed.
pub(crate) type Routed<T> = Pin<Box<dyn Future<Output = Result<T, ObjectError>> + Send>>;

/// What a dynamic call gives its caller: the encoded value the method returned, or what it threw.
pub(crate) type Dynamic = Result<Vec<u8>, crate::bindings::dynamic_api::Thrown>;

/// Reaches objects. Each method queues one event for its object (activating it if needed) and
/// returns at once; the returned future resolves to the object's reply.
pub(crate) trait Router: Send + Sync {
    /// The object `address` names in `class`, and its name if addressed by one. Fails with
    /// `UnknownClass` or `InvalidName` (an id not minted for the class).
    fn resolve(
        &self,
        class: &str,
        address: &Address,
    ) -> Result<(ObjectKey, Option<String>), ObjectError>;

    /// A fresh random id in `class` (`newUniqueId`); no object exists until it is used.
    fn new_unique_id(&self, class: &str) -> Result<ObjectId, ObjectError>;

    /// The id `name` addresses in `class` (`idFromName`).
    fn id_from_name(&self, class: &str, name: &str) -> Result<ObjectId, ObjectError> {
        Ok(self.resolve(class, &Address::Name(name.to_owned()))?.0.id)
    }

    /// Checks that `hex` is an id minted for `class` (`idFromString`).
    fn id_from_string(&self, class: &str, hex: &str) -> Result<ObjectId, ObjectError> {
        Ok(self.resolve(class, &Address::Id(hex.to_owned()))?.0.id)
    }

    /// Calls `method` on an object with JSON arguments, the text of a JSON array (decoded by the
    /// object against the method's types, so it crosses as it came); the reply is the JSON
    /// result. `chain`: the objects waiting on this call — empty from a client; in a cluster,
    /// those of another object's call forwarded from another host (a cycle fails at once).
    fn call(
        &self,
        class: &str,
        address: &Address,
        method: &str,
        args: Bytes,
        chain: Chain,
    ) -> Routed<serde_json::Value>;

    /// Delivers an HTTP request from outside the host to an object's `fetch`; with `upgrade` (a
    /// WebSocket upgrade request) the object may accept the socket, which comes back with the
    /// response. `chain` as for [`Router::call`].
    fn fetch(
        &self,
        class: &str,
        address: &Address,
        request: Request,
        upgrade: bool,
        chain: Chain,
    ) -> Routed<Fetched>;

    /// Calls a method on the object `key` (called `name`, if addressed by one) with component
    /// values, from another object: `stub` is the caller's stub method (which method, and the
    /// types it promises), `chain` the objects waiting on this call.
    fn invoke(
        &self,
        key: ObjectKey,
        name: Option<&str>,
        stub: Arc<StubMethod>,
        args: Vec<Val>,
        chain: Chain,
    ) -> Routed<Option<Val>>;

    /// Calls `method` by name on the object `key` (dynamic RPC, `dynamic.call`) with `args`, an
    /// encoded list of values, from another object, with the call `chain` as for
    /// [`Router::invoke`].
    fn call_dynamic(
        &self,
        key: ObjectKey,
        name: Option<&str>,
        method: String,
        args: Vec<u8>,
        chain: Chain,
    ) -> Routed<Dynamic>;

    /// Delivers an HTTP request to the `fetch` of the object `key` from another object
    /// (`stub.fetch`), with the call `chain` as for [`Router::invoke`].
    fn fetch_object(
        &self,
        key: ObjectKey,
        name: Option<&str>,
        request: Request,
        upgrade: bool,
        chain: Chain,
    ) -> Routed<Fetched>;

    /// Hands something that happened on one of an object's WebSockets to the object (waking it
    /// if it hibernates). The event comes back with the error when it could not be queued.
    fn deliver_websocket(
        &self,
        key: &ObjectKey,
        socket: SocketId,
        event: SocketEvent,
    ) -> Result<(), (ObjectError, SocketEvent)>;

    /// Hands a due alarm to its object (activating it if needed); `retry`: failures so far.
    fn deliver_alarm(&self, key: &ObjectKey, name: Option<&str>, retry: u32);

    /// Stops every live object of `class`, for a migration that deletes or renames it, waiting
    /// at most `wait`. The caller has made the class unreachable first.
    fn stop_class(&self, class: &str, wait: Duration) -> Routed<()>;
}

/// Refuses a call to `key` from an event whose call `chain` already holds it (A → B → A): the
/// waiting instance cannot be re-entered, and waiting for it would deadlock.
pub(crate) fn check_cycle(chain: &[ObjectKey], key: &ObjectKey) -> Result<(), ObjectError> {
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

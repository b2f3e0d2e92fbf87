//! [`ClusterRouter`]: the `Router` of a cluster host. Every event first finds its object's place
//! — this host (it owns the object, or claims it because nobody live does) or the live owner —
//! and then goes to this host's [`Directory`] or is forwarded (`forward.rs`).
//!
//! Taking an object over (`prepare`) drops whatever this host kept of it from an earlier tenure
//! (a live actor, a parked connection, a hibernation snapshot) and rebuilds its file from the
//! store's batches unless the file holds exactly them ([`protocol::must_rebuild`]).
//!
//! A forwarded event is never forwarded again: a host that does not own the object answers
//! `421 NotOwner`, and the sender looks the owner up afresh.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hyper::{Method, StatusCode};
use wasmtime::component::Val;
use wasmtime::component::types::Type;

use super::Cluster;
use super::forward::{Answer, CLIENT_AUTHORIZATION, Peers, THROWN, chain_header, failure, segment};
use super::protocol::{self, Incarnation, Next, Prepare, Route};
use crate::bindings::dynamic_api::Thrown;
use crate::bindings::http_types::{Request, Response};
use crate::directory::Directory;
use crate::error::ObjectError;
use crate::ids::{ObjectId, ObjectKey};
use crate::router::{Address, Chain, Dynamic, Fetched, Routed, Router, StubMethod, check_cycle};
use crate::rpc::json::{json_to_val, val_to_json};
use crate::runtime::Runtime;
use crate::websockets::{Accepted, SocketEvent, SocketId};

/// How often an event looks for its object's place before giving up (each miss is a race with
/// another host's claim or a stale view, corrected by one more lookup).
const PLACE_ATTEMPTS: usize = 4;
/// How long taking an object over waits for this host's previous actor of it to retire.
const RETIRE_WAIT: Duration = Duration::from_secs(5);

/// Where an event runs.
enum Place {
    Here,
    /// The owner's URL, and the owner.
    There(String, Incarnation),
}

/// What the two faces of the router share.
struct Shared {
    cluster: Arc<Cluster>,
    directory: Arc<Directory>,
    runtime: Arc<Runtime>,
    peers: Peers,
    /// Objects being looked up or claimed right now: events for them wait for the outcome.
    settling: Mutex<HashMap<ObjectKey, Arc<tokio::sync::Mutex<()>>>>,
}

/// The router of a cluster host. [`ClusterRouter::new`] gives the face for events from clients
/// and this host's objects; [`ClusterRouter::forwarded`] the face for events another host
/// forwarded here, which never forwards.
#[derive(Clone)]
pub(crate) struct ClusterRouter {
    shared: Arc<Shared>,
    forwards: bool,
}

impl ClusterRouter {
    pub(crate) fn new(
        cluster: Arc<Cluster>,
        directory: Arc<Directory>,
        runtime: Arc<Runtime>,
    ) -> ClusterRouter {
        let peers = Peers::new(cluster.token.clone());
        ClusterRouter {
            shared: Arc::new(Shared {
                cluster,
                directory,
                runtime,
                peers,
                settling: Mutex::new(HashMap::new()),
            }),
            forwards: true,
        }
    }

    /// Starts taking over the objects of dead hosts whose alarms come due.
    pub(crate) fn adopt_orphaned_alarms(&self) {
        tokio::spawn(Shared::adopt_orphaned_alarms(Arc::downgrade(&self.shared)));
    }

    /// The face for events another host forwarded here.
    pub(crate) fn forwarded(&self) -> ClusterRouter {
        ClusterRouter {
            shared: self.shared.clone(),
            forwards: false,
        }
    }
}

impl Shared {
    /// The object's name in the store: its database path under the data directory.
    fn store_name(&self, key: &ObjectKey) -> Arc<str> {
        let namespace = self.runtime.registry.namespace_name(&key.class);
        self.runtime.databases.name(&namespace, key.id)
    }

    /// Where the next event for `key` runs: here (owned, or claimed now) or at its live owner.
    async fn place(&self, key: &ObjectKey, forwards: bool) -> Result<Place, ObjectError> {
        if self
            .runtime
            .registry
            .entry_worker()
            .is_some_and(|worker| *worker.name == *key.class)
        {
            // the entry Worker keeps no state: every host runs its own instances
            return Ok(Place::Here);
        }
        for _ in 0..PLACE_ATTEMPTS {
            let settling = self
                .settling
                .lock()
                .expect("settling lock")
                .get(key)
                .cloned();
            if let Some(settling) = settling {
                drop(settling.lock().await);
            }
            let route = self.cluster.books.ownership().route(key);
            match route {
                Route::Local { .. } => return Ok(Place::Here),
                Route::Forward { owner } => match self.cluster.url_of(&owner) {
                    Some(_) if !forwards => {
                        return Err(ObjectError::NotOwner(format!(
                            "host {} does not own this object; host {} does",
                            self.cluster.me.host, owner.host
                        )));
                    }
                    Some(url) => return Ok(Place::There(url, owner)),
                    // a run this host has not heard of yet: read the hosts again
                    None => {
                        self.cluster
                            .refresh_hosts()
                            .await
                            .map_err(|e| ObjectError::ClusterUnavailable(e.to_string()))?;
                        if self.cluster.url_of(&owner).is_none() {
                            self.cluster.forget(key);
                        }
                    }
                },
                Route::Unknown => self.settle(key).await?,
            }
        }
        Err(ObjectError::ClusterUnavailable(
            "the object's owner kept changing while this host looked it up; retry".into(),
        ))
    }

    /// Looks `key` up in the store and claims it if nobody live owns it; one at a time per
    /// object.
    async fn settle(&self, key: &ObjectKey) -> Result<(), ObjectError> {
        let lock = {
            let mut settling = self.settling.lock().expect("settling lock");
            settling.entry(key.clone()).or_default().clone()
        };
        let guard = lock.lock().await;
        let outcome = self.settle_now(key).await;
        drop(guard);
        let mut settling = self.settling.lock().expect("settling lock");
        if settling
            .get(key)
            .is_some_and(|l| Arc::ptr_eq(l, &lock) && Arc::strong_count(l) == 2)
        {
            settling.remove(key);
        }
        outcome
    }

    async fn settle_now(&self, key: &ObjectKey) -> Result<(), ObjectError> {
        let cluster = &self.cluster;
        if !matches!(cluster.books.ownership().route(key), Route::Unknown) {
            return Ok(()); // settled while this event waited
        }
        let name = self.store_name(key);
        let unavailable =
            |e: super::store::StoreError| ObjectError::ClusterUnavailable(e.to_string());
        let found = cluster
            .store
            .lookup(&name, cluster.lease)
            .await
            .map_err(unavailable)?;
        let mut next = cluster.books.ownership().looked_up(key, found);
        for _ in 0..2 {
            let Next::Claim { .. } = next else { break };
            let claimed = cluster
                .store
                .claim(&name, &key.class, &cluster.me, cluster.lease)
                .await
                .map_err(unavailable)?;
            next = cluster.books.ownership().claimed(key, claimed);
        }
        match next {
            Next::Local { epoch, prepare } => {
                if let Err(e) = self.prepare(key, &name, &prepare).await {
                    cluster.forget(key);
                    return Err(e);
                }
                cluster.books.names().insert(name, key.clone());
                if prepare.previous.as_ref() != Some(&cluster.me) {
                    let claims = &cluster.metrics.cluster_claims;
                    claims.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
                tracing::info!(target: "wasmdo.cluster", class = &*key.class, id = %key.id, epoch, "owning");
                Ok(())
            }
            Next::Forward { .. } => Ok(()),
            Next::Claim { .. } => {
                cluster.forget(key);
                Err(ObjectError::ClusterUnavailable(
                    "the object's owner kept changing while this host claimed it; retry".into(),
                ))
            }
        }
    }

    /// Makes this host ready to serve `key` after (re)claiming it: nothing kept from before, and
    /// a file that holds exactly the store's batches.
    async fn prepare(
        &self,
        key: &ObjectKey,
        name: &Arc<str>,
        prepare: &Prepare,
    ) -> Result<(), ObjectError> {
        let deadline = Instant::now() + RETIRE_WAIT;
        while self.directory.is_live(key) {
            self.directory.evict(key);
            if Instant::now() >= deadline {
                return Err(ObjectError::Overloaded(
                    "this host's previous actor of the object is still busy; retry".into(),
                ));
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        self.runtime.databases.close(key);
        drop(self.runtime.snapshots.take(key));
        let path = self.runtime.data.join(&**name);
        let local = {
            let path = path.clone();
            tokio::task::spawn_blocking(move || crate::storage::journal::file_batch(&path))
                .await
                .map_err(|e| ObjectError::internal_from("reading the object file", e))?
        };
        let local = match local {
            Ok(seq) => seq.map(|s| s as i64),
            // unreadable: rebuilt below
            Err(_) => Some(-1),
        };
        let me = &self.cluster.me;
        if protocol::must_rebuild(me, prepare.previous.as_ref(), local, prepare.seq) {
            self.rebuild(key, name, prepare, local).await?;
        }
        // the object's alarm fires here now (it may have been set on another host)
        let alarm =
            tokio::task::spawn_blocking(move || crate::storage::sqlite::stored_alarm(&path))
                .await
                .map_err(|e| ObjectError::internal_from("reading the object's alarm", e))?
                .map_err(|e| ObjectError::internal(format!("reading the object's alarm: {e}")))?;
        let schedule = &self.runtime.schedule;
        let scheduled = match alarm {
            Some(at) => schedule.set(key, None, at, 0),
            None => schedule.remove(key),
        };
        scheduled.map_err(|e| ObjectError::internal(format!("scheduling the object's alarm: {e}")))
    }

    /// Makes the object's file again from the store's image of it.
    async fn rebuild(
        &self,
        key: &ObjectKey,
        name: &Arc<str>,
        prepare: &Prepare,
        local: Option<i64>,
    ) -> Result<(), ObjectError> {
        let data = self.runtime.data.clone();
        let image = self
            .cluster
            .store
            .image(name)
            .await
            .map_err(|e| ObjectError::ClusterUnavailable(e.to_string()))?;
        let last = image.as_ref().map_or(0, |image| image.seq as i64);
        let pages = image.as_ref().map_or(0, |image| image.pages.len());
        if last < prepare.seq {
            return Err(ObjectError::internal(format!(
                "the cluster store holds batches up to {last} of an object at batch {}",
                prepare.seq
            )));
        }
        let object = name.clone();
        let rebuilt = tokio::task::spawn_blocking(move || {
            crate::storage::journal::rebuild(&data, &object, image.as_ref())
        })
        .await
        .map_err(|e| ObjectError::internal_from("rebuilding the object file", e))?;
        rebuilt.map_err(|e| ObjectError::internal(format!("rebuilding the object file: {e}")))?;
        tracing::info!(target: "wasmdo.cluster", class = &*key.class, id = %key.id,
            local = ?local, batch = last, pages, "rebuilt the object from the cluster store");
        let rebuilds = &self.runtime.metrics.cluster_rebuilds;
        rebuilds.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }

    /// Claims, every half lease, the objects whose alarm is due and whose owner is dead: taking
    /// one over schedules its alarm here (`prepare`). Stops when the router is dropped.
    async fn adopt_orphaned_alarms(shared: std::sync::Weak<Shared>) {
        loop {
            let Some(me) = shared.upgrade() else { return };
            let every = me.cluster.lease / 2;
            let by = crate::clock::now_ms() + every.as_millis() as i64;
            match me
                .cluster
                .store
                .orphaned_alarms(by, me.cluster.lease, 64)
                .await
            {
                Ok(orphans) => {
                    for (class, object) in orphans {
                        let id = std::path::Path::new(&object)
                            .file_stem()
                            .and_then(|stem| stem.to_str())
                            .and_then(ObjectId::from_hex);
                        let Some(id) = id else { continue };
                        if me.runtime.registry.get(&class).is_none() {
                            continue;
                        }
                        let key = ObjectKey::new(&class, id);
                        if let Err(e) = me.place(&key, true).await {
                            tracing::warn!(target: "wasmdo.cluster", class, id = %id, "cannot take over an object with a due alarm: {e}");
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!(target: "wasmdo.cluster", "looking for orphaned alarms: {e}")
                }
            }
            drop(me);
            tokio::time::sleep(every).await;
        }
    }

    /// Waits for `forwarded`, an event forwarded to `owner`, unless the owner is declared dead
    /// first (it may have died, or stopped, holding the event): then the event's outcome is
    /// unknown, and the caller gets `ClusterUnavailable` to retry.
    async fn watching<T>(
        &self,
        owner: &Incarnation,
        forwarded: impl Future<Output = Result<T, ObjectError>>,
    ) -> Result<T, ObjectError> {
        let died = async {
            loop {
                tokio::time::sleep(self.cluster.lease / 3).await;
                if !self.cluster.is_alive(owner) {
                    return;
                }
            }
        };
        tokio::select! {
            outcome = forwarded => outcome,
            () = died => Err(ObjectError::ClusterUnavailable(format!(
                "host {} died (or stopped answering its lease) while it held this event; whether it ran is unknown: retry",
                owner.host
            ))),
        }
    }

    /// Forwards a WebSocket upgrade to the owner at `url`: its answer, and with a `101` the tunnel
    /// the client's connection is piped through; `None` if that host no longer owns `key`.
    async fn tunnel(
        &self,
        key: &ObjectKey,
        url: &str,
        path: &str,
        headers: &[(String, String)],
    ) -> Result<Option<Fetched>, ObjectError> {
        // the upgrade's own headers go along (they are hop-by-hop for anything else)
        let headers = forwarded_headers(headers, |name| {
            !hop_by_hop(name)
                || name.eq_ignore_ascii_case("upgrade")
                || name.eq_ignore_ascii_case("connection")
        });
        let forwarded = &self.runtime.metrics.cluster_forwarded;
        forwarded.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        match self.peers.upgrade(url, path, &headers).await {
            Ok((
                Answer::Answered {
                    status,
                    headers,
                    body,
                },
                tunnel,
            )) => Ok(Some(Fetched {
                response: response_of(status, &headers, body),
                accepted: tunnel.map(Accepted::Tunnel),
            })),
            Ok((Answer::NotOwner, _)) => {
                self.cluster.forget(key);
                Ok(None)
            }
            Ok((Answer::Unreachable(why), _)) => self.unreachable(key, url, why).await,
            Err(e) => {
                self.cluster.forget(key);
                Err(e)
            }
        }
    }

    /// The owner at `url` of `key` could not be connected to, so the event was not sent: if
    /// the store says that host is gone (it left, or its lease ran out), `None` (the object is
    /// looked up again, and claimed); otherwise `why`.
    async fn unreachable<T>(
        &self,
        key: &ObjectKey,
        url: &str,
        why: ObjectError,
    ) -> Result<Option<T>, ObjectError> {
        self.cluster.forget(key);
        self.cluster
            .refresh_hosts()
            .await
            .map_err(|e| ObjectError::ClusterUnavailable(e.to_string()))?;
        match self.cluster.alive_at(url) {
            true => Err(why),
            false => Ok(None),
        }
    }

    /// Sends a forwarded event to `url`; `None` if that host no longer owns `key` (it is
    /// forgotten, to be looked up again).
    async fn send(
        &self,
        key: &ObjectKey,
        url: &str,
        method: Method,
        path: &str,
        headers: &[(String, String)],
        body: Bytes,
    ) -> Result<Option<(StatusCode, hyper::HeaderMap, Bytes)>, ObjectError> {
        let forwarded = &self.runtime.metrics.cluster_forwarded;
        forwarded.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let answer = self.peers.send(url, method, path, headers, body).await;
        match answer {
            Ok(Answer::Answered {
                status,
                headers,
                body,
            }) => Ok(Some((status, headers, body))),
            Ok(Answer::NotOwner) => {
                self.cluster.forget(key);
                Ok(None)
            }
            Ok(Answer::Unreachable(why)) => self.unreachable(key, url, why).await,
            Err(e) => {
                // the owner may have died: look it up again next time
                self.cluster.forget(key);
                Err(e)
            }
        }
    }
}

/// `/{route}/{class}/{object}` on the owner host: the object by its name (`name`), or as
/// `id:<hex>`.
fn object_path(route: &str, key: &ObjectKey, name: Option<&str>) -> String {
    let object = match name {
        Some(name) => segment(name),
        None => format!("id:{}", key.id.to_hex()),
    };
    format!("/{route}/{}/{object}", segment(&key.class))
}

/// Headers that describe one connection, not the request: never forwarded.
fn hop_by_hop(name: &str) -> bool {
    [
        "connection",
        "keep-alive",
        "transfer-encoding",
        "content-length",
        "upgrade",
        "te",
        "trailer",
        "proxy-connection",
        "authorization",
    ]
    .iter()
    .any(|h| name.eq_ignore_ascii_case(h))
}

/// The headers of a request forwarded to the owner: those `keep` keeps, and the client's
/// `Authorization` under [`CLIENT_AUTHORIZATION`] (the forwarding host sends its own).
fn forwarded_headers(
    headers: &[(String, String)],
    keep: impl Fn(&str) -> bool,
) -> Vec<(String, String)> {
    headers
        .iter()
        .filter_map(|(name, value)| match name {
            _ if name.eq_ignore_ascii_case("authorization") => {
                Some((CLIENT_AUTHORIZATION.to_owned(), value.clone()))
            }
            _ if keep(name) => Some((name.clone(), value.clone())),
            _ => None,
        })
        .collect()
}

/// The response the owner answered a forwarded `fetch` with.
fn response_of(status: StatusCode, headers: &hyper::HeaderMap, body: Bytes) -> Response {
    Response {
        status: status.as_u16(),
        headers: headers
            .iter()
            .filter(|(name, _)| !hop_by_hop(name.as_str()))
            .map(|(name, value)| {
                (
                    name.as_str().to_owned(),
                    String::from_utf8_lossy(value.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body: body.to_vec(),
    }
}

/// The value a forwarded stub call's JSON answer stands for, as the stub's `result` type.
fn answer_val(
    result: Option<&Type>,
    status: StatusCode,
    body: &[u8],
) -> Result<Option<Val>, ObjectError> {
    let decode = |ty: &Type, body: &[u8]| -> Result<Val, ObjectError> {
        let json: serde_json::Value = serde_json::from_slice(body)
            .map_err(|e| ObjectError::internal(format!("the owner host answered bad JSON: {e}")))?;
        json_to_val(ty, &json)
            .map_err(|e| ObjectError::internal(format!("the owner host's answer: {e}")))
    };
    if status.is_success() {
        return match result {
            None => Ok(None),
            Some(Type::Result(r)) => {
                let ok = r.ok().map(|ty| decode(&ty, body)).transpose()?;
                Ok(Some(Val::Result(Ok(ok.map(Box::new)))))
            }
            Some(ty) => decode(ty, body).map(Some),
        };
    }
    match (failure(status, body), result) {
        (ObjectError::MethodError(value), Some(Type::Result(r))) => {
            let err = match r.err() {
                Some(ty) => Some(Box::new(json_to_val(&ty, &value).map_err(|e| {
                    ObjectError::internal(format!("the owner host's error value: {e}"))
                })?)),
                None => None,
            };
            Ok(Some(Val::Result(Err(err))))
        }
        (e, _) => Err(e),
    }
}

/// Runs `$here` (a future of the local outcome) if this host is the object's place, or `$there`
/// (a future of `Some(answer)`, or `None` when the host turned out not to own it) with the
/// owner's URL bound to `$url`; again, after a fresh lookup, when the owner or this host turns
/// out not to own the object. A macro rather than a function taking closures: the futures stay
/// inline, where the compiler can see they are `Send`.
macro_rules! dispatch {
    ($router:expr, $key:expr, $here:expr, |$url:ident| $there:expr) => {{
        let router: &ClusterRouter = $router;
        let shared = &router.shared;
        let mut outcome = Err(ObjectError::ClusterUnavailable(
            "the object's owner kept changing; retry".into(),
        ));
        for _ in 0..PLACE_ATTEMPTS {
            match shared.place($key, router.forwards).await {
                Err(e) => {
                    outcome = Err(e);
                    break;
                }
                Ok(Place::Here) => match $here.await {
                    Err(ObjectError::NotOwner(_)) if router.forwards => shared.cluster.forget($key),
                    done => {
                        outcome = done;
                        break;
                    }
                },
                Ok(Place::There($url, owner)) => match shared.watching(&owner, $there).await {
                    Ok(Some(answer)) => {
                        outcome = Ok(answer);
                        break;
                    }
                    Ok(None) => {}
                    Err(e) => {
                        outcome = Err(e);
                        break;
                    }
                },
            }
        }
        outcome
    }};
}

impl Router for ClusterRouter {
    fn resolve(
        &self,
        class: &str,
        address: &Address,
    ) -> Result<(ObjectKey, Option<String>), ObjectError> {
        self.shared.directory.resolve(class, address)
    }

    fn new_unique_id(&self, class: &str) -> Result<ObjectId, ObjectError> {
        self.shared.directory.new_unique_id(class)
    }

    fn call(
        &self,
        class: &str,
        address: &Address,
        method: &str,
        args: Bytes,
        chain: Chain,
    ) -> Routed<serde_json::Value> {
        let me = self.clone();
        let (class, address, method) = (class.to_owned(), address.clone(), method.to_owned());
        Box::pin(async move {
            let (key, name) = me.resolve(&class, &address)?;
            check_cycle(&chain, &key)?;
            let headers = [chain_header(&chain)];
            let directory = me.shared.directory.clone();
            let path = format!(
                "{}/{}",
                object_path("rpc", &key, name.as_deref()),
                segment(&method)
            );
            dispatch!(
                &me,
                &key,
                Router::call(
                    &*directory,
                    &class,
                    &address,
                    &method,
                    args.clone(),
                    chain.clone()
                ),
                |url| async {
                    let answer = me
                        .shared
                        .send(&key, &url, Method::POST, &path, &headers, args.clone())
                        .await?;
                    match answer {
                        None => Ok(None),
                        Some((status, _, body)) if status.is_success() => {
                            serde_json::from_slice(&body).map(Some).map_err(|e| {
                                ObjectError::internal(format!(
                                    "the owner host answered bad JSON: {e}"
                                ))
                            })
                        }
                        Some((status, _, body)) => Err(failure(status, &body)),
                    }
                }
            )
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
        let me = self.clone();
        let (class, address) = (class.to_owned(), address.clone());
        Box::pin(async move {
            let (key, name) = me.resolve(&class, &address)?;
            me.fetch_key(key, name, request, upgrade, chain).await
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
        let me = self.clone();
        let name = name.map(str::to_owned);
        Box::pin(async move {
            check_cycle(&chain, &key)?;
            let headers = [chain_header(&chain)];
            let directory = me.shared.directory.clone();
            let path = format!(
                "{}/{}",
                object_path("rpc", &key, name.as_deref()),
                segment(&stub.method)
            );
            let json: Vec<serde_json::Value> = (stub.params.iter().zip(&args))
                .map(|(ty, val)| val_to_json(ty, val))
                .collect();
            let body = Bytes::from(serde_json::to_vec(&json).expect("JSON values print"));
            dispatch!(
                &me,
                &key,
                directory.invoke(
                    key.clone(),
                    name.as_deref(),
                    stub.clone(),
                    args.clone(),
                    chain.clone(),
                ),
                |url| async {
                    let answer = me
                        .shared
                        .send(&key, &url, Method::POST, &path, &headers, body.clone())
                        .await?;
                    match answer {
                        None => Ok(None),
                        Some((status, _, body)) => {
                            answer_val(stub.result.as_ref(), status, &body).map(Some)
                        }
                    }
                }
            )
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
        let me = self.clone();
        let name = name.map(str::to_owned);
        Box::pin(async move {
            check_cycle(&chain, &key)?;
            let headers = [chain_header(&chain)];
            let directory = me.shared.directory.clone();
            let path = format!(
                "{}/{}",
                object_path("_cluster/dynamic", &key, name.as_deref()),
                segment(&method)
            );
            let body = Bytes::from(args.clone());
            dispatch!(
                &me,
                &key,
                directory.call_dynamic(
                    key.clone(),
                    name.as_deref(),
                    method.clone(),
                    args.clone(),
                    chain.clone(),
                ),
                |url| async {
                    let answer = me
                        .shared
                        .send(&key, &url, Method::POST, &path, &headers, body.clone())
                        .await?;
                    match answer {
                        None => Ok(None),
                        Some((status, headers, body))
                            if status.is_success() && headers.contains_key(THROWN) =>
                        {
                            let thrown: serde_json::Value =
                                serde_json::from_slice(&body).map_err(|e| {
                                    ObjectError::internal(format!("bad thrown value: {e}"))
                                })?;
                            let text =
                                |field: &str| thrown[field].as_str().unwrap_or_default().to_owned();
                            Ok(Some(Err(Thrown {
                                name: text("name"),
                                message: text("message"),
                            })))
                        }
                        Some((status, _, body)) if status.is_success() => {
                            Ok(Some(Ok(body.to_vec())))
                        }
                        Some((status, _, body)) => Err(failure(status, &body)),
                    }
                }
            )
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
        let me = self.clone();
        let name = name.map(str::to_owned);
        Box::pin(async move { me.fetch_key(key, name, request, upgrade, chain).await })
    }

    /// A socket lives on the host that accepted it, which owns its object.
    fn deliver_websocket(
        &self,
        key: &ObjectKey,
        socket: SocketId,
        event: SocketEvent,
    ) -> Result<(), (ObjectError, SocketEvent)> {
        self.shared.directory.deliver_websocket(key, socket, event)
    }

    /// Alarms fire where the object's schedule is: the host that owns it.
    fn deliver_alarm(&self, key: &ObjectKey, name: Option<&str>, retry: u32) {
        let me = self.clone();
        let (key, name) = (key.clone(), name.map(str::to_owned));
        tokio::spawn(async move {
            match me.shared.place(&key, false).await {
                Ok(Place::Here) => me
                    .shared
                    .directory
                    .deliver_alarm(&key, name.as_deref(), retry),
                Ok(Place::There(..)) | Err(_) => {
                    tracing::info!(target: "wasmdo.alarms", class = &*key.class, id = %key.id,
                        "not firing the alarm of an object this host does not own");
                }
            }
        });
    }

    fn stop_class(&self, class: &str, wait: Duration) -> Routed<()> {
        self.shared.directory.stop_class(class, wait)
    }
}

impl ClusterRouter {
    async fn fetch_key(
        &self,
        key: ObjectKey,
        name: Option<String>,
        request: Request,
        upgrade: bool,
        chain: Chain,
    ) -> Result<Fetched, ObjectError> {
        let directory = self.shared.directory.clone();
        let mut path = format!(
            "{}{}",
            object_path("objects", &key, name.as_deref()),
            request.path
        );
        if !request.query.is_empty() {
            path = format!("{path}?{}", request.query);
        }
        check_cycle(&chain, &key)?;
        let mut headers = forwarded_headers(&request.headers, |name| !hop_by_hop(name));
        headers.push(chain_header(&chain));
        let method = Method::from_bytes(request.method.as_bytes())
            .map_err(|_| ObjectError::InvalidRequest(format!("bad method `{}`", request.method)))?;
        let body = Bytes::from(request.body.clone());
        dispatch!(
            self,
            &key,
            directory.fetch_object(
                key.clone(),
                name.as_deref(),
                request.clone(),
                upgrade,
                chain.clone(),
            ),
            |url| async {
                if upgrade {
                    return self
                        .shared
                        .tunnel(&key, &url, &path, &request.headers)
                        .await;
                }
                let answer = self
                    .shared
                    .send(&key, &url, method.clone(), &path, &headers, body.clone())
                    .await?;
                Ok(answer.map(|(status, headers, body)| Fetched {
                    response: response_of(status, &headers, body),
                    accepted: None,
                }))
            }
        )
    }
}

//! The HTTP gateway: the hyper listeners of the two planes, the routes of the user-facing
//! contract, and nothing else. It bounds connections and requests (caps, timeouts, the body
//! budget), checks credentials, hands requests to the [`Router`] (objects) or the [`Registry`]
//! (classes), and turns every outcome into a response (errors through `errors`, one status per
//! kind). `auth.rs`: the control plane's tokens; `connections.rs`: connection caps;
//! `admin.rs`: `/_admin/…`; `objects.rs`: RPC and `fetch`; `websocket.rs`: one task per
//! WebSocket connection; `workers.rs`: the entry Worker's instances.
//!
//! The control plane (`listen`) serves every route below, with the scopes of `auth.rs`; the
//! public plane (`public-listen`) sends every request to the entry Worker.
//!
//! | route | what |
//! |---|---|
//! | `PUT /_admin/classes/{class}` | deploy a component (body) as `class` |
//! | `GET /_admin/classes`, `GET /_admin/classes/{class}` | describe classes |
//! | `GET /_admin/classes/{class}/wit` | the class's exported interfaces as WIT |
//! | `PUT /_admin/components` | store a component (body) by content hash, for project deploys |
//! | `GET /_admin/components`, `DELETE /_admin/components/{hash}` | stored components; delete an unused one |
//! | `PUT /_admin/projects/{name}` | deploy a project: its manifest (JSON) — migrations, classes, entry |
//! | `GET /_admin/projects`, `GET /_admin/projects/{name}` | deployed projects |
//! | `GET /_admin/health`, `GET /_admin/metrics` | liveness, Prometheus metrics |
//! | `GET /_admin/classes/{class}/id-from-name/{name}`, `POST …/new-unique-id`, `GET …/id-from-string/{id}` | object ids, as Cloudflare's namespace methods |
//! | `GET /_admin/cluster` | cluster mode: this host, the hosts, their health and objects |
//! | `GET /_admin/cluster/objects/{class}/{name}` | cluster mode: the host that owns an object, its epoch and batches |
//! | `POST /_cluster/dynamic/{class}/{name}/{method}` | cluster mode: a call by name another host forwarded (admin scope) |
//! | `POST /rpc/{class}/{name}/{method}` | typed RPC, JSON array of arguments |
//! | `ANY /objects/{class}/{name}/{path…}` | the object's `fetch` |
//! | anything else | the entry Worker's `fetch`, if one is deployed (404 otherwise) |

mod admin;
mod auth;
mod connections;
mod errors;
mod framing;
mod objects;
mod replicate;
mod websocket;
mod workers;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::directory::Directory;
use crate::error::ObjectError;
use crate::limits::MAX_OBJECT_NAME_BYTES;
use crate::router::{Address, Router};
use crate::runtime::Runtime;
pub(crate) use auth::Credentials;
use auth::Scope;
use connections::AcceptErrors;
pub(crate) use connections::Connections;
pub(crate) use errors::{error_response, json_response};
pub(crate) use replicate::Replication;
pub(crate) use workers::WorkerPool;

/// Shared by every connection of both listeners.
pub(crate) struct Gateway {
    /// What objects run with: the class registry among it.
    pub(crate) runtime: Arc<Runtime>,
    /// How requests reach objects.
    pub(crate) router: Arc<dyn Router>,
    /// How requests another host of the cluster forwarded reach objects (never forwarded
    /// again); the same as `router` on a single host.
    pub(crate) forwarded: Arc<dyn Router>,
    /// This host's cluster, if it is in one (`/_admin/cluster`).
    pub(crate) cluster: Option<Arc<crate::cluster::Cluster>>,
    /// In a cluster: this host's place in the deploy log.
    pub(crate) replication: Option<replicate::Replication>,
    /// This host's live objects (for `health` and `metrics` only).
    pub(crate) directory: Arc<Directory>,
    /// The entry Worker's instances.
    pub(crate) workers: Arc<WorkerPool>,
    /// Project deploys.
    pub(crate) projects: Arc<crate::projects::Projects>,
    /// Who may use the control plane.
    pub(crate) credentials: Credentials,
    /// Bytes of request bodies buffered host-wide: one permit per byte held.
    pub(crate) bodies: Arc<Semaphore>,
    /// Set when the host shuts down: connections finish the request they are serving and
    /// close; WebSocket tunnels close their client's socket.
    pub(crate) stopping: tokio::sync::watch::Sender<bool>,
}

/// What a listener serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Plane {
    /// `/_admin`, `/rpc`, `/objects` (behind the tokens), and the entry Worker for the rest.
    Control,
    /// The entry Worker only, for every path: objects are reachable only through it.
    Public,
}

/// Accepts connections until the listener fails.
pub(crate) async fn serve(
    listener: TcpListener,
    gateway: Arc<Gateway>,
    plane: Plane,
    connections: Arc<Connections>,
) {
    let header_timeout = Duration::from_millis(gateway.runtime.limits.header_read_timeout_ms);
    let mut accept_errors = AcceptErrors::new();
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(conn) => conn,
            Err(e) => {
                // e.g. out of file descriptors: back off instead of spinning
                accept_errors.failed(&e);
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let admitted = match connections.admit(peer.ip()) {
            Ok(admitted) => Arc::new(admitted),
            Err(why) => {
                let refused = &gateway.runtime.metrics.connections_refused;
                refused.fetch_add(1, Ordering::Relaxed);
                tokio::spawn(connections::refuse(stream, why));
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let gateway = gateway.clone();
        let metrics = gateway.runtime.metrics.clone();
        let mut stopping = gateway.stopping.subscribe();
        tokio::spawn(async move {
            let connection = admitted.clone();
            let verdicts = framing::Verdicts::default();
            let stream = framing::FramingWatch::new(stream, verdicts.clone());
            let service = service_fn(move |mut req: Request<Incoming>| {
                let gateway = gateway.clone();
                let both_lengths = verdicts.next();
                // an upgraded WebSocket keeps the connection's slot
                req.extensions_mut().insert(connection.clone());
                async move {
                    let response = match both_lengths {
                        true => gateway.refuse(&ObjectError::InvalidRequest(
                            "the request has both Content-Length and Transfer-Encoding (RFC 9112 §6.1: a proxy in front may have read its body the other way): send one".into(),
                        )),
                        false => gateway.handle(req, peer, plane).await,
                    };
                    Ok::<_, Infallible>(response)
                }
            });
            let served = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(header_timeout)
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), service)
                // WebSocket upgrades of `/objects/…` requests
                .with_upgrades();
            tokio::pin!(served);
            let outcome = tokio::select! {
                outcome = served.as_mut() => outcome,
                () = stopped(&mut stopping) => {
                    // the request being served is answered, then the connection closes
                    served.as_mut().graceful_shutdown();
                    served.await
                }
            };
            if let Err(e) = outcome {
                if e.is_timeout() {
                    let timeouts = &metrics.request_timeouts;
                    timeouts.fetch_add(1, Ordering::Relaxed);
                }
                tracing::debug!(target: "wasmdo.gateway", "connection from {peer}: {e}");
            }
            drop(admitted);
        });
    }
}

/// Returns once the host is shutting down (see [`Gateway::stopping`]).
pub(crate) async fn stopped(stopping: &mut tokio::sync::watch::Receiver<bool>) {
    // (the value's guard must not be held across an await: it is not `Send`)
    let _ = stopping.wait_for(|stopping| *stopping).await;
}

/// The `Sec-WebSocket-Key` of a WebSocket upgrade request (RFC 6455: GET, `Upgrade: websocket`,
/// `Connection: upgrade`, version 13), or `None` for any other request.
fn websocket_key(req: &Request<Incoming>) -> Option<String> {
    let headers = req.headers();
    let has = |name: hyper::header::HeaderName, token: &str| {
        headers.get_all(name).iter().any(|v| {
            v.to_str()
                .is_ok_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
        })
    };
    let upgrade = req.method() == Method::GET
        && has(hyper::header::UPGRADE, "websocket")
        && has(hyper::header::CONNECTION, "upgrade")
        && headers
            .get(hyper::header::SEC_WEBSOCKET_VERSION)
            .is_some_and(|v| v == "13");
    upgrade
        .then(|| headers.get(hyper::header::SEC_WEBSOCKET_KEY)?.to_str().ok())
        .flatten()
        .map(str::to_owned)
}

/// Percent-decodes one path segment.
fn decode(segment: &str) -> Result<String, ObjectError> {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| {
                    ObjectError::InvalidName(format!("bad percent-encoding in `{segment}`"))
                })?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out)
        .map_err(|_| ObjectError::InvalidName(format!("`{segment}` is not UTF-8")))
}

/// An object path segment: `id:<64 hex>` addresses the object with that id (checked against the
/// class's namespace by the router); anything else is a name (`id-from-name`).
fn object_name(segment: &str) -> Result<Address, ObjectError> {
    let name = decode(segment)?;
    if let Some(id) = name.strip_prefix(ID_PREFIX) {
        return Ok(Address::Id(id.to_owned()));
    }
    if name.is_empty() {
        return Err(ObjectError::InvalidName("the object name is empty".into()));
    }
    if name.len() > MAX_OBJECT_NAME_BYTES {
        return Err(ObjectError::InvalidName(format!(
            "the object name is {} bytes; the limit is {MAX_OBJECT_NAME_BYTES}",
            name.len()
        )));
    }
    Ok(Address::Name(name))
}

/// Marks an object path segment as an id rather than a name.
const ID_PREFIX: &str = "id:";

/// How much of an oversize body the gateway reads and discards before answering 413. Clients
/// commonly send the whole body before reading the reply; answering and closing mid-upload makes
/// them see a broken pipe instead of the JSON error. Past this, the connection is closed.
const MAX_DISCARDED_BODY: u64 = 64 * 1024 * 1024;

/// A request body held in memory, and its share of the host-wide body budget (given back
/// when the request is done with it).
pub(crate) struct Body {
    bytes: Bytes,
    _budget: Option<OwnedSemaphorePermit>,
}

impl Body {
    /// The body's bytes, shared (the budget stays with `self`: keep it until they are done).
    pub(crate) fn bytes(&self) -> Bytes {
        self.bytes.clone()
    }
}

impl std::ops::Deref for Body {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.bytes
    }
}

/// How long a shutting-down host waits for its connections to finish what they are doing.
const DRAIN: Duration = Duration::from_secs(5);

impl Gateway {
    /// Shuts the host down once its listeners stopped accepting: connections answer the request
    /// they are serving and close, every WebSocket is closed with 1001 (a tunnel's client too),
    /// waiting up to [`DRAIN`] for the connections of every plane in `planes` to end. A cluster
    /// host leaves the cluster first, so that the other hosts, which can no longer reach it,
    /// take its objects over meanwhile, and gives them up once drained.
    pub(crate) async fn shut_down(&self, planes: &[Arc<Connections>]) {
        let _ = self.stopping.send(true);
        let sockets = self
            .runtime
            .websockets
            .close_all(websocket::CLOSE_GOING_AWAY, websocket::GOING_AWAY_REASON);
        if let Some(cluster) = &self.cluster {
            cluster.leave().await;
        }
        let open = || planes.iter().map(|p| p.open()).sum::<usize>();
        let deadline = tokio::time::Instant::now() + DRAIN;
        while open() > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        tracing::info!(target: "wasmdo.gateway", sockets, connections_cut = open(), "shutting down");
        if let Some(cluster) = &self.cluster {
            cluster.give_up();
        }
    }

    /// Reads a whole request body of at most `limit` bytes, within the body-read timeout and the
    /// host-wide budget of buffered bodies. An oversize body is drained (up to
    /// [`MAX_DISCARDED_BODY`]) so the client gets its `BodyTooLarge` reply.
    async fn read_body(&self, mut body: Incoming, limit: u64) -> Result<Body, ObjectError> {
        let timeout = Duration::from_millis(self.runtime.limits.body_read_timeout_ms);
        let read = async {
            let mut buffer = bytes::BytesMut::new();
            let mut budget: Option<OwnedSemaphorePermit> = None;
            let mut seen: u64 = 0;
            while let Some(frame) = body.frame().await {
                let frame = frame.map_err(|e| {
                    ObjectError::InvalidArgument(format!("could not read the request body: {e}"))
                })?;
                let Ok(data) = frame.into_data() else {
                    continue; // trailers
                };
                seen += data.len() as u64;
                if seen > limit {
                    if seen > limit.saturating_add(MAX_DISCARDED_BODY) {
                        return Err(ObjectError::BodyTooLarge(limit));
                    }
                    // keep draining, store nothing
                    buffer = bytes::BytesMut::new();
                    budget = None;
                    continue;
                }
                let share = self.take_budget(data.len() as u64, || {
                    format!(
                        "the host is buffering {} bytes of request bodies, its limit (max-buffered-body-bytes); retry later",
                        self.runtime.limits.max_buffered_body_bytes
                    )
                })?;
                match &mut budget {
                    Some(held) => held.merge(share),
                    None => budget = Some(share),
                }
                buffer.extend_from_slice(&data);
            }
            if seen > limit {
                return Err(ObjectError::BodyTooLarge(limit));
            }
            Ok(Body {
                bytes: buffer.freeze(),
                _budget: budget,
            })
        };
        tokio::time::timeout(timeout, read).await.map_err(|_| {
            ObjectError::RequestTimeout(format!(
                "the request body did not arrive within {} ms (body-read-timeout-ms)",
                timeout.as_millis()
            ))
        })?
    }

    /// Takes `bytes` of the host-wide budget for request bodies, until the permit is dropped;
    /// `Overloaded` with `refusal`'s message (and counted) when that much is not free now.
    fn take_budget(
        &self,
        bytes: u64,
        refusal: impl FnOnce() -> String,
    ) -> Result<OwnedSemaphorePermit, ObjectError> {
        u32::try_from(bytes)
            .ok()
            .and_then(|n| self.bodies.clone().try_acquire_many_owned(n).ok())
            .ok_or_else(|| {
                let refused = &self.runtime.metrics.bodies_refused;
                refused.fetch_add(1, Ordering::Relaxed);
                ObjectError::Overloaded(refusal())
            })
    }

    async fn handle(
        &self,
        req: Request<Incoming>,
        peer: SocketAddr,
        plane: Plane,
    ) -> Response<Full<Bytes>> {
        let result = match check_host(&req) {
            Ok(()) => self.route(req, peer, plane).await,
            Err(e) => Err(e),
        };
        match result {
            Ok(response) => response,
            Err(e) => self.refuse(&e),
        }
    }

    /// The JSON error response for `e`, counted, with the headers its kind calls for.
    fn refuse(&self, e: &ObjectError) -> Response<Full<Bytes>> {
        let metrics = &self.runtime.metrics;
        let counter = match e {
            ObjectError::Unauthorized(_) | ObjectError::Forbidden(_) => Some(&metrics.unauthorized),
            ObjectError::RequestTimeout(_) => Some(&metrics.request_timeouts),
            _ => None,
        };
        if let Some(counter) = counter {
            counter.fetch_add(1, Ordering::Relaxed);
        }
        let mut response = error_response(e);
        let headers = response.headers_mut();
        if matches!(
            e,
            ObjectError::BodyTooLarge(_)
                | ObjectError::RequestTimeout(_)
                | ObjectError::InvalidRequest(_)
                | ObjectError::Overloaded(_)
                | ObjectError::Unauthorized(_)
                | ObjectError::Forbidden(_)
        ) {
            // the body may not have been read to its end: do not reuse the connection
            headers.insert(
                hyper::header::CONNECTION,
                hyper::header::HeaderValue::from_static("close"),
            );
        }
        if matches!(e, ObjectError::Unauthorized(_)) {
            headers.insert(
                hyper::header::WWW_AUTHENTICATE,
                hyper::header::HeaderValue::from_static("Bearer realm=\"wasmdo\""),
            );
        }
        response
    }

    /// Dispatches by the first path segment: the admin API, RPC, an object's `fetch`, or the
    /// entry Worker. On the public plane, everything goes to the entry Worker.
    async fn route(
        &self,
        req: Request<Incoming>,
        peer: SocketAddr,
        plane: Plane,
    ) -> Result<Response<Full<Bytes>>, ObjectError> {
        let path = req.uri().path().to_string();
        let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        if plane == Plane::Public {
            return self.worker(req, peer, path.clone()).await;
        }
        let router = match req.headers().contains_key(crate::cluster::FORWARDED) {
            true => &self.forwarded,
            false => &self.router,
        };
        let chain = self.relayed_chain(req.headers())?;
        match (req.method(), segments.as_slice()) {
            (_, ["_cluster", "dynamic", class, name, method]) => {
                let req = self.authorize(req, Scope::Admin).await?;
                self.forwarded_dynamic(req, chain, class, name, method)
                    .await
            }
            (_, ["_admin", rest @ ..]) => {
                let scope = admin_scope(req.method(), rest);
                let req = self.authorize(req, scope).await?;
                self.admin(req, rest).await
            }
            (_, ["rpc", ..]) => {
                let req = self.authorize(req, Scope::Call).await?;
                match (req.method(), &segments[1..]) {
                    (&Method::POST, [class, name, method]) => {
                        let via = objects::Via { router, chain };
                        self.rpc(req, via, class, name, method).await
                    }
                    _ => Err(ObjectError::NotFound(
                        "RPC calls are `POST /rpc/{class}/{name}/{method}`".into(),
                    )),
                }
            }
            (_, ["objects", class, name, ..]) => {
                let req = self.authorize(req, Scope::Call).await?;
                let class = decode(class)?;
                let address = object_name(name)?;
                let prefix_len =
                    1 + "objects".len() + 1 + segments[1].len() + 1 + segments[2].len();
                let rest = &path[prefix_len..];
                let rest = if rest.is_empty() { "/" } else { rest };
                let via = objects::Via { router, chain };
                self.fetch(req, via, peer, &class, &address, rest.to_string())
                    .await
            }
            _ => self.worker(req, peer, path.clone()).await,
        }
    }

    /// Whether `headers` are those of a request another host of the cluster forwarded: marked so,
    /// with the cluster's (admin) credential. Only then are the client address and call chain
    /// it carries believed.
    pub(super) fn relayed(&self, headers: &hyper::HeaderMap) -> bool {
        self.cluster.is_some()
            && headers.contains_key(crate::cluster::FORWARDED)
            && self.credentials.check(headers, Scope::Admin).is_ok()
    }

    /// The objects waiting on a call another host forwarded (its `x-wasmdo-chain`); none for
    /// any other request.
    fn relayed_chain(
        &self,
        headers: &hyper::HeaderMap,
    ) -> Result<crate::router::Chain, ObjectError> {
        let value = match headers.get(crate::cluster::CHAIN) {
            Some(value) if self.relayed(headers) => value,
            _ => return Ok(Arc::new(Vec::new())),
        };
        let bad = || ObjectError::InvalidRequest("a malformed call chain".into());
        let text = value.to_str().map_err(|_| bad())?;
        let keys = text
            .split(',')
            .filter(|entry| !entry.is_empty())
            .map(|entry| {
                let (class, id) = entry.split_once('/').ok_or_else(bad)?;
                let id = crate::ids::ObjectId::from_hex(id).ok_or_else(bad)?;
                Ok(crate::ids::ObjectKey::new(&decode(class)?, id))
            })
            .collect::<Result<Vec<_>, ObjectError>>()?;
        Ok(Arc::new(keys))
    }

    /// The request, if its credential covers `scope`. A refused request's body is read and
    /// discarded first (as an oversize one's): a client uploading a component learns it lacks
    /// the token instead of seeing a broken pipe.
    async fn authorize(
        &self,
        req: Request<Incoming>,
        scope: Scope,
    ) -> Result<Request<Incoming>, ObjectError> {
        let Err(refused) = self.credentials.check(req.headers(), scope) else {
            return Ok(req);
        };
        let mut body = req.into_body();
        let drain = async {
            let mut seen: u64 = 0;
            while let Some(Ok(frame)) = body.frame().await {
                seen += frame.data_ref().map_or(0, |d| d.len() as u64);
                if seen > MAX_DISCARDED_BODY {
                    break;
                }
            }
        };
        let timeout = Duration::from_millis(self.runtime.limits.body_read_timeout_ms);
        let _ = tokio::time::timeout(timeout, drain).await;
        Err(refused)
    }

    /// The entry Worker answers with the whole path, if one is deployed.
    async fn worker(
        &self,
        req: Request<Incoming>,
        peer: SocketAddr,
        path: String,
    ) -> Result<Response<Full<Bytes>>, ObjectError> {
        match self.runtime.registry.entry_worker() {
            Some(worker) => {
                let slot = self.workers.pick();
                let via = objects::Via {
                    router: &self.router,
                    chain: Arc::new(Vec::new()),
                };
                self.fetch(req, via, peer, &worker.name, &slot.address(), path)
                    .await
            }
            None => Err(ObjectError::NotFound(format!(
                "no route for {} {path}: see `/rpc/{{class}}/{{name}}/{{method}}`, `/objects/{{class}}/{{name}}/…` and `/_admin/…` (or deploy a project with an entry Worker)",
                req.method()
            ))),
        }
    }
}

/// The scope an admin route needs: health is open (liveness probes); reading classes and ids is
/// what a caller needs; the rest (deploys, projects, components, metrics) is the admin's.
fn admin_scope(method: &Method, rest: &[&str]) -> Scope {
    match (method, rest) {
        (&Method::GET, ["health"]) => Scope::Open,
        (&Method::GET, ["classes", ..]) | (&Method::POST, ["classes", _, "new-unique-id"]) => {
            Scope::Call
        }
        _ => Scope::Admin,
    }
}

/// Refuses a `Host` that is not an authority (or two of them, or none in HTTP/1.1) before any
/// route runs: a guest builds its request URL from it.
///
/// The framing shapes of request smuggling are refused before this: conflicting
/// `Content-Length`s and a `Transfer-Encoding` that does not end in `chunked` by hyper (400), both
/// `Content-Length` and `Transfer-Encoding` by `framing` (400, and hyper closes the connection).
fn check_host(req: &Request<Incoming>) -> Result<(), ObjectError> {
    let headers = req.headers();
    let mut hosts = headers.get_all(hyper::header::HOST).iter();
    match (hosts.next(), hosts.next()) {
        (Some(_), Some(_)) => Err(ObjectError::InvalidRequest(
            "the request has more than one Host header".into(),
        )),
        (Some(host), None) => {
            let valid = host
                .to_str()
                .ok()
                .and_then(|h| h.parse::<hyper::http::uri::Authority>().ok())
                .is_some_and(|a| !a.as_str().contains('@'));
            match valid {
                true => Ok(()),
                false => Err(ObjectError::InvalidRequest(format!(
                    "the Host header `{}` is not a host[:port]",
                    String::from_utf8_lossy(host.as_bytes())
                ))),
            }
        }
        (None, _) if req.version() == hyper::Version::HTTP_11 => Err(ObjectError::InvalidRequest(
            "an HTTP/1.1 request needs a Host header (RFC 9112 §3.2)".into(),
        )),
        (None, _) => Ok(()),
    }
}

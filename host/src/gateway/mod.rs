//! The HTTP gateway: one hyper listener, the routes of the user-facing contract, and nothing
//! else. It parses and bounds requests, hands them to the [`Router`] (objects) or the
//! [`Registry`] (classes), and turns every outcome into a response (errors through `errors`,
//! one status per kind). `admin.rs`: `/_admin/…`; `objects.rs`: RPC and `fetch`;
//! `websocket.rs`: one task per WebSocket connection; `workers.rs`: the entry Worker's
//! instances.
//!
//! | route | what |
//! |---|---|
//! | `PUT /_admin/classes/{class}` | deploy a component (body) as `class` |
//! | `GET /_admin/classes`, `GET /_admin/classes/{class}` | describe classes |
//! | `GET /_admin/classes/{class}/wit` | the class's exported interfaces as WIT |
//! | `PUT /_admin/components` | store a component (body) by content hash, for project deploys |
//! | `PUT /_admin/projects/{name}` | deploy a project: its manifest (JSON) — migrations, classes, entry |
//! | `GET /_admin/projects`, `GET /_admin/projects/{name}` | deployed projects |
//! | `GET /_admin/health`, `GET /_admin/metrics` | liveness, Prometheus metrics |
//! | `GET /_admin/classes/{class}/id-from-name/{name}`, `POST …/new-unique-id`, `GET …/id-from-string/{id}` | object ids, as Cloudflare's namespace methods |
//! | `POST /rpc/{class}/{name}/{method}` | typed RPC, JSON array of arguments |
//! | `ANY /objects/{class}/{name}/{path…}` | the object's `fetch` |
//! | anything else | the entry Worker's `fetch`, if one is deployed (404 otherwise) |

mod admin;
mod errors;
mod objects;
mod websocket;
mod workers;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::directory::Directory;
use crate::error::ObjectError;
use crate::limits::MAX_OBJECT_NAME_BYTES;
use crate::router::{Address, Router};
use crate::runtime::Runtime;
pub(crate) use errors::{error_response, json_response};
pub(crate) use workers::WorkerPool;

/// Shared by every connection.
pub(crate) struct Gateway {
    /// What objects run with: the class registry among it.
    pub(crate) runtime: Arc<Runtime>,
    /// How requests reach objects.
    pub(crate) router: Arc<dyn Router>,
    /// This host's live objects (for `health` and `metrics` only).
    pub(crate) directory: Arc<Directory>,
    /// The entry Worker's instances.
    pub(crate) workers: Arc<WorkerPool>,
    /// Project deploys.
    pub(crate) projects: Arc<crate::projects::Projects>,
}

/// Accepts connections until the listener fails.
pub(crate) async fn serve(listener: TcpListener, gateway: Arc<Gateway>) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(conn) => conn,
            Err(e) => {
                // e.g. out of file descriptors: back off instead of spinning
                tracing::warn!(target: "wasmdo.gateway", "accept failed: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let gateway = gateway.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let gateway = gateway.clone();
                async move { Ok::<_, Infallible>(gateway.handle(req, peer).await) }
            });
            if let Err(e) = http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), service)
                // WebSocket upgrades of `/objects/…` requests
                .with_upgrades()
                .await
            {
                tracing::debug!(target: "wasmdo.gateway", "connection from {peer}: {e}");
            }
        });
    }
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

/// Reads a whole request body of at most `limit` bytes. An oversize body is drained (up to
/// [`MAX_DISCARDED_BODY`]) so the client gets its `BodyTooLarge` reply.
async fn read_body(mut body: Incoming, limit: u64) -> Result<Bytes, ObjectError> {
    let mut buffer = bytes::BytesMut::new();
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
            buffer.clear();
            continue;
        }
        buffer.extend_from_slice(&data);
    }
    if seen > limit {
        return Err(ObjectError::BodyTooLarge(limit));
    }
    Ok(buffer.freeze())
}

impl Gateway {
    async fn handle(&self, req: Request<Incoming>, _peer: SocketAddr) -> Response<Full<Bytes>> {
        match self.route(req).await {
            Ok(response) => response,
            Err(e) => {
                let mut response = error_response(&e);
                if matches!(e, ObjectError::BodyTooLarge(_)) {
                    // the body may not have been read to its end: do not reuse the connection
                    response.headers_mut().insert(
                        hyper::header::CONNECTION,
                        hyper::header::HeaderValue::from_static("close"),
                    );
                }
                response
            }
        }
    }

    /// Dispatches by the first path segment: the admin API, RPC, an object's `fetch`, or the
    /// entry Worker.
    async fn route(&self, req: Request<Incoming>) -> Result<Response<Full<Bytes>>, ObjectError> {
        let path = req.uri().path().to_string();
        let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        match (req.method(), segments.as_slice()) {
            (_, ["_admin", rest @ ..]) => self.admin(req, rest).await,
            (&Method::POST, ["rpc", class, name, method]) => {
                self.rpc(req, class, name, method).await
            }
            (_, ["rpc", ..]) if req.method() != Method::POST => Err(ObjectError::NotFound(
                "RPC calls are `POST /rpc/{class}/{name}/{method}`".into(),
            )),
            (_, ["objects", class, name, ..]) => {
                let class = decode(class)?;
                let address = object_name(name)?;
                let prefix_len =
                    1 + "objects".len() + 1 + segments[1].len() + 1 + segments[2].len();
                let rest = &path[prefix_len..];
                let rest = if rest.is_empty() { "/" } else { rest };
                self.fetch(req, &class, &address, rest.to_string()).await
            }
            _ => match self.runtime.registry.entry_worker() {
                // a Worker project: the Worker answers everything else, with the whole path
                Some(worker) => {
                    let slot = self.workers.pick();
                    self.fetch(req, &worker.name, &slot.address(), path.clone())
                        .await
                }
                None => Err(ObjectError::NotFound(format!(
                    "no route for {} {path}: see `/rpc/{{class}}/{{name}}/{{method}}`, `/objects/{{class}}/{{name}}/…` and `/_admin/…` (or deploy a project with an entry Worker)",
                    req.method()
                ))),
            },
        }
    }
}

//! The HTTP gateway: one hyper listener, the routes of the user-facing contract, and nothing
//! else. It parses and bounds requests, hands them to the [`Directory`] or the [`Registry`], and
//! turns every outcome into a response (errors through `errors`, one status per kind).
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

mod errors;
mod workers;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::bindings::http_types;
use crate::directory::{Address, Directory};
use crate::error::ObjectError;
use crate::limits::MAX_OBJECT_NAME_BYTES;
use crate::registry::Registry;
pub(crate) use errors::{error_response, json_response};
pub(crate) use workers::WorkerPool;

/// Shared by every connection.
pub(crate) struct Gateway {
    pub(crate) registry: Arc<Registry>,
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
/// class's namespace by the directory); anything else is a name (`id-from-name`).
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

    async fn route(&self, req: Request<Incoming>) -> Result<Response<Full<Bytes>>, ObjectError> {
        let path = req.uri().path().to_string();
        let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        match (req.method(), segments.as_slice()) {
            (&Method::GET, ["_admin", "health"]) => Ok(json_response(
                StatusCode::OK,
                &serde_json::json!({
                    "status": "ok",
                    "live_objects": self.directory.live_objects(),
                    "classes": self.registry.list().len(),
                }),
            )),
            (&Method::GET, ["_admin", "metrics"]) => {
                let text = self.directory.metrics().render(
                    self.directory.live_objects(),
                    self.directory.open_databases(),
                    self.registry.list().len(),
                    self.directory.schedule().pending(),
                    self.directory.websockets().open(),
                );
                Ok(Response::builder()
                    .header("content-type", "text/plain; version=0.0.4")
                    .body(Full::new(Bytes::from(text)))
                    .expect("valid response"))
            }
            (&Method::GET, ["_admin", "classes"]) => {
                let all: Vec<_> = self.registry.list().iter().map(|c| c.describe()).collect();
                Ok(json_response(
                    StatusCode::OK,
                    &serde_json::Value::Array(all),
                ))
            }
            (&Method::GET, ["_admin", "classes", class]) => {
                let class = decode(class)?;
                let version = self
                    .registry
                    .get(&class)
                    .ok_or(ObjectError::UnknownClass(class))?;
                Ok(json_response(StatusCode::OK, &version.describe()))
            }
            (&Method::GET, ["_admin", "classes", class, "wit"]) => {
                let class = decode(class)?;
                let wit = self.registry.wit(&class).await?;
                Ok(Response::builder()
                    .header("content-type", "text/plain; charset=utf-8")
                    .body(Full::new(Bytes::from(wit)))
                    .expect("valid response"))
            }
            (&Method::GET, ["_admin", "classes", class, "id-from-name", name]) => {
                let (class, name) = (decode(class)?, decode(name)?);
                let id = self.directory.id_from_name(&class, &name)?;
                Ok(json_response(
                    StatusCode::OK,
                    &serde_json::json!({ "id": id.to_hex(), "name": name }),
                ))
            }
            (&Method::POST, ["_admin", "classes", class, "new-unique-id"]) => {
                let class = decode(class)?;
                let id = self.directory.new_unique_id(&class)?;
                Ok(json_response(
                    StatusCode::OK,
                    &serde_json::json!({ "id": id.to_hex() }),
                ))
            }
            (&Method::GET, ["_admin", "classes", class, "id-from-string", id]) => {
                let (class, id) = (decode(class)?, decode(id)?);
                let id = self.directory.id_from_string(&class, &id)?;
                Ok(json_response(
                    StatusCode::OK,
                    &serde_json::json!({ "id": id.to_hex() }),
                ))
            }
            (&Method::PUT, ["_admin", "classes", class]) => {
                let class = decode(class)?;
                let limit = self.directory.limits().max_component_bytes;
                let bytes = read_body(req.into_body(), limit).await?;
                let version = self.registry.deploy(&class, bytes.to_vec()).await?;
                self.directory
                    .metrics()
                    .deploys
                    .fetch_add(1, Ordering::Relaxed);
                Ok(json_response(StatusCode::CREATED, &version.describe()))
            }
            (&Method::PUT, ["_admin", "components"]) => {
                let limit = self.directory.limits().max_component_bytes;
                let bytes = read_body(req.into_body(), limit).await?;
                let (hash, size) = self.registry.store_component(bytes.to_vec()).await?;
                Ok(json_response(
                    StatusCode::CREATED,
                    &serde_json::json!({ "hash": hash, "size": size }),
                ))
            }
            (&Method::PUT, ["_admin", "projects", project]) => {
                let project = decode(project)?;
                let limit = self.directory.limits().max_body_bytes;
                let body = read_body(req.into_body(), limit).await?;
                let manifest = serde_json::from_slice(&body).map_err(|e| {
                    ObjectError::InvalidManifest(format!("the manifest is not valid: {e}"))
                })?;
                let (reply, deployed) = self.projects.deploy(&project, manifest).await?;
                self.directory
                    .metrics()
                    .deploys
                    .fetch_add(deployed as u64, Ordering::Relaxed);
                Ok(json_response(StatusCode::OK, &reply))
            }
            (&Method::GET, ["_admin", "projects"]) => Ok(json_response(
                StatusCode::OK,
                &self.projects.describe(None).await?,
            )),
            (&Method::GET, ["_admin", "projects", project]) => {
                let project = decode(project)?;
                let described = self.projects.describe(Some(&project)).await?;
                Ok(json_response(StatusCode::OK, &described))
            }
            (&Method::POST, ["rpc", class, name, method]) => {
                let class = decode(class)?;
                let address = object_name(name)?;
                let method = decode(method)?;
                let limit = self.directory.limits().max_body_bytes;
                let body = read_body(req.into_body(), limit).await?;
                let args = if body.iter().all(u8::is_ascii_whitespace) {
                    serde_json::Value::Array(Vec::new())
                } else {
                    serde_json::from_slice(&body).map_err(|e| {
                        ObjectError::InvalidArgument(format!(
                            "the body must be a JSON array of arguments: {e}"
                        ))
                    })?
                };
                let value = self.directory.call(&class, &address, &method, args).await?;
                Ok(json_response(StatusCode::OK, &value))
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
            (_, ["_admin", ..]) => Err(ObjectError::NotFound(format!(
                "no admin route for {} {path}: see the routes in the README",
                req.method()
            ))),
            _ => match self.registry.entry_worker() {
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

    async fn fetch(
        &self,
        mut req: Request<Incoming>,
        class: &str,
        address: &Address,
        path: String,
    ) -> Result<Response<Full<Bytes>>, ObjectError> {
        // a WebSocket upgrade: the object may accept it during `fetch`
        let upgrade = websocket_key(&req).map(|key| (key, hyper::upgrade::on(&mut req)));
        let (parts, body) = req.into_parts();
        let host = parts
            .headers
            .get(hyper::header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or("localhost");
        let url = format!("http://{host}{}", parts.uri);
        let headers = parts
            .headers
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        let body = read_body(body, self.directory.limits().max_body_bytes).await?;
        let request = http_types::Request {
            method: parts.method.as_str().to_string(),
            url,
            path,
            query: parts.uri.query().unwrap_or("").to_string(),
            headers,
            body: body.to_vec(),
        };
        let fetched = self
            .directory
            .fetch(class, address, request, upgrade.is_some())
            .await?;
        let response = fetched.response;
        // an accepted socket goes with a 101 answer only: answering anything else refuses it
        // (a Worker that passed the upgrade on may still answer an error)
        let accepted = fetched
            .accepted
            .filter(|_| response.status == StatusCode::SWITCHING_PROTOCOLS.as_u16());
        if response.status == StatusCode::SWITCHING_PROTOCOLS.as_u16() && accepted.is_none() {
            return Err(ObjectError::FetchFailed(
                "fetch answered 101 without a WebSocket: accept one first (`ctx.acceptWebSocket`, `wasmdo::websockets::accept`), or return the WebSocket a Durable Object's `stub.fetch` answered with".into(),
            ));
        }
        if let (Some(accepted), Some((key, on_upgrade))) = (accepted, upgrade) {
            let mut builder = Response::builder()
                .status(StatusCode::SWITCHING_PROTOCOLS)
                .header(hyper::header::CONNECTION, "upgrade")
                .header(hyper::header::UPGRADE, "websocket")
                .header(
                    hyper::header::SEC_WEBSOCKET_ACCEPT,
                    tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes()),
                );
            // the object's own headers (a chosen subprotocol, cookies) go along
            for (name, value) in &response.headers {
                let hop = [
                    "connection",
                    "upgrade",
                    "sec-websocket-accept",
                    "content-length",
                ];
                if !hop.contains(&name.to_ascii_lowercase().as_str()) {
                    builder = builder.header(name.as_str(), value.as_str());
                }
            }
            let directory = self.directory.clone();
            tokio::spawn(async move {
                match on_upgrade.await {
                    Ok(upgraded) => crate::websockets::serve(directory, accepted, upgraded).await,
                    Err(e) => tracing::debug!(target: "wasmdo.websockets", "upgrade failed: {e}"),
                }
            });
            return builder.body(Full::new(Bytes::new())).map_err(|e| {
                ObjectError::FetchFailed(format!("fetch returned an invalid header: {e}"))
            });
        }
        let status = StatusCode::from_u16(response.status).map_err(|_| {
            ObjectError::FetchFailed(format!(
                "fetch returned an invalid HTTP status {}",
                response.status
            ))
        })?;
        let mut builder = Response::builder().status(status);
        for (name, value) in &response.headers {
            builder = builder.header(name.as_str(), value.as_str());
        }
        builder
            .body(Full::new(Bytes::from(response.body)))
            .map_err(|e| {
                ObjectError::FetchFailed(format!("fetch returned an invalid response: {e}"))
            })
    }
}

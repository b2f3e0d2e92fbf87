//! Events for objects another host owns, sent to that host over HTTP: the same routes a client
//! uses (`/rpc`, `/objects`), plus `/_cluster/dynamic` for calls by name, marked with
//! [`FORWARDED`] so the owner never forwards them again (it answers `421 NotOwner` instead, and
//! this host looks the owner up afresh).
//!
//! Connections to each peer are kept and reused (HTTP/1.1, one request at a time each).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;

use crate::error::{ObjectError, Relayed};

/// The header that marks an event forwarded by another host of the cluster.
pub(crate) const FORWARDED: &str = "x-wasmdo-forwarded";
/// The objects waiting on a forwarded call (`class/<id hex>`, comma-separated, class names
/// percent-encoded), so that a call back into one of them fails at once (`CallCycle`).
pub(crate) const CHAIN: &str = "x-wasmdo-chain";

/// `chain` as the [`CHAIN`] header's value.
pub(crate) fn chain_header(chain: &[crate::ids::ObjectKey]) -> (String, String) {
    let value: Vec<String> = chain
        .iter()
        .map(|key| format!("{}/{}", segment(&key.class), key.id.to_hex()))
        .collect();
    (CHAIN.to_owned(), value.join(","))
}

/// The client's own `Authorization` header on a forwarded `fetch` (the hosts authenticate with
/// theirs); the owner gives it back its name before the object sees the request.
pub(crate) const CLIENT_AUTHORIZATION: &str = "x-wasmdo-client-authorization";
/// The header of a dynamic call's answer that says the value is what the method threw.
pub(crate) const THROWN: &str = "x-wasmdo-thrown";
/// Idle connections kept per peer.
const IDLE_PER_PEER: usize = 32;
/// How long connecting to a peer may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// What a forwarded event came back as.
pub(super) enum Answer {
    /// The owner answered (any status but 421).
    Answered {
        status: StatusCode,
        headers: hyper::HeaderMap,
        body: Bytes,
    },
    /// The host does not own the object: look it up again.
    NotOwner,
    /// The host could not be connected to: the event was not sent (`why`), so it may go
    /// elsewhere if the host is gone.
    Unreachable(ObjectError),
}

/// Connections to the other hosts.
pub(super) struct Peers {
    idle: Mutex<HashMap<String, Vec<SendRequest<Full<Bytes>>>>>,
    token: Option<String>,
}

impl Peers {
    /// Peers reached with `token` (the cluster's admin token), if any.
    pub(super) fn new(token: Option<String>) -> Peers {
        Peers {
            idle: Mutex::new(HashMap::new()),
            token,
        }
    }

    /// Sends `method path` with `headers` and `body` to the host at `base` (`http://host:port`).
    pub(super) async fn send(
        &self,
        base: &str,
        method: Method,
        path: &str,
        headers: &[(String, String)],
        body: Bytes,
    ) -> Result<Answer, ObjectError> {
        let authority = authority(base);
        let request = self.request(&authority, method, path, headers, body)?;
        let mut sender = match self.connection(&authority).await {
            Ok(sender) => sender,
            Err(why) => return Ok(Answer::Unreachable(why)),
        };
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| no_answer(base, e))?;
        let answer = read(base, response).await?;
        self.keep(authority, sender).await;
        Ok(answer)
    }

    /// Sends a WebSocket upgrade request (`GET path` with `headers`, which carry the client's
    /// `Upgrade`, `Connection` and `Sec-WebSocket-*`) to the host at `base`, on a connection of its
    /// own: the answer, and with a `101` the owner side of the tunnel to pipe the client to.
    pub(super) async fn upgrade(
        &self,
        base: &str,
        path: &str,
        headers: &[(String, String)],
    ) -> Result<(Answer, Option<hyper::upgrade::OnUpgrade>), ObjectError> {
        let authority = authority(base);
        let request = self.request(&authority, Method::GET, path, headers, Bytes::new())?;
        let mut sender = match dial(&authority, true).await {
            Ok(sender) => sender,
            Err(why) => return Ok((Answer::Unreachable(why), None)),
        };
        let mut response = sender
            .send_request(request)
            .await
            .map_err(|e| no_answer(base, e))?;
        if response.status() == StatusCode::SWITCHING_PROTOCOLS {
            let tunnel = hyper::upgrade::on(&mut response);
            let answer = Answer::Answered {
                status: response.status(),
                headers: response.headers().clone(),
                body: Bytes::new(),
            };
            return Ok((answer, Some(tunnel)));
        }
        Ok((read(base, response).await?, None))
    }

    /// A forwarded request to the host at `authority`: `headers` (a `Host` of its own unless they
    /// carry the client's), marked [`FORWARDED`], with the cluster's credential.
    fn request(
        &self,
        authority: &str,
        method: Method,
        path: &str,
        headers: &[(String, String)],
        body: Bytes,
    ) -> Result<Request<Full<Bytes>>, ObjectError> {
        let mut builder = Request::builder().method(method).uri(path);
        let mut has_host = false;
        for (name, value) in headers {
            has_host |= name.eq_ignore_ascii_case("host");
            builder = builder.header(name.as_str(), value.as_str());
        }
        if !has_host {
            builder = builder.header(hyper::header::HOST, authority);
        }
        builder = builder.header(FORWARDED, "1");
        if let Some(token) = &self.token {
            builder = builder.header(hyper::header::AUTHORIZATION, format!("Bearer {token}"));
        }
        builder
            .body(Full::new(body))
            .map_err(|e| ObjectError::InvalidRequest(format!("cannot forward: {e}")))
    }

    /// An idle pooled connection to `authority`, or a new one.
    async fn connection(&self, authority: &str) -> Result<SendRequest<Full<Bytes>>, ObjectError> {
        loop {
            let idle = self
                .idle
                .lock()
                .expect("peers lock")
                .get_mut(authority)
                .and_then(Vec::pop);
            match idle {
                Some(sender) if sender.is_ready() => return Ok(sender),
                Some(_) => continue,
                None => break,
            }
        }
        dial(authority, false).await
    }

    /// Keeps `sender` for the next request to `authority`, once its connection can take one.
    async fn keep(&self, authority: String, mut sender: SendRequest<Full<Bytes>>) {
        let ready = tokio::time::timeout(Duration::from_millis(100), sender.ready()).await;
        if !matches!(ready, Ok(Ok(()))) {
            return;
        }
        let mut idle = self.idle.lock().expect("peers lock");
        let list = idle.entry(authority).or_default();
        if list.len() < IDLE_PER_PEER {
            list.push(sender);
        }
    }
}

/// `host:port` of a peer's URL (`http://host:port`).
fn authority(base: &str) -> String {
    base.strip_prefix("http://")
        .unwrap_or(base)
        .trim_end_matches('/')
        .to_owned()
}

/// A new connection to `authority`; `upgrades`: it may be switched to another protocol (a
/// WebSocket tunnel) and is never pooled.
async fn dial(authority: &str, upgrades: bool) -> Result<SendRequest<Full<Bytes>>, ObjectError> {
    let unavailable =
        |e: String| ObjectError::ClusterUnavailable(format!("cannot reach host {authority}: {e}"));
    let stream = tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::TcpStream::connect(authority))
        .await
        .map_err(|_| unavailable("timed out".into()))?
        .map_err(|e| unavailable(e.to_string()))?;
    let _ = stream.set_nodelay(true);
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| unavailable(e.to_string()))?;
    match upgrades {
        true => drop(tokio::spawn(connection.with_upgrades())),
        false => drop(tokio::spawn(connection)),
    }
    Ok(sender)
}

/// The owner host at `base` did not answer a forwarded request.
fn no_answer(base: &str, e: hyper::Error) -> ObjectError {
    ObjectError::ClusterUnavailable(format!("the owner host {base} did not answer: {e}"))
}

/// The answer of the owner host at `base`, read whole.
async fn read(
    base: &str,
    response: hyper::Response<hyper::body::Incoming>,
) -> Result<Answer, ObjectError> {
    let (parts, incoming) = response.into_parts();
    let body = incoming
        .collect()
        .await
        .map_err(|e| {
            ObjectError::ClusterUnavailable(format!("the owner host {base} broke off: {e}"))
        })?
        .to_bytes();
    if parts.status == StatusCode::MISDIRECTED_REQUEST {
        return Ok(Answer::NotOwner);
    }
    Ok(Answer::Answered {
        status: parts.status,
        headers: parts.headers,
        body,
    })
}

/// The error an owner's non-success answer stands for.
pub(super) fn failure(status: StatusCode, body: &[u8]) -> ObjectError {
    Relayed::from_answer(status.as_u16(), body)
}

/// Percent-encodes one path segment.
pub(super) fn segment(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

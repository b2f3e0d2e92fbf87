//! Objects over HTTP: typed RPC (`POST /rpc/{class}/{name}/{method}`) and an object's (or the
//! entry Worker's) `fetch`, WebSocket upgrades included. Both reach the object through the
//! [`Router`](crate::router::Router).

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::sync::OwnedSemaphorePermit;

use super::connections::Admitted;
use super::{Gateway, decode, json_response, object_name, websocket, websocket_key};
use crate::bindings::http_types;
use crate::error::ObjectError;
use crate::router::{Address, Chain, Router};
use crate::websockets::Accepted;

/// How a request reaches its object: the router (the forwarded face, for a request another host
/// of the cluster forwarded) and the objects waiting on it.
pub(super) struct Via<'a> {
    pub(super) router: &'a Arc<dyn Router>,
    pub(super) chain: Chain,
}

impl Gateway {
    /// `POST /rpc/{class}/{name}/{method}`: the body is a JSON array of arguments.
    pub(super) async fn rpc(
        &self,
        req: Request<Incoming>,
        via: Via<'_>,
        class: &str,
        name: &str,
        method: &str,
    ) -> Result<Response<Full<Bytes>>, ObjectError> {
        let class = decode(class)?;
        let address = object_name(name)?;
        let method = decode(method)?;
        let limit = self.runtime.limits.max_body_bytes;
        let body = self.read_body(req.into_body(), limit).await?;
        // component values cost far more than their text (a 2-byte `1,` becomes a 32-byte
        // `Val`): the decoding is charged to the body budget too
        let _parse = self.charge_parse(&body)?;
        // the body (and its budget) lives until the reply: the object decodes it in place
        let value = (via.router)
            .call(&class, &address, &method, body.bytes(), via.chain)
            .await?;
        Ok(json_response(StatusCode::OK, &value))
    }

    /// `POST /_cluster/dynamic/{class}/{name}/{method}`: a call by name another host of the
    /// cluster forwarded; the body is the encoded list of arguments, the answer the encoded value
    /// (or, with the `x-wasmdo-thrown` header, what the method threw as JSON).
    pub(super) async fn forwarded_dynamic(
        &self,
        req: Request<Incoming>,
        chain: Chain,
        class: &str,
        name: &str,
        method: &str,
    ) -> Result<Response<Full<Bytes>>, ObjectError> {
        let class = decode(class)?;
        let address = object_name(name)?;
        let method = decode(method)?;
        let body = self
            .read_body(req.into_body(), self.runtime.limits.max_body_bytes)
            .await?;
        let (key, name) = self.forwarded.resolve(&class, &address)?;
        let answer = self
            .forwarded
            .call_dynamic(key, name.as_deref(), method, body.to_vec(), chain)
            .await?;
        let response = Response::builder().status(StatusCode::OK);
        Ok(match answer {
            Ok(value) => response
                .header("content-type", "application/octet-stream")
                .body(Full::new(Bytes::from(value))),
            Err(thrown) => response
                .header("content-type", "application/json")
                .header(crate::cluster::THROWN, "1")
                .body(Full::new(Bytes::from(
                    serde_json::to_vec(&serde_json::json!({
                        "name": thrown.name,
                        "message": thrown.message,
                    }))
                    .expect("JSON prints"),
                ))),
        }
        .expect("valid response"))
    }

    /// Takes the memory parsing `body` as JSON will cost (an estimate from the number of values
    /// in it) from the host-wide body budget, before parsing. `InvalidArgument` if it could never
    /// fit, `Overloaded` if it does not fit now.
    fn charge_parse(&self, body: &[u8]) -> Result<Option<OwnedSemaphorePermit>, ObjectError> {
        let values = count_json_values(body);
        let cost = values.saturating_mul(PARSED_VALUE_BYTES);
        if cost == 0 {
            return Ok(None);
        }
        let budget = self.runtime.limits.max_buffered_body_bytes;
        let too_many = || {
            ObjectError::InvalidArgument(format!(
                "the arguments hold {values} JSON values; parsing them would take ~{} MiB, more than the host's budget for request bodies (max-buffered-body-bytes, {} MiB)",
                cost >> 20,
                budget >> 20
            ))
        };
        if cost > budget || u32::try_from(cost).is_err() {
            return Err(too_many());
        }
        self.take_budget(cost, || {
            format!(
                "parsing these arguments would take ~{} MiB of the host's budget for request bodies (max-buffered-body-bytes), which is in use; retry later",
                cost >> 20
            )
        })
        .map(Some)
    }

    pub(super) async fn fetch(
        &self,
        mut req: Request<Incoming>,
        via: Via<'_>,
        peer: SocketAddr,
        class: &str,
        address: &Address,
        path: String,
    ) -> Result<Response<Full<Bytes>>, ObjectError> {
        // a WebSocket upgrade: the object may accept it during `fetch`
        let upgrade = websocket_key(&req).map(|key| (key, hyper::upgrade::on(&mut req)));
        let connection = req.extensions().get::<Arc<Admitted>>().cloned();
        let (parts, body) = req.into_parts();
        // checked by the gateway: one Host, a valid authority
        let host = parts
            .headers
            .get(hyper::header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or("localhost");
        let url = format!("http://{host}{}", parts.uri);
        // a request another host of the cluster forwarded (with the admin credential) carries
        // the client's address that host saw
        let relayed = self.relayed(&parts.headers);
        let headers = guest_headers(&parts.headers, peer, relayed)?;
        let body = self
            .read_body(body, self.runtime.limits.max_body_bytes)
            .await?;
        let request = http_types::Request {
            method: parts.method.as_str().to_string(),
            url,
            path,
            query: parts.uri.query().unwrap_or("").to_string(),
            headers,
            body: body.to_vec(),
        };
        let router = via.router;
        let fetched = router
            .fetch(class, address, request, upgrade.is_some(), via.chain)
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
            let router = router.clone();
            let max_message_bytes = self.runtime.limits.max_websocket_message_bytes;
            let stopping = self.stopping.subscribe();
            tokio::spawn(async move {
                match (on_upgrade.await, accepted) {
                    (Ok(upgraded), Accepted::Here(socket)) => {
                        websocket::serve(router, max_message_bytes, socket, upgraded).await;
                    }
                    (Ok(upgraded), Accepted::Tunnel(owner)) => match owner.await {
                        Ok(owner) => websocket::tunnel(upgraded, owner, stopping).await,
                        Err(e) => {
                            tracing::debug!(target: "wasmdo.websockets", "the owner host's upgrade failed: {e}")
                        }
                    },
                    (Err(e), _) => {
                        tracing::debug!(target: "wasmdo.websockets", "upgrade failed: {e}")
                    }
                }
                // the socket's slot among the listener's connections, freed now
                drop(connection);
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

/// The request's headers as a guest sees them: every value must be UTF-8 (a guest's `Headers`
/// could not hold it otherwise), and `CF-Connecting-IP` is the peer's address, whatever the
/// client sent (`X-Real-IP` too, unless a proxy in front set it).
fn guest_headers(
    headers: &hyper::HeaderMap,
    peer: SocketAddr,
    relayed: bool,
) -> Result<Vec<(String, String)>, ObjectError> {
    let mut out = Vec::with_capacity(headers.len() + 2);
    let relayed_ip = relayed
        .then(|| headers.get("cf-connecting-ip"))
        .flatten()
        .and_then(|v| v.to_str().ok());
    if relayed_ip.is_some() {
        // the first host set the client's address already; the credential is the hosts' own,
        // and the client's `Authorization` travelled under another name
        for (name, value) in headers {
            let name = match name.as_str() {
                "authorization" | crate::cluster::FORWARDED => continue,
                crate::cluster::CLIENT_AUTHORIZATION => "authorization",
                other => other,
            };
            let value = std::str::from_utf8(value.as_bytes()).map_err(|_| {
                ObjectError::InvalidRequest(format!("the value of header `{name}` is not UTF-8"))
            })?;
            out.push((name.to_owned(), value.to_owned()));
        }
        return Ok(out);
    }
    for (name, value) in headers {
        if name == "cf-connecting-ip" {
            continue;
        }
        let value = std::str::from_utf8(value.as_bytes()).map_err(|_| {
            ObjectError::InvalidRequest(format!("the value of header `{name}` is not UTF-8"))
        })?;
        out.push((name.as_str().to_owned(), value.to_owned()));
    }
    let ip = peer.ip().to_canonical().to_string();
    if !headers.contains_key("x-real-ip") {
        out.push(("x-real-ip".to_owned(), ip.clone()));
    }
    out.push(("cf-connecting-ip".to_owned(), ip));
    Ok(out)
}

/// Host memory one JSON value of RPC arguments takes once decoded: the object decodes the text
/// straight into component values, one `Val` each (object keys are counted too, and cost less),
/// in lists that grow by doubling.
const PARSED_VALUE_BYTES: u64 = 2 * std::mem::size_of::<wasmtime::component::Val>() as u64;

/// The number of values in a JSON text, counted without parsing it: every array or object, and
/// every scalar (a string, or a run of other characters) outside strings. Approximate for
/// invalid JSON, which the parser refuses anyway.
fn count_json_values(text: &[u8]) -> u64 {
    let mut count = 0u64;
    let (mut in_string, mut escaped, mut in_scalar) = (false, false, false);
    for &b in text {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => {
                in_string = true;
                in_scalar = false;
                count += 1;
            }
            b'[' | b'{' => {
                in_scalar = false;
                count += 1;
            }
            b']' | b'}' | b',' | b':' | b' ' | b'\t' | b'\n' | b'\r' => in_scalar = false,
            _ => {
                if !in_scalar {
                    count += 1;
                    in_scalar = true;
                }
            }
        }
    }
    count
}

#[cfg(test)]
mod tests {
    use super::count_json_values;

    #[test]
    fn counts_json_values_without_parsing() {
        assert_eq!(count_json_values(b""), 0);
        assert_eq!(count_json_values(b"[]"), 1);
        assert_eq!(count_json_values(b"[1,2,3]"), 4);
        assert_eq!(
            count_json_values(b"[\"a,b\",{\"k\":[true,null]},-1.5e3]"),
            8
        );
        assert_eq!(count_json_values(br#"["a\"]b", 1]"#), 3);
    }
}

//! Outbound HTTP: `wasi:http/outgoing-handler` for objects, behind their class's allow-list.
//!
//! **Off by default.** A class sends no request at all unless `fetch` in its `[classes.<name>]`
//! section lists where it may go:
//!
//! ```toml
//! [classes.room]
//! fetch = ["api.example.com", "127.0.0.1:8787", "*.example.org"]
//! ```
//!
//! An entry is `host` (any port) or `host:port` (that port only; IPv6 in brackets, `[::1]:8080`);
//! `*.example.org` allows every subdomain of `example.org` at any depth, not `example.org`
//! itself. A request is matched on its URL's authority (host and port, the port defaulting to the
//! scheme's: 80 for `http`, 443 for `https`), case-insensitively, as written by the guest: the list
//! names hosts, not addresses, so an allowed name reaches whatever it resolves to.
//!
//! A denied request fails with the `wasi:http` error code `HTTP-request-denied`, and the object's
//! log gets a warning naming the class, the authority and the `fetch` entry that would allow it.
//!
//! An allowed request is sent by wasmtime-wasi-http's client (HTTP/1.1; `https` through rustls
//! with the webpki roots) **within the event that made it**: connecting, waiting for the response
//! and every read of its body fail once the event's wall-clock deadline (`wall-clock-ms`) has
//! passed, and the epoch callback then stops the event with `WallClockLimitExceeded`, so a server
//! that never answers cannot hold an object. At most [`MAX_OUTBOUND_REQUESTS`] requests of one
//! object are open at once (`connection-limit-reached` past that). Response bodies are pulled one
//! frame at a time as the guest reads them into its own, limited, memory: the host never buffers
//! a whole body.
//!
//! A component that does not import `wasi:http` pays only for an idle `OutboundCtx` (a few
//! words) per object: the functions are linked once, into the registry's linker, and resolved
//! only for components that import them.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, SizeHint};
use hyper::http::uri::Scheme;
use serde::Deserialize;
use thiserror::Error;
use wasmtime::component::{Linker, ResourceTable};
use wasmtime_wasi_http::{
    Error, RequestOptions, WasiBody, WasiHttpCtx, WasiHttpCtxView, WasiHttpHooks, WasiHttpView,
};

use crate::bindings::object_api::LogLevel;
use crate::ids::ObjectId;
use crate::limits::MAX_OUTBOUND_REQUESTS;

/// The hosts a class's objects may send HTTP requests to: `fetch` in `[classes.<name>]`. Empty
/// (the default) allows nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(try_from = "Vec<String>")]
pub struct AllowList {
    entries: Vec<Allowed>,
}

/// One entry of an [`AllowList`].
#[derive(Debug, Clone, PartialEq, Eq)]
struct Allowed {
    host: HostPattern,
    /// `None`: any port.
    port: Option<u16>,
}

/// A host name or address, lower case, without brackets.
#[derive(Debug, Clone, PartialEq, Eq)]
enum HostPattern {
    Exact(String),
    /// `*.example.org`, kept as `.example.org`: any name ending with it.
    Subdomains(String),
}

/// A `fetch` entry that is not `host`, `host:port` or `*.suffix`.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
#[error("invalid `fetch` entry {entry:?}: {why}")]
pub struct InvalidFetchEntry {
    entry: String,
    why: &'static str,
}

impl AllowList {
    /// Whether no request is allowed at all.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Whether a request to `host` (as in a URL: a name, an IPv4 address or a bracketed IPv6
    /// address) on `port` may be sent.
    pub fn allows(&self, host: &str, port: u16) -> bool {
        let host = normalize_host(host);
        self.entries.iter().any(|allowed| {
            let host_matches = match &allowed.host {
                HostPattern::Exact(name) => *name == host,
                HostPattern::Subdomains(suffix) => host.ends_with(suffix.as_str()),
            };
            host_matches && allowed.port.is_none_or(|p| p == port)
        })
    }
}

/// Lower case, brackets of an IPv6 address and the trailing dot of a fully qualified name
/// removed, so `API.Example.com.` and `api.example.com` compare equal.
fn normalize_host(host: &str) -> String {
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase()
}

impl TryFrom<Vec<String>> for AllowList {
    type Error = InvalidFetchEntry;

    fn try_from(entries: Vec<String>) -> Result<Self, Self::Error> {
        let entries = entries
            .iter()
            .map(|entry| {
                parse_entry(entry).map_err(|why| InvalidFetchEntry {
                    entry: entry.clone(),
                    why,
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(AllowList { entries })
    }
}

fn parse_entry(entry: &str) -> Result<Allowed, &'static str> {
    if entry.contains("://") {
        return Err("write the host (and port), not a URL: `api.example.com`, `127.0.0.1:8787`");
    }
    if entry.contains(['/', '?', '#', '@']) || entry.chars().any(char::is_whitespace) {
        return Err("write the host (and port) only, no path, credentials or spaces");
    }
    let (host, port) = if let Some(rest) = entry.strip_prefix('[') {
        let (address, after) = rest
            .split_once(']')
            .ok_or("an IPv6 address needs its closing `]`")?;
        match after {
            "" => (address, None),
            _ => match after.strip_prefix(':') {
                Some(port) => (address, Some(port)),
                None => return Err("only `:port` may follow an IPv6 address in brackets"),
            },
        }
    } else if entry.matches(':').count() > 1 {
        return Err("write an IPv6 address in brackets: `[::1]` or `[::1]:8080`");
    } else {
        match entry.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (entry, None),
        }
    };
    let port = match port {
        None => None,
        Some(port) => Some(
            port.parse::<u16>()
                .ok()
                .filter(|&p| p != 0)
                .ok_or("the port must be a number from 1 to 65535")?,
        ),
    };
    let host = normalize_host(host);
    let pattern = match host.strip_prefix("*.") {
        Some(suffix) => HostPattern::Subdomains(format!(".{suffix}")),
        None => HostPattern::Exact(host.clone()),
    };
    let name = host.strip_prefix("*.").unwrap_or(&host);
    if name.split('.').any(str::is_empty) {
        return Err("the host is empty or has an empty label");
    }
    if name.contains('*') {
        return Err(
            "`*` is only allowed as a whole first label (`*.example.org`); list hosts explicitly",
        );
    }
    Ok(Allowed {
        host: pattern,
        port,
    })
}

/// What the `wasi:http` functions of one object consult: the `wasi:http` context and the
/// [`OutboundPolicy`] of its class.
pub(crate) struct OutboundCtx {
    http: WasiHttpCtx,
    policy: OutboundPolicy,
}

/// The checks on an object's outbound requests: its class's allow-list, the running event's
/// deadline, the requests it has open.
struct OutboundPolicy {
    class: Arc<str>,
    id: ObjectId,
    allowed: Arc<AllowList>,
    /// When the running event's wall-clock time is up (set as each event starts).
    deadline: Instant,
    open: Arc<AtomicUsize>,
}

impl OutboundCtx {
    pub(crate) fn new(class: Arc<str>, id: ObjectId, allowed: Arc<AllowList>) -> Self {
        OutboundCtx {
            http: WasiHttpCtx::new(),
            policy: OutboundPolicy {
                class,
                id,
                allowed,
                deadline: Instant::now(),
                open: Arc::default(),
            },
        }
    }

    /// The allow-list of the class version being activated.
    pub(crate) fn set_allowed(&mut self, allowed: Arc<AllowList>) {
        self.policy.allowed = allowed;
    }

    /// The running event's deadline: no request outlives it.
    pub(crate) fn set_deadline(&mut self, deadline: Instant) {
        self.policy.deadline = deadline;
    }

    /// The view the `wasi:http` host functions take; `table` is the Store's one resource table
    /// (`wasi:http` hands out `wasi:io` streams and pollables).
    pub(crate) fn view<'a>(&'a mut self, table: &'a mut ResourceTable) -> WasiHttpCtxView<'a> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table,
            hooks: &mut self.policy,
        }
    }
}

/// Links `wasi:http/outgoing-handler` and `wasi:http/types` (p2; the rest of WASI is linked by
/// `wasmtime_wasi::p2::add_to_linker_async`).
pub(crate) fn add_to_linker<T: WasiHttpView + 'static>(
    linker: &mut Linker<T>,
) -> wasmtime::Result<()> {
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(linker)
}

/// What `send_request` returns: the response and the future driving its connection.
type SentRequest = Box<
    dyn Future<
            Output = Result<
                (
                    hyper::Response<WasiBody>,
                    Box<dyn Future<Output = Result<(), Error>> + Send>,
                ),
                Error,
            >,
        > + Send,
>;

impl OutboundPolicy {
    /// Logs a denied request where the object's owner looks: the object's log.
    fn log_denied(&self, host: &str, port: Option<u16>, default_port: u16) {
        let class = &*self.class;
        let authority = format!("{host}:{}", port.unwrap_or(default_port));
        let entry = match port {
            Some(port) => format!("{host}:{port}"),
            None => host.to_string(),
        };
        let message = if self.allowed.is_empty() {
            format!(
                "outbound request to {authority} denied: class `{class}` may not send HTTP requests; \
                 to allow it, set `fetch = [\"{entry}\"]` in [classes.{class}] of wasmdo.toml"
            )
        } else {
            format!(
                "outbound request to {authority} denied: it is not in the `fetch` list of class \
                 `{class}`; to allow it, add \"{entry}\" to `fetch` in [classes.{class}] of wasmdo.toml"
            )
        };
        crate::object::log(class, self.id, LogLevel::Warn, &message);
    }
}

impl WasiHttpHooks for OutboundPolicy {
    fn send_request(
        &mut self,
        request: hyper::Request<WasiBody>,
        options: Option<RequestOptions>,
        _request_result: Box<dyn Future<Output = Result<(), Error>> + Send>,
    ) -> SentRequest {
        let uri = request.uri();
        let default_port = if uri.scheme() == Some(&Scheme::HTTPS) {
            443
        } else {
            80
        };
        let host = uri.host().unwrap_or_default();
        if !self
            .allowed
            .allows(host, uri.port_u16().unwrap_or(default_port))
        {
            self.log_denied(host, uri.port_u16(), default_port);
            return Box::new(async { Err(Error::HttpRequestDenied) });
        }
        let Some(slot) = OpenRequest::take(&self.open) else {
            let message = format!(
                "outbound request refused: {MAX_OUTBOUND_REQUESTS} requests of this object are \
                 already open; read or drop their responses first"
            );
            crate::object::log(&self.class, self.id, LogLevel::Warn, &message);
            return Box::new(async { Err(Error::ConnectionLimitReached) });
        };
        let deadline = tokio::time::Instant::from_std(self.deadline);
        Box::new(async move {
            // The guest's own timeouts (request-options) still apply when shorter; this bounds
            // the rest, the TLS handshake included, which the client has no timeout for. A tokio
            // timer never fires early, so the epoch callback then sees the deadline as passed.
            let sent = tokio::time::timeout_at(
                deadline,
                wasmtime_wasi_http::default_send_request(request, options),
            )
            .await;
            let (response, connection) = sent.map_err(|_elapsed| Error::HttpResponseTimeout)??;
            let response = response.map(|body| {
                DeadlineBody {
                    body: body.boxed_unsync(),
                    deadline: Box::pin(tokio::time::sleep_until(deadline)),
                }
                .boxed_unsync()
            });
            let connection = async move {
                let _slot = slot;
                // past the deadline the body refuses reads anyway; close the connection too
                tokio::time::timeout_at(deadline, connection)
                    .await
                    .unwrap_or(Ok(()))
            };
            Ok((
                response,
                Box::new(connection) as Box<dyn Future<Output = _> + Send>,
            ))
        })
    }
}

/// One of an object's [`MAX_OUTBOUND_REQUESTS`] open requests, given back when dropped (the
/// connection closed, or the request failed or was dropped by the guest).
struct OpenRequest(Arc<AtomicUsize>);

impl OpenRequest {
    fn take(open: &Arc<AtomicUsize>) -> Option<OpenRequest> {
        open.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
            (n < MAX_OUTBOUND_REQUESTS).then_some(n + 1)
        })
        .ok()
        .map(|_| OpenRequest(open.clone()))
    }
}

impl Drop for OpenRequest {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A response body that fails every read once the event's deadline has passed.
struct DeadlineBody {
    body: WasiBody,
    deadline: Pin<Box<tokio::time::Sleep>>,
}

impl Body for DeadlineBody {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        if self.deadline.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Some(Err(Error::HttpResponseTimeout)));
        }
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(entries: &[&str]) -> AllowList {
        AllowList::try_from(entries.iter().map(|e| e.to_string()).collect::<Vec<_>>())
            .expect("valid entries")
    }

    #[test]
    fn nothing_is_allowed_by_default() {
        let none = AllowList::default();
        assert!(none.is_empty());
        assert!(!none.allows("example.com", 443));
        assert!(!none.allows("127.0.0.1", 80));
    }

    #[test]
    fn a_host_allows_any_port_and_host_port_only_that_port() {
        let allowed = list(&["api.example.com", "127.0.0.1:8787"]);
        assert!(allowed.allows("api.example.com", 443));
        assert!(allowed.allows("api.example.com", 8080));
        assert!(allowed.allows("127.0.0.1", 8787));
        assert!(!allowed.allows("127.0.0.1", 8788));
        assert!(!allowed.allows("127.0.0.2", 8787));
        assert!(!allowed.allows("example.com", 443));
        assert!(!allowed.allows("api.example.com.evil.net", 443));
    }

    #[test]
    fn matching_ignores_case_and_a_trailing_dot() {
        let allowed = list(&["API.Example.com"]);
        assert!(allowed.allows("api.example.COM", 443));
        assert!(allowed.allows("api.example.com.", 443));
    }

    #[test]
    fn a_wildcard_allows_subdomains_only() {
        let allowed = list(&["*.example.org"]);
        assert!(allowed.allows("a.example.org", 443));
        assert!(allowed.allows("deep.a.example.org", 80));
        assert!(allowed.allows("A.Example.Org", 80));
        assert!(!allowed.allows("example.org", 443), "not the domain itself");
        assert!(!allowed.allows("badexample.org", 443));
        assert!(!allowed.allows("example.org.evil.net", 443));
        let on_port = list(&["*.example.org:8443"]);
        assert!(on_port.allows("a.example.org", 8443));
        assert!(!on_port.allows("a.example.org", 443));
    }

    #[test]
    fn ipv6_entries_are_bracketed() {
        let allowed = list(&["[::1]:8080", "[2001:db8::1]"]);
        assert!(allowed.allows("[::1]", 8080));
        assert!(!allowed.allows("[::1]", 8081));
        assert!(allowed.allows("[2001:DB8::1]", 443));
    }

    #[test]
    fn malformed_entries_are_refused_with_the_reason() {
        for (entry, why) in [
            ("https://api.example.com", "not a URL"),
            ("api.example.com/v1", "no path"),
            ("*", "`*` is only allowed"),
            ("api.*.com", "`*` is only allowed"),
            ("*.", "`*` is only allowed"),
            ("", "empty"),
            ("a..b", "empty label"),
            ("::1", "in brackets"),
            ("[::1", "closing"),
            ("host:0", "1 to 65535"),
            ("host:99999", "1 to 65535"),
            ("host:http", "1 to 65535"),
        ] {
            let err = AllowList::try_from(vec![entry.to_string()]).expect_err(entry);
            let message = err.to_string();
            assert!(message.contains(why), "{entry:?}: {message}");
            assert!(message.contains("fetch"), "{message}");
        }
    }
}

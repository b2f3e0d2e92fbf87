//! The host's HTTP API as the CLI uses it: one-shot requests whose JSON reply is printed
//! (`deploy CLASS FILE`, `call`, `wit`), and [`Admin`], the client `dev` and `deploy --project`
//! upload components and manifests with. Error bodies are read as `wasmdo_protocol`'s.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, bail};
use serde_json::Value;
use wasmdo_host::config::{Config, Token};
use wasmdo_protocol::error::ErrorBody;

/// The control plane's tokens as a client finds them: `WASMDO_ADMIN_TOKEN` /
/// `WASMDO_CALL_TOKEN`, else the `admin-token` / `call-token` of the config file given with
/// `--config` (the host's own `wasmdo.toml`).
pub(crate) struct Tokens {
    admin: Option<Token>,
    call: Option<Token>,
}

impl Tokens {
    pub(crate) fn load(config: Option<&Path>) -> anyhow::Result<Tokens> {
        let mut config = match config {
            Some(path) => Config::load(path)?,
            None => Config::default(),
        };
        config.tokens_from_env();
        Ok(Tokens {
            admin: config.admin_token,
            call: config.call_token,
        })
    }

    /// The token for deploys and admin routes (with only a call token, that one: the host then
    /// says it needs the admin token, which helps more than "no token").
    pub(crate) fn admin(&self) -> Option<&Token> {
        self.admin.as_ref().or(self.call.as_ref())
    }

    /// The token for calls: the call token, or the admin token (which covers calls too).
    pub(crate) fn call(&self) -> Option<&Token> {
        self.call.as_ref().or(self.admin.as_ref())
    }
}

/// `Authorization: Bearer …`, when there is a token.
pub(crate) fn authorize<B>(
    request: ureq::RequestBuilder<B>,
    token: Option<&Token>,
) -> ureq::RequestBuilder<B> {
    match token {
        Some(token) => request.header("authorization", bearer(token)),
        None => request,
    }
}

/// The `Authorization` header's value for `token`.
fn bearer(token: &Token) -> String {
    format!("Bearer {}", token.expose())
}

/// Percent-encodes a path segment.
pub(crate) fn encode(segment: &str) -> String {
    let mut out = String::new();
    for b in segment.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Where a host describes `class` in WIT.
pub(crate) fn wit_url(server: &str, class: &str) -> String {
    format!(
        "{}/_admin/classes/{}/wit",
        server.trim_end_matches('/'),
        encode(class)
    )
}

/// Sends the request and prints the JSON reply; a non-2xx reply is printed to stderr and fails.
pub(crate) fn request(
    method: &str,
    url: &str,
    body: Vec<u8>,
    token: Option<&Token>,
) -> anyhow::Result<()> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let response = match method {
        "GET" => authorize(agent.get(url), token).call(),
        "PUT" => authorize(agent.put(url), token)
            .header("content-type", "application/wasm")
            .send(&body[..]),
        _ => authorize(agent.post(url), token)
            .header("content-type", "application/json")
            .send(&body[..]),
    }
    .with_context(|| format!("cannot reach {url} (is `wasmdo serve` running?)"))?;
    let status = response.status();
    let text = response.into_body().read_to_string()?;
    let pretty = serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|v| serde_json::to_string_pretty(&v).ok())
        .unwrap_or(text);
    if status.is_success() {
        println!("{}", pretty.trim_end());
        Ok(())
    } else {
        // the JSON error is the message: no anyhow report (or backtrace) on top of it
        eprintln!("{pretty}");
        eprintln!("({method} {url}: HTTP {status})");
        std::process::exit(1);
    }
}

/// A client of a host's admin API.
pub(crate) struct Admin {
    base: String,
    token: Option<Token>,
    agent: ureq::Agent,
}

impl Admin {
    pub(crate) fn new(server: &str, token: Option<Token>) -> Admin {
        Admin {
            base: server.trim_end_matches('/').to_owned(),
            token,
            agent: ureq::Agent::config_builder()
                .http_status_as_error(false)
                // the host compiles every new component before it answers
                .timeout_global(Some(Duration::from_secs(600)))
                .build()
                .into(),
        }
    }

    /// Sends a request; the JSON reply, or the host's JSON error as the error's message.
    pub(crate) fn send(
        &self,
        method: &str,
        path: &str,
        content_type: &str,
        body: &[u8],
    ) -> anyhow::Result<Value> {
        let url = format!("{}{path}", self.base);
        let mut request = ureq::http::Request::builder()
            .method(method)
            .uri(&url)
            .header("content-type", content_type);
        if let Some(token) = &self.token {
            request = request.header("authorization", bearer(token));
        }
        let request = request.body(body.to_vec())?;
        let response = self
            .agent
            .run(request)
            .with_context(|| format!("cannot reach {url} (is `wasmdo serve` running?)"))?;
        let status = response.status();
        let text = response.into_body().read_to_string()?;
        let body: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        if status.is_success() {
            Ok(body)
        } else {
            let (message, kind) = match serde_json::from_value::<ErrorBody>(body.clone()) {
                Ok(e) => (e.error, format!(" ({})", e.kind)),
                Err(_) => (
                    body.as_str()
                        .map_or_else(|| body.to_string(), str::to_owned),
                    String::new(),
                ),
            };
            bail!("{method} {url}: HTTP {status}: {message}{kind}")
        }
    }
}

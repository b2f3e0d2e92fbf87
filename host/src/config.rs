//! `wasmdo.toml`: where the host listens, where it keeps its data, its [`Limits`], and per-class
//! settings (components deployed at start-up, and what a class is granted: environment variables,
//! objects it may call, hosts it may send HTTP requests to).
//!
//! ```toml
//! listen = "127.0.0.1:8080"          # the control plane: /_admin, /rpc, /objects (and the Worker)
//! public-listen = "0.0.0.0:8787"      # optional: a listener that serves only the entry Worker
//! admin-token = "…"                    # or WASMDO_ADMIN_TOKEN: deploy and admin (and calls)
//! call-token = "…"                     # or WASMDO_CALL_TOKEN: /rpc and /objects only
//! data = "./data"
//! compile-cache = "./data/compiled"   # precompiled components; hosts may share one
//! journal-dir = "/fast-disk/journal"   # the commit journal (default <data>/journal)
//! entry = "front"                      # the entry Worker: answers requests outside the host's routes
//!
//! [limits]
//! max-memory-bytes = 134217728
//!
//! [classes.booking]
//! component = "target/wasm32-wasip2/release/booking.wasm"   # deployed at start (relative to this file)
//! env = { SEATS = "40" }
//! bindings = { COUNTER = "counter" }                         # objects it may call
//! fetch = ["api.example.com", "127.0.0.1:8787", "*.example.org"]   # outbound HTTP (none by default)
//! ```

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::StartError;
use crate::limits::Limits;
use crate::outbound::AllowList;

/// The default listen address of `wasmdo serve`.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";

/// The environment variable that sets `admin-token` (over the config file's).
pub const ADMIN_TOKEN_ENV: &str = "WASMDO_ADMIN_TOKEN";
/// The environment variable that sets `call-token` (over the config file's).
pub const CALL_TOKEN_ENV: &str = "WASMDO_CALL_TOKEN";

/// Host configuration; every field has a default so an empty file (or none) is valid.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct Config {
    /// Address of the control plane: `/_admin`, `/rpc`, `/objects`, and the entry Worker for
    /// every other path. Port 0 picks a free port (printed at start-up). Off loopback it needs an
    /// `admin-token`.
    pub listen: SocketAddr,
    /// Address of the public plane, if any: every request there goes to the entry Worker (404
    /// without one), whatever its path; objects are reachable only through the Worker, as on
    /// Cloudflare. Needs no token.
    pub public_listen: Option<SocketAddr>,
    /// The credential of the control plane's admin scope (deploys, projects, components,
    /// metrics, and everything the call scope allows), sent as `Authorization: Bearer <token>`.
    /// Without one the control plane is open, which the host allows only on loopback.
    pub admin_token: Option<Token>,
    /// The credential of the call scope: `/rpc`, `/objects`, and reading classes and ids. Needs
    /// an `admin-token` too.
    pub call_token: Option<Token>,
    /// Data directory: object databases, uploaded components, compiled artifacts. Relative paths
    /// in a config file are relative to the file; the default is `./data`.
    pub data: Option<PathBuf>,
    /// Directory of precompiled components (keyed by content hash and engine build). Default
    /// `<data>/compiled`. Hosts may share one: entries are written atomically and never change,
    /// which spares each host the seconds a big (JavaScript, Python) component takes to compile.
    pub compile_cache: Option<PathBuf>,
    /// Directory of the commit journal, which every durable commit is fsynced to. Default
    /// `<data>/journal`; a separate (fast, low-latency) disk helps, as a database's WAL does.
    /// Never share one between hosts.
    pub journal_dir: Option<PathBuf>,
    /// The entry Worker: the class whose `fetch` answers every request outside `/_admin/`,
    /// `/rpc/` and `/objects/`. A project deploy sets it too, until the next start: the entry
    /// named here wins at every start; without one, the last project deploy's is restored.
    pub entry: Option<String>,
    /// Resource limits.
    pub limits: Limits,
    /// Per-class settings, by class name.
    pub classes: BTreeMap<String, ClassConfig>,
    /// Cluster mode (`None`: a single host, today's default).
    pub cluster: Option<ClusterConfig>,
}

/// `[cluster]`: this host is one of many sharing a PostgreSQL database; each object is owned by
/// one host at a time, and any host forwards events to the owner.
///
/// ```toml
/// [cluster]
/// postgres = "postgres://wasmdo@db.internal:5432/wasmdo"
/// host-id = "a"                          # unique per host, stable across restarts
/// advertise = "http://10.0.0.5:8080"     # how other hosts reach this one (default: listen)
/// lease-ms = 2000                        # a host silent this long is dead
/// retain-batches = 0                     # recent batches kept restorable (superseded pages)
/// ```
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ClusterConfig {
    /// The PostgreSQL connection string (libpq style, `postgres://…` or `host=… user=…`).
    pub postgres: String,
    /// This host's id: unique in the cluster, the same across its restarts.
    pub host_id: String,
    /// The URL other hosts forward events to (`http://host:port`); default: the control plane's
    /// bound address.
    #[serde(default)]
    pub advertise: Option<String>,
    /// How long a host may go without a heartbeat before others take its objects over.
    #[serde(default = "default_lease_ms")]
    pub lease_ms: u64,
    /// How many of an object's most recent batches stay restorable in the store; older
    /// superseded page versions are compacted away (every 1,024 batches). Default 0: the store
    /// keeps just what the latest state needs.
    #[serde(default)]
    pub retain_batches: u64,
}

/// The default lease: 2 s (failover within a few seconds of a host's death).
fn default_lease_ms() -> u64 {
    2000
}

/// A bearer token: kept out of `Debug` output (and so out of logs).
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Token(String);

impl Token {
    /// Shortest token the host accepts: 16 bytes of base64 or hex are 96–128 bits.
    pub const MIN_BYTES: usize = 16;

    /// A token from its text.
    pub fn new(token: impl Into<String>) -> Token {
        Token(token.into())
    }

    /// The token's text: for a client to send, never to print.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(redacted)")
    }
}

/// Settings of one class.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct ClassConfig {
    /// A component file deployed as this class when the host starts (skipped if the same
    /// content is already the class's current version).
    pub component: Option<PathBuf>,
    /// Environment variables the class's objects can read with `object.env`. Merged over a
    /// project deploy's (a name in both takes this value).
    pub env: BTreeMap<String, String>,
    /// Bindings: a name (e.g. `COUNTER`) → the class its objects may call (`counter`). A class
    /// imports a binding's stub from the WIT package `binding:<name>` (lower case, `_` → `-`).
    /// Merged over a project deploy's, as `env`.
    pub bindings: BTreeMap<String, String>,
    /// Hosts its objects may send HTTP requests to through `wasi:http`: `host` (any port),
    /// `host:port`, or `*.suffix` (every subdomain of `suffix`). Empty, the default, allows none;
    /// see [`crate::outbound`].
    pub fetch: AllowList,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: DEFAULT_LISTEN.parse().expect("valid default address"),
            public_listen: None,
            admin_token: None,
            call_token: None,
            data: None,
            compile_cache: None,
            journal_dir: None,
            entry: None,
            limits: Limits::default(),
            classes: BTreeMap::new(),
            cluster: None,
        }
    }
}

impl Config {
    /// Reads a config file; relative component paths are resolved against the file's directory.
    pub fn load(path: &Path) -> Result<Config, StartError> {
        let text = std::fs::read_to_string(path).map_err(|source| StartError::ReadConfig {
            path: path.to_owned(),
            source,
        })?;
        let mut config: Config =
            toml::from_str(&text).map_err(|source| StartError::InvalidConfig {
                path: path.to_owned(),
                source,
            })?;
        let base = path.parent().unwrap_or(Path::new("."));
        for class in config.classes.values_mut() {
            if let Some(component) = &class.component
                && component.is_relative()
            {
                class.component = Some(base.join(component));
            }
        }
        if let Some(data) = &config.data
            && data.is_relative()
        {
            config.data = Some(base.join(data));
        }
        if let Some(cache) = &config.compile_cache
            && cache.is_relative()
        {
            config.compile_cache = Some(base.join(cache));
        }
        if let Some(journal) = &config.journal_dir
            && journal.is_relative()
        {
            config.journal_dir = Some(base.join(journal));
        }
        Ok(config)
    }

    /// Takes the tokens from the environment where it sets them (`WASMDO_ADMIN_TOKEN`,
    /// `WASMDO_CALL_TOKEN`): a secret is better kept out of a file that is checked in.
    pub fn tokens_from_env(&mut self) {
        for (var, token) in [
            (ADMIN_TOKEN_ENV, &mut self.admin_token),
            (CALL_TOKEN_ENV, &mut self.call_token),
        ] {
            if let Ok(value) = std::env::var(var)
                && !value.is_empty()
            {
                *token = Some(Token::new(value));
            }
        }
    }

    /// Refuses settings that would put the control plane on a network unprotected, or protect
    /// it with a guessable token.
    pub fn check_planes(&self) -> Result<(), StartError> {
        for (setting, token) in [
            ("admin-token", &self.admin_token),
            ("call-token", &self.call_token),
        ] {
            let Some(token) = token else { continue };
            let text = token.expose();
            let why = if text.len() < Token::MIN_BYTES {
                Some(format!("it is shorter than {} bytes", Token::MIN_BYTES))
            } else if !text.bytes().all(|b| b.is_ascii_graphic()) {
                Some("it may hold only visible ASCII characters (no spaces)".to_owned())
            } else {
                None
            };
            if let Some(why) = why {
                return Err(StartError::BadToken { setting, why });
            }
        }
        if self.call_token.is_some() && self.admin_token.is_none() {
            return Err(StartError::BadToken {
                setting: "call-token",
                why: "it needs an admin-token too (or deploys would be open to anyone)".into(),
            });
        }
        if self.call_token.is_some() && self.call_token == self.admin_token {
            return Err(StartError::BadToken {
                setting: "call-token",
                why: "it is the admin-token: callers would be able to deploy".into(),
            });
        }
        if !self.listen.ip().is_loopback() && self.admin_token.is_none() {
            return Err(StartError::OpenControlPlane { addr: self.listen });
        }
        Ok(())
    }

    /// The data directory in effect.
    pub fn data_dir(&self) -> PathBuf {
        self.data.clone().unwrap_or_else(|| PathBuf::from("./data"))
    }

    /// The directory of the commit journal in effect.
    pub fn journal_dir(&self) -> PathBuf {
        self.journal_dir
            .clone()
            .unwrap_or_else(|| self.data_dir().join("journal"))
    }

    /// The directory of precompiled components in effect.
    pub fn compile_cache_dir(&self) -> PathBuf {
        self.compile_cache
            .clone()
            .unwrap_or_else(|| self.data_dir().join("compiled"))
    }
}

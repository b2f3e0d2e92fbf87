//! `wasmdo.toml`: where the host listens, where it keeps its data, its [`Limits`], and per-class
//! settings (components deployed at start-up, and what a class is granted: environment variables,
//! objects it may call, hosts it may send HTTP requests to).
//!
//! ```toml
//! listen = "127.0.0.1:8080"
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

/// Host configuration; every field has a default so an empty file (or none) is valid.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct Config {
    /// Address to listen on; port 0 picks a free port (printed at start-up).
    pub listen: SocketAddr,
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
            data: None,
            compile_cache: None,
            journal_dir: None,
            entry: None,
            limits: Limits::default(),
            classes: BTreeMap::new(),
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

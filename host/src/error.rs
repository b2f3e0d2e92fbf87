//! Errors as the host's users see them. Each variant is named after what went wrong for the
//! caller; the same name is the JSON `kind` the gateway returns, and the gateway maps each kind to
//! one HTTP status (`gateway::status_of`).

use std::path::PathBuf;
use std::sync::Arc;

use thiserror::Error;

/// The cause of a host-side failure, kept as the error's `source` so it can be traced; shared,
/// because one error is cloned into every reply of a batch.
pub type Cause = Arc<dyn std::error::Error + Send + Sync>;

/// An error of any kind, boxed: what the internal steps of loading and compiling report.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Why a call to an object (RPC or fetch) or an admin request failed.
#[derive(Debug, Clone, Error)]
#[non_exhaustive]
pub enum ObjectError {
    /// No class of that name is deployed.
    #[error("no class named `{0}` is deployed")]
    UnknownClass(String),
    /// The class exports no such RPC method.
    #[error("class `{class}` has no method `{method}`; its methods are: {available}")]
    UnknownMethod {
        /// The class called.
        class: String,
        /// The method asked for.
        method: String,
        /// Comma-separated methods the class does export.
        available: String,
    },
    /// The arguments do not match the method's WIT signature (or the body is not JSON).
    #[error("{0}")]
    InvalidArgument(String),
    /// The method returned its WIT `result::err`; the payload is the error value as JSON.
    #[error("{}", method_error_message(.0))]
    MethodError(serde_json::Value),
    /// An object-to-object call would re-enter an object waiting in its own call chain.
    #[error("call cycle: {0}")]
    CallCycle(String),
    /// `fetch` returned an error string.
    #[error("fetch failed: {0}")]
    FetchFailed(String),
    /// The alarm handler returned an error (logged; the alarm is retried).
    #[error("the alarm handler failed: {0}")]
    AlarmFailed(String),
    /// The event burnt all its fuel.
    #[error(
        "CPU limit exceeded: the event used all of its {0} fuel; the instance was reset and its writes rolled back"
    )]
    CpuLimitExceeded(u64),
    /// The event ran past its wall-clock deadline.
    #[error(
        "wall-clock limit exceeded: the event ran longer than {0} ms; the instance was reset and its writes rolled back"
    )]
    WallClockLimitExceeded(u64),
    /// The instance grew its memory past the limit.
    #[error("{0}; the instance was reset and its writes rolled back")]
    MemoryLimitExceeded(String),
    /// The guest recursed past the stack limit.
    #[error(
        "stack overflow: the guest exhausted its {0}-byte stack; the instance was reset and its writes rolled back"
    )]
    StackOverflow(usize),
    /// The guest trapped (a Rust panic, `unreachable`, an out-of-bounds access, …).
    #[error("the object trapped: {0}; the instance was reset and its writes rolled back")]
    Trap(String),
    /// The object's `init` failed or trapped, so it could not be activated.
    #[error("the object could not be activated: {0}")]
    InitFailed(String),
    /// The object's mailbox is full, or no room for another live object could be made.
    #[error("overloaded: {0}")]
    Overloaded(String),
    /// The event's writes could not be committed durably; nothing was acknowledged.
    #[error("storage commit failed: {0}")]
    CommitFailed(String),
    /// A storage quota across objects is used up (`max-objects-per-class`): nothing was created.
    #[error("quota exceeded: {0}")]
    QuotaExceeded(String),
    /// A stored component cannot be deleted: a class runs it.
    #[error("{0}")]
    ComponentInUse(String),
    /// A request body exceeds the configured limit.
    #[error("request body too large: the limit is {0} bytes")]
    BodyTooLarge(u64),
    /// An uploaded component was refused.
    #[error("{0}")]
    InvalidComponent(String),
    /// A malformed class name, object name or id.
    #[error("{0}")]
    InvalidName(String),
    /// A project's manifest was refused (`PUT /_admin/projects/{name}`); the message names the
    /// class, binding or migration at fault. Nothing was changed.
    #[error("{0}")]
    InvalidManifest(String),
    /// A route that does not exist.
    #[error("{0}")]
    NotFound(String),
    /// A control route was asked for without a valid token.
    #[error("{0}")]
    Unauthorized(String),
    /// The token is valid but its scope does not cover the route (a call token deploying).
    #[error("{0}")]
    Forbidden(String),
    /// A malformed request: a bad `Host` or header, or a framing proxies could disagree on.
    #[error("{0}")]
    InvalidRequest(String),
    /// The client took too long to send its request.
    #[error("{0}")]
    RequestTimeout(String),
    /// A caller's stub for a method no longer matches the method (the callee's class was
    /// redeployed with another signature): the caller must regenerate its stub.
    #[error("{0}")]
    StaleStub(String),
    /// Cluster mode: this host does not own the object (another live host does, or this host's
    /// claim lapsed). A host that forwarded the event learns to look the owner up again.
    #[error("{0}")]
    NotOwner(String),
    /// Cluster mode: the cluster store (PostgreSQL) cannot be reached, so no object can be
    /// claimed or commit; retry once it is back.
    #[error("{0}")]
    ClusterUnavailable(String),
    /// Cluster mode: the error the object's owner host answered a forwarded event with, as it
    /// answered it.
    #[error("{}", .0.message)]
    Relayed(Box<Relayed>),
    /// A host-side failure (I/O, a bug): what failed, and why (the source, when there is one).
    #[error("internal error: {what}")]
    Internal {
        /// What the host was doing.
        what: String,
        /// Why it failed.
        #[source]
        source: Option<Cause>,
    },
}

impl ObjectError {
    /// A host-side failure with no underlying error (a broken invariant, a host shutting down).
    pub(crate) fn internal(what: impl Into<String>) -> ObjectError {
        ObjectError::Internal {
            what: what.into(),
            source: None,
        }
    }

    /// A host-side failure: what the host was doing, and the error that stopped it.
    pub(crate) fn internal_from(
        what: impl Into<String>,
        source: impl Into<BoxError>,
    ) -> ObjectError {
        ObjectError::Internal {
            what: what.into(),
            source: Some(Arc::from(source.into())),
        }
    }

    /// The error with its causes, `outer: inner: …`: what a caller is told.
    pub fn message(&self) -> String {
        let mut message = self.to_string();
        let mut source = std::error::Error::source(self);
        while let Some(cause) = source {
            message.push_str(": ");
            message.push_str(&cause.to_string());
            source = cause.source();
        }
        message
    }

    /// The JSON `kind` of this error: the variant's name.
    pub fn kind(&self) -> &str {
        match self {
            ObjectError::UnknownClass(_) => "UnknownClass",
            ObjectError::UnknownMethod { .. } => "UnknownMethod",
            ObjectError::InvalidArgument(_) => "InvalidArgument",
            ObjectError::MethodError(_) => "MethodError",
            ObjectError::CallCycle(_) => "CallCycle",
            ObjectError::FetchFailed(_) => "FetchFailed",
            ObjectError::AlarmFailed(_) => "AlarmFailed",
            ObjectError::CpuLimitExceeded(_) => "CpuLimitExceeded",
            ObjectError::WallClockLimitExceeded(_) => "WallClockLimitExceeded",
            ObjectError::MemoryLimitExceeded(_) => "MemoryLimitExceeded",
            ObjectError::StackOverflow(_) => "StackOverflow",
            ObjectError::Trap(_) => "Trap",
            ObjectError::InitFailed(_) => "InitFailed",
            ObjectError::Overloaded(_) => "Overloaded",
            ObjectError::CommitFailed(_) => "CommitFailed",
            ObjectError::BodyTooLarge(_) => "BodyTooLarge",
            ObjectError::QuotaExceeded(_) => "QuotaExceeded",
            ObjectError::ComponentInUse(_) => "ComponentInUse",
            ObjectError::InvalidComponent(_) => "InvalidComponent",
            ObjectError::InvalidName(_) => "InvalidName",
            ObjectError::InvalidManifest(_) => "InvalidManifest",
            ObjectError::NotFound(_) => "NotFound",
            ObjectError::Unauthorized(_) => "Unauthorized",
            ObjectError::Forbidden(_) => "Forbidden",
            ObjectError::InvalidRequest(_) => "InvalidRequest",
            ObjectError::RequestTimeout(_) => "RequestTimeout",
            ObjectError::StaleStub(_) => "StaleStub",
            ObjectError::NotOwner(_) => "NotOwner",
            ObjectError::ClusterUnavailable(_) => "ClusterUnavailable",
            ObjectError::Relayed(relayed) => &relayed.kind,
            ObjectError::Internal { .. } => "Internal",
        }
    }
}

/// An error another host of the cluster answered with: its status, kind and message, kept as
/// they were.
#[derive(Debug, Clone)]
pub struct Relayed {
    /// The HTTP status the owner answered.
    pub status: u16,
    /// The error's kind, as the owner named it.
    pub kind: String,
    /// The message.
    pub message: String,
    /// A method's own error value, for `MethodError`.
    pub value: Option<serde_json::Value>,
}

impl Relayed {
    /// The error of an answer with `status` and JSON `body` (`{"error", "kind", "value"?}`).
    pub(crate) fn from_answer(status: u16, body: &[u8]) -> ObjectError {
        let parsed: Option<wasmdo_protocol::error::ErrorBody> = serde_json::from_slice(body).ok();
        let (kind, message, value) = match parsed {
            Some(body) => (body.kind, body.error, body.value),
            None => (
                "Internal".to_owned(),
                format!(
                    "the owner host answered {status}: {}",
                    String::from_utf8_lossy(&body[..body.len().min(200)])
                ),
                None,
            ),
        };
        if kind == "MethodError"
            && let Some(value) = value
        {
            return ObjectError::MethodError(value);
        }
        ObjectError::Relayed(Box::new(Relayed {
            status,
            kind,
            message,
            value,
        }))
    }
}

/// The message of a method's own error: its text when the error value is a string, or a record
/// with a string `message` (and maybe `name`, as a JavaScript `Error` crosses RPC).
fn method_error_message(value: &serde_json::Value) -> String {
    let text = match value {
        serde_json::Value::String(text) => Some(text.clone()),
        serde_json::Value::Object(fields) => match (fields.get("name"), fields.get("message")) {
            (Some(serde_json::Value::String(name)), Some(serde_json::Value::String(message))) => {
                Some(format!("{name}: {message}"))
            }
            (_, Some(serde_json::Value::String(message))) => Some(message.clone()),
            _ => None,
        },
        _ => None,
    };
    match text {
        Some(text) => format!("the method returned an error: {text}"),
        None => "the method returned an error".to_owned(),
    }
}

/// Why a host could not start: each variant names the file or setting at fault; the source says
/// why.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum StartError {
    /// The configuration file cannot be read.
    #[error("cannot read config {}", .path.display())]
    ReadConfig {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The configuration file is not valid `wasmdo.toml`.
    #[error("invalid config {}", .path.display())]
    InvalidConfig {
        /// The file.
        path: PathBuf,
        /// What is wrong, and where.
        #[source]
        source: toml::de::Error,
    },
    /// The data directory (or a file in it) cannot be created, read or written.
    #[error("{what} {}", .path.display())]
    DataDir {
        /// What the host was doing.
        what: &'static str,
        /// The directory or file.
        path: PathBuf,
        /// Why.
        #[source]
        source: Cause,
    },
    /// Another host holds the data directory.
    #[error(
        "data dir {} is in use by another wasmdo host; stop it or pick another --data",
        .path.display()
    )]
    DataDirInUse {
        /// The directory.
        path: PathBuf,
    },
    /// Cluster mode could not start: the store is unreachable, or the data directory is not a
    /// cluster host's.
    #[error("cluster: {0}")]
    Cluster(String),
    /// The WebAssembly engine cannot be created with the configured limits.
    #[error("cannot create the wasm engine")]
    Engine(#[source] Cause),
    /// A class deployed before no longer loads (its stored component, or this host's world).
    #[error("class `{class}` no longer loads")]
    ClassNoLongerLoads {
        /// The class.
        class: String,
        /// Why.
        #[source]
        source: Cause,
    },
    /// The component the config names for a class cannot be read.
    #[error("class `{class}`: cannot read {}", .component.display())]
    ReadComponent {
        /// The class.
        class: String,
        /// The file.
        component: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The component the config names for a class was refused.
    #[error("class `{class}` ({})", .component.display())]
    Deploy {
        /// The class.
        class: String,
        /// The file.
        component: PathBuf,
        /// Why.
        #[source]
        source: ObjectError,
    },
    /// The control plane would listen off loopback with no token.
    #[error(
        "refusing to serve the control plane (deploys, /rpc, /objects) on {addr} without a token: set `admin-token` in wasmdo.toml or WASMDO_ADMIN_TOKEN (and `call-token` / WASMDO_CALL_TOKEN for callers), or listen on loopback and serve users the entry Worker with `public-listen`"
    )]
    OpenControlPlane {
        /// The configured control address.
        addr: std::net::SocketAddr,
    },
    /// A token setting is refused.
    #[error("`{setting}` is refused: {why}")]
    BadToken {
        /// `admin-token` or `call-token`.
        setting: &'static str,
        /// Why.
        why: String,
    },
    /// The listener cannot be bound.
    #[error("cannot listen on {addr}")]
    Listen {
        /// The configured address.
        addr: std::net::SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

impl StartError {
    /// A failure on `path` in the data directory.
    pub(crate) fn data_dir(
        what: &'static str,
        path: &std::path::Path,
        source: impl Into<BoxError>,
    ) -> StartError {
        StartError::DataDir {
            what,
            path: path.to_owned(),
            source: Arc::from(source.into()),
        }
    }
}

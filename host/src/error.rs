//! Errors as the host's users see them. Each variant is named after what went wrong for the
//! caller; the same name is the JSON `kind` the gateway returns, and the gateway maps each kind to
//! one HTTP status (`gateway::status_of`).

use thiserror::Error;

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
    /// A host-side failure (I/O, a bug); the message says what.
    #[error("internal error: {0}")]
    Internal(String),
}

impl ObjectError {
    /// The JSON `kind` of this error: the variant's name.
    pub fn kind(&self) -> &'static str {
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
            ObjectError::InvalidComponent(_) => "InvalidComponent",
            ObjectError::InvalidName(_) => "InvalidName",
            ObjectError::InvalidManifest(_) => "InvalidManifest",
            ObjectError::NotFound(_) => "NotFound",
            ObjectError::Internal(_) => "Internal",
        }
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

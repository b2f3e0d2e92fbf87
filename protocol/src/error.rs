//! The error body every failing host request answers with.

use serde::{Deserialize, Serialize};

/// `{"error": "<message>", "kind": "<Kind>"}`, plus `"value"` when a method returned its own
/// error (HTTP 422). `kind` names what went wrong for the caller (`UnknownMethod`,
/// `CpuLimitExceeded`, …), the same name as the host's error variant.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct ErrorBody {
    /// A message for people.
    pub error: String,
    /// The error's kind, for programs.
    pub kind: String,
    /// The method's own error value, for `MethodError`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<serde_json::Value>,
}

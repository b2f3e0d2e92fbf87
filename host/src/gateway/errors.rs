//! Errors → HTTP, in one place: one status per error kind, every body
//! `{"error": "<message>", "kind": "<Kind>"}` (plus `"value"` for a method's own error).

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Response, StatusCode};

use crate::error::ObjectError;

/// The HTTP status of each error kind.
pub(crate) fn status_of(error: &ObjectError) -> StatusCode {
    match error {
        ObjectError::UnknownClass(_)
        | ObjectError::UnknownMethod { .. }
        | ObjectError::NotFound(_) => StatusCode::NOT_FOUND,
        ObjectError::InvalidArgument(_)
        | ObjectError::InvalidComponent(_)
        | ObjectError::InvalidName(_)
        | ObjectError::InvalidManifest(_)
        | ObjectError::InvalidRequest(_) => StatusCode::BAD_REQUEST,
        ObjectError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
        ObjectError::Forbidden(_) => StatusCode::FORBIDDEN,
        ObjectError::RequestTimeout(_) => StatusCode::REQUEST_TIMEOUT,
        ObjectError::MethodError(_) => StatusCode::UNPROCESSABLE_ENTITY,
        ObjectError::CallCycle(_) | ObjectError::ComponentInUse(_) => StatusCode::CONFLICT,
        ObjectError::BodyTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
        ObjectError::QuotaExceeded(_) => StatusCode::INSUFFICIENT_STORAGE,
        ObjectError::Overloaded(_) => StatusCode::SERVICE_UNAVAILABLE,
        ObjectError::FetchFailed(_)
        | ObjectError::AlarmFailed(_)
        | ObjectError::CpuLimitExceeded(_)
        | ObjectError::WallClockLimitExceeded(_)
        | ObjectError::MemoryLimitExceeded(_)
        | ObjectError::StackOverflow(_)
        | ObjectError::Trap(_)
        | ObjectError::InitFailed(_)
        | ObjectError::CommitFailed(_)
        | ObjectError::Internal { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        ObjectError::StaleStub(_) => StatusCode::CONFLICT,
        ObjectError::NotOwner(_) => StatusCode::MISDIRECTED_REQUEST,
        ObjectError::ClusterUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        ObjectError::Relayed(relayed) => {
            StatusCode::from_u16(relayed.status).unwrap_or(StatusCode::BAD_GATEWAY)
        }
    }
}

/// The JSON error response for `error`.
pub(crate) fn error_response(error: &ObjectError) -> Response<Full<Bytes>> {
    let mut body = serde_json::json!({ "error": error.message(), "kind": error.kind() });
    if let ObjectError::MethodError(value) = error {
        body["value"] = value.clone();
    }
    json_response(status_of(error), &body)
}

/// A JSON response with `status`.
pub(crate) fn json_response(status: StatusCode, body: &serde_json::Value) -> Response<Full<Bytes>> {
    let mut bytes = serde_json::to_vec(body).expect("JSON values serialize");
    bytes.push(b'\n');
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(bytes)))
        .expect("valid response")
}

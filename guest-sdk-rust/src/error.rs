//! The one error type of the SDK: the host's storage `error` variant, plus what can go wrong
//! on the guest side while converting between Rust values and their stored form.

use std::fmt;

use crate::bindings::wasmdo::object::storage::Error as WitError;

/// Why a storage or SQL call failed.
///
/// Every case but [`Error::Serialization`] mirrors a case of the WIT `storage.error` variant
/// and carries the same name (`ValueTooLarge` ↔ `value-too-large`); errors are data, so the
/// event goes on and decides what to do. [`Error::kind`] gives the WIT name and is the first
/// word of the [`Display`](fmt::Display) text.
///
/// For `init` and `fetch`, which return `Result<_, String>`, `?` turns an `Error` into its
/// display text.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Error {
    /// Key + value exceed the per-entry limit; carries the limit in bytes.
    ValueTooLarge(u64),
    /// The object's database would exceed its size quota.
    QuotaExceeded,
    /// A SQL statement exceeds the statement size limit; carries the limit in bytes.
    StatementTooLarge(u64),
    /// A SQL statement binds more parameters than allowed; carries the limit.
    TooManyParameters(u32),
    /// The result of one call would exceed the per-call result limit; carries the limit in bytes.
    ResultTooLarge(u64),
    /// The SQL text is invalid, refers to something that does not exist, violates a constraint,
    /// or touches a table reserved for the host.
    Sql(String),
    /// A commit or rollback without an open explicit transaction.
    NoTransaction,
    /// An argument is invalid (the message says which and why).
    InvalidArgument(String),
    /// The storage backend failed (disk full, I/O error); the event should give up.
    Internal(String),
    /// A value could not be converted between Rust and its stored form: a KV value that is not
    /// the JSON of the requested type, a value that cannot be encoded as JSON, a request body
    /// that is not UTF-8, or an SQL result that does not fit the requested Rust type (wrong
    /// column type, unknown column, not exactly one row for [`sql::Cursor::one`](crate::sql::Cursor::one)).
    Serialization(String),
}

impl Error {
    /// The case's name as written in WIT and in the host's JSON errors (`value-too-large`, …);
    /// `serialization` for [`Error::Serialization`], which only the SDK raises.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::ValueTooLarge(_) => "value-too-large",
            Error::QuotaExceeded => "quota-exceeded",
            Error::StatementTooLarge(_) => "statement-too-large",
            Error::TooManyParameters(_) => "too-many-parameters",
            Error::ResultTooLarge(_) => "result-too-large",
            Error::Sql(_) => "sql",
            Error::NoTransaction => "no-transaction",
            Error::InvalidArgument(_) => "invalid-argument",
            Error::Internal(_) => "internal",
            Error::Serialization(_) => "serialization",
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = self.kind();
        match self {
            Error::ValueTooLarge(limit) => {
                write!(f, "{kind}: key + value are too large (limit {limit} bytes)")
            }
            Error::QuotaExceeded => write!(f, "{kind}: the object's storage quota is exhausted"),
            Error::StatementTooLarge(limit) => {
                write!(
                    f,
                    "{kind}: the SQL statement is too large (limit {limit} bytes)"
                )
            }
            Error::TooManyParameters(limit) => {
                write!(
                    f,
                    "{kind}: the SQL statement binds too many parameters (limit {limit})"
                )
            }
            Error::ResultTooLarge(limit) => {
                write!(
                    f,
                    "{kind}: the result is too large (limit {limit} bytes); narrow the query"
                )
            }
            Error::NoTransaction => write!(f, "{kind}: no explicit transaction is open"),
            Error::Sql(msg)
            | Error::InvalidArgument(msg)
            | Error::Internal(msg)
            | Error::Serialization(msg) => write!(f, "{kind}: {msg}"),
        }
    }
}

impl std::error::Error for Error {}

impl From<WitError> for Error {
    fn from(e: WitError) -> Self {
        match e {
            WitError::ValueTooLarge(limit) => Error::ValueTooLarge(limit),
            WitError::QuotaExceeded => Error::QuotaExceeded,
            WitError::StatementTooLarge(limit) => Error::StatementTooLarge(limit),
            WitError::TooManyParameters(limit) => Error::TooManyParameters(limit),
            WitError::ResultTooLarge(limit) => Error::ResultTooLarge(limit),
            WitError::Sql(msg) => Error::Sql(msg),
            WitError::NoTransaction => Error::NoTransaction,
            WitError::InvalidArgument(msg) => Error::InvalidArgument(msg),
            WitError::Internal(msg) => Error::Internal(msg),
        }
    }
}

impl From<serde_json::Error> for Error {
    fn from(e: serde_json::Error) -> Self {
        Error::Serialization(e.to_string())
    }
}

/// Lets `?` turn an [`Error`] into the `String` error of
/// [`DurableObject::init`](crate::DurableObject::init) and
/// [`DurableObject::fetch`](crate::DurableObject::fetch).
impl From<Error> for String {
    fn from(e: Error) -> Self {
        e.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_starts_with_the_wit_case_name() {
        assert_eq!(
            Error::ValueTooLarge(1000).to_string(),
            "value-too-large: key + value are too large (limit 1000 bytes)"
        );
        assert_eq!(
            String::from(Error::Sql("no such table: t".into())),
            "sql: no such table: t"
        );
    }
}

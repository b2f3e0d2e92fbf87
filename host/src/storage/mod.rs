//! The `storage` capability: the guest-facing `wasmdo:object/storage` interface, implemented over
//! the object's own SQLite database ([`sqlite::SqliteStorage`]).
//!
//! This file only translates between WIT types and the backend's; what each call does (limits,
//! transactions, the authorizer that keeps user SQL away from the host's tables) is documented in
//! `sqlite.rs`. Every storage failure reaches the guest as data (`storage.error`), never as a
//! trap: a guest that hits a limit decides what to do.

pub(crate) mod sqlite;

use crate::bindings::storage_api::{self, Error, ListOptions, SqlResult, SqlValue};
use sqlite::{SqliteStorage, StorageError};

type Outcome<T> = wasmtime::Result<Result<T, Error>>;

fn wit_error(e: StorageError) -> Error {
    match e {
        StorageError::ValueTooLarge(n) => Error::ValueTooLarge(n),
        StorageError::QuotaExceeded => Error::QuotaExceeded,
        StorageError::StatementTooLarge(n) => Error::StatementTooLarge(n),
        StorageError::TooManyParameters(n) => Error::TooManyParameters(n),
        StorageError::ResultTooLarge(n) => Error::ResultTooLarge(n),
        StorageError::Sql(m) => Error::Sql(m),
        StorageError::NoTransaction => Error::NoTransaction,
        StorageError::InvalidArgument(m) => Error::InvalidArgument(m),
        StorageError::Internal(m) => {
            tracing::error!(target: "wasmdo.storage", "storage backend failed: {m}");
            Error::Internal(m)
        }
    }
}

fn outcome<T>(r: Result<T, StorageError>) -> Outcome<T> {
    Ok(r.map_err(wit_error))
}

fn from_wit_value(v: SqlValue) -> sqlite::SqlValue {
    match v {
        SqlValue::Null => sqlite::SqlValue::Null,
        SqlValue::Integer(i) => sqlite::SqlValue::Integer(i),
        SqlValue::Real(f) => sqlite::SqlValue::Real(f),
        SqlValue::Text(s) => sqlite::SqlValue::Text(s),
        SqlValue::Blob(b) => sqlite::SqlValue::Blob(b),
    }
}

fn to_wit_value(v: sqlite::SqlValue) -> SqlValue {
    match v {
        sqlite::SqlValue::Null => SqlValue::Null,
        sqlite::SqlValue::Integer(i) => SqlValue::Integer(i),
        sqlite::SqlValue::Real(f) => SqlValue::Real(f),
        sqlite::SqlValue::Text(s) => SqlValue::Text(s),
        sqlite::SqlValue::Blob(b) => SqlValue::Blob(b),
    }
}

impl storage_api::Host for SqliteStorage {
    fn get(&mut self, key: String) -> Outcome<Option<Vec<u8>>> {
        outcome(SqliteStorage::get(self, &key))
    }

    fn get_many(&mut self, keys: Vec<String>) -> Outcome<Vec<(String, Vec<u8>)>> {
        outcome(SqliteStorage::get_many(self, &keys))
    }

    fn put(&mut self, key: String, value: Vec<u8>) -> Outcome<()> {
        outcome(SqliteStorage::put(self, &key, &value))
    }

    fn put_many(&mut self, entries: Vec<(String, Vec<u8>)>) -> Outcome<()> {
        outcome(SqliteStorage::put_many(self, &entries))
    }

    fn delete(&mut self, key: String) -> Outcome<bool> {
        outcome(SqliteStorage::delete(self, &key))
    }

    fn delete_many(&mut self, keys: Vec<String>) -> Outcome<u32> {
        outcome(SqliteStorage::delete_many(self, &keys))
    }

    fn list(&mut self, options: ListOptions) -> Outcome<Vec<(String, Vec<u8>)>> {
        let options = sqlite::ListOptions {
            prefix: options.prefix,
            start: options.start,
            end: options.end,
            limit: options.limit,
            reverse: options.reverse,
        };
        outcome(SqliteStorage::list(self, &options))
    }

    fn delete_all(&mut self) -> Outcome<()> {
        outcome(SqliteStorage::delete_all(self))
    }

    fn exec(&mut self, query: String, params: Vec<SqlValue>) -> Outcome<SqlResult> {
        let params: Vec<_> = params.into_iter().map(from_wit_value).collect();
        outcome(SqliteStorage::exec(self, &query, &params).map(|r| {
            SqlResult {
                columns: r.columns,
                rows: r
                    .rows
                    .into_iter()
                    .map(|row| row.into_iter().map(to_wit_value).collect())
                    .collect(),
                rows_read: r.rows_read,
                rows_written: r.rows_written,
            }
        }))
    }

    fn database_size(&mut self) -> Outcome<u64> {
        outcome(SqliteStorage::database_size(self))
    }

    fn begin_transaction(&mut self) -> Outcome<u32> {
        outcome(SqliteStorage::begin_transaction(self))
    }

    fn commit_transaction(&mut self) -> Outcome<()> {
        outcome(SqliteStorage::commit_transaction(self))
    }

    fn rollback_transaction(&mut self) -> Outcome<()> {
        outcome(SqliteStorage::rollback_transaction(self))
    }
}

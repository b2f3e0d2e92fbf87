//! The `storage` capability: the guest-facing `wasmdo:object/storage` interface, implemented over
//! any [`StorageBackend`] (`backend.rs`: the trait and the types it speaks); today's backend is
//! the object's own SQLite database ([`sqlite::SqliteStorage`]).
//!
//! This file only translates between WIT types and the backend's; what each call does (limits,
//! transactions, the authorizer that keeps user SQL away from the host's tables) is documented in
//! `sqlite/`. Every storage failure reaches the guest as data (`storage.error`), never as a
//! trap: a guest that hits a limit decides what to do.

pub(crate) mod backend;
pub(crate) mod commit;
pub(crate) mod journal;
pub(crate) mod sqlite;

pub(crate) use backend::{StorageBackend, StorageError};

/// What the `storage` and `alarms` host functions work on: the object's backend.
pub(crate) struct StorageView<'a>(pub(crate) &'a mut dyn StorageBackend);

/// Links `storage` and `alarms` with [`StorageView`] as their host state.
pub(crate) struct StorageApi;

impl wasmtime::component::HasData for StorageApi {
    type Data<'a> = StorageView<'a>;
}

use crate::bindings::storage_api::{self, Error, ListOptions, SqlResult, SqlValue};

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

fn from_wit_value(v: SqlValue) -> backend::SqlValue {
    match v {
        SqlValue::Null => backend::SqlValue::Null,
        SqlValue::Integer(i) => backend::SqlValue::Integer(i),
        SqlValue::Real(f) => backend::SqlValue::Real(f),
        SqlValue::Text(s) => backend::SqlValue::Text(s),
        SqlValue::Blob(b) => backend::SqlValue::Blob(b),
    }
}

fn to_wit_value(v: backend::SqlValue) -> SqlValue {
    match v {
        backend::SqlValue::Null => SqlValue::Null,
        backend::SqlValue::Integer(i) => SqlValue::Integer(i),
        backend::SqlValue::Real(f) => SqlValue::Real(f),
        backend::SqlValue::Text(s) => SqlValue::Text(s),
        backend::SqlValue::Blob(b) => SqlValue::Blob(b),
    }
}

impl storage_api::Host for StorageView<'_> {
    fn get(&mut self, key: String) -> Outcome<Option<Vec<u8>>> {
        outcome(self.0.get(&key))
    }

    fn get_many(&mut self, keys: Vec<String>) -> Outcome<Vec<(String, Vec<u8>)>> {
        outcome(self.0.get_many(&keys))
    }

    fn put(&mut self, key: String, value: Vec<u8>) -> Outcome<()> {
        outcome(self.0.put(&key, &value))
    }

    fn put_many(&mut self, entries: Vec<(String, Vec<u8>)>) -> Outcome<()> {
        outcome(self.0.put_many(&entries))
    }

    fn delete(&mut self, key: String) -> Outcome<bool> {
        outcome(self.0.delete(&key))
    }

    fn delete_many(&mut self, keys: Vec<String>) -> Outcome<u32> {
        outcome(self.0.delete_many(&keys))
    }

    fn list(&mut self, options: ListOptions) -> Outcome<Vec<(String, Vec<u8>)>> {
        let options = backend::ListOptions {
            prefix: options.prefix,
            start: options.start,
            end: options.end,
            limit: options.limit,
            reverse: options.reverse,
        };
        outcome(self.0.list(&options))
    }

    fn delete_all(&mut self) -> Outcome<()> {
        outcome(self.0.delete_all())
    }

    fn exec(&mut self, query: String, params: Vec<SqlValue>) -> Outcome<SqlResult> {
        let params: Vec<_> = params.into_iter().map(from_wit_value).collect();
        outcome(self.0.exec(&query, &params).map(|r| {
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
        outcome(self.0.database_size())
    }

    fn begin_transaction(&mut self) -> Outcome<u32> {
        outcome(self.0.begin_transaction())
    }

    fn commit_transaction(&mut self) -> Outcome<()> {
        outcome(self.0.commit_transaction())
    }

    fn rollback_transaction(&mut self) -> Outcome<()> {
        outcome(self.0.rollback_transaction())
    }
}

/// Adds the `storage` interface to `linker`, over the backend `get` returns.
pub(crate) fn add_to_linker<T: Send + 'static>(
    linker: &mut wasmtime::component::Linker<T>,
    get: fn(&mut T) -> StorageView<'_>,
) -> wasmtime::Result<()> {
    storage_api::add_to_linker::<T, StorageApi>(linker, get)
}

//! The seam between the `storage` capability and where an object's data lives: the
//! [`StorageBackend`] trait (what the guest-facing KV, SQL, transaction and alarm-row calls need)
//! and the backend-neutral types it speaks. The WIT host impls (`storage/mod.rs`,
//! `alarms/mod.rs`) are written over the trait; `sqlite/` is today's backend (one SQLite file
//! per object). A cluster store is another implementation of the same trait.
//!
//! Contract of every implementation: each call runs inside the running event's transaction
//! (opened lazily), and a failing write call changes nothing; limits are checked before work and
//! reported as [`StorageError`] data, never by panicking. Event and batch boundaries (savepoints,
//! commit, the output gate) are driven by the actor on the backend itself.

/// Why a storage call failed; one variant per case of the WIT `storage.error` variant.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub(crate) enum StorageError {
    /// Key + value (or a SQL row or value) exceed the entry limit, which it carries.
    #[error("value too large: key + value exceed the limit of {0} bytes")]
    ValueTooLarge(u64),
    /// The database would exceed its size quota.
    #[error("quota exceeded: the database would exceed its size limit")]
    QuotaExceeded,
    /// The SQL text exceeds the statement limit, which it carries.
    #[error("statement too large: the SQL exceeds the limit of {0} bytes")]
    StatementTooLarge(u64),
    /// A statement binds more parameters than the limit, which it carries.
    #[error("too many parameters: the limit is {0} per statement")]
    TooManyParameters(u32),
    /// The result would exceed the per-call result limit, which it carries.
    #[error("result too large: the result exceeds the limit of {0} bytes; narrow the query")]
    ResultTooLarge(u64),
    /// SQLite rejected the SQL, or the authorizer denied it; carries the message.
    #[error("SQL error: {0}")]
    Sql(String),
    /// `commit_transaction`/`rollback_transaction` without an open explicit transaction.
    #[error("no transaction is open")]
    NoTransaction,
    /// An argument is invalid; the message says which and why.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// The backend failed (I/O error, corrupt file, lost batch); the event should give up.
    #[error("storage failed: {0}")]
    Internal(String),
}

/// A value in a SQL parameter or result row.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum SqlValue {
    Null,
    Integer(i64),
    Real(f64),
    Text(String),
    Blob(Vec<u8>),
}

/// What one `exec` returned.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct SqlResult {
    /// Column names of the last statement (empty if it returns no rows).
    pub(crate) columns: Vec<String>,
    /// Every row of the last statement.
    pub(crate) rows: Vec<Vec<SqlValue>>,
    /// An approximation of rows read by all statements: rows returned plus rows stepped over by
    /// full table scans (`SQLITE_STMTSTATUS_FULLSCAN_STEP`). Index lookups count only the rows
    /// they return.
    pub(crate) rows_read: u64,
    /// Rows inserted, updated or deleted by all statements, including rows changed by triggers
    /// and foreign-key actions (the growth of `sqlite3_total_changes`).
    pub(crate) rows_written: u64,
}

/// Options of [`StorageBackend::list`]; bounds compare keys by their UTF-8 bytes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ListOptions {
    /// Only keys starting with this.
    pub(crate) prefix: Option<String>,
    /// Only keys >= this.
    pub(crate) start: Option<String>,
    /// Only keys < this.
    pub(crate) end: Option<String>,
    /// At most this many entries; must be positive (as in Cloudflare).
    pub(crate) limit: Option<u32>,
    /// Descending key order.
    pub(crate) reverse: bool,
}

/// A key-value entry.
pub(crate) type Entry = (String, Vec<u8>);

/// What the guest-facing storage calls of one object need from where its data lives.
pub(crate) trait StorageBackend: Send {
    /// The value of `key`; `None` if it does not exist.
    fn get(&mut self, key: &str) -> Result<Option<Vec<u8>>, StorageError>;
    /// The entries of `keys` that exist, in key order.
    fn get_many(&mut self, keys: &[String]) -> Result<Vec<Entry>, StorageError>;
    /// Stores `value` under `key`.
    fn put(&mut self, key: &str, value: &[u8]) -> Result<(), StorageError>;
    /// Stores every entry, all or none.
    fn put_many(&mut self, entries: &[Entry]) -> Result<(), StorageError>;
    /// Deletes `key`; whether it existed.
    fn delete(&mut self, key: &str) -> Result<bool, StorageError>;
    /// Deletes `keys`; how many existed.
    fn delete_many(&mut self, keys: &[String]) -> Result<u32, StorageError>;
    /// The entries `options` select, in key order (reversed on request).
    fn list(&mut self, options: &ListOptions) -> Result<Vec<Entry>, StorageError>;
    /// Deletes every entry and every table of the object.
    fn delete_all(&mut self) -> Result<(), StorageError>;
    /// Runs guest SQL with bound `params`; the last statement's rows.
    fn exec(&mut self, query: &str, params: &[SqlValue]) -> Result<SqlResult, StorageError>;
    /// The size of the object's data in bytes.
    fn database_size(&mut self) -> Result<u64, StorageError>;
    /// Opens a nested explicit transaction; its depth.
    fn begin_transaction(&mut self) -> Result<u32, StorageError>;
    /// Commits the innermost explicit transaction (into the event's).
    fn commit_transaction(&mut self) -> Result<(), StorageError>;
    /// Rolls the innermost explicit transaction back.
    fn rollback_transaction(&mut self) -> Result<(), StorageError>;
    /// The object's alarm time (ms since the epoch), as the running event sees it.
    fn get_alarm(&mut self) -> Result<Option<i64>, StorageError>;
    /// Sets the object's alarm.
    fn set_alarm(&mut self, epoch_ms: i64) -> Result<(), StorageError>;
    /// Deletes the object's alarm.
    fn delete_alarm(&mut self) -> Result<(), StorageError>;
}

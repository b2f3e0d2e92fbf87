//! The storage backend of one Durable Object: one SQLite file, owned by the object's actor.
//!
//! **What it owns.** The connection (opened lazily on the first storage call, so an object that
//! never touches storage costs no file descriptor and no I/O), the key-value table `_cf_KV`
//! (Cloudflare's name; created on the first write), and the transaction stack:
//!
//! ```text
//! BEGIN                          batch: every event since the last commit_batch, one fsync
//!   SAVEPOINT _wasmdo_event      the current event: end_event(keep) releases or undoes it
//!     SAVEPOINT _wasmdo_tx_1     begin_transaction (the guest's explicit, nested transactions)
//!       SAVEPOINT _wasmdo_tx_2   …
//!         SAVEPOINT _wasmdo_call one write call (put, put_many, delete_many, delete_all,
//!                                exec): all or nothing, undone alone if it fails
//! ```
//!
//! Every level is opened lazily by the first storage call of the event, reads included, so the
//! event sees one consistent snapshot and an event that never touches storage costs nothing.
//!
//! **What it guarantees.**
//! - Errors are data ([`StorageError`], one variant per WIT `storage.error` case); nothing here
//!   panics on guest input. Size limits are checked before any work, and results are measured
//!   while they are read, so a guest can neither exceed a limit nor make the host allocate more
//!   than [`StorageLimits::max_result_bytes`] for one call.
//! - Guest SQL (`exec`) runs under an authorizer: it cannot touch names reserved for the host
//!   (`_cf_*`, `_wasmdo_*`, any case), control transactions, attach files, create temporary
//!   objects, or run pragmas other than a few read-only ones ([`READ_ONLY_PRAGMAS`]). It runs under
//!   a time limit too ([`SQL_TIME_LIMIT`]), because SQLite runs on the actor's thread where fuel
//!   and epochs do not reach.
//! - The size quota is checked after every write call, and a call that crosses it is undone
//!   alone (`QuotaExceeded`); SQLite's own page limit sits [`QUOTA_HEADROOM_BYTES`] higher, as a
//!   backstop.
//! - If SQLite itself abandons the batch transaction (it does on an interrupted write, on I/O
//!   errors, and on `SQLITE_FULL` from the backstop in most statements) or an internal step fails,
//!   the batch is *lost*: every further call fails with `Internal` until the actor ends the batch,
//!   and [`SqliteStorage::commit_batch`] reports the loss, so events whose writes vanished are
//!   never acknowledged.
//!
//! **What it never does.** Block on other connections for long (each object has exactly one
//! connection; [`BUSY_TIMEOUT`] only covers outside readers such as a `sqlite3` shell), or decide
//! when to commit: the actor calls [`SqliteStorage::end_event`] and
//! [`SqliteStorage::commit_batch`] (the output gate).
//!
//! Known limitation: violations of `DEFERRABLE INITIALLY DEFERRED` foreign keys are only detected
//! when the batch commits, so they fail the whole batch rather than the event that caused them.

use std::mem::size_of;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use rusqlite::config::DbConfig;
use rusqlite::fallible_iterator::FallibleIterator;
use rusqlite::hooks::{AuthAction, AuthContext, Authorization};
use rusqlite::limits::Limit;
use rusqlite::types::{ToSql, ToSqlOutput, ValueRef};
use rusqlite::{
    Batch, Connection, ErrorCode, OpenFlags, Statement, StatementStatus, TransactionState,
};

/// Largest key + value (Cloudflare's SQLite-backed objects: 2 MB per entry and per row).
pub(crate) const DEFAULT_MAX_ENTRY_BYTES: u64 = 2 * 1024 * 1024;
/// Longest SQL text of one `exec` call (Cloudflare: 100 KB per statement).
pub(crate) const DEFAULT_MAX_STATEMENT_BYTES: u64 = 100_000;
/// Most parameters one statement may bind (Cloudflare: 100).
pub(crate) const DEFAULT_MAX_BOUND_PARAMETERS: u32 = 100;
/// Largest database of one object (Cloudflare: 10 GB).
pub(crate) const DEFAULT_MAX_DATABASE_BYTES: u64 = 10 * 1000 * 1000 * 1000;
/// Most bytes one call may return: the result is built in host memory before it is copied into
/// the guest, so this bounds what one guest call can make the host allocate.
pub(crate) const DEFAULT_MAX_RESULT_BYTES: u64 = 128 * 1024 * 1024;

/// The table holding the object's alarm (one row at most); guest SQL cannot reach it.
const ALARM_TABLE: &str = "_wasmdo_alarm";
const CREATE_ALARM_TABLE: &str = "CREATE TABLE IF NOT EXISTS _wasmdo_alarm \
     (singleton INTEGER PRIMARY KEY CHECK (singleton = 0), time INTEGER NOT NULL)";

/// Longest one `exec` may run. SQL runs on the actor's thread, outside the reach of fuel and epoch
/// deadlines, so without this a recursive CTE could hold the thread forever. Cloudflare's default
/// CPU limit per request is the same 30 s.
pub(crate) const SQL_TIME_LIMIT: Duration = Duration::from_secs(30);
/// Deepest nesting of `begin_transaction`; each level holds a SQLite savepoint in host memory, and
/// no sensible program nests this deep.
pub(crate) const MAX_TRANSACTION_DEPTH: u32 = 64;
/// How long a statement waits for a lock held by another connection. The actor's connection is
/// the only writer; only outside tools (a `sqlite3` shell, a backup) can hold one, and the actor's
/// thread must not wait on them for long.
const BUSY_TIMEOUT: Duration = Duration::from_millis(100);
/// SQLite calls the progress handler (which enforces [`SQL_TIME_LIMIT`]) every this many virtual
/// machine instructions: roughly every 10-100 µs, too rare to cost anything measurable.
const PROGRESS_HANDLER_INSTRUCTIONS: i32 = 10_000;
/// `SQLITE_LIMIT_SQL_LENGTH` never goes below this, so the host's own statements still prepare
/// when an operator configures a tiny statement limit (guest SQL is checked against the configured
/// limit before SQLite sees it).
const MIN_ENGINE_SQL_LENGTH: u64 = 4096;
/// `SQLITE_LIMIT_VARIABLE_NUMBER` never goes below this, for the same reason: the host's own
/// statements bind up to 3 parameters. Guest statements are checked against the configured limit
/// after they are prepared.
const MIN_ENGINE_VARIABLES: u64 = 8;
/// `SQLITE_LIMIT_LENGTH` (largest string, blob or row) is the entry limit plus this: a row holds a
/// record header besides the key and value bytes.
const RECORD_HEADER_SLACK: u64 = 1024;
/// SQLite's own page limit (`max_page_count`) sits this far (plus two entries) above the quota.
/// The quota itself is checked after every write call, which is then undone alone if it went over.
/// SQLite's limit is only the backstop for one statement that grows the file by more than this:
/// hitting it is costlier, because on `SQLITE_FULL` SQLite abandons the whole batch transaction
/// unless the statement happened to keep a statement journal.
const QUOTA_HEADROOM_BYTES: u64 = 64 * 1024 * 1024;
/// Prepared statements kept per connection: the KV statements, two pragmas, the eight `list`
/// shapes.
const STATEMENT_CACHE_CAPACITY: usize = 32;

/// The key-value table. Cloudflare's name, so tooling that inspects an exported database finds the
/// entries where it expects them. `WITHOUT ROWID`: the key is the B-tree key, ordered by the BINARY
/// collation, i.e. by UTF-8 bytes, which is the order `list` promises.
const KV_TABLE: &str = "_cf_KV";
const CREATE_KV_TABLE: &str =
    "CREATE TABLE IF NOT EXISTS _cf_KV (key TEXT PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID";
/// Name prefixes guest SQL may not touch (compared ASCII-case-insensitively, as SQLite compares
/// identifiers).
const RESERVED_PREFIXES: [&str; 2] = ["_cf_", "_wasmdo_"];
const EVENT_SAVEPOINT: &str = "_wasmdo_event";
const TX_SAVEPOINT_PREFIX: &str = "_wasmdo_tx_";
const CALL_SAVEPOINT: &str = "_wasmdo_call";

/// Pragmas guest SQL may run, with any argument: each only reads the schema. Together with
/// [`READ_ONLY_STATE_PRAGMAS`] this is the whole list; everything else is denied, since most
/// pragmas change how the connection or the file behaves (`journal_mode`, `synchronous`,
/// `writable_schema`, `defer_foreign_keys` which would outlive the event inside the batch, …).
pub(crate) const READ_ONLY_PRAGMAS: [&str; 8] = [
    "table_info",
    "table_xinfo",
    "table_list",
    "index_list",
    "index_info",
    "index_xinfo",
    "foreign_key_list",
    "foreign_key_check",
];
/// Pragmas guest SQL may only *read* (no `= value`, no argument). FTS5 reads `data_version` and
/// FTS3 `page_size` from inside guest statements, so full-text search needs them.
pub(crate) const READ_ONLY_STATE_PRAGMAS: [&str; 4] =
    ["data_version", "page_size", "page_count", "freelist_count"];

/// How hard a commit is pushed to disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Durability {
    /// `PRAGMA synchronous=FULL`: the WAL is fsynced at every commit; a commit survives power loss.
    #[default]
    Full,
    /// `PRAGMA synchronous=NORMAL`: fsync only at checkpoints; a commit survives a process crash
    /// but the last commits may be lost on power loss.
    Normal,
}

/// The limits of one object's storage. `Default` gives Cloudflare's values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StorageLimits {
    /// Key + value bytes of one KV entry; also (plus a small header) SQLite's largest row.
    pub(crate) max_entry_bytes: u64,
    /// Bytes of SQL text in one `exec` call.
    pub(crate) max_statement_bytes: u64,
    /// Parameters one statement may bind.
    pub(crate) max_bound_parameters: u32,
    /// Size of the database in bytes (`page_count * page_size`), checked after every write call.
    pub(crate) max_database_bytes: u64,
    /// Approximate host memory one call's result may take (see [`SqliteStorage`] on how it is
    /// counted).
    pub(crate) max_result_bytes: u64,
    /// How commits reach the disk.
    pub(crate) durability: Durability,
}

impl Default for StorageLimits {
    fn default() -> Self {
        StorageLimits {
            max_entry_bytes: DEFAULT_MAX_ENTRY_BYTES,
            max_statement_bytes: DEFAULT_MAX_STATEMENT_BYTES,
            max_bound_parameters: DEFAULT_MAX_BOUND_PARAMETERS,
            max_database_bytes: DEFAULT_MAX_DATABASE_BYTES,
            max_result_bytes: DEFAULT_MAX_RESULT_BYTES,
            durability: Durability::Full,
        }
    }
}

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

/// Options of [`SqliteStorage::list`]; bounds compare keys by their UTF-8 bytes.
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

/// The storage of one object: one SQLite database, opened lazily, used by one thread at a time.
///
/// Result sizes ([`StorageLimits::max_result_bytes`]) count approximate host memory: the payload
/// bytes of every key, value, text, blob and column name, plus the in-memory size of each value,
/// row and entry (`size_of`), so a million NULLs cost what they take.
#[derive(Debug)]
/// An object's open database connection (with the guard state its hooks share), kept between
/// one actor of the object and the next: opening the file again costs ~300 µs.
pub(crate) struct ParkedDatabase {
    conn: Connection,
    gate: Arc<GuestSqlGate>,
}

pub(crate) struct SqliteStorage {
    path: PathBuf,
    limits: StorageLimits,
    /// How long one `exec` may run; [`SQL_TIME_LIMIT`] except in tests.
    sql_time_limit: Duration,
    conn: Option<Connection>,
    /// Shared with the connection's authorizer and progress handler.
    gate: Arc<GuestSqlGate>,
    /// `BEGIN` has been issued for the current batch.
    batch_open: bool,
    /// `SAVEPOINT _wasmdo_event` has been issued for the current event.
    event_open: bool,
    /// Open explicit transactions (`_wasmdo_tx_1` ..= `_wasmdo_tx_<depth>`).
    tx_depth: u32,
    /// `_cf_KV` is known to exist. Cleared by every rollback, which may have undone its creation.
    kv_ready: bool,
    /// Set when the batch transaction was lost (see the module docs); the reason is reported by
    /// every call, and by `commit_batch`, until the actor ends the batch.
    lost_batch: Option<String>,
    /// An alarm call (or `delete_all`) ran since the actor last looked: the host-wide schedule
    /// must be brought in line with this database.
    alarm_touched: bool,
}

impl SqliteStorage {
    /// Storage backed by the database file at `path`. Does NOT open the file: the database is
    /// opened lazily on first use, so activating an object that never touches storage costs no
    /// file descriptor and no I/O. Parent directories are created on open.
    pub(crate) fn new(path: PathBuf, limits: StorageLimits) -> Self {
        SqliteStorage {
            path,
            limits,
            sql_time_limit: SQL_TIME_LIMIT,
            conn: None,
            gate: Arc::default(),
            batch_open: false,
            event_open: false,
            tx_depth: 0,
            kv_ready: false,
            lost_batch: None,
            alarm_touched: false,
        }
    }

    /// Whether the database connection is open.
    pub(crate) fn is_open(&self) -> bool {
        self.conn.is_some()
    }

    /// Whether the batch holds uncommitted writes, i.e. whether committing it costs a durable
    /// sync. A read-only batch commits without I/O.
    pub(crate) fn has_pending_writes(&self) -> bool {
        self.batch_open
            && self.conn.as_ref().is_some_and(|c| {
                c.transaction_state(Some(rusqlite::MAIN_DB)) == Ok(TransactionState::Write)
            })
    }

    /// True when the object has never written anything: no database file exists (and none is
    /// open). Reads then answer "empty" without creating a file, so touching a never-seen object
    /// costs no I/O and no file descriptor.
    fn absent(&self) -> bool {
        !self.is_open() && self.lost_batch.is_none() && !self.path.exists()
    }

    /// The value stored under `key`, or `None` if the key does not exist.
    pub(crate) fn get(&mut self, key: &str) -> Result<Option<Vec<u8>>, StorageError> {
        if self.absent() {
            return Ok(None);
        }
        self.run(|db| db.get(key))
    }

    /// The entries that exist among `keys`, in key order, each once; missing keys are left out.
    pub(crate) fn get_many(&mut self, keys: &[String]) -> Result<Vec<Entry>, StorageError> {
        if self.absent() {
            return Ok(Vec::new());
        }
        self.run(|db| db.get_many(keys))
    }

    /// Stores `value` under `key`, replacing any previous value. `ValueTooLarge` if key + value
    /// exceed the entry limit. Any string is a valid key, the empty one included.
    pub(crate) fn put(&mut self, key: &str, value: &[u8]) -> Result<(), StorageError> {
        self.check_entry(key, value)?;
        self.run(|db| {
            db.atomic(|db| {
                db.ensure_kv_table()?;
                db.put(key, value)?;
                db.check_quota()
            })
        })
    }

    /// Stores every entry, or none: every size is checked before anything is written, and the
    /// writes share one savepoint. Later entries win over earlier ones with the same key.
    pub(crate) fn put_many(&mut self, entries: &[Entry]) -> Result<(), StorageError> {
        for (key, value) in entries {
            self.check_entry(key, value)?;
        }
        self.run(|db| {
            db.atomic(|db| {
                db.ensure_kv_table()?;
                entries
                    .iter()
                    .try_for_each(|(key, value)| db.put(key, value))?;
                db.check_quota()
            })
        })
    }

    /// Removes `key`; `true` if it existed.
    pub(crate) fn delete(&mut self, key: &str) -> Result<bool, StorageError> {
        self.run(|db| db.delete(key).map(|n| n > 0))
    }

    /// Removes every key in `keys` (all or none); returns how many distinct keys existed.
    pub(crate) fn delete_many(&mut self, keys: &[String]) -> Result<u32, StorageError> {
        self.run(|db| {
            db.atomic(|db| {
                let mut removed: u64 = 0;
                for key in sorted_unique(keys) {
                    removed += db.delete(key)?;
                }
                Ok(u32::try_from(removed).unwrap_or(u32::MAX))
            })
        })
    }

    /// Entries in key order (descending if `reverse`) that match every given bound. A `limit` of
    /// zero is `InvalidArgument` (Cloudflare requires a positive limit too).
    pub(crate) fn list(&mut self, options: &ListOptions) -> Result<Vec<Entry>, StorageError> {
        if options.limit == Some(0) {
            return Err(StorageError::InvalidArgument(
                "list: limit must be positive".into(),
            ));
        }
        if self.absent() {
            return Ok(Vec::new());
        }
        self.run(|db| db.list(options))
    }

    /// Removes every KV entry and every table, index, view and trigger of this object, inside the
    /// event's transaction like any other write (an event that fails after it undoes it).
    pub(crate) fn delete_all(&mut self) -> Result<(), StorageError> {
        // the alarm lives in a table of this database: it goes too
        self.alarm_touched = true;
        self.run(|db| db.atomic(Db::delete_all))
    }

    /// The time of this object's alarm (ms since the Unix epoch), or `None` if none is set.
    pub(crate) fn get_alarm(&mut self) -> Result<Option<i64>, StorageError> {
        if self.absent() {
            return Ok(None);
        }
        self.run(|db| db.get_alarm())
    }

    /// Sets (or replaces) this object's alarm, inside the event's transaction.
    pub(crate) fn set_alarm(&mut self, epoch_ms: i64) -> Result<(), StorageError> {
        self.alarm_touched = true;
        self.run(|db| {
            db.atomic(|db| {
                db.control(CREATE_ALARM_TABLE)?;
                db.conn
                    .execute(
                        "INSERT INTO _wasmdo_alarm (singleton, time) VALUES (0, ?1) \
                         ON CONFLICT (singleton) DO UPDATE SET time = excluded.time",
                        [epoch_ms],
                    )
                    .map_err(|e| db.err(e))?;
                Ok(())
            })
        })
    }

    /// Cancels this object's alarm, inside the event's transaction.
    pub(crate) fn delete_alarm(&mut self) -> Result<(), StorageError> {
        if self.absent() {
            return Ok(());
        }
        self.alarm_touched = true;
        self.run(|db| {
            if db.alarm_table_exists()? {
                db.control("DELETE FROM _wasmdo_alarm")?;
            }
            Ok(())
        })
    }

    /// Whether an alarm call (or `delete_all`) ran since the last call of this function.
    pub(crate) fn take_alarm_touched(&mut self) -> bool {
        std::mem::take(&mut self.alarm_touched)
    }

    /// The alarm as the open batch transaction sees it, without starting an event (the actor
    /// reads it between the batch's last event and its commit). `None` when nothing is open.
    pub(crate) fn peek_alarm(&self) -> Result<Option<i64>, StorageError> {
        let Some(conn) = self.conn.as_ref() else {
            return Ok(None);
        };
        let read = || -> rusqlite::Result<Option<i64>> {
            if !table_exists(conn, ALARM_TABLE)? {
                return Ok(None);
            }
            conn.prepare_cached("SELECT time FROM _wasmdo_alarm WHERE singleton = 0")?
                .query_row([], |row| row.get(0))
                .map(Some)
                .or_else(|e| match e {
                    rusqlite::Error::QueryReturnedNoRows => Ok(None),
                    e => Err(e),
                })
        };
        read().map_err(|e| StorageError::Internal(format!("reading the alarm: {e}")))
    }

    /// Runs `query`: one or more `;`-separated statements, atomically (an error undoes every
    /// statement of the call). `params` bind to the last statement, whose columns and rows are
    /// returned; an earlier statement with parameters is `InvalidArgument`, and so is a parameter
    /// count that differs from the last statement's. The limits are checked before SQLite sees
    /// the text: `StatementTooLarge` for the whole `query`, `TooManyParameters` for `params` (and
    /// for `?NNN` beyond the limit).
    pub(crate) fn exec(
        &mut self,
        query: &str,
        params: &[SqlValue],
    ) -> Result<SqlResult, StorageError> {
        if query.len() as u64 > self.limits.max_statement_bytes {
            return Err(StorageError::StatementTooLarge(
                self.limits.max_statement_bytes,
            ));
        }
        if params.len() as u64 > u64::from(self.limits.max_bound_parameters) {
            return Err(StorageError::TooManyParameters(
                self.limits.max_bound_parameters,
            ));
        }
        if query.trim().is_empty() {
            return Err(StorageError::InvalidArgument(
                "exec: the query is empty".into(),
            ));
        }
        self.run(|db| {
            db.atomic(|db| {
                let result = db.exec(query, params)?;
                db.check_quota()?;
                Ok(result)
            })
        })
    }

    /// The size of the database in bytes (`page_count * page_size`, uncommitted growth of the
    /// current batch included); 0, without creating anything, if the file was never created.
    pub(crate) fn database_size(&mut self) -> Result<u64, StorageError> {
        if self.absent() {
            return Ok(0);
        }
        self.run(|db| db.database_size())
    }

    /// Opens a nested transaction (a savepoint inside the event's) and returns its depth, 1 for
    /// the outermost explicit one. `InvalidArgument` past [`MAX_TRANSACTION_DEPTH`].
    pub(crate) fn begin_transaction(&mut self) -> Result<u32, StorageError> {
        self.check_not_lost()?;
        if self.tx_depth >= MAX_TRANSACTION_DEPTH {
            return Err(StorageError::InvalidArgument(format!(
                "begin_transaction: transactions nest at most {MAX_TRANSACTION_DEPTH} deep"
            )));
        }
        let depth = self.tx_depth + 1;
        self.run(|db| db.control(&format!("SAVEPOINT {TX_SAVEPOINT_PREFIX}{depth}")))?;
        self.tx_depth = depth;
        Ok(depth)
    }

    /// Keeps the writes of the innermost explicit transaction (they commit with the event);
    /// `NoTransaction` if none is open.
    pub(crate) fn commit_transaction(&mut self) -> Result<(), StorageError> {
        self.check_not_lost()?;
        let depth = self.tx_depth;
        if depth == 0 {
            return Err(StorageError::NoTransaction);
        }
        self.run(|db| db.control(&format!("RELEASE {TX_SAVEPOINT_PREFIX}{depth}")))?;
        self.tx_depth = depth - 1;
        Ok(())
    }

    /// Undoes every write since the innermost `begin_transaction` and closes it;
    /// `NoTransaction` if none is open.
    pub(crate) fn rollback_transaction(&mut self) -> Result<(), StorageError> {
        self.check_not_lost()?;
        let depth = self.tx_depth;
        if depth == 0 {
            return Err(StorageError::NoTransaction);
        }
        self.run(|db| db.undo_savepoint(&format!("{TX_SAVEPOINT_PREFIX}{depth}")))?;
        self.tx_depth = depth - 1;
        Ok(())
    }

    /// Ends the current event: any explicit transactions the guest left open are rolled back;
    /// then the event's own savepoint is released (`keep`) or rolled back (`!keep`). No-op if the
    /// event never touched storage. If this fails the batch is lost (rolled back, and reported by
    /// `commit_batch`): the event's writes can no longer be separated from the others'.
    pub(crate) fn end_event(&mut self, keep: bool) -> Result<(), StorageError> {
        if !self.event_open {
            return Ok(());
        }
        let tx_depth = std::mem::take(&mut self.tx_depth);
        self.event_open = false;
        let Some(conn) = self.conn.as_ref() else {
            return Err(self.lose_batch("the connection closed during an event".into()));
        };
        let mut db = Db::new(
            conn,
            &self.limits,
            &self.gate,
            &mut self.kv_ready,
            self.sql_time_limit,
        );
        let result = (|| {
            if tx_depth > 0 {
                // Rolling back to the outermost explicit savepoint undoes the inner ones too.
                db.undo_savepoint(&format!("{TX_SAVEPOINT_PREFIX}1"))?;
            }
            if keep {
                db.control(&format!("RELEASE {EVENT_SAVEPOINT}"))
            } else {
                db.undo_savepoint(EVENT_SAVEPOINT)
            }
        })();
        if tx_depth > 0 {
            tracing::debug!(target: "wasmdo.storage", tx_depth, "event left transactions open; rolled back");
        }
        result.map_err(|e| self.lose_batch(format!("ending the event failed: {e}")))
    }

    /// Commits the batch (every event since the last commit) durably. `Ok(true)` if something was
    /// committed, `Ok(false)` if no transaction was open. An event still open is rolled back
    /// first (only events ended with `keep` are committed). On error the batch is rolled back;
    /// a batch lost earlier is reported here as `Internal`.
    pub(crate) fn commit_batch(&mut self) -> Result<bool, StorageError> {
        if let Some(reason) = self.lost_batch.take() {
            return Err(StorageError::Internal(reason));
        }
        if !self.batch_open {
            return Ok(false);
        }
        if self.event_open {
            tracing::warn!(target: "wasmdo.storage", "commit_batch with an event still open; rolling the event back");
            if let Err(e) = self.end_event(false) {
                self.lost_batch = None;
                return Err(e);
            }
        }
        let Some(conn) = self.conn.as_ref() else {
            self.batch_open = false;
            return Err(StorageError::Internal(
                "the connection closed during a batch".into(),
            ));
        };
        match conn.execute_batch("COMMIT") {
            Ok(()) => {
                self.batch_open = false;
                Ok(true)
            }
            Err(e) => {
                let error = map_error(e, &self.limits, None, self.sql_time_limit);
                tracing::error!(target: "wasmdo.storage", path = %self.path.display(), "commit failed: {error}");
                self.rollback_batch();
                Err(error)
            }
        }
    }

    /// Rolls back the whole batch (used when the instance died and the actor gives up on it), and
    /// forgets a lost batch.
    pub(crate) fn rollback_batch(&mut self) {
        self.lost_batch = None;
        self.abandon_transaction();
    }

    /// Takes the open connection out, rolled back to no transaction, to be parked while the object
    /// has no actor (see [`Directory::park_database`](crate::directory::Directory::park_database));
    /// `None` if none was open (or it could not be brought back to a clean state, and was closed).
    pub(crate) fn park(&mut self) -> Option<ParkedDatabase> {
        self.rollback_batch();
        let conn = self.conn.take()?;
        conn.is_autocommit().then(|| ParkedDatabase {
            conn,
            gate: self.gate.clone(),
        })
    }

    /// Adopts this object's parked connection (instead of opening the file again).
    pub(crate) fn adopt(&mut self, parked: ParkedDatabase) {
        self.close();
        self.conn = Some(parked.conn);
        self.gate = parked.gate;
        self.kv_ready = false;
    }

    /// Closes the connection (eviction); an open batch is rolled back first. The next call
    /// re-opens the database lazily.
    pub(crate) fn close(&mut self) {
        self.rollback_batch();
        if let Some(conn) = self.conn.take()
            && let Err((_, e)) = conn.close()
        {
            // Dropping the returned connection retries the close and releases the handle.
            tracing::warn!(target: "wasmdo.storage", path = %self.path.display(), "closing the database: {e}");
        }
    }

    fn check_entry(&self, key: &str, value: &[u8]) -> Result<(), StorageError> {
        let size = key.len() as u64 + value.len() as u64;
        if size > self.limits.max_entry_bytes {
            return Err(StorageError::ValueTooLarge(self.limits.max_entry_bytes));
        }
        Ok(())
    }

    fn check_not_lost(&self) -> Result<(), StorageError> {
        match &self.lost_batch {
            Some(reason) => Err(StorageError::Internal(reason.clone())),
            None => Ok(()),
        }
    }

    /// Runs one storage call inside the event's transaction, opening whatever is not open yet,
    /// and notices when a failure cost the batch its transaction.
    fn run<T>(
        &mut self,
        call: impl FnOnce(&mut Db<'_>) -> Result<T, StorageError>,
    ) -> Result<T, StorageError> {
        self.check_not_lost()?;
        self.begin_event()?;
        let Some(conn) = self.conn.as_ref() else {
            return Err(StorageError::Internal("the database is not open".into()));
        };
        let result = call(&mut Db::new(
            conn,
            &self.limits,
            &self.gate,
            &mut self.kv_ready,
            self.sql_time_limit,
        ));
        if let Err(error) = &result {
            // SQLite rolls the whole transaction back on some errors (SQLITE_FULL in a statement
            // without a statement journal, I/O errors, an interrupted write): the batch is gone.
            // An `Internal` error leaves it in doubt, which is no better.
            let abandoned = self.conn.as_ref().is_none_or(Connection::is_autocommit);
            if abandoned || matches!(error, StorageError::Internal(_)) {
                self.lose_batch(format!("the batch transaction was lost: {error}"));
            }
        }
        result
    }

    /// Makes sure the connection is open, the batch transaction begun and the event's savepoint
    /// set.
    fn begin_event(&mut self) -> Result<(), StorageError> {
        if !self.is_open() {
            // Creating a new object's database costs fsyncs: let the async runtime move its other
            // tasks off this thread meanwhile, so objects being created do not queue behind each
            // other. Opening an existing one (~0.1 ms, no fsync) is cheaper than that hand-off.
            // Outside a runtime (unit tests) `block_in_place` just runs the closure.
            let conn = if self.path.exists() {
                self.open()?
            } else {
                tokio::task::block_in_place(|| self.open())?
            };
            self.conn = Some(conn);
        }
        let Some(conn) = self.conn.as_ref() else {
            return Err(StorageError::Internal("the database is not open".into()));
        };
        let fail = |e| map_error(e, &self.limits, None, self.sql_time_limit);
        if !self.batch_open {
            // DEFERRED: this connection is the object's only writer, so taking the write lock
            // at the first write cannot race anyone, and a read-only batch takes none.
            conn.execute_batch("BEGIN").map_err(fail)?;
            self.batch_open = true;
        }
        if !self.event_open {
            conn.execute_batch(&format!("SAVEPOINT {EVENT_SAVEPOINT}"))
                .map_err(fail)?;
            self.event_open = true;
        }
        Ok(())
    }

    fn open(&self) -> Result<Connection, StorageError> {
        let internal = |what: &str, e: &dyn std::fmt::Display| {
            StorageError::Internal(format!("{what} {}: {e}", self.path.display()))
        };
        if !self.path.exists() {
            if let Some(parent) = self.path.parent() {
                std::fs::create_dir_all(parent)
                    .map_err(|e| internal("cannot create the directory of", &e))?;
            }
            create_from_template(&self.path).map_err(|e| internal("cannot create", &e))?;
        }
        // No SQLITE_OPEN_URI: the path is a file name, never a URI with options.
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let mut conn = Connection::open_with_flags(&self.path, flags)
            .map_err(|e| internal("cannot open", &e))?;
        configure(&conn, &self.limits).map_err(|e| internal("cannot configure", &e))?;
        install_hooks(&mut conn, &self.gate).map_err(|e| internal("cannot configure", &e))?;
        tracing::debug!(target: "wasmdo.storage", path = %self.path.display(), "opened");
        Ok(conn)
    }

    /// Marks the batch lost and rolls back whatever SQLite still holds of it; returns the error
    /// to hand to the current caller.
    fn lose_batch(&mut self, reason: String) -> StorageError {
        tracing::error!(target: "wasmdo.storage", path = %self.path.display(), "{reason}");
        self.abandon_transaction();
        self.lost_batch = Some(reason.clone());
        StorageError::Internal(reason)
    }

    /// Rolls back the batch transaction, if SQLite still has one, and resets the stack.
    fn abandon_transaction(&mut self) {
        self.batch_open = false;
        self.event_open = false;
        self.tx_depth = 0;
        self.kv_ready = false;
        let Some(conn) = self.conn.as_ref() else {
            return;
        };
        if conn.is_autocommit() {
            return;
        }
        if let Err(e) = conn.execute_batch("ROLLBACK") {
            // Closing the connection is the rollback of last resort: SQLite discards an
            // uncommitted transaction when its connection closes.
            tracing::error!(target: "wasmdo.storage", path = %self.path.display(), "rollback failed, closing: {e}");
            self.conn = None;
        }
    }
}

/// An empty database already in WAL mode: one page, made once per process by SQLite itself.
static TEMPLATE: std::sync::OnceLock<Result<Vec<u8>, String>> = std::sync::OnceLock::new();

fn template(dir: &Path) -> Result<&'static [u8], String> {
    TEMPLATE
        .get_or_init(|| {
            let path = dir.join(format!(".template-{}.sqlite", std::process::id()));
            let made = (|| {
                let conn = Connection::open(&path).map_err(|e| e.to_string())?;
                let _: String = conn
                    .query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))
                    .map_err(|e| e.to_string())?;
                conn.close().map_err(|(_, e)| e.to_string())?;
                std::fs::read(&path).map_err(|e| e.to_string())
            })();
            for suffix in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
            }
            made
        })
        .as_ref()
        .map(Vec::as_slice)
        .map_err(Clone::clone)
}

/// Creates a new object's database by writing the template (then fsync, then rename, so a crash
/// leaves no half-written file). Converting a fresh file to WAL through SQLite costs four fsyncs
/// (rollback journal, its directory, journal header, database); this costs one. The directory
/// entry becomes durable with the first commit: SQLite fsyncs the directory when it creates the
/// WAL, and a database that never committed holds nothing to lose.
fn create_from_template(path: &Path) -> std::io::Result<()> {
    use std::io::Write;
    let dir = path.parent().unwrap_or(Path::new("."));
    let bytes = template(dir).map_err(std::io::Error::other)?;
    let tmp = path.with_extension("sqlite-new");
    let mut file = std::fs::File::create(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)
}

/// Whether the table `name` exists in the database.
fn table_exists(conn: &Connection, name: &str) -> rusqlite::Result<bool> {
    conn.prepare_cached("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1")?
        .exists([name])
}

/// Sets up a freshly opened connection: journal, durability, quotas and SQLite's own limits.
fn configure(conn: &Connection, limits: &StorageLimits) -> rusqlite::Result<()> {
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE_CAPACITY);
    // Defensive mode: no writable_schema, no direct writes to shadow tables; a guest cannot
    // corrupt its file through SQL.
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_DEFENSIVE, true)?;
    // Closing (eviction) does not checkpoint: the WAL stays, and reopening the database neither
    // rewrites pages nor deletes and re-creates the `-wal` file (inode churn was the largest
    // cost of re-activating an evicted object). SQLite's auto-checkpoint still bounds the WAL,
    // and `journal_size_limit` truncates it afterwards so idle objects keep small files.
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, true)?;
    conn.query_row("PRAGMA journal_size_limit = 1048576", [], |_| Ok(()))?;
    // The object's actor is this database's only user, ever: hold the file lock for the
    // connection's lifetime. Set before WAL is entered, this also keeps the WAL index in heap
    // memory instead of a `-shm` file — one file descriptor, one mapping and a dozen fcntl lock
    // calls per transaction fewer. (An outside tool opening a live object's file waits until the
    // object is evicted.)
    conn.query_row("PRAGMA locking_mode = EXCLUSIVE", [], |_| Ok(()))?;
    // WAL: a commit appends to the log (one fsync with synchronous=FULL) instead of writing the
    // rollback journal and the database.
    let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        tracing::warn!(target: "wasmdo.storage", mode, "WAL unavailable; using this journal mode");
    }
    let synchronous = match limits.durability {
        Durability::Full => "FULL",
        Durability::Normal => "NORMAL",
    };
    conn.execute_batch(&format!(
        "PRAGMA synchronous = {synchronous}; PRAGMA foreign_keys = ON"
    ))?;
    // The backstop behind the quota check (see QUOTA_HEADROOM_BYTES): past max_page_count SQLite
    // fails with SQLITE_FULL (→ QuotaExceeded). It cannot go below the current size, so lowering
    // the limit never breaks an existing database.
    let page_size: i64 = conn.query_row("PRAGMA page_size", [], |row| row.get(0))?;
    let page_size = u64::try_from(page_size).unwrap_or(1).max(1);
    let hard_limit = limits
        .max_database_bytes
        .saturating_add(QUOTA_HEADROOM_BYTES)
        .saturating_add(limits.max_entry_bytes.saturating_mul(2));
    let max_pages = (hard_limit / page_size).max(1);
    let _: i64 = conn.query_row(&format!("PRAGMA max_page_count = {max_pages}"), [], |row| {
        row.get(0)
    })?;
    // SQLite's own limits, behind our checks: they cover what only SQLite sees (rows built by
    // SQL, `?NNN`, attached databases).
    let clamp = |n: u64| i32::try_from(n).unwrap_or(i32::MAX);
    conn.set_limit(
        Limit::SQLITE_LIMIT_LENGTH,
        clamp(limits.max_entry_bytes.saturating_add(RECORD_HEADER_SLACK)),
    )?;
    conn.set_limit(
        Limit::SQLITE_LIMIT_SQL_LENGTH,
        clamp(limits.max_statement_bytes.max(MIN_ENGINE_SQL_LENGTH)),
    )?;
    conn.set_limit(
        Limit::SQLITE_LIMIT_VARIABLE_NUMBER,
        clamp(u64::from(limits.max_bound_parameters).max(MIN_ENGINE_VARIABLES)),
    )?;
    conn.set_limit(Limit::SQLITE_LIMIT_ATTACHED, 0)?;
    Ok(())
}

/// Installs the authorizer and the progress handler; both act only while guest SQL runs (the
/// gate's deadline is set), so the host's own statements are neither checked nor timed.
fn install_hooks(conn: &mut Connection, gate: &Arc<GuestSqlGate>) -> rusqlite::Result<()> {
    let authorizer_gate = Arc::clone(gate);
    conn.authorizer(Some(move |context: AuthContext<'_>| {
        let mut state = authorizer_gate.lock();
        if state.deadline.is_none() {
            return Authorization::Allow;
        }
        match authorize_guest(&context.action) {
            Ok(()) => Authorization::Allow,
            Err(reason) => {
                state.denial.get_or_insert(reason);
                Authorization::Deny
            }
        }
    }))?;
    let progress_gate = Arc::clone(gate);
    conn.progress_handler(
        PROGRESS_HANDLER_INSTRUCTIONS,
        Some(move || {
            progress_gate
                .lock()
                .deadline
                .is_some_and(|deadline| Instant::now() >= deadline)
        }),
    )
}

/// What the connection's hooks need to know about the SQL being run. The hooks live as long as
/// the connection and run on the actor's thread, inside SQLite calls made by this module; the
/// mutex is never contended, it only lets the hooks share the state.
#[derive(Debug, Default)]
struct GuestSqlGate {
    state: Mutex<GateState>,
}

#[derive(Debug, Default)]
struct GateState {
    /// `Some` while guest SQL runs: the authorizer checks and the time limit applies.
    deadline: Option<Instant>,
    /// Why the authorizer denied the statement being prepared (SQLite only says "not
    /// authorized").
    denial: Option<String>,
}

impl GuestSqlGate {
    fn lock(&self) -> MutexGuard<'_, GateState> {
        // The hooks never panic while holding the lock; a poisoned state is still consistent.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Marks guest SQL as running until the returned guard drops.
    fn enter(&self, time_limit: Duration) -> GuestSqlScope<'_> {
        let mut state = self.lock();
        state.deadline = Some(Instant::now() + time_limit);
        state.denial = None;
        GuestSqlScope(self)
    }

    fn take_denial(&self) -> Option<String> {
        self.lock().denial.take()
    }
}

struct GuestSqlScope<'a>(&'a GuestSqlGate);

impl Drop for GuestSqlScope<'_> {
    fn drop(&mut self) {
        self.0.lock().deadline = None;
    }
}

/// The authorizer's verdict on one action of guest SQL: `Err(reason)` denies it.
fn authorize_guest(action: &AuthAction<'_>) -> Result<(), String> {
    let names: &[&str] = match *action {
        AuthAction::Select | AuthAction::Recursive | AuthAction::Function { .. } => &[],
        AuthAction::Transaction { .. } | AuthAction::Savepoint { .. } => {
            return Err(
                "transactions are not controlled from SQL: use begin-transaction, \
                        commit-transaction and rollback-transaction (every event already runs \
                        in a transaction)"
                    .into(),
            );
        }
        AuthAction::Attach { .. } | AuthAction::Detach { .. } => {
            return Err(
                "ATTACH and DETACH are not allowed: an object has exactly one database".into(),
            );
        }
        AuthAction::Pragma {
            pragma_name,
            pragma_value,
        } => {
            let named = |list: &[&str]| list.iter().any(|p| p.eq_ignore_ascii_case(pragma_name));
            if named(&READ_ONLY_PRAGMAS)
                || (pragma_value.is_none() && named(&READ_ONLY_STATE_PRAGMAS))
            {
                return Ok(());
            }
            return Err(format!(
                "PRAGMA {pragma_name} is not allowed; allowed: {}, and reading {}",
                READ_ONLY_PRAGMAS.join(", "),
                READ_ONLY_STATE_PRAGMAS.join(", ")
            ));
        }
        AuthAction::CreateTempIndex { .. }
        | AuthAction::CreateTempTable { .. }
        | AuthAction::CreateTempTrigger { .. }
        | AuthAction::CreateTempView { .. }
        | AuthAction::DropTempIndex { .. }
        | AuthAction::DropTempTable { .. }
        | AuthAction::DropTempTrigger { .. }
        | AuthAction::DropTempView { .. } => {
            return Err(
                "temporary tables, indexes, views and triggers are not supported: \
                        an object's state lives in its database"
                    .into(),
            );
        }
        AuthAction::Read { table_name, .. }
        | AuthAction::Update { table_name, .. }
        | AuthAction::Insert { table_name }
        | AuthAction::Delete { table_name }
        | AuthAction::CreateTable { table_name }
        | AuthAction::DropTable { table_name }
        | AuthAction::AlterTable { table_name, .. }
        | AuthAction::Analyze { table_name }
        | AuthAction::CreateVtable { table_name, .. }
        | AuthAction::DropVtable { table_name, .. } => &[table_name],
        AuthAction::CreateIndex {
            index_name,
            table_name,
        }
        | AuthAction::DropIndex {
            index_name,
            table_name,
        } => &[index_name, table_name],
        AuthAction::CreateTrigger {
            trigger_name,
            table_name,
        }
        | AuthAction::DropTrigger {
            trigger_name,
            table_name,
        } => &[trigger_name, table_name],
        AuthAction::CreateView { view_name } | AuthAction::DropView { view_name } => &[view_name],
        AuthAction::Reindex { index_name } => &[index_name],
        // Actions this SQLite version does not name, or that rusqlite adds later: deny what we
        // have not reviewed.
        _ => return Err(format!("this SQL operation is not allowed ({action:?})")),
    };
    match names.iter().find(|name| is_reserved(name)) {
        Some(name) => Err(format!(
            "access to `{name}` is not allowed: names starting with `_cf_` or `_wasmdo_` are \
             reserved for the host"
        )),
        None => Ok(()),
    }
}

fn is_reserved(name: &str) -> bool {
    RESERVED_PREFIXES.iter().any(|prefix| {
        name.as_bytes()
            .get(..prefix.len())
            .is_some_and(|head| head.eq_ignore_ascii_case(prefix.as_bytes()))
    })
}

/// Turns a rusqlite error into the caller's error. `denial` is the authorizer's reason, if it
/// denied the statement.
fn map_error(
    error: rusqlite::Error,
    limits: &StorageLimits,
    denial: Option<String>,
    sql_time_limit: Duration,
) -> StorageError {
    let (code, message) = match &error {
        rusqlite::Error::SqliteFailure(e, message) => {
            (e.code, message.clone().unwrap_or_else(|| e.to_string()))
        }
        rusqlite::Error::SqlInputError { error, msg, .. } => (error.code, msg.clone()),
        other => return StorageError::Internal(other.to_string()),
    };
    match code {
        // Also a genuinely full disk; from inside SQLite the two look the same.
        ErrorCode::DiskFull => StorageError::QuotaExceeded,
        ErrorCode::TooBig => StorageError::ValueTooLarge(limits.max_entry_bytes),
        ErrorCode::AuthorizationForStatementDenied => StorageError::Sql(denial.unwrap_or(message)),
        // Only the progress handler interrupts, and only at the time limit.
        ErrorCode::OperationInterrupted => StorageError::Sql(format!(
            "interrupted: the SQL ran longer than the limit of {} s",
            sql_time_limit.as_secs_f64()
        )),
        ErrorCode::SystemIoFailure
        | ErrorCode::CannotOpen
        | ErrorCode::DatabaseCorrupt
        | ErrorCode::NotADatabase
        | ErrorCode::OutOfMemory
        | ErrorCode::InternalMalfunction
        | ErrorCode::FileLockingProtocolFailed
        | ErrorCode::NoLargeFileSupport
        | ErrorCode::DatabaseBusy
        | ErrorCode::ReadOnly
        | ErrorCode::PermissionDenied
        | ErrorCode::ApiMisuse => StorageError::Internal(message),
        // SQLite reports `?NNN` beyond SQLITE_LIMIT_VARIABLE_NUMBER (and too many `?`) as a plain
        // SQL error; these are its messages (checked by a test, in case a SQLite upgrade changes
        // them).
        _ if message.starts_with("too many SQL variables")
            || message.starts_with("variable number must be between") =>
        {
            StorageError::TooManyParameters(limits.max_bound_parameters)
        }
        _ => StorageError::Sql(message),
    }
}

/// One storage call's view of the open database.
struct Db<'a> {
    conn: &'a Connection,
    limits: &'a StorageLimits,
    gate: &'a GuestSqlGate,
    kv_ready: &'a mut bool,
    sql_time_limit: Duration,
}

impl<'a> Db<'a> {
    fn new(
        conn: &'a Connection,
        limits: &'a StorageLimits,
        gate: &'a GuestSqlGate,
        kv_ready: &'a mut bool,
        sql_time_limit: Duration,
    ) -> Self {
        Db {
            conn,
            limits,
            gate,
            kv_ready,
            sql_time_limit,
        }
    }

    fn err(&self, error: rusqlite::Error) -> StorageError {
        map_error(
            error,
            self.limits,
            self.gate.take_denial(),
            self.sql_time_limit,
        )
    }

    /// Runs host-written SQL (savepoints, DDL) without results.
    fn control(&mut self, sql: &str) -> Result<(), StorageError> {
        self.conn.execute_batch(sql).map_err(|e| self.err(e))
    }

    /// Rolls back to `savepoint` and releases it. A rollback may undo the creation of `_cf_KV`.
    fn undo_savepoint(&mut self, savepoint: &str) -> Result<(), StorageError> {
        *self.kv_ready = false;
        self.control(&format!("ROLLBACK TO {savepoint}; RELEASE {savepoint}"))
    }

    /// Runs `call` in its own savepoint: all of its writes or none.
    fn atomic<T>(
        &mut self,
        call: impl FnOnce(&mut Self) -> Result<T, StorageError>,
    ) -> Result<T, StorageError> {
        self.control(&format!("SAVEPOINT {CALL_SAVEPOINT}"))?;
        match call(self) {
            Ok(value) => {
                self.control(&format!("RELEASE {CALL_SAVEPOINT}"))?;
                Ok(value)
            }
            // With no transaction left SQLite already rolled everything back; the caller notices.
            Err(error) if self.conn.is_autocommit() => Err(error),
            Err(error) => match self.undo_savepoint(CALL_SAVEPOINT) {
                Ok(()) => Err(error),
                Err(undo) => Err(StorageError::Internal(format!(
                    "{error}; then undoing the call failed: {undo}"
                ))),
            },
        }
    }

    fn ensure_kv_table(&mut self) -> Result<(), StorageError> {
        if !*self.kv_ready {
            self.control(CREATE_KV_TABLE)?;
            *self.kv_ready = true;
        }
        Ok(())
    }

    fn alarm_table_exists(&mut self) -> Result<bool, StorageError> {
        table_exists(self.conn, ALARM_TABLE).map_err(|e| self.err(e))
    }

    fn get_alarm(&mut self) -> Result<Option<i64>, StorageError> {
        if !self.alarm_table_exists()? {
            return Ok(None);
        }
        let mut stmt = self
            .conn
            .prepare_cached("SELECT time FROM _wasmdo_alarm WHERE singleton = 0")
            .map_err(|e| self.err(e))?;
        let mut rows = stmt.query([]).map_err(|e| self.err(e))?;
        match rows.next().map_err(|e| self.err(e))? {
            Some(row) => Ok(Some(row.get(0).map_err(|e| self.err(e))?)),
            None => Ok(None),
        }
    }

    /// Whether `_cf_KV` exists; reads of a database that never stored a KV entry see it empty.
    fn kv_exists(&mut self) -> Result<bool, StorageError> {
        if !*self.kv_ready {
            let found = table_exists(self.conn, KV_TABLE).map_err(|e| self.err(e))?;
            *self.kv_ready = found;
        }
        Ok(*self.kv_ready)
    }

    fn get(&mut self, key: &str) -> Result<Option<Vec<u8>>, StorageError> {
        if !self.kv_exists()? {
            return Ok(None);
        }
        let mut budget = Budget::new(self.limits.max_result_bytes);
        self.get_entry(key, &mut budget)
    }

    fn get_entry(&self, key: &str, budget: &mut Budget) -> Result<Option<Vec<u8>>, StorageError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT value FROM _cf_KV WHERE key = ?1")
            .map_err(|e| self.err(e))?;
        let mut rows = stmt.query([key]).map_err(|e| self.err(e))?;
        match rows.next().map_err(|e| self.err(e))? {
            None => Ok(None),
            Some(row) => {
                let value = row.get_ref(0).map_err(|e| self.err(e))?;
                kv_value(value, budget).map(Some)
            }
        }
    }

    fn get_many(&mut self, keys: &[String]) -> Result<Vec<Entry>, StorageError> {
        if !self.kv_exists()? {
            return Ok(Vec::new());
        }
        let mut budget = Budget::new(self.limits.max_result_bytes);
        let mut entries = Vec::new();
        for key in sorted_unique(keys) {
            // Charge the key before copying the value: both end up in the result.
            budget.charge(size_of::<Entry>() + key.len())?;
            if let Some(value) = self.get_entry(key, &mut budget)? {
                entries.push((key.to_owned(), value));
            }
        }
        Ok(entries)
    }

    fn put(&self, key: &str, value: &[u8]) -> Result<(), StorageError> {
        self.conn
            .prepare_cached(
                "INSERT INTO _cf_KV (key, value) VALUES (?1, ?2) \
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            )
            .and_then(|mut stmt| stmt.execute((key, value)))
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Deletes `key`; returns how many rows went (0 or 1).
    fn delete(&mut self, key: &str) -> Result<u64, StorageError> {
        if !self.kv_exists()? {
            return Ok(0);
        }
        let removed = self
            .conn
            .prepare_cached("DELETE FROM _cf_KV WHERE key = ?1")
            .and_then(|mut stmt| stmt.execute([key]))
            .map_err(|e| self.err(e))?;
        Ok(removed as u64)
    }

    fn list(&mut self, options: &ListOptions) -> Result<Vec<Entry>, StorageError> {
        if !self.kv_exists()? {
            return Ok(Vec::new());
        }
        let (lower, upper) = key_range(options);
        let sql = list_sql(lower.is_some(), upper.is_some(), options.reverse);
        let limit = options.limit.map_or(-1, i64::from);
        let mut params: Vec<&dyn ToSql> = Vec::with_capacity(3);
        if let Some(lower) = &lower {
            params.push(lower);
        }
        if let Some(upper) = &upper {
            params.push(upper);
        }
        params.push(&limit);

        let mut budget = Budget::new(self.limits.max_result_bytes);
        let mut stmt = self.conn.prepare_cached(&sql).map_err(|e| self.err(e))?;
        let mut rows = stmt.query(params.as_slice()).map_err(|e| self.err(e))?;
        let mut entries = Vec::new();
        while let Some(row) = rows.next().map_err(|e| self.err(e))? {
            let key = row.get_ref(0).map_err(|e| self.err(e))?;
            let ValueRef::Text(key) = key else {
                return Err(StorageError::Internal(format!(
                    "{KV_TABLE} holds a non-text key"
                )));
            };
            budget.charge(size_of::<Entry>() + key.len())?;
            let key = String::from_utf8_lossy(key).into_owned();
            let value = kv_value(row.get_ref(1).map_err(|e| self.err(e))?, &mut budget)?;
            entries.push((key, value));
        }
        Ok(entries)
    }

    /// Drops every schema object but SQLite's own (`sqlite_*`), `_cf_KV` included.
    fn delete_all(&mut self) -> Result<(), StorageError> {
        let mut objects: Vec<(u8, &str, String)> = {
            let mut stmt = self
                .conn
                .prepare(
                    "SELECT type, name, coalesce(sql, '') LIKE 'CREATE VIRTUAL TABLE%' \
                     FROM sqlite_master \
                     WHERE type IN ('trigger', 'view', 'table') \
                     AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'",
                )
                .map_err(|e| self.err(e))?;
            let rows = stmt
                .query_map([], |row| {
                    Ok((
                        row.get::<_, String>(0)?,
                        row.get::<_, String>(1)?,
                        row.get::<_, bool>(2)?,
                    ))
                })
                .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
                .map_err(|e| self.err(e))?;
            rows.into_iter()
                .map(
                    |(kind, name, is_virtual)| match (kind.as_str(), is_virtual) {
                        // Triggers and views first (nothing depends on them), virtual tables before
                        // ordinary ones (dropping one drops its shadow tables, which defensive mode
                        // forbids dropping directly).
                        ("trigger", _) => (0, "TRIGGER", name),
                        ("view", _) => (1, "VIEW", name),
                        (_, true) => (2, "TABLE", name),
                        _ => (3, "TABLE", name),
                    },
                )
                .collect()
        };
        objects.sort();
        // Dropping a parent table before its children would violate immediate foreign keys;
        // deferred, the violations disappear with the children before anything checks them.
        self.control("PRAGMA defer_foreign_keys = ON")?;
        for (_, kind, name) in &objects {
            self.control(&format!("DROP {kind} IF EXISTS {}", quote_identifier(name)))?;
        }
        self.control("PRAGMA defer_foreign_keys = OFF")?;
        *self.kv_ready = false;
        Ok(())
    }

    fn database_size(&self) -> Result<u64, StorageError> {
        let pragma = |sql: &str| -> Result<u64, StorageError> {
            self.conn
                .prepare_cached(sql)
                .and_then(|mut stmt| stmt.query_row([], |row| row.get::<_, i64>(0)))
                .map(|n| u64::try_from(n).unwrap_or(0))
                .map_err(|e| self.err(e))
        };
        Ok(pragma("PRAGMA page_count")? * pragma("PRAGMA page_size")?)
    }

    /// `QuotaExceeded` if the database has outgrown its quota; the caller's savepoint then undoes
    /// the call that grew it.
    fn check_quota(&self) -> Result<(), StorageError> {
        if self.database_size()? > self.limits.max_database_bytes {
            return Err(StorageError::QuotaExceeded);
        }
        Ok(())
    }

    fn exec(&mut self, query: &str, params: &[SqlValue]) -> Result<SqlResult, StorageError> {
        // ALTER TABLE … RENAME TO names no table the authorizer could check, so compare the
        // reserved names before and after. Only a query containing the keyword can rename.
        let reserved_before = if contains_ignore_ascii_case(query, "alter") {
            Some(self.reserved_objects()?)
        } else {
            None
        };
        let mut result = SqlResult::default();
        {
            let _guest = self.gate.enter(self.sql_time_limit);
            let mut batch = Batch::new(self.conn, query);
            let mut statements = 0_usize;
            let mut last_parameters = 0_usize;
            while let Some(mut stmt) = batch.next().map_err(|e| self.err(e))? {
                if last_parameters > 0 {
                    return Err(StorageError::InvalidArgument(
                        "exec: only the last statement may have parameters".into(),
                    ));
                }
                statements += 1;
                last_parameters = stmt.parameter_count();
                if last_parameters > 0 {
                    self.bind(&mut stmt, params)?;
                }
                let (columns, rows, rows_read, rows_written) = self.run_statement(&mut stmt)?;
                result.columns = columns;
                result.rows = rows;
                result.rows_read += rows_read;
                result.rows_written += rows_written;
            }
            if statements == 0 {
                return Err(StorageError::InvalidArgument(
                    "exec: the query contains no statement".into(),
                ));
            }
            if last_parameters == 0 && !params.is_empty() {
                return Err(StorageError::InvalidArgument(format!(
                    "exec: {} parameters given but the last statement has none",
                    params.len()
                )));
            }
        }
        if let Some(before) = reserved_before
            && self.reserved_objects()? != before
        {
            return Err(StorageError::Sql(
                "names starting with `_cf_` or `_wasmdo_` are reserved for the host".into(),
            ));
        }
        Ok(result)
    }

    fn bind(&self, stmt: &mut Statement<'_>, params: &[SqlValue]) -> Result<(), StorageError> {
        let expected = stmt.parameter_count();
        if expected as u64 > u64::from(self.limits.max_bound_parameters) {
            return Err(StorageError::TooManyParameters(
                self.limits.max_bound_parameters,
            ));
        }
        if expected != params.len() {
            return Err(StorageError::InvalidArgument(format!(
                "exec: the statement has {expected} parameters but {} were given",
                params.len()
            )));
        }
        for (index, value) in params.iter().enumerate() {
            stmt.raw_bind_parameter(index + 1, value)
                .map_err(|e| self.err(e))?;
        }
        Ok(())
    }

    /// Steps `stmt` to the end; returns its columns, rows, rows read and rows written.
    #[expect(
        clippy::type_complexity,
        reason = "a private tuple read once by its only caller"
    )]
    fn run_statement(
        &self,
        stmt: &mut Statement<'_>,
    ) -> Result<(Vec<String>, Vec<Vec<SqlValue>>, u64, u64), StorageError> {
        let mut budget = Budget::new(self.limits.max_result_bytes);
        let columns: Vec<String> = stmt.column_names().map(str::to_owned).collect();
        for column in &columns {
            budget.charge(size_of::<String>() + column.len())?;
        }
        let width = columns.len();
        let changes_before = self.conn.total_changes();
        let mut rows = Vec::new();
        {
            let mut cursor = stmt.raw_query();
            while let Some(row) = cursor.next().map_err(|e| self.err(e))? {
                budget.charge(size_of::<Vec<SqlValue>>() + width * size_of::<SqlValue>())?;
                let mut values = Vec::with_capacity(width);
                for index in 0..width {
                    let value = row.get_ref(index).map_err(|e| self.err(e))?;
                    values.push(sql_value(value, &mut budget)?);
                }
                rows.push(values);
            }
        }
        let scanned = u64::try_from(stmt.get_status(StatementStatus::FullscanStep)).unwrap_or(0);
        let rows_read = rows.len() as u64 + scanned;
        let rows_written = self.conn.total_changes().saturating_sub(changes_before);
        Ok((columns, rows, rows_read, rows_written))
    }

    /// Names of schema objects with a reserved prefix (`LIKE` ignores ASCII case, like SQLite's
    /// identifiers).
    fn reserved_objects(&self) -> Result<Vec<String>, StorageError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT name FROM sqlite_master \
                 WHERE name LIKE '\\_cf\\_%' ESCAPE '\\' OR name LIKE '\\_wasmdo\\_%' ESCAPE '\\' \
                 ORDER BY name",
            )
            .map_err(|e| self.err(e))?;
        stmt.query_map([], |row| row.get::<_, String>(0))
            .and_then(|rows| rows.collect())
            .map_err(|e| self.err(e))
    }
}

/// Counts the approximate host memory of a result as it is built.
struct Budget {
    limit: u64,
    used: u64,
}

impl Budget {
    fn new(limit: u64) -> Self {
        Budget { limit, used: 0 }
    }

    /// Adds `bytes`; fails, before the caller allocates them, once the total passes the limit.
    fn charge(&mut self, bytes: usize) -> Result<(), StorageError> {
        self.used = self.used.saturating_add(bytes as u64);
        if self.used > self.limit {
            return Err(StorageError::ResultTooLarge(self.limit));
        }
        Ok(())
    }
}

/// Copies a `_cf_KV` value out of SQLite, charging it first.
fn kv_value(value: ValueRef<'_>, budget: &mut Budget) -> Result<Vec<u8>, StorageError> {
    match value {
        ValueRef::Blob(bytes) => {
            budget.charge(bytes.len())?;
            Ok(bytes.to_vec())
        }
        other => Err(StorageError::Internal(format!(
            "{KV_TABLE} holds a {} value",
            other.data_type()
        ))),
    }
}

/// Copies a result value out of SQLite, charging it first. Text that is not UTF-8 (SQL can make
/// such text with `CAST`) is repaired with U+FFFD rather than failing the call.
fn sql_value(value: ValueRef<'_>, budget: &mut Budget) -> Result<SqlValue, StorageError> {
    Ok(match value {
        ValueRef::Null => SqlValue::Null,
        ValueRef::Integer(i) => SqlValue::Integer(i),
        ValueRef::Real(f) => SqlValue::Real(f),
        ValueRef::Text(bytes) => {
            budget.charge(bytes.len())?;
            SqlValue::Text(String::from_utf8_lossy(bytes).into_owned())
        }
        ValueRef::Blob(bytes) => {
            budget.charge(bytes.len())?;
            SqlValue::Blob(bytes.to_vec())
        }
    })
}

impl ToSql for SqlValue {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::Borrowed(match self {
            SqlValue::Null => ValueRef::Null,
            SqlValue::Integer(i) => ValueRef::Integer(*i),
            SqlValue::Real(f) => ValueRef::Real(*f),
            SqlValue::Text(s) => ValueRef::Text(s.as_bytes()),
            SqlValue::Blob(b) => ValueRef::Blob(b),
        }))
    }
}

/// `keys` sorted by UTF-8 bytes (Rust's `str` order), each once.
fn sorted_unique(keys: &[String]) -> Vec<&str> {
    let mut keys: Vec<&str> = keys.iter().map(String::as_str).collect();
    keys.sort_unstable();
    keys.dedup();
    keys
}

/// The half-open key range `[lower, upper)` selected by `options`; `None` is unbounded.
fn key_range(options: &ListOptions) -> (Option<String>, Option<String>) {
    let lower = [options.start.as_deref(), options.prefix.as_deref()]
        .into_iter()
        .flatten()
        .max()
        .map(str::to_owned);
    let prefix_end = options.prefix.as_deref().and_then(prefix_successor);
    let upper = [options.end.clone(), prefix_end]
        .into_iter()
        .flatten()
        .min();
    (lower, upper)
}

/// The smallest string above every string that starts with `prefix`, or `None` if there is none
/// (`prefix` is empty or all U+10FFFF). UTF-8 byte order is code point order, so the answer is
/// `prefix` with its last incrementable code point incremented and what follows dropped; the
/// range `[prefix, successor)` is then exactly the strings starting with `prefix`, and it is an
/// index range (unlike `substr(key, …) = prefix`).
fn prefix_successor(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        let next = match last {
            char::MAX => None,
            // The surrogates are not code points of any string.
            '\u{D7FF}' => Some('\u{E000}'),
            c => char::from_u32(u32::from(c) + 1),
        };
        if let Some(next) = next {
            chars.push(next);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

/// The `list` query for a shape of bounds; parameters are lower, upper (those present) and the
/// limit (-1 for none).
fn list_sql(lower: bool, upper: bool, reverse: bool) -> String {
    let mut sql = String::from("SELECT key, value FROM _cf_KV");
    let mut index = 1;
    let mut conditions = Vec::new();
    if lower {
        conditions.push(format!("key >= ?{index}"));
        index += 1;
    }
    if upper {
        conditions.push(format!("key < ?{index}"));
        index += 1;
    }
    if !conditions.is_empty() {
        sql.push_str(" WHERE ");
        sql.push_str(&conditions.join(" AND "));
    }
    let order = if reverse { "DESC" } else { "ASC" };
    sql.push_str(&format!(" ORDER BY key {order} LIMIT ?{index}"));
    sql
}

fn quote_identifier(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn contains_ignore_ascii_case(haystack: &str, needle: &str) -> bool {
    haystack
        .as_bytes()
        .windows(needle.len())
        .any(|window| window.eq_ignore_ascii_case(needle.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tempfile::TempDir;

    fn storage_with(limits: StorageLimits) -> (TempDir, SqliteStorage) {
        let dir = TempDir::new().expect("temp dir");
        let storage = SqliteStorage::new(dir.path().join("objects/a/b.sqlite"), limits);
        (dir, storage)
    }

    fn storage() -> (TempDir, SqliteStorage) {
        storage_with(StorageLimits::default())
    }

    fn text(s: &str) -> SqlValue {
        SqlValue::Text(s.to_owned())
    }

    fn keys(entries: &[Entry]) -> Vec<&str> {
        entries.iter().map(|(k, _)| k.as_str()).collect()
    }

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| (*s).to_owned()).collect()
    }

    fn exec(s: &mut SqliteStorage, query: &str) -> Result<SqlResult, StorageError> {
        s.exec(query, &[])
    }

    fn commit(s: &mut SqliteStorage) {
        s.end_event(true).expect("end event");
        s.commit_batch().expect("commit");
    }

    #[test]
    fn storage_is_send() {
        fn assert_send<T: Send>() {}
        assert_send::<SqliteStorage>();
    }

    #[test]
    fn kv_round_trip() {
        let (_dir, mut s) = storage();
        assert_eq!(s.get("k").unwrap(), None);
        s.put("k", b"one").unwrap();
        assert_eq!(s.get("k").unwrap(), Some(b"one".to_vec()));
        s.put("k", b"two").unwrap();
        assert_eq!(s.get("k").unwrap(), Some(b"two".to_vec()));
        s.put("", b"").unwrap();
        assert_eq!(s.get("").unwrap(), Some(Vec::new()));
        assert!(s.delete("k").unwrap());
        assert!(!s.delete("k").unwrap());
        assert_eq!(s.get("k").unwrap(), None);
    }

    #[test]
    fn reads_and_deletes_of_a_fresh_database_see_it_empty() {
        let (_dir, mut s) = storage();
        assert_eq!(s.get_many(&strings(&["a"])).unwrap(), vec![]);
        assert_eq!(s.list(&ListOptions::default()).unwrap(), vec![]);
        assert!(!s.delete("a").unwrap());
        assert_eq!(s.delete_many(&strings(&["a", "b"])).unwrap(), 0);
    }

    #[test]
    fn get_many_returns_existing_entries_in_key_order() {
        let (_dir, mut s) = storage();
        s.put_many(&[("b".into(), b"2".to_vec()), ("a".into(), b"1".to_vec())])
            .unwrap();
        let got = s.get_many(&strings(&["missing", "b", "a", "b"])).unwrap();
        assert_eq!(
            got,
            vec![("a".into(), b"1".to_vec()), ("b".into(), b"2".to_vec())]
        );
    }

    #[test]
    fn delete_many_counts_keys_that_existed() {
        let (_dir, mut s) = storage();
        for k in ["a", "b", "c"] {
            s.put(k, b"v").unwrap();
        }
        assert_eq!(s.delete_many(&strings(&["a", "c", "c", "zz"])).unwrap(), 2);
        assert_eq!(keys(&s.list(&ListOptions::default()).unwrap()), ["b"]);
    }

    #[test]
    fn list_applies_prefix_bounds_limit_and_order() {
        let (_dir, mut s) = storage();
        for k in ["a", "ab", "abc", "abd", "ac", "b", "é"] {
            s.put(k, k.as_bytes()).unwrap();
        }
        let list = |s: &mut SqliteStorage, o: ListOptions| keys(&s.list(&o).unwrap()).join(",");
        assert_eq!(list(&mut s, ListOptions::default()), "a,ab,abc,abd,ac,b,é");
        let prefix = || ListOptions {
            prefix: Some("ab".into()),
            ..Default::default()
        };
        assert_eq!(list(&mut s, prefix()), "ab,abc,abd");
        assert_eq!(
            list(
                &mut s,
                ListOptions {
                    reverse: true,
                    limit: Some(2),
                    ..prefix()
                }
            ),
            "abd,abc"
        );
        assert_eq!(
            list(
                &mut s,
                ListOptions {
                    start: Some("abc".into()),
                    ..prefix()
                }
            ),
            "abc,abd"
        );
        assert_eq!(
            list(
                &mut s,
                ListOptions {
                    end: Some("abd".into()),
                    ..prefix()
                }
            ),
            "ab,abc"
        );
        assert_eq!(
            list(
                &mut s,
                ListOptions {
                    start: Some("ab".into()),
                    end: Some("b".into()),
                    ..Default::default()
                }
            ),
            "ab,abc,abd,ac"
        );
        assert_eq!(
            list(
                &mut s,
                ListOptions {
                    start: Some("b".into()),
                    end: Some("a".into()),
                    ..Default::default()
                }
            ),
            ""
        );
        assert_eq!(
            list(
                &mut s,
                ListOptions {
                    limit: Some(1),
                    reverse: true,
                    ..Default::default()
                }
            ),
            "é"
        );
        let zero = s.list(&ListOptions {
            limit: Some(0),
            ..Default::default()
        });
        assert!(
            matches!(zero, Err(StorageError::InvalidArgument(_))),
            "{zero:?}"
        );
    }

    #[test]
    fn list_prefix_ending_in_high_code_points() {
        let (_dir, mut s) = storage();
        let all = [
            "a\u{D7FF}",
            "a\u{D7FF}x",
            "a\u{E000}",
            "a\u{FFFF}",
            "a\u{FFFF}z",
            "a\u{10000}",
            "a\u{10FFFF}",
            "a\u{10FFFF}\u{10FFFF}",
            "b",
            "\u{10FFFF}",
            "\u{10FFFF}a",
        ];
        for k in all {
            s.put(k, b"").unwrap();
        }
        let with_prefix = |s: &mut SqliteStorage, p: &str| {
            let got = s
                .list(&ListOptions {
                    prefix: Some(p.into()),
                    ..Default::default()
                })
                .unwrap();
            let expected: Vec<&str> = all.iter().copied().filter(|k| k.starts_with(p)).collect();
            assert_eq!(keys(&got), expected, "prefix {p:?}");
        };
        for p in [
            "a\u{D7FF}",
            "a\u{FFFF}",
            "a\u{10FFFF}",
            "\u{10FFFF}",
            "a",
            "",
        ] {
            with_prefix(&mut s, p);
        }
        assert_eq!(
            prefix_successor("a\u{10FFFF}\u{10FFFF}").as_deref(),
            Some("b")
        );
        assert_eq!(prefix_successor("\u{10FFFF}"), None);
        assert_eq!(prefix_successor(""), None);
    }

    #[test]
    fn list_uses_the_primary_key_index() {
        let (_dir, mut s) = storage();
        s.put("a", b"").unwrap();
        let conn = s.conn.as_ref().unwrap();
        let plan: Vec<String> = conn
            .prepare(&format!(
                "EXPLAIN QUERY PLAN {}",
                list_sql(true, true, true)
            ))
            .unwrap()
            .query_map(("a", "b", -1), |row| row.get::<_, String>(3))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert!(plan.iter().any(|p| p.starts_with("SEARCH")), "{plan:?}");
    }

    #[test]
    fn oversized_entries_are_refused_and_put_many_writes_nothing() {
        let limits = StorageLimits {
            max_entry_bytes: 10,
            ..Default::default()
        };
        let (_dir, mut s) = storage_with(limits);
        s.put("key", b"1234567").unwrap();
        assert_eq!(
            s.put("key", b"12345678"),
            Err(StorageError::ValueTooLarge(10))
        );
        let entries = vec![
            ("a".to_owned(), b"ok".to_vec()),
            ("b".to_owned(), vec![0; 10]),
        ];
        assert_eq!(s.put_many(&entries), Err(StorageError::ValueTooLarge(10)));
        assert_eq!(s.get("a").unwrap(), None);
        // A row built by SQL is bounded by the same limit (SQLITE_LIMIT_LENGTH).
        let big = exec(&mut s, "SELECT zeroblob(1000000)");
        assert_eq!(big, Err(StorageError::ValueTooLarge(10)));
    }

    #[test]
    fn put_many_later_duplicates_win() {
        let (_dir, mut s) = storage();
        s.put_many(&[("a".into(), b"1".to_vec()), ("a".into(), b"2".to_vec())])
            .unwrap();
        assert_eq!(s.get("a").unwrap(), Some(b"2".to_vec()));
    }

    #[test]
    fn end_event_without_keep_undoes_only_that_event() {
        let (_dir, mut s) = storage();
        s.put("first", b"1").unwrap();
        s.end_event(true).unwrap();
        s.put("second", b"2").unwrap();
        exec(&mut s, "CREATE TABLE t (x)").unwrap();
        s.end_event(false).unwrap();
        assert_eq!(s.get("first").unwrap(), Some(b"1".to_vec()));
        assert_eq!(s.get("second").unwrap(), None);
        assert!(matches!(
            exec(&mut s, "SELECT * FROM t"),
            Err(StorageError::Sql(_))
        ));
        // The rollback undid nothing of the KV table's existence that the next write needs.
        s.put("third", b"3").unwrap();
        commit(&mut s);
        assert_eq!(
            keys(&s.list(&ListOptions::default()).unwrap()),
            ["first", "third"]
        );
    }

    #[test]
    fn rolled_back_table_creation_does_not_break_later_writes() {
        let (_dir, mut s) = storage();
        s.put("a", b"1").unwrap(); // creates _cf_KV inside the event
        s.end_event(false).unwrap(); // … and undoes the creation
        s.put("b", b"2").unwrap();
        commit(&mut s);
        assert_eq!(s.get("b").unwrap(), Some(b"2".to_vec()));
    }

    #[test]
    fn committed_batch_survives_close_and_reopen() {
        let (_dir, mut s) = storage();
        s.put("a", b"1").unwrap();
        s.end_event(true).unwrap();
        exec(&mut s, "CREATE TABLE t (x); INSERT INTO t VALUES (42)").unwrap();
        s.end_event(true).unwrap();
        assert_eq!(s.commit_batch(), Ok(true));
        assert_eq!(s.commit_batch(), Ok(false));
        s.close();
        assert!(!s.is_open());
        assert_eq!(s.get("a").unwrap(), Some(b"1".to_vec()));
        let rows = exec(&mut s, "SELECT x FROM t").unwrap().rows;
        assert_eq!(rows, vec![vec![SqlValue::Integer(42)]]);
    }

    #[test]
    fn rollback_batch_and_close_discard_uncommitted_events() {
        let (_dir, mut s) = storage();
        s.put("kept", b"1").unwrap();
        commit(&mut s);
        s.put("a", b"1").unwrap();
        s.end_event(true).unwrap();
        s.put("b", b"1").unwrap();
        s.end_event(true).unwrap();
        s.rollback_batch();
        assert_eq!(s.commit_batch(), Ok(false));
        s.put("c", b"1").unwrap();
        s.end_event(true).unwrap();
        s.close();
        assert_eq!(keys(&s.list(&ListOptions::default()).unwrap()), ["kept"]);
    }

    #[test]
    fn commit_batch_rolls_back_an_event_left_open() {
        let (_dir, mut s) = storage();
        s.put("a", b"1").unwrap();
        s.end_event(true).unwrap();
        s.put("b", b"1").unwrap();
        assert_eq!(s.commit_batch(), Ok(true));
        assert_eq!(keys(&s.list(&ListOptions::default()).unwrap()), ["a"]);
    }

    #[test]
    fn explicit_transactions_nest() {
        let (_dir, mut s) = storage();
        assert_eq!(s.commit_transaction(), Err(StorageError::NoTransaction));
        assert_eq!(s.rollback_transaction(), Err(StorageError::NoTransaction));
        assert_eq!(s.begin_transaction(), Ok(1));
        s.put("outer", b"1").unwrap();
        assert_eq!(s.begin_transaction(), Ok(2));
        s.put("inner", b"1").unwrap();
        s.rollback_transaction().unwrap();
        assert_eq!(s.get("inner").unwrap(), None);
        assert_eq!(s.begin_transaction(), Ok(2));
        s.put("inner2", b"1").unwrap();
        s.commit_transaction().unwrap();
        s.commit_transaction().unwrap();
        assert_eq!(s.commit_transaction(), Err(StorageError::NoTransaction));
        commit(&mut s);
        assert_eq!(
            keys(&s.list(&ListOptions::default()).unwrap()),
            ["inner2", "outer"]
        );
    }

    #[test]
    fn end_event_rolls_back_transactions_left_open() {
        let (_dir, mut s) = storage();
        s.put("event", b"1").unwrap();
        s.begin_transaction().unwrap();
        s.put("tx1", b"1").unwrap();
        s.begin_transaction().unwrap();
        s.put("tx2", b"1").unwrap();
        s.end_event(true).unwrap();
        // The next event starts with no explicit transaction.
        assert_eq!(s.commit_transaction(), Err(StorageError::NoTransaction));
        commit(&mut s);
        assert_eq!(keys(&s.list(&ListOptions::default()).unwrap()), ["event"]);
    }

    #[test]
    fn transaction_depth_is_limited() {
        let (_dir, mut s) = storage();
        for depth in 1..=MAX_TRANSACTION_DEPTH {
            assert_eq!(s.begin_transaction(), Ok(depth));
        }
        assert!(matches!(
            s.begin_transaction(),
            Err(StorageError::InvalidArgument(_))
        ));
    }

    #[test]
    fn exec_binds_parameters_and_reports_columns_rows_and_writes() {
        let (_dir, mut s) = storage();
        let created = exec(
            &mut s,
            "CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT, score REAL, data BLOB)",
        )
        .unwrap();
        assert_eq!(created, SqlResult::default());
        let insert = s
            .exec(
                "INSERT INTO t (name, score, data) VALUES (?1, ?2, ?3), (?1, NULL, NULL)",
                &[text("ann"), SqlValue::Real(1.5), SqlValue::Blob(vec![1, 2])],
            )
            .unwrap();
        assert_eq!(insert.rows_written, 2);
        assert!(insert.columns.is_empty() && insert.rows.is_empty());
        let select = s
            .exec(
                "SELECT id, name AS who, score, data FROM t WHERE name = ? ORDER BY id",
                &[text("ann")],
            )
            .unwrap();
        assert_eq!(select.columns, ["id", "who", "score", "data"]);
        assert_eq!(
            select.rows,
            vec![
                vec![
                    SqlValue::Integer(1),
                    text("ann"),
                    SqlValue::Real(1.5),
                    SqlValue::Blob(vec![1, 2])
                ],
                vec![
                    SqlValue::Integer(2),
                    text("ann"),
                    SqlValue::Null,
                    SqlValue::Null
                ],
            ]
        );
        assert_eq!(select.rows_written, 0);
        // Full scan: both rows stepped over, both returned.
        assert!(select.rows_read >= 2, "{}", select.rows_read);
        let update = exec(&mut s, "UPDATE t SET score = 0").unwrap();
        assert_eq!(update.rows_written, 2);
    }

    #[test]
    fn exec_runs_every_statement_and_returns_the_last_ones_rows() {
        let (_dir, mut s) = storage();
        let result = s
            .exec(
                "CREATE TABLE t (x); -- a comment\n INSERT INTO t VALUES (1), (2);;\
                 SELECT count(*) AS n FROM t WHERE x > ?",
                &[SqlValue::Integer(0)],
            )
            .unwrap();
        assert_eq!(result.columns, ["n"]);
        assert_eq!(result.rows, vec![vec![SqlValue::Integer(2)]]);
        assert_eq!(result.rows_written, 2);
    }

    #[test]
    fn exec_rejects_misplaced_or_miscounted_parameters_and_undoes_the_call() {
        let (_dir, mut s) = storage();
        exec(&mut s, "CREATE TABLE t (x)").unwrap();
        let early = s.exec(
            "INSERT INTO t VALUES (?); INSERT INTO t VALUES (2)",
            &[SqlValue::Integer(1)],
        );
        assert!(
            matches!(early, Err(StorageError::InvalidArgument(_))),
            "{early:?}"
        );
        let extra = s.exec("INSERT INTO t VALUES (3)", &[SqlValue::Integer(1)]);
        assert!(
            matches!(extra, Err(StorageError::InvalidArgument(_))),
            "{extra:?}"
        );
        let missing = s.exec("INSERT INTO t VALUES (? + ?)", &[SqlValue::Integer(1)]);
        assert!(
            matches!(missing, Err(StorageError::InvalidArgument(_))),
            "{missing:?}"
        );
        assert_eq!(
            exec(&mut s, "SELECT count(*) FROM t").unwrap().rows,
            vec![vec![SqlValue::Integer(0)]]
        );
        for empty in ["", "  ", "-- nothing\n", ";;"] {
            let result = exec(&mut s, empty);
            assert!(
                matches!(result, Err(StorageError::InvalidArgument(_))),
                "{empty:?}: {result:?}"
            );
        }
    }

    #[test]
    fn exec_is_atomic_when_a_later_statement_fails() {
        let (_dir, mut s) = storage();
        exec(&mut s, "CREATE TABLE t (x UNIQUE)").unwrap();
        let failed = exec(&mut s, "INSERT INTO t VALUES (1); INSERT INTO t VALUES (1)");
        assert!(
            matches!(&failed, Err(StorageError::Sql(m)) if m.contains("UNIQUE")),
            "{failed:?}"
        );
        assert_eq!(
            exec(&mut s, "SELECT count(*) FROM t").unwrap().rows,
            vec![vec![SqlValue::Integer(0)]]
        );
        // The event and the batch go on.
        commit(&mut s);
    }

    #[test]
    fn sql_errors_are_data() {
        let (_dir, mut s) = storage();
        let syntax = exec(&mut s, "SELEC 1");
        assert!(
            matches!(&syntax, Err(StorageError::Sql(m)) if m.contains("syntax")),
            "{syntax:?}"
        );
        let missing = exec(&mut s, "SELECT * FROM nowhere");
        assert!(
            matches!(&missing, Err(StorageError::Sql(m)) if m.contains("no such table")),
            "{missing:?}"
        );
        exec(&mut s, "CREATE TABLE t (x NOT NULL)").unwrap();
        let constraint = exec(&mut s, "INSERT INTO t VALUES (NULL)");
        assert!(
            matches!(&constraint, Err(StorageError::Sql(m)) if m.contains("NOT NULL")),
            "{constraint:?}"
        );
        // The event is intact.
        s.put("a", b"1").unwrap();
        commit(&mut s);
        assert_eq!(s.get("a").unwrap(), Some(b"1".to_vec()));
    }

    fn assert_denied(s: &mut SqliteStorage, query: &str, expected: &str) {
        match exec(s, query) {
            Err(StorageError::Sql(message)) => {
                assert!(message.contains(expected), "{query}: {message}")
            }
            other => panic!("{query}: expected a denial, got {other:?}"),
        }
    }

    #[test]
    fn guest_sql_cannot_touch_reserved_names() {
        let (_dir, mut s) = storage();
        s.put("secret", b"1").unwrap();
        for query in [
            "SELECT * FROM _cf_KV",
            "SELECT * FROM _CF_kv",
            "INSERT INTO _cf_KV VALUES ('k', x'00')",
            "DELETE FROM _cf_KV",
            "UPDATE _cf_KV SET value = x'00'",
            "DROP TABLE _cf_KV",
            "CREATE TABLE _cf_mine (x)",
            "CREATE TABLE _Wasmdo_mine (x)",
            "CREATE INDEX _cf_idx ON _cf_KV (value)",
            "CREATE TRIGGER tr AFTER INSERT ON _cf_KV BEGIN SELECT 1; END",
            "ALTER TABLE _cf_KV ADD COLUMN y",
        ] {
            assert_denied(&mut s, query, "reserved for the host");
        }
        // A view over the reserved table can be declared but not read.
        exec(&mut s, "CREATE VIEW peek AS SELECT * FROM _cf_KV").ok();
        if exec(&mut s, "SELECT 1 FROM sqlite_master WHERE name = 'peek'")
            .unwrap()
            .rows
            .len()
            == 1
        {
            assert_denied(&mut s, "SELECT * FROM peek", "reserved for the host");
        }
        // Renaming a table into the reserved space is undone.
        exec(&mut s, "CREATE TABLE mine (x)").unwrap();
        assert_denied(&mut s, "ALTER TABLE mine RENAME TO _cf_stolen", "reserved");
        assert_eq!(
            exec(&mut s, "SELECT count(*) FROM mine")
                .unwrap()
                .rows
                .len(),
            1
        );
        // The schema itself is readable; the host's data stays intact.
        assert!(exec(&mut s, "SELECT name FROM sqlite_master").is_ok());
        assert_eq!(s.get("secret").unwrap(), Some(b"1".to_vec()));
    }

    #[test]
    fn guest_sql_cannot_control_transactions_attach_or_change_settings() {
        let (_dir, mut s) = storage();
        for query in [
            "BEGIN",
            "COMMIT",
            "ROLLBACK",
            "SAVEPOINT x",
            "RELEASE _wasmdo_event",
            "END",
        ] {
            assert_denied(&mut s, query, "begin-transaction");
        }
        assert_denied(&mut s, "ATTACH DATABASE '/tmp/other.db' AS other", "ATTACH");
        assert_denied(
            &mut s,
            "PRAGMA journal_mode = DELETE",
            "PRAGMA journal_mode",
        );
        assert_denied(&mut s, "PRAGMA synchronous", "not allowed");
        assert_denied(&mut s, "PRAGMA writable_schema = ON", "not allowed");
        assert_denied(&mut s, "CREATE TEMP TABLE scratch (x)", "temporary");
        exec(&mut s, "CREATE TABLE t (a INTEGER PRIMARY KEY, b TEXT)").unwrap();
        let info = exec(&mut s, "PRAGMA table_info(t)").unwrap();
        assert_eq!(info.rows.len(), 2);
        assert!(exec(&mut s, "PRAGMA table_list").is_ok());
        // The batch is still the host's: the event commits normally.
        commit(&mut s);
    }

    #[test]
    fn statement_and_parameter_limits_are_enforced() {
        let limits = StorageLimits {
            max_statement_bytes: 40,
            max_bound_parameters: 2,
            ..Default::default()
        };
        let (_dir, mut s) = storage_with(limits);
        let long = format!("SELECT '{}'", "x".repeat(40));
        assert_eq!(
            exec(&mut s, &long),
            Err(StorageError::StatementTooLarge(40))
        );
        let three = [SqlValue::Null, SqlValue::Null, SqlValue::Null];
        assert_eq!(
            s.exec("SELECT ?, ?, ?", &three),
            Err(StorageError::TooManyParameters(2))
        );
        assert_eq!(
            exec(&mut s, "SELECT ?, ?, ?"),
            Err(StorageError::TooManyParameters(2))
        );
        assert_eq!(
            exec(&mut s, "SELECT ?3"),
            Err(StorageError::TooManyParameters(2))
        );
        // Past SQLite's own limit (which never goes below MIN_ENGINE_VARIABLES) SQLite refuses
        // to prepare; its message is recognised.
        assert_eq!(
            exec(&mut s, "SELECT ?9"),
            Err(StorageError::TooManyParameters(2))
        );
        assert!(s.exec("SELECT ?, ?", &three[..2]).is_ok());
        // The host's own statements are longer than 40 bytes and still work.
        s.put("k", b"v").unwrap();
        assert_eq!(
            keys(
                &s.list(&ListOptions {
                    prefix: Some("k".into()),
                    ..Default::default()
                })
                .unwrap()
            ),
            ["k"]
        );
    }

    #[test]
    fn quota_exceeded_with_a_tiny_database_limit() {
        let limits = StorageLimits {
            max_database_bytes: 64 * 1024,
            ..Default::default()
        };
        let (_dir, mut s) = storage_with(limits);
        s.put("early", b"1").unwrap();
        commit(&mut s);
        s.put("kept", b"1").unwrap();
        s.end_event(true).unwrap();
        let mut outcome = Ok(());
        for i in 0..100 {
            outcome = s.put(&format!("k{i}"), &[7; 8 * 1024]);
            if outcome.is_err() {
                break;
            }
        }
        assert_eq!(outcome, Err(StorageError::QuotaExceeded));
        // Only the failed call was undone: the event goes on, within its quota.
        assert!(s.database_size().unwrap() <= 64 * 1024);
        assert_eq!(s.get("k0").unwrap(), Some(vec![7; 8 * 1024]));
        let bulk = exec(
            &mut s,
            "CREATE TABLE t (x); WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n \
             LIMIT 1000) INSERT INTO t SELECT randomblob(1000) FROM n",
        );
        assert_eq!(bulk, Err(StorageError::QuotaExceeded));
        s.end_event(false).unwrap();
        assert_eq!(s.commit_batch(), Ok(true));
        assert_eq!(s.get("kept").unwrap(), Some(b"1".to_vec()));
        assert_eq!(s.get("early").unwrap(), Some(b"1".to_vec()));
    }

    #[test]
    fn results_over_the_limit_fail_before_they_are_built() {
        let limits = StorageLimits {
            max_result_bytes: 4096,
            ..Default::default()
        };
        let (_dir, mut s) = storage_with(limits);
        s.put("big", &[1; 5000]).unwrap();
        s.put("small", &[1; 10]).unwrap();
        assert_eq!(s.get("big"), Err(StorageError::ResultTooLarge(4096)));
        assert_eq!(s.get("small").unwrap(), Some(vec![1; 10]));
        assert_eq!(
            s.list(&ListOptions::default()),
            Err(StorageError::ResultTooLarge(4096))
        );
        assert_eq!(
            s.get_many(&strings(&["big"])),
            Err(StorageError::ResultTooLarge(4096))
        );
        let many_rows = exec(
            &mut s,
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) SELECT i FROM n",
        );
        assert_eq!(many_rows, Err(StorageError::ResultTooLarge(4096)));
        // Only the last statement's rows count.
        assert!(exec(&mut s, "SELECT zeroblob(3000); SELECT 1").is_ok());
    }

    #[test]
    fn runaway_sql_is_interrupted_at_the_time_limit() {
        let (_dir, mut s) = storage();
        s.sql_time_limit = Duration::from_millis(20);
        let endless = exec(
            &mut s,
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) SELECT count(*) FROM n",
        );
        assert!(
            matches!(&endless, Err(StorageError::Sql(m)) if m.contains("interrupted")),
            "{endless:?}"
        );
        // A read-only statement interrupted leaves the batch alone.
        s.put("a", b"1").unwrap();
        commit(&mut s);
    }

    #[test]
    fn a_batch_abandoned_by_sqlite_is_reported_at_commit() {
        let (_dir, mut s) = storage();
        s.put("earlier", b"1").unwrap();
        s.end_event(true).unwrap();
        // SQLite rolls back the whole transaction when a writing statement is interrupted.
        s.sql_time_limit = Duration::from_millis(20);
        exec(&mut s, "CREATE TABLE t (x)").unwrap();
        let endless = exec(
            &mut s,
            "INSERT INTO t WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) \
             SELECT i FROM n",
        );
        assert!(
            matches!(&endless, Err(StorageError::Sql(m)) if m.contains("interrupted")),
            "{endless:?}"
        );
        // Nothing more happens in this batch, and the actor learns that it was lost.
        assert!(matches!(s.get("earlier"), Err(StorageError::Internal(_))));
        assert!(matches!(
            s.begin_transaction(),
            Err(StorageError::Internal(_))
        ));
        s.end_event(true).unwrap();
        assert!(matches!(s.commit_batch(), Err(StorageError::Internal(_))));
        // The next batch starts clean, without the lost writes.
        assert_eq!(s.get("earlier").unwrap(), None);
        s.put("later", b"1").unwrap();
        commit(&mut s);
        assert_eq!(s.get("later").unwrap(), Some(b"1".to_vec()));
    }

    #[test]
    fn delete_all_removes_kv_entries_and_every_sql_object() {
        let (_dir, mut s) = storage();
        s.put("a", b"1").unwrap();
        exec(
            &mut s,
            "CREATE TABLE parent (id INTEGER PRIMARY KEY);
             CREATE TABLE child (id INTEGER PRIMARY KEY AUTOINCREMENT, p REFERENCES parent (id));
             CREATE INDEX child_p ON child (p);
             CREATE VIEW v AS SELECT * FROM child;
             CREATE TRIGGER tr AFTER INSERT ON parent BEGIN INSERT INTO child (p) VALUES (new.id); END;
             CREATE VIRTUAL TABLE docs USING fts5(body);
             INSERT INTO docs VALUES ('hello');
             INSERT INTO parent VALUES (1);",
        )
        .unwrap();
        commit(&mut s);
        s.delete_all().unwrap();
        commit(&mut s);
        s.close();
        let left = exec(
            &mut s,
            "SELECT name FROM sqlite_master WHERE name NOT LIKE 'sqlite%'",
        )
        .unwrap();
        assert_eq!(left.rows, Vec::<Vec<SqlValue>>::new());
        assert_eq!(s.get("a").unwrap(), None);
        s.put("b", b"2").unwrap();
        assert_eq!(s.get("b").unwrap(), Some(b"2".to_vec()));
    }

    #[test]
    fn delete_all_is_undone_with_its_event() {
        let (_dir, mut s) = storage();
        s.put("a", b"1").unwrap();
        exec(&mut s, "CREATE TABLE t (x)").unwrap();
        commit(&mut s);
        s.delete_all().unwrap();
        s.end_event(false).unwrap();
        assert_eq!(s.get("a").unwrap(), Some(b"1".to_vec()));
        assert!(exec(&mut s, "SELECT * FROM t").is_ok());
    }

    #[test]
    fn storage_opens_lazily() {
        let (dir, mut s) = storage();
        let path = dir.path().join("objects/a/b.sqlite");
        assert!(!s.is_open());
        assert_eq!(s.database_size(), Ok(0));
        assert!(!path.exists() && !s.is_open());
        s.end_event(true).unwrap();
        assert_eq!(s.commit_batch(), Ok(false));
        assert!(!path.exists());
        // reads of a never-written object create nothing
        assert_eq!(s.get("a").unwrap(), None);
        assert_eq!(s.list(&ListOptions::default()).unwrap(), vec![]);
        assert!(!s.is_open() && !path.exists());
        s.put("a", &[0; 10_000]).unwrap();
        assert!(s.is_open() && path.exists());
        assert!(s.database_size().unwrap() >= 10_000);
        s.close();
        assert!(!s.is_open());
    }

    #[test]
    fn durability_sets_synchronous() {
        for (durability, expected) in [(Durability::Full, 2), (Durability::Normal, 1)] {
            let (_dir, mut s) = storage_with(StorageLimits {
                durability,
                ..Default::default()
            });
            s.put("x", b"1").unwrap();
            let conn = s.conn.as_ref().unwrap();
            let synchronous: i64 = conn
                .query_row("PRAGMA synchronous", [], |r| r.get(0))
                .unwrap();
            assert_eq!(synchronous, expected, "{durability:?}");
            let journal: String = conn
                .query_row("PRAGMA journal_mode", [], |r| r.get(0))
                .unwrap();
            assert_eq!(journal, "wal");
            let locking: String = conn
                .query_row("PRAGMA locking_mode", [], |r| r.get(0))
                .unwrap();
            assert_eq!(locking, "exclusive");
        }
    }

    #[test]
    fn new_databases_are_made_from_a_wal_template_and_leave_no_litter() {
        let (dir, mut s) = storage();
        s.put("k", b"v").unwrap();
        s.end_event(true).unwrap();
        s.commit_batch().unwrap();
        s.close();
        let header = std::fs::read(dir.path().join("objects/a/b.sqlite")).unwrap();
        assert_eq!(&header[..16], b"SQLite format 3\0");
        assert_eq!((header[18], header[19]), (2, 2), "WAL mode in the header");
        let mut names: Vec<_> = std::fs::read_dir(dir.path().join("objects/a"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        // the WAL is kept on close (no checkpoint on close); nothing else is left behind
        assert_eq!(
            names,
            ["b.sqlite", "b.sqlite-wal"],
            "no template or temporary file left behind"
        );
        assert_eq!(s.get("k").unwrap(), Some(b"v".to_vec()));
    }
}

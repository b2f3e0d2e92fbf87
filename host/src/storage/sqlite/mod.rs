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
//!
//! **How it is laid out.** One file per job:
//! - `mod.rs` (this file): [`SqliteStorage`] itself (opening, parking and closing the connection;
//!   the event and batch lifecycle; explicit transactions), the types and limits the others share,
//!   `Db` (one call's view of the open database: savepoints, the quota check, error mapping) and
//!   the result budget.
//! - [`kv`]: the key-value operations on `_cf_KV` (`get` … `list`, `delete_all`).
//! - [`alarm`]: the object's alarm, one row of `_wasmdo_alarm`.
//! - [`sql`]: guest SQL (`exec`, `database_size`): running, binding and copying results out.
//! - [`authorizer`]: the gate guest SQL runs under: the authorizer that keeps it away from the
//!   host's names and settings, and the progress handler that enforces [`SQL_TIME_LIMIT`].
//! - [`file`]: database files: the WAL-mode template new databases are made from, and the pragmas
//!   and engine limits of a freshly opened connection.
//! - [`databases`]: every object database of the host: where each file lives, how many are open,
//!   and the connections parked for a next activation.
//! - [`wal`]: what a commit wrote to the WAL, read back for the commit journal (and taken back
//!   when the journal could not keep it).
//!
//! **Durability** is not this file's: a commit goes to the database's WAL without an fsync
//! (`synchronous=OFF` with a journal, `NORMAL` without), and with a [`CommitLog`] attached (the host's journal; `durable-commits`)
//! its frames go to the log, which makes them durable for many objects at once. Each journaled
//! batch also stamps its number into `_wasmdo_commit` ([`COMMIT_TABLE`]), so recovery knows which
//! batches a file already holds. The actor awaits [`SqliteStorage::take_durable`] before it
//! releases replies, then calls [`SqliteStorage::settle`].
//!
//! [`READ_ONLY_PRAGMAS`]: authorizer::READ_ONLY_PRAGMAS

mod alarm;
mod authorizer;
mod databases;
mod file;
mod kv;
mod sql;
mod usage;
mod wal;

pub(crate) use alarm::stored_alarm;
pub(crate) use databases::Databases;
pub(crate) use file::create_database;
pub(crate) use usage::{Quotas, Usage};

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rusqlite::{Connection, ErrorCode, OpenFlags, TransactionState};

pub(crate) use crate::storage::backend::{
    Entry, ListOptions, SqlResult, SqlValue, StorageBackend, StorageError,
};
use crate::storage::commit::{CommitLog, Durable, NotDurable};
use authorizer::{GuestSqlGate, install_hooks};
use file::configure;
use wal::WalTail;

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
/// Prepared statements kept per connection: the KV statements, `PRAGMA page_count`, the eight
/// `list` shapes, the six transaction statements.
const STATEMENT_CACHE_CAPACITY: usize = 40;

/// The one-row table holding the number of the last journaled batch the database contains.
pub(crate) const COMMIT_TABLE: &str = "_wasmdo_commit";
/// Makes [`COMMIT_TABLE`] with batch number 0 (in the template, and in databases older than it).
const CREATE_COMMIT_TABLE: &str =
    "CREATE TABLE _wasmdo_commit (seq INTEGER NOT NULL); INSERT INTO _wasmdo_commit VALUES (0)";
/// A batch that wrote more than this much is made durable by syncing its own WAL instead of
/// copying it into the journal (one fsync of its own beats holding it twice in memory).
const MAX_JOURNAL_RECORD_BYTES: usize = 64 * 1024 * 1024;

const EVENT_SAVEPOINT: &str = "_wasmdo_event";
const TX_SAVEPOINT_PREFIX: &str = "_wasmdo_tx_";
const CALL_SAVEPOINT: &str = "_wasmdo_call";
/// The statements every event and write call runs: prepared once per connection (see
/// [`transaction_control`]).
const SAVEPOINT_EVENT: &str = "SAVEPOINT _wasmdo_event";
const RELEASE_EVENT: &str = "RELEASE _wasmdo_event";
const SAVEPOINT_CALL: &str = "SAVEPOINT _wasmdo_call";
const RELEASE_CALL: &str = "RELEASE _wasmdo_call";

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
}

impl Default for StorageLimits {
    fn default() -> Self {
        StorageLimits {
            max_entry_bytes: DEFAULT_MAX_ENTRY_BYTES,
            max_statement_bytes: DEFAULT_MAX_STATEMENT_BYTES,
            max_bound_parameters: DEFAULT_MAX_BOUND_PARAMETERS,
            max_database_bytes: DEFAULT_MAX_DATABASE_BYTES,
            max_result_bytes: DEFAULT_MAX_RESULT_BYTES,
        }
    }
}

/// An object's open database connection (with the guard state its hooks share), kept between
/// one actor of the object and the next: opening the file again costs ~300 µs.
#[derive(Debug)]
pub(crate) struct ParkedDatabase {
    conn: Connection,
    gate: Arc<GuestSqlGate>,
    wal: Option<WalTail>,
    seq: Option<u64>,
    page_size: u64,
}

/// The storage of one object: one SQLite database, opened lazily, used by one thread at a time.
///
/// Result sizes ([`StorageLimits::max_result_bytes`]) count approximate host memory: the payload
/// bytes of every key, value, text, blob and column name, plus the in-memory size of each value,
/// row and entry (`size_of`), so a million NULLs cost what they take.
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
    /// Where committed batches become durable; `None` (`durable-commits = false`): commits
    /// survive a crash of the process, not of the machine.
    journal: Option<Arc<dyn CommitLog>>,
    /// The database's name in the journal (its path under the data directory).
    object: Arc<str>,
    /// The WAL as far as the journal has taken it (journaled, open databases only).
    wal: Option<WalTail>,
    /// The number of the last journaled batch the database holds, once read.
    seq: Option<u64>,
    /// The open database's page size, read when it opened.
    page_size: u64,
    /// The last commit's durability, for the actor to await.
    durable: Option<Durable>,
    /// The next journaled commit must also sync the WAL itself: a commit the journal refused
    /// could not be taken back out of it.
    sync_wal_once: bool,
    /// The alarm the next commit leaves, if its batch touched it (see [`Changes::alarm`]).
    ///
    /// [`Changes::alarm`]: crate::storage::commit::Changes::alarm
    commit_alarm: Option<Option<i64>>,
    /// [`MAX_JOURNAL_RECORD_BYTES`] except in tests.
    max_journal_record: usize,
    /// The host's storage usage and this database's namespace in it, when quotas are set.
    usage: Option<(Arc<Usage>, Arc<str>)>,
    /// The database's size when the batch began: its committed size (with quotas only).
    batch_start_bytes: u64,
    /// A storage call of the current event was refused by a quota (`quota-exceeded`): if the
    /// event then fails, that is why.
    quota_refused: bool,
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
            journal: None,
            object: Arc::from(""),
            wal: None,
            seq: None,
            page_size: 0,
            durable: None,
            sync_wal_once: false,
            commit_alarm: None,
            max_journal_record: MAX_JOURNAL_RECORD_BYTES,
            usage: None,
            batch_start_bytes: 0,
            quota_refused: false,
        }
    }

    /// Whether a storage call of the current event was refused by a quota.
    pub(crate) fn quota_refused(&self) -> bool {
        self.quota_refused
    }

    /// Counts this database, of `namespace`, in the host's `usage`, against its quotas.
    pub(crate) fn with_usage(mut self, usage: Arc<Usage>, namespace: Arc<str>) -> Self {
        self.usage = Some((usage, namespace));
        self
    }

    /// Batches that wrote more than `bytes` sync their own WAL instead of going to the journal.
    #[cfg(test)]
    pub(crate) fn with_max_journal_record(mut self, bytes: usize) -> Self {
        self.max_journal_record = bytes;
        self
    }

    /// Makes every commit durable through `journal`, where this database is called `object`.
    pub(crate) fn journaled(mut self, journal: Arc<dyn CommitLog>, object: Arc<str>) -> Self {
        self.journal = Some(journal);
        self.object = object;
        self
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
    pub(crate) fn absent(&self) -> bool {
        !self.is_open() && self.lost_batch.is_none() && !self.path.exists()
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
        self.quota_refused = false;
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
            self.page_size,
            None,
        );
        let result = (|| {
            if tx_depth > 0 {
                // Rolling back to the outermost explicit savepoint undoes the inner ones too.
                db.undo_savepoint(&format!("{TX_SAVEPOINT_PREFIX}1"))?;
            }
            if keep {
                db.transaction_control(RELEASE_EVENT)
            } else {
                db.undo_savepoint(EVENT_SAVEPOINT)
            }
        })();
        if tx_depth > 0 {
            tracing::debug!(target: "wasmdo.storage", tx_depth, "event left transactions open; rolled back");
        }
        result.map_err(|e| self.lose_batch(format!("ending the event failed: {e}")))
    }

    /// Commits the batch (every event since the last commit). `Ok(true)` if something was
    /// committed, `Ok(false)` if no transaction was open. An event still open is rolled back
    /// first (only events ended with `keep` are committed). On error the batch is rolled back;
    /// a batch lost earlier is reported here as `Internal`.
    ///
    /// The commit is in the database but not yet durable: with a journal, its promise waits in
    /// [`SqliteStorage::take_durable`], and the replies it covers must wait for it.
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
        let journaled = self.journal.is_some() && self.has_pending_writes();
        let stamped = match journaled {
            true => match self.stamp_batch() {
                Ok(seq) => Some(seq),
                Err(error) => {
                    tracing::error!(target: "wasmdo.storage", path = %self.path.display(), "numbering the batch failed: {error}");
                    self.rollback_batch();
                    return Err(error);
                }
            },
            false => None,
        };
        let Some(conn) = self.conn.as_ref() else {
            self.batch_open = false;
            return Err(StorageError::Internal(
                "the connection closed during a batch".into(),
            ));
        };
        // the size the commit leaves, for the quotas' books
        let grown = (self.usage.as_ref())
            .map(|_| size_of(conn, self.page_size))
            .transpose();
        let grown = match grown {
            Ok(grown) => grown,
            Err(e) => {
                let error = map_error(e, &self.limits, None, self.sql_time_limit);
                self.rollback_batch();
                return Err(error);
            }
        };
        match transaction_control(conn, "COMMIT") {
            Ok(()) => {
                self.batch_open = false;
                if let (Some((usage, namespace)), Some(after)) = (&self.usage, grown) {
                    usage.committed(namespace, self.batch_start_bytes, after);
                }
                if let Some(seq) = stamped {
                    self.seq = Some(seq);
                    self.durable = Some(self.hand_to_journal(seq));
                }
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

    /// The durability of the last commit, if it has to be waited for (journaled commits only);
    /// once it settles, pass the outcome to [`SqliteStorage::settle`].
    pub(crate) fn take_durable(&mut self) -> Option<Durable> {
        self.durable.take()
    }

    /// Finishes a journaled commit. `Ok`: the journal holds it; the WAL is folded into the
    /// database when long enough (SQLite syncs both then, off the request path of other objects).
    /// `Err`: the journal could not keep it, so it is taken back out of the database — the
    /// connection is closed and the WAL cut before the commit's frames — and the error says why.
    pub(crate) fn settle(&mut self, outcome: Result<(), NotDurable>) -> Result<(), NotDurable> {
        match outcome {
            Ok(()) => {
                let Some(wal) = self.wal.as_mut() else {
                    return Ok(());
                };
                wal.settled();
                if wal.wants_checkpoint()
                    && let Some(conn) = self.conn.as_ref()
                {
                    // Fold the WAL into the database, then sync the database before the next
                    // commit restarts the log over the frames just folded (SQLite, with
                    // synchronous=OFF, would not).
                    let path = &self.path;
                    let folded = tokio::task::block_in_place(|| {
                        conn.wal_checkpoint_v2(None::<&str>, rusqlite::wal::CheckpointMode::PASSIVE)
                            .map_err(|e| e.to_string())
                            .and_then(|_| {
                                std::fs::File::open(path)
                                    .and_then(|f| f.sync_data())
                                    .map_err(|e| e.to_string())
                            })
                    });
                    if let Err(e) = folded {
                        // The log must not restart over pages the database may not hold: closing
                        // the connection forgets that they were folded in (the next open reads
                        // the log as it is, and folds it again later).
                        tracing::warn!(target: "wasmdo.storage", path = %self.path.display(), "checkpointing the WAL: {e}; closing the database");
                        self.close();
                    }
                }
                Ok(())
            }
            Err(reason) => {
                let wal = self.wal.take();
                self.close();
                if let Some(wal) = wal
                    && let Err(e) = wal.take_back()
                {
                    tracing::error!(target: "wasmdo.storage", path = %self.path.display(),
                        "cannot take a commit the journal refused back out of the WAL ({e}); the next commit syncs the WAL itself");
                    self.sync_wal_once = true;
                }
                Err(match reason {
                    NotDurable::Failed(why) => {
                        NotDurable::Failed(format!("the batch could not be made durable: {why}"))
                    }
                    refused => refused,
                })
            }
        }
    }

    /// Writes the batch's number into the database, inside the batch (see [`COMMIT_TABLE`]).
    fn stamp_batch(&mut self) -> Result<u64, StorageError> {
        let Some(conn) = self.conn.as_ref() else {
            return Err(StorageError::Internal("the database is not open".into()));
        };
        let fail = |e| map_error(e, &self.limits, None, self.sql_time_limit);
        let last = match self.seq {
            Some(seq) => seq,
            None => read_batch_number(conn).map_err(fail)?,
        };
        let next = last + 1;
        conn.prepare_cached(&format!("UPDATE {COMMIT_TABLE} SET seq = ?1"))
            .and_then(|mut stmt| stmt.execute([next as i64]))
            .map_err(fail)?;
        Ok(next)
    }

    /// Tells the next commit what the batch left of the object's alarm (the actor reads it just
    /// before committing): `Some(None)` cleared, `Some(Some(t))` set, `None` untouched.
    pub(crate) fn alarm_for_commit(&mut self, alarm: Option<Option<i64>>) {
        self.commit_alarm = alarm;
    }

    /// Hands the commit just made to the journal; its durability promise.
    fn hand_to_journal(&mut self, seq: u64) -> Durable {
        let alarm = self.commit_alarm.take();
        let (Some(journal), Some(wal)) = (self.journal.as_ref(), self.wal.as_mut()) else {
            return Durable::ready(Err("the database has no WAL to journal".into()));
        };
        let sync_wal = std::mem::take(&mut self.sync_wal_once);
        let fallback = journal.local_fallback();
        match wal.take(self.object.clone(), seq) {
            Ok(mut changes)
                if !fallback || (!sync_wal && changes.frames.len() <= self.max_journal_record) =>
            {
                changes.alarm = alarm;
                journal.append(changes)
            }
            Err(e) if !fallback => {
                wal.forget_position();
                Durable::ready(Err(format!(
                    "cannot read the commit back from the WAL: {e}"
                )))
            }
            // too large to copy, or the WAL holds a commit the journal never got: the WAL itself
            // is made durable (the file then holds everything up to this batch)
            Ok(_) => Durable::ready(tokio::task::block_in_place(|| wal.sync())),
            Err(e) => {
                tracing::warn!(target: "wasmdo.storage", path = %self.path.display(),
                    "cannot read the commit back from the WAL ({e}); syncing the WAL instead");
                wal.forget_position();
                Durable::ready(tokio::task::block_in_place(|| wal.sync()))
            }
        }
    }

    /// Rolls back the whole batch (used when the instance died and the actor gives up on it), and
    /// forgets a lost batch.
    pub(crate) fn rollback_batch(&mut self) {
        self.quota_refused = false;
        self.lost_batch = None;
        self.abandon_transaction();
    }

    /// Takes the open connection out, rolled back to no transaction, to be parked while the object
    /// has no actor (see [`Databases::park`]);
    /// `None` if none was open (or it could not be brought back to a clean state, and was closed).
    pub(crate) fn park(&mut self) -> Option<ParkedDatabase> {
        self.rollback_batch();
        let conn = self.conn.take()?;
        let wal = self.wal.take();
        let seq = self.seq.take();
        conn.is_autocommit().then(|| ParkedDatabase {
            conn,
            gate: self.gate.clone(),
            wal,
            seq,
            page_size: self.page_size,
        })
    }

    /// Adopts this object's parked connection (instead of opening the file again).
    pub(crate) fn adopt(&mut self, parked: ParkedDatabase) {
        self.close();
        self.conn = Some(parked.conn);
        self.gate = parked.gate;
        self.wal = parked.wal;
        self.seq = parked.seq;
        self.page_size = parked.page_size;
        self.kv_ready = false;
    }

    /// Closes the connection (eviction); an open batch is rolled back first. The next call
    /// re-opens the database lazily.
    pub(crate) fn close(&mut self) {
        self.rollback_batch();
        self.wal = None;
        self.seq = None;
        if let Some(conn) = self.conn.take()
            && let Err((_, e)) = conn.close()
        {
            // Dropping the returned connection retries the close and releases the handle.
            tracing::warn!(target: "wasmdo.storage", path = %self.path.display(), "closing the database: {e}");
        }
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
        if let Err(error) = self.begin_event() {
            self.quota_refused |= error == StorageError::QuotaExceeded;
            return Err(error);
        }
        let Some(conn) = self.conn.as_ref() else {
            return Err(StorageError::Internal("the database is not open".into()));
        };
        let quota = self
            .usage
            .as_ref()
            .map(|(usage, namespace)| (&**usage, &**namespace, self.batch_start_bytes));
        let result = call(&mut Db::new(
            conn,
            &self.limits,
            &self.gate,
            &mut self.kv_ready,
            self.sql_time_limit,
            self.page_size,
            quota,
        ));
        if let Err(error) = &result {
            self.quota_refused |= *error == StorageError::QuotaExceeded;
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
            // no fsync here, even for a new database: it becomes durable with the journal
            let (conn, wal, created, page_size) = self.open()?;
            self.conn = Some(conn);
            self.wal = wal;
            self.page_size = page_size;
            if created {
                // the template's batch number: no need to read it
                self.seq = Some(0);
            }
        }
        let Some(conn) = self.conn.as_ref() else {
            return Err(StorageError::Internal("the database is not open".into()));
        };
        let fail = |e| map_error(e, &self.limits, None, self.sql_time_limit);
        if !self.batch_open {
            // DEFERRED: this connection is the object's only writer, so taking the write lock
            // at the first write cannot race anyone, and a read-only batch takes none.
            transaction_control(conn, "BEGIN").map_err(fail)?;
            self.batch_open = true;
            if self.usage.is_some() {
                self.batch_start_bytes = size_of(conn, self.page_size).map_err(fail)?;
            }
        }
        if !self.event_open {
            transaction_control(conn, SAVEPOINT_EVENT).map_err(fail)?;
            self.event_open = true;
        }
        Ok(())
    }

    /// Opens (creating it from the template if there is none) the database; with the WAL's tail
    /// when journaled, and whether the file was created.
    fn open(&self) -> Result<(Connection, Option<WalTail>, bool, u64), StorageError> {
        let internal = |what: &str, e: &dyn std::fmt::Display| {
            StorageError::Internal(format!("{what} {}: {e}", self.path.display()))
        };
        let created = !self.path.exists();
        if created {
            if let Some((usage, namespace)) = &self.usage
                && let Err(why) = usage.admit_object(namespace, 0)
            {
                tracing::debug!(target: "wasmdo.storage", "a new object cannot write: {why}");
                return Err(StorageError::QuotaExceeded);
            }
            match create_database(&self.path) {
                Ok(bytes) => {
                    if let Some((usage, namespace)) = &self.usage {
                        usage.committed(namespace, 0, bytes);
                    }
                }
                Err(e) => {
                    if let Some((usage, namespace)) = &self.usage {
                        usage.release_object(namespace);
                    }
                    return Err(internal("cannot create", &e));
                }
            }
        }
        // No SQLITE_OPEN_URI: the path is a file name, never a URI with options.
        // `unix-none`: SQLite's unix VFS without file locks. With the locking VFS, every open
        // walks a process-wide list of every open file, twice, under a global mutex (to share
        // POSIX locks between connections): 29% of a host's CPU with 5,000 databases open while
        // it created new objects. Nothing needs those locks: an object's database has one
        // connection at a time, its actor's (parked and adopted, never shared), and one host
        // owns the data directory (`host.lock`). Outside tools must not open a running host's
        // object files (docs/ARCHITECTURE.md, "Storage").
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let mut conn = Connection::open_with_flags_and_vfs(&self.path, flags, c"unix-none")
            .map_err(|e| internal("cannot open", &e))?;
        let page_size = configure(&conn, &self.limits, self.journal.is_some())
            .map_err(|e| internal("cannot configure", &e))?;
        install_hooks(&mut conn, &self.gate).map_err(|e| internal("cannot configure", &e))?;
        let wal = match self.journal {
            Some(_) => Some(
                WalTail::attach(&mut conn, &self.path, created)
                    .map_err(|e| internal("cannot read the WAL of", &e))?,
            ),
            None => None,
        };
        tracing::debug!(target: "wasmdo.storage", path = %self.path.display(), "opened");
        Ok((conn, wal, created, page_size))
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

/// The number of the last journaled batch the database holds; `None` in a database made before
/// [`COMMIT_TABLE`] existed.
pub(crate) fn batch_number(conn: &Connection) -> rusqlite::Result<Option<u64>> {
    if !file::table_exists(conn, COMMIT_TABLE)? {
        return Ok(None);
    }
    let seq: i64 = conn
        .prepare_cached(&format!("SELECT seq FROM {COMMIT_TABLE}"))?
        .query_row([], |row| row.get(0))?;
    Ok(Some(u64::try_from(seq).unwrap_or(0)))
}

/// [`batch_number`], creating [`COMMIT_TABLE`] (inside the caller's transaction) in a database
/// made before it existed.
fn read_batch_number(conn: &Connection) -> rusqlite::Result<u64> {
    match batch_number(conn)? {
        Some(seq) => Ok(seq),
        None => conn.execute_batch(CREATE_COMMIT_TABLE).map(|()| 0),
    }
}

/// One storage call's view of the open database.
struct Db<'a> {
    conn: &'a Connection,
    limits: &'a StorageLimits,
    gate: &'a GuestSqlGate,
    kv_ready: &'a mut bool,
    sql_time_limit: Duration,
    page_size: u64,
    /// The host's usage, the database's namespace, and its committed size: the class and host
    /// quotas a write must stay within.
    quota: Option<(&'a Usage, &'a str, u64)>,
}

impl<'a> Db<'a> {
    fn new(
        conn: &'a Connection,
        limits: &'a StorageLimits,
        gate: &'a GuestSqlGate,
        kv_ready: &'a mut bool,
        sql_time_limit: Duration,
        page_size: u64,
        quota: Option<(&'a Usage, &'a str, u64)>,
    ) -> Self {
        Db {
            conn,
            limits,
            gate,
            kv_ready,
            sql_time_limit,
            page_size,
            quota,
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

    /// [`transaction_control`] on this call's connection.
    fn transaction_control(&mut self, sql: &str) -> Result<(), StorageError> {
        transaction_control(self.conn, sql).map_err(|e| self.err(e))
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
        self.transaction_control(SAVEPOINT_CALL)?;
        match call(self) {
            Ok(value) => {
                self.transaction_control(RELEASE_CALL)?;
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

    fn database_size(&self) -> Result<u64, StorageError> {
        size_of(self.conn, self.page_size).map_err(|e| self.err(e))
    }

    /// `QuotaExceeded` if the database has outgrown its quota; the caller's savepoint then undoes
    /// the call that grew it.
    /// So does a batch whose growth would take its class or the host past their quotas.
    fn check_quota(&self) -> Result<(), StorageError> {
        let size = self.database_size()?;
        if size > self.limits.max_database_bytes {
            return Err(StorageError::QuotaExceeded);
        }
        if let Some((usage, namespace, committed)) = self.quota
            && let Err(quota) = usage.check_growth(namespace, size.saturating_sub(committed))
        {
            tracing::debug!(target: "wasmdo.storage", namespace, quota, "a write would cross a storage quota");
            return Err(StorageError::QuotaExceeded);
        }
        Ok(())
    }
}

/// Runs one of the statements every batch, event or write call runs (`BEGIN`, `COMMIT`, the
/// event's and the call's savepoints) from the connection's statement cache: parsing them anew
/// each time was ~5% of a host's CPU under many objects' writes.
fn transaction_control(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute([]).map(|_| ())
}

/// The database's size in bytes (`page_count · page_size`), uncommitted growth included.
/// `page_size` is the connection's, read once when it opened (a database in WAL mode cannot
/// change it, and guests cannot set it).
fn size_of(conn: &Connection, page_size: u64) -> rusqlite::Result<u64> {
    let pages = conn
        .prepare_cached("PRAGMA page_count")
        .and_then(|mut stmt| stmt.query_row([], |row| row.get::<_, i64>(0)))?;
    Ok(u64::try_from(pages).unwrap_or(0) * page_size)
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

/// Helpers shared by the unit tests of every file of this module.
/// The guest-facing calls, as [`SqliteStorage`]'s own methods (one file per kind of call).
impl StorageBackend for SqliteStorage {
    fn get(&mut self, key: &str) -> Result<Option<Vec<u8>>, StorageError> {
        SqliteStorage::get(self, key)
    }
    fn get_many(&mut self, keys: &[String]) -> Result<Vec<Entry>, StorageError> {
        SqliteStorage::get_many(self, keys)
    }
    fn put(&mut self, key: &str, value: &[u8]) -> Result<(), StorageError> {
        SqliteStorage::put(self, key, value)
    }
    fn put_many(&mut self, entries: &[Entry]) -> Result<(), StorageError> {
        SqliteStorage::put_many(self, entries)
    }
    fn delete(&mut self, key: &str) -> Result<bool, StorageError> {
        SqliteStorage::delete(self, key)
    }
    fn delete_many(&mut self, keys: &[String]) -> Result<u32, StorageError> {
        SqliteStorage::delete_many(self, keys)
    }
    fn list(&mut self, options: &ListOptions) -> Result<Vec<Entry>, StorageError> {
        SqliteStorage::list(self, options)
    }
    fn delete_all(&mut self) -> Result<(), StorageError> {
        SqliteStorage::delete_all(self)
    }
    fn exec(&mut self, query: &str, params: &[SqlValue]) -> Result<SqlResult, StorageError> {
        SqliteStorage::exec(self, query, params)
    }
    fn database_size(&mut self) -> Result<u64, StorageError> {
        SqliteStorage::database_size(self)
    }
    fn begin_transaction(&mut self) -> Result<u32, StorageError> {
        SqliteStorage::begin_transaction(self)
    }
    fn commit_transaction(&mut self) -> Result<(), StorageError> {
        SqliteStorage::commit_transaction(self)
    }
    fn rollback_transaction(&mut self) -> Result<(), StorageError> {
        SqliteStorage::rollback_transaction(self)
    }
    fn get_alarm(&mut self) -> Result<Option<i64>, StorageError> {
        SqliteStorage::get_alarm(self)
    }
    fn set_alarm(&mut self, epoch_ms: i64) -> Result<(), StorageError> {
        SqliteStorage::set_alarm(self, epoch_ms)
    }
    fn delete_alarm(&mut self) -> Result<(), StorageError> {
        SqliteStorage::delete_alarm(self)
    }
}

#[cfg(test)]
mod test_support {
    use super::*;
    use tempfile::TempDir;

    pub(super) fn storage_with(limits: StorageLimits) -> (TempDir, SqliteStorage) {
        let dir = TempDir::new().expect("temp dir");
        let storage = SqliteStorage::new(dir.path().join("objects/a/b.sqlite"), limits);
        (dir, storage)
    }

    pub(super) fn storage() -> (TempDir, SqliteStorage) {
        storage_with(StorageLimits::default())
    }

    pub(super) fn text(s: &str) -> SqlValue {
        SqlValue::Text(s.to_owned())
    }

    pub(super) fn keys(entries: &[Entry]) -> Vec<&str> {
        entries.iter().map(|(k, _)| k.as_str()).collect()
    }

    pub(super) fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| (*s).to_owned()).collect()
    }

    pub(super) fn exec(s: &mut SqliteStorage, query: &str) -> Result<SqlResult, StorageError> {
        s.exec(query, &[])
    }

    pub(super) fn commit(s: &mut SqliteStorage) {
        s.end_event(true).expect("end event");
        s.commit_batch().expect("commit");
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::*;
    use super::*;

    #[test]
    fn storage_is_send() {
        fn assert_send<T: Send>() {}
        assert_send::<SqliteStorage>();
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
}

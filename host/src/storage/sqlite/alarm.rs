//! The object's alarm: at most one row in `_wasmdo_alarm` (created on the first `set_alarm`),
//! written inside the event's transaction like any other write. The host-wide schedule follows it:
//! the actor asks [`SqliteStorage::take_alarm_touched`] whether it must look again.

use super::file::table_exists;
use super::{Db, SqliteStorage, StorageError};

/// The table holding the object's alarm (one row at most); guest SQL cannot reach it.
const ALARM_TABLE: &str = "_wasmdo_alarm";
const CREATE_ALARM_TABLE: &str = "CREATE TABLE IF NOT EXISTS _wasmdo_alarm \
     (singleton INTEGER PRIMARY KEY CHECK (singleton = 0), time INTEGER NOT NULL)";

/// The alarm stored in the closed database file at `path` (`None`: no file, or no alarm): for a
/// cluster host that just took the object over, to schedule it.
pub(crate) fn stored_alarm(path: &std::path::Path) -> Result<Option<i64>, String> {
    if !path.exists() {
        return Ok(None);
    }
    let flags =
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = rusqlite::Connection::open_with_flags(path, flags).map_err(|e| e.to_string())?;
    if !table_exists(&conn, ALARM_TABLE).map_err(|e| e.to_string())? {
        return Ok(None);
    }
    conn.query_row(
        "SELECT time FROM _wasmdo_alarm WHERE singleton = 0",
        [],
        |row| row.get(0),
    )
    .map(Some)
    .or_else(|e| match e {
        rusqlite::Error::QueryReturnedNoRows => Ok(None),
        e => Err(e.to_string()),
    })
}

impl SqliteStorage {
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
}

impl Db<'_> {
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
}

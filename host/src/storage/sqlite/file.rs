//! Database files: new ones are made from a template already in WAL mode, and every connection
//! is configured (journal, durability, quota backstop, SQLite's own limits) when it opens.

use std::path::Path;

use rusqlite::Connection;
use rusqlite::config::DbConfig;
use rusqlite::limits::Limit;

use super::{
    BUSY_TIMEOUT, CREATE_COMMIT_TABLE, MIN_ENGINE_SQL_LENGTH, MIN_ENGINE_VARIABLES,
    QUOTA_HEADROOM_BYTES, RECORD_HEADER_SLACK, STATEMENT_CACHE_CAPACITY, StorageLimits,
};

/// An empty database already in WAL mode, with batch number 0 in [`COMMIT_TABLE`](super::COMMIT_TABLE): two pages,
/// made once per process by SQLite itself.
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
                conn.execute_batch(CREATE_COMMIT_TABLE)
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

/// Creates a new object's database (and its directories) by writing the template to a temporary
/// name and renaming it, so no reader ever sees half a file. Nothing is synced: converting a fresh
/// file to WAL through SQLite would cost four fsyncs, and this costs none. With the journal on,
/// the file becomes durable at the next checkpoint, and until then recovery can make it again
/// from the template (the journal holds its whole history).
/// Returns the new file's size.
pub(crate) fn create_database(path: &Path) -> std::io::Result<u64> {
    use std::io::Write;
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = path.with_extension("sqlite-new");
    // the directories usually exist already: create them only when they do not
    let mut file = match std::fs::File::create(&tmp) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(dir)?;
            std::fs::File::create(&tmp)?
        }
        created => created?,
    };
    let bytes = template(dir).map_err(std::io::Error::other)?;
    file.write_all(bytes)?;
    drop(file);
    std::fs::rename(&tmp, path)?;
    Ok(bytes.len() as u64)
}

/// Whether the table `name` exists in the database.
pub(super) fn table_exists(conn: &Connection, name: &str) -> rusqlite::Result<bool> {
    conn.prepare_cached("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1")?
        .exists([name])
}

/// Sets up a freshly opened connection: journal, durability, quotas and SQLite's own limits.
/// `journaled`: the host's commit journal makes commits durable (see `synchronous` below).
/// Returns the database's page size.
pub(super) fn configure(
    conn: &Connection,
    limits: &StorageLimits,
    journaled: bool,
) -> rusqlite::Result<u64> {
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
    // The object's actor is this database's only user, ever. Exclusive locking mode, set before
    // WAL is entered, keeps the WAL index in heap memory instead of a `-shm` file — one file
    // descriptor and one mapping fewer. (The VFS takes no file locks at all: see `open`.)
    conn.query_row("PRAGMA locking_mode = EXCLUSIVE", [], |_| Ok(()))?;
    // WAL: a commit appends to the log instead of writing the rollback journal and the database.
    let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        tracing::warn!(target: "wasmdo.storage", mode, "WAL unavailable; using this journal mode");
    }
    // Journaled, OFF: SQLite never syncs — not at commits (the journal makes them durable, many
    // objects per fsync), not even the WAL header of a new or restarted log (with NORMAL, one
    // fsync per new object). The one sync a file still needs, after a WAL checkpoint and before
    // the log restarts, the storage does itself (`SqliteStorage::settle`). Without the journal,
    // NORMAL: commits survive a crash of the process, and checkpoints sync.
    let synchronous = if journaled { "OFF" } else { "NORMAL" };
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
    Ok(page_size)
}

#[cfg(test)]
mod tests {
    use crate::storage::sqlite::test_support::*;

    #[test]
    fn connections_use_wal_exclusive_and_do_not_sync_commits() {
        let (_dir, mut s) = storage();
        s.put("x", b"1").unwrap();
        let conn = s.conn.as_ref().unwrap();
        let synchronous: i64 = conn
            .query_row("PRAGMA synchronous", [], |r| r.get(0))
            .unwrap();
        assert_eq!(synchronous, 1, "NORMAL without the journal");
        let journal: String = conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(journal, "wal");
        let locking: String = conn
            .query_row("PRAGMA locking_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(locking, "exclusive");
    }

    #[test]
    fn create_database_makes_missing_directories_and_returns_the_file_size() {
        let dir = tempfile::TempDir::new().unwrap();
        let path = dir.path().join("objects/ns/ab/abcd.sqlite");
        let bytes = super::create_database(&path).unwrap();
        assert_eq!(bytes, std::fs::metadata(&path).unwrap().len());
        assert!(bytes >= 2 * 4096, "the template holds two pages");
        // a second object in the same, now existing, directory
        let next = dir.path().join("objects/ns/ab/abce.sqlite");
        assert_eq!(super::create_database(&next).unwrap(), bytes);
        let mut names: Vec<_> = std::fs::read_dir(dir.path().join("objects/ns/ab"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["abcd.sqlite", "abce.sqlite"]);
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

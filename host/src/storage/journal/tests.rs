//! The journal with real object databases: batches journaled, object files that lose what was
//! not synced (a power cut), recovery bringing them back, torn tails, interrupted checkpoints.
//!
//! A power cut is played by putting back copies of the object files taken earlier (the state the
//! disk held at that point), after the journal — which syncs every write — was written.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use tempfile::TempDir;

use super::*;
use crate::storage::commit::CommitLog;
use crate::storage::sqlite::{SqliteStorage, StorageLimits};

const OBJECT: &str = "objects/counter/ab/ab01.sqlite";

fn journal_dir(data: &Path) -> PathBuf {
    data.join("journal")
}

struct Host {
    dir: TempDir,
    journal: Arc<Journal>,
    metrics: Arc<Metrics>,
}

impl Host {
    fn start() -> Host {
        Host::start_in(TempDir::new().unwrap(), DEFAULT_SEGMENT_BYTES)
    }

    fn start_in(dir: TempDir, segment_bytes: u64) -> Host {
        let recovered = recover(dir.path(), &journal_dir(dir.path())).expect("recovery");
        let metrics = Arc::new(Metrics::default());
        let journal = Journal::start(
            dir.path(),
            &journal_dir(dir.path()),
            recovered.next_segment,
            segment_bytes,
            metrics.clone(),
        )
        .unwrap();
        Host {
            dir,
            journal: Arc::new(journal),
            metrics,
        }
    }

    fn data(&self) -> &Path {
        self.dir.path()
    }

    fn storage(&self, object: &str) -> SqliteStorage {
        let journal: Arc<dyn CommitLog> = self.journal.clone();
        SqliteStorage::new(self.data().join(object), StorageLimits::default())
            .journaled(journal, object.into())
    }

    /// Stops the host as a crash would (no checkpoint), keeping the data directory.
    fn crash(self) -> TempDir {
        self.dir
    }
}

/// Starts the host again on `dir` (recovering its journal), checks that [`OBJECT`]'s database is
/// sound, and returns the host and the object's storage.
fn restart(dir: TempDir) -> (Host, SqliteStorage) {
    let host = Host::start_in(dir, DEFAULT_SEGMENT_BYTES);
    assert_eq!(integrity(host.data(), OBJECT), "ok");
    let storage = host.storage(OBJECT);
    (host, storage)
}

/// Cuts a segment file to `len` bytes (a crash in the middle of a write, or before it).
fn cut(segment: &Path, len: u64) {
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(segment)
        .unwrap();
    file.set_len(len).unwrap();
}

/// Ends the event, commits the batch and waits for the journal, as the actor does.
fn commit(s: &mut SqliteStorage) {
    s.end_event(true).unwrap();
    assert!(s.commit_batch().unwrap());
    let durable = s
        .take_durable()
        .expect("a journaled commit waits for the journal");
    s.settle(durable.wait_blocking()).expect("durable");
}

fn put(s: &mut SqliteStorage, key: &str, value: &str) {
    s.put(key, value.as_bytes()).unwrap();
    commit(s);
}

fn value(s: &mut SqliteStorage, key: &str) -> Option<String> {
    s.get(key).unwrap().map(|v| String::from_utf8(v).unwrap())
}

/// The object's files (database and WAL) as they are now.
fn copy_files(data: &Path, object: &str) -> Vec<(PathBuf, Option<Vec<u8>>)> {
    let db = data.join(object);
    let wal = PathBuf::from(format!("{}-wal", db.display()));
    [db, wal]
        .into_iter()
        .map(|p| {
            let bytes = std::fs::read(&p).ok();
            (p, bytes)
        })
        .collect()
}

/// Puts the object's files back as they were (what a power cut leaves of unsynced writes).
fn restore_files(files: &[(PathBuf, Option<Vec<u8>>)]) {
    for (path, bytes) in files {
        match bytes {
            Some(bytes) => std::fs::write(path, bytes).unwrap(),
            None => {
                let _ = std::fs::remove_file(path);
            }
        }
    }
}

fn integrity(data: &Path, object: &str) -> String {
    let conn = rusqlite::Connection::open(data.join(object)).unwrap();
    conn.query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap()
}

/// Where the complete records of a segment file end (it is longer: zeros are written ahead).
fn records_end(segment: &Path) -> u64 {
    let bytes = std::fs::read(segment).unwrap();
    let number = format::segments(segment.parent().unwrap())
        .unwrap()
        .into_iter()
        .find(|(_, p)| p == segment)
        .unwrap()
        .0;
    format::decode(&bytes, number).unwrap().end as u64
}

fn segment_files(data: &Path) -> Vec<PathBuf> {
    format::segments(&journal_dir(data))
        .unwrap()
        .into_iter()
        .map(|(_, p)| p)
        .collect()
}

#[test]
fn one_sync_covers_batches_and_recovery_restores_what_the_files_lost() {
    let host = Host::start();
    let mut s = host.storage(OBJECT);
    put(&mut s, "k1", "one");
    s.close();
    let at_first = copy_files(host.data(), OBJECT);
    for i in 2..=5 {
        put(&mut s, &format!("k{i}"), &format!("v{i}"));
    }
    exec_sql(
        &mut s,
        "CREATE TABLE t (x); INSERT INTO t VALUES (random())",
    );
    commit(&mut s);
    let random = sql_value(&mut s, "SELECT x FROM t");
    s.close();
    assert_eq!(host.metrics.journal_batches.load(Ordering::Relaxed), 6);
    assert!(host.metrics.journal_syncs.load(Ordering::Relaxed) >= 1);

    // the power goes: the object files lose every unsynced write since batch 1
    let dir = host.crash();
    restore_files(&at_first);
    let host = Host::start_in(dir, DEFAULT_SEGMENT_BYTES);
    assert!(
        segment_files(host.data()).len() == 1,
        "recovery cleared the journal; a new segment was started"
    );
    assert_eq!(integrity(host.data(), OBJECT), "ok");
    let mut s = host.storage(OBJECT);
    assert_eq!(value(&mut s, "k1").as_deref(), Some("one"));
    for i in 2..=5 {
        assert_eq!(value(&mut s, &format!("k{i}")), Some(format!("v{i}")));
    }
    // pages, not statements: `random()` is not run again
    assert_eq!(sql_value(&mut s, "SELECT x FROM t"), random);
    // and the object goes on numbering its batches from there
    put(&mut s, "k7", "v7");
    s.close();
    let dir = host.crash();
    let host = Host::start_in(dir, DEFAULT_SEGMENT_BYTES);
    let mut s = host.storage(OBJECT);
    assert_eq!(value(&mut s, "k7").as_deref(), Some("v7"));
}

#[test]
fn a_new_object_whose_file_was_lost_is_made_again_from_the_journal() {
    let host = Host::start();
    let mut s = host.storage(OBJECT);
    put(&mut s, "a", "1");
    put(&mut s, "b", "2");
    s.close();
    let dir = host.crash();
    // the file's creation never reached the disk
    std::fs::write(dir.path().join(OBJECT), b"").unwrap();
    let _ = std::fs::remove_file(dir.path().join(format!("{OBJECT}-wal")));
    let (_host, mut s) = restart(dir);
    assert_eq!(value(&mut s, "a").as_deref(), Some("1"));
    assert_eq!(value(&mut s, "b").as_deref(), Some("2"));
}

#[test]
fn a_torn_tail_is_ignored_up_to_the_last_complete_batch() {
    let host = Host::start();
    let mut s = host.storage(OBJECT);
    put(&mut s, "k1", "one");
    s.close();
    let at_first = copy_files(host.data(), OBJECT);
    put(&mut s, "k2", "two");
    let complete = records_end(&segment_files(host.data())[0]);
    put(&mut s, "k3", "three");
    s.close();
    let dir = host.crash();
    restore_files(&at_first);
    // the last write was cut short, somewhere in its record
    let segment = segment_files(dir.path()).remove(0);
    let full = records_end(&segment);
    assert!(full > complete);
    cut(&segment, complete + (full - complete) / 2);

    let (_host, mut s) = restart(dir);
    assert_eq!(value(&mut s, "k1").as_deref(), Some("one"));
    assert_eq!(value(&mut s, "k2").as_deref(), Some("two"));
    assert_eq!(
        value(&mut s, "k3"),
        None,
        "its record was torn: never acknowledged"
    );
}

#[test]
fn a_file_ahead_of_the_journal_keeps_its_whole_last_commit() {
    // a crash after SQLite committed but before the journal had the batch: the file holds a
    // batch no reply acknowledged, whole, and recovery leaves it whole
    let host = Host::start();
    let mut s = host.storage(OBJECT);
    put(&mut s, "k1", "one");
    put(&mut s, "k2", "two");
    let segment = segment_files(host.data()).remove(0);
    let through_k2 = records_end(&segment);
    put(&mut s, "k3", "three");
    s.close();
    let dir = host.crash();
    // the journal never got batch 3
    cut(&segment, through_k2);
    let (_host, mut s) = restart(dir);
    assert_eq!(value(&mut s, "k2").as_deref(), Some("two"));
    assert_eq!(value(&mut s, "k3").as_deref(), Some("three"));
    put(&mut s, "k4", "four");
    assert_eq!(value(&mut s, "k4").as_deref(), Some("four"));
}

#[test]
fn a_checkpoint_interrupted_anywhere_loses_nothing() {
    let host = Host::start();
    let mut s = host.storage(OBJECT);
    put(&mut s, "k1", "one");
    s.close();
    let at_first = copy_files(host.data(), OBJECT);
    put(&mut s, "k2", "two");
    put(&mut s, "k3", "three");
    let first_segment = segment_files(host.data()).remove(0);
    let first_bytes = std::fs::read(&first_segment).unwrap();
    host.journal.checkpoint().unwrap();
    assert!(
        !first_segment.exists(),
        "a checkpoint deletes the segments it covers"
    );
    assert_eq!(host.metrics.journal_checkpoints.load(Ordering::Relaxed), 1);
    put(&mut s, "k4", "four");
    s.close();
    let current = copy_files(host.data(), OBJECT);
    let dir = host.crash();

    // the crash came before the old segment was deleted: both segments are replayed, over files
    // that lost everything since batch 1 (the sync never finished)...
    std::fs::write(&first_segment, &first_bytes).unwrap();
    restore_files(&at_first);
    let (host, mut s) = restart(dir);
    for (k, v) in [
        ("k1", "one"),
        ("k2", "two"),
        ("k3", "three"),
        ("k4", "four"),
    ] {
        assert_eq!(value(&mut s, k).as_deref(), Some(v));
    }
    s.close();

    // ... or over files the sync did make durable: batches they hold are skipped
    let dir = host.crash();
    restore_files(&current);
    std::fs::write(&first_segment, &first_bytes).unwrap();
    let (_host, mut s) = restart(dir);
    for (k, v) in [
        ("k1", "one"),
        ("k2", "two"),
        ("k3", "three"),
        ("k4", "four"),
    ] {
        assert_eq!(value(&mut s, k).as_deref(), Some(v));
    }
}

#[test]
fn segments_rotate_and_checkpoint_by_themselves() {
    let host = Host::start_in(TempDir::new().unwrap(), 64 * 1024);
    let mut s = host.storage(OBJECT);
    let mut other = host.storage("objects/counter/cd/cd02.sqlite");
    for i in 0..200 {
        put(&mut s, &format!("k{i}"), &"x".repeat(500));
        put(&mut other, &format!("k{i}"), "y");
    }
    // the checkpointer runs on its own thread: wait for it
    for _ in 0..500 {
        if host.metrics.journal_checkpoints.load(Ordering::Relaxed) > 0 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert!(host.metrics.journal_checkpoints.load(Ordering::Relaxed) > 0);
    assert!(
        segment_files(host.data()).len() <= 3,
        "old segments are deleted"
    );
    s.close();
    other.close();
    let dir = host.crash();
    let host = Host::start_in(dir, 64 * 1024);
    let mut s = host.storage(OBJECT);
    assert_eq!(s.list(&Default::default()).unwrap().len(), 200);
}

#[test]
fn a_gap_between_file_and_journal_stops_recovery_and_keeps_the_journal() {
    let host = Host::start();
    let mut s = host.storage(OBJECT);
    put(&mut s, "k1", "one");
    host.journal.checkpoint().unwrap();
    put(&mut s, "k2", "two");
    s.close();
    let dir = host.crash();
    // the file lost batch 1 although a checkpoint said it was durable (a lying disk)
    std::fs::remove_file(dir.path().join(OBJECT)).unwrap();
    let _ = std::fs::remove_file(dir.path().join(format!("{OBJECT}-wal")));
    let error = recover(dir.path(), &journal_dir(dir.path())).unwrap_err();
    assert!(error.contains(OBJECT), "{error}");
    assert!(error.contains("kept"), "{error}");
    assert_eq!(segment_files(dir.path()).len(), 1);
}

fn exec_sql(s: &mut SqliteStorage, sql: &str) {
    s.exec(sql, &[]).unwrap();
}

fn sql_value(s: &mut SqliteStorage, sql: &str) -> crate::storage::sqlite::SqlValue {
    s.exec(sql, &[]).unwrap().rows.remove(0).remove(0)
}

#[test]
fn a_batch_too_large_for_the_journal_syncs_its_own_wal_and_later_batches_replay_over_it() {
    let host = Host::start();
    let mut s = host.storage(OBJECT).with_max_journal_record(16 * 1024);
    put(&mut s, "small", "1");
    // ~40 KiB of pages: made durable by syncing the object's WAL, not copied to the journal
    s.put("big", &vec![7u8; 40_000]).unwrap();
    commit(&mut s);
    assert_eq!(host.metrics.journal_batches.load(Ordering::Relaxed), 1);
    s.close();
    let after_big = copy_files(host.data(), OBJECT);
    put(&mut s, "after", "2");
    assert_eq!(host.metrics.journal_batches.load(Ordering::Relaxed), 2);
    s.close();
    // the power goes: the file keeps what its WAL sync made durable, and loses the rest
    let dir = host.crash();
    restore_files(&after_big);
    let (_host, mut s) = restart(dir);
    assert_eq!(value(&mut s, "small").as_deref(), Some("1"));
    assert_eq!(s.get("big").unwrap(), Some(vec![7u8; 40_000]));
    assert_eq!(value(&mut s, "after").as_deref(), Some("2"));
}

#[test]
fn a_database_from_before_the_journal_is_numbered_in_its_first_journaled_batch() {
    let host = Host::start();
    // a file as an earlier version left it: WAL mode, `_cf_KV`, no `_wasmdo_commit`
    let path = host.data().join(OBJECT);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(
            "PRAGMA journal_mode = WAL;
             CREATE TABLE _cf_KV (key TEXT PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID;
             INSERT INTO _cf_KV VALUES ('old', CAST('kept' AS BLOB));",
        )
        .unwrap();
    }
    let before_upgrade = copy_files(host.data(), OBJECT);
    let mut s = host.storage(OBJECT);
    assert_eq!(value(&mut s, "old").as_deref(), Some("kept"));
    put(&mut s, "new", "1");
    put(&mut s, "newer", "2");
    s.close();
    let dir = host.crash();
    restore_files(&before_upgrade);
    let (_host, mut s) = restart(dir);
    assert_eq!(value(&mut s, "old").as_deref(), Some("kept"));
    assert_eq!(value(&mut s, "new").as_deref(), Some("1"));
    assert_eq!(value(&mut s, "newer").as_deref(), Some("2"));
}

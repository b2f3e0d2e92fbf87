//! Pages or changesets? The cost of capturing one object's commit as SQLite's WAL frames (what
//! wasmdo ships to its commit journal and cluster store) and as a session-extension changeset,
//! the bytes each ships, and whether a changeset carries DDL. See docs/BENCHMARKS.md.

use rusqlite::{Connection, session::Session};
use std::os::unix::fs::FileExt;
use std::time::Instant;

/// A fresh database of one object, as a small class's would be: its key-value table and the
/// batch number wasmdo stamps in every commit.
fn open(path: &str) -> Connection {
    let _ = std::fs::remove_file(path);
    let _ = std::fs::remove_file(format!("{path}-wal"));
    let c = Connection::open(path).unwrap();
    c.execute_batch("PRAGMA page_size=4096; PRAGMA journal_mode=WAL; PRAGMA synchronous=OFF; PRAGMA wal_autocheckpoint=0;
        CREATE TABLE _kv (key TEXT PRIMARY KEY, value BLOB) WITHOUT ROWID; CREATE TABLE _wasmdo_commit (seq INTEGER); INSERT INTO _wasmdo_commit VALUES (0);
        INSERT INTO _kv VALUES ('count', x'00');").unwrap();
    c
}

/// Batch `i` of a counter: its value and the batch number, in one transaction.
fn commit_batch(c: &Connection, i: u64) {
    c.execute_batch("BEGIN").unwrap();
    c.execute(
        "UPDATE _kv SET value = ?1 WHERE key = 'count'",
        [i.to_le_bytes().to_vec()],
    )
    .unwrap();
    c.execute("UPDATE _wasmdo_commit SET seq = ?1", [i as i64])
        .unwrap();
    c.execute_batch("COMMIT").unwrap();
}

fn main() {
    let dir = std::env::temp_dir().join(format!("wasmdo-changesets-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = |name: &str| dir.join(name).display().to_string();
    let n = 20_000u64;
    // (a) WAL frames: commit, then read the frames the commit appended
    let c = open(&path("a.db"));
    let wal = std::fs::File::open(path("a.db-wal")).unwrap();
    let mut bytes = 0u64;
    let mut pos = wal.metadata().unwrap().len();
    let t = Instant::now();
    for i in 1..=n {
        commit_batch(&c, i);
        let end = wal.metadata().unwrap().len();
        let mut buf = vec![0u8; (end - pos) as usize];
        wal.read_exact_at(&mut buf, pos).unwrap();
        bytes += buf.len() as u64;
        pos = end;
        if i % 900 == 0 {
            c.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)").unwrap();
            pos = wal.metadata().unwrap().len();
        }
    }
    let a = t.elapsed();
    println!(
        "WAL frames:  {:.1} µs/commit, {} bytes/commit shipped (before zero elision)",
        a.as_secs_f64() * 1e6 / n as f64,
        bytes / n
    );
    // (b) session changesets, one session per batch
    let c = open(&path("b.db"));
    let mut bytes = 0u64;
    let t = Instant::now();
    for i in 1..=n {
        let mut s = Session::new(&c).unwrap();
        s.attach(None::<&str>).unwrap();
        commit_batch(&c, i);
        let mut out = Vec::new();
        s.changeset_strm(&mut out).unwrap();
        bytes += out.len() as u64;
        drop(s);
        if i % 900 == 0 {
            c.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)").unwrap();
        }
    }
    let b = t.elapsed();
    println!(
        "changesets:  {:.1} µs/commit, {} bytes/commit shipped",
        b.as_secs_f64() * 1e6 / n as f64,
        bytes / n
    );
    // (c) DDL: what a changeset carries of CREATE TABLE
    let c = open(&path("c.db"));
    let mut s = Session::new(&c).unwrap();
    s.attach(None::<&str>).unwrap();
    c.execute_batch("BEGIN; CREATE TABLE messages (id INTEGER PRIMARY KEY, text TEXT); INSERT INTO messages (text) VALUES ('hi'); COMMIT;").unwrap();
    let mut out = Vec::new();
    s.changeset_strm(&mut out).unwrap();
    let replica = open(&path("d.db"));
    let applied = replica.apply_strm(&mut &out[..], None::<fn(&str) -> bool>, |_, _| {
        rusqlite::session::ConflictAction::SQLITE_CHANGESET_ABORT
    });
    let has = replica
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE name = 'messages'",
            [],
            |r| r.get::<_, i64>(0),
        )
        .unwrap();
    println!(
        "DDL: changeset of CREATE TABLE + INSERT is {} bytes; applied to a replica: {:?}; replica has the table: {}",
        out.len(),
        applied.map(|_| "ok"),
        has == 1
    );
    let _ = std::fs::remove_dir_all(&dir);
}

//! The commit journal against the real binary: kill -9 in the middle of a many-objects write load
//! (with checkpoints running), a torn journal tail, a full journal disk.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;
use wasmdo_test_artifacts::STORAGE_KV;

use crate::harness::{TestHost, walk};

/// Writers, each putting distinct keys into objects round-robin, until the host dies. Returns
/// every acknowledged (object, key).
fn write_until_killed(
    host: &mut TestHost,
    cycle: usize,
    objects: usize,
    writers: usize,
    run_for: Duration,
) -> Vec<(String, String)> {
    let acknowledged = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let threads: Vec<_> = (0..writers)
        .map(|w| {
            let (url, acknowledged, stop) = (host.url.clone(), acknowledged.clone(), stop.clone());
            std::thread::spawn(move || {
                let agent = crate::harness::agent(Some(Duration::from_secs(10)));
                let mut i = 0;
                while !stop.load(Ordering::Relaxed) {
                    let object = format!("o{}", (w + i * writers) % objects);
                    let key = format!("c{cycle}-w{w}-{i}");
                    let reply = agent
                        .post(format!("{url}/rpc/kv/{object}/put"))
                        .send(json!([key, format!("v-{key}")]).to_string());
                    match reply {
                        Ok(r) if r.status() == 200 => {
                            acknowledged.lock().unwrap().push((object, key));
                        }
                        // the host died under the request: not acknowledged
                        _ => return,
                    }
                    i += 1;
                }
            })
        })
        .collect();
    std::thread::sleep(run_for);
    host.kill();
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().unwrap();
    }
    Arc::try_unwrap(acknowledged).unwrap().into_inner().unwrap()
}

/// The object databases under `dir`.
fn databases(dir: &Path) -> Vec<PathBuf> {
    walk(dir)
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "sqlite"))
        .collect()
}

/// The number of the newest journal segment in `dir`.
fn last_segment(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().into_string().unwrap();
            name.strip_suffix(".journal")?.parse().ok()
        })
        .max()
        .unwrap_or(0)
}

fn integrity_check(db: &Path) -> String {
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap()
}

#[test]
fn kill_9_under_a_many_objects_write_load_loses_no_acknowledged_write() {
    // small segments: checkpoints run all the time, so kills land in them too
    let mut host =
        TestHost::with_config("[limits]\njournal-segment-bytes = 65536\nmax-live-objects = 64\n");
    host.deploy("kv", STORAGE_KV).expect(201);
    let cycles = 6;
    let objects = 120;
    let mut all: Vec<(String, String)> = Vec::new();
    let mut highest_segment = 0;
    for cycle in 0..cycles {
        let run_for = Duration::from_millis(300 + 150 * (cycle as u64 % 4));
        let acknowledged = write_until_killed(&mut host, cycle, objects, 8, run_for);
        assert!(
            !acknowledged.is_empty(),
            "cycle {cycle}: no write was acknowledged; log:\n{}",
            host.log()
        );
        eprintln!("cycle {cycle}: {} writes acknowledged", acknowledged.len());
        all.extend(acknowledged);
        highest_segment = highest_segment.max(last_segment(&host.data.join("journal")));
        // the host is down: every object file must be a sound database as the crash left it
        for db in databases(&host.data.join("objects")) {
            // (recovery runs at start; a file here may lag the journal, but never be corrupt)
            assert_eq!(integrity_check(&db), "ok", "{}", db.display());
        }
        host.crash_and_restart();
        let mut by_object: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for (object, key) in &all {
            by_object.entry(object).or_default().push(key);
        }
        for (object, keys) in by_object {
            let found = host.call("kv", object, "get-many", json!([keys]));
            let found = found.as_array().unwrap();
            assert_eq!(
                found.len(),
                keys.len(),
                "cycle {cycle}: object {object} lost acknowledged writes; log:\n{}",
                host.log()
            );
        }
    }
    assert!(
        host.log().contains("recovered from the journal"),
        "restarts replay the journal"
    );
    // segments were filled and checkpointed all along (a restart starts one more), so kills
    // landed among checkpoints too
    assert!(
        highest_segment > 2 * cycles as u64,
        "only {highest_segment} segments in {cycles} cycles"
    );
    host.kill();
    let dbs = databases(&host.data.join("objects"));
    assert!(dbs.len() >= objects / 2, "{} databases", dbs.len());
    for db in dbs {
        assert_eq!(integrity_check(&db), "ok", "{}", db.display());
    }
}

#[test]
fn a_torn_journal_tail_is_ignored_with_a_log_line() {
    let mut host = TestHost::start();
    host.deploy("kv", STORAGE_KV).expect(201);
    for i in 0..20 {
        host.call(
            "kv",
            &format!("o{}", i % 4),
            "put",
            json!([format!("k{i}"), "v"]),
        );
    }
    host.kill();
    // a write the crash cut short: a record header promising more than is there
    let journal = host.data.join("journal");
    let mut segments: Vec<_> = std::fs::read_dir(&journal)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    segments.sort();
    let last = segments.last().expect("a journal segment");
    let mut bytes = std::fs::read(last).unwrap();
    bytes.extend_from_slice(&4000u32.to_le_bytes());
    bytes.extend_from_slice(&[0xab; 100]);
    std::fs::write(last, bytes).unwrap();
    host.crash_and_restart();
    // (the segment is preallocated with zeros: the bytes ignored run from the end of its last
    // complete record to the end of the file)
    let log = host.log();
    assert!(
        log.contains("ignoring the last") && log.contains("bytes of journal segment"),
        "{log}"
    );
    for i in 0..20 {
        assert_eq!(
            host.call(
                "kv",
                &format!("o{}", i % 4),
                "get",
                json!([format!("k{i}")])
            ),
            "v"
        );
    }
    // and the host goes on writing
    host.call("kv", "o0", "put", json!(["after", "yes"]));
    host.crash_and_restart();
    assert_eq!(host.call("kv", "o0", "get", json!(["after"])), "yes");
}

/// A tmpfs of `size` mounted at `path`, unmounted on drop. Needs root (as CI runs).
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(path: &Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(path).unwrap();
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(path)
            .status()
            .expect("run mount");
        assert!(
            status.success(),
            "this test mounts a small tmpfs to fill a disk, which needs root"
        );
        Tmpfs(path.to_owned())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

/// Fills the file system of `dir` with one file; returns it.
fn fill(dir: &Path) -> PathBuf {
    use std::io::Write;
    let path = dir.join("filler");
    let mut file = std::fs::File::create(&path).unwrap();
    let block = vec![0u8; 4096];
    while file.write_all(&block).is_ok() {}
    let _ = file.sync_all();
    path
}

#[test]
fn a_full_journal_disk_fails_the_write_clearly_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let disk = Tmpfs::mount(&dir.path().join("disk"), "2m");
    let journal = disk.0.join("journal");
    let mut host = TestHost::with_config(&format!(
        "journal-dir = {:?}\n",
        journal.display().to_string()
    ));
    host.deploy("kv", STORAGE_KV).expect(201);
    host.call("kv", "o", "put", json!(["before", "1"]));

    let filler = fill(&disk.0);
    // a write whose journal record needs room the disk no longer has (a small one might still
    // fit in the segment's last, partly used, block)
    let message = host
        .rpc("kv", "o", "put-size", json!(["during", 200_000]))
        .expect_error(500, "CommitFailed");
    assert!(message.contains("the disk is full"), "{message}");
    // the refused write was taken back: the object does not see it, and works on
    assert_eq!(host.call("kv", "o", "get", json!(["during"])), json!(null));
    assert_eq!(host.call("kv", "o", "get", json!(["before"])), "1");
    // another object is refused the same way, and nothing else is disturbed
    host.rpc("kv", "p", "put-size", json!(["x", 200_000]))
        .expect_error(500, "CommitFailed");

    std::fs::remove_file(filler).unwrap();
    host.call("kv", "o", "put", json!(["after", "3"]));
    host.call("kv", "p", "put", json!(["x", "z"]));
    host.crash_and_restart();
    assert_eq!(host.call("kv", "o", "get", json!(["before"])), "1");
    assert_eq!(host.call("kv", "o", "get", json!(["during"])), json!(null));
    assert_eq!(host.call("kv", "o", "get", json!(["after"])), "3");
    assert_eq!(host.call("kv", "p", "get", json!(["x"])), "z");
    host.kill();
}

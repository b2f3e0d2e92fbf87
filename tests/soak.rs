//! The crash soak: a many-objects write load with alarms and WebSockets against the real
//! `wasmdo` binary on loopback, `kill -9` at a random moment of every cycle, then a restart on
//! the same data dir. At the end, every acknowledged write must be there, every acknowledged
//! alarm that was not replaced before it was due must have fired at least once, every
//! acknowledged WebSocket message must be stored, and every database must pass
//! `PRAGMA integrity_check`.
//!
//! `cargo test --test soak` runs a short soak (`SOAK_CYCLES`, default 10: what CI runs);
//! `scripts/soak` runs a long one (e.g. `scripts/soak 100`). `SOAK_SEED` repeats a run's kill
//! points; the seed is printed.

#[path = "integration/harness.rs"]
#[expect(
    dead_code,
    reason = "the soak uses part of the integration tests' harness"
)]
mod harness;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use wasmdo_test_artifacts::{ALARMS_BASIC, STORAGE_KV, WEBSOCKETS_BASIC};

use harness::TestHost;

/// Objects written by the key-value writers.
const KV_OBJECTS: usize = 50;
/// Client threads writing key-value entries.
const WRITERS: usize = 6;
/// Objects whose alarms are set.
const ALARM_OBJECTS: usize = 10;
/// Rooms WebSocket clients write to.
const ROOMS: usize = 4;

/// What the host acknowledged, from every client thread.
#[derive(Default)]
struct Acknowledged {
    /// object → keys written
    kv: BTreeMap<String, BTreeSet<String>>,
    /// object → (when the set-in call was sent, when the alarm was due), in call order
    alarms: BTreeMap<String, Vec<(i64, i64)>>,
    /// room → ids of recorded messages
    messages: BTreeMap<String, BTreeSet<String>>,
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("time")
        .as_millis() as i64
}

/// A small deterministic generator (xorshift), so a seed repeats a run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn main() {
    let cycles: usize = std::env::var("SOAK_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    let seed: u64 = std::env::var("SOAK_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| (now_ms() as u64) | 1);
    println!("soak: {cycles} cycles, SOAK_SEED={seed}");
    let mut rng = Rng(seed);
    let mut host = TestHost::with_config(
        "[limits]\njournal-segment-bytes = 1048576\nalarm-retry-base-ms = 100\n",
    );
    host.deploy("kv", STORAGE_KV).expect(201);
    host.deploy("alarms", ALARMS_BASIC).expect(201);
    host.deploy("rooms", WEBSOCKETS_BASIC).expect(201);
    let acked = Arc::new(Mutex::new(Acknowledged::default()));
    let started = Instant::now();
    for cycle in 0..cycles {
        let stop = Arc::new(AtomicBool::new(false));
        let mut clients = Vec::new();
        for writer in 0..WRITERS {
            let (url, stop, acked) = (host.url.clone(), stop.clone(), acked.clone());
            clients.push(std::thread::spawn(move || {
                write_kv(&url, cycle, writer, &stop, &acked)
            }));
        }
        {
            let (url, stop, acked) = (host.url.clone(), stop.clone(), acked.clone());
            let seed = rng.next();
            clients.push(std::thread::spawn(move || {
                set_alarms(&url, seed, &stop, &acked)
            }));
        }
        for room in 0..ROOMS {
            let (url, stop, acked) = (host.url.clone(), stop.clone(), acked.clone());
            clients.push(std::thread::spawn(move || {
                send_messages(&url, cycle, room, &stop, &acked)
            }));
        }
        // kill -9 at a random moment, in the middle of all of it
        std::thread::sleep(Duration::from_millis(300 + rng.below(1700)));
        host.kill();
        stop.store(true, Ordering::SeqCst);
        for client in clients {
            client.join().expect("a client thread");
        }
        host.crash_and_restart();
        let acked = acked.lock().expect("acknowledged");
        println!(
            "soak: cycle {}/{cycles}: {} writes, {} alarms, {} messages acknowledged so far",
            cycle + 1,
            acked.kv.values().map(BTreeSet::len).sum::<usize>(),
            acked.alarms.values().map(Vec::len).sum::<usize>(),
            acked.messages.values().map(BTreeSet::len).sum::<usize>(),
        );
    }
    let acked = acked.lock().expect("acknowledged");
    check_kv(&host, &acked);
    check_messages(&host, &acked);
    check_alarms(&host, &acked);
    host.kill();
    check_integrity(&host);
    println!(
        "soak: passed: {cycles} kill -9 cycles in {:.0?}, every acknowledged write, message and due alarm present, every database intact",
        started.elapsed()
    );
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into()
}

/// POSTs an RPC; the JSON result if the host acknowledged it (200).
fn rpc(agent: &ureq::Agent, url: &str, path: &str, args: &Value) -> Option<Value> {
    let mut reply = agent
        .post(format!("{url}/rpc/{path}"))
        .send(serde_json::to_vec(args).expect("JSON"))
        .ok()?;
    if reply.status() != 200 {
        return None;
    }
    serde_json::from_str(&reply.body_mut().read_to_string().ok()?).ok()
}

fn write_kv(
    url: &str,
    cycle: usize,
    writer: usize,
    stop: &AtomicBool,
    acked: &Mutex<Acknowledged>,
) {
    let agent = agent();
    let mut seq = 0usize;
    while !stop.load(Ordering::SeqCst) {
        let object = format!("o{}", (seq * 7 + writer) % KV_OBJECTS);
        let key = format!("c{cycle}-w{writer}-{seq}");
        let path = format!("kv/{object}/put");
        if rpc(&agent, url, &path, &json!([key, "v"])).is_some() {
            let mut acked = acked.lock().expect("acknowledged");
            acked.kv.entry(object).or_default().insert(key);
        } else if stop.load(Ordering::SeqCst) {
            return;
        }
        seq += 1;
    }
}

fn set_alarms(url: &str, seed: u64, stop: &AtomicBool, acked: &Mutex<Acknowledged>) {
    let agent = agent();
    let mut rng = Rng(seed | 1);
    while !stop.load(Ordering::SeqCst) {
        let object = format!("a{}", rng.below(ALARM_OBJECTS as u64));
        let delay = 50 + rng.below(1500) as i64;
        let sent = now_ms();
        let path = format!("alarms/{object}/set-in");
        if let Some(due) = rpc(&agent, url, &path, &json!([delay])) {
            let due = due.as_i64().expect("set-in returns the due time");
            let mut acked = acked.lock().expect("acknowledged");
            acked.alarms.entry(object).or_default().push((sent, due));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn send_messages(
    url: &str,
    cycle: usize,
    room: usize,
    stop: &AtomicBool,
    acked: &Mutex<Acknowledged>,
) {
    let ws_url = format!(
        "{}/objects/rooms/r{room}/ws",
        url.replace("http://", "ws://")
    );
    let Ok((mut ws, _)) = tungstenite::connect(ws_url) else {
        return;
    };
    if let tungstenite::stream::MaybeTlsStream::Plain(s) = ws.get_mut() {
        let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
    }
    let mut seq = 0usize;
    while !stop.load(Ordering::SeqCst) {
        let id = format!("c{cycle}-{seq}");
        if ws
            .send(tungstenite::Message::text(format!("record {id}")))
            .is_err()
        {
            return;
        }
        // the reply comes after the commit: only then is the message acknowledged
        loop {
            match ws.read() {
                Ok(tungstenite::Message::Text(text))
                    if text.as_str() == format!("recorded {id}") =>
                {
                    let mut acked = acked.lock().expect("acknowledged");
                    acked
                        .messages
                        .entry(format!("r{room}"))
                        .or_default()
                        .insert(id.clone());
                    break;
                }
                Ok(_) => continue,
                Err(_) => return,
            }
        }
        seq += 1;
    }
}

fn check_kv(host: &TestHost, acked: &Acknowledged) {
    for (object, keys) in &acked.kv {
        let keys: Vec<&String> = keys.iter().collect();
        for chunk in keys.chunks(500) {
            let found = host.call("kv", object, "get-many", json!([chunk]));
            let found: BTreeSet<&str> = found
                .as_array()
                .expect("entries")
                .iter()
                .map(|entry| entry[0].as_str().expect("a key"))
                .collect();
            for key in chunk {
                assert!(
                    found.contains(key.as_str()),
                    "kv/{object}: acknowledged {key} is lost"
                );
            }
        }
    }
}

fn check_messages(host: &TestHost, acked: &Acknowledged) {
    for (room, ids) in &acked.messages {
        let log = host.call("rooms", room, "log", json!([]));
        let stored: BTreeSet<&str> = log
            .as_array()
            .expect("log lines")
            .iter()
            .filter_map(|line| line.as_str()?.strip_prefix("message "))
            .collect();
        for id in ids {
            assert!(
                stored.contains(id.as_str()),
                "rooms/{room}: acknowledged message {id} is lost"
            );
        }
    }
}

/// Every acknowledged alarm that no later acknowledged call replaced before it was due has a
/// delivery at or after its due time (alarms are at-least-once, retried after a crash).
fn check_alarms(host: &TestHost, acked: &Acknowledged) {
    let latest_due = acked
        .alarms
        .values()
        .flatten()
        .map(|(_, due)| *due)
        .max()
        .unwrap_or(0);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut missing = Vec::new();
        for (object, sets) in &acked.alarms {
            let deliveries = host.call("alarms", object, "deliveries", json!([]));
            let times: Vec<i64> = deliveries
                .as_array()
                .expect("deliveries")
                .iter()
                .map(|d| d["at"].as_i64().expect("a time"))
                .collect();
            for (i, (_, due)) in sets.iter().enumerate() {
                let replaced = sets.get(i + 1).is_some_and(|(sent, _)| sent < due);
                let fired = times.iter().any(|at| *at >= due - 5);
                if !replaced && !fired {
                    missing.push(format!("alarms/{object} due at {due}"));
                }
            }
        }
        if missing.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline || now_ms() < latest_due,
            "acknowledged alarms never fired: {missing:?}\nlog:\n{}",
            host.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn check_integrity(host: &TestHost) {
    let mut checked = 0;
    for file in harness::walk(&host.data) {
        if file.extension().is_none_or(|e| e != "sqlite") {
            continue;
        }
        let conn = rusqlite::Connection::open(&file).expect("open a database");
        let result: String = conn
            .query_row("PRAGMA integrity_check", [], |row| row.get(0))
            .expect("integrity_check");
        assert_eq!(result, "ok", "{}", file.display());
        checked += 1;
    }
    assert!(checked > KV_OBJECTS, "only {checked} databases checked");
}

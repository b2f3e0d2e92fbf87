//! Cluster mode against real PostgreSQL and real `wasmdo` processes: three hosts on one store,
//! any host reaching the one live instance of an object, stub calls across hosts, kill -9 of an
//! owner under load, and a paused owner (SIGSTOP) that must not commit after a takeover.
//!
//! PostgreSQL: see `postgres.rs`; each test gets a database of its own.

use std::collections::BTreeMap;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use wasmdo_test_artifacts::{
    ALARMS_BASIC, EXAMPLE_COUNTER, OBJECT_INFO, RPC_CALLS, RPC_TYPES, WEBSOCKETS_BASIC,
};

use crate::harness::{TestHost, wait_until};
use crate::postgres::postgres_server;

/// The lease the tests run with: short, so failovers are quick.
const LEASE_MS: u64 = 1000;

/// A fresh database for one test; its URL.
fn database(test: &str) -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let server = postgres_server();
    let name = format!(
        "wasmdo_{test}_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    let created = Command::new("psql")
        .arg(format!("{server}/postgres"))
        .args(["-v", "ON_ERROR_STOP=1", "-q", "-c"])
        .arg(format!("CREATE DATABASE {name}"))
        .output()
        .expect("run psql");
    assert!(
        created.status.success(),
        "CREATE DATABASE failed: {}",
        String::from_utf8_lossy(&created.stderr)
    );
    format!("{server}/{name}")
}

/// Three hosts of one cluster, with `classes` (TOML) deployed on each.
fn cluster(test: &str, classes: &str) -> Vec<TestHost> {
    cluster_on(&database(test), &["a", "b", "c"], classes)
}

/// Hosts `ids` of a cluster on the PostgreSQL database at `url`, with `classes` (TOML) deployed
/// on each, once every one of them has seen the others' heartbeats.
fn cluster_on(url: &str, ids: &[&str], classes: &str) -> Vec<TestHost> {
    cluster_leased(url, ids, classes, LEASE_MS)
}

/// [`cluster_on`] with a lease of `lease_ms`.
fn cluster_leased(url: &str, ids: &[&str], classes: &str, lease_ms: u64) -> Vec<TestHost> {
    let hosts: Vec<TestHost> = ids
        .iter()
        .map(|id| {
            TestHost::with_config(&format!(
                "[cluster]\npostgres = {url:?}\nhost-id = \"{id}\"\nlease-ms = {lease_ms}\n\n{classes}"
            ))
        })
        .collect();
    for host in &hosts {
        // (a heartbeat every third of the lease)
        wait_until(
            Duration::from_secs(10) + Duration::from_millis(lease_ms / 2),
            "every host sees the others",
            || {
                let status = host.request("GET", "/_admin/cluster", b"").expect(200);
                let hosts = status["hosts"].as_array().cloned().unwrap_or_default();
                hosts.len() == ids.len() && hosts.iter().all(|h| h["alive"] == true)
            },
        );
    }
    hosts
}

fn counter_classes() -> String {
    format!("[classes.counter]\ncomponent = {EXAMPLE_COUNTER:?}\n")
}

/// How many objects each host owns, by host id (from any host's view of the store, refreshed by
/// its heartbeat: wait one).
fn owners(host: &TestHost) -> BTreeMap<String, i64> {
    std::thread::sleep(Duration::from_millis(LEASE_MS / 2));
    let status = host.request("GET", "/_admin/cluster", b"").expect(200);
    status["hosts"]
        .as_array()
        .expect("hosts")
        .iter()
        .map(|h| {
            (
                h["id"].as_str().expect("id").to_owned(),
                h["objects"].as_i64().expect("objects"),
            )
        })
        .collect()
}

#[test]
fn any_host_reaches_the_one_instance_of_each_object() {
    let hosts = cluster("reach", &counter_classes());
    let objects = 12;
    // every object incremented through every host, round-robin
    for round in 0..3 {
        for o in 0..objects {
            let host = &hosts[(o + round) % 3];
            host.call("counter", &format!("o{o}"), "increment", json!([1]));
        }
    }
    for o in 0..objects {
        for host in &hosts {
            assert_eq!(
                host.call("counter", &format!("o{o}"), "get", json!([])),
                3,
                "object o{o} through {}",
                host.url
            );
        }
    }
    // one owner per object, spread over the hosts that first touched them
    let owned = owners(&hosts[0]);
    assert_eq!(owned.values().sum::<i64>(), objects as i64, "{owned:?}");
    assert!(owned.values().all(|n| *n > 0), "{owned:?}");
    // the hosts' counters: claims add up to the objects, forwards happened, every write committed
    let total = |name: &str| hosts.iter().map(|h| h.metric(name)).sum::<u64>();
    assert_eq!(total("wasmdo_cluster_claims_total"), objects as u64);
    assert!(total("wasmdo_cluster_forwarded_total") > 0);
    assert!(total("wasmdo_cluster_commits_total") >= 3 * objects as u64);
    assert_eq!(total("wasmdo_cluster_fenced_total"), 0);
    // a host's own view agrees with the store
    let status = hosts[1].request("GET", "/_admin/cluster", b"").expect(200);
    assert_eq!(status["host"], "b");
    assert_eq!(status["owned_objects"], owned["b"]);
    // `fetch` is forwarded too, and ids resolve the same on every host
    let id = hosts[0]
        .request("GET", "/_admin/classes/counter/id-from-name/o1", b"")
        .expect(200);
    for host in &hosts {
        let again = host
            .request("GET", "/_admin/classes/counter/id-from-name/o1", b"")
            .expect(200);
        assert_eq!(again, id);
        let reply = host.request("GET", "/objects/counter/o1/", b"");
        assert_eq!(reply.status, 200, "{}", reply.text);
        assert_eq!(reply.text, "3");
    }
}

#[test]
fn stub_calls_and_errors_cross_hosts() {
    let classes = format!(
        "[classes.types]\ncomponent = {RPC_TYPES:?}\n[classes.calls]\ncomponent = {RPC_CALLS:?}\n[classes.calls.bindings]\ntypes = \"types\"\npeer = \"calls\"\n"
    );
    let hosts = cluster("stubs", &classes);
    // the callee is first used through c (c owns it), the caller through a (a owns it)
    assert_eq!(hosts[2].call("types", "x", "add", json!([1, 1])), 2);
    assert_eq!(
        hosts[0].call("calls", "a", "add-remote", json!(["x", 2, 3])),
        5
    );
    assert_eq!(owner_of(&hosts, "types", "x"), 2);
    assert_eq!(owner_of(&hosts, "calls", "a"), 0);
    // typed values and the callee's own error cross the hosts as they cross one host
    let person = json!({"name": "ann", "age": null, "home": {"x": 1, "y": -2}});
    assert_eq!(
        hosts[1].call("calls", "a", "echo-remote", json!(["x", person])),
        person
    );
    assert_eq!(
        hosts[1].call("calls", "a", "fail-remote", json!(["x"])),
        "method error: bad-input: not ok"
    );
    // a call cycle across hosts fails at once: a (on a) → b (on b) → a
    assert_eq!(hosts[1].call("calls", "b", "ping", json!([])), "pong");
    assert_eq!(owner_of(&hosts, "calls", "b"), 1);
    let err = hosts[2]
        .rpc("calls", "a", "bounce", json!(["b", "a"]))
        .expect(422);
    let message = err["value"].as_str().unwrap();
    assert!(message.starts_with("cycle: calls/"), "{err}");
    // and without a cycle the same path works: a → b → c
    assert_eq!(
        hosts[2].call("calls", "a", "bounce", json!(["b", "c"])),
        "pong"
    );
    // an error of the owner host comes back with its kind and status
    hosts[1]
        .rpc("counter-that-is-not", "x", "get", json!([]))
        .expect_error(404, "UnknownClass");
    hosts[1]
        .rpc("types", "x", "no-such-method", json!([]))
        .expect_error(404, "UnknownMethod");
}

/// Requests that failed under a load, by status and kind (`ClusterUnavailable`, or the whole
/// answer for anything else).
type Refusals = Arc<Mutex<BTreeMap<(u16, String), usize>>>;

/// Increments the objects `<prefix>0…` through `urls` (two writers per URL) until `stop`;
/// counts every acknowledged increment per object in `acked`, every failed one in `refusals`.
fn increment_until(
    urls: Vec<String>,
    prefix: &'static str,
    objects: usize,
    stop: Arc<AtomicBool>,
    acked: Arc<Mutex<BTreeMap<String, i64>>>,
    refusals: Refusals,
) -> Vec<std::thread::JoinHandle<()>> {
    (0..urls.len() * 2)
        .map(|w| {
            let (urls, stop, acked, refusals) =
                (urls.clone(), stop.clone(), acked.clone(), refusals.clone());
            std::thread::spawn(move || {
                let agent = crate::harness::agent(Some(Duration::from_secs(20)));
                let mut i = w;
                while !stop.load(Ordering::Relaxed) {
                    let object = format!("{prefix}{}", i % objects);
                    let url = &urls[i % urls.len()];
                    let reply = agent
                        .post(format!("{url}/rpc/counter/{object}/increment"))
                        .send("[1]");
                    i += 1;
                    let Ok(reply) = reply else {
                        // the host died under the request
                        std::thread::sleep(Duration::from_millis(20));
                        continue;
                    };
                    let status = reply.status().as_u16();
                    let text = reply.into_body().read_to_string().unwrap_or_default();
                    if status == 200 {
                        *acked.lock().unwrap().entry(object).or_default() += 1;
                        continue;
                    }
                    // the object is failing over, or the store is away
                    let body: Value = serde_json::from_str(&text).unwrap_or_default();
                    let kind = match body["kind"].as_str() {
                        Some("ClusterUnavailable") => "ClusterUnavailable".to_owned(),
                        _ => text,
                    };
                    *refusals.lock().unwrap().entry((status, kind)).or_default() += 1;
                    std::thread::sleep(Duration::from_millis(20));
                }
            })
        })
        .collect()
}

#[test]
fn killing_an_owner_loses_no_acknowledged_increment() {
    let mut hosts = cluster("kill", &counter_classes());
    let objects = 8;
    // host a owns every object
    for o in 0..objects {
        hosts[0].call("counter", &format!("o{o}"), "increment", json!([1]));
    }
    let acked = Arc::new(Mutex::new(
        (0..objects)
            .map(|o| (format!("o{o}"), 1))
            .collect::<BTreeMap<_, _>>(),
    ));
    for cycle in 0..2 {
        // the victim: whoever owns o0 now
        let victim = owner_of(&hosts, "counter", "o0");
        // writes go through all three hosts, the victim too until it dies
        let urls: Vec<String> = hosts.iter().map(|h| h.url.clone()).collect();
        let stop = Arc::new(AtomicBool::new(false));
        let writers = increment_until(
            urls,
            "o",
            objects,
            stop.clone(),
            acked.clone(),
            Refusals::default(),
        );
        std::thread::sleep(Duration::from_millis(1500));
        hosts[victim].kill();
        let killed = Instant::now();
        // the objects serve again from another host within a few leases
        let survivor = &hosts[(victim + 1) % 3];
        wait_until(Duration::from_secs(15), "o0 serves again", || {
            survivor.rpc("counter", "o0", "get", json!([])).status == 200
        });
        let failover = killed.elapsed();
        assert!(
            failover < Duration::from_secs(10),
            "failover took {failover:?}"
        );
        std::thread::sleep(Duration::from_millis(1000));
        stop.store(true, Ordering::Relaxed);
        for w in writers {
            w.join().unwrap();
        }
        hosts[victim].crash_and_restart();
        let _ = cycle;
    }
    // no object ever had two live instances: each (object, epoch) was served by one host only
    let mut served: BTreeMap<(String, i64), Vec<usize>> = BTreeMap::new();
    for (h, host) in hosts.iter().enumerate() {
        for (id, epoch) in owning(&host.log()) {
            let hosts = served.entry((id, epoch)).or_default();
            if !hosts.contains(&h) {
                hosts.push(h);
            }
        }
    }
    assert!(
        served.keys().any(|(_, epoch)| *epoch > 1),
        "takeovers happened: {served:?}"
    );
    for ((id, epoch), by) in &served {
        assert_eq!(
            by.len(),
            1,
            "object {id} epoch {epoch} was served by hosts {by:?}"
        );
    }
    // every acknowledged increment is there (an unacknowledged one may be too: its reply was lost)
    let acked = acked.lock().unwrap().clone();
    for (object, count) in &acked {
        let value = hosts[1].call("counter", object, "get", json!([]));
        let value = value.as_i64().expect("a count");
        assert!(
            value >= *count,
            "{object}: {count} increments acknowledged, the object holds {value}"
        );
    }
}

/// Every (object id, epoch) a host's log says it started serving (`owning` lines).
fn owning(log: &str) -> Vec<(String, i64)> {
    // the log is colored: drop the escape sequences first
    let mut plain = String::with_capacity(log.len());
    let mut chars = log.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c == 'm' {
                    break;
                }
            }
        } else {
            plain.push(c);
        }
    }
    plain
        .lines()
        .filter(|line| line.contains("owning"))
        .filter_map(|line| {
            let field = |name: &str| {
                let start = line.find(&format!(" {name}="))? + name.len() + 2;
                let rest = &line[start..];
                Some(rest.split_whitespace().next()?.to_owned())
            };
            Some((field("id")?, field("epoch")?.parse().ok()?))
        })
        .collect()
}

/// The index of the host that owns the object `name` of `class`.
fn owner_of(hosts: &[TestHost], class: &str, name: &str) -> usize {
    let owner = hosts[1]
        .request(
            "GET",
            &format!("/_admin/cluster/objects/{class}/{name}"),
            b"",
        )
        .expect(200);
    let id = owner["owner"].as_str().expect("an owner");
    ["a", "b", "c"]
        .iter()
        .position(|h| *h == id)
        .expect("a host id")
}

#[test]
fn a_paused_owner_cannot_commit_after_a_takeover() {
    let hosts = cluster("zombie", &counter_classes());
    // a owns the object
    assert_eq!(hosts[0].call("counter", "z", "increment", json!([1])), 1);
    let acked = Arc::new(AtomicUsize::new(1));
    let pid = hosts[0].pid().to_string();
    let signal = |sig: &str| {
        let ok = Command::new("kill").args([sig, &pid]).status().unwrap();
        assert!(ok.success());
    };
    signal("-STOP");
    // requests sent to the paused owner wait in its sockets
    let zombie_requests: Vec<_> = (0..3)
        .map(|_| {
            let (url, acked) = (hosts[0].url.clone(), acked.clone());
            std::thread::spawn(move || {
                let agent = crate::harness::agent(Some(Duration::from_secs(30)));
                let reply = agent
                    .post(format!("{url}/rpc/counter/z/increment"))
                    .send("[1]");
                if let Ok(r) = reply
                    && r.status() == 200
                {
                    acked.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    // b takes the object over once a's lease lapses, and commits
    wait_until(Duration::from_secs(15), "b takes z over", || {
        let reply = hosts[1].rpc("counter", "z", "increment", json!([1]));
        if reply.status == 200 {
            acked.fetch_add(1, Ordering::Relaxed);
            true
        } else {
            false
        }
    });
    for _ in 0..3 {
        hosts[1].call("counter", "z", "increment", json!([1]));
        acked.fetch_add(1, Ordering::Relaxed);
    }
    signal("-CONT");
    for r in zombie_requests {
        r.join().unwrap();
    }
    // whatever a did with the requests it held — refused, or forwarded to b — the object holds
    // exactly the acknowledged increments: a's stale copy committed nothing
    std::thread::sleep(Duration::from_millis(200));
    let acked = acked.load(Ordering::Relaxed) as i64;
    for host in &hosts {
        let value: Value = host.call("counter", "z", "get", json!([]));
        assert_eq!(value, acked, "through {}", host.url);
    }
    let owned = owners(&hosts[1]);
    assert_eq!(owned["b"], 1, "{owned:?}");
    assert_eq!(owned["a"], 0, "{owned:?}");
    eprintln!(
        "the paused owner's fenced commits: {}",
        hosts[0]
            .log()
            .matches("refused by the cluster store")
            .count()
    );
}

#[test]
fn a_single_host_data_dir_is_refused_and_a_down_store_is_a_clear_error() {
    // a data dir a single host used holds objects the store does not have
    let mut single = TestHost::start();
    single.deploy("counter", EXAMPLE_COUNTER).expect(201);
    single.call("counter", "x", "increment", json!([1]));
    let data = single.data.clone();
    single.kill();
    let config = format!(
        "[cluster]\npostgres = {:?}\nhost-id = \"a\"\n",
        database("refused")
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wasmdo.toml");
    std::fs::write(&path, config).unwrap();
    let out = Command::new(crate::harness::binary())
        .args(["serve", "--listen", "127.0.0.1:0", "--data"])
        .arg(&data)
        .stdout(std::process::Stdio::null())
        .arg("--config")
        .arg(&path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("holds objects of a single host"), "{err}");
    // an unreachable store stops the start with a message naming it
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    std::fs::write(
        &path,
        format!(
            "[cluster]\npostgres = \"postgres://postgres@127.0.0.1:{port}/x\"\nhost-id = \"a\"\n"
        ),
    )
    .unwrap();
    let out = Command::new(crate::harness::binary())
        .args(["serve", "--listen", "127.0.0.1:0", "--data"])
        .arg(dir.path().join("fresh"))
        .arg("--config")
        .arg(&path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cluster store is unavailable"), "{err}");
}

#[test]
fn the_alarms_of_a_dead_host_fire_on_a_survivor() {
    let classes = format!("[classes.probe]\ncomponent = {ALARMS_BASIC:?}\n");
    let mut hosts = cluster("alarms", &classes);
    // an alarm fires on the host that owns its object
    hosts[0].call("probe", "soon", "set-in", json!([200]));
    wait_until(Duration::from_secs(10), "the alarm fires on a", || {
        let d = hosts[0].call("probe", "soon", "deliveries", json!([]));
        d.as_array().is_some_and(|d| d.len() == 1)
    });
    // an alarm set on a, which dies before it is due
    hosts[0].call("probe", "later", "set-in", json!([2500]));
    hosts[0].kill();
    // nobody calls the object: a survivor takes it over because its alarm comes due
    wait_until(
        Duration::from_secs(20),
        "a survivor adopts the object",
        || {
            let owner = hosts[1]
                .request("GET", "/_admin/cluster/objects/probe/later", b"")
                .expect(200);
            owner["owner"] != "a"
        },
    );
    let survivor = owner_of(&hosts, "probe", "later");
    assert_ne!(survivor, 0);
    wait_until(
        Duration::from_secs(10),
        "the alarm fires on the survivor",
        || {
            let d = hosts[survivor].call("probe", "later", "deliveries", json!([]));
            d.as_array().is_some_and(|d| d.len() == 1)
        },
    );
    assert_eq!(
        hosts[survivor].call("probe", "later", "get", json!([])),
        json!(null)
    );
    let _ = &mut hosts;
}

#[test]
fn a_deploy_to_one_host_reaches_every_host_and_hosts_that_start_later() {
    let mut hosts = cluster("deploys", "");
    hosts[1].deploy("counter", EXAMPLE_COUNTER).expect(201);
    // every host runs the class: a call through any of them
    for host in &hosts {
        wait_until(
            Duration::from_secs(20),
            "the class reaches every host",
            || host.request("GET", "/_admin/classes/counter", b"").status == 200,
        );
    }
    assert_eq!(hosts[2].call("counter", "d", "increment", json!([5])), 5);
    assert_eq!(hosts[0].call("counter", "d", "get", json!([])), 5);
    // a refused deploy is refused where it was made, and changes nothing anywhere
    hosts[0]
        .deploy_bytes("broken", b"not a component")
        .expect_error(400, "InvalidComponent");
    // a host restarted on a fresh data directory catches up before it serves
    hosts[0].kill();
    std::fs::remove_dir_all(&hosts[0].data).unwrap();
    hosts[0].crash_and_restart();
    hosts[0]
        .request("GET", "/_admin/classes/counter", b"")
        .expect(200);
    hosts[0]
        .request("GET", "/_admin/classes/broken", b"")
        .expect_error(404, "UnknownClass");
    assert_eq!(hosts[0].call("counter", "d", "get", json!([])), 5);
}

/// A WebSocket client of the `ws` fixture's object `object` through `host`, past its welcome.
fn ws_connect(host: &TestHost, object: &str) -> crate::harness::WsClient {
    let url = format!(
        "{}/objects/ws/{object}/ws?tags=t",
        host.url.replace("http://", "ws://")
    );
    let (mut ws, _) =
        tungstenite::connect(url).unwrap_or_else(|e| panic!("connect: {e}; log:\n{}", host.log()));
    if let tungstenite::stream::MaybeTlsStream::Plain(s) = ws.get_mut() {
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    }
    let welcome = crate::harness::ws_text(&mut ws);
    assert!(welcome.starts_with("welcome "), "{welcome}");
    ws
}

#[test]
fn a_websocket_reaches_its_object_through_any_host_and_reconnects_after_its_host_dies() {
    use tungstenite::Message;
    let classes = format!("[classes.ws]\ncomponent = {WEBSOCKETS_BASIC:?}\n");
    let mut hosts = cluster("sockets", &classes);
    // a owns the object; one client connects through a, one through b (tunnelled to a)
    let mut near = ws_connect(&hosts[0], "room");
    let mut far = ws_connect(&hosts[1], "room");
    assert_eq!(owner_of(&hosts, "ws", "room"), 0);
    far.send(Message::text("echo hello")).unwrap();
    assert_eq!(crate::harness::ws_text(&mut far), "hello");
    far.send(Message::text("count")).unwrap();
    assert_eq!(crate::harness::ws_text(&mut far), "2");
    near.send(Message::text("broadcast hi")).unwrap();
    assert_eq!(crate::harness::ws_text(&mut near), "broadcast hi");
    assert_eq!(crate::harness::ws_text(&mut far), "broadcast hi");
    // the socket's host dies: the client through b is closed by b with 1012 ("service
    // restart"; the one connected to a itself just loses its connection), and reconnects
    // through b, which takes the object over
    hosts[0].kill();
    assert_eq!(crate::harness::ws_close_code(&mut far), Some(1012));
    assert_eq!(crate::harness::ws_close_code(&mut near), None);
    let mut again = None;
    wait_until(Duration::from_secs(20), "reconnect through b", || {
        let url = format!(
            "{}/objects/ws/room/ws?tags=t",
            hosts[1].url.replace("http://", "ws://")
        );
        match tungstenite::connect(url) {
            Ok((ws, _)) => {
                again = Some(ws);
                true
            }
            Err(_) => false,
        }
    });
    let mut again = again.unwrap();
    let welcome = crate::harness::ws_text(&mut again);
    assert!(welcome.starts_with("welcome "), "{welcome}");
    again.send(Message::text("echo back")).unwrap();
    assert_eq!(crate::harness::ws_text(&mut again), "back");
    assert_eq!(owner_of(&hosts, "ws", "room"), 1);
    let _ = &mut hosts;
}

#[test]
fn a_host_shutting_down_closes_its_sockets_with_1001_and_hands_its_objects_over_at_once() {
    // a lease far longer than the wait for the takeover below: only a host that leaves lets
    // another take over in time
    let classes = format!(
        "[classes.ws]\ncomponent = {WEBSOCKETS_BASIC:?}\n{}",
        counter_classes()
    );
    let mut hosts = cluster_leased(&database("leaving"), &["a", "b"], &classes, 30_000);
    let mut near = ws_connect(&hosts[0], "hall");
    let mut far = ws_connect(&hosts[1], "hall");
    assert_eq!(hosts[0].call("counter", "k", "increment", json!([5])), 5);
    assert_eq!(owner_of(&hosts, "ws", "hall"), 0);
    assert_eq!(owner_of(&hosts, "counter", "k"), 0);
    let status = hosts[0].terminate();
    assert!(status.success(), "exit status after SIGTERM: {status}");
    // both clients are told the host is going away, the one through b too (a's close frame
    // passes through b's tunnel)
    assert_eq!(crate::harness::ws_close_code(&mut near), Some(1001));
    assert_eq!(crate::harness::ws_close_code(&mut far), Some(1001));
    // b takes the objects over long before a's lease would have run out, with a's writes
    wait_until(Duration::from_secs(10), "b serves the counter", || {
        hosts[1].rpc("counter", "k", "get", json!([])).status == 200
    });
    assert_eq!(hosts[1].call("counter", "k", "get", json!([])), 5);
    assert_eq!(owner_of(&hosts, "counter", "k"), 1);
    let mut again = ws_connect(&hosts[1], "hall");
    again.send(tungstenite::Message::text("echo back")).unwrap();
    assert_eq!(crate::harness::ws_text(&mut again), "back");
    let status = hosts[1].request("GET", "/_admin/cluster", b"").expect(200);
    let a = &status["hosts"].as_array().unwrap()[0];
    assert_eq!(
        (a["id"].as_str(), a["alive"].as_bool()),
        (Some("a"), Some(false))
    );
}

#[test]
fn postgres_restarted_under_load_answers_503_loses_nothing_and_service_resumes() {
    let server = crate::postgres::Server::start();
    let url = format!("{}/postgres", server.url);
    let hosts = cluster_on(&url, &["a", "b"], &counter_classes());
    let objects = 6;
    for o in 0..objects {
        hosts[o % 2].call("counter", &format!("p{o}"), "increment", json!([1]));
    }
    let acked: Arc<Mutex<BTreeMap<String, i64>>> = Arc::new(Mutex::new(
        (0..objects).map(|o| (format!("p{o}"), 1)).collect(),
    ));
    let refusals = Refusals::default();
    let stop = Arc::new(AtomicBool::new(false));
    let urls: Vec<String> = hosts.iter().map(|h| h.url.clone()).collect();
    let writers = increment_until(
        urls,
        "p",
        objects,
        stop.clone(),
        acked.clone(),
        refusals.clone(),
    );
    std::thread::sleep(Duration::from_millis(800));
    server.crash();
    std::thread::sleep(Duration::from_millis(2500));
    server.resume();
    // service resumes by itself
    for (o, host) in (0..objects).zip(hosts.iter().cycle()) {
        wait_until(Duration::from_secs(20), "increments succeed again", || {
            host.rpc("counter", &format!("p{o}"), "get", json!([]))
                .status
                == 200
        });
    }
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.join().unwrap();
    }
    // while it was down, requests failed with the store's 503 (a batch refused at commit, a
    // claim or lookup that could not happen), never with anything unclear
    let refusals = refusals.lock().unwrap().clone();
    assert!(
        !refusals.is_empty(),
        "requests failed while PostgreSQL was down"
    );
    for (status, kind) in refusals.keys() {
        assert_eq!(
            (*status, kind.as_str()),
            (503, "ClusterUnavailable"),
            "{refusals:?}"
        );
    }
    // nothing acknowledged was lost
    for (object, count) in acked.lock().unwrap().iter() {
        let value = hosts[1].call("counter", object, "get", json!([]));
        assert!(
            value.as_i64().unwrap() >= *count,
            "{object}: {count} acknowledged, {value} stored"
        );
    }
}

#[test]
fn the_store_compacts_superseded_pages_and_a_takeover_rebuilds_from_what_is_left() {
    let mut hosts = cluster("compaction", &counter_classes());
    // one increment per batch: 1,100 batches (compaction runs every 1,024), each rewriting the
    // same few pages
    for _ in 0..1100 {
        hosts[0].call("counter", "busy", "increment", json!([1]));
    }
    let status = |host: &TestHost| {
        host.request("GET", "/_admin/cluster/objects/counter/busy", b"")
            .expect(200)
    };
    wait_until(Duration::from_secs(10), "compaction ran", || {
        let s = status(&hosts[1]);
        // fewer page versions than batches: those before batch 1,024 were collapsed
        s["batches"] == 1100 && s["stored_pages"].as_i64().unwrap() < 1100
    });
    let stored = status(&hosts[1]);
    assert!(stored["stored_bytes"].as_i64().unwrap() > 0, "{stored}");
    // another host takes the object over from the compacted pages
    hosts[0].kill();
    wait_until(Duration::from_secs(15), "b serves the object", || {
        hosts[1].rpc("counter", "busy", "get", json!([])).status == 200
    });
    assert_eq!(hosts[1].call("counter", "busy", "get", json!([])), 1100);
    assert_eq!(
        hosts[1].call("counter", "busy", "increment", json!([1])),
        1101
    );
    assert!(
        hosts[1]
            .log()
            .contains("rebuilt the object from the cluster store")
    );
    assert_eq!(hosts[1].metric("wasmdo_cluster_rebuilds_total"), 1);
    let _ = &mut hosts;
}

#[test]
fn a_forwarded_request_keeps_the_clients_address_and_authorization() {
    use std::io::{Read, Write};
    let classes = format!("[classes.info]\ncomponent = {OBJECT_INFO:?}\n");
    let hosts = cluster("relayed", &classes);
    // a owns the object
    hosts[0].request("GET", "/objects/info/o/", b"").expect(200);
    // a client at 127.0.0.7 asks b, claiming another address and sending its own credential
    let addr: std::net::SocketAddr = hosts[1].url.trim_start_matches("http://").parse().unwrap();
    let mut stream = crate::harness::connect_from("127.0.0.7", addr);
    write!(
        stream,
        "GET /objects/info/o/ HTTP/1.1\r\nHost: app.example\r\nAuthorization: Bearer app-secret\r\ncf-connecting-ip: 203.0.113.9\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{answer}");
    let body: Value = serde_json::from_str(body).unwrap();
    let values = |name: &str| crate::harness::header_values(&body, name);
    assert_eq!(values("cf-connecting-ip"), ["127.0.0.7"], "{body}");
    assert_eq!(values("x-real-ip"), ["127.0.0.7"], "{body}");
    assert_eq!(values("authorization"), ["Bearer app-secret"], "{body}");
    assert!(values("x-wasmdo-forwarded").is_empty(), "{body}");
    assert!(values("x-wasmdo-client-authorization").is_empty(), "{body}");
    assert_eq!(values("host"), ["app.example"], "{body}");
}

#[test]
fn deploys_racing_through_two_hosts_leave_every_host_with_the_same_class() {
    let hosts = cluster("racing", "");
    // two clients deploy different components as one class, at once, through different hosts
    let deployer = |host: &TestHost, component: &'static str| {
        let (url, bytes) = (host.url.clone(), std::fs::read(component).unwrap());
        std::thread::spawn(move || {
            let agent = crate::harness::agent(Some(Duration::from_secs(120)));
            for _ in 0..3 {
                let reply = agent
                    .put(format!("{url}/_admin/classes/racer"))
                    .send(&bytes[..])
                    .unwrap();
                assert_eq!(reply.status(), 201);
            }
        })
    };
    let a = deployer(&hosts[0], EXAMPLE_COUNTER);
    let b = deployer(&hosts[1], RPC_TYPES);
    a.join().unwrap();
    b.join().unwrap();
    // every host ends with the component of the last deploy in the log
    let hash = |host: &TestHost| {
        let reply = host.request("GET", "/_admin/classes/racer", b"");
        (reply.status == 200).then(|| reply.body["hash"].clone())
    };
    wait_until(Duration::from_secs(20), "every host agrees", || {
        let first = hash(&hosts[0]);
        first.is_some() && hosts.iter().all(|h| hash(h) == first)
    });
}

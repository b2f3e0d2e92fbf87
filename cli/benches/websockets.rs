//! `cargo bench -p wasmdo --bench websockets` — hibernatable WebSockets; the numbers in
//! docs/BENCHMARKS.md.
//!
//! Starts the `wasmdo` binary (release) with `tests/fixtures/websockets_basic` and drives it over
//! loopback with WebSocket clients in this process:
//! - idle sockets: opens `BENCH_SOCKETS` (default 50,000, capped below the file descriptor limit)
//!   sockets to 100 objects, waits until every object hibernated, and reports the host's RSS per
//!   idle socket;
//! - fan-out: one object broadcasts to 1,000 sockets; the time until every client has it;
//! - wake-up: a message to a hibernated object (the round trip, p50/p99) against the same
//!   message to a live one.
//!
//! - the same chat application (examples/chatroom in Rust, examples/chatroom-js in TypeScript) on
//!   wasmdo and, when bench/workerd is installed, the TypeScript one on workerd behind a Worker:
//!   memory per idle member, fan-out to a room of 500, a message's round trip.
//!
//! `BENCH_QUICK=1` for a short run (5,000 sockets, fewer samples); `BENCH_ONLY=chat` for the chat
//! application's rows only.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

#[path = "shared/esbuild.rs"]
mod esbuild;
#[path = "shared/workerd.rs"]
mod shared;
use esbuild::esbuild;
use shared::{Workerd, start_workerd};

type Client = WebSocketStream<TcpStream>;

fn quick() -> bool {
    std::env::var_os("BENCH_QUICK").is_some()
}

struct Host {
    child: Child,
    addr: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Drop for Host {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_host(hibernate_after_ms: u64) -> Host {
    start_host_with(
        hibernate_after_ms,
        &[("ws", wasmdo_test_artifacts::WEBSOCKETS_BASIC)],
    )
}

fn start_host_with(hibernate_after_ms: u64, classes: &[(&str, &str)]) -> Host {
    start_host_configured(hibernate_after_ms, classes, "")
}

fn start_host_configured(hibernate_after_ms: u64, classes: &[(&str, &str)], extra: &str) -> Host {
    use std::io::BufRead;
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("wasmdo.toml");
    std::fs::write(
        &config,
        // every client of the bench is one loopback peer: lift the per-peer connection cap
        // (the host still keeps connections to half its open-file limit)
        format!(
            "[limits]\nhibernate-after-ms = {hibernate_after_ms}\nmax-connections = 1000000\n\
             max-connections-per-peer = 1000000\n{extra}"
        ),
    )
    .expect("config");
    let mut child = Command::new(env!("CARGO_BIN_EXE_wasmdo"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data"])
        .arg(dir.path().join("data"))
        .arg("--config")
        .arg(&config)
        .env("WASMDO_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start wasmdo");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = std::io::BufReader::new(stdout).lines();
    let first = lines.next().expect("a line").expect("stdout");
    let url = first
        .strip_prefix("wasmdo listening on http://")
        .expect("the listening line");
    std::thread::spawn(move || for _ in lines {});
    let addr: SocketAddr = url.parse().expect("address");
    for (class, path) in classes {
        let wasm = std::fs::read(path).expect("component");
        ureq::put(&format!("http://{addr}/_admin/classes/{class}"))
            .config()
            .timeout_global(Some(Duration::from_secs(300)))
            .build()
            .send(&wasm[..])
            .expect("deploy");
    }
    Host {
        child,
        addr,
        _dir: dir,
    }
}

fn metric(addr: SocketAddr, name: &str) -> u64 {
    let text = ureq::get(&format!("http://{addr}/_admin/metrics"))
        .call()
        .expect("metrics")
        .into_body()
        .read_to_string()
        .expect("text");
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .and_then(|v| v.trim().parse().ok())
        .expect("metric")
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// A client of `object`, connected from loopback address 127.0.0.`source` (sockets spread over
/// several source addresses so 50,000 do not run out of ephemeral ports; 0: any), past its
/// welcome.
async fn connect(addr: SocketAddr, object: String, source: u8) -> Client {
    let stream = if source == 0 {
        TcpStream::connect(addr).await.expect("connect")
    } else {
        let socket = TcpSocket::new_v4().expect("socket");
        socket.set_reuseaddr(true).expect("SO_REUSEADDR");
        socket
            .bind(SocketAddr::from(([127, 0, 0, source], 0)))
            .expect("bind");
        socket.connect(addr).await.expect("connect")
    };
    let url = format!("ws://{addr}/objects/ws/{object}/ws");
    let config = WebSocketConfig::default().read_buffer_size(1024);
    let (mut ws, _) = tokio_tungstenite::client_async_with_config(url, stream, Some(config))
        .await
        .expect("handshake");
    next_text(&mut ws).await; // welcome
    ws
}

async fn next_text(ws: &mut Client) -> String {
    loop {
        match ws.next().await.expect("open").expect("a message") {
            Message::Text(t) => return t.to_string(),
            _ => continue,
        }
    }
}

async fn ask(ws: &mut Client, text: &str) -> String {
    ws.send(Message::text(text)).await.expect("send");
    next_text(ws).await
}

fn percentile(samples: &mut [Duration], p: f64) -> f64 {
    samples.sort();
    let i = ((samples.len() as f64 - 1.0) * p).round() as usize;
    samples[i].as_secs_f64() * 1e6
}

async fn idle_sockets(n: usize) {
    let host = start_host(500);
    let pid = host.child.id();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = rss_kib(pid);
    let started = Instant::now();
    let mut clients = Vec::with_capacity(n);
    let mut pending = futures_util::stream::FuturesUnordered::new();
    for i in 0..n {
        let object = format!("room-{}", i % 100);
        // a few thousand sockets per source address, and other addresses than the last run's
        // (whose sockets linger in TIME_WAIT)
        let source = 2 + ((std::process::id() as usize % 40) * 6 + i / 4_000) % 250;
        pending.push(connect(host.addr, object, source as u8));
        if pending.len() >= 256 {
            clients.push(pending.next().await.expect("a client"));
        }
    }
    while let Some(c) = pending.next().await {
        clients.push(c);
    }
    let connect_secs = started.elapsed().as_secs_f64();
    let open = metric(host.addr, "wasmdo_websockets_open");
    // every object hibernates
    let deadline = Instant::now() + Duration::from_secs(60);
    while metric(host.addr, "wasmdo_live_objects") > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = rss_kib(pid);
    let per_socket = (after.saturating_sub(before)) as f64 * 1024.0 / n as f64;
    println!(
        "idle sockets: {n} open ({open} in the host) to 100 objects in {connect_secs:.1} s ({:.0}/s); all hibernated: live objects {}",
        n as f64 / connect_secs,
        metric(host.addr, "wasmdo_live_objects")
    );
    println!(
        "idle sockets: host RSS {before} KiB → {after} KiB: {per_socket:.0} B per idle hibernated socket, {:.0} sockets per GiB",
        (1u64 << 30) as f64 / per_socket
    );
    drop(clients);
}

async fn fan_out(n: usize) {
    let host = start_host(60_000);
    let mut clients = Vec::with_capacity(n);
    for _ in 0..n {
        clients.push(connect(host.addr, "fan".into(), 0).await);
    }
    let mut times = Vec::new();
    for round in 0..if quick() { 3 } else { 10 } {
        let started = Instant::now();
        clients[0]
            .send(Message::text(format!("broadcast {round}")))
            .await
            .expect("send");
        for c in clients.iter_mut() {
            let text = next_text(c).await;
            assert_eq!(text, format!("broadcast {round}"));
        }
        times.push(started.elapsed());
    }
    let best = times.iter().min().expect("rounds").as_secs_f64();
    let median = percentile(&mut times, 0.5) / 1e6;
    println!(
        "fan-out: one message to {n} sockets: median {:.1} ms ({:.0} messages/s), best {:.1} ms",
        median * 1e3,
        n as f64 / median,
        best * 1e3
    );
}

async fn wake_latency(samples: usize, snapshots: bool) {
    let extra = if snapshots {
        "\n[classes.ws]\nenv = { SNAPSHOT = \"1\" }\n"
    } else {
        ""
    };
    let host = start_host_configured(
        50,
        &[("ws", wasmdo_test_artifacts::WEBSOCKETS_BASIC)],
        extra,
    );
    let mut ws = connect(host.addr, "sleepy".into(), 0).await;
    let mut warm = Vec::new();
    for i in 0..samples {
        let started = Instant::now();
        assert_eq!(ask(&mut ws, &format!("echo {i}")).await, i.to_string());
        warm.push(started.elapsed());
    }
    let mut cold = Vec::new();
    let hibernations = metric(host.addr, "wasmdo_hibernations_total");
    for i in 0..samples {
        // well past hibernate-after-ms: the instance is gone
        tokio::time::sleep(Duration::from_millis(120)).await;
        let started = Instant::now();
        assert_eq!(ask(&mut ws, &format!("echo {i}")).await, i.to_string());
        cold.push(started.elapsed());
    }
    let slept = metric(host.addr, "wasmdo_hibernations_total") - hibernations;
    let how = if snapshots {
        format!(
            "restored from a snapshot ({} restores)",
            metric(host.addr, "wasmdo_restores_total")
        )
    } else {
        "init".to_string()
    };
    println!(
        "wake-up: message round trip to a live object      p50 {:>7.1} µs  p99 {:>7.1} µs",
        percentile(&mut warm, 0.5),
        percentile(&mut warm, 0.99)
    );
    println!(
        "wake-up: message round trip to a hibernated object p50 {:>7.1} µs  p99 {:>7.1} µs ({slept} hibernations in {samples} samples; {how})",
        percentile(&mut cold, 0.5),
        percentile(&mut cold, 0.99)
    );
}

/// workerd serving examples/chatroom-js (transpiled) behind bench/workerd/chatroom-worker.js, if
/// bench/workerd is installed.
fn start_workerd_chat() -> Option<Workerd> {
    start_workerd("chatroom.capnp", |root, dir| {
        // the example's TypeScript, as JavaScript (types erased, imports kept)
        let repo = root.join("../..");
        esbuild(
            &repo,
            &repo.join("examples/chatroom-js/src/chatroom.ts"),
            &dir.join("chatroom.js"),
            "",
        )?;
        std::fs::copy(
            root.join("chatroom-worker.js"),
            dir.join("chatroom-worker.js"),
        )?;
        Ok(())
    })
    .expect("start workerd")
}

/// A member of a chat room of `class` (examples/chatroom, chatroom-js), past its history and
/// its own `joined` notice.
async fn join(addr: SocketAddr, class: &str, room: &str, name: &str) -> Client {
    let stream = TcpStream::connect(addr).await.expect("connect");
    let url = format!("ws://{addr}/objects/{class}/{room}/join?name={name}");
    let config = WebSocketConfig::default().read_buffer_size(1024);
    let (mut ws, _) = tokio_tungstenite::client_async_with_config(url, stream, Some(config))
        .await
        .expect("join");
    until(&mut ws, &format!("\"joined\",\"name\":\"{name}\"")).await;
    ws
}

/// Reads until a text message containing `needle`.
async fn until(ws: &mut Client, needle: &str) {
    loop {
        if next_text(ws).await.contains(needle) {
            return;
        }
    }
}

/// The same chat workload against each target: members idle in 20 rooms (memory per socket),
/// one message to a room of 500 (fan-out), and a message's round trip in a room of one.
async fn chat_workload(label: &str, addr: SocketAddr, pid: u32, class: &str) {
    let idle = if quick() { 400 } else { 2_000 };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = rss_kib(pid);
    let mut members = Vec::new();
    for i in 0..idle {
        members.push(join(addr, class, &format!("idle-{}", i % 20), &format!("u{i}")).await);
    }
    // long enough for wasmdo's rooms to hibernate (hibernate-after-ms = 1000 here)
    tokio::time::sleep(Duration::from_secs(5)).await;
    let after = rss_kib(pid);
    println!(
        "chat {label:<14}: {idle} members idle in 20 rooms: {:.1} KiB of RSS each",
        after.saturating_sub(before) as f64 / idle as f64
    );
    drop(members);

    let n = if quick() { 100 } else { 500 };
    let mut room = Vec::new();
    for i in 0..n {
        room.push(join(addr, class, "fan", &format!("f{i}")).await);
    }
    let mut times = Vec::new();
    for round in 0..5 {
        let needle = format!("round-{round}");
        let started = Instant::now();
        room[0]
            .send(Message::text(needle.clone()))
            .await
            .expect("send");
        for member in room.iter_mut() {
            until(member, &needle).await;
        }
        times.push(started.elapsed());
    }
    let median = percentile(&mut times, 0.5) / 1e6;
    println!(
        "chat {label:<14}: one message to {n} members: median {:.1} ms ({:.0} messages/s)",
        median * 1e3,
        n as f64 / median
    );
    drop(room);

    let mut solo = join(addr, class, "solo", "me").await;
    let mut rtt = Vec::new();
    for i in 0..if quick() { 50 } else { 500 } {
        let text = format!("m{i}");
        let started = Instant::now();
        solo.send(Message::text(text.clone())).await.expect("send");
        until(&mut solo, &format!("\"text\":\"{text}\"")).await;
        rtt.push(started.elapsed());
    }
    println!(
        "chat {label:<14}: message round trip (stored, broadcast to 1) p50 {:.0} µs  p99 {:.0} µs",
        percentile(&mut rtt, 0.5),
        percentile(&mut rtt, 0.99)
    );
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let _ = rlimit::increase_nofile_limit(u64::MAX);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let wanted = std::env::var("BENCH_SOCKETS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if quick() { 5_000 } else { 50_000 });
    // each socket is a file descriptor in the host and one in this process: stay under the limit
    let (_, hard) = rlimit::getrlimit(rlimit::Resource::NOFILE).unwrap_or((0, u64::MAX));
    let sockets = wanted.min(hard.saturating_sub(1_000) as usize);
    if sockets < wanted {
        println!(
            "idle sockets: {wanted} wanted, {sockets} opened: the file descriptor limit here is {hard} per process"
        );
    }
    runtime.block_on(async {
        if std::env::var("BENCH_ONLY").as_deref() != Ok("chat") {
            idle_sockets(sockets).await;
            fan_out(1_000).await;
            wake_latency(if quick() { 50 } else { 300 }, false).await;
            wake_latency(if quick() { 50 } else { 300 }, true).await;
        }
        // the same chat application: Rust and TypeScript on wasmdo, the TypeScript on workerd
        let host = start_host_with(
            1_000,
            &[
                ("chatroom", wasmdo_test_artifacts::EXAMPLE_CHATROOM),
                ("chatroom-js", wasmdo_test_artifacts::EXAMPLE_CHATROOM_JS),
            ],
        );
        chat_workload("wasmdo (Rust)", host.addr, host.child.id(), "chatroom").await;
        chat_workload("wasmdo (TS)", host.addr, host.child.id(), "chatroom-js").await;
        drop(host);
        if let Some(workerd) = start_workerd_chat() {
            chat_workload(
                "workerd (TS)",
                workerd.addr,
                workerd.child.id(),
                "chatroom-js",
            )
            .await;
        }
    });
}

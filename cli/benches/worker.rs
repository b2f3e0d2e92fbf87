//! `cargo bench -p wasmdo --bench worker` — a whole Workers project, the entry Worker in front of
//! its Durable Objects, on wasmdo and on workerd in the same run; the numbers in
//! docs/BENCHMARKS.md ("Entry Worker → object vs workerd").
//!
//! The app is examples/chat-worker, unmodified: on wasmdo as `wasmdo dev --full-build` runs it
//! (the release binary builds every class with wasmdo-js, as `wasmdo deploy` would, and serves it), on workerd as wrangler would (its TypeScript
//! bundled by esbuild, the page a Text module; bench/workerd/chat-worker.capnp), when
//! bench/workerd is installed (`scripts/npm-deps bench/workerd`). One target runs at a time, so
//! each has the machine to itself. The same clients in this process drive both:
//! - HTTP through the Worker to an object: `GET /api/rooms/<room>/history` (the Worker's fetch
//!   calls the room's fetch, which lists 20 stored messages), N keep-alive connections for a
//!   fixed time: requests/s and latency p50/p99 (once more with a browser's 12 request headers,
//!   which a page's `fetch` sends); on wasmdo also the object's own route
//!   (`/objects/ChatRoom/<room>/history`, no Worker) to show what the Worker's hop costs;
//! - WebSocket fan-out through sockets the Worker passed on to the room: members join through
//!   the Worker (each from its own `CF-Connecting-IP`, so the rate limiter lets them in; each join
//!   is a Worker event, a limiter event and a room event); then one member's message, the time
//!   until every member has it, p50/p99 over repeats.
//!
//! `BENCH_QUICK=1` for a short run; `BENCH_MEMBERS=<n>` for the room's size (default 500).

use std::io::BufRead;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

#[path = "shared/workerd.rs"]
mod shared;
use shared::{Workerd, start_workerd};
#[path = "shared/load.rs"]
mod load;
use load::{BROWSER_HEADERS, Paths, Stats, http_load_with};
#[path = "shared/esbuild.rs"]
mod esbuild;
use esbuild::esbuild;

type Socket = WebSocketStream<TcpStream>;

fn quick() -> bool {
    std::env::var_os("BENCH_QUICK").is_some()
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// `wasmdo dev examples/chat-worker` (the release binary), killed on drop.
struct DevHost {
    child: Child,
    addr: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Drop for DevHost {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_wasmdo() -> anyhow::Result<DevHost> {
    let dir = tempfile::tempdir()?;
    // compiled components are kept between runs (keyed by content and engine build)
    let cache = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("bench-compile-cache");
    let config = dir.path().join("wasmdo.toml");
    std::fs::write(
        &config,
        format!("compile-cache = {:?}\n", cache.display().to_string()),
    )?;
    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_wasmdo"))
        .arg("dev")
        .arg(repo().join("examples/chat-worker"))
        // what `wasmdo deploy` runs (typed components), not the development engines
        .args([
            "--listen",
            "127.0.0.1:0",
            "--no-watch",
            "--full-build",
            "--data",
        ])
        .arg(dir.path().join("data"))
        .arg("--config")
        .arg(&config)
        .env("WASMDO_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()?;
    let mut lines = std::io::BufReader::new(child.stdout.take().expect("stdout")).lines();
    let first = lines
        .next()
        .ok_or_else(|| anyhow::anyhow!("wasmdo dev exited before it was ready"))??;
    std::thread::spawn(move || for _ in lines {});
    let url = first
        .strip_prefix("wasmdo dev: chat-worker ready on http://")
        .ok_or_else(|| anyhow::anyhow!("unexpected first line {first:?}"))?;
    println!(
        "wasmdo dev: built, deployed and ready in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(DevHost {
        child,
        addr: url.parse()?,
        _dir: dir,
    })
}

/// workerd running examples/chat-worker: its TypeScript bundled as wrangler does (esbuild, the
/// HTML left a Text module), beside bench/workerd/chat-worker.capnp.
fn start_workerd_chat() -> anyhow::Result<Option<Workerd>> {
    start_workerd("chat-worker.capnp", |root, dir| {
        let example = root.join("../../examples/chat-worker/src");
        esbuild(
            &root.join("../.."),
            &example.join("index.ts"),
            &dir.join("chat-worker.js"),
            "bundle:true,external:['cloudflare:workers','*.html'],",
        )?;
        std::fs::copy(example.join("index.html"), dir.join("index.html"))?;
        Ok(())
    })
}

/// A member joining `room` through the Worker from client address `ip` (a loopback address),
/// past its own `joined`.
async fn join(addr: SocketAddr, room: &str, name: &str, ip: &str) -> Socket {
    let mut request = format!("ws://{addr}/api/rooms/{room}/websocket?name={name}")
        .into_client_request()
        .expect("request");
    request
        .headers_mut()
        .insert("cf-connecting-ip", ip.parse().expect("header"));
    // from that address, too: wasmdo sets CF-Connecting-IP from the connection's peer (the
    // example limits joins per address), workerd passes the header on
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket
        .bind(SocketAddr::new(ip.parse().expect("address"), 0))
        .expect("bind the client address");
    let stream = socket.connect(addr).await.expect("connect");
    let config = WebSocketConfig::default().read_buffer_size(4096);
    let (mut ws, _) = tokio_tungstenite::client_async_with_config(request, stream, Some(config))
        .await
        .unwrap_or_else(|e| panic!("{name} joins {room}: {e}"));
    until(&mut ws, &format!("\"joined\",\"name\":\"{name}\"")).await;
    ws
}

/// Reads until a text message containing `needle`.
async fn until(ws: &mut Socket, needle: &str) {
    loop {
        match ws.next().await.expect("open").expect("a message") {
            Message::Text(t) if t.contains(needle) => return,
            _ => continue,
        }
    }
}

/// What one target measured.
struct Results {
    label: &'static str,
    /// (scenario, requests/s, p50, p99)
    http: Vec<(String, f64, Duration, Duration)>,
    members: usize,
    join_secs: f64,
    fan_out: Stats,
}

async fn workload(label: &'static str, addr: SocketAddr, direct: bool) -> Results {
    let secs = Duration::from_secs(if quick() { 2 } else { 10 });
    // 20 messages in the history rooms (a member's messages are stored by the room)
    let rooms = 100;
    for room in 0..rooms {
        let mut writer = join(
            addr,
            &format!("h{room}"),
            "writer",
            &format!("127.200.0.{room}"),
        )
        .await;
        for i in 0..20 {
            let text = format!("message {i} of the history, about sixty bytes long all told");
            writer.send(Message::text(text)).await.expect("send");
            until(&mut writer, "\"type\":\"message\"").await;
        }
        writer.close(None).await.expect("close");
    }
    let mut http = Vec::new();
    type Scenario = (
        String,
        Paths,
        &'static [(&'static str, &'static str)],
        usize,
    );
    let mut scenarios: Vec<Scenario> = vec![
        (
            "GET history via Worker, 1 room, 1 conn".into(),
            Arc::new(|_| "/api/rooms/h0/history".to_string()),
            &[],
            1,
        ),
        (
            "GET history via Worker, 1 room, 16 conns".into(),
            Arc::new(|_| "/api/rooms/h0/history".to_string()),
            &[],
            16,
        ),
        (
            format!("GET history via Worker, {rooms} rooms, 16 conns"),
            Arc::new(move |i| format!("/api/rooms/h{}/history", i % rooms)),
            &[],
            16,
        ),
        // what a page's fetch sends: a browser's 12 headers besides `host`
        (
            "the same, a browser's headers, 1 room, 16 conns".into(),
            Arc::new(|_| "/api/rooms/h0/history".to_string()),
            BROWSER_HEADERS,
            16,
        ),
    ];
    if direct {
        scenarios.push((
            "GET history from the object (no Worker), 16 conns".into(),
            Arc::new(|_| "/objects/ChatRoom/h0/history".to_string()),
            &[],
            16,
        ));
    }
    for (name, path, headers, connections) in scenarios {
        let (rate, stats) = http_load_with(addr, path, None, headers, connections, secs).await;
        println!(
            "{label:<8} {name:<52} {rate:>7.0} req/s  p50 {:>6.2} ms  p99 {:>6.2} ms",
            ms(stats.pct(0.5)),
            ms(stats.pct(0.99))
        );
        http.push((name, rate, stats.pct(0.5), stats.pct(0.99)));
    }

    let members: usize = std::env::var("BENCH_MEMBERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if quick() { 100 } else { 500 });
    let started = Instant::now();
    let mut room = Vec::with_capacity(members);
    for i in 0..members {
        let ip = format!("127.{}.{}.1", 1 + i / 256, i % 256);
        room.push(join(addr, "fan", &format!("m{i}"), &ip).await);
    }
    let join_secs = started.elapsed().as_secs_f64();
    println!(
        "{label:<8} {members} members joined through the Worker in {join_secs:.1} s ({:.0} joins/s)",
        members as f64 / join_secs
    );
    // the last joins' notices are still on their way to the first members (the last member
    // read its own in `join`)
    let last = format!("\"joined\",\"name\":\"m{}\"", members - 1);
    for member in room.iter_mut().take(members - 1) {
        until(member, &last).await;
    }
    let mut times = Vec::new();
    for round in 0..if quick() { 10 } else { 50 } {
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
    let fan_out = Stats::new(times);
    println!(
        "{label:<8} one message to {members} members: p50 {:.1} ms  p99 {:.1} ms",
        ms(fan_out.pct(0.5)),
        ms(fan_out.pct(0.99))
    );
    Results {
        label,
        http,
        members,
        join_secs,
        fan_out,
    }
}

fn print_table(results: &[Results]) {
    println!();
    println!("examples/chat-worker: entry Worker → Durable Object");
    print!("{:<52}", "scenario");
    for r in results {
        print!(" | {:^32}", r.label);
    }
    println!();
    let scenarios: Vec<&String> = results[0].http.iter().map(|(name, ..)| name).collect();
    for name in scenarios {
        print!("{name:<52}");
        for r in results {
            match r.http.iter().find(|(n, ..)| n == name) {
                Some((_, rate, p50, p99)) => print!(
                    " | {rate:>6.0}/s p50 {:>5.2} p99 {:>6.2} ms",
                    ms(*p50),
                    ms(*p99)
                ),
                None => print!(" | {:^32}", "—"),
            }
        }
        println!();
    }
    print!(
        "{:<52}",
        format!("{} joins through the Worker", results[0].members)
    );
    for r in results {
        print!(
            " | {:>10.1} s ({:>4.0} joins/s)      ",
            r.join_secs,
            r.members as f64 / r.join_secs
        );
    }
    println!();
    print!(
        "{:<52}",
        format!("one message to {} members", results[0].members)
    );
    for r in results {
        print!(
            " | p50 {:>6.1} ms  p99 {:>6.1} ms     ",
            ms(r.fan_out.pct(0.5)),
            ms(r.fan_out.pct(0.99))
        );
    }
    println!();
}

fn main() -> anyhow::Result<()> {
    if std::env::args().any(|a| a == "--list") {
        return Ok(());
    }
    let _ = rlimit::increase_nofile_limit(u64::MAX);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    println!(
        "machine: {} cores",
        std::thread::available_parallelism()?.get()
    );
    let mut results = Vec::new();
    {
        let host = start_wasmdo()?;
        let addr = host.addr;
        results
            .push(runtime.block_on(async { tokio::spawn(workload("wasmdo", addr, true)).await })?);
    }
    if let Some(workerd) = start_workerd_chat()? {
        let addr = workerd.addr;
        results.push(
            runtime.block_on(async { tokio::spawn(workload("workerd", addr, false)).await })?,
        );
    }
    print_table(&results);
    Ok(())
}

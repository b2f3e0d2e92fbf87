//! `cargo bench -p wasmdo --bench host` — the numbers in docs/BENCHMARKS.md.
//!
//! Runs the real host in-process (the library the `wasmdo` binary is made of) with the example
//! counter, and measures:
//! - in-process RPC latency to a warm object (read-only `get`, and `increment` with a durable write);
//! - HTTP on loopback: throughput and latency with N keep-alive connections to one hot object
//!   (one durable write per call), and to a trivial hyper handler (this machine's ceiling);
//! - activation of never-seen objects (first call, including creating the object's database);
//! - RSS per live object.
//!
//! Set `BENCH_QUICK=1` for a short run.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::json;
use tokio::net::{TcpListener, TcpStream};

use wasmdo_host::directory::{Address, Directory};

fn quick() -> bool {
    std::env::var_os("BENCH_QUICK").is_some()
}

struct Stats {
    samples: Vec<Duration>,
}

impl Stats {
    fn new(mut samples: Vec<Duration>) -> Stats {
        samples.sort();
        Stats { samples }
    }
    fn pct(&self, p: f64) -> Duration {
        let i = ((self.samples.len() as f64 - 1.0) * p).round() as usize;
        self.samples[i]
    }
    fn line(&self) -> String {
        format!(
            "p50 {:>8.1} µs  p99 {:>8.1} µs  (n={})",
            self.pct(0.5).as_secs_f64() * 1e6,
            self.pct(0.99).as_secs_f64() * 1e6,
            self.samples.len()
        )
    }
}

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

async fn http_load(
    addr: std::net::SocketAddr,
    path: &str,
    body: &'static str,
    connections: usize,
    duration: Duration,
) -> (f64, Stats) {
    let deadline = Instant::now() + duration;
    let mut tasks = Vec::new();
    for _ in 0..connections {
        let path = path.to_string();
        tasks.push(tokio::spawn(async move {
            let stream = TcpStream::connect(addr).await.unwrap();
            stream.set_nodelay(true).unwrap();
            let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                .await
                .unwrap();
            tokio::spawn(conn);
            let mut samples = Vec::new();
            while Instant::now() < deadline {
                let req = Request::post(&path)
                    .header("host", "bench")
                    .body(Full::new(Bytes::from_static(body.as_bytes())))
                    .unwrap();
                let start = Instant::now();
                let res = sender.send_request(req).await.unwrap();
                assert!(res.status().is_success(), "status {}", res.status());
                res.into_body().collect().await.unwrap();
                samples.push(start.elapsed());
            }
            samples
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let rate = all.len() as f64 / duration.as_secs_f64();
    (rate, Stats::new(all))
}

async fn trivial_server() -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            stream.set_nodelay(true).unwrap();
            tokio::spawn(async move {
                let service =
                    hyper::service::service_fn(|req: Request<hyper::body::Incoming>| async move {
                        let _ = req.into_body().collect().await;
                        Ok::<_, std::convert::Infallible>(Response::new(Full::new(
                            Bytes::from_static(b"5\n"),
                        )))
                    });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

/// Times `work(n)` (pure guest computation) and a trivial call with fuel metering on (the
/// default host) and off (a second host).
async fn fuel_overhead(metered: &Arc<Directory>, dir: &std::path::Path) -> anyhow::Result<()> {
    let mut config = wasmdo_host::config::Config {
        listen: "127.0.0.1:0".parse()?,
        data: Some(dir.join("unmetered")),
        ..Default::default()
    };
    config.limits.fuel_metering = false;
    let host = wasmdo_host::Host::start(config).await?;
    let unmetered = host.directory().clone();
    let runaway = std::fs::read(wasmdo_test_artifacts::LIMITS_RUNAWAY)?;
    for directory in [metered, &unmetered] {
        directory
            .registry()
            .deploy("runaway", runaway.clone())
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    let object = Address::Name("cpu".into());
    let iterations = if quick() { 1_000_000 } else { 20_000_000 };
    let rounds = if quick() { 5 } else { 30 };
    let mut medians = Vec::new();
    for (label, directory) in [("fuel on ", metered), ("fuel off", &unmetered)] {
        directory
            .call("runaway", &object, "work", json!([1000]))
            .await?;
        let mut samples = Vec::new();
        for _ in 0..rounds {
            let start = Instant::now();
            directory
                .call("runaway", &object, "work", json!([iterations]))
                .await?;
            samples.push(start.elapsed());
        }
        let stats = Stats::new(samples);
        medians.push(stats.pct(0.5));
        println!(
            "cpu-bound guest, work({iterations}), {label}:            p50 {:>8.2} ms",
            stats.pct(0.5).as_secs_f64() * 1e3
        );
        let mut samples = Vec::new();
        for _ in 0..(if quick() { 2_000 } else { 20_000 }) {
            let start = Instant::now();
            directory.call("runaway", &object, "ok", json!([])).await?;
            samples.push(start.elapsed());
        }
        println!(
            "trivial call (ok), {label}:                        {}",
            Stats::new(samples).line()
        );
    }
    println!(
        "fuel metering overhead on CPU-bound Rust guest code: {:+.0}%",
        (medians[0].as_secs_f64() / medians[1].as_secs_f64() - 1.0) * 100.0
    );
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run())
}

async fn run() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let mut config = wasmdo_host::config::Config {
        listen: "127.0.0.1:0".parse()?,
        data: Some(dir.path().join("data")),
        ..Default::default()
    };
    config.limits.max_live_objects = 5_000;
    config.limits.idle_timeout_ms = 600_000;
    let host = wasmdo_host::Host::start(config).await?;
    let bytes = std::fs::read(wasmdo_test_artifacts::EXAMPLE_COUNTER)?;
    host.registry()
        .deploy("counter", bytes)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let directory = host.directory().clone();
    let addr = host.addr();
    tokio::spawn(host.serve());

    println!(
        "machine: {} cores; wasmdo {}",
        std::thread::available_parallelism()?.get(),
        env!("CARGO_PKG_VERSION")
    );

    // in-process latency to a warm object
    let hot = Address::Name("hot".into());
    directory
        .call("counter", &hot, "increment", json!([1]))
        .await?;
    let n = if quick() { 2_000 } else { 20_000 };
    let mut samples = Vec::with_capacity(n);
    for _ in 0..n {
        let start = Instant::now();
        directory.call("counter", &hot, "get", json!([])).await?;
        samples.push(start.elapsed());
    }
    println!(
        "in-process rpc, warm object, read (get):           {}",
        Stats::new(samples).line()
    );
    let n = if quick() { 500 } else { 5_000 };
    let mut samples = Vec::with_capacity(n);
    for _ in 0..n {
        let start = Instant::now();
        directory
            .call("counter", &hot, "increment", json!([1]))
            .await?;
        samples.push(start.elapsed());
    }
    println!(
        "in-process rpc, warm object, durable write (1 at a time): {}",
        Stats::new(samples).line()
    );

    // activation of never-seen objects (sequential)
    let n = if quick() { 300 } else { 3_000 };
    let mut samples = Vec::with_capacity(n);
    let rss_before = rss_kib();
    for i in 0..n {
        let start = Instant::now();
        directory
            .call(
                "counter",
                &Address::Name(format!("new-{i}")),
                "get",
                json!([]),
            )
            .await?;
        samples.push(start.elapsed());
    }
    let rss_after = rss_kib();
    let stats = Stats::new(samples);
    let total: Duration = stats.samples.iter().sum();
    println!(
        "activation of a never-seen object (first call):     {}  => {:.0} objects/s",
        stats.line(),
        n as f64 / total.as_secs_f64()
    );
    println!(
        "RSS per live object: {:.1} KiB ({} objects, {} KiB → {} KiB, {} live)",
        (rss_after.saturating_sub(rss_before)) as f64 / n as f64,
        n,
        rss_before,
        rss_after,
        directory.live_objects()
    );

    // HTTP on loopback
    let secs = Duration::from_secs(if quick() { 2 } else { 10 });
    let trivial = trivial_server().await;
    for connections in [1, 16] {
        let (rate, stats) = http_load(trivial, "/", "[]", connections, secs).await;
        println!(
            "http ceiling (trivial hyper handler), {connections:>2} conns:   {rate:>9.0} req/s  {}",
            stats.line()
        );
        let (rate, stats) = http_load(addr, "/rpc/counter/hot/get", "[]", connections, secs).await;
        println!(
            "http rpc, hot object, read,          {connections:>2} conns:   {rate:>9.0} req/s  {}",
            stats.line()
        );
        let (rate, stats) =
            http_load(addr, "/rpc/counter/hot/increment", "[1]", connections, secs).await;
        println!(
            "http rpc, hot object, durable write, {connections:>2} conns:   {rate:>9.0} req/s  {}",
            stats.line()
        );
    }
    // the cost of fuel metering: the same CPU-bound guest on a host without it
    fuel_overhead(&directory, dir.path()).await?;

    let metrics = directory.metrics();
    let events = metrics.events.load(std::sync::atomic::Ordering::Relaxed);
    let commits = metrics.batches.load(std::sync::atomic::Ordering::Relaxed);
    println!(
        "events per commit overall: {:.1} ({events} events, {commits} commits)",
        events as f64 / commits.max(1) as f64
    );
    Ok(())
}

//! `cargo bench -p wasmdo --bench host` — the numbers in docs/BENCHMARKS.md.
//!
//! Runs the real host in-process (the library the `wasmdo` binary is made of) with the example
//! counter and measures:
//! - in-process: RPC latency to a warm object (a read, a durable write), activation of
//!   never-seen objects, RSS per live object, and fuel metering's cost on CPU-bound guest code;
//! - over HTTP on loopback, with the same load generator for every target: a trivial hyper
//!   handler (this machine's ceiling), wasmdo, and — when `bench/workerd` is installed
//!   (`scripts/npm-deps bench/workerd`) — workerd serving the same counter as a Cloudflare Durable
//!   Object, in the same run: hot-object reads and durable writes, new-object creation.
//!
//! `BENCH_QUICK=1` for a short run; `BENCH_ONLY=http` for the HTTP rows of the Rust counter and
//! workerd only; `BENCH_JOURNAL_DIR=<dir>` puts the commit journal there (e.g. on a tmpfs, to see
//! what its fsyncs cost); `BENCH_ONLY=js` for the JavaScript counter and workerd only,
//! `BENCH_ONLY=py` for the Python counter only, `BENCH_ONLY=calls` for object-to-object calls only (beside workerd's DO-to-DO RPC when
//! installed); with `BENCH_ONLY=http`, `BENCH_ROWS=hot,new,warm` picks rows (`BENCH_ROWS=new` to profile one).

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::json;
use tokio::net::{TcpListener, TcpStream};
use wasmdo_host::directory::Directory;
use wasmdo_host::router::Address;

#[path = "shared/workerd.rs"]
mod shared;
use shared::Workerd;
#[path = "shared/load.rs"]
mod load;
use load::{Stats, http_load};

fn quick() -> bool {
    std::env::var_os("BENCH_QUICK").is_some()
}

impl Stats {
    fn line(&self) -> String {
        format!(
            "p50 {:>8.1} µs  p99 {:>8.1} µs  (n={})",
            self.pct(0.5).as_secs_f64() * 1e6,
            self.pct(0.99).as_secs_f64() * 1e6,
            self.samples.len()
        )
    }
}

/// Resident set size of a process, in KiB.
/// A process's memory: resident (VmRSS), proportional (PSS: a page mapped N times counts 1/N
/// each time, so shared memory images are counted once) and private anonymous, in KiB.
#[derive(Clone, Copy)]
struct Mem {
    rss: u64,
    pss: u64,
    anon: u64,
}

fn mem(pid: u32) -> Mem {
    let rollup = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).unwrap_or_default();
    let field = |name: &str| -> u64 {
        rollup
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    };
    Mem {
        rss: field("Rss:"),
        pss: field("Pss:"),
        anon: field("Anonymous:"),
    }
}

/// Memory growth per object between two snapshots.
fn per_object(before: Mem, after: Mem, objects: usize) -> String {
    let per = |a: u64, b: u64| a.saturating_sub(b) as f64 / objects.max(1) as f64;
    format!(
        "RSS +{:.1} KiB/object (PSS +{:.1}, private anon +{:.1})",
        per(after.rss, before.rss),
        per(after.pss, before.pss),
        per(after.anon, before.anon)
    )
}

/// Calls `method` on the warm object `address` `n` times, one at a time: the latencies, and the
/// fuel burned per call (0 with fuel metering off).
/// The text of a call's JSON arguments, as the gateway hands it to an object.
fn arguments(args: serde_json::Value) -> Bytes {
    Bytes::from(args.to_string())
}

async fn warm_calls(
    directory: &Arc<Directory>,
    class: &str,
    address: &Address,
    method: &str,
    args: &Bytes,
    n: usize,
) -> anyhow::Result<(Stats, u64)> {
    let mut samples = Vec::with_capacity(n);
    let fuel_before = directory.runtime().metrics().fuel.load(Ordering::Relaxed);
    for _ in 0..n {
        let start = Instant::now();
        directory.call(class, address, method, args.clone()).await?;
        samples.push(start.elapsed());
    }
    let fuel = directory.runtime().metrics().fuel.load(Ordering::Relaxed) - fuel_before;
    Ok((Stats::new(samples), fuel / n.max(1) as u64))
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

async fn trivial_server() -> SocketAddr {
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

/// workerd serving `config` (a file of bench/workerd) and the `module` it embeds.
fn start_workerd(config: &str, module: &str) -> anyhow::Result<Option<Workerd>> {
    shared::start_workerd(config, |root, dir| {
        std::fs::copy(root.join(module), dir.join(module))?;
        Ok(())
    })
}

/// Counts the durable syncs a target has issued so far (wasmdo: its commit journal's).
type Syncs<'a> = Option<&'a (dyn Fn() -> u64 + Sync)>;

/// " 1234 fsyncs/s (5.6 commits each)" over a load of `requests` that ran `secs`, when the target
/// reports its syncs.
fn sync_rate(syncs: Syncs<'_>, before: u64, requests: usize, secs: Duration) -> String {
    let Some(syncs) = syncs else {
        return String::new();
    };
    let issued = syncs().saturating_sub(before);
    format!(
        "  {:.0} fsyncs/s ({:.1} writes each)",
        issued as f64 / secs.as_secs_f64(),
        requests as f64 / issued.max(1) as f64
    )
}

/// The HTTP scenarios, run identically against each target.
async fn http_scenarios(label: &str, addr: SocketAddr, pid: u32, secs: Duration, syncs: Syncs<'_>) {
    let label = label.to_owned();
    let synced = || syncs.map_or(0, |f| f());
    // BENCH_ROWS=new or BENCH_ROWS=warm: that row alone (to profile it)
    let rows = std::env::var("BENCH_ROWS").unwrap_or_default();
    let row = |name: &str| rows.is_empty() || rows.split(',').any(|r| r == name);
    for connections in [1, 16].into_iter().filter(|_| row("hot")) {
        let (rate, stats) = http_load(
            addr,
            Arc::new(|_| "/rpc/counter/hot/get".to_string()),
            Some("[]"),
            connections,
            secs,
        )
        .await;
        println!(
            "{label:<9} hot object, read,          {connections:>2} conns: {rate:>8.0} req/s  {}",
            stats.line()
        );
        let before = synced();
        let (rate, stats) = http_load(
            addr,
            Arc::new(|_| "/rpc/counter/hot/increment".to_string()),
            Some("[1]"),
            connections,
            secs,
        )
        .await;
        println!(
            "{label:<9} hot object, durable write, {connections:>2} conns: {rate:>8.0} req/s  {}{}",
            stats.line(),
            sync_rate(syncs, before, stats.samples.len(), secs)
        );
    }
    if row("new") {
        new_objects(&label, addr, pid, secs, syncs).await;
    }
    if row("warm") {
        warm_objects(&label, addr, secs, syncs).await;
    }
}

/// Every request a durable write to a never-seen object.
async fn new_objects(label: &str, addr: SocketAddr, pid: u32, secs: Duration, syncs: Syncs<'_>) {
    let synced = || syncs.map_or(0, |f| f());
    let prefix = format!("fresh-{label}-{}", std::process::id());
    let before = mem(pid);
    let synced_before = synced();
    let (rate, stats) = http_load(
        addr,
        Arc::new(move |i| format!("/rpc/counter/{prefix}-{i}/increment")),
        Some("[1]"),
        16,
        secs,
    )
    .await;
    let after = mem(pid);
    println!(
        "{label:<9} new objects (write each),   16 conns: {rate:>8.0} objects/s  {}  {}{}",
        stats.line(),
        per_object(before, after, stats.samples.len()),
        sync_rate(syncs, synced_before, stats.samples.len(), secs)
    );
}

/// Many warm objects writing at once: each request a durable write to one of 1,000 objects,
/// every one of them activated (and written once) before the clock starts.
async fn warm_objects(label: &str, addr: SocketAddr, secs: Duration, syncs: Syncs<'_>) {
    let synced = || syncs.map_or(0, |f| f());
    const WARM: usize = 1_000;
    let prefix = format!("warm-{label}-{}", std::process::id());
    let paths: load::Paths = {
        let prefix = prefix.clone();
        Arc::new(move |i| format!("/rpc/counter/{prefix}-{}/increment", i % WARM))
    };
    let mut warmed = 0;
    while warmed < WARM {
        let (_, stats) = http_load(
            addr,
            paths.clone(),
            Some("[1]"),
            16,
            Duration::from_millis(500),
        )
        .await;
        warmed += stats.samples.len();
    }
    let synced_before = synced();
    let (rate, stats) = http_load(addr, paths, Some("[1]"), 16, secs).await;
    println!(
        "{label:<9} 1,000 warm objects, writes, 16 conns: {rate:>8.0} commits/s  {}{}",
        stats.line(),
        sync_rate(syncs, synced_before, stats.samples.len(), secs)
    );
}

/// A counter class in a guest language other than Rust, built by its SDK.
#[derive(Clone, Copy, PartialEq)]
enum Guest {
    /// `examples/counter-js`, built with guest-sdk-js (componentize-js).
    Js,
    /// `examples/counter-py`, built with guest-sdk-python (componentize-py).
    Py,
}

impl Guest {
    fn label(self) -> &'static str {
        match self {
            Guest::Js => "js",
            Guest::Py => "py",
        }
    }

    fn component(self) -> &'static str {
        match self {
            Guest::Js => wasmdo_test_artifacts::EXAMPLE_COUNTER_JS,
            Guest::Py => wasmdo_test_artifacts::EXAMPLE_COUNTER_PY,
        }
    }

    /// Builds the counter from source into `dir`; `cache`: let the SDK reuse an unchanged
    /// build (JavaScript only).
    fn build(self, dir: &Path, cache: bool) -> anyhow::Result<Duration> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let start = Instant::now();
        let status = match self {
            Guest::Js => {
                let mut cmd = std::process::Command::new("node");
                cmd.arg(root.join("guest-sdk-js/bin/wasmdo-js.mjs"))
                    .args(["build", "--quiet"])
                    .arg(root.join("examples/counter-js/src/counter.ts"))
                    .arg("-o")
                    .arg(dir.join("counter-js.wasm"));
                if !cache {
                    cmd.arg("--no-cache");
                }
                cmd.status()?
            }
            Guest::Py => std::process::Command::new("python3")
                .args(["-m", "wasmdo_py", "build"])
                .arg(root.join("examples/counter-py"))
                .arg("-o")
                .arg(dir.join("counter-py.wasm"))
                .env("PYTHONPATH", root.join("guest-sdk-python"))
                .stderr(std::process::Stdio::null())
                .status()?,
        };
        anyhow::ensure!(status.success(), "the {} build failed", self.label());
        Ok(start.elapsed())
    }
}

/// A guest-language counter: component size, build and compile times, activation, warm calls
/// and RSS per live object in-process, then the same HTTP scenarios as the Rust counter (workerd
/// runs the JavaScript class for comparison).
async fn guest_counter(guest: Guest, dir: &Path, secs: Duration) -> anyhow::Result<()> {
    let lang = guest.label();
    let path = guest.component();
    let fresh = guest.build(dir, false)?;
    let bytes = std::fs::read(path)?;
    let cached = match guest {
        Guest::Js => format!(
            ", {:.2} s unchanged (cache)",
            guest.build(dir, true)?.as_secs_f64()
        ),
        Guest::Py => String::new(),
    };
    println!(
        "{lang} counter component: {:.1} MB; build {:.1} s from scratch{cached}",
        bytes.len() as f64 / 1e6,
        fresh.as_secs_f64(),
    );

    let mut config = wasmdo_host::config::Config {
        listen: "127.0.0.1:0".parse()?,
        data: Some(dir.join(lang)),
        ..Default::default()
    };
    // a JS or Python instance holds a few MB: keep at most 1,000 live (LRU-evicted beyond)
    config.limits.max_live_objects = 1_000;
    config.limits.idle_timeout_ms = 600_000;
    let host = wasmdo_host::Host::start(config).await?;
    let deploy = |bytes: Vec<u8>| {
        let registry = host.registry().clone();
        async move {
            let start = Instant::now();
            registry
                .deploy("counter", bytes)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            anyhow::Ok(start.elapsed())
        }
    };
    let compile = deploy(bytes.clone()).await?;
    let precompiled = deploy(bytes).await?;
    println!(
        "{lang} counter deploy: compile {:.1} s; same bytes again (precompiled artifact) {:.0} ms",
        compile.as_secs_f64(),
        precompiled.as_secs_f64() * 1e3
    );

    let directory = host.directory().clone();
    let hot = Address::Name("hot".into());
    directory
        .call("counter", &hot, "increment", arguments(json!([1])))
        .await?;
    for (method, args, n) in [
        ("get", arguments(json!([])), 5_000),
        ("increment", arguments(json!([1])), 2_000),
    ] {
        let n = if quick() { n / 10 } else { n };
        let (stats, fuel) = warm_calls(&directory, "counter", &hot, method, &args, n).await?;
        println!(
            "{lang} in-process rpc, warm object, {method:<9}:        {}  {fuel} fuel/call",
            stats.line()
        );
    }
    if guest == Guest::Js {
        js_typed_and_dynamic(&host).await?;
        js_fuel_overhead(dir).await?;
    }
    let me = std::process::id();
    for (method, args) in [
        ("get", arguments(json!([]))),
        ("increment", arguments(json!([1]))),
    ] {
        let n = if quick() { 100 } else { 400 };
        let mut samples = Vec::with_capacity(n);
        let before = mem(me);
        for i in 0..n {
            let object = Address::Name(format!("{lang}-new-{method}-{i}"));
            let start = Instant::now();
            directory
                .call("counter", &object, method, args.clone())
                .await?;
            samples.push(start.elapsed());
        }
        let after = mem(me);
        println!(
            "{lang} activation of a never-seen object + {method:<9}: {}  {}",
            Stats::new(samples).line(),
            per_object(before, after, n),
        );
    }
    let addr = host.addr();
    let metrics = host.runtime().clone();
    tokio::spawn(host.serve());
    let syncs = move || metrics.metrics().journal_syncs.load(Ordering::Relaxed);
    http_scenarios(&format!("wasmdo-{lang}"), addr, me, secs, Some(&syncs)).await;
    Ok(())
}

/// The same trivial JavaScript method, typed (WIT values) and dynamic (by name, encoded values).
async fn js_typed_and_dynamic(host: &wasmdo_host::Host) -> anyhow::Result<()> {
    let directory = host.directory().clone();
    host.registry()
        .deploy("probe", std::fs::read(wasmdo_test_artifacts::JS_RUNTIME)?)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let probe = Address::Name("probe".into());
    for method in ["activationCount", "activationCountAny"] {
        let args = arguments(json!([]));
        directory
            .call("probe", &probe, method, args.clone())
            .await?;
        let n = if quick() { 200 } else { 2_000 };
        let (stats, fuel) = warm_calls(&directory, "probe", &probe, method, &args, n).await?;
        let how = if method.ends_with("Any") {
            "dynamic"
        } else {
            "typed"
        };
        println!(
            "js in-process rpc, warm object, {how:<7} {method:<19}: {}  {fuel} fuel/call",
            stats.line()
        );
    }
    Ok(())
}

/// Object-to-object calls (fixture `rpc_calls`, calling `types.add` through a typed stub made by
/// `get-by-name`):
/// - in-process: `calls.add-remote` (one call) against a direct RPC of `types.add`, the
///   difference being what one call between warm objects costs; and `calls.add-many` (n calls
///   in one event) against `add-many` of 0, divided by n;
/// - over HTTP, side by side with workerd's DO-to-DO JS RPC (bench/workerd/calls.js) when it is
///   installed: a request making n calls minus one making none, divided by n.
async fn object_calls(dir: &Path) -> anyhow::Result<()> {
    let mut config = wasmdo_host::config::Config {
        listen: "127.0.0.1:0".parse()?,
        data: Some(dir.join("calls")),
        ..Default::default()
    };
    let mut calls = wasmdo_host::config::ClassConfig::default();
    calls.bindings.insert("types".into(), "types".into());
    calls.bindings.insert("peer".into(), "calls".into());
    config.classes.insert("calls".into(), calls);
    let host = wasmdo_host::Host::start(config).await?;
    for (class, path) in [
        ("types", wasmdo_test_artifacts::RPC_TYPES),
        ("calls", wasmdo_test_artifacts::RPC_CALLS),
    ] {
        host.registry()
            .deploy(class, std::fs::read(path)?)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    let directory = host.directory().clone();
    let n = if quick() { 2_000 } else { 20_000 };
    let mut p50 = Vec::new();
    for (class, object, method, args) in [
        ("types", "x", "add", arguments(json!([1, 2]))),
        ("calls", "a", "add-remote", arguments(json!(["x", 1, 2]))),
    ] {
        let address = Address::Name(object.into());
        directory
            .call(class, &address, method, args.clone())
            .await?;
        let (stats, _) = warm_calls(&directory, class, &address, method, &args, n).await?;
        p50.push(stats.pct(0.5));
        println!(
            "object calls: {class}.{method:<10} (warm, in-process RPC): {}",
            stats.line()
        );
    }
    println!(
        "object calls: one call between warm objects adds p50 {:.1} µs (stub call + the callee's event)",
        p50[1].saturating_sub(p50[0]).as_secs_f64() * 1e6
    );
    let (many, rounds) = if quick() { (2_000, 3) } else { (10_000, 7) };
    let mut in_process = Caller::InProcess(directory);
    let per_call = many_calls(&mut in_process, many, rounds).await?;
    print_many_calls("wasmdo", "in-process", many, per_call);
    let mut targets = vec![("wasmdo", host.addr())];
    tokio::spawn(host.serve());
    let workerd = start_workerd("calls.capnp", "calls.js")?;
    if let Some(workerd) = &workerd {
        targets.push(("workerd", workerd.addr));
    }
    for (label, addr) in targets {
        let mut http = Caller::Http(Client::connect(addr).await?);
        let per_call = many_calls(&mut http, many, rounds).await?;
        print_many_calls(label, "over HTTP", many, per_call);
    }
    Ok(())
}

/// Where `calls.add-many` on the object `a` is called from.
enum Caller {
    InProcess(Arc<Directory>),
    Http(Client),
}

impl Caller {
    /// `add-many("x", n)`: how long it took, and its result.
    async fn add_many(&mut self, n: u32) -> anyhow::Result<(Duration, serde_json::Value)> {
        match self {
            Caller::InProcess(directory) => {
                let start = Instant::now();
                let caller = Address::Name("a".into());
                let sum = directory
                    .call("calls", &caller, "add-many", arguments(json!(["x", n])))
                    .await?;
                Ok((start.elapsed(), sum))
            }
            Caller::Http(client) => {
                let body = json!(["x", n]).to_string();
                client.post("/rpc/calls/a/add-many", body).await
            }
        }
    }
}

/// What one call costs when an object makes `n` of them in one event (`add-many`, which answers
/// their sum, 3 each): the median time of `add-many(n)` minus that of `add-many(0)` over
/// `rounds`, divided by `n`. The first request warms both objects up.
async fn many_calls(caller: &mut Caller, n: u32, rounds: usize) -> anyhow::Result<Duration> {
    caller.add_many(n / 10).await?;
    let (mut none, mut all) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        none.push(caller.add_many(0).await?.0);
        let (elapsed, sum) = caller.add_many(n).await?;
        anyhow::ensure!(sum == json!(3 * n), "{n} calls answered {sum}");
        all.push(elapsed);
    }
    let (none, all) = (Stats::new(none).pct(0.5), Stats::new(all).pct(0.5));
    Ok(all.saturating_sub(none) / n)
}

fn print_many_calls(label: &str, how: &str, n: u32, per_call: Duration) {
    println!(
        "object calls: {label:<7} {n} calls in one event ({how}): {:>5.1} µs per call, {:>7.0} calls/s",
        per_call.as_secs_f64() * 1e6,
        1.0 / per_call.as_secs_f64()
    );
}

/// One keep-alive HTTP/1 connection.
struct Client {
    sender: hyper::client::conn::http1::SendRequest<Full<Bytes>>,
}

impl Client {
    async fn connect(addr: SocketAddr) -> anyhow::Result<Client> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(conn);
        Ok(Client { sender })
    }

    /// POSTs `body` to `path`: how long until the whole reply was in, and the reply as JSON.
    async fn post(
        &mut self,
        path: &str,
        body: String,
    ) -> anyhow::Result<(Duration, serde_json::Value)> {
        let request = Request::post(path)
            .header("host", "bench")
            .body(Full::new(Bytes::from(body)))?;
        let start = Instant::now();
        let response = self.sender.send_request(request).await?;
        let status = response.status();
        let body = response.into_body().collect().await?.to_bytes();
        let elapsed = start.elapsed();
        anyhow::ensure!(status.is_success(), "status {status}: {body:?}");
        Ok((elapsed, serde_json::from_slice(&body)?))
    }
}

/// A warm JS call with fuel metering off (a second host): what metering costs SpiderMonkey.
async fn js_fuel_overhead(dir: &Path) -> anyhow::Result<()> {
    let host = start_host(
        dir.join("js-no-fuel"),
        |limits| limits.fuel_metering = false,
        "counter",
        wasmdo_test_artifacts::EXAMPLE_COUNTER_JS,
    )
    .await?;
    let directory = host.directory().clone();
    let hot = Address::Name("hot".into());
    directory
        .call("counter", &hot, "get", arguments(json!([])))
        .await?;
    let n = if quick() { 500 } else { 5_000 };
    let (stats, _) =
        warm_calls(&directory, "counter", &hot, "get", &arguments(json!([])), n).await?;
    println!(
        "js in-process rpc, warm object, get, fuel off: {}",
        stats.line()
    );
    Ok(())
}

/// Times `work(n)` (pure guest computation) and a trivial call with fuel metering on (the
/// default host) and off (a second host).
async fn fuel_overhead(metered: &Arc<Directory>, dir: &Path) -> anyhow::Result<()> {
    let runaway = wasmdo_test_artifacts::LIMITS_RUNAWAY;
    let host = start_host(
        dir.join("unmetered"),
        |limits| limits.fuel_metering = false,
        "runaway",
        runaway,
    )
    .await?;
    let unmetered = host.directory().clone();
    metered
        .runtime()
        .registry()
        .deploy("runaway", std::fs::read(runaway)?)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let object = Address::Name("cpu".into());
    let iterations = if quick() { 1_000_000 } else { 20_000_000 };
    let rounds = if quick() { 5 } else { 30 };
    let mut medians = Vec::new();
    for (label, directory) in [("fuel on ", metered), ("fuel off", &unmetered)] {
        directory
            .call("runaway", &object, "work", arguments(json!([1000])))
            .await?;
        let mut samples = Vec::new();
        for _ in 0..rounds {
            let start = Instant::now();
            directory
                .call("runaway", &object, "work", arguments(json!([iterations])))
                .await?;
            samples.push(start.elapsed());
        }
        let stats = Stats::new(samples);
        medians.push(stats.pct(0.5));
        println!(
            "cpu-bound guest work({iterations}), {label}: p50 {:>8.2} ms",
            stats.pct(0.5).as_secs_f64() * 1e3
        );
        let mut samples = Vec::new();
        for _ in 0..(if quick() { 2_000 } else { 20_000 }) {
            let start = Instant::now();
            directory
                .call("runaway", &object, "ok", arguments(json!([])))
                .await?;
            samples.push(start.elapsed());
        }
        println!(
            "trivial call, {label}:                   {}",
            Stats::new(samples).line()
        );
    }
    println!(
        "fuel metering overhead on CPU-bound Rust guest code: {:+.0}%",
        (medians[0].as_secs_f64() / medians[1].as_secs_f64() - 1.0) * 100.0
    );
    Ok(())
}

/// Starts a host on `data` with the default limits changed by `tune`, and deploys `class` from
/// the component at `path`.
async fn start_host(
    data: std::path::PathBuf,
    tune: impl FnOnce(&mut wasmdo_host::limits::Limits),
    class: &str,
    path: &str,
) -> anyhow::Result<wasmdo_host::Host> {
    let mut config = wasmdo_host::config::Config {
        listen: "127.0.0.1:0".parse()?,
        data: Some(data),
        // BENCH_JOURNAL_DIR: the commit journal elsewhere (a tmpfs shows what its fsyncs cost)
        journal_dir: std::env::var_os("BENCH_JOURNAL_DIR").map(Into::into),
        ..Default::default()
    };
    tune(&mut config.limits);
    let host = wasmdo_host::Host::start(config).await?;
    host.registry()
        .deploy(class, std::fs::read(path)?)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(host)
}

/// Re-activation of evicted objects whose databases exist: the first call after eviction
/// instantiates the class, runs `init`, opens the object's database and reads from it.
async fn reactivation(dir: &Path) -> anyhow::Result<()> {
    let host = start_host(
        dir.join("reactivation"),
        |limits| limits.idle_timeout_ms = 3_000,
        "counter",
        wasmdo_test_artifacts::EXAMPLE_COUNTER,
    )
    .await?;
    let directory = host.directory().clone();
    let n = if quick() { 200 } else { 1_000 };
    for i in 0..n {
        let object = Address::Name(format!("evicted-{i}"));
        directory
            .call("counter", &object, "increment", arguments(json!([1])))
            .await?;
    }
    while directory.live_objects() > 0 {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut samples = Vec::with_capacity(n);
    for i in 0..n {
        let object = Address::Name(format!("evicted-{i}"));
        let start = Instant::now();
        let value = directory
            .call("counter", &object, "get", arguments(json!([])))
            .await?;
        samples.push(start.elapsed());
        assert_eq!(value, json!(1));
    }
    println!(
        "re-activation of an evicted object + get (opens its database): {}",
        Stats::new(samples).line()
    );
    Ok(())
}

/// Alarm firing lag (scheduled time → handler start) with `pending` alarms in the schedule:
/// `pending - 1` far-future alarms of other objects are put straight into the schedule, then
/// probe objects set an alarm 5 ms ahead and we read back when their handler ran. Also the
/// memory each pending alarm costs.
async fn alarm_lag(dir: &Path, pending: usize) -> anyhow::Result<()> {
    let host = start_host(
        dir.join(format!("alarms-{pending}")),
        // the filler below is 100,000 schedule writes: don't fsync each
        |limits| limits.durable_commits = false,
        "probe",
        wasmdo_test_artifacts::ALARMS_BASIC,
    )
    .await?;
    let directory = host.directory().clone();
    let schedule = directory.runtime().schedule().clone();
    let far = now_ms() + 3_600_000;
    let me = std::process::id();
    let rss_before = rss_kib(me);
    for i in 1..pending {
        let key = wasmdo_host::ids::ObjectKey::new(
            "probe",
            directory.id_from_name("probe", &format!("filler-{i}"))?,
        );
        schedule
            .set(&key, None, far, 0)
            .map_err(|e| anyhow::anyhow!(e))?;
    }
    let rss_after = rss_kib(me);
    let probes = if quick() { 50 } else { 300 };
    let mut lags = Vec::with_capacity(probes);
    for i in 0..probes {
        let object = Address::Name(format!("probe-{i}"));
        let at = directory
            .call("probe", &object, "set-in", arguments(json!([5])))
            .await?
            .as_i64()
            .unwrap_or_default();
        let ran = loop {
            tokio::time::sleep(Duration::from_millis(2)).await;
            let deliveries = directory
                .call("probe", &object, "deliveries", arguments(json!([])))
                .await?;
            if let Some(d) = deliveries.as_array().and_then(|d| d.first()) {
                break d["at"].as_i64().unwrap_or_default();
            }
        };
        lags.push(Duration::from_millis((ran - at).max(0) as u64));
    }
    let stats = Stats::new(lags);
    println!(
        "alarm lag with {pending:>6} pending: p50 {:>3} ms  p99 {:>3} ms  (n={probes}; ms resolution)  {}",
        stats.pct(0.5).as_millis(),
        stats.pct(0.99).as_millis(),
        if pending > 1 {
            format!(
                "{:.0} bytes per pending alarm",
                (rss_after.saturating_sub(rss_before) * 1024) as f64 / (pending - 1) as f64
            )
        } else {
            String::new()
        }
    );
    Ok(())
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn main() -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    // measure from a task on the runtime, as the gateway's tasks are, not from the main thread
    // (every call would then pay a cross-thread wake-up the server never pays)
    runtime.block_on(async { tokio::spawn(run()).await? })
}

async fn run() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    if std::env::var("BENCH_ONLY").as_deref() == Ok("calls") {
        return object_calls(dir.path()).await;
    }
    if std::env::var("BENCH_ONLY").as_deref() == Ok("py") {
        let secs = Duration::from_secs(if quick() { 2 } else { 10 });
        return guest_counter(Guest::Py, dir.path(), secs).await;
    }
    if std::env::var("BENCH_ONLY").as_deref() == Ok("js") {
        let secs = Duration::from_secs(if quick() { 2 } else { 10 });
        guest_counter(Guest::Js, dir.path(), secs).await?;
        if let Some(workerd) = start_workerd("config.capnp", "counter.js")? {
            http_scenarios("workerd", workerd.addr, workerd.child.id(), secs, None).await;
        }
        return Ok(());
    }
    let host = start_host(
        dir.path().join("data"),
        |limits| {
            limits.max_live_objects = 5_000;
            // every live object may keep its database open (the defaults are 1,000 and 1,000):
            // the scenarios leave ~3,000 objects live, and a warm object should not reopen its
            // file for every write
            limits.max_open_databases = 5_000;
            limits.idle_timeout_ms = 600_000;
        },
        "counter",
        wasmdo_test_artifacts::EXAMPLE_COUNTER,
    )
    .await?;
    let directory = host.directory().clone();
    let addr = host.addr();
    tokio::spawn(host.serve());
    let me = std::process::id();
    if std::env::var("BENCH_ONLY").as_deref() == Ok("http") {
        // the HTTP rows only: the Rust counter beside workerd, in the same run
        let secs = Duration::from_secs(if quick() { 2 } else { 10 });
        let runtime = directory.runtime().clone();
        let syncs = move || runtime.metrics().journal_syncs.load(Ordering::Relaxed);
        http_scenarios("wasmdo", addr, me, secs, Some(&syncs)).await;
        if let Some(workerd) = start_workerd("config.capnp", "counter.js")? {
            http_scenarios("workerd", workerd.addr, workerd.child.id(), secs, None).await;
        }
        return Ok(());
    }

    println!(
        "machine: {} cores; wasmdo {}",
        std::thread::available_parallelism()?.get(),
        env!("CARGO_PKG_VERSION")
    );

    // in-process latency to a warm object
    let hot = Address::Name("hot".into());
    directory
        .call("counter", &hot, "increment", arguments(json!([1])))
        .await?;
    let n = if quick() { 2_000 } else { 20_000 };
    let (stats, fuel) =
        warm_calls(&directory, "counter", &hot, "get", &arguments(json!([])), n).await?;
    println!(
        "in-process rpc, warm object, read:                 {}  {fuel} fuel/call",
        stats.line()
    );
    let n = if quick() { 500 } else { 5_000 };
    let (stats, _) = warm_calls(
        &directory,
        "counter",
        &hot,
        "increment",
        &arguments(json!([1])),
        n,
    )
    .await?;
    println!(
        "in-process rpc, warm object, durable write:        {}",
        stats.line()
    );

    // activation of never-seen objects, one at a time
    for (method, args) in [
        ("get", arguments(json!([]))),
        ("increment", arguments(json!([1]))),
    ] {
        let n = if quick() { 300 } else { 2_000 };
        let mut samples = Vec::with_capacity(n);
        let before = mem(me);
        for i in 0..n {
            let object = Address::Name(format!("new-{method}-{i}"));
            let start = Instant::now();
            directory
                .call("counter", &object, method, args.clone())
                .await?;
            samples.push(start.elapsed());
        }
        let after = mem(me);
        println!(
            "activation of a never-seen object + {method:<9}:    {}  {}",
            Stats::new(samples).line(),
            per_object(before, after, n),
        );
    }
    println!("live objects: {}", directory.live_objects());

    reactivation(dir.path()).await?;
    object_calls(dir.path()).await?;
    for pending in [1, 1_000, 100_000] {
        alarm_lag(dir.path(), pending).await?;
    }
    fuel_overhead(&directory, dir.path()).await?;

    // HTTP on loopback, same load generator for every target
    let secs = Duration::from_secs(if quick() { 2 } else { 10 });
    let trivial = trivial_server().await;
    for connections in [1, 16] {
        let (rate, stats) = http_load(
            trivial,
            Arc::new(|_| "/".to_string()),
            Some("[]"),
            connections,
            secs,
        )
        .await;
        println!(
            "ceiling   trivial hyper handler,      {connections:>2} conns: {rate:>8.0} req/s  {}",
            stats.line()
        );
    }
    let runtime = directory.runtime().clone();
    let syncs = move || runtime.metrics().journal_syncs.load(Ordering::Relaxed);
    http_scenarios("wasmdo", addr, me, secs, Some(&syncs)).await;
    guest_counter(Guest::Js, dir.path(), secs).await?;
    // the Python counter in a process of its own (this one's three hosts hold thousands of open
    // databases: together they would exceed the open-file limit), still in this run
    let status = std::process::Command::new(std::env::current_exe()?)
        .arg("--bench")
        .env("BENCH_ONLY", "py")
        .status()?;
    anyhow::ensure!(status.success(), "the Python counter's bench failed");
    if let Some(workerd) = start_workerd("config.capnp", "counter.js")? {
        http_scenarios("workerd", workerd.addr, workerd.child.id(), secs, None).await;
    }
    let metrics = directory.runtime().metrics();
    let events = metrics.events.load(Ordering::Relaxed);
    let commits = metrics.batches.load(Ordering::Relaxed);
    println!(
        "wasmdo events per commit overall: {:.1} ({events} events, {commits} commits)",
        events as f64 / commits.max(1) as f64
    );
    Ok(())
}

//! Cluster mode on this machine: a throwaway PostgreSQL, three `wasmdo serve` hosts of one
//! cluster and one single host, all with the Rust counter, in one run.
//!
//! Rows: hot object durable writes (through its owner, and through another host that forwards),
//! the cost of forwarding (a read, one connection, owner vs another host), new objects per second
//! (connections spread over the three hosts), single host for comparison, the commits per second
//! PostgreSQL took, the commits per second the store sustains by itself (the production adapter
//! and statement, 1/16/64 objects at once, no host in the way), and the failover time after
//! kill -9 of an owner (until the object answers
//! through another host). `BENCH_QUICK=1`: shorter runs, 3 failovers instead of 20.
//!
//! `cargo bench -p wasmdo --bench cluster`

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[path = "shared/load.rs"]
mod load;
#[path = "../../tests/integration/postgres.rs"]
#[expect(
    dead_code,
    reason = "the bench uses the shared server only, not stopping it"
)]
mod postgres;
#[path = "shared/workerd.rs"]
mod shared;
use load::{Stats, http_load};

/// The lease the cluster runs with (the default).
const LEASE_MS: u64 = 2000;

fn quick() -> bool {
    std::env::var_os("BENCH_QUICK").is_some()
}

fn line(stats: &Stats) -> String {
    format!(
        "p50 {:>8.1} µs  p99 {:>8.1} µs  (n={})",
        stats.pct(0.5).as_secs_f64() * 1e6,
        stats.pct(0.99).as_secs_f64() * 1e6,
        stats.samples.len()
    )
}

/// A `wasmdo serve` process.
struct Server {
    child: Child,
    addr: SocketAddr,
    config: std::path::PathBuf,
    data: std::path::PathBuf,
}

impl Server {
    fn start(dir: &std::path::Path, name: &str, config: &str) -> anyhow::Result<Server> {
        let config_path = dir.join(format!("{name}.toml"));
        std::fs::write(&config_path, config)?;
        let data = dir.join(name);
        let mut server = Server {
            child: launch(&config_path, &data)?.0,
            addr: "127.0.0.1:0".parse()?,
            config: config_path,
            data,
        };
        server.restart_wait()?;
        Ok(server)
    }

    /// (Re)starts the process and waits for its listening line.
    fn restart_wait(&mut self) -> anyhow::Result<()> {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let (child, addr) = launch(&self.config, &self.data)?;
        self.child = child;
        self.addr = addr;
        Ok(())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn launch(config: &std::path::Path, data: &std::path::Path) -> anyhow::Result<(Child, SocketAddr)> {
    let log = std::fs::File::create(data.with_extension("log"))?;
    let mut child = Command::new(env!("CARGO_BIN_EXE_wasmdo"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data"])
        .arg(data)
        .arg("--config")
        .arg(config)
        .stdout(Stdio::piped())
        .stderr(Stdio::from(log))
        .spawn()?;
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let first = lines.next().transpose()?.unwrap_or_default();
    let url = first
        .strip_prefix("wasmdo listening on http://")
        .ok_or_else(|| anyhow::anyhow!("unexpected first line {first:?}"))?
        .to_owned();
    std::thread::spawn(move || for _ in lines {});
    Ok((child, url.parse()?))
}

/// One JSON call; the status.
fn call(addr: SocketAddr, path: &str, body: &str) -> u16 {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into();
    agent
        .post(format!("http://{addr}{path}"))
        .send(body.to_owned())
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
}

/// The id of the host that owns counter `name`.
fn owner(addr: SocketAddr, name: &str) -> String {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let text = agent
        .get(format!(
            "http://{addr}/_admin/cluster/objects/counter/{name}"
        ))
        .call()
        .and_then(|r| r.into_body().read_to_string())
        .unwrap_or_default();
    let json: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
    json["owner"].as_str().unwrap_or_default().to_owned()
}

/// Commits PostgreSQL has taken, all databases.
fn pg_commits(server: &str) -> u64 {
    let out = Command::new("psql")
        .arg(format!("{server}/postgres"))
        .args(["-At", "-c", "SELECT sum(xact_commit) FROM pg_stat_database"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    out.parse().unwrap_or(0)
}

fn main() -> anyhow::Result<()> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(run())
}

async fn run() -> anyhow::Result<()> {
    let secs = Duration::from_secs(if quick() { 3 } else { 10 });
    let dir = tempfile::tempdir()?;
    let server = postgres::postgres_server();
    let counter = wasmdo_test_artifacts::EXAMPLE_COUNTER;
    let classes = format!("[classes.counter]\ncomponent = {counter:?}\n");
    let cache = dir.path().join("compiled");
    let cluster_config = |id: &str| {
        format!(
            "compile-cache = {cache:?}\n[cluster]\npostgres = \"{server}/postgres\"\nhost-id = \"{id}\"\nlease-ms = {LEASE_MS}\n\n{classes}"
        )
    };
    let single = Server::start(
        dir.path(),
        "single",
        &format!("compile-cache = {cache:?}\n{classes}"),
    )?;
    let mut hosts = Vec::new();
    for id in ["a", "b", "c"] {
        hosts.push(Server::start(dir.path(), id, &cluster_config(id))?);
    }
    tokio::time::sleep(Duration::from_millis(LEASE_MS)).await;
    println!(
        "cluster bench: 3 hosts + PostgreSQL + 1 single host on {} cores, {} s per row",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        secs.as_secs()
    );

    // the peer, when bench/workerd is installed (`scripts/npm-deps bench/workerd`)
    let workerd = shared::start_workerd("config.capnp", |root, dir| {
        std::fs::copy(root.join("counter.js"), dir.join("counter.js"))?;
        Ok(())
    })?;
    if let Some(workerd) = &workerd {
        let (rate, stats) = http_load(
            workerd.addr,
            Arc::new(|_| "/rpc/counter/hot/increment".to_string()),
            Some("[1]"),
            16,
            secs,
        )
        .await;
        println!(
            "{:<20} hot object, durable write, 16 conns: {rate:>8.0} req/s  {}",
            "workerd",
            line(&stats)
        );
        let prefix = format!("new-workerd-{}", std::process::id());
        let (rate, stats) = http_load(
            workerd.addr,
            Arc::new(move |i| format!("/rpc/counter/{prefix}-{i}/increment")),
            Some("[1]"),
            16,
            secs,
        )
        .await;
        println!(
            "{:<20} new objects (write each),   16 conns: {rate:>8.0} objects/s  {}",
            "workerd",
            line(&stats)
        );
    }
    drop(workerd);

    // the hot object, owned by a
    let hot = "/rpc/counter/hot/increment";
    assert_eq!(call(hosts[0].addr, hot, "[1]"), 200);
    assert_eq!(call(single.addr, hot, "[1]"), 200);
    for (label, addr) in [
        ("single host", single.addr),
        ("cluster, owner", hosts[0].addr),
        ("cluster, forwarded", hosts[1].addr),
    ] {
        let before = pg_commits(server);
        let (rate, stats) =
            http_load(addr, Arc::new(|_| hot.to_string()), Some("[1]"), 16, secs).await;
        let commits = (pg_commits(server) - before) as f64 / secs.as_secs_f64();
        let pg = match label {
            "single host" => String::new(),
            _ => format!("  PostgreSQL {commits:.0} commits/s"),
        };
        println!(
            "{label:<20} hot object, durable write, 16 conns: {rate:>8.0} req/s  {}{pg}",
            line(&stats)
        );
    }
    // forwarding: a read (no commit), one connection
    let read = "/rpc/counter/hot/get";
    for (label, addr) in [("owner", hosts[0].addr), ("another host", hosts[1].addr)] {
        let (rate, stats) =
            http_load(addr, Arc::new(|_| read.to_string()), Some("[]"), 1, secs).await;
        println!(
            "cluster, read through {label:<13}  1 conn: {rate:>8.0} req/s  {}",
            line(&stats)
        );
    }
    // new objects: each request a never-seen object, connections spread over the hosts
    let run = std::process::id();
    let single_new = {
        let prefix = format!("new-single-{run}");
        http_load(
            single.addr,
            Arc::new(move |i| format!("/rpc/counter/{prefix}-{i}/increment")),
            Some("[1]"),
            16,
            secs,
        )
        .await
    };
    println!(
        "{:<20} new objects (write each),   16 conns: {:>8.0} objects/s  {}",
        "single host",
        single_new.0,
        line(&single_new.1)
    );
    let before = pg_commits(server);
    let mut loads = Vec::new();
    for (h, host) in hosts.iter().enumerate() {
        let prefix = format!("new-{run}-{h}");
        let addr = host.addr;
        loads.push(tokio::spawn(async move {
            http_load(
                addr,
                Arc::new(move |i| format!("/rpc/counter/{prefix}-{i}/increment")),
                Some("[1]"),
                6,
                secs,
            )
            .await
        }));
    }
    let mut rate = 0.0;
    let mut samples = Vec::new();
    for load in loads {
        let (r, stats) = load.await?;
        rate += r;
        samples.extend(stats.samples);
    }
    let commits = (pg_commits(server) - before) as f64 / secs.as_secs_f64();
    println!(
        "{:<20} new objects (write each), 3×6 conns: {rate:>8.0} objects/s  {}  PostgreSQL {commits:.0} commits/s",
        "cluster",
        line(&Stats::new(samples))
    );

    // the store by itself: the fenced commit of many objects at once, no host in the way
    for objects in [1, 16, 64] {
        let rate = wasmdo_host::measure_cluster_store(&format!("{server}/postgres"), objects, secs)
            .await
            .map_err(anyhow::Error::msg)?;
        println!(
            "{:<20} store alone, {objects:>2} objects committing at once: {rate:>8.0} commits/s",
            "PostgreSQL"
        );
    }

    // failover: kill -9 the owner of a fresh object, time until another host serves it
    let kills = if quick() { 3 } else { 20 };
    let mut failovers = Vec::new();
    for k in 0..kills {
        let name = format!("failover-{run}-{k}");
        let victim = k % 3;
        let path = format!("/rpc/counter/{name}/increment");
        assert_eq!(call(hosts[victim].addr, &path, "[1]"), 200);
        assert_eq!(owner(hosts[victim].addr, &name), ["a", "b", "c"][victim]);
        let survivor = hosts[(victim + 1) % 3].addr;
        let _ = hosts[victim].child.kill();
        let _ = hosts[victim].child.wait();
        let killed = Instant::now();
        while call(survivor, &path, "[1]") != 200 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        failovers.push(killed.elapsed());
        hosts[victim].restart_wait()?;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let failovers = Stats::new(failovers);
    println!(
        "failover after kill -9 of the owner (lease {LEASE_MS} ms), {kills} kills: p50 {:.2} s  p99 {:.2} s  max {:.2} s",
        failovers.pct(0.5).as_secs_f64(),
        failovers.pct(0.99).as_secs_f64(),
        failovers.samples.last().map_or(0.0, Duration::as_secs_f64)
    );
    Ok(())
}

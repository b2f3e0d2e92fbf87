//! Calls to one warm object (or activations of new ones) in process, for instruction counts:
//! `valgrind --tool=callgrind` counts instructions, not time, so two builds can be compared on a
//! noisy machine. Run it twice with different N and divide the difference by the difference of
//! N (start-up cancels out); see docs/BENCHMARKS.md.
//!
//! ```sh
//! cargo build --release -p wasmdo --example warm_calls
//! valgrind --tool=callgrind target/release/examples/warm_calls 1200   # N warm `get`s
//! valgrind --tool=callgrind target/release/examples/warm_calls 3 new  # N activations (N ≤ 3)
//! ```
//!
//! The host is small (4 live objects) so that valgrind can reserve its memory pool.

use wasmdo_host::router::Address;

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().unwrap_or_else(|| "1000".into()).parse()?;
    let activate = args.next().is_some();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async move { tokio::spawn(calls(n, activate)).await? })
}

async fn calls(n: usize, activate: bool) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let mut config = wasmdo_host::config::Config {
        listen: "127.0.0.1:0".parse()?,
        data: Some(dir.path().join("data")),
        ..Default::default()
    };
    config.limits.max_live_objects = 4;
    config.limits.max_memory_bytes = 64 << 20;
    let host = wasmdo_host::Host::start(config).await?;
    let counter = std::fs::read(wasmdo_test_artifacts::EXAMPLE_COUNTER)?;
    host.registry().deploy("counter", counter).await?;
    let directory = host.directory().clone();
    let hot = Address::Name("hot".into());
    directory
        .call(
            "counter",
            &hot,
            "increment",
            bytes::Bytes::from_static(b"[1]"),
        )
        .await?;
    for i in 0..n {
        let to = match activate {
            true => Address::Name(format!("new-{i}")),
            false => hot.clone(),
        };
        directory
            .call("counter", &to, "get", bytes::Bytes::from_static(b"[]"))
            .await?;
    }
    Ok(())
}

//! The `wasmdo` command: `serve` a host, `deploy` a component (or a Worker project) to one,
//! `call` an object's method, `dev` a Worker project.

mod client;
mod dev;

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use wasmdo::wrangler;
use wasmdo_host::config::Config;

use crate::client::{Tokens, authorize, encode, request, wit_url};

/// A self-hosted runtime for Durable Objects written in any WebAssembly language.
#[derive(Parser)]
#[command(name = "wasmdo", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Which host a client command talks to, and with what token.
#[derive(clap::Args)]
struct Remote {
    /// The host's URL.
    #[arg(long, env = "WASMDO_SERVER", default_value = "http://127.0.0.1:8080")]
    server: String,
    /// The host's `wasmdo.toml`, for its `admin-token` / `call-token` (WASMDO_ADMIN_TOKEN and
    /// WASMDO_CALL_TOKEN take precedence).
    #[arg(long, env = "WASMDO_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
}

impl Remote {
    fn tokens(&self) -> anyhow::Result<Tokens> {
        Tokens::load(self.config.as_deref())
    }
}

#[derive(Subcommand)]
enum Command {
    /// Run a host: classes from the data dir (and the config file) are served over HTTP.
    Serve {
        /// Address to listen on (port 0: any free port).
        #[arg(long)]
        listen: Option<std::net::SocketAddr>,
        /// Data directory (object databases, components, compiled artifacts) [default: ./data].
        #[arg(long)]
        data: Option<PathBuf>,
        /// Configuration file (`wasmdo.toml`): limits, class env vars, start-up deploys.
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Upload a component as class CLASS (a new version if it exists), or build a Worker
    /// project (`--project DIR`, with its wrangler.toml) and deploy it whole.
    #[command(
        override_usage = "wasmdo deploy <CLASS> <FILE> [--server URL]\n       \
                                wasmdo deploy --project <DIR> [--env NAME] [--server URL]"
    )]
    Deploy {
        /// Class name.
        #[arg(required_unless_present = "project", conflicts_with = "project")]
        class: Option<String>,
        /// The component (`.wasm`).
        #[arg(required_unless_present = "project")]
        file: Option<PathBuf>,
        /// A Worker project: the directory of its wrangler.toml / wrangler.jsonc / wrangler.json
        /// (or the file itself).
        #[arg(long, value_name = "DIR")]
        project: Option<PathBuf>,
        /// With --project: the wrangler environment (`[env.<NAME>]`) to deploy.
        #[arg(long, short, value_name = "NAME", requires = "project")]
        env: Option<String>,
        #[command(flatten)]
        remote: Remote,
    },
    /// Run a Worker project (wrangler.toml / wrangler.jsonc / wrangler.json) locally: build its
    /// Worker and Durable Object classes with wasmdo-js, serve them on a host of its own, and
    /// rebuild on every change.
    Dev {
        /// The project directory (or its config file).
        #[arg(default_value = ".")]
        dir: PathBuf,
        /// Address to listen on (port 0: any free port).
        #[arg(long, default_value = dev::DEFAULT_DEV_LISTEN)]
        listen: std::net::SocketAddr,
        /// Data directory (object databases, components) [default: <DIR>/.wasmdo/data].
        #[arg(long)]
        data: Option<PathBuf>,
        /// The wrangler environment (`[env.<NAME>]`) to run.
        #[arg(long, short, value_name = "NAME")]
        env: Option<String>,
        /// Host settings (`wasmdo.toml`): limits, compile cache, class settings.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Build and serve once; do not watch the project for changes.
        #[arg(long)]
        no_watch: bool,
        /// Build every class in full, as `wasmdo deploy` does (typed WIT RPC; tens of seconds
        /// per edit), instead of running the project's code on the development engines
        /// (an edit serves in about a second; every RPC method is called by name).
        #[arg(long)]
        full_build: bool,
    },
    /// Call METHOD on the object CLASS/NAME with a JSON array of arguments.
    Call {
        /// `class/name` of the object.
        object: String,
        /// Method name (`interface.method` when two interfaces share a name).
        method: String,
        /// Arguments as a JSON array, e.g. '[5]' [default: []].
        args: Option<String>,
        #[command(flatten)]
        remote: Remote,
    },
    /// Generate a typed client for a deployed class (from its WIT): `--lang ts` writes a
    /// TypeScript module over `fetch`, `--lang rust` a Rust module over `ureq`, `--lang wit-stub`
    /// the stub package another class imports to call it (`--binding NAME`), `--lang py-stub`
    /// typed stubs for a Python class.
    Bindgen {
        /// The class.
        class: String,
        /// What to generate: a client over HTTP (`ts`, `rust`) or a stub for objects calling
        /// objects (`wit-stub`, `rust-stub`, `ts-stub`, `py-stub`).
        #[arg(long, default_value = "ts")]
        lang: String,
        /// Write the client here instead of to stdout.
        #[arg(short, long)]
        out: Option<PathBuf>,
        /// With a stub language: the binding the stub is for (default: the class's
        /// name).
        #[arg(long)]
        binding: Option<String>,
        /// Read the class's WIT from this component file instead of asking the host.
        #[arg(long)]
        wasm: Option<PathBuf>,
        #[command(flatten)]
        remote: Remote,
    },
    /// Print the WIT of a deployed class's RPC interfaces (for `wit-bindgen`, `jco types`, …).
    Wit {
        /// The class.
        class: String,
        #[command(flatten)]
        remote: Remote,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve {
            listen,
            data,
            config,
        } => serve(listen, data, config),
        Command::Deploy {
            project: Some(dir),
            env,
            remote,
            ..
        } => report(remote.tokens().and_then(|tokens| {
            dev::deploy_project(
                &dir,
                &remote.server,
                env.as_deref(),
                tokens.admin().cloned(),
            )
        })),
        Command::Deploy {
            class,
            file,
            remote,
            ..
        } => {
            let (Some(class), Some(file)) = (class, file) else {
                bail!(
                    "give a class and its component (`wasmdo deploy CLASS FILE`) or a project (`wasmdo deploy --project DIR`)"
                );
            };
            let bytes =
                std::fs::read(&file).with_context(|| format!("cannot read {}", file.display()))?;
            let url = format!(
                "{}/_admin/classes/{}",
                remote.server.trim_end_matches('/'),
                encode(&class)
            );
            request("PUT", &url, bytes, remote.tokens()?.admin())
        }
        Command::Call {
            object,
            method,
            args,
            remote,
        } => {
            let Some((class, name)) = object.split_once('/') else {
                bail!("the object is `class/name`, e.g. `counter/alice`");
            };
            let args = args.unwrap_or_else(|| "[]".into());
            serde_json::from_str::<serde_json::Value>(&args).with_context(|| {
                format!("the arguments must be a JSON array, e.g. '[5]': {args}")
            })?;
            let url = format!(
                "{}/rpc/{}/{}/{}",
                remote.server.trim_end_matches('/'),
                encode(class),
                encode(name),
                encode(&method)
            );
            request("POST", &url, args.into_bytes(), remote.tokens()?.call())
        }
        Command::Bindgen {
            class,
            lang,
            out,
            binding,
            wasm,
            remote,
        } => {
            if !["ts", "rust", "wit-stub", "rust-stub", "ts-stub", "py-stub"]
                .contains(&lang.as_str())
            {
                bail!(
                    "`--lang {lang}` is not supported yet: the languages are `ts`, `rust` (clients over HTTP), and `wit-stub`, `rust-stub`, `ts-stub`, `py-stub` (stubs for objects calling objects)"
                );
            }
            let wit = match wasm {
                Some(file) => {
                    let bytes = std::fs::read(&file)
                        .with_context(|| format!("cannot read {}", file.display()))?;
                    wasmdo_host::class_wit(&bytes)
                        .map_err(anyhow::Error::from_boxed)
                        .with_context(|| format!("cannot read the WIT of {}", file.display()))?
                }
                None => {
                    let url = wit_url(&remote.server, &class);
                    let response = authorize(ureq::get(&url), remote.tokens()?.call())
                        .call()
                        .with_context(|| format!("cannot get the WIT of `{class}` from {url}"))?;
                    response.into_body().read_to_string()?
                }
            };
            let code = match lang.as_str() {
                "rust" => wasmdo_bindgen::rust(&wit, &class)?,
                "wit-stub" => {
                    wasmdo_bindgen::wit_stub(&wit, &class, binding.as_deref().unwrap_or(&class))?
                }
                "ts-stub" => {
                    wasmdo_bindgen::ts_stub(&wit, &class, binding.as_deref().unwrap_or(&class))?
                }
                "rust-stub" => {
                    wasmdo_bindgen::rust_stub(&wit, &class, binding.as_deref().unwrap_or(&class))?
                }
                "py-stub" => {
                    wasmdo_bindgen::py_stub(&wit, &class, binding.as_deref().unwrap_or(&class))?
                }
                _ => wasmdo_bindgen::typescript(&wit, &class)?,
            };
            match out {
                Some(path) => std::fs::write(&path, code)
                    .with_context(|| format!("cannot write {}", path.display()))?,
                None => print!("{code}"),
            }
            Ok(())
        }
        Command::Dev {
            dir,
            listen,
            data,
            env,
            config,
            no_watch,
            full_build,
        } => report(dev::dev(dev::DevOptions {
            dir,
            env,
            listen: Some(listen),
            data,
            config,
            watch: !no_watch,
            full_build,
        })),
        Command::Wit { class, remote } => {
            let url = wit_url(&remote.server, &class);
            request("GET", &url, Vec::new(), remote.tokens()?.call())
        }
    }
}

fn serve(
    listen: Option<std::net::SocketAddr>,
    data: Option<PathBuf>,
    config_path: Option<PathBuf>,
) -> anyhow::Result<()> {
    init_logging();
    let mut config = match &config_path {
        Some(path) => Config::load(path)?,
        None => Config::default(),
    };
    if let Some(listen) = listen {
        config.listen = listen;
    }
    if let Some(data) = data {
        config.data = Some(data);
    }
    config.tokens_from_env();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let host = wasmdo_host::Host::start(config).await?;
        // the first line on stdout is the contract scripts and tests wait for
        println!("wasmdo listening on http://{}", host.addr());
        if let Some(public) = host.public_addr() {
            println!("  public (entry Worker only) on http://{public}");
        }
        for class in host.registry().list() {
            println!(
                "  class {} v{} ({} methods)",
                class.name,
                class.version,
                class.describe()["methods"].as_array().map_or(0, Vec::len)
            );
        }
        use std::io::Write;
        std::io::stdout().flush()?;
        host.serve_until(shutdown_signal()).await;
        Ok::<_, anyhow::Error>(())
    })?;
    // what is left (a blocking task in the middle of something) does not hold the exit up
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    Ok(())
}

/// SIGTERM or Ctrl-C: the host shuts down (answers what it is serving, closes its WebSockets
/// with 1001, leaves its cluster) and exits with 0.
async fn shutdown_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(e) => {
                tracing::warn!("cannot handle SIGTERM: {e}");
                std::future::pending::<()>().await
            }
        }
    };
    tokio::select! {
        () = terminate => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    tracing::info!("shutting down");
}

/// Logs to stderr (`WASMDO_LOG`, default `info`), and raises the open-file limit a host needs.
fn init_logging() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("WASMDO_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    // Object databases hold file descriptors: take the whole hard limit, as servers do.
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => tracing::debug!("file descriptor limit: {limit}"),
        Err(e) => tracing::warn!("cannot raise the file descriptor limit: {e}"),
    }
}

/// Ends a project command: an error is printed as `error: …` lines (one per mistake in a
/// config file) and the process exits with status 1.
fn report(result: anyhow::Result<()>) -> anyhow::Result<()> {
    let Err(e) = result else { return Ok(()) };
    dev::print_error(&e);
    std::process::exit(1);
}

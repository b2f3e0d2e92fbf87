//! Cloudflare Worker projects on the command line: `wasmdo dev [DIR]` builds a wrangler project
//! with wasmdo-js, runs it on an in-process host and rebuilds it on change; `wasmdo deploy
//! --project DIR` builds it and deploys it to a running host.
//!
//! A build (`.wasmdo/build/` in the project):
//! 1. **analyse**: `wasmdo-js wit <main> --class C` for every Durable Object class, which checks
//!    that `main` exports it (a missing class is reported at the config key that names it) and
//!    gives the class's WIT;
//! 2. **stubs**: for every binding `B → C`, the stub package `stubs/B.wit` from C's WIT
//!    ([`wasmdo_bindgen::wit_stub`]), so every class and the Worker get typed RPC stubs
//!    and `fetch` for every binding (Cloudflare's `env` is shared by the whole project; a class
//!    may bind itself);
//! 3. **build**: `wasmdo-js build` of every class (`classes/C.wasm`) and of the Worker
//!    (`worker.wasm`, `--worker`), two at a time; wasmdo-js's cache makes unchanged ones instant.
//!
//! A deploy uploads each component (`PUT /_admin/components`) and then the project's manifest
//! (`PUT /_admin/projects/{name}`: classes with their env and bindings, migrations, the entry
//! Worker); the host applies it as a whole.

mod build;
mod watch;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde_json::Value;

use wasmdo_protocol::manifest::{ClassManifest, Manifest};

use wasmdo_host::config::Token;

use crate::client::{Admin, encode};
use crate::wrangler::{self, ConfigErrors, Project};

use build::{Built, build, build_dev, parallel};
use watch::watch;

/// The address `wasmdo dev` listens on by default, as `wrangler dev` does.
pub(crate) const DEFAULT_DEV_LISTEN: &str = "127.0.0.1:8787";

/// A project's config file read and validated; warnings and notes printed to stderr.
pub(crate) fn load(path: &Path, env: Option<&str>) -> anyhow::Result<Project> {
    let (file, passed_over) = wrangler::find(path)?;
    if let Some(warning) = passed_over {
        eprintln!("warning: {warning}");
    }
    let project = wrangler::load(&file, env)?;
    for note in &project.notes {
        eprintln!("note: {note}");
    }
    for warning in &project.warnings {
        eprintln!("warning: {warning}");
    }
    Ok(project)
}

/// The wasmdo-js CLI: `$WASMDO_JS`, else the project's `node_modules/wasmdo`, else the SDK in
/// the repository this binary was built from.
pub(crate) fn find_sdk(project_dir: &Path) -> anyhow::Result<PathBuf> {
    if let Some(path) = std::env::var_os("WASMDO_JS") {
        let path = PathBuf::from(path);
        if !path.is_file() {
            bail!(
                "WASMDO_JS={}: no such file (it names guest-sdk-js's bin/wasmdo-js.mjs)",
                path.display()
            );
        }
        // absolute: node runs in the project directory
        return path
            .canonicalize()
            .with_context(|| format!("WASMDO_JS={}", path.display()));
    }
    let project_dir = project_dir
        .canonicalize()
        .with_context(|| format!("cannot open {}", project_dir.display()))?;
    // the project's own install, or (a project in an npm workspace) one up to 3 levels up
    let mut candidates: Vec<PathBuf> = project_dir
        .ancestors()
        .take(4)
        .map(|dir| dir.join("node_modules/wasmdo/bin/wasmdo-js.mjs"))
        .collect();
    candidates
        .push(Path::new(env!("CARGO_MANIFEST_DIR")).join("../guest-sdk-js/bin/wasmdo-js.mjs"));
    for candidate in &candidates {
        if candidate.is_file() {
            let sdk_dir = candidate
                .parent()
                .and_then(Path::parent)
                .unwrap_or(Path::new("."));
            if !sdk_dir
                .join("node_modules/@bytecodealliance/componentize-js")
                .is_dir()
                && !sdk_dir
                    .join("../@bytecodealliance/componentize-js")
                    .is_dir()
            {
                bail!(
                    "found wasmdo-js at {}, but its dependencies are not installed: run `npm install` in {}",
                    candidate.display(),
                    sdk_dir.display()
                );
            }
            return candidate
                .canonicalize()
                .with_context(|| format!("cannot open {}", candidate.display()));
        }
    }
    bail!(
        "cannot find wasmdo-js, which builds JavaScript and TypeScript for wasmdo: install it in the \
         project (`npm install --save-dev <wasmdo repository>/guest-sdk-js`) or set WASMDO_JS to its \
         bin/wasmdo-js.mjs"
    )
}

/// The host's project manifest for `project` whose components were uploaded as `hashes`
/// (class → content hash; the Worker under its own name). A development build's code
/// (`dev_source`) goes to every class and the Worker in env vars the code does not see: the
/// bundle, the class's name, the names of the JSON vars and those of the bindings.
pub(crate) fn manifest(
    project: &Project,
    hashes: &BTreeMap<String, String>,
    dev_source: Option<&str>,
) -> Manifest {
    let mut env: BTreeMap<String, String> = project
        .vars
        .iter()
        .map(|(name, var)| (name.clone(), var.as_env()))
        .collect();
    if let Some(source) = dev_source {
        let json_vars: Vec<&str> = project.json_vars().collect();
        env.insert("WASMDO_DEV_SOURCE".into(), source.to_owned());
        env.insert(
            "WASMDO_DEV_JSON_VARS".into(),
            serde_json::to_string(&json_vars).expect("a list of strings"),
        );
        let bindings: Vec<&str> = project.bindings.iter().map(|b| b.name.as_str()).collect();
        env.insert(
            "WASMDO_DEV_BINDINGS".into(),
            serde_json::to_string(&bindings).expect("a list of strings"),
        );
    }
    let bindings: BTreeMap<String, String> = project
        .bindings
        .iter()
        .map(|b| (b.name.clone(), b.class_name.clone()))
        .collect();
    let classes = hashes
        .iter()
        .map(|(class, hash)| {
            let mut env = env.clone();
            if dev_source.is_some() {
                env.insert("WASMDO_DEV_CLASS".into(), class.clone());
            }
            let class_manifest = ClassManifest {
                component: hash.clone(),
                env,
                bindings: bindings.clone(),
            };
            (class.clone(), class_manifest)
        })
        .collect();
    Manifest {
        name: Some(project.name.clone()),
        entry: Some(project.name.clone()),
        classes,
        migrations: project.migrations.clone(),
    }
}

/// Uploads the components of `built` and deploys the project to the host at `server`; the
/// host's reply.
fn deploy(server: &str, token: Option<&Token>, built: &Built) -> anyhow::Result<Value> {
    let admin = Admin::new(server, token.cloned());
    let project = &built.project;
    let components: Vec<(&str, &PathBuf)> = built
        .classes
        .iter()
        .map(|(class, file)| (class.as_str(), file))
        .chain([(project.name.as_str(), &built.worker)])
        .collect();
    // the host compiles each new component before it answers: two uploads at a time
    let uploads = parallel(&components, |(class, file)| {
        let bytes =
            std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
        let reply = admin.send("PUT", "/_admin/components", "application/wasm", &bytes)?;
        let hash = reply["hash"]
            .as_str()
            .with_context(|| format!("the host's answer to an upload has no hash: {reply}"))?;
        anyhow::Ok((class.to_string(), hash.to_owned()))
    });
    let hashes = uploads
        .into_iter()
        .collect::<anyhow::Result<BTreeMap<_, _>>>()?;
    let manifest = manifest(project, &hashes, built.dev_source.as_deref());
    let path = format!("/_admin/projects/{}", encode(&project.name));
    admin.send(
        "PUT",
        &path,
        "application/json",
        &serde_json::to_vec(&manifest)?,
    )
}

/// `wasmdo deploy --project DIR`.
pub(crate) fn deploy_project(
    dir: &Path,
    server: &str,
    env: Option<&str>,
    token: Option<Token>,
) -> anyhow::Result<()> {
    let project = load(dir, env)?;
    let sdk = find_sdk(&project.dir)?;
    let built = build(project, &sdk)?;
    eprintln!("wasmdo: deploying {} to {server}", built.project.name);
    let reply = deploy(server, token.as_ref(), &built)?;
    println!("{}", serde_json::to_string_pretty(&reply)?);
    Ok(())
}

/// Prints an error as `error: …` lines: one per mistake in a config file.
pub(crate) fn print_error(e: &anyhow::Error) {
    match e.downcast_ref::<ConfigErrors>() {
        Some(errors) => {
            for error in &errors.0 {
                eprintln!("error: {error}");
            }
        }
        None => eprintln!("error: {e:#}"),
    }
}

/// `wasmdo dev`'s options.
pub(crate) struct DevOptions {
    pub(crate) dir: PathBuf,
    pub(crate) env: Option<String>,
    pub(crate) listen: Option<SocketAddr>,
    pub(crate) data: Option<PathBuf>,
    pub(crate) config: Option<PathBuf>,
    pub(crate) watch: bool,
    /// Build every class in full (typed WIT RPC, as `wasmdo deploy` does) instead of running
    /// the project on the development engines.
    pub(crate) full_build: bool,
}

/// `wasmdo dev`: validate, build, start a host, deploy to it, print the URL, serve (and rebuild
/// on change). The first stdout line, `wasmdo dev: <name> ready on http://<addr>`, comes once the
/// project is deployed; scripts and tests wait for it.
pub(crate) fn dev(options: DevOptions) -> anyhow::Result<()> {
    let project = load(&options.dir, options.env.as_deref())?;
    let sdk = find_sdk(&project.dir)?;
    let mut config = match &options.config {
        Some(path) => wasmdo_host::config::Config::load(path)?,
        None => wasmdo_host::config::Config::default(),
    };
    config.listen = options
        .listen
        .unwrap_or_else(|| DEFAULT_DEV_LISTEN.parse().expect("valid address"));
    if let Some(data) = options.data {
        config.data = Some(data);
    } else if config.data.is_none() {
        config.data = Some(project.dir.join(".wasmdo/data"));
    }
    config.tokens_from_env();
    let token = config.admin_token.clone();
    let data = config.data_dir();
    // the host writes there all the time: never a reason to rebuild
    let host_dirs = [data.clone(), config.compile_cache_dir()];
    let built = if options.full_build {
        build(project, &sdk)?
    } else {
        build_dev(project, &sdk, true)?
    };

    crate::init_logging();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let host = wasmdo_host::Host::start(config).await?;
        let mut addr = host.addr();
        if addr.ip().is_unspecified() {
            addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
        }
        let server = format!("http://{addr}");
        tokio::spawn(host.serve());
        eprintln!(
            "wasmdo: deploying {} (data in {})",
            built.project.name,
            data.display()
        );
        let deployed = {
            let server = server.clone();
            let token = token.clone();
            tokio::task::spawn_blocking(move || {
                deploy(&server, token.as_ref(), &built).map(|_| built)
            })
            .await??
        };
        // the first line on stdout is the contract scripts and tests wait for
        println!("wasmdo dev: {} ready on {server}", deployed.project.name);
        use std::io::Write;
        std::io::stdout().flush()?;
        if options.watch {
            tokio::task::spawn_blocking(move || {
                let target = (server.as_str(), token.as_ref());
                watch(deployed, &sdk, options.env.as_deref(), target, &host_dirs)
            })
            .await?
        } else {
            std::future::pending().await
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_manifest_gives_every_class_the_project_env_and_bindings() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("index.ts"), "").unwrap();
        let file = dir.path().join("wrangler.toml");
        std::fs::write(
            &file,
            r#"
name = "chat"
main = "index.ts"
vars = { GREETING = "hi", LIMIT = { n = 2 } }
durable_objects.bindings = [{ name = "ROOMS", class_name = "ChatRoom" }]
migrations = [{ tag = "v1", new_sqlite_classes = ["ChatRoom"] }]
"#,
        )
        .unwrap();
        let project = wrangler::load(&file, None).unwrap();
        let hashes = BTreeMap::from([
            ("ChatRoom".to_owned(), "aa".to_owned()),
            ("chat".to_owned(), "bb".to_owned()),
        ]);
        let class = json!({
            "env": { "GREETING": "hi", "LIMIT": "{\"n\":2}" },
            "bindings": { "ROOMS": "ChatRoom" },
        });
        let with = |hash: &str| {
            let mut c = class.clone();
            c["component"] = json!(hash);
            c
        };
        assert_eq!(
            serde_json::to_value(manifest(&project, &hashes, None)).unwrap(),
            json!({
                "name": "chat",
                "entry": "chat",
                "classes": { "ChatRoom": with("aa"), "chat": with("bb") },
                "migrations": [{
                    "tag": "v1", "new_classes": [], "new_sqlite_classes": ["ChatRoom"],
                    "renamed_classes": [], "deleted_classes": []
                }],
            })
        );
    }
}

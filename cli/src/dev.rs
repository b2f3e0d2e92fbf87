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

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, bail};
use serde_json::Value;

use wasmdo_protocol::manifest::{ClassManifest, Manifest};

use crate::client::{Admin, encode};
use crate::wrangler::{self, ClassUse, ConfigErrors, Project};

/// The address `wasmdo dev` listens on by default, as `wrangler dev` does.
pub(crate) const DEFAULT_DEV_LISTEN: &str = "127.0.0.1:8787";

/// Builds run at once (each is a Node process; componentize-js is single-threaded).
const BUILD_JOBS: usize = 2;

/// How often `wasmdo dev` looks for changed files.
const WATCH_INTERVAL: Duration = Duration::from_millis(500);

/// Directories the watcher never looks into: build output, dependencies, VCS.
const UNWATCHED: &[&str] = &[".wasmdo", "node_modules", ".git", ".wrangler", "target"];

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

/// A built project: its components, ready to deploy.
pub(crate) struct Built {
    pub(crate) project: Project,
    /// The Worker's component.
    pub(crate) worker: PathBuf,
    /// Each Durable Object class's component.
    pub(crate) classes: BTreeMap<String, PathBuf>,
}

/// What one wasmdo-js run is for, in messages.
#[derive(Clone)]
enum Target {
    Class(String),
    Worker,
}

impl Target {
    fn label(&self) -> String {
        match self {
            Target::Class(class) => class.clone(),
            Target::Worker => "Worker".into(),
        }
    }
}

/// Where a build runs: the project directory (absolute: wasmdo-js runs in it), its
/// `.wasmdo/build`, its `main` and the wasmdo-js CLI.
struct Workspace<'a> {
    dir: PathBuf,
    out: PathBuf,
    main: PathBuf,
    sdk: &'a Path,
}

impl Workspace<'_> {
    /// `node <wasmdo-js> <args>` in the project directory.
    fn wasmdo_js(&self, command: &str) -> Command {
        let mut node = Command::new("node");
        node.arg(self.sdk)
            .arg(command)
            .arg(&self.main)
            .current_dir(&self.dir);
        node
    }

    /// Where the component of `target` is built.
    fn output(&self, target: &Target) -> PathBuf {
        match target {
            Target::Class(class) => self.out.join("classes").join(format!("{class}.wasm")),
            Target::Worker => self.out.join("worker.wasm"),
        }
    }
}

/// Builds every class and the Worker of `project` into `<project>/.wasmdo/build`.
pub(crate) fn build(project: Project, sdk: &Path) -> anyhow::Result<Built> {
    let started = Instant::now();
    let dir = project
        .dir
        .canonicalize()
        .with_context(|| format!("cannot open {}", project.dir.display()))?;
    let out = dir.join(".wasmdo/build");
    std::fs::create_dir_all(out.join("classes"))
        .and_then(|()| std::fs::create_dir_all(out.join("stubs")))
        .with_context(|| format!("cannot create {}", out.display()))?;
    // build output and data stay out of version control, as wrangler's .wrangler/ does
    let ignore = dir.join(".wasmdo/.gitignore");
    if !ignore.exists() {
        let _ = std::fs::write(&ignore, "*\n");
    }
    let workspace = Workspace {
        main: dir.join(&project.main),
        dir,
        out,
        sdk,
    };
    let classes = project.classes();
    let wits = analyse(&workspace, &project, &classes)?;
    let bindings = stub_bindings(&workspace, &project, &wits)?;
    let mut targets: Vec<Target> = classes
        .iter()
        .map(|c| Target::Class(c.name.clone()))
        .collect();
    targets.push(Target::Worker);
    build_components(&workspace, &project, &targets, &bindings)?;
    eprintln!("wasmdo: built in {:.1} s", started.elapsed().as_secs_f64());
    Ok(Built {
        worker: workspace.output(&Target::Worker),
        classes: classes
            .iter()
            .map(|c| {
                let file = workspace.output(&Target::Class(c.name.clone()));
                (c.name.clone(), file)
            })
            .collect(),
        project,
    })
}

/// Step 1: `wasmdo-js wit` of every class: its WIT, by class. A class `main` does not export is
/// a mistake in the config, reported at the key that names it.
fn analyse(
    workspace: &Workspace<'_>,
    project: &Project,
    classes: &[ClassUse],
) -> anyhow::Result<BTreeMap<String, String>> {
    if !classes.is_empty() {
        let names: Vec<&str> = classes.iter().map(|c| c.name.as_str()).collect();
        eprintln!("wasmdo: analysing {}", names.join(", "));
    }
    let analysed = parallel(classes, |class| {
        let mut command = workspace.wasmdo_js("wit");
        command.arg("--class").arg(&class.name);
        run(command, &Target::Class(class.name.clone()), false)
    });
    let (mut unexported, mut failed) = (Vec::new(), Vec::new());
    let mut wits = BTreeMap::new();
    for (class, result) in classes.iter().zip(analysed) {
        let message = match result {
            Ok(wit) => {
                wits.insert(class.name.clone(), wit);
                continue;
            }
            Err(message) => message,
        };
        let Some(exported) = exports_from(&message) else {
            failed.push(format!("class {}: {}", class.name, message.trim_end()));
            continue;
        };
        let exports = if exported.is_empty() {
            "the module exports no Durable Object class".to_owned()
        } else {
            format!("the module exports {}", exported.join(", "))
        };
        let problem = match &class.created_by {
            Some(migration) => format!(
                "class \"{}\" is created by {migration} but not exported by {}; {exports}",
                class.name, project.main
            ),
            None => format!(
                "class \"{}\" is not exported by {} and not created by any migration; {exports}",
                class.name, project.main
            ),
        };
        unexported.push(project.diagnostic(&class.path, problem));
    }
    if !failed.is_empty() {
        failed.extend(unexported.iter().map(ToString::to_string));
        bail!(failed.join("\n"));
    }
    if !unexported.is_empty() {
        return Err(ConfigErrors(unexported).into());
    }
    Ok(wits)
}

/// Step 2: the `--binding` argument of every binding: `NAME=<stub.wit>` with the typed stub
/// package written from the bound class's WIT, or `NAME` (fetch only) for a class without RPC
/// methods (or one whose interface cannot have a stub).
fn stub_bindings(
    workspace: &Workspace<'_>,
    project: &Project,
    wits: &BTreeMap<String, String>,
) -> anyhow::Result<Vec<String>> {
    let mut arguments = Vec::new();
    for binding in &project.bindings {
        let wit = class_package(&wits[&binding.class_name]);
        if !wit.contains(": func(") {
            arguments.push(binding.name.clone());
            continue;
        }
        match wasmdo_bindgen::wit_stub(&wit, &binding.class_name, &binding.name) {
            Ok(stub) => {
                let file = workspace
                    .out
                    .join("stubs")
                    .join(format!("{}.wit", binding.name));
                write_if_changed(&file, stub.as_bytes())?;
                arguments.push(format!("{}={}", binding.name, file.display()));
            }
            Err(e) => {
                let warning = project.diagnostic(
                    &binding.path,
                    format!(
                        "env.{} gets fetch only, no RPC methods: {:#}",
                        binding.name,
                        anyhow::Error::from(e)
                    ),
                );
                eprintln!("warning: {warning}");
                arguments.push(binding.name.clone());
            }
        }
    }
    Ok(arguments)
}

/// Step 3: `wasmdo-js build` of every target, [`BUILD_JOBS`] at a time, each with every binding,
/// module rule and JSON var of the project.
fn build_components(
    workspace: &Workspace<'_>,
    project: &Project,
    targets: &[Target],
    bindings: &[String],
) -> anyhow::Result<()> {
    eprintln!(
        "wasmdo: building {} ({BUILD_JOBS} at a time)",
        targets
            .iter()
            .map(Target::label)
            .collect::<Vec<_>>()
            .join(", ")
    );
    let results = parallel(targets, |target| {
        let mut command = workspace.wasmdo_js("build");
        match target {
            Target::Class(class) => command.arg("--class").arg(class),
            Target::Worker => command.arg("--worker"),
        };
        command.arg("-o").arg(workspace.output(target));
        for binding in bindings {
            command.arg("--binding").arg(binding);
        }
        for rule in &project.rules {
            for glob in &rule.globs {
                command
                    .arg("--rule")
                    .arg(format!("{}={glob}", rule.kind.as_str()));
            }
        }
        for (name, var) in &project.vars {
            if matches!(var, wrangler::Var::Json(_)) {
                command.arg("--json-var").arg(name);
            }
        }
        run(command, target, true)
    });
    let errors: Vec<String> = targets
        .iter()
        .zip(results)
        .filter_map(|(target, result)| {
            let message = result.err()?;
            Some(format!(
                "building {} failed: {}",
                target.label(),
                message.trim_end()
            ))
        })
        .collect();
    if !errors.is_empty() {
        bail!(errors.join("\n"));
    }
    Ok(())
}

/// Runs a wasmdo-js command: its stdout, or its error message (stderr). With `progress`, its
/// stderr is passed on line by line as it comes, tagged with the target.
fn run(mut command: Command, target: &Target, progress: bool) -> Result<String, String> {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run node (Node.js 20 or later is needed): {e}"))?;
    let stderr = child.stderr.take().expect("piped");
    let label = target.label();
    let errors = std::thread::spawn(move || {
        let mut text = String::new();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if progress {
                eprintln!(
                    "  [{label}] {}",
                    line.strip_prefix("wasmdo-js: ").unwrap_or(&line)
                );
            }
            text.push_str(&line);
            text.push('\n');
        }
        text
    });
    let mut stdout = String::new();
    let _ = child
        .stdout
        .take()
        .expect("piped")
        .read_to_string(&mut stdout);
    let status = child.wait().map_err(|e| e.to_string())?;
    let errors = errors.join().unwrap_or_default();
    if status.success() {
        Ok(stdout)
    } else {
        Err(failure(&errors))
    }
}

/// wasmdo-js's failure message in its stderr: from its last `wasmdo-js: ` line (progress lines
/// come before) to the end, without the prefix; a crash's whole output.
fn failure(stderr: &str) -> String {
    let lines: Vec<&str> = stderr.lines().collect();
    match lines.iter().rposition(|l| l.starts_with("wasmdo-js: ")) {
        Some(at) => {
            let mut message = lines[at..].join("\n");
            message.drain(.."wasmdo-js: ".len());
            message
        }
        None => stderr.trim_end().to_owned(),
    }
}

/// Runs `f` over `items`, [`BUILD_JOBS`] at a time; the results in the items' order.
fn parallel<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let next = AtomicUsize::new(0);
    let mut results: Vec<(usize, R)> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..BUILD_JOBS.min(items.len()))
            .map(|_| {
                scope.spawn(|| {
                    let mut done = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(item) = items.get(i) else { break };
                        done.push((i, f(item)));
                    }
                    done
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().expect("a build thread panicked"))
            .collect()
    });
    results.sort_by_key(|(i, _)| *i);
    results.into_iter().map(|(_, r)| r).collect()
}

/// The classes `main` exports, from wasmdo-js's message that it does not export the one asked
/// for (`... exports no Durable Object class \`X\`; it exports A, B`); empty if it exports none;
/// `None` for any other error.
fn exports_from(message: &str) -> Option<Vec<String>> {
    if let Some((_, list)) = message.split_once("; it exports ") {
        return Some(list.trim().split(", ").map(str::to_owned).collect());
    }
    message
        .contains("exports no Durable Object class:")
        .then(Vec::new)
}

/// The class's own WIT package from `wasmdo-js wit` (which prints the package and the world
/// the class is built against): the package alone, as a component's WIT reads.
fn class_package(wit: &str) -> String {
    let mut out = String::new();
    let mut depth = 0usize;
    let mut in_world = false;
    for line in wit.lines() {
        let trimmed = line.trim_start();
        if depth == 0 && trimmed.starts_with("world ") {
            in_world = true;
        }
        if !in_world && !trimmed.starts_with("//") {
            out.push_str(line);
            out.push('\n');
        }
        depth += line.matches('{').count();
        depth = depth.saturating_sub(line.matches('}').count());
        if depth == 0 {
            in_world = false;
        }
    }
    out
}

/// Writes `file` unless it already holds `bytes` (an unchanged stub keeps its mtime).
fn write_if_changed(file: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    if std::fs::read(file).is_ok_and(|old| old == bytes) {
        return Ok(());
    }
    std::fs::write(file, bytes).with_context(|| format!("cannot write {}", file.display()))
}

/// The host's project manifest for `project` whose components were uploaded as `hashes`
/// (class → content hash; the Worker under its own name).
pub(crate) fn manifest(project: &Project, hashes: &BTreeMap<String, String>) -> Manifest {
    let env: BTreeMap<String, String> = project
        .vars
        .iter()
        .map(|(name, var)| (name.clone(), var.as_env()))
        .collect();
    let bindings: BTreeMap<String, String> = project
        .bindings
        .iter()
        .map(|b| (b.name.clone(), b.class_name.clone()))
        .collect();
    let classes = hashes
        .iter()
        .map(|(class, hash)| {
            let class_manifest = ClassManifest {
                component: hash.clone(),
                env: env.clone(),
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
pub(crate) fn deploy(server: &str, built: &Built) -> anyhow::Result<Value> {
    let admin = Admin::new(server);
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
    let manifest = manifest(project, &hashes);
    let path = format!("/_admin/projects/{}", encode(&project.name));
    admin.send(
        "PUT",
        &path,
        "application/json",
        &serde_json::to_vec(&manifest)?,
    )
}

/// `wasmdo deploy --project DIR`.
pub(crate) fn deploy_project(dir: &Path, server: &str, env: Option<&str>) -> anyhow::Result<()> {
    let project = load(dir, env)?;
    let sdk = find_sdk(&project.dir)?;
    let built = build(project, &sdk)?;
    eprintln!("wasmdo: deploying {} to {server}", built.project.name);
    let reply = deploy(server, &built)?;
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
    let data = config.data_dir();
    // the host writes there all the time: never a reason to rebuild
    let host_dirs = [data.clone(), config.compile_cache_dir()];
    let built = build(project, &sdk)?;

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
            tokio::task::spawn_blocking(move || deploy(&server, &built).map(|_| built)).await??
        };
        // the first line on stdout is the contract scripts and tests wait for
        println!("wasmdo dev: {} ready on {server}", deployed.project.name);
        use std::io::Write;
        std::io::stdout().flush()?;
        if options.watch {
            tokio::task::spawn_blocking(move || {
                watch(deployed, &sdk, options.env.as_deref(), &server, &host_dirs)
            })
            .await?
        } else {
            std::future::pending().await
        }
    })
}

/// Rebuilds and redeploys the project whenever a file in it changes (outside `host_dirs`); a
/// failed rebuild or deploy is reported and the previous version keeps serving.
fn watch(
    current: Built,
    sdk: &Path,
    env: Option<&str>,
    server: &str,
    host_dirs: &[PathBuf],
) -> anyhow::Result<()> {
    let mut name = current.project.name;
    let config_file = current.project.file;
    let dir = current.project.dir.canonicalize()?;
    let skip: Vec<PathBuf> = host_dirs
        .iter()
        .filter_map(|d| d.canonicalize().ok())
        .collect();
    let snapshot = || snapshot(&dir, &skip);
    let mut seen = snapshot();
    loop {
        std::thread::sleep(WATCH_INTERVAL);
        let now = snapshot();
        if now == seen {
            continue;
        }
        // wait for the editor (or git checkout) to finish writing
        let mut settled = now;
        loop {
            std::thread::sleep(WATCH_INTERVAL);
            let again = snapshot();
            if again == settled {
                break;
            }
            settled = again;
        }
        let changed = changed_files(&seen, &settled);
        seen = settled;
        eprintln!("wasmdo: {} changed: rebuilding", changed.join(", "));
        let result = load(&config_file, env)
            .and_then(|project| build(project, sdk))
            .and_then(|built| {
                deploy(server, &built)?;
                Ok(built)
            });
        match result {
            Ok(built) => {
                name = built.project.name;
                println!("wasmdo dev: {name} reloaded");
            }
            Err(e) => {
                print_error(&e);
                eprintln!("wasmdo: still serving the previous version of {name}");
            }
        }
    }
}

/// Every watched file under `dir` (not under `skip`) with its modification time and size.
fn snapshot(dir: &Path, skip: &[PathBuf]) -> BTreeMap<PathBuf, (SystemTime, u64)> {
    let mut files = BTreeMap::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let Ok(meta) = entry.metadata() else { continue };
            if meta.is_dir() {
                let name = entry.file_name();
                if !UNWATCHED.iter().any(|u| name == *u) && !skip.contains(&path) {
                    stack.push(path);
                }
            } else if let Ok(modified) = meta.modified() {
                files.insert(path, (modified, meta.len()));
            }
        }
    }
    files
}

/// The files added, removed or changed between two snapshots, relative to nothing in particular
/// (their file names), for the message.
fn changed_files(
    before: &BTreeMap<PathBuf, (SystemTime, u64)>,
    after: &BTreeMap<PathBuf, (SystemTime, u64)>,
) -> Vec<String> {
    let mut changed: Vec<String> = after
        .iter()
        .filter(|(path, stamp)| before.get(*path) != Some(stamp))
        .chain(before.iter().filter(|(path, _)| !after.contains_key(*path)))
        .map(|(path, _)| {
            path.file_name()
                .map_or_else(String::new, |n| n.to_string_lossy().into_owned())
        })
        .collect();
    changed.dedup();
    changed.truncate(5);
    changed
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_class_package_is_the_wit_without_its_world() {
        let wit = "// Generated by wasmdo-js from class ChatRoom; do not edit.\n\
                   package js:chat-room;\n\n\
                   interface chat-room {\n  record js-error { name: string, message: string }\n  post: func(text: string) -> result<_, js-error>;\n}\n\n\
                   world chat-room-object {\n  include wasmdo:object/durable-object@0.1.0;\n  export chat-room;\n}\n";
        let package = class_package(wit);
        assert!(package.starts_with("package js:chat-room;"), "{package}");
        assert!(!package.contains("world"), "{package}");
        let stub = wasmdo_bindgen::wit_stub(&package, "ChatRoom", "ROOMS").unwrap();
        assert!(stub.contains("package binding:rooms;"), "{stub}");
        assert!(
            stub.contains("post: func(text: string) -> result<result<_, js-error>, call-error>;"),
            "{stub}"
        );
    }

    #[test]
    fn exports_are_read_from_the_analysis_error() {
        assert_eq!(
            exports_from(
                "src/index.ts exports no Durable Object class `Chatroom`; it exports ChatRoom, RateLimiter"
            ),
            Some(vec!["ChatRoom".to_owned(), "RateLimiter".to_owned()])
        );
        assert_eq!(
            exports_from(
                "src/index.ts exports no Durable Object class: export a class that extends DurableObject"
            ),
            Some(vec![])
        );
        assert_eq!(exports_from("src/index.ts(3,1): something else"), None);
    }

    #[test]
    fn the_failure_is_wasmdo_js_last_message_whole() {
        let stderr = "wasmdo-js: class A: 1 RPC method(s)\nwasmdo-js: componentize-js failed: x\nSyntaxError: y\n";
        assert_eq!(failure(stderr), "componentize-js failed: x\nSyntaxError: y");
        assert_eq!(failure("node: crashed\n  at z\n"), "node: crashed\n  at z");
    }

    #[test]
    fn parallel_keeps_the_order() {
        let items: Vec<u32> = (0..7).collect();
        assert_eq!(parallel(&items, |i| i * 2), [0, 2, 4, 6, 8, 10, 12]);
        assert!(parallel(&[] as &[u32], |i| *i).is_empty());
    }

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
            serde_json::to_value(manifest(&project, &hashes)).unwrap(),
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

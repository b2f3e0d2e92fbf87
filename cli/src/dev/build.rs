//! Building a project with wasmdo-js into `.wasmdo/build/`: the three steps of the module doc
//! (analyse, stubs, build), each running wasmdo-js [`BUILD_JOBS`] times at once.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use anyhow::{Context, bail};

use crate::wrangler::{ClassUse, ConfigErrors, Project};

/// Builds run at once (each is a Node process; componentize-js is single-threaded).
const BUILD_JOBS: usize = 2;

/// A built project: its components, ready to deploy.
pub(super) struct Built {
    pub(super) project: Project,
    /// The Worker's component.
    pub(super) worker: PathBuf,
    /// Each Durable Object class's component.
    pub(super) classes: BTreeMap<String, PathBuf>,
    /// A development build's code (the bundle the engines evaluate), `None` for a full build.
    pub(super) dev_source: Option<String>,
}

/// What one wasmdo-js run is for, in messages.
#[derive(Clone)]
enum Target {
    Class(String),
    Worker,
    /// A development engine: of a class (`worker` false) or of a Worker.
    Engine {
        worker: bool,
    },
    /// A development build's bundle.
    Bundle,
}

impl Target {
    fn label(&self) -> String {
        match self {
            Target::Class(class) => class.clone(),
            Target::Worker => "Worker".into(),
            Target::Engine { worker: false } => "class engine".into(),
            Target::Engine { worker: true } => "Worker engine".into(),
            Target::Bundle => "dev bundle".into(),
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

    /// Where the component (or bundle) of `target` is built.
    fn output(&self, target: &Target) -> PathBuf {
        match target {
            Target::Class(class) => self.out.join("classes").join(format!("{class}.wasm")),
            Target::Worker => self.out.join("worker.wasm"),
            Target::Engine { worker: false } => self.out.join("dev/object.wasm"),
            Target::Engine { worker: true } => self.out.join("dev/worker.wasm"),
            Target::Bundle => self.out.join("dev/bundle.js"),
        }
    }

    /// The wasmdo-js command that builds `target` (a development build's parts).
    fn dev_command(&self, target: &Target, project: &Project) -> Command {
        let mut command = match target {
            Target::Engine { worker } => {
                let mut command = self.wasmdo_js("dev-engine");
                command.arg(if *worker { "--worker" } else { "--object" });
                command
            }
            _ => {
                let mut command = self.wasmdo_js("dev-bundle");
                add_rules(&mut command, project);
                command
            }
        };
        command.arg("-o").arg(self.output(target));
        command
    }
}

/// The project's module rules as wasmdo-js arguments.
fn add_rules(command: &mut Command, project: &Project) {
    for rule in &project.rules {
        for glob in &rule.globs {
            command
                .arg("--rule")
                .arg(format!("{}={glob}", rule.kind.as_str()));
        }
    }
}

/// The workspace of `project`: `.wasmdo/build` made (and kept out of version control).
fn workspace<'a>(project: &Project, sdk: &'a Path) -> anyhow::Result<Workspace<'a>> {
    let dir = project
        .dir
        .canonicalize()
        .with_context(|| format!("cannot open {}", project.dir.display()))?;
    let out = dir.join(".wasmdo/build");
    for sub in ["classes", "stubs", "dev"] {
        std::fs::create_dir_all(out.join(sub))
            .with_context(|| format!("cannot create {}", out.display()))?;
    }
    // build output and data stay out of version control, as wrangler's .wrangler/ does
    let ignore = dir.join(".wasmdo/.gitignore");
    if !ignore.exists() {
        let _ = std::fs::write(&ignore, "*\n");
    }
    Ok(Workspace {
        main: dir.join(&project.main),
        dir,
        out,
        sdk,
    })
}

/// A development build (`wasmdo dev`): the two development engines (built once, then from
/// wasmdo-js's cache), every class and the Worker running on them, and the project's code as one
/// bundle they evaluate. `check` also analyses every class first, as a full build does (a class
/// `main` does not export is reported at the config key that names it); an edit skips that.
/// Every RPC method is then reached by name, as on Cloudflare.
pub(super) fn build_dev(project: Project, sdk: &Path, check: bool) -> anyhow::Result<Built> {
    let started = Instant::now();
    let workspace = workspace(&project, sdk)?;
    let classes = project.classes();
    if check {
        analyse(&workspace, &project, &classes)?;
    }
    let mut targets = vec![Target::Bundle];
    if check {
        targets.extend([
            Target::Engine { worker: false },
            Target::Engine { worker: true },
        ]);
    }
    let results = parallel(&targets, |target| {
        run(workspace.dev_command(target, &project), target, check)
    });
    all_built(&targets, results)?;
    let bundle = workspace.output(&Target::Bundle);
    let source = std::fs::read_to_string(&bundle)
        .with_context(|| format!("cannot read {}", bundle.display()))?;
    eprintln!(
        "wasmdo: built in {:.1} s (development engines: wasmdo deploy builds each class in full)",
        started.elapsed().as_secs_f64()
    );
    let engine = workspace.output(&Target::Engine { worker: false });
    Ok(Built {
        worker: workspace.output(&Target::Engine { worker: true }),
        classes: classes
            .iter()
            .map(|c| (c.name.clone(), engine.clone()))
            .collect(),
        dev_source: Some(source),
        project,
    })
}

/// Builds every class and the Worker of `project` into `<project>/.wasmdo/build`.
pub(super) fn build(project: Project, sdk: &Path) -> anyhow::Result<Built> {
    let started = Instant::now();
    let workspace = workspace(&project, sdk)?;
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
        dev_source: None,
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
                for note in analysis_notes(&wit) {
                    eprintln!("  [{}] {note}", class.name);
                }
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
            _ => command.arg("--worker"),
        };
        command.arg("-o").arg(workspace.output(target));
        for binding in bindings {
            command.arg("--binding").arg(binding);
        }
        add_rules(&mut command, project);
        for name in project.json_vars() {
            command.arg("--json-var").arg(name);
        }
        run(command, target, true)
    });
    all_built(targets, results)
}

/// Fails with every target's error (one line each) if any of `results` is an error.
fn all_built(targets: &[Target], results: Vec<Result<String, String>>) -> anyhow::Result<()> {
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
pub(super) fn parallel<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
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

/// What wasmdo-js's analysis wants the user to know about a class (a plain class, a method left
/// out of RPC and why): its `// note:` lines in the class's WIT.
fn analysis_notes(wit: &str) -> impl Iterator<Item = &str> {
    wit.lines()
        .filter_map(|line| line.trim_start().strip_prefix("// note: "))
}

/// The classes `main` exports, from wasmdo-js's message that it does not export the one asked
/// for (`... exports no Durable Object class \`X\`; it exports A, B`); empty if it exports none;
/// `None` for any other error.
fn exports_from(message: &str) -> Option<Vec<String>> {
    if let Some((_, list)) = message.split_once("; it exports ") {
        if list.trim() == "no class" {
            return Some(Vec::new());
        }
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

#[cfg(test)]
mod tests {
    use super::*;

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
}

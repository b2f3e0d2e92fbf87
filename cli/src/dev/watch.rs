//! `wasmdo dev`'s file watcher: the project's files polled, and rebuilt and redeployed on change.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use wasmdo_host::config::Token;

use super::build::{Built, build, build_dev};
use super::{deploy, load, print_error};

/// How often `wasmdo dev` looks for changed files (a walk of the project's files without its
/// dependencies: a few hundred `stat`s), and how long they must then stay unchanged.
const WATCH_INTERVAL: Duration = Duration::from_millis(100);

/// Directories the watcher never looks into: build output, dependencies, VCS.
const UNWATCHED: &[&str] = &[".wasmdo", "node_modules", ".git", ".wrangler", "target"];

/// Rebuilds and redeploys the project whenever a file in it changes (outside `host_dirs`); a
/// failed rebuild or deploy is reported and the previous version keeps serving.
pub(super) fn watch(
    current: Built,
    sdk: &Path,
    env: Option<&str>,
    (server, token): (&str, Option<&Token>),
    host_dirs: &[PathBuf],
) -> anyhow::Result<()> {
    let current_dev = current.dev_source.is_some();
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
        // a development build re-analyses the classes only when the config changed
        let config_name = config_file.file_name().map(|n| n.to_string_lossy());
        let config_changed = changed
            .iter()
            .any(|f| Some(f.as_str()) == config_name.as_deref());
        let result = load(&config_file, env)
            .and_then(|project| {
                if current_dev {
                    build_dev(project, sdk, config_changed)
                } else {
                    build(project, sdk)
                }
            })
            .and_then(|built| {
                deploy(server, token, &built)?;
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

//! A Cloudflare Worker project's wrangler configuration (`wrangler.toml`, `wrangler.jsonc`,
//! `wrangler.json`), read into one typed [`Project`] and validated before anything is built.
//!
//! Every key wrangler knows has a treatment here ([`KEYS`](keys::KEYS), the same table as
//! `docs/WRANGLER.md`): honoured, accepted without effect (a note), or ignored (a warning naming
//! the key). Mistakes are [`Diagnostic`]s naming the file, the key path and what to do, e.g.
//! `wrangler.toml: durable_objects.bindings[1].name: "ROOMS" is also durable_objects.bindings[0].name; ...`.
//! Checks that need the module itself (is a class exported?) are made by the build
//! (`dev/build.rs`), which reports them with the key path from [`Project::classes`].

mod check;
mod jsonc;
mod keys;
mod read;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde_json::Value;
use wasmdo_protocol::manifest::Migration;

use jsonc::strip_jsonc;
use read::Cx;

/// The config file names wasmdo looks for in a project directory, in wrangler's order of
/// preference.
pub const CONFIG_FILES: [&str; 3] = ["wrangler.json", "wrangler.jsonc", "wrangler.toml"];

/// A message about one key of a config file: `<file>: <key path>: <message>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub file: String,
    /// The key path, e.g. `durable_objects.bindings[1].class_name`; empty for the whole file.
    pub path: String,
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            write!(f, "{}: {}", self.file, self.message)
        } else {
            write!(f, "{}: {}: {}", self.file, self.path, self.message)
        }
    }
}

/// Everything wrong with a config file, one diagnostic a line.
#[derive(Debug)]
pub struct ConfigErrors(pub Vec<Diagnostic>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, error) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// A validated wrangler project.
#[derive(Debug)]
pub struct Project {
    /// The config file, as found (`examples/chat-worker/wrangler.toml`).
    pub file: PathBuf,
    /// The directory holding it; `main` and rule globs are relative to it.
    pub dir: PathBuf,
    /// The Worker's name: the project's name on the host and its entry Worker's class name.
    pub name: String,
    /// `main` as written (`src/index.ts`).
    pub main: String,
    /// `[vars]`, by name.
    pub vars: BTreeMap<String, Var>,
    /// `durable_objects.bindings`, in order.
    pub bindings: Vec<Binding>,
    /// `[[migrations]]`, in order.
    pub migrations: Vec<Migration>,
    /// `[[rules]]`, in order.
    pub rules: Vec<Rule>,
    /// Keys ignored (warnings) and keys without effect (notes).
    pub warnings: Vec<Diagnostic>,
    pub notes: Vec<Diagnostic>,
    /// Where each class alive after the migrations was created (`migrations[0].new_sqlite_classes[1]`).
    created: BTreeMap<String, String>,
}

/// A `[vars]` value: text, or any other JSON value (which the Worker sees parsed).
#[derive(Debug, Clone, PartialEq)]
pub enum Var {
    Text(String),
    Json(Value),
}

impl Var {
    /// The value as the host passes it (every env value is a string): text as is, JSON as its
    /// JSON text.
    pub fn as_env(&self) -> String {
        match self {
            Var::Text(text) => text.clone(),
            Var::Json(value) => value.to_string(),
        }
    }
}

/// `durable_objects.bindings[i]`: `env.<name>` is the namespace of `class_name`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    pub name: String,
    pub class_name: String,
    /// Its key path, for messages (`durable_objects.bindings[0]`).
    pub path: String,
}

/// One `[[rules]]` entry: modules matching `globs` are imported as `kind`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub kind: RuleKind,
    pub globs: Vec<String>,
    /// Whether later rules of the same type still apply in wrangler. wasmdo-js always keeps
    /// wrangler's default rules after the project's, which only makes more imports work.
    pub fallthrough: bool,
}

/// The module types wasmdo-js can import.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleKind {
    /// A string.
    Text,
    /// An `ArrayBuffer`.
    Data,
}

impl RuleKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RuleKind::Text => "Text",
            RuleKind::Data => "Data",
        }
    }
}

/// A Durable Object class the project builds, and the key that first names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClassUse {
    pub name: String,
    pub path: String,
    /// The key of the migration that creates it, if one does.
    pub created_by: Option<String>,
}

impl Project {
    /// The names of the vars that are not strings (the code sees them JSON-parsed).
    pub fn json_vars(&self) -> impl Iterator<Item = &str> {
        self.vars
            .iter()
            .filter(|(_, var)| matches!(var, Var::Json(_)))
            .map(|(name, _)| name.as_str())
    }

    /// The Durable Object classes to build: every bound class, then every class the migrations
    /// leave alive that no binding names.
    pub fn classes(&self) -> Vec<ClassUse> {
        let mut classes: Vec<ClassUse> = Vec::new();
        for binding in &self.bindings {
            if !classes.iter().any(|c| c.name == binding.class_name) {
                classes.push(ClassUse {
                    name: binding.class_name.clone(),
                    path: format!("{}.class_name", binding.path),
                    created_by: self.created.get(&binding.class_name).cloned(),
                });
            }
        }
        for (class, path) in &self.created {
            if !classes.iter().any(|c| &c.name == class) {
                classes.push(ClassUse {
                    name: class.clone(),
                    path: path.clone(),
                    created_by: Some(path.clone()),
                });
            }
        }
        classes
    }

    /// The `main` module's path.
    pub fn main_path(&self) -> PathBuf {
        self.dir.join(&self.main)
    }

    /// `<file>: <path>: <message>`.
    pub fn diagnostic(&self, path: &str, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            file: display(&self.file),
            path: path.to_owned(),
            message: message.into(),
        }
    }
}

/// The config file of the project at `path`: the file itself, or the first of [`CONFIG_FILES`]
/// in the directory (a warning names any other it passed over).
pub fn find(path: &Path) -> anyhow::Result<(PathBuf, Option<String>)> {
    if path.is_file() {
        return Ok((path.to_owned(), None));
    }
    if !path.is_dir() {
        anyhow::bail!("{}: no such project directory", path.display());
    }
    let found: Vec<PathBuf> = CONFIG_FILES
        .iter()
        .map(|name| path.join(name))
        .filter(|file| file.is_file())
        .collect();
    let Some(first) = found.first() else {
        anyhow::bail!(
            "{}: no wrangler.toml, wrangler.jsonc or wrangler.json here: is this a Worker project?",
            path.display()
        );
    };
    let warning = (found.len() > 1).then(|| {
        format!(
            "{}: using it, not {} (wrangler's order: wrangler.json, wrangler.jsonc, wrangler.toml)",
            display(first),
            found[1..]
                .iter()
                .map(|f| display(f))
                .collect::<Vec<_>>()
                .join(", ")
        )
    });
    Ok((first.clone(), warning))
}

/// Reads and validates the config file `file`, with the named environment `env` (`[env.<name>]`)
/// applied if given.
pub fn load(file: &Path, env: Option<&str>) -> Result<Project, ConfigErrors> {
    let text = std::fs::read_to_string(file).map_err(|e| {
        ConfigErrors(vec![Diagnostic {
            file: display(file),
            path: String::new(),
            message: format!("cannot read it: {e}"),
        }])
    })?;
    parse(file, &text, env)
}

/// A path for messages, without a leading `./`.
fn display(path: &Path) -> String {
    let text = path.display().to_string();
    text.strip_prefix("./").map(str::to_owned).unwrap_or(text)
}

/// Validates the config `text` of the file `file`; `main` is looked for next to `file`.
pub fn parse(file: &Path, text: &str, env: Option<&str>) -> Result<Project, ConfigErrors> {
    let mut cx = Cx {
        file: display(file),
        errors: Vec::new(),
        warnings: Vec::new(),
        notes: Vec::new(),
    };
    let is_json = file
        .extension()
        .is_some_and(|e| e == "json" || e == "jsonc");
    let root: Result<Value, String> = if is_json {
        serde_json::from_str(&strip_jsonc(text)).map_err(|e| e.to_string())
    } else {
        toml::from_str(text).map_err(|e| e.to_string().trim_end().to_owned())
    };
    let root = match root {
        Ok(Value::Object(map)) => map,
        Ok(_) => {
            cx.error("", "the configuration must be a table (an object)");
            return Err(ConfigErrors(cx.errors));
        }
        Err(e) => {
            cx.error(
                "",
                format!("not valid {}: {e}", if is_json { "JSON" } else { "TOML" }),
            );
            return Err(ConfigErrors(cx.errors));
        }
    };
    let dir = file
        .parent()
        .map(Path::to_owned)
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or_else(|| PathBuf::from("."));
    let keys = cx.select_env(&root, env);

    let mut project = Project {
        file: file.to_owned(),
        dir,
        name: String::new(),
        main: String::new(),
        vars: BTreeMap::new(),
        bindings: Vec::new(),
        migrations: Vec::new(),
        rules: Vec::new(),
        warnings: Vec::new(),
        notes: Vec::new(),
        created: BTreeMap::new(),
    };
    for (key, (path, value)) in &keys {
        match key.as_str() {
            "name" => project.name = cx.string(path, value).unwrap_or_default(),
            "main" => project.main = cx.string(path, value).unwrap_or_default(),
            "vars" => project.vars = cx.vars(path, value),
            "durable_objects" => project.bindings = cx.durable_objects(path, value, &keys),
            "migrations" => project.migrations = cx.migrations(path, value),
            "rules" => project.rules = cx.rules(path, value),
            "env" => {}
            other => cx.unhonoured(other, path),
        }
    }
    project.created = cx.check_migrations(&project.migrations);
    cx.check_project(&project, &keys);
    if !cx.errors.is_empty() {
        return Err(ConfigErrors(cx.errors));
    }
    project.warnings = cx.warnings;
    project.notes = cx.notes;
    Ok(project)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A project directory with `src/index.ts`, and the config `text` in `file`.
    pub(super) fn project(
        file: &str,
        text: &str,
        env: Option<&str>,
    ) -> (tempfile::TempDir, Result<Project, ConfigErrors>) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("src")).unwrap();
        std::fs::write(dir.path().join("src/index.ts"), "export default {}").unwrap();
        let path = dir.path().join(file);
        std::fs::write(&path, text).unwrap();
        let result = load(&path, env);
        (dir, result)
    }

    pub(super) fn ok(text: &str) -> Project {
        let (_dir, result) = project("wrangler.toml", text, None);
        result.unwrap_or_else(|e| panic!("{e}"))
    }

    /// The errors, each as `<key path>: <message>` (the file name left out).
    pub(super) fn errors(text: &str) -> Vec<String> {
        errors_in("wrangler.toml", text, None)
    }

    pub(super) fn errors_in(file: &str, text: &str, env: Option<&str>) -> Vec<String> {
        let (dir, result) = project(file, text, env);
        let errors = result.expect_err("invalid config").0;
        let file = dir.path().join(file).display().to_string();
        errors
            .iter()
            .map(|e| {
                assert_eq!(e.file, file);
                format!("{}: {}", e.path, e.message)
            })
            .collect()
    }

    #[test]
    fn toml_syntax_errors_name_the_line() {
        let errors = errors("name = \"x\"\nmain = \n");
        assert!(errors[0].starts_with(": not valid TOML: "), "{errors:?}");
        assert!(errors[0].contains("line 2"), "{errors:?}");
    }

    #[test]
    fn find_prefers_json_then_jsonc_then_toml() {
        let dir = tempfile::tempdir().unwrap();
        assert!(
            find(dir.path())
                .unwrap_err()
                .to_string()
                .contains("no wrangler.toml, wrangler.jsonc or wrangler.json")
        );
        std::fs::write(dir.path().join("wrangler.toml"), "").unwrap();
        let (file, warning) = find(dir.path()).unwrap();
        assert!(file.ends_with("wrangler.toml") && warning.is_none());
        std::fs::write(dir.path().join("wrangler.jsonc"), "").unwrap();
        let (file, warning) = find(dir.path()).unwrap();
        assert!(file.ends_with("wrangler.jsonc"));
        assert!(
            warning.unwrap().contains("not "),
            "names the file passed over"
        );
        assert_eq!(
            find(&dir.path().join("wrangler.toml")).unwrap().0,
            dir.path().join("wrangler.toml")
        );
    }
}

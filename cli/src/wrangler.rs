//! A Cloudflare Worker project's wrangler configuration (`wrangler.toml`, `wrangler.jsonc`,
//! `wrangler.json`), read into one typed [`Project`] and validated before anything is built.
//!
//! Every key wrangler knows has a treatment here ([`KEYS`], the same table as
//! `docs/WRANGLER.md`): honoured, accepted without effect (a note), or ignored (a warning naming
//! the key). Mistakes are [`Diagnostic`]s naming the file, the key path and what to do, e.g.
//! `wrangler.toml: durable_objects.bindings[1].name: "ROOMS" is also durable_objects.bindings[0].name; ...`.
//! Checks that need the module itself (is a class exported?) are made by the build
//! (`dev.rs`), which reports them with the key path from [`Project::classes`].

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};
use wasmdo_protocol::manifest::{Migration, Rename};

/// The config file names wasmdo looks for in a project directory, in wrangler's order of
/// preference.
pub(crate) const CONFIG_FILES: [&str; 3] = ["wrangler.json", "wrangler.jsonc", "wrangler.toml"];

/// What wasmdo does with a wrangler key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Treatment {
    /// Read and honoured.
    Honoured,
    /// Accepted, with a note: it changes nothing on a wasmdo host.
    NoEffect(&'static str),
    /// Ignored, with a warning: a Cloudflare feature wasmdo does not provide.
    Ignored(&'static str),
}

use Treatment::{Honoured, Ignored, NoEffect};

const DEPLOY_SETTING: &str = "a Cloudflare deployment setting; no effect on a wasmdo host";
const NO_BUNDLER_SETTING: &str = "wasmdo-js bundles `main` with esbuild's defaults; run your own build step first if you need it";

/// Every top-level wrangler key wasmdo knows and what it does with it. A key not listed is
/// ignored with a warning too ("not a wrangler key wasmdo knows").
pub(crate) const KEYS: &[(&str, Treatment)] = &[
    ("name", Honoured),
    ("main", Honoured),
    ("vars", Honoured),
    ("durable_objects", Honoured),
    ("migrations", Honoured),
    ("rules", Honoured),
    ("env", Honoured),
    ("$schema", NoEffect("")),
    (
        "compatibility_date",
        NoEffect("wasmdo has one runtime behaviour; compatibility dates do not change it"),
    ),
    (
        "compatibility_flags",
        NoEffect(
            "wasmdo has one runtime behaviour; compatibility flags do not change it (Node.js built-ins are not available)",
        ),
    ),
    ("account_id", NoEffect(DEPLOY_SETTING)),
    ("workers_dev", NoEffect(DEPLOY_SETTING)),
    ("preview_urls", NoEffect(DEPLOY_SETTING)),
    (
        "routes",
        NoEffect(
            "every request to the host outside /_admin/, /rpc/ and /objects/ goes to the Worker",
        ),
    ),
    (
        "route",
        NoEffect(
            "every request to the host outside /_admin/, /rpc/ and /objects/ goes to the Worker",
        ),
    ),
    ("zone_id", NoEffect(DEPLOY_SETTING)),
    (
        "observability",
        NoEffect("objects log to the host's log (WASMDO_LOG)"),
    ),
    ("logpush", NoEffect(DEPLOY_SETTING)),
    ("upload_source_maps", NoEffect(DEPLOY_SETTING)),
    ("placement", NoEffect(DEPLOY_SETTING)),
    ("usage_model", NoEffect(DEPLOY_SETTING)),
    ("compliance_region", NoEffect(DEPLOY_SETTING)),
    ("first_party_worker", NoEffect(DEPLOY_SETTING)),
    ("send_metrics", NoEffect("wrangler's own telemetry")),
    ("keep_vars", NoEffect(DEPLOY_SETTING)),
    ("minify", NoEffect(DEPLOY_SETTING)),
    ("keep_names", NoEffect("names are kept")),
    (
        "limits",
        Ignored("wasmdo's limits are the host's (wasmdo.toml [limits], see --config)"),
    ),
    (
        "kv_namespaces",
        Ignored("wasmdo does not provide Workers KV"),
    ),
    ("r2_buckets", Ignored("wasmdo does not provide R2")),
    (
        "d1_databases",
        Ignored("wasmdo does not provide D1 (a Durable Object's own SQLite is `ctx.storage.sql`)"),
    ),
    (
        "services",
        Ignored("wasmdo does not provide service bindings"),
    ),
    ("queues", Ignored("wasmdo does not provide Queues")),
    (
        "analytics_engine_datasets",
        Ignored("wasmdo does not provide Analytics Engine"),
    ),
    ("vectorize", Ignored("wasmdo does not provide Vectorize")),
    ("hyperdrive", Ignored("wasmdo does not provide Hyperdrive")),
    ("ai", Ignored("wasmdo does not provide Workers AI")),
    (
        "browser",
        Ignored("wasmdo does not provide Browser Rendering"),
    ),
    ("images", Ignored("wasmdo does not provide Images")),
    (
        "mtls_certificates",
        Ignored("wasmdo does not provide mTLS certificates"),
    ),
    (
        "dispatch_namespaces",
        Ignored("wasmdo does not provide Workers for Platforms"),
    ),
    (
        "send_email",
        Ignored("wasmdo does not provide Email Routing"),
    ),
    ("workflows", Ignored("wasmdo does not provide Workflows")),
    ("pipelines", Ignored("wasmdo does not provide Pipelines")),
    (
        "secrets_store_secrets",
        Ignored("wasmdo does not provide Secrets Store (put secrets in [vars])"),
    ),
    (
        "ratelimits",
        Ignored("wasmdo does not provide the Rate Limiting binding"),
    ),
    (
        "version_metadata",
        Ignored("wasmdo does not provide version metadata"),
    ),
    (
        "worker_loaders",
        Ignored("wasmdo does not provide Worker Loaders"),
    ),
    ("containers", Ignored("wasmdo does not run containers")),
    ("cloudchamber", Ignored("wasmdo does not run containers")),
    (
        "tail_consumers",
        Ignored("wasmdo does not provide Tail Workers"),
    ),
    ("logfwdr", Ignored("wasmdo does not provide log forwarding")),
    ("unsafe", Ignored("wasmdo does not provide unsafe bindings")),
    (
        "triggers",
        Ignored("wasmdo does not run Cron Triggers (a Durable Object alarm can)"),
    ),
    (
        "assets",
        Ignored("wasmdo does not serve static assets: every request goes to the Worker"),
    ),
    (
        "site",
        Ignored("wasmdo does not serve Workers Sites: every request goes to the Worker"),
    ),
    (
        "build",
        Ignored(
            "wasmdo runs no custom build: run your build command first, then point `main` at its output",
        ),
    ),
    ("define", Ignored(NO_BUNDLER_SETTING)),
    ("alias", Ignored(NO_BUNDLER_SETTING)),
    ("tsconfig", Ignored(NO_BUNDLER_SETTING)),
    ("jsx_factory", Ignored(NO_BUNDLER_SETTING)),
    ("jsx_fragment", Ignored(NO_BUNDLER_SETTING)),
    ("no_bundle", Ignored("wasmdo-js always bundles `main`")),
    (
        "find_additional_modules",
        Ignored("wasmdo-js bundles what `main` imports"),
    ),
    (
        "base_dir",
        Ignored("module rule globs are matched as wasmdo-js resolves imports"),
    ),
    ("preserve_file_names", Ignored(NO_BUNDLER_SETTING)),
    (
        "node_compat",
        Ignored("Node.js built-ins are not available in wasmdo"),
    ),
    (
        "wasm_modules",
        Ignored("wasmdo-js does not import WebAssembly modules"),
    ),
    (
        "text_blobs",
        Ignored("service-worker syntax is not supported: use an ES module and a Text rule"),
    ),
    (
        "data_blobs",
        Ignored("service-worker syntax is not supported: use an ES module and a Data rule"),
    ),
    (
        "legacy_env",
        Ignored("environments are `[env.<name>]` with --env"),
    ),
    ("dev", Ignored("use `wasmdo dev --listen`")),
];

/// Keys a named environment inherits from the top level when it does not set them (wrangler's
/// "inheritable" keys); every other key must be set in the environment itself.
const INHERITABLE: &[&str] = &[
    "name",
    "account_id",
    "compatibility_date",
    "compatibility_flags",
    "main",
    "find_additional_modules",
    "preserve_file_names",
    "base_dir",
    "workers_dev",
    "preview_urls",
    "routes",
    "route",
    "tsconfig",
    "jsx_factory",
    "jsx_fragment",
    "migrations",
    "triggers",
    "limits",
    "rules",
    "build",
    "no_bundle",
    "minify",
    "keep_names",
    "first_party_worker",
    "logfwdr",
    "logpush",
    "upload_source_maps",
    "placement",
    "assets",
    "observability",
    "compliance_region",
];

/// A message about one key of a config file: `<file>: <key path>: <message>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Diagnostic {
    pub(crate) file: String,
    /// The key path, e.g. `durable_objects.bindings[1].class_name`; empty for the whole file.
    pub(crate) path: String,
    pub(crate) message: String,
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
pub(crate) struct ConfigErrors(pub(crate) Vec<Diagnostic>);

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
pub(crate) struct Project {
    /// The config file, as found (`examples/chat-worker/wrangler.toml`).
    pub(crate) file: PathBuf,
    /// The directory holding it; `main` and rule globs are relative to it.
    pub(crate) dir: PathBuf,
    /// The Worker's name: the project's name on the host and its entry Worker's class name.
    pub(crate) name: String,
    /// `main` as written (`src/index.ts`).
    pub(crate) main: String,
    /// `[vars]`, by name.
    pub(crate) vars: BTreeMap<String, Var>,
    /// `durable_objects.bindings`, in order.
    pub(crate) bindings: Vec<Binding>,
    /// `[[migrations]]`, in order.
    pub(crate) migrations: Vec<Migration>,
    /// `[[rules]]`, in order.
    pub(crate) rules: Vec<Rule>,
    /// Keys ignored (warnings) and keys without effect (notes).
    pub(crate) warnings: Vec<Diagnostic>,
    pub(crate) notes: Vec<Diagnostic>,
    /// Where each class alive after the migrations was created (`migrations[0].new_sqlite_classes[1]`).
    created: BTreeMap<String, String>,
}

/// A `[vars]` value: text, or any other JSON value (which the Worker sees parsed).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Var {
    Text(String),
    Json(Value),
}

impl Var {
    /// The value as the host passes it (every env value is a string): text as is, JSON as its
    /// JSON text.
    pub(crate) fn as_env(&self) -> String {
        match self {
            Var::Text(text) => text.clone(),
            Var::Json(value) => value.to_string(),
        }
    }
}

/// `durable_objects.bindings[i]`: `env.<name>` is the namespace of `class_name`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Binding {
    pub(crate) name: String,
    pub(crate) class_name: String,
    /// Its key path, for messages (`durable_objects.bindings[0]`).
    pub(crate) path: String,
}

/// One `[[rules]]` entry: modules matching `globs` are imported as `kind`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Rule {
    pub(crate) kind: RuleKind,
    pub(crate) globs: Vec<String>,
    /// Whether later rules of the same type still apply in wrangler. wasmdo-js always keeps
    /// wrangler's default rules after the project's, which only makes more imports work.
    pub(crate) fallthrough: bool,
}

/// The module types wasmdo-js can import.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RuleKind {
    /// A string.
    Text,
    /// An `ArrayBuffer`.
    Data,
}

impl RuleKind {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            RuleKind::Text => "Text",
            RuleKind::Data => "Data",
        }
    }
}

/// A Durable Object class the project builds, and the key that first names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ClassUse {
    pub(crate) name: String,
    pub(crate) path: String,
    /// The key of the migration that creates it, if one does.
    pub(crate) created_by: Option<String>,
}

impl Project {
    /// The Durable Object classes to build: every bound class, then every class the migrations
    /// leave alive that no binding names.
    pub(crate) fn classes(&self) -> Vec<ClassUse> {
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
    pub(crate) fn main_path(&self) -> PathBuf {
        self.dir.join(&self.main)
    }

    /// `<file>: <path>: <message>`.
    pub(crate) fn diagnostic(&self, path: &str, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            file: display(&self.file),
            path: path.to_owned(),
            message: message.into(),
        }
    }
}

/// The config file of the project at `path`: the file itself, or the first of [`CONFIG_FILES`]
/// in the directory (a warning names any other it passed over).
pub(crate) fn find(path: &Path) -> anyhow::Result<(PathBuf, Option<String>)> {
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
pub(crate) fn load(file: &Path, env: Option<&str>) -> Result<Project, ConfigErrors> {
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
pub(crate) fn parse(file: &Path, text: &str, env: Option<&str>) -> Result<Project, ConfigErrors> {
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

/// JSON with comments (`//`, `/* */`) and trailing commas, as wrangler.jsonc allows, made plain
/// JSON. Comments become spaces (newlines kept), so serde_json's line and column numbers still
/// point into the file.
pub(crate) fn strip_jsonc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    // the byte offset in `out` of a comma that may turn out to be trailing
    let mut comma: Option<usize> = None;
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                comma = None;
                out.push(c);
                while let Some(c) = chars.next() {
                    out.push(c);
                    match c {
                        '\\' => out.extend(chars.next()),
                        '"' => break,
                        _ => {}
                    }
                }
            }
            '/' if chars.peek() == Some(&'/') => {
                while let Some(&c) = chars.peek() {
                    if c == '\n' {
                        break;
                    }
                    chars.next();
                    out.push(' ');
                }
                out.push(' ');
            }
            '/' if chars.peek() == Some(&'*') => {
                chars.next();
                out.push_str("  ");
                let mut last = ' ';
                for c in chars.by_ref() {
                    out.push(if c == '\n' { '\n' } else { ' ' });
                    if last == '*' && c == '/' {
                        break;
                    }
                    last = c;
                }
            }
            c if c.is_whitespace() => out.push(c),
            c => {
                if let Some(at) = comma.take()
                    && (c == '}' || c == ']')
                {
                    out.replace_range(at..at + 1, " ");
                }
                if c == ',' {
                    comma = Some(out.len());
                }
                out.push(c);
            }
        }
    }
    out
}

/// The diagnostics collected while reading one file.
struct Cx {
    file: String,
    errors: Vec<Diagnostic>,
    warnings: Vec<Diagnostic>,
    notes: Vec<Diagnostic>,
}

/// The keys in effect: key → (its path, its value).
type Keys = BTreeMap<String, (String, Value)>;

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

/// A JSON value's kind, for "expected a string, found an integer".
fn type_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(n) if n.is_f64() => "a number",
        Value::Number(_) => "an integer",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "a table",
    }
}

impl Cx {
    fn diagnostic(&self, path: &str, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            file: self.file.clone(),
            path: path.to_owned(),
            message: message.into(),
        }
    }

    fn error(&mut self, path: &str, message: impl Into<String>) {
        let d = self.diagnostic(path, message);
        self.errors.push(d);
    }

    fn warn(&mut self, path: &str, message: impl Into<String>) {
        let d = self.diagnostic(path, message);
        self.warnings.push(d);
    }

    /// The top-level keys, or with `env` the environment's keys over the inherited ones.
    fn select_env(&mut self, root: &Map<String, Value>, env: Option<&str>) -> Keys {
        let mut keys: Keys = root
            .iter()
            .map(|(k, v)| (k.clone(), (k.clone(), v.clone())))
            .collect();
        let envs = root.get("env").and_then(Value::as_object);
        let Some(env) = env else {
            if let Some(envs) = envs
                && !envs.is_empty()
            {
                let names: Vec<&str> = envs.keys().map(String::as_str).collect();
                self.notes.push(self.diagnostic(
                    "env",
                    format!(
                        "the top-level configuration is used; environments ({}) apply with --env <name>",
                        names.join(", ")
                    ),
                ));
            }
            return keys;
        };
        let Some(selected) = envs.and_then(|e| e.get(env)) else {
            let known = envs
                .map(|e| e.keys().map(String::as_str).collect::<Vec<_>>().join(", "))
                .unwrap_or_default();
            self.error(
                "env",
                if known.is_empty() {
                    format!("--env {env}: the file defines no environments ([env.<name>])")
                } else {
                    format!("--env {env}: no such environment; the file defines {known}")
                },
            );
            return keys;
        };
        let env_path = format!("env.{env}");
        let Some(selected) = selected.as_object() else {
            self.error(
                &env_path,
                format!("expected a table, found {}", type_of(selected)),
            );
            return keys;
        };
        // a named environment inherits only the inheritable keys
        keys.retain(|key, _| {
            let keep = key == "env"
                || INHERITABLE.contains(&key.as_str())
                || !KEYS.iter().any(|(k, _)| k == key)
                || selected.contains_key(key);
            if !keep && matches!(treatment(key), Some(Honoured)) {
                self.warnings.push(self.diagnostic(
                    key,
                    format!("not inherited by [{env_path}] (as in wrangler): set {env_path}.{key} to use it there"),
                ));
            }
            keep
        });
        for (key, value) in selected {
            keys.insert(key.clone(), (join(&env_path, key), value.clone()));
        }
        if !selected.contains_key("name")
            && let Some((_, Value::String(name))) = keys.get_mut("name")
        {
            // wrangler deploys an environment as `<name>-<env>`
            *name = format!("{name}-{env}");
        }
        keys
    }

    /// A key wasmdo does not read: a note or a warning.
    fn unhonoured(&mut self, key: &str, path: &str) {
        match treatment(key) {
            Some(NoEffect("")) | Some(Honoured) => {}
            Some(NoEffect(why)) => {
                let d = self.diagnostic(path, format!("accepted, no effect: {why}"));
                self.notes.push(d);
            }
            Some(Ignored(why)) => self.warn(path, format!("ignored: {why}")),
            None => self.warn(path, "ignored: not a wrangler key wasmdo knows"),
        }
    }

    fn string(&mut self, path: &str, value: &Value) -> Option<String> {
        match value {
            Value::String(s) => Some(s.clone()),
            other => {
                self.error(path, format!("expected a string, found {}", type_of(other)));
                None
            }
        }
    }

    fn table<'v>(&mut self, path: &str, value: &'v Value) -> Option<&'v Map<String, Value>> {
        match value {
            Value::Object(map) => Some(map),
            other => {
                self.error(path, format!("expected a table, found {}", type_of(other)));
                None
            }
        }
    }

    fn array<'v>(&mut self, path: &str, value: &'v Value) -> &'v [Value] {
        match value {
            Value::Array(items) => items,
            other => {
                self.error(path, format!("expected an array, found {}", type_of(other)));
                &[]
            }
        }
    }

    fn strings(&mut self, path: &str, value: &Value) -> Vec<String> {
        let mut out = Vec::new();
        for (i, item) in self.array(path, value).iter().enumerate() {
            if let Some(s) = self.string(&format!("{path}[{i}]"), item) {
                out.push(s);
            }
        }
        out
    }

    /// Warns about the keys of `table` not in `known`.
    fn unknown_fields(
        &mut self,
        path: &str,
        table: &Map<String, Value>,
        known: &[&str],
        what: &str,
    ) {
        for key in table.keys() {
            if !known.contains(&key.as_str()) {
                self.warn(
                    &join(path, key),
                    format!(
                        "ignored: not a key of {what} wasmdo knows ({})",
                        known.join(", ")
                    ),
                );
            }
        }
    }

    fn vars(&mut self, path: &str, value: &Value) -> BTreeMap<String, Var> {
        let Some(table) = self.table(path, value) else {
            return BTreeMap::new();
        };
        table
            .iter()
            .map(|(name, value)| {
                let var = match value {
                    Value::String(s) => Var::Text(s.clone()),
                    other => Var::Json(other.clone()),
                };
                (name.clone(), var)
            })
            .collect()
    }

    fn durable_objects(&mut self, path: &str, value: &Value, keys: &Keys) -> Vec<Binding> {
        let Some(table) = self.table(path, value) else {
            return Vec::new();
        };
        self.unknown_fields(path, table, &["bindings"], "durable_objects");
        let Some(list) = table.get("bindings") else {
            return Vec::new();
        };
        let list_path = join(path, "bindings");
        let own_name = keys.get("name").and_then(|(_, v)| v.as_str());
        let mut bindings = Vec::new();
        for (i, item) in self.array(&list_path, list).iter().enumerate() {
            let path = format!("{list_path}[{i}]");
            let Some(entry) = self.table(&path, item) else {
                continue;
            };
            self.unknown_fields(
                &path,
                entry,
                &["name", "class_name", "script_name", "environment"],
                "a Durable Object binding",
            );
            let name = self.required_string(
                &path,
                entry,
                "name",
                "the name the Worker reads it by, e.g. name = \"ROOMS\"",
            );
            let class_name = self.required_string(
                &path,
                entry,
                "class_name",
                "the exported class, e.g. class_name = \"ChatRoom\"",
            );
            if let Some(script) = entry.get("script_name") {
                let script_path = join(&path, "script_name");
                if let Some(script) = self.string(&script_path, script)
                    && Some(script.as_str()) != own_name
                {
                    self.error(
                        &script_path,
                        format!(
                            "classes of another Worker (\"{script}\") are not supported: wasmdo runs one project's classes; move the class into this project's `main` or remove script_name"
                        ),
                    );
                }
            }
            if entry.contains_key("environment") {
                self.warn(
                    &join(&path, "environment"),
                    "ignored: bindings name classes of this project",
                );
            }
            if let (Some(name), Some(class_name)) = (name, class_name) {
                bindings.push(Binding {
                    name,
                    class_name,
                    path,
                });
            }
        }
        bindings
    }

    fn required_string(
        &mut self,
        path: &str,
        table: &Map<String, Value>,
        key: &str,
        hint: &str,
    ) -> Option<String> {
        let path = join(path, key);
        match table.get(key) {
            Some(value) => self.string(&path, value),
            None => {
                self.error(&path, format!("missing: set {hint}"));
                None
            }
        }
    }

    fn migrations(&mut self, path: &str, value: &Value) -> Vec<Migration> {
        let mut migrations = Vec::new();
        for (i, item) in self.array(path, value).iter().enumerate() {
            let path = format!("{path}[{i}]");
            let Some(entry) = self.table(&path, item) else {
                continue;
            };
            let mut migration = Migration::default();
            for (key, value) in entry {
                let key_path = join(&path, key);
                match key.as_str() {
                    "tag" => migration.tag = self.string(&key_path, value).unwrap_or_default(),
                    "new_classes" => migration.new_classes = self.strings(&key_path, value),
                    "new_sqlite_classes" => migration.new_sqlite_classes = self.strings(&key_path, value),
                    "deleted_classes" => migration.deleted_classes = self.strings(&key_path, value),
                    "renamed_classes" => {
                        for (j, item) in self.array(&key_path, value).iter().enumerate() {
                            let path = format!("{key_path}[{j}]");
                            let Some(rename) = self.table(&path, item) else {
                                continue;
                            };
                            self.unknown_fields(&path, rename, &["from", "to"], "a renamed class");
                            let from = self.required_string(&path, rename, "from", "the class's old name");
                            let to = self.required_string(&path, rename, "to", "the class's new name");
                            if let (Some(from), Some(to)) = (from, to) {
                                migration.renamed_classes.push(Rename { from, to });
                            }
                        }
                    }
                    "transferred_classes" => self.error(
                        &key_path,
                        "not supported: classes cannot move between Workers on wasmdo (one project holds its classes)",
                    ),
                    _ => self.warn(
                        &key_path,
                        "ignored: not a migration key wasmdo knows (tag, new_classes, new_sqlite_classes, renamed_classes, deleted_classes)",
                    ),
                }
            }
            if !entry.contains_key("tag") {
                self.error(
                    &join(&path, "tag"),
                    "missing: every migration needs a unique tag, e.g. tag = \"v1\"",
                );
            }
            migrations.push(migration);
        }
        migrations
    }

    fn rules(&mut self, path: &str, value: &Value) -> Vec<Rule> {
        let mut rules = Vec::new();
        for (i, item) in self.array(path, value).iter().enumerate() {
            let path = format!("{path}[{i}]");
            let Some(entry) = self.table(&path, item) else {
                continue;
            };
            self.unknown_fields(
                &path,
                entry,
                &["type", "globs", "fallthrough"],
                "a module rule",
            );
            let kind = match self
                .required_string(&path, entry, "type", "type = \"Text\" or \"Data\"")
                .as_deref()
            {
                Some("Text") => Some(RuleKind::Text),
                Some("Data") => Some(RuleKind::Data),
                Some(js @ ("ESModule" | "CommonJS")) => {
                    let d = self.diagnostic(
                        &join(&path, "type"),
                        format!("accepted, no effect: wasmdo-js bundles every imported JavaScript module, {js} or not"),
                    );
                    self.notes.push(d);
                    None
                }
                Some(other) => {
                    self.error(
                        &join(&path, "type"),
                        format!("\"{other}\" modules are not supported: wasmdo-js loads Text (a string) and Data (an ArrayBuffer) modules and bundles JavaScript (CompiledWasm and Python modules cannot run inside a component)"),
                    );
                    None
                }
                None => None,
            };
            let globs = match entry.get("globs") {
                Some(globs) => self.strings(&join(&path, "globs"), globs),
                None => {
                    self.error(
                        &join(&path, "globs"),
                        "missing: set the files it matches, e.g. globs = [\"**/*.html\"]",
                    );
                    Vec::new()
                }
            };
            let fallthrough = match entry.get("fallthrough") {
                None => false,
                Some(Value::Bool(b)) => *b,
                Some(other) => {
                    self.error(
                        &join(&path, "fallthrough"),
                        format!("expected a boolean, found {}", type_of(other)),
                    );
                    false
                }
            };
            if let Some(kind) = kind {
                rules.push(Rule {
                    kind,
                    globs,
                    fallthrough,
                });
            }
        }
        rules
    }

    /// Replays the migrations in order; returns the classes alive at the end, each with the key
    /// that created (or last renamed) it.
    fn check_migrations(&mut self, migrations: &[Migration]) -> BTreeMap<String, String> {
        // class → the key that created it; deleted classes leave
        let mut alive: BTreeMap<String, String> = BTreeMap::new();
        let mut tags: BTreeMap<&str, usize> = BTreeMap::new();
        for (i, migration) in migrations.iter().enumerate() {
            let path = format!("migrations[{i}]");
            if !migration.tag.is_empty() {
                if let Some(first) = tags.get(migration.tag.as_str()) {
                    self.error(
                        &join(&path, "tag"),
                        format!("\"{}\" is also the tag of migrations[{first}]: every migration needs its own tag", migration.tag),
                    );
                } else {
                    tags.insert(&migration.tag, i);
                }
            }
            let created = [
                ("new_classes", &migration.new_classes),
                ("new_sqlite_classes", &migration.new_sqlite_classes),
            ];
            for (key, classes) in created {
                for (j, class) in classes.iter().enumerate() {
                    let at = format!("{path}.{key}[{j}]");
                    if let Some(earlier) = alive.get(class) {
                        self.error(&at, format!("class \"{class}\" already exists (created by {earlier}): a migration creates a class once"));
                    } else {
                        alive.insert(class.clone(), at);
                    }
                }
            }
            for (j, rename) in migration.renamed_classes.iter().enumerate() {
                let at = format!("{path}.renamed_classes[{j}]");
                if alive.remove(&rename.from).is_none() {
                    self.error(
                        &join(&at, "from"),
                        format!(
                            "class \"{}\" is renamed, but no earlier migration created it{}: create it with new_sqlite_classes first, or fix the name",
                            rename.from,
                            list_alive(&alive)
                        ),
                    );
                }
                if let Some(earlier) = alive.get(&rename.to) {
                    self.error(&join(&at, "to"), format!("class \"{}\" already exists (created by {earlier}): rename to a new name", rename.to));
                } else {
                    alive.insert(rename.to.clone(), join(&at, "to"));
                }
            }
            for (j, class) in migration.deleted_classes.iter().enumerate() {
                if alive.remove(class).is_none() {
                    self.error(
                        &format!("{path}.deleted_classes[{j}]"),
                        format!(
                            "class \"{class}\" is deleted, but no earlier migration created it{}",
                            list_alive(&alive)
                        ),
                    );
                }
            }
        }
        alive
    }

    /// The checks across keys: name, main, bindings against migrations and vars.
    fn check_project(&mut self, project: &Project, keys: &Keys) {
        let path_of = |key: &str| {
            keys.get(key)
                .map_or_else(|| key.to_owned(), |(p, _)| p.clone())
        };
        let (name_path, main_path) = (path_of("name"), path_of("main"));
        let reported = |cx: &Cx, path: &str| cx.errors.iter().any(|e| e.path == path);
        if project.name.is_empty() {
            if !reported(self, &name_path) {
                self.error(&name_path, "missing: set the Worker's name, e.g. name = \"my-worker\" (it names the project on the host)");
            }
        } else if let Err(e) = wasmdo_host::registry::validate_class_name(&project.name) {
            self.error(
                &name_path,
                format!("{e} (the Worker is deployed as a class of this name)"),
            );
        }
        if project.main.is_empty() {
            if !reported(self, &main_path) {
                self.error(
                    &main_path,
                    "missing: set the module whose default export is the Worker, e.g. main = \"src/index.ts\"",
                );
            }
        } else if !project.main_path().is_file() {
            self.error(
                &main_path,
                format!(
                    "{} does not exist (looked for {})",
                    project.main,
                    project.main_path().display()
                ),
            );
        }
        let mut seen: BTreeMap<String, &Binding> = BTreeMap::new();
        for binding in &project.bindings {
            let name_at = join(&binding.path, "name");
            let class_at = join(&binding.path, "class_name");
            // bindings become WIT package names: `ROOM_A` and `room-a` would be one package
            let key = binding.name.to_lowercase().replace('_', "-");
            if let Some(first) = seen.get(&key) {
                let same = if first.name == binding.name {
                    ""
                } else {
                    " (binding names differing only in case or `_`/`-` clash)"
                };
                self.error(
                    &name_at,
                    format!(
                        "\"{}\" is also {}.name{same}: each binding needs its own name",
                        binding.name, first.path
                    ),
                );
            } else {
                seen.insert(key, binding);
            }
            if !is_identifier(&binding.name) {
                self.error(&name_at, format!("\"{}\" is not a valid binding name: use letters, digits and `_`, starting with a letter", binding.name));
            }
            if project.vars.contains_key(&binding.name) {
                self.error(
                    &name_at,
                    format!(
                        "\"{}\" is also a key of [vars]: env holds both, rename one",
                        binding.name
                    ),
                );
            }
            if let Err(e) = wasmdo_host::registry::validate_class_name(&binding.class_name) {
                self.error(&class_at, e.to_string());
            } else if binding.class_name == project.name {
                self.error(
                    &class_at,
                    format!("\"{}\" is also the Worker's name; wasmdo deploys the Worker as a class of that name: rename the Worker or the class", project.name),
                );
            }
            if !project.created.contains_key(&binding.class_name) {
                let deleted = project.migrations.iter().enumerate().find_map(|(i, m)| {
                    m.deleted_classes
                        .contains(&binding.class_name)
                        .then(|| format!("migrations[{i}]"))
                });
                if let Some(deleted) = deleted {
                    self.error(&class_at, format!("class \"{}\" is deleted by {deleted}: bind a live class, or remove the binding", binding.class_name));
                } else if !project.migrations.is_empty() {
                    self.warn(
                        &class_at,
                        format!(
                            "class \"{}\" is not created by any migration: Cloudflare refuses that; add it to new_sqlite_classes of a new [[migrations]] entry",
                            binding.class_name
                        ),
                    );
                }
            }
        }
        if !project.name.is_empty() && project.created.contains_key(&project.name) {
            let at = project.created[&project.name].clone();
            self.error(&at, format!("\"{}\" is also the Worker's name; wasmdo deploys the Worker as a class of that name: rename the Worker or the class", project.name));
        }
        for (name, _) in project.vars.iter() {
            if name.is_empty() {
                self.error("vars", "a variable needs a name");
            }
        }
    }
}

/// `; the migrations create A, B` (or nothing when none are alive).
fn list_alive(alive: &BTreeMap<String, String>) -> String {
    if alive.is_empty() {
        String::new()
    } else {
        format!(
            " (the classes so far: {})",
            alive.keys().cloned().collect::<Vec<_>>().join(", ")
        )
    }
}

/// A binding name usable as `env.NAME` and as a WIT package name: `[A-Za-z_][A-Za-z0-9_]*`.
fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// How wasmdo treats the top-level key `key`, if it knows it.
pub(crate) fn treatment(key: &str) -> Option<Treatment> {
    KEYS.iter().find(|(k, _)| *k == key).map(|(_, t)| *t)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A project directory with `src/index.ts`, and the config `text` in `file`.
    fn project(
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

    fn ok(text: &str) -> Project {
        let (_dir, result) = project("wrangler.toml", text, None);
        result.unwrap_or_else(|e| panic!("{e}"))
    }

    /// The errors, each as `<key path>: <message>` (the file name left out).
    fn errors(text: &str) -> Vec<String> {
        errors_in("wrangler.toml", text, None)
    }

    fn errors_in(file: &str, text: &str, env: Option<&str>) -> Vec<String> {
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

    const CHAT: &str = r#"
name = "chat"
main = "src/index.ts"
compatibility_date = "2025-01-01"

[vars]
GREETING = "hello"
MAX = 5
FLAGS = { beta = true }

[durable_objects]
bindings = [
  { name = "ROOMS", class_name = "ChatRoom" },
  { name = "LIMITER", class_name = "RateLimiter" },
]

[[migrations]]
tag = "v1"
new_sqlite_classes = ["ChatRoom", "Limiter"]

[[migrations]]
tag = "v2"
renamed_classes = [{ from = "Limiter", to = "RateLimiter" }]

[[rules]]
type = "Text"
globs = ["**/*.md"]
fallthrough = true
"#;

    #[test]
    fn a_toml_project_is_read_whole() {
        let p = ok(CHAT);
        assert_eq!(p.name, "chat");
        assert_eq!(p.main, "src/index.ts");
        assert_eq!(p.vars["GREETING"], Var::Text("hello".into()));
        assert_eq!(p.vars["MAX"], Var::Json(serde_json::json!(5)));
        assert_eq!(p.vars["MAX"].as_env(), "5");
        assert_eq!(p.vars["FLAGS"].as_env(), r#"{"beta":true}"#);
        let bindings: Vec<(&str, &str)> = p
            .bindings
            .iter()
            .map(|b| (b.name.as_str(), b.class_name.as_str()))
            .collect();
        assert_eq!(
            bindings,
            [("ROOMS", "ChatRoom"), ("LIMITER", "RateLimiter")]
        );
        assert_eq!(p.migrations.len(), 2);
        assert_eq!(
            p.migrations[1].renamed_classes[0],
            Rename {
                from: "Limiter".into(),
                to: "RateLimiter".into()
            }
        );
        assert_eq!(
            p.rules,
            [Rule {
                kind: RuleKind::Text,
                globs: vec!["**/*.md".into()],
                fallthrough: true
            }]
        );
        let classes: Vec<(String, String)> =
            p.classes().into_iter().map(|c| (c.name, c.path)).collect();
        assert_eq!(
            classes,
            [
                (
                    "ChatRoom".into(),
                    "durable_objects.bindings[0].class_name".into()
                ),
                (
                    "RateLimiter".into(),
                    "durable_objects.bindings[1].class_name".into()
                ),
            ]
        );
        assert!(p.warnings.is_empty(), "{:?}", p.warnings);
        assert_eq!(p.notes.len(), 1, "compatibility_date: {:?}", p.notes);
        assert!(p.notes[0].message.contains("no effect"));
    }

    #[test]
    fn a_jsonc_project_with_comments_and_trailing_commas_is_read() {
        let text = r#"{
  // the Worker
  "$schema": "node_modules/wrangler/config-schema.json",
  "name": "chat", /* its name */
  "main": "src/index.ts",
  "vars": { "URL": "http://a//b", "Q": "/* not a comment */", },
  "durable_objects": {
    "bindings": [{ "name": "ROOMS", "class_name": "ChatRoom", },],
  },
  "migrations": [{ "tag": "v1", "new_sqlite_classes": ["ChatRoom"] }],
}"#;
        for file in ["wrangler.jsonc", "wrangler.json"] {
            let (_dir, p) = project(file, text, None);
            let p = p.unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(p.name, "chat");
            assert_eq!(p.vars["URL"], Var::Text("http://a//b".into()));
            assert_eq!(p.vars["Q"], Var::Text("/* not a comment */".into()));
            assert_eq!(p.bindings[0].class_name, "ChatRoom");
            assert!(
                p.warnings.is_empty() && p.notes.is_empty(),
                "{:?} {:?}",
                p.warnings,
                p.notes
            );
        }
    }

    #[test]
    fn jsonc_errors_point_at_the_line_in_the_file() {
        let errors = errors_in(
            "wrangler.jsonc",
            "{\n  // a comment\n  \"name\": \"x\",\n  \"main\": nope,\n}",
            None,
        );
        assert_eq!(errors.len(), 1);
        assert!(errors[0].starts_with(": not valid JSON: "), "{errors:?}");
        assert!(errors[0].contains("line 4"), "{errors:?}");
    }

    #[test]
    fn toml_syntax_errors_name_the_line() {
        let errors = errors("name = \"x\"\nmain = \n");
        assert!(errors[0].starts_with(": not valid TOML: "), "{errors:?}");
        assert!(errors[0].contains("line 2"), "{errors:?}");
    }

    #[test]
    fn keys_wasmdo_does_not_provide_are_warnings_naming_them() {
        let p = ok(r#"
name = "w"
main = "src/index.ts"
workers_dev = true
kv_namespaces = [{ binding = "KV", id = "x" }]
assets = { directory = "public" }
shiny_new_thing = 1
[durable_objects]
bindings = [{ name = "A", class_name = "A", environment = "x" }]
"#);
        let warnings: Vec<String> = p
            .warnings
            .iter()
            .map(|w| format!("{}: {}", w.path, w.message))
            .collect();
        assert!(
            warnings
                .contains(&"kv_namespaces: ignored: wasmdo does not provide Workers KV".to_owned()),
            "{warnings:?}"
        );
        assert!(
            warnings
                .iter()
                .any(|w| w.starts_with("assets: ignored: wasmdo does not serve static assets")),
            "{warnings:?}"
        );
        assert!(
            warnings
                .contains(&"shiny_new_thing: ignored: not a wrangler key wasmdo knows".to_owned()),
            "{warnings:?}"
        );
        assert!(
            warnings
                .iter()
                .any(|w| w.starts_with("durable_objects.bindings[0].environment: ignored")),
            "{warnings:?}"
        );
        assert!(
            p.notes.iter().any(|n| n.path == "workers_dev"),
            "{:?}",
            p.notes
        );
    }

    #[test]
    fn every_key_is_listed_once() {
        let mut seen = std::collections::BTreeSet::new();
        for (key, _) in KEYS {
            assert!(seen.insert(key), "{key} twice");
        }
        for key in INHERITABLE {
            assert!(
                treatment(key).is_some(),
                "{key} is inheritable but not in KEYS"
            );
        }
    }

    #[test]
    fn name_and_main_are_required() {
        let errors = errors("");
        assert_eq!(
            errors,
            [
                "name: missing: set the Worker's name, e.g. name = \"my-worker\" (it names the project on the host)",
                "main: missing: set the module whose default export is the Worker, e.g. main = \"src/index.ts\"",
            ]
        );
    }

    #[test]
    fn a_main_that_does_not_exist_is_an_error() {
        let errors = errors("name = \"w\"\nmain = \"src/worker.ts\"");
        assert_eq!(errors.len(), 1);
        assert!(
            errors[0].starts_with("main: src/worker.ts does not exist (looked for "),
            "{errors:?}"
        );
    }

    #[test]
    fn wrong_types_name_the_key() {
        let errors = errors(
            r#"
name = 5
main = "src/index.ts"
durable_objects = { bindings = [{ name = "A", class_name = 3 }] }
"#,
        );
        assert_eq!(
            errors,
            [
                "durable_objects.bindings[0].class_name: expected a string, found an integer",
                "name: expected a string, found an integer",
            ]
        );
    }

    #[test]
    fn a_binding_name_used_twice_is_an_error() {
        let errors = errors(
            r#"
name = "w"
main = "src/index.ts"
[durable_objects]
bindings = [
  { name = "ROOMS", class_name = "A" },
  { name = "ROOMS", class_name = "B" },
  { name = "rooms", class_name = "C" },
]
"#,
        );
        assert_eq!(
            errors,
            [
                "durable_objects.bindings[1].name: \"ROOMS\" is also durable_objects.bindings[0].name: each binding needs its own name",
                "durable_objects.bindings[2].name: \"rooms\" is also durable_objects.bindings[0].name (binding names differing only in case or `_`/`-` clash): each binding needs its own name",
            ]
        );
    }

    #[test]
    fn binding_checks() {
        let errors = errors(
            r#"
name = "w"
main = "src/index.ts"
vars = { ROOMS = "x" }
[durable_objects]
bindings = [
  { name = "ROOMS", class_name = "A" },
  { name = "MY-B", class_name = "B" },
  { class_name = "C" },
  { name = "D", class_name = "w" },
  { name = "E", class_name = "E", script_name = "other-worker" },
  { name = "F", class_name = "F", script_name = "w" },
]
"#,
        );
        assert_eq!(
            errors,
            [
                "durable_objects.bindings[2].name: missing: set the name the Worker reads it by, e.g. name = \"ROOMS\"",
                "durable_objects.bindings[4].script_name: classes of another Worker (\"other-worker\") are not supported: wasmdo runs one project's classes; move the class into this project's `main` or remove script_name",
                "durable_objects.bindings[0].name: \"ROOMS\" is also a key of [vars]: env holds both, rename one",
                "durable_objects.bindings[1].name: \"MY-B\" is not a valid binding name: use letters, digits and `_`, starting with a letter",
                "durable_objects.bindings[3].class_name: \"w\" is also the Worker's name; wasmdo deploys the Worker as a class of that name: rename the Worker or the class",
            ]
        );
    }

    #[test]
    fn migration_checks() {
        let errors = errors(
            r#"
name = "w"
main = "src/index.ts"
[[migrations]]
tag = "v1"
new_sqlite_classes = ["A", "B"]
[[migrations]]
tag = "v1"
renamed_classes = [{ from = "Nope", to = "C" }, { from = "A", to = "B" }]
[[migrations]]
deleted_classes = ["Z"]
new_classes = ["B"]
transferred_classes = [{ from = "X", from_script = "s", to = "Y" }]
"#,
        );
        assert_eq!(
            errors,
            [
                "migrations[2].transferred_classes: not supported: classes cannot move between Workers on wasmdo (one project holds its classes)",
                "migrations[2].tag: missing: every migration needs a unique tag, e.g. tag = \"v1\"",
                "migrations[1].tag: \"v1\" is also the tag of migrations[0]: every migration needs its own tag",
                "migrations[1].renamed_classes[0].from: class \"Nope\" is renamed, but no earlier migration created it (the classes so far: A, B): create it with new_sqlite_classes first, or fix the name",
                "migrations[1].renamed_classes[1].to: class \"B\" already exists (created by migrations[0].new_sqlite_classes[1]): rename to a new name",
                "migrations[2].new_classes[0]: class \"B\" already exists (created by migrations[0].new_sqlite_classes[1]): a migration creates a class once",
                "migrations[2].deleted_classes[0]: class \"Z\" is deleted, but no earlier migration created it (the classes so far: B, C)",
            ]
        );
    }

    #[test]
    fn a_binding_to_a_deleted_class_is_an_error_and_one_without_migration_a_warning() {
        let errors = errors(
            r#"
name = "w"
main = "src/index.ts"
durable_objects.bindings = [{ name = "A", class_name = "A" }]
[[migrations]]
tag = "v1"
new_sqlite_classes = ["A"]
[[migrations]]
tag = "v2"
deleted_classes = ["A"]
"#,
        );
        assert_eq!(
            errors,
            [
                "durable_objects.bindings[0].class_name: class \"A\" is deleted by migrations[1]: bind a live class, or remove the binding"
            ]
        );
        let p = ok(r#"
name = "w"
main = "src/index.ts"
durable_objects.bindings = [{ name = "A", class_name = "A" }, { name = "B", class_name = "B" }]
migrations = [{ tag = "v1", new_sqlite_classes = ["A", "Unbound"] }]
"#);
        assert_eq!(p.warnings.len(), 1, "{:?}", p.warnings);
        assert_eq!(p.warnings[0].path, "durable_objects.bindings[1].class_name");
        assert!(
            p.warnings[0]
                .message
                .contains("not created by any migration")
        );
        // classes: bound ones, then the unbound survivors of the migrations
        let classes: Vec<String> = p
            .classes()
            .into_iter()
            .map(|c| format!("{} {} {:?}", c.name, c.path, c.created_by))
            .collect();
        assert_eq!(
            classes,
            [
                "A durable_objects.bindings[0].class_name Some(\"migrations[0].new_sqlite_classes[0]\")",
                "B durable_objects.bindings[1].class_name None",
                "Unbound migrations[0].new_sqlite_classes[1] Some(\"migrations[0].new_sqlite_classes[1]\")",
            ]
        );
    }

    #[test]
    fn rules_other_than_text_and_data_are_errors() {
        let errors = errors(
            r#"
name = "w"
main = "src/index.ts"
[[rules]]
type = "CompiledWasm"
globs = ["**/*.wasm"]
[[rules]]
type = "Data"
fallthrough = "yes"
"#,
        );
        assert_eq!(
            errors,
            [
                "rules[0].type: \"CompiledWasm\" modules are not supported: wasmdo-js loads Text (a string) and Data (an ArrayBuffer) modules and bundles JavaScript (CompiledWasm and Python modules cannot run inside a component)",
                "rules[1].globs: missing: set the files it matches, e.g. globs = [\"**/*.html\"]",
                "rules[1].fallthrough: expected a boolean, found a string",
            ]
        );
    }

    const ENVS: &str = r#"
name = "chat"
main = "src/index.ts"
vars = { MODE = "prod" }
durable_objects.bindings = [{ name = "ROOMS", class_name = "ChatRoom" }]
migrations = [{ tag = "v1", new_sqlite_classes = ["ChatRoom"] }]

[env.staging]
vars = { MODE = "staging" }
durable_objects.bindings = [{ name = "ROOMS", class_name = "ChatRoom" }]

[env.bare]
"#;

    #[test]
    fn environments_apply_with_env_as_in_wrangler() {
        let p = ok(ENVS);
        assert_eq!(p.vars["MODE"], Var::Text("prod".into()));
        assert_eq!(p.notes.len(), 1);
        assert!(
            p.notes[0]
                .message
                .contains("environments (bare, staging) apply with --env <name>"),
            "{:?}",
            p.notes
        );

        let (_dir, p) = project("wrangler.toml", ENVS, Some("staging"));
        let p = p.unwrap();
        assert_eq!(p.name, "chat-staging", "named <name>-<env>");
        assert_eq!(p.vars["MODE"], Var::Text("staging".into()));
        assert_eq!(
            p.bindings[0].path,
            "env.staging.durable_objects.bindings[0]"
        );
        assert_eq!(p.migrations.len(), 1, "migrations are inherited");
        assert!(p.warnings.is_empty(), "{:?}", p.warnings);

        // vars and bindings are not inherited: a warning says so
        let (_dir, p) = project("wrangler.toml", ENVS, Some("bare"));
        let p = p.unwrap();
        assert!(p.vars.is_empty() && p.bindings.is_empty());
        let paths: Vec<&str> = p.warnings.iter().map(|w| w.path.as_str()).collect();
        assert_eq!(paths, ["durable_objects", "vars"]);
        assert!(
            p.warnings[1].message.contains("set env.bare.vars"),
            "{:?}",
            p.warnings
        );

        let errors = errors_in("wrangler.toml", ENVS, Some("prod"));
        assert_eq!(
            errors,
            ["env: --env prod: no such environment; the file defines bare, staging"]
        );
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

    #[test]
    fn strip_jsonc_keeps_strings_and_positions() {
        let text = "{\"a\": \"x//y\", // c\n \"b\": [1, 2, /* c\n */ ], \"c\": \"\\\"/*\",}";
        let plain = strip_jsonc(text);
        assert_eq!(plain.len(), text.len());
        assert_eq!(plain.lines().count(), text.lines().count());
        let value: Value = serde_json::from_str(&plain).unwrap();
        assert_eq!(
            value,
            serde_json::json!({"a": "x//y", "b": [1, 2], "c": "\"/*"})
        );
    }
}

//! Reading a config file's values: [`Cx`] types each key into its part of a
//! [`Project`](super::Project) (or selects an environment's keys), collecting the diagnostics.

use std::collections::BTreeMap;

use serde_json::{Map, Value};
use wasmdo_protocol::manifest::{Migration, Rename};

use super::keys::Treatment::{Honoured, Ignored, NoEffect};
use super::keys::{INHERITABLE, KEYS, treatment};
use super::{Binding, Diagnostic, Rule, RuleKind, Var};

/// The diagnostics collected while reading one file.
pub(super) struct Cx {
    pub(super) file: String,
    pub(super) errors: Vec<Diagnostic>,
    pub(super) warnings: Vec<Diagnostic>,
    pub(super) notes: Vec<Diagnostic>,
}

/// The keys in effect: key → (its path, its value).
pub(super) type Keys = BTreeMap<String, (String, Value)>;

pub(super) fn join(path: &str, key: &str) -> String {
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

    pub(super) fn error(&mut self, path: &str, message: impl Into<String>) {
        let d = self.diagnostic(path, message);
        self.errors.push(d);
    }

    pub(super) fn warn(&mut self, path: &str, message: impl Into<String>) {
        let d = self.diagnostic(path, message);
        self.warnings.push(d);
    }

    /// The top-level keys, or with `env` the environment's keys over the inherited ones.
    pub(super) fn select_env(&mut self, root: &Map<String, Value>, env: Option<&str>) -> Keys {
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
    pub(super) fn unhonoured(&mut self, key: &str, path: &str) {
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

    pub(super) fn string(&mut self, path: &str, value: &Value) -> Option<String> {
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

    pub(super) fn vars(&mut self, path: &str, value: &Value) -> BTreeMap<String, Var> {
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

    pub(super) fn durable_objects(
        &mut self,
        path: &str,
        value: &Value,
        keys: &Keys,
    ) -> Vec<Binding> {
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

    pub(super) fn migrations(&mut self, path: &str, value: &Value) -> Vec<Migration> {
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

    pub(super) fn rules(&mut self, path: &str, value: &Value) -> Vec<Rule> {
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wrangler::tests::{errors, errors_in, ok, project};

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
}

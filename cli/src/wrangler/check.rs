//! The checks across a project's keys, once they are read: the migrations replayed in order,
//! then name, main and every binding against the migrations and vars.

use std::collections::BTreeMap;

use wasmdo_protocol::manifest::Migration;

use super::read::{Cx, Keys, join};
use super::{Binding, Project};

impl Cx {
    /// Replays the migrations in order; returns the classes alive at the end, each with the key
    /// that created (or last renamed) it.
    pub(super) fn check_migrations(
        &mut self,
        migrations: &[Migration],
    ) -> BTreeMap<String, String> {
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
    pub(super) fn check_project(&mut self, project: &Project, keys: &Keys) {
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

#[cfg(test)]
mod tests {
    use crate::wrangler::tests::{errors, ok};

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
}

//! Validation of a project manifest: everything it says is checked against the classes as they
//! are and as its new migrations will leave them (the migrations are simulated on the deployed
//! class names), before anything changes. A refusal is `InvalidManifest`, naming the class,
//! binding or migration at fault and the fix.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use wasmdo_protocol::manifest::{ClassManifest, Manifest, Migration, Rename};
use wasmdo_protocol::stubs::binding_wit_name;

use super::refuse;
use crate::error::ObjectError;
use crate::registry::{self, ClassSpec, Registry, validate_class_name};

/// Longest binding name.
const MAX_BINDING_NAME: usize = 64;

/// What a validated manifest asks for.
pub(super) struct Plan {
    /// The migrations not applied yet, in order.
    pub(super) migrations: Vec<Migration>,
    pub(super) classes: Vec<ClassSpec>,
    /// Every class after the migrations → the deployed class it is now (`None`: created by a
    /// migration).
    pub(super) after: BTreeMap<String, Option<String>>,
}

/// The classes as the new migrations leave them.
struct Simulated {
    /// Every class after the migrations → the deployed class it is now (`None`: created).
    after: BTreeMap<String, Option<String>>,
    /// Classes a new migration removed (deleted or renamed away), with why.
    gone: HashMap<String, String>,
}

/// Checks the manifest of project `name`, which has applied the migrations `applied`, against
/// the deployed classes of `registry`; nothing is changed.
pub(super) fn validate(
    registry: &Registry,
    name: &str,
    manifest: &Manifest,
    applied: &[String],
) -> Result<Plan, ObjectError> {
    check_project_name(name, manifest)?;
    let new = new_migrations(name, manifest, applied)?;
    let deployed = registry.list().iter().map(|v| v.name.to_string()).collect();
    let simulated = simulate(deployed, new)?;
    check_classes_listed(manifest, &simulated)?;
    let classes = (manifest.classes.iter())
        .map(|(class, spec)| class_spec(registry, class, spec, manifest, &simulated))
        .collect::<Result<Vec<_>, _>>()?;
    if let Some(entry) = &manifest.entry
        && !manifest.classes.contains_key(entry)
    {
        return Err(refuse(format!(
            "the entry `{entry}` is not one of the manifest's `classes`"
        )));
    }
    Ok(Plan {
        migrations: new.to_vec(),
        classes,
        after: simulated.after,
    })
}

fn check_project_name(name: &str, manifest: &Manifest) -> Result<(), ObjectError> {
    validate_class_name(name)
        .map_err(|_| refuse(format!("invalid project name `{name}`: use 1-64 letters, digits, `-` or `_`, starting with a letter or digit")))?;
    if let Some(named) = manifest.name.as_deref().filter(|n| *n != name) {
        return Err(refuse(format!(
            "the manifest names the project `{named}`, but it is deployed as `{name}` (PUT /_admin/projects/{name})"
        )));
    }
    Ok(())
}

/// The manifest's migrations not applied yet: tags are unique, and the applied ones come first,
/// unchanged.
fn new_migrations<'m>(
    name: &str,
    manifest: &'m Manifest,
    applied: &[String],
) -> Result<&'m [Migration], ObjectError> {
    let mut tags = BTreeSet::new();
    for migration in &manifest.migrations {
        if migration.tag.is_empty() {
            return Err(refuse("a migration has an empty `tag`"));
        }
        if !tags.insert(migration.tag.as_str()) {
            return Err(refuse(format!(
                "two migrations have the tag `{}`: tags must be unique",
                migration.tag
            )));
        }
    }
    let listed: Vec<&str> = manifest.migrations.iter().map(|m| m.tag.as_str()).collect();
    if listed.len() < applied.len() || listed[..applied.len()] != *applied {
        return Err(refuse(format!(
            "project `{name}` has applied the migrations [{}], but the manifest lists [{}]: applied migrations must stay, in order, at the start of the list; add new ones after them",
            applied.join(", "),
            listed.join(", ")
        )));
    }
    Ok(&manifest.migrations[applied.len()..])
}

/// Applies the `new` migrations, in order, to the `deployed` class names.
fn simulate(deployed: Vec<String>, new: &[Migration]) -> Result<Simulated, ObjectError> {
    let mut after: BTreeMap<String, Option<String>> =
        deployed.into_iter().map(|c| (c.clone(), Some(c))).collect();
    let mut gone: HashMap<String, String> = HashMap::new();
    for migration in new {
        let tag = &migration.tag;
        let check = |class: &str| {
            validate_class_name(class).map_err(|e| refuse(format!("migration `{tag}`: {e}")))
        };
        for class in migration
            .new_classes
            .iter()
            .chain(&migration.new_sqlite_classes)
        {
            check(class)?;
            // declaring a deployed class adopts it and its objects
            after.entry(class.clone()).or_insert(None);
            gone.remove(class);
        }
        for Rename { from, to } in &migration.renamed_classes {
            check(from)?;
            check(to)?;
            if from == to {
                return Err(refuse(format!(
                    "migration `{tag}` renames class `{from}` to itself"
                )));
            }
            let Some(was) = after.remove(from) else {
                return Err(refuse(format!(
                    "migration `{tag}` renames class `{from}`, which does not exist (it is neither deployed nor created by an earlier migration)"
                )));
            };
            if after.contains_key(to) {
                return Err(refuse(format!(
                    "migration `{tag}` renames class `{from}` to `{to}`, which already exists: delete `{to}` in an earlier migration, or pick another name"
                )));
            }
            after.insert(to.clone(), was);
            gone.remove(to);
            gone.insert(
                from.clone(),
                format!("migration `{tag}` renames class `{from}` to `{to}`"),
            );
        }
        for class in &migration.deleted_classes {
            check(class)?;
            if after.remove(class).is_none() {
                return Err(refuse(format!(
                    "migration `{tag}` deletes class `{class}`, which does not exist (it is neither deployed nor created by an earlier migration)"
                )));
            }
            gone.insert(
                class.clone(),
                format!("migration `{tag}` deletes class `{class}` (with its objects' storage)"),
            );
        }
    }
    Ok(Simulated { after, gone })
}

/// `classes` lists no class a migration removed, and every class a migration creates.
fn check_classes_listed(manifest: &Manifest, simulated: &Simulated) -> Result<(), ObjectError> {
    for class in manifest.classes.keys() {
        if let Some(why) = simulated.gone.get(class) {
            return Err(refuse(format!(
                "{why}, but `classes` still lists `{class}`: remove it from `classes`"
            )));
        }
    }
    for (class, deployed) in &simulated.after {
        if deployed.is_none() && !manifest.classes.contains_key(class) {
            return Err(refuse(format!(
                "a migration creates class `{class}`, but `classes` does not list it: add it with its component, or delete it in a later migration"
            )));
        }
    }
    Ok(())
}

/// One class of the manifest, checked: its name, its uploaded component, its environment and
/// its bindings (each naming a class of the manifest or one deployed after the migrations).
fn class_spec(
    registry: &Registry,
    class: &str,
    spec: &ClassManifest,
    manifest: &Manifest,
    simulated: &Simulated,
) -> Result<ClassSpec, ObjectError> {
    validate_class_name(class).map_err(|e| refuse(e.to_string()))?;
    if !registry::is_sha256_hex(&spec.component) {
        return Err(refuse(format!(
            "class `{class}`: `component` must be the SHA-256 of an uploaded component (64 lowercase hex characters), not `{}`",
            spec.component
        )));
    }
    if !registry.has_component(&spec.component) {
        return Err(refuse(format!(
            "class `{class}`: component {} has not been uploaded: upload it first (PUT /_admin/components)",
            spec.component
        )));
    }
    if spec.env.keys().any(String::is_empty) {
        return Err(refuse(format!(
            "class `{class}` has an environment variable with an empty name"
        )));
    }
    let mut wit_names: HashMap<String, &str> = HashMap::new();
    for (binding, target) in &spec.bindings {
        let valid = !binding.is_empty()
            && binding.len() <= MAX_BINDING_NAME
            && binding
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if !valid {
            return Err(refuse(format!(
                "class `{class}`: invalid binding name `{binding}`: use 1-{MAX_BINDING_NAME} letters, digits, `_` or `-`"
            )));
        }
        if let Some(other) = wit_names.insert(binding_wit_name(binding), binding) {
            return Err(refuse(format!(
                "class `{class}`: the bindings `{other}` and `{binding}` are the same name to a component (`{}`): rename one",
                binding_wit_name(binding)
            )));
        }
        if !manifest.classes.contains_key(target) && !simulated.after.contains_key(target) {
            let why = match simulated.gone.get(target) {
                Some(why) => format!(" ({why})"),
                None => String::new(),
            };
            return Err(refuse(format!(
                "class `{class}`: the binding `{binding}` names class `{target}`, which is neither in the manifest's `classes` nor deployed{why}"
            )));
        }
    }
    Ok(ClassSpec {
        name: class.to_string(),
        hash: spec.component.clone(),
        env: spec.env.clone(),
        bindings: spec.bindings.clone(),
    })
}

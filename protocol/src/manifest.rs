//! A project deploy: `PUT /_admin/projects/{name}` takes a [`Manifest`] naming components
//! uploaded before (`PUT /_admin/components`, by SHA-256), and wrangler's migrations as they are.
//! `wasmdo dev` and `wasmdo deploy --project` write it; the host validates and applies it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The body of `PUT /_admin/projects/{name}`.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// The project's name; if present, it must be the one in the path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The class whose `fetch` answers every request outside the host's routes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entry: Option<String>,
    /// Every class of the project, by name.
    #[serde(default)]
    pub classes: BTreeMap<String, ClassManifest>,
    /// The project's migrations, oldest first; each is applied once.
    #[serde(default)]
    pub migrations: Vec<Migration>,
}

/// One class of a [`Manifest`].
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ClassManifest {
    /// The SHA-256 (hex) of an uploaded component.
    pub component: String,
    /// Environment variables (`object.env`).
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Binding name (`ROOMS`) → the class its objects may call.
    #[serde(default)]
    pub bindings: BTreeMap<String, String>,
}

/// One migration, as wrangler's `[[migrations]]`. Within one, classes are created, then
/// renamed, then deleted, each list in its order.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Migration {
    /// Names the migration; unique within the project.
    pub tag: String,
    /// Classes declared (SQLite-backed, as every class here).
    #[serde(default)]
    pub new_classes: Vec<String>,
    /// Classes declared; the same as `new_classes` on this host.
    #[serde(default)]
    pub new_sqlite_classes: Vec<String>,
    /// Classes renamed: their objects keep their ids and storage.
    #[serde(default)]
    pub renamed_classes: Vec<Rename>,
    /// Classes deleted with every object's storage and alarm.
    #[serde(default)]
    pub deleted_classes: Vec<String>,
}

/// A class renamed by a [`Migration`].
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Rename {
    /// The class's name before.
    pub from: String,
    /// Its name after.
    pub to: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manifest_round_trips_and_refuses_unknown_keys() {
        let manifest = Manifest {
            name: Some("chat".into()),
            entry: Some("chat".into()),
            classes: [(
                "Room".to_string(),
                ClassManifest {
                    component: "ab".into(),
                    ..Default::default()
                },
            )]
            .into(),
            migrations: vec![Migration {
                tag: "v1".into(),
                renamed_classes: vec![Rename {
                    from: "A".into(),
                    to: "B".into(),
                }],
                ..Default::default()
            }],
        };
        let json = serde_json::to_string(&manifest).unwrap();
        assert_eq!(serde_json::from_str::<Manifest>(&json).unwrap(), manifest);
        let typo = r#"{"classes": {}, "migration": []}"#;
        assert!(serde_json::from_str::<Manifest>(typo).is_err());
    }
}

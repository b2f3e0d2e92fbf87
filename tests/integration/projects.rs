//! Project deploys: components uploaded by content hash (`PUT /_admin/components`), then a
//! manifest (`PUT /_admin/projects/{name}`) deploying a project's classes with their env and
//! bindings, its entry Worker and its migrations (a renamed class keeps its objects' data and
//! ids, a deleted one loses them). Fixtures: `storage_kv`, `object_info`, `alarms_basic`,
//! `rpc_calls` + `rpc_types` (bindings to each other and to itself), `worker_front`.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use wasmdo_test_artifacts::{
    ALARMS_BASIC, OBJECT_INFO, REGISTRY_MISSING_HANDLER, RPC_CALLS, RPC_TYPES, STORAGE_KV,
    WEBSOCKETS_BASIC, WORKER_FRONT,
};

use crate::harness::{Reply, TestHost};

/// Uploads the component at `path`; returns its hash.
fn upload(host: &TestHost, path: &str) -> String {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("read {path}: {e}"));
    let reply = host
        .request("PUT", "/_admin/components", &bytes)
        .expect(201);
    reply["hash"].as_str().expect("hash").to_string()
}

fn deploy(host: &TestHost, project: &str, manifest: &Value) -> Reply {
    let body = serde_json::to_vec(manifest).expect("json");
    host.request("PUT", &format!("/_admin/projects/{project}"), &body)
}

/// Every deployed class with its version.
fn classes(host: &TestHost) -> Vec<(String, u64)> {
    let list = host.request("GET", "/_admin/classes", b"").expect(200);
    (list.as_array().expect("a list").iter())
        .map(|c| {
            let name = c["class"].as_str().expect("class").to_string();
            (name, c["version"].as_u64().expect("version"))
        })
        .collect()
}

fn projects_json(host: &TestHost) -> Option<String> {
    std::fs::read_to_string(host.data.join("projects.json")).ok()
}

fn id_from_name(host: &TestHost, class: &str, name: &str) -> String {
    let reply = host.request(
        "GET",
        &format!("/_admin/classes/{class}/id-from-name/{name}"),
        b"",
    );
    reply.expect(200)["id"].as_str().expect("id").to_string()
}

/// `<data>/objects/<namespace>/<2 hex>/<id>.sqlite`.
fn database(host: &TestHost, namespace: &str, id: &str) -> PathBuf {
    (host.data.join("objects").join(namespace))
        .join(&id[..2])
        .join(format!("{id}.sqlite"))
}

#[test]
fn components_are_stored_by_content_hash_once() {
    let host = TestHost::start();
    let bytes = std::fs::read(STORAGE_KV).unwrap();
    let first = host
        .request("PUT", "/_admin/components", &bytes)
        .expect(201);
    let hash = hex::encode(Sha256::digest(&bytes));
    assert_eq!(first, json!({ "hash": hash, "size": bytes.len() }));
    let stored = host.data.join("components").join(format!("{hash}.wasm"));
    assert_eq!(std::fs::read(&stored).unwrap(), bytes);
    // again: the same answer, nothing new
    let again = host
        .request("PUT", "/_admin/components", &bytes)
        .expect(201);
    assert_eq!(again, first);
    assert_eq!(
        std::fs::read_dir(host.data.join("components"))
            .unwrap()
            .count(),
        1
    );
    // no class was deployed by an upload
    assert_eq!(classes(&host), vec![]);
    // uploads run at once, the same bytes included
    let other = std::fs::read(OBJECT_INFO).unwrap();
    std::thread::scope(|scope| {
        for bytes in [&other, &other, &bytes] {
            let host = &host;
            scope.spawn(move || host.request("PUT", "/_admin/components", bytes).expect(201));
        }
    });
    assert_eq!(
        std::fs::read_dir(host.data.join("components"))
            .unwrap()
            .count(),
        2
    );
    let refused = host.request("PUT", "/_admin/components", b"\0asm\x01\0\0\0");
    let message = refused.expect_error(400, "InvalidComponent");
    assert!(message.contains("core WebAssembly module"), "{message}");
}

#[test]
fn a_project_deploys_its_classes_with_env_bindings_and_entry_which_survive_a_restart() {
    // wasmdo.toml's settings for a class are merged over the project's: a name in both takes
    // wasmdo.toml's value
    let mut host = TestHost::with_config(
        r#"
[classes.Info]
env = { FROM_CONFIG = "config", BOTH = "from wasmdo.toml" }
"#,
    );
    let manifest = json!({
        "name": "site",
        "entry": "front",
        "classes": {
            "Info": {
                "component": upload(&host, OBJECT_INFO),
                "env": { "GREETING": "hello", "BOTH": "from the project" },
            },
            "front": {
                "component": upload(&host, WORKER_FRONT),
                "bindings": { "ROOMS": "Info" },
            },
        },
        "migrations": [{ "tag": "v1", "new_sqlite_classes": ["Info"] }],
    });
    let reply = deploy(&host, "site", &manifest).expect(200);
    assert_eq!(reply["project"], "site");
    assert_eq!(reply["entry"], "front");
    assert_eq!(reply["migrations_applied"], json!(["v1"]));
    let described: Vec<&str> = (reply["classes"].as_array().unwrap().iter())
        .map(|c| c["class"].as_str().unwrap())
        .collect();
    assert_eq!(described, ["Info", "front"]);
    assert_eq!(reply["deployed"], json!(["Info", "front"]));

    let check = |host: &TestHost| {
        let env = |key: &str| host.call("Info", "a", "env", json!([key]));
        assert_eq!(env("GREETING"), "hello");
        assert_eq!(env("FROM_CONFIG"), "config");
        assert_eq!(env("BOTH"), "from wasmdo.toml");
        // the entry Worker answers outside the host's routes, through its binding to `Info`
        let through = host
            .request("GET", "/rooms/lobby/hello?x=1", b"")
            .expect(200);
        assert_eq!(through["path"], "/hello");
        assert_eq!(through["query"], "x=1");
    };
    check(&host);
    let projects = host
        .request("GET", "/_admin/projects/site", b"")
        .expect(200);
    assert_eq!(
        projects,
        json!({ "project": "site", "entry": "front", "classes": ["Info", "front"], "migrations": ["v1"] })
    );
    // a class deploy outside the project keeps the project's settings
    host.deploy("Info", OBJECT_INFO).expect(201);
    check(&host);
    host.crash_and_restart();
    check(&host);
    assert_eq!(classes(&host), [("Info".into(), 2), ("front".into(), 1)]);
}

#[test]
fn the_same_manifest_twice_applies_its_migrations_once_and_bumps_no_version() {
    let host = TestHost::start();
    let kv = upload(&host, STORAGE_KV);
    let manifest = json!({
        "classes": { "Store": { "component": kv, "env": { "A": "1" } } },
        "migrations": [{ "tag": "v1", "new_classes": ["Store"] }],
    });
    let first = deploy(&host, "p", &manifest).expect(200);
    assert_eq!(first["migrations_applied"], json!(["v1"]));
    let written = projects_json(&host).expect("projects.json");
    let again = deploy(&host, "p", &manifest).expect(200);
    assert_eq!(again["migrations_applied"], json!([]));
    assert_eq!(again["deployed"], json!([]));
    assert_eq!(again["classes"], first["classes"]);
    assert_eq!(projects_json(&host).unwrap(), written);
    // changed settings alone make a new version
    let mut changed = manifest.clone();
    changed["classes"]["Store"]["env"]["A"] = json!("2");
    let third = deploy(&host, "p", &changed).expect(200);
    assert_eq!(third["deployed"], json!(["Store"]));
    assert_eq!(classes(&host), [("Store".into(), 2)]);
}

#[test]
fn classes_of_one_project_may_bind_each_other_and_themselves() {
    let host = TestHost::start();
    // `calls` binds `types` (deployed in the same manifest, after it by name) and itself
    let manifest = json!({
        "classes": {
            "calls": {
                "component": upload(&host, RPC_CALLS),
                "bindings": { "TYPES": "types", "PEER": "calls" },
            },
            "types": { "component": upload(&host, RPC_TYPES) },
        },
    });
    deploy(&host, "rpc", &manifest).expect(200);
    assert_eq!(
        host.call("calls", "a", "add-remote", json!(["t", 2, 3])),
        json!(5)
    );
    assert_eq!(
        host.call("calls", "a", "bounce", json!(["", "b"])),
        json!("pong")
    );
    // a stub that does not fit its bound class is refused before anything is deployed
    let wrong = json!({
        "classes": {
            "calls": {
                "component": upload(&host, RPC_CALLS),
                "bindings": { "TYPES": "kv", "PEER": "calls" },
            },
            "kv": { "component": upload(&host, STORAGE_KV) },
        },
    });
    let message = deploy(&host, "rpc", &wrong).expect_error(400, "InvalidComponent");
    assert!(message.contains("calls"), "{message}");
    assert_eq!(classes(&host), [("calls".into(), 1), ("types".into(), 1)]);
}

#[test]
fn a_renamed_class_keeps_its_objects_data_ids_and_alarms() {
    let mut host = TestHost::start();
    let (kv, alarms) = (upload(&host, STORAGE_KV), upload(&host, ALARMS_BASIC));
    let v1 = json!({ "tag": "v1", "new_classes": ["Store", "Timer"] });
    let before = json!({
        "classes": { "Store": { "component": kv }, "Timer": { "component": alarms } },
        "migrations": [v1],
    });
    deploy(&host, "p", &before).expect(200);
    host.call("Store", "alice", "put", json!(["a", "1"]));
    let id = id_from_name(&host, "Store", "alice");
    let file = database(&host, "Store", &id);
    assert!(file.exists(), "{}", file.display());
    // an alarm due after the rename
    let due = host.call("Timer", "t", "set-in", json!([5000]));

    let after = json!({
        "classes": { "Vault": { "component": kv }, "Clock": { "component": alarms } },
        "migrations": [v1, {
            "tag": "v2",
            "renamed_classes": [{ "from": "Store", "to": "Vault" }, { "from": "Timer", "to": "Clock" }],
        }],
    });
    let reply = deploy(&host, "p", &after).expect(200);
    assert_eq!(reply["migrations_applied"], json!(["v2"]));
    // the old names are gone, the new ones have the objects
    host.request("GET", "/_admin/classes/Store", b"")
        .expect_error(404, "UnknownClass");
    assert_eq!(host.call("Vault", "alice", "get", json!(["a"])), json!("1"));
    assert_eq!(id_from_name(&host, "Vault", "alice"), id);
    assert!(host.call("Vault", &format!("id:{id}"), "get", json!(["a"])) == json!("1"));
    let vault = host
        .request("GET", "/_admin/classes/Vault", b"")
        .expect(200);
    assert_eq!(vault["namespace"], "Store");
    // no file moved
    assert!(file.exists());
    assert!(!host.data.join("objects").join("Vault").exists());
    // the alarm set under the old name is still pending, and fires for the new one
    assert_eq!(host.call("Clock", "t", "get", json!([])), due);
    assert_eq!(host.metric("wasmdo_pending_alarms"), 1);
    host.wait_for(Duration::from_secs(20), "the alarm", || {
        let deliveries = host.call("Clock", "t", "deliveries", json!([]));
        deliveries.as_array().is_some_and(|d| d.len() == 1)
    });
    let deliveries = host.call("Clock", "t", "deliveries", json!([]));
    assert_eq!(deliveries[0]["name"], "t");
    // and all of it holds after a restart
    host.crash_and_restart();
    assert_eq!(host.call("Vault", "alice", "get", json!(["a"])), json!("1"));
    assert_eq!(id_from_name(&host, "Vault", "alice"), id);
    // a new class may take the old name: it gets a namespace of its own
    let again = json!({
        "classes": { "Vault": { "component": kv }, "Clock": { "component": alarms }, "Store": { "component": kv } },
        "migrations": [v1, after["migrations"][1], { "tag": "v3", "new_classes": ["Store"] }],
    });
    deploy(&host, "p", &again).expect(200);
    assert_eq!(
        host.call("Store", "alice", "get", json!(["a"])),
        json!(null)
    );
    assert_ne!(id_from_name(&host, "Store", "alice"), id);
    assert_eq!(host.call("Vault", "alice", "get", json!(["a"])), json!("1"));
}

#[test]
fn the_websockets_of_a_renamed_class_are_closed_for_clients_to_reconnect() {
    let host = TestHost::start();
    let rooms = upload(&host, WEBSOCKETS_BASIC);
    let v1 = json!({ "tag": "v1", "new_classes": ["Room"] });
    deploy(
        &host,
        "chat",
        &json!({ "classes": { "Room": { "component": rooms } }, "migrations": [v1] }),
    )
    .expect(200);
    let url = format!(
        "{}/objects/Room/lobby/ws",
        host.url.replace("http://", "ws://")
    );
    let (mut client, _) = tungstenite::connect(&url).expect("connect");
    assert!(matches!(
        client.read().expect("welcome"),
        tungstenite::Message::Text(_)
    ));
    let renamed = json!({
        "classes": { "Hall": { "component": rooms } },
        "migrations": [v1, { "tag": "v2", "renamed_classes": [{ "from": "Room", "to": "Hall" }] }],
    });
    deploy(&host, "chat", &renamed).expect(200);
    let closed = loop {
        match client.read() {
            Ok(tungstenite::Message::Close(frame)) => break frame,
            Ok(_) => continue,
            Err(e) => panic!("expected a close frame, got {e}"),
        }
    };
    assert_eq!(closed.map(|f| u16::from(f.code)), Some(1012));
    // the room, renamed, takes new clients
    let url = format!(
        "{}/objects/Hall/lobby/ws",
        host.url.replace("http://", "ws://")
    );
    let (mut client, _) = tungstenite::connect(&url).expect("reconnect");
    assert!(matches!(
        client.read().expect("welcome"),
        tungstenite::Message::Text(_)
    ));
}

#[test]
fn a_deleted_class_loses_its_objects_storage_and_alarms() {
    let host = TestHost::start();
    let (kv, alarms) = (upload(&host, STORAGE_KV), upload(&host, ALARMS_BASIC));
    let v1 = json!({ "tag": "v1", "new_classes": ["Store", "Timer"] });
    let manifest = json!({
        "classes": { "Store": { "component": kv }, "Timer": { "component": alarms } },
        "migrations": [v1],
    });
    deploy(&host, "p", &manifest).expect(200);
    host.call("Store", "alice", "put", json!(["a", "1"]));
    host.call("Timer", "t", "set-in", json!([60_000]));
    assert_eq!(host.metric("wasmdo_pending_alarms"), 1);
    let id = id_from_name(&host, "Store", "alice");
    assert!(database(&host, "Store", &id).exists());

    let deleted = json!({
        "classes": {},
        "migrations": [v1, { "tag": "v2", "deleted_classes": ["Store", "Timer"] }],
    });
    let reply = deploy(&host, "p", &deleted).expect(200);
    assert_eq!(reply["migrations_applied"], json!(["v2"]));
    assert_eq!(classes(&host), vec![]);
    assert!(!host.data.join("objects").join("Store").exists());
    assert!(!host.data.join("objects").join("Timer").exists());
    assert_eq!(host.metric("wasmdo_pending_alarms"), 0);
    host.rpc("Store", "alice", "get", json!(["a"]))
        .expect_error(404, "UnknownClass");
    // created again, the class starts empty
    let again = json!({
        "classes": { "Store": { "component": kv } },
        "migrations": [v1, deleted["migrations"][1], { "tag": "v3", "new_classes": ["Store"] }],
    });
    deploy(&host, "p", &again).expect(200);
    assert_eq!(
        host.call("Store", "alice", "get", json!(["a"])),
        json!(null)
    );
}

#[test]
fn a_migration_interrupted_by_a_crash_is_finished_at_start() {
    let mut host = TestHost::start();
    let kv = upload(&host, STORAGE_KV);
    let v1 = json!({ "tag": "v1", "new_classes": ["Store"] });
    let manifest = json!({ "classes": { "Store": { "component": kv } }, "migrations": [v1] });
    deploy(&host, "p", &manifest).expect(200);
    host.call("Store", "alice", "put", json!(["a", "1"]));
    // the host dies right after recording that it starts migration v2
    host.kill();
    let path = host.data.join("projects.json");
    let mut file: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let v2 = json!({ "tag": "v2", "renamed_classes": [{ "from": "Store", "to": "Vault" }] });
    file["pending"] = json!({ "project": "p", "migration": v2 });
    std::fs::write(&path, serde_json::to_vec(&file).unwrap()).unwrap();
    host.crash_and_restart();
    assert_eq!(classes(&host), [("Vault".into(), 1)]);
    assert_eq!(host.call("Vault", "alice", "get", json!(["a"])), json!("1"));
    let project = host.request("GET", "/_admin/projects/p", b"").expect(200);
    assert_eq!(project["migrations"], json!(["v1", "v2"]));
    // the next deploy goes on from there
    let next = json!({ "classes": { "Vault": { "component": kv } }, "migrations": [v1, v2] });
    assert_eq!(
        deploy(&host, "p", &next).expect(200)["migrations_applied"],
        json!([])
    );
}

#[test]
fn a_refused_manifest_changes_nothing() {
    let host = TestHost::start();
    let (kv, info) = (upload(&host, STORAGE_KV), upload(&host, OBJECT_INFO));
    let bad_component = upload(&host, REGISTRY_MISSING_HANDLER);
    let v1 = json!({ "tag": "v1", "new_classes": ["Store", "Other"] });
    let base = json!({
        "classes": { "Store": { "component": kv }, "Other": { "component": info } },
        "migrations": [v1],
    });
    deploy(&host, "p", &base).expect(200);
    host.call("Store", "alice", "put", json!(["a", "1"]));
    let (classes_before, projects_before) = (classes(&host), projects_json(&host));

    let with = |change: &dyn Fn(&mut Value)| {
        let mut manifest = base.clone();
        change(&mut manifest);
        manifest
    };
    let rename = |from: &str, to: &str| json!({ "tag": "v2", "renamed_classes": [{ "from": from, "to": to }] });
    let cases: Vec<(Value, &str, &str)> = vec![
        (
            with(&|m| m["classes"]["Store"]["component"] = json!("0".repeat(64))),
            "InvalidManifest",
            "has not been uploaded",
        ),
        (
            with(&|m| m["classes"]["Store"]["component"] = json!("../../etc/passwd")),
            "InvalidManifest",
            "SHA-256",
        ),
        (
            with(&|m| m["classes"]["Store"]["bindings"] = json!({ "NOPE": "Nowhere" })),
            "InvalidManifest",
            "`Nowhere`, which is neither in the manifest's `classes` nor deployed",
        ),
        (
            with(&|m| m["entry"] = json!("front")),
            "InvalidManifest",
            "the entry `front` is not one of the manifest's `classes`",
        ),
        (
            with(&|m| m["migrations"] = json!([v1, rename("Ghost", "Spirit")])),
            "InvalidManifest",
            "renames class `Ghost`, which does not exist",
        ),
        (
            with(&|m| m["migrations"] = json!([v1, rename("Store", "Other")])),
            "InvalidManifest",
            "to `Other`, which already exists",
        ),
        (
            with(&|m| m["migrations"] = json!([v1, { "tag": "v2", "deleted_classes": ["Store"] }])),
            "InvalidManifest",
            "but `classes` still lists `Store`",
        ),
        (
            with(&|m| m["migrations"] = json!([v1, rename("Store", "Vault")])),
            "InvalidManifest",
            "but `classes` still lists `Store`",
        ),
        (
            with(&|m| m["migrations"] = json!([{ "tag": "v0" }, v1])),
            "InvalidManifest",
            "applied migrations must stay, in order, at the start",
        ),
        (
            with(&|m| m["migrations"] = json!([])),
            "InvalidManifest",
            "has applied the migrations [v1], but the manifest lists []",
        ),
        (
            with(&|m| m["migrations"] = json!([v1, { "tag": "v2" }, { "tag": "v2" }])),
            "InvalidManifest",
            "two migrations have the tag `v2`",
        ),
        (
            with(&|m| m["migrations"] = json!([v1, { "tag": "v2", "new_classes": ["Lonely"] }])),
            "InvalidManifest",
            "a migration creates class `Lonely`, but `classes` does not list it",
        ),
        (
            with(&|m| m["migrations"][0]["transferred_classes"] = json!([])),
            "InvalidManifest",
            "unknown field `transferred_classes`",
        ),
        (
            with(&|m| m["name"] = json!("other")),
            "InvalidManifest",
            "names the project `other`",
        ),
        // a class that is not a Durable Object component: refused before the rename is applied
        (
            with(&|m| {
                m["classes"] = json!({ "Vault": { "component": kv }, "Other": { "component": bad_component } });
                m["migrations"] = json!([v1, rename("Store", "Vault")]);
            }),
            "InvalidComponent",
            "class `Other`",
        ),
    ];
    for (manifest, kind, expected) in cases {
        let message = deploy(&host, "p", &manifest).expect_error(400, kind);
        assert!(
            message.contains(expected),
            "{expected:?} not in {message:?}"
        );
        assert_eq!(classes(&host), classes_before, "after: {message}");
        assert_eq!(projects_json(&host), projects_before, "after: {message}");
    }
    let message = host
        .request("PUT", "/_admin/projects/p", b"{ not json")
        .expect_error(400, "InvalidManifest");
    assert!(message.contains("the manifest is not valid"), "{message}");
    assert_eq!(host.call("Store", "alice", "get", json!(["a"])), json!("1"));
}

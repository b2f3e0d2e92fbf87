//! Project manifests (`PUT /_admin/projects/{name}`) into a real host: structured manifests
//! built from a small vocabulary of class names, components and migrations (so deploys,
//! renames and deletes really happen), and raw bytes. Every manifest is deployed (200) or
//! refused with a JSON error (4xx) — never a 5xx — and the host lives.
#![no_main]

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use arbitrary::Unstructured;
use libfuzzer_sys::fuzz_target;
use serde_json::{Value, json};
use wasmdo_fuzz::{InProcessHost, assert_json_error};

const NAMES: [&str; 9] = [
    "kv", "counter", "rooms", "Room", "a", "b-2", "", "bad name", "x.y",
];
const PROJECTS: [&str; 3] = ["app", "other", "bad/name"];

/// The hashes of the components uploaded to the host (plus one never uploaded, and a
/// malformed one); a class deployed first.
fn hashes() -> &'static Vec<String> {
    static HASHES: OnceLock<Vec<String>> = OnceLock::new();
    HASHES.get_or_init(|| {
        let host = InProcessHost::get("");
        let mut hashes = Vec::new();
        for path in [
            wasmdo_test_artifacts::STORAGE_KV,
            wasmdo_test_artifacts::EXAMPLE_COUNTER,
        ] {
            let bytes = std::fs::read(path).expect("a fixture");
            let (status, body) = host.request("PUT", "/_admin/components", &bytes);
            assert_eq!(status, 201, "{}", String::from_utf8_lossy(&body));
            let reply: Value = serde_json::from_slice(&body).expect("JSON");
            hashes.push(reply["hash"].as_str().expect("a hash").to_owned());
            let (status, _) = host.request("PUT", "/_admin/classes/kv", &bytes);
            assert_eq!(status, 201);
        }
        hashes.push("0".repeat(64));
        hashes.push("not-a-hash".into());
        hashes
    })
}

fn name(u: &mut Unstructured<'_>) -> arbitrary::Result<String> {
    Ok(NAMES[u.choose_index(NAMES.len())?].to_owned())
}

fn names(u: &mut Unstructured<'_>) -> arbitrary::Result<Vec<String>> {
    let n = u.int_in_range(0..=3)?;
    (0..n).map(|_| name(u)).collect()
}

fn manifest(u: &mut Unstructured<'_>, hashes: &[String]) -> arbitrary::Result<Value> {
    let mut classes = serde_json::Map::new();
    for _ in 0..u.int_in_range(0..=3)? {
        let mut bindings = serde_json::Map::new();
        for _ in 0..u.int_in_range(0..=2)? {
            bindings.insert(name(u)?.to_uppercase(), Value::String(name(u)?));
        }
        classes.insert(
            name(u)?,
            json!({
                "component": hashes[u.choose_index(hashes.len())?],
                "env": { "K": name(u)? },
                "bindings": bindings,
            }),
        );
    }
    let mut migrations = Vec::new();
    for i in 0..u.int_in_range(0..=3)? {
        let renamed: Vec<Value> = (0..u.int_in_range(0..=2)?)
            .map(|_| Ok(json!({ "from": name(u)?, "to": name(u)? })))
            .collect::<arbitrary::Result<_>>()?;
        let tag = if u.arbitrary()? {
            format!("v{i}")
        } else {
            name(u)?
        };
        migrations.push(json!({
            "tag": tag,
            "new_classes": names(u)?,
            "new_sqlite_classes": names(u)?,
            "renamed_classes": renamed,
            "deleted_classes": names(u)?,
        }));
    }
    let mut manifest = json!({ "classes": classes, "migrations": migrations });
    if u.arbitrary()? {
        manifest["entry"] = Value::String(name(u)?);
    }
    if u.arbitrary()? {
        manifest["name"] = Value::String(PROJECTS[u.choose_index(PROJECTS.len())?].into());
    }
    Ok(manifest)
}

fuzz_target!(|data: &[u8]| {
    static RUNS: AtomicU64 = AtomicU64::new(0);
    let hashes = hashes();
    let host = InProcessHost::get("");
    let n = RUNS.fetch_add(1, Ordering::Relaxed);
    let mut u = Unstructured::new(data);
    let project = PROJECTS[usize::from(data.first().copied().unwrap_or(0)) % PROJECTS.len()];
    let body = match data.first().is_some_and(|b| b & 0x80 != 0) {
        // raw bytes: whatever a client might send
        true => data[1..].to_vec(),
        false => match manifest(&mut u, hashes) {
            Ok(manifest) => serde_json::to_vec(&manifest).expect("JSON"),
            Err(_) => return,
        },
    };
    let (status, reply) = host.request("PUT", &format!("/_admin/projects/{project}"), &body);
    match status {
        200 => {}
        400..=499 | 503 => assert_json_error(status, &reply),
        other => panic!(
            "a manifest answered {other}: {}\nmanifest: {}",
            String::from_utf8_lossy(&reply),
            String::from_utf8_lossy(&body)
        ),
    }
    if n % 32 == 0 {
        host.assert_alive();
    }
});

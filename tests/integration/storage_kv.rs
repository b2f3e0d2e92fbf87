//! The storage API end to end: KV, list options, SQL (errors as data), explicit and implicit
//! transactions, limits, durability across a crash.

use serde_json::json;
use wasmdo_test_artifacts::STORAGE_KV;

use crate::harness::{TestHost, post_concurrently, walk};

pub(crate) const COVERS: () = ();

fn host() -> TestHost {
    let host = TestHost::start();
    host.deploy("kv", STORAGE_KV).expect(201);
    host
}

#[test]
fn kv_round_trip_get_many_and_delete() {
    let host = host();
    assert_eq!(host.call("kv", "o", "get", json!(["a"])), json!(null));
    host.call("kv", "o", "put", json!(["a", "1"]));
    host.call("kv", "o", "put-many", json!([[["b", "2"], ["c", "3"]]]));
    assert_eq!(host.call("kv", "o", "get", json!(["a"])), "1");
    assert_eq!(
        host.call("kv", "o", "get-many", json!([["c", "missing", "a"]])),
        json!([["a", "1"], ["c", "3"]])
    );
    assert_eq!(host.call("kv", "o", "delete", json!(["a"])), true);
    assert_eq!(host.call("kv", "o", "delete", json!(["a"])), false);
    assert_eq!(
        host.call("kv", "o", "delete-many", json!([["b", "c", "zz"]])),
        2
    );
    assert_eq!(
        host.call("kv", "o", "get-many", json!([["a", "b", "c"]])),
        json!([])
    );
}

#[test]
fn list_honours_prefix_start_end_limit_and_reverse() {
    let host = host();
    let entries: Vec<_> = ["a1", "a2", "a3", "b1", "b2"]
        .iter()
        .map(|k| json!([k, k.to_uppercase()]))
        .collect();
    host.call("kv", "o", "put-many", json!([entries]));
    let keys = |args: serde_json::Value| -> Vec<String> {
        host.call("kv", "o", "list", args)
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e[0].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(
        keys(json!([null, null, null, null, false])),
        ["a1", "a2", "a3", "b1", "b2"]
    );
    assert_eq!(
        keys(json!(["a", null, null, null, false])),
        ["a1", "a2", "a3"]
    );
    assert_eq!(
        keys(json!([null, "a2", "b2", null, false])),
        ["a2", "a3", "b1"]
    );
    assert_eq!(keys(json!([null, null, null, 2, true])), ["b2", "b1"]);
    assert_eq!(keys(json!(["b", null, null, 1, true])), ["b2"]);
    let values = host.call("kv", "o", "list", json!(["b1", null, null, null, false]));
    assert_eq!(values, json!([["b1", "B1"]]));
    host.call("kv", "o", "delete-all", json!([]));
    assert_eq!(
        keys(json!([null, null, null, null, false])),
        Vec::<String>::new()
    );
}

#[test]
fn sql_returns_columns_rows_and_counts_and_errors_as_data() {
    let host = host();
    let ok = |q: &str, params: serde_json::Value| -> serde_json::Value {
        let text = host.call("kv", "o", "sql", json!([q, params]));
        serde_json::from_str(text.as_str().unwrap()).unwrap()
    };
    ok(
        "CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT)",
        json!([]),
    );
    let inserted = ok(
        "INSERT INTO t (name) VALUES (?), (?)",
        json!(["ann", "bob"]),
    );
    assert_eq!(inserted["rowsWritten"], 2);
    let rows = ok(
        "SELECT id, name FROM t WHERE name != ? ORDER BY id",
        json!(["zed"]),
    );
    assert_eq!(rows["columns"], json!(["id", "name"]));
    assert_eq!(rows["rows"], json!([[1, "ann"], [2, "bob"]]));
    assert!(rows["rowsRead"].as_u64().unwrap() >= 2);
    // errors come back as data: the method's own err (422), the object keeps working
    let bad = host.rpc("kv", "o", "sql", json!(["SELEC nonsense", []]));
    let value = bad.expect(422)["value"].clone();
    assert!(value.as_str().unwrap().contains("syntax error"), "{value}");
    let missing = host.rpc("kv", "o", "sql", json!(["SELECT * FROM nope", []]));
    assert!(
        missing.expect(422)["value"]
            .as_str()
            .unwrap()
            .contains("no such table")
    );
    // the host's own tables are out of reach of user SQL
    let denied = host.rpc("kv", "o", "sql", json!(["SELECT * FROM _cf_KV", []]));
    assert_eq!(denied.status, 422, "{}", denied.text);
    let begin = host.rpc("kv", "o", "sql", json!(["BEGIN", []]));
    assert_eq!(begin.status, 422, "{}", begin.text);
    assert_eq!(
        ok("SELECT count(*) AS n FROM t", json!([]))["rows"],
        json!([[2]])
    );
}

#[test]
fn explicit_transactions_commit_roll_back_and_nest() {
    let host = host();
    host.call("kv", "o", "tx", json!(["kept", "1", true]));
    host.call("kv", "o", "tx", json!(["dropped", "1", false]));
    assert_eq!(host.call("kv", "o", "get", json!(["kept"])), "1");
    assert_eq!(host.call("kv", "o", "get", json!(["dropped"])), json!(null));
    assert_eq!(host.call("kv", "o", "nested-tx", json!([])), "1");
}

#[test]
fn a_method_error_rolls_back_the_events_writes() {
    let host = host();
    host.rpc("kv", "o", "fail-after-put", json!(["k", "v"]))
        .expect(422);
    assert_eq!(host.call("kv", "o", "get", json!(["k"])), json!(null));
}

#[test]
fn oversize_values_are_refused_as_data_and_nothing_is_written() {
    let host = TestHost::with_config("[limits]\nmax-entry-bytes = 1000\n");
    host.deploy("kv", STORAGE_KV).expect(201);
    host.call("kv", "o", "put-size", json!(["small", 900]));
    let err = host
        .rpc("kv", "o", "put-size", json!(["big", 2000]))
        .expect(422);
    assert!(
        err["value"].as_str().unwrap().contains("value-too-large"),
        "{err}"
    );
    assert_eq!(host.call("kv", "o", "get", json!(["big"])), json!(null));
    assert!(host.call("kv", "o", "size", json!([])).as_u64().unwrap() > 0);
}

#[test]
fn acknowledged_writes_survive_kill_9() {
    let mut host = host();
    for i in 0..50 {
        host.call(
            "kv",
            &format!("o{}", i % 5),
            "put",
            json!([format!("k{i}"), format!("v{i}")]),
        );
    }
    host.crash_and_restart();
    for i in 0..50 {
        assert_eq!(
            host.call(
                "kv",
                &format!("o{}", i % 5),
                "get",
                json!([format!("k{i}")])
            ),
            format!("v{i}")
        );
    }
}

#[test]
fn concurrent_writes_to_one_object_are_serialized_and_all_durable() {
    let mut host = host();
    // 8 writers, 25 distinct keys each
    post_concurrently(&host.url, 8, 200, |i| {
        ("/rpc/kv/hot/put".to_string(), format!("[\"k{i}\", \"x\"]"))
    });
    host.crash_and_restart();
    let all = host.call("kv", "hot", "list", json!([null, null, null, null, false]));
    assert_eq!(all.as_array().unwrap().len(), 200);
}

#[test]
fn thousands_of_objects_do_not_hold_thousands_of_open_files() {
    // evicted objects' databases stay open (parked) for their next activation, up to
    // max-open-databases
    let host = TestHost::with_config(
        "[limits]\nmax-live-objects = 50\nmax-open-databases = 150\ndurable-commits = false\n",
    );
    host.deploy("kv", STORAGE_KV).expect(201);
    let objects = 1200;
    for i in 0..objects {
        host.call(
            "kv",
            &format!("obj-{i}"),
            "put",
            json!(["k", format!("{i}")]),
        );
    }
    let fds = std::fs::read_dir(format!("/proc/{}/fd", host.pid()))
        .unwrap()
        .count();
    assert!(
        fds < 400,
        "{fds} open file descriptors for {objects} objects"
    );
    assert!(host.metric("wasmdo_live_objects") <= 50);
    assert!(host.metric("wasmdo_open_databases") <= 150);
    // every object kept its data through eviction
    for i in (0..objects).step_by(97) {
        assert_eq!(
            host.call("kv", &format!("obj-{i}"), "get", json!(["k"])),
            format!("{i}")
        );
    }
}

#[test]
fn live_objects_beyond_the_open_database_cap_close_their_files_between_batches() {
    let host = TestHost::with_config(
        "[limits]\nmax-live-objects = 2000\nmax-open-databases = 40\ndurable-commits = false\n",
    );
    host.deploy("kv", STORAGE_KV).expect(201);
    for i in 0..300 {
        host.call(
            "kv",
            &format!("obj-{i}"),
            "put",
            json!(["k", format!("{i}")]),
        );
    }
    assert_eq!(host.metric("wasmdo_live_objects"), 300, "objects stay live");
    assert!(host.metric("wasmdo_open_databases") <= 40);
    let fds = std::fs::read_dir(format!("/proc/{}/fd", host.pid()))
        .unwrap()
        .count();
    assert!(fds < 250, "{fds} open file descriptors");
    // a live object whose database was closed reopens it transparently
    assert_eq!(host.call("kv", "obj-0", "get", json!(["k"])), "0");
    // reading a never-written object creates no file
    assert_eq!(
        host.call("kv", "never-written", "get", json!(["k"])),
        json!(null)
    );
    let databases = walk(&host.data.join("objects"))
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "sqlite"))
        .count();
    assert_eq!(databases, 300, "one database per object that wrote");
}

#[test]
fn at_the_live_cap_the_least_recently_used_object_makes_room_even_among_hundreds() {
    // more live objects than an eviction looks at in one go (64): a hot object, used before
    // every activation of a new one, is never the one asked to retire
    let host = TestHost::with_config("[limits]\nmax-live-objects = 150\ndurable-commits = false\n");
    host.deploy("kv", STORAGE_KV).expect(201);
    host.call("kv", "hot", "put", json!(["k", "hot"]));
    for i in 0..600 {
        assert_eq!(host.call("kv", "hot", "get", json!(["k"])), "hot");
        host.call(
            "kv",
            &format!("obj-{i}"),
            "put",
            json!(["k", format!("{i}")]),
        );
    }
    assert!(host.metric("wasmdo_live_objects") <= 150);
    assert_eq!(
        host.metric("wasmdo_activations_total"),
        601,
        "the hot object stayed live: one activation per object"
    );
    // and the evicted ones kept their data
    for i in (0..600).step_by(59) {
        assert_eq!(
            host.call("kv", &format!("obj-{i}"), "get", json!(["k"])),
            format!("{i}")
        );
    }
}

//! guest-sdk-js: TypeScript classes built from source with `wasmdo-js build` and run by the real
//! host. `tests/fixtures-js/storage.ts` covers the storage API, `runtime.ts` the type mapping,
//! errors, limits and the Web APIs a Durable Object relies on.

use std::time::Duration;

use serde_json::{Value, json};

use wasmdo_test_artifacts::{JS_RUNTIME, JS_STORAGE};

use crate::harness::TestHost;

/// This module tests the fixtures `tests/fixtures-js/storage.ts` and `runtime.ts`.
pub(crate) const COVERS: () = ();

/// Keeps runaway JS short: 1e9 fuel is ~100 ms of SpiderMonkey, ~3,000 small calls.
const LIMITS: &str = "[limits]\nfuel-per-event = 1000000000\nmax-memory-bytes = 134217728\n";

fn storage_host() -> TestHost {
    let host = TestHost::with_config(LIMITS);
    host.deploy("kv", JS_STORAGE).expect(201);
    host
}

fn runtime_host(config: &str) -> TestHost {
    let host = TestHost::with_config(&format!("{LIMITS}{config}"));
    host.deploy("rt", JS_RUNTIME).expect(201);
    host
}

#[test]
fn deploy_lists_the_methods_from_the_typescript_signatures() {
    let host = TestHost::start();
    let class = host.deploy("rt", JS_RUNTIME).expect(201);
    let methods = class["methods"].as_array().unwrap();
    let sig = |name: &str| {
        methods
            .iter()
            .find(|m| m["name"] == name)
            .unwrap_or_else(|| panic!("no method {name}: {class}"))["signature"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    assert_eq!(
        sig("defaults"),
        "func(a: string, b: option<f64>, c: option<bool>) -> result<string, record { name: string, message: string }>"
    );
    assert!(
        sig("echo").starts_with(
            "func(value: record { n: f64, s: string, b: bool, big: s64, bytes: list<u8>"
        )
    );
    assert!(sig("whoami").contains("tuple<string, option<string>>"));
    // handlers and non-methods are not RPC methods
    for hidden in ["fetch", "alarm", "constructor", "activations"] {
        assert!(
            methods.iter().all(|m| m["name"] != hidden),
            "{hidden} listed: {class}"
        );
    }
    assert_eq!(methods[0]["interface"], "js:runtime-probe/runtime-probe");
}

#[test]
fn key_value_methods_behave_like_cloudflares() {
    let host = storage_host();
    let call = |method: &str, args: Value| host.call("kv", "a", method, args);
    assert_eq!(call("get", json!(["missing"])), Value::Null);
    call("put", json!(["k1", "{\"n\":1,\"s\":\"x\"}"]));
    assert_eq!(call("get", json!(["k1"])), "{\"n\":1,\"s\":\"x\"}");
    call(
        "putMany",
        json!([[["k2", "2"], ["k3", "[3]"], ["other", "true"]]]),
    );
    assert_eq!(
        call("getMany", json!([["k3", "nope", "k1"]])),
        json!([["k1", "{\"n\":1,\"s\":\"x\"}"], ["k3", "[3]"]])
    );
    let keys = |options: Value| -> Vec<String> {
        call("list", json!([options]))
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e[0].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(keys(json!({})), ["k1", "k2", "k3", "other"]);
    assert_eq!(keys(json!({"prefix": "k"})), ["k1", "k2", "k3"]);
    assert_eq!(keys(json!({"start": "k2"})), ["k2", "k3", "other"]);
    assert_eq!(keys(json!({"start-after": "k2"})), ["k3", "other"]);
    assert_eq!(keys(json!({"end": "k3"})), ["k1", "k2"]);
    assert_eq!(keys(json!({"reverse": true, "limit": 2})), ["other", "k3"]);
    assert_eq!(keys(json!({"start-after": "k1", "limit": 1})), ["k2"]);
    assert_eq!(call("delete", json!(["k1"])), true);
    assert_eq!(call("delete", json!(["k1"])), false);
    assert_eq!(call("deleteMany", json!([["k2", "k3", "zz"]])), 2);
    assert_eq!(keys(json!({})), ["other"]);
    assert_eq!(
        call("syncKv", json!(["sync-key", "{\"a\":[1,2]}"])),
        "{\"got\":{\"a\":[1,2]},\"listed\":[\"sync-key\"],\"deleted\":true,\"after\":null}"
    );
    call("sql", json!(["CREATE TABLE t (x)", "[]"]));
    call("deleteAll", json!([]));
    assert_eq!(keys(json!({})), Vec::<String>::new());
    let err = host
        .rpc("kv", "a", "sql", json!(["SELECT * FROM t", "[]"]))
        .expect(422);
    assert!(
        err["value"]["message"]
            .as_str()
            .unwrap()
            .contains("no such table"),
        "deleteAll drops SQL tables too: {err}"
    );
    // a bad option is the caller's error, with its message
    let bad = host
        .rpc(
            "kv",
            "a",
            "list",
            json!([{"start": "a", "start-after": "b"}]),
        )
        .expect(422);
    assert_eq!(bad["value"]["name"], "TypeError");
    assert!(bad["error"].as_str().unwrap().contains("not both"), "{bad}");
}

#[test]
fn structured_values_survive_storage() {
    let host = storage_host();
    host.call("kv", "a", "putExotic", json!([]));
    let described = host.call("kv", "a", "describeExotic", json!([]));
    assert_eq!(
        described.as_str().unwrap().split(';').collect::<Vec<_>>(),
        [
            "date=Date:2024-02-29T12:00:00.000Z",
            "map=Map{string:a=>number:1,number:2=>Set{string:x}}",
            "set=Set{number:1,string:two,bigint:3}",
            "bytes=Uint8Array[0,1,254,255]",
            "buffer=ArrayBuffer[9,8,7]",
            "big=bigint:12345678901234567890",
            "special=[number:NaN,number:Infinity,number:-Infinity,-0,undefined,null]",
            "nested={when:Date:1970-01-01T00:00:00.000Z,tags:Set{string:a},re:RegExp:ab+c/gi,err:RangeError:too far}",
        ]
    );
    assert_eq!(
        host.call("kv", "a", "putUnclonable", json!([])),
        "DataCloneError: a function cannot be stored"
    );
}

#[test]
fn oversize_values_are_a_catchable_storage_error() {
    let host = TestHost::with_config(&format!("{LIMITS}max-entry-bytes = 1000\n"));
    host.deploy("kv", JS_STORAGE).expect(201);
    assert_eq!(
        host.call("kv", "a", "putHuge", json!([5000])),
        "StorageError(value-too-large): value too large: key + value exceed the 1000-byte limit"
    );
    assert_eq!(host.call("kv", "a", "putHuge", json!([10])), "stored");
}

#[test]
fn sql_cursors_give_rows_raw_rows_and_counts() {
    let host = storage_host();
    let sql = |query: &str, bindings: Value| {
        host.call("kv", "a", "sql", json!([query, bindings.to_string()]))
    };
    let created = sql(
        "CREATE TABLE people (id INTEGER PRIMARY KEY, name TEXT, score REAL, photo BLOB, big INTEGER)",
        json!([]),
    );
    assert_eq!(created["rows-written"], 0);
    let inserted = sql(
        "INSERT INTO people (name, score, photo, big) VALUES (?, ?, ?, ?), (?, ?, NULL, ?)",
        json!(["ann", 1.5, {"bytes": [1, 2, 3]}, "bigint:9007199254740993", "bob", 2, 7]),
    );
    assert_eq!(inserted["rows-written"], 2);
    let selected = sql(
        "SELECT id, name, score, photo, big FROM people WHERE score > ? ORDER BY id",
        json!([0]),
    );
    assert_eq!(
        selected["columns"],
        json!(["id", "name", "score", "photo", "big"])
    );
    // integers beyond 2^53 come back as bigints, blobs as ArrayBuffers
    let rows = json!([
        {"id": 1, "name": "ann", "score": 1.5, "photo": [1, 2, 3], "big": "9007199254740993"},
        {"id": 2, "name": "bob", "score": 2, "photo": null, "big": 7},
    ]);
    assert_eq!(
        serde_json::from_str::<Value>(selected["rows"].as_str().unwrap()).unwrap(),
        rows
    );
    assert_eq!(selected["iterated"], selected["rows"]);
    assert_eq!(
        serde_json::from_str::<Value>(selected["raw"].as_str().unwrap()).unwrap(),
        json!([
            [1, "ann", 1.5, [1, 2, 3], "9007199254740993"],
            [2, "bob", 2, null, 7]
        ])
    );
    // rows returned plus rows stepped over by the scan (the host's approximation)
    assert!(selected["rows-read"].as_u64().unwrap() >= 2, "{selected}");
    assert_eq!(
        host.call(
            "kv",
            "a",
            "sqlOne",
            json!(["SELECT name FROM people WHERE id = 2"])
        ),
        "{\"name\":\"bob\"}"
    );
    for (query, complaint) in [
        ("SELECT name FROM people", "multiple results"),
        ("SELECT name FROM people WHERE id = 99", "no results"),
    ] {
        let err = host.rpc("kv", "a", "sqlOne", json!([query])).expect(422);
        assert!(err["error"].as_str().unwrap().contains(complaint), "{err}");
    }
    let bad = host
        .rpc("kv", "a", "sql", json!(["SELEC nonsense", "[]"]))
        .expect(422);
    assert_eq!(bad["value"]["name"], "StorageError");
    assert!(
        host.call("kv", "a", "databaseSize", json!([]))
            .as_f64()
            .unwrap()
            > 0.0
    );
    let unbindable = host
        .rpc(
            "kv",
            "a",
            "sql",
            json!(["SELECT ?", "[{\"an\":\"object\"}]"]),
        )
        .expect(422);
    assert_eq!(unbindable["value"]["name"], "TypeError");
}

#[test]
fn transactions_roll_back_on_a_thrown_error() {
    let host = storage_host();
    assert_eq!(
        host.call("kv", "a", "transactionThrows", json!(["t1"])),
        "abandon; t1=null"
    );
    assert_eq!(
        host.call("kv", "a", "transactionRollback", json!(["t2"])),
        "returned; t2=null"
    );
    assert_eq!(
        host.call("kv", "a", "transactionNested", json!(["t3"])),
        "{\"t3-outer\":1,\"t3-sync\":2}"
    );
    // an error escaping the method rolls back the whole event, KV and SQL alike
    let err = host
        .rpc("kv", "a", "putThenThrow", json!(["doomed"]))
        .expect(422);
    assert_eq!(err["kind"], "MethodError");
    assert_eq!(
        err["value"],
        json!({"name": "Error", "message": "rolled back doomed"})
    );
    assert_eq!(host.call("kv", "a", "get", json!(["doomed"])), Value::Null);
    let table = host
        .rpc("kv", "a", "sql", json!(["SELECT * FROM doomed", "[]"]))
        .expect(422);
    assert!(
        table["error"].as_str().unwrap().contains("no such table"),
        "{table}"
    );
}

#[test]
fn alarms_fire_into_the_alarm_method() {
    let host = storage_host();
    assert_eq!(host.call("kv", "a", "getAlarm", json!([])), Value::Null);
    let at = host.call("kv", "a", "setAlarmIn", json!([60_000]));
    assert_eq!(host.call("kv", "a", "getAlarm", json!([])), at);
    host.call("kv", "a", "deleteAlarm", json!([]));
    assert_eq!(host.call("kv", "a", "getAlarm", json!([])), Value::Null);
    host.call("kv", "a", "setAlarmIn", json!([100]));
    host.wait_for(Duration::from_secs(10), "the alarm", || {
        host.call("kv", "a", "alarmsFired", json!([])) == 1
    });
    assert_eq!(host.call("kv", "a", "getAlarm", json!([])), Value::Null);
    assert_eq!(
        host.call("kv", "a", "get", json!(["last-alarm-info"])),
        "{\"retryCount\":0,\"isRetry\":false}"
    );
}

/// Methods without a WIT type (`any`) are not typed RPC methods, yet reachable by name through
/// the class's dynamic handler: JSON in, the returned value as JSON out, a throw a 422.
#[test]
fn untyped_methods_are_reached_by_dynamic_rpc() {
    let host = TestHost::with_config(LIMITS);
    let class = host.deploy("rt", JS_RUNTIME).expect(201);
    let listed = class["methods"].as_array().unwrap();
    assert!(
        listed.iter().all(|m| m["name"] != "echo-any"),
        "an untyped method has no WIT signature to list: {class}"
    );
    for value in [
        json!({"camelCase": [1, 2.5, "x", null, {"deep": true}], "n": null}),
        json!("text"),
        json!(null),
        json!([]),
    ] {
        // field names and nulls come back as the method returned them
        assert_eq!(host.call("rt", "a", "echoAny", json!([value])), value);
    }
    // no arguments: `undefined`, left out of the JSON reply as null
    assert_eq!(host.call("rt", "a", "echoAny", json!([])), Value::Null);
    assert_eq!(host.call("rt", "a", "activationCountAny", json!([])), 1);
    // the typed and the dynamic way reach the same live object
    assert_eq!(host.call("rt", "a", "activationCount", json!([])), 1);
    let err = host
        .rpc("rt", "a", "failAny", json!(["no luck"]))
        .expect_error(422, "MethodError");
    assert!(
        err.contains("TypeError") && err.contains("no luck"),
        "{err}"
    );
    // names callers may not reach: handlers, `_` names, Object's methods, the unknown
    for name in ["fetch", "constructor", "toString", "_private", "nope"] {
        host.rpc("rt", "a", name, json!([]))
            .expect_error(404, "UnknownMethod");
    }
    // arguments must still be a JSON array
    host.rpc("rt", "a", "echoAny", json!({"not": "a list"}))
        .expect_error(400, "InvalidArgument");
}

#[test]
fn every_wit_type_round_trips_through_rpc() {
    let host = runtime_host("");
    let value = json!({
        "n": 1.25, "s": "text ✓", "b": true, "big": -9007199254740993i64,
        "bytes": [0, 255], "list": ["a", "b"], "pair": [3, "three"], "maybe": "here",
        "nullable": null, "color": "dark-blue", "point": {"x": 4_000_000_000u32, "y": -5},
        "small": 255, "snake-case-field": 6, "points": [{"x": 1, "y": 2}],
    });
    assert_eq!(host.call("rt", "a", "echo", json!([value])), value);
    assert_eq!(
        host.call("rt", "a", "describe", json!([value])),
        "bigint,true,maybe=here,null,6"
    );
    let mut without = value.clone();
    without.as_object_mut().unwrap().remove("maybe");
    without["nullable"] = json!("set");
    let mut echoed = without.clone();
    echoed["maybe"] = Value::Null; // an absent option field comes back as null
    assert_eq!(host.call("rt", "a", "echo", json!([without])), echoed);
    assert_eq!(
        host.call("rt", "a", "describe", json!([without])),
        "bigint,true,no-maybe,set,6"
    );
    // a record shaped like {tag, val} is a record, not a result
    for tag in ["ok", "err"] {
        assert_eq!(
            host.call("rt", "a", "tagged", json!([tag])),
            json!({"tag": tag, "val": 1})
        );
    }
    // trailing optional parameters may be left out: JS default parameters apply
    assert_eq!(
        host.call("rt", "a", "defaults", json!(["x"])),
        "x,7,undefined"
    );
    assert_eq!(
        host.call("rt", "a", "defaults", json!(["x", 1, true])),
        "x,1,true"
    );
    // the host checks arguments against the generated WIT before the object runs
    let mut bad = value.clone();
    bad["point"]["x"] = json!(-1);
    let err = host
        .rpc("rt", "a", "echo", json!([bad]))
        .expect_error(400, "InvalidArgument");
    assert!(err.contains("/point/x"), "{err}");
    let err = host
        .rpc("rt", "a", "echo", json!([{"n": 1}]))
        .expect_error(400, "InvalidArgument");
    assert!(err.contains("missing field"), "{err}");
}

#[test]
fn a_thrown_error_reaches_the_caller_with_its_name_and_message() {
    let host = runtime_host("");
    for (kind, name, message) in [
        ("plain", "Error", "failed: plain"),
        ("type", "TypeError", "wrong type of thing"),
        ("custom", "QuotaError", "over quota"),
        ("string", "Error", "a bare string"),
    ] {
        let err = host.rpc("rt", "a", "fail", json!([kind])).expect(422);
        assert_eq!(err["kind"], "MethodError", "{err}");
        assert_eq!(err["value"], json!({"name": name, "message": message}));
        assert_eq!(
            err["error"],
            format!("the method returned an error: {name}: {message}")
        );
    }
    let err = host.rpc("rt", "a", "wrongResult", json!([])).expect(422);
    assert_eq!(err["value"]["name"], "TypeError");
    assert!(
        err["value"]["message"].as_str().unwrap().contains(
            "the result of RuntimeProbe.wrongResult is a string, but the signature says number"
        ),
        "{err}"
    );
    // the object is unharmed
    assert_eq!(
        host.call("rt", "a", "defaults", json!(["ok"])),
        "ok,7,undefined"
    );
}

#[test]
fn runaway_javascript_is_stopped_and_the_object_recovers() {
    let host = runtime_host("");
    let before = host.metric("wasmdo_fuel_consumed_total");
    let err = host
        .rpc("rt", "a", "spin", json!([]))
        .expect_error(500, "CpuLimitExceeded");
    assert!(err.contains("fuel"), "{err}");
    // the whole budget (1e9, LIMITS) was burned, and accounted
    let burned = host.metric("wasmdo_fuel_consumed_total") - before;
    assert!(burned >= 1_000_000_000, "{burned}");
    let err = host.rpc("rt", "a", "allocate", json!([512])).expect(500);
    assert!(
        ["MemoryLimitExceeded", "Trap"].contains(&err["kind"].as_str().unwrap()),
        "{err}"
    );
    // deep recursion is refused (SpiderMonkey's own limit, or the stack limit)
    let deep = host.rpc("rt", "a", "recurse", json!([10_000_000]));
    assert!(deep.status == 422 || deep.status == 500, "{}", deep.text);
    // every failure reset the instance; the object goes on, and other objects never noticed
    assert_eq!(host.call("rt", "a", "recurse", json!([100])), 100);
    assert_eq!(
        host.call("rt", "b", "defaults", json!(["b"])),
        "b,7,undefined"
    );
}

#[test]
fn clocks_and_randomness_are_real() {
    let host = runtime_host("");
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as f64;
    let now = host.call("rt", "a", "now", json!([])).as_f64().unwrap();
    assert!(
        (now - before).abs() < 60_000.0,
        "Date.now() {now} vs {before}"
    );
    let later = host.call("rt", "a", "now", json!([])).as_f64().unwrap();
    assert!(later >= now);
    // unpredictable: different on every call, in every object, after every re-activation
    let mut seen = std::collections::HashSet::new();
    for name in ["a", "b", "c"] {
        for _ in 0..3 {
            assert!(seen.insert(host.call("rt", name, "uuid", json!([])).to_string()));
            assert!(seen.insert(host.call("rt", name, "randomBytes", json!([])).to_string()));
        }
    }
}

#[test]
fn the_documented_web_apis_exist_and_work() {
    let host = runtime_host("");
    assert_eq!(host.call("rt", "a", "missingWebApis", json!([])), json!([]));
    // npm dependencies are bundled
    assert_eq!(
        host.call("rt", "a", "duration", json!(["2 days"])),
        172_800_000
    );
    assert_eq!(
        host.call("rt", "a", "sha256", json!(["abc"])),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
}

#[test]
fn console_goes_to_the_objects_log_at_its_level() {
    let host = runtime_host("");
    host.call("rt", "a", "log", json!(["marker-7f3a"]));
    host.wait_for(Duration::from_secs(5), "log lines", || {
        host.log().contains("error: marker-7f3a")
    });
    let log = host.log();
    let line = |needle: &str| {
        log.lines()
            .find(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no {needle} in log:\n{log}"))
            .to_owned()
    };
    let info = line("log: marker-7f3a {\"n\":1}");
    assert!(info.contains("INFO") && info.contains("\"rt\""), "{info}");
    assert!(line("warn: marker-7f3a").contains("WARN"));
    assert!(line("error: marker-7f3a").contains("ERROR"));
}

#[test]
fn identity_env_constructor_and_wait_until() {
    let host = runtime_host("[classes.rt.env]\nGREETING = \"hi\"\n");
    let who = host.call("rt", "alice", "whoami", json!([]));
    assert_eq!(who[0].as_str().unwrap().len(), 64);
    assert_eq!(who[1], "alice");
    assert_eq!(
        host.call("rt", "alice", "envVar", json!(["GREETING"])),
        "hi"
    );
    assert_eq!(
        host.call("rt", "alice", "envVar", json!(["NOPE"])),
        Value::Null
    );
    // blockConcurrencyWhile in the constructor ran (once) before the first event
    assert_eq!(host.call("rt", "alice", "activationCount", json!([])), 1);
    assert_eq!(host.call("rt", "alice", "activationCount", json!([])), 1);
    // the reply waits for waitUntil's promise, and its write commits with the event
    host.call("rt", "alice", "waitUntilWrite", json!(["later"]));
    assert_eq!(
        host.call("rt", "alice", "read", json!(["later"])),
        "written later"
    );
}

#[test]
fn a_throwing_constructor_fails_the_activation() {
    let host = runtime_host("[classes.rt.env]\nFAIL_INIT = \"no thanks\"\n");
    let err = host
        .rpc("rt", "a", "now", json!([]))
        .expect_error(500, "InitFailed");
    assert!(err.contains("constructor refused: no thanks"), "{err}");
}

#[test]
fn fetch_gets_a_standard_request_and_returns_a_response() {
    let host = runtime_host("");
    let reply = host.request_with(
        "POST",
        "/objects/rt/a/some/path?q=42",
        &[
            ("x-test", "yes"),
            ("x-many", "1"),
            ("x-many", "2"),
            ("x-empty", ""),
            ("x-colon", "a: b"),
        ],
        b"the body",
    );
    assert_eq!(reply.status, 201, "{}", reply.text);
    assert_eq!(reply.header("x-object"), Some("runtime"));
    // every response header, in the order and number the class gave them (heads cross packed)
    let cookies: Vec<&str> = reply
        .headers
        .iter()
        .filter(|(k, _)| k == "set-cookie")
        .map(|(_, v)| v.as_str())
        .collect();
    assert_eq!(cookies, ["a=1; Path=/", "b=2"]);
    assert_eq!(reply.header("x-empty"), Some(""));
    assert_eq!(reply.header("x-odd"), Some("colon: and spaces"));
    assert_eq!(reply.body["method"], "POST");
    assert_eq!(reply.body["path"], "/some/path");
    assert_eq!(reply.body["query"], "42");
    assert_eq!(reply.body["header"], "yes");
    for pair in [
        json!(["x-many", "1, 2"]),
        json!(["x-empty", ""]),
        json!(["x-colon", "a: b"]),
    ] {
        assert!(
            reply.body["headers"].as_array().unwrap().contains(&pair),
            "{pair} not among {}",
            reply.body["headers"]
        );
    }
    assert_eq!(reply.body["body"], "the body");
    assert!(
        reply.body["url"]
            .as_str()
            .unwrap()
            .ends_with("/some/path?q=42")
    );
    // a request without a body: a clone and a copy (`new Request(url, request)`) keep its headers
    let got = host.request_with("GET", "/objects/rt/a/get", &[("x-test", "g")], b"");
    assert_eq!(got.status, 201, "{}", got.text);
    assert_eq!(
        (
            &got.body["header"],
            &got.body["cloned"],
            &got.body["copied"]
        ),
        (&json!("g"), &json!("g"), &json!("g"))
    );
    let failed = host.request("GET", "/objects/rt/a/throw", b"");
    assert_eq!(failed.status, 500, "{}", failed.text);
    assert_eq!(failed.body["kind"], "FetchFailed");
    assert!(
        failed.text.contains("Error: fetch blew up"),
        "{}",
        failed.text
    );
}

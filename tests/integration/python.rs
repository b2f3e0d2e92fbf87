//! Python Durable Objects (guest-sdk-python, componentize-py) through the real host: the
//! `examples/counter-py` class as its README says, and `tests/fixtures-py/probe.py` — typed RPC
//! of every supported type, raised errors, methods reached by name only, the key-value API and
//! its encoding (the JavaScript and Rust SDKs' bytes), SQL cursors, alarms, env vars, fetch;
//! `tests/fixtures-py/sockets.py` — hibernatable and standard WebSockets; and calls between
//! Python, Rust and JavaScript objects in every direction (`tests/fixtures-py/caller`).

use std::time::Duration;

use serde_json::{Value, json};
use tungstenite::Message;
use tungstenite::stream::MaybeTlsStream;
use wasmdo_test_artifacts::{
    EXAMPLE_COUNTER_PY, JS_CALLER, JS_RUNTIME, PY_CALLER, PY_PROBE, PY_SOCKETS, RPC_TO_JS,
    RPC_TYPES,
};

use crate::harness::{TestHost, WsClient, ws_text};

pub(crate) const COVERS: () = ();

fn probe_host() -> TestHost {
    let host = TestHost::with_config("[classes.probe.env]\nGREETING = \"hi\"\n");
    host.deploy("probe", PY_PROBE).expect(201);
    host
}

#[test]
fn the_python_counter_works_as_its_readme_says() {
    let host = TestHost::start();
    let deployed = host.deploy("counter-py", EXAMPLE_COUNTER_PY).expect(201);
    let methods: Vec<&str> = deployed["methods"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    assert_eq!(methods, ["get", "hits", "increment"]);
    assert_eq!(host.call("counter-py", "alice", "increment", json!([5])), 5);
    // `by: int = 1`: the argument may be left out
    assert_eq!(host.call("counter-py", "alice", "increment", json!([])), 6);
    assert_eq!(host.call("counter-py", "alice", "get", json!([])), 6);
    assert_eq!(host.call("counter-py", "alice", "hits", json!([])), 2);
    assert_eq!(host.call("counter-py", "bob", "get", json!([])), 0);
    let page = host.request("GET", "/objects/counter-py/alice/", b"");
    assert_eq!((page.status, page.text.as_str()), (200, "count 6"));
    // wrong arguments are the host's clear errors, before any Python runs
    let msg = host
        .rpc("counter-py", "alice", "increment", json!(["x"]))
        .expect_error(400, "InvalidArgument");
    assert!(msg.contains("`by`"), "{msg}");
    host.rpc("counter-py", "alice", "nope", json!([]))
        .expect_error(404, "UnknownMethod");
}

#[test]
fn typed_rpc_carries_every_supported_type_and_raised_errors() {
    let host = probe_host();
    let sent = json!([
        "-9223372036854775808",
        1.5,
        "héllo",
        true,
        [0, 255],
        ["a", ""],
        [2, "two"],
        null
    ]);
    let mut back = sent.clone();
    // (64-bit integers are taken as decimal strings too, and answered as numbers)
    back[0] = json!(i64::MIN);
    assert_eq!(host.call("probe", "p", "echo", sent), back);
    assert_eq!(host.call("probe", "p", "defaults", json!(["x"])), "x,7");
    assert_eq!(host.call("probe", "p", "defaults", json!(["x", 3])), "x,3");
    // a method of the project's own base class
    assert_eq!(
        host.call("probe", "p", "hello", json!(["you"])),
        "hello you"
    );
    // what a method raises is its error (name and message), its writes rolled back
    let raised = host.rpc("probe", "p", "fail", json!(["value"]));
    assert_eq!(raised.status, 422, "{}", raised.text);
    assert_eq!(raised.body["kind"], "MethodError");
    assert_eq!(
        raised.body["value"],
        json!({"name": "ValueError", "message": "bad value"})
    );
    let wrong = host.rpc("probe", "p", "wrong-result", json!([]));
    assert_eq!(wrong.body["value"]["name"], "TypeError", "{}", wrong.text);
    let message = wrong.body["value"]["message"].as_str().unwrap().to_owned();
    assert!(message.contains("the signature says int"), "{message}");
    // `_private` is nobody's to call
    host.rpc("probe", "p", "_private", json!([]))
        .expect_error(404, "UnknownMethod");
    // in-memory state lives with the instance
    assert_eq!(host.call("probe", "p", "count-activation", json!([])), 1);
    assert_eq!(host.call("probe", "p", "count-activation", json!([])), 2);
    // identity and env
    let who = host.call("probe", "named", "who", json!([]));
    assert_eq!(who[1], "named");
    assert_eq!(who[2], "hi");
}

#[test]
fn untyped_methods_are_reached_by_name() {
    let host = probe_host();
    assert_eq!(
        host.call("probe", "p", "anything", json!([{"a": [1, "two", null]}])),
        json!({"got": {"a": [1, "two", null]}, "type": "dict"})
    );
    assert_eq!(
        host.call("probe", "p", "anything", json!([3])),
        json!({"got": 3, "type": "int"})
    );
}

#[test]
fn storage_speaks_the_encoding_every_sdk_reads() {
    let host = probe_host();
    // JSON values are stored as their JSON text, as the JavaScript and Rust SDKs store them
    host.call(
        "probe",
        "p",
        "remember",
        json!(["plain", r#"{"a": [1, "two", null]}"#]),
    );
    let bytes = host.call("probe", "p", "stored-bytes", json!(["plain"]));
    let text: Vec<u8> = serde_json::from_value(bytes).unwrap();
    assert_eq!(String::from_utf8(text).unwrap(), r#"{"a":[1,"two",null]}"#);
    assert_eq!(
        host.call("probe", "p", "recall", json!(["plain"])),
        r#"{"a": [1, "two", null]}"#
    );
    // the key-value API: batches, list with a prefix, bytes and big integers (tagged)
    let kv: serde_json::Value =
        serde_json::from_str(host.call("probe", "p", "kv", json!([])).as_str().unwrap()).unwrap();
    assert_eq!(
        kv,
        json!({
            "listed": ["k1", "k2", "k3"], "first_two": ["k1", "k2"], "k2": [true, null], "k3": [1, 2], "missing": false,
            "deleted": 1, "big": "18446744073709551616", "after": ["big", "k2", "k3", "plain"]
        })
    );
    let tagged: Vec<u8> =
        serde_json::from_value(host.call("probe", "p", "stored-bytes", json!(["k3"]))).unwrap();
    assert_eq!(tagged[0], 1);
    assert_eq!(
        std::str::from_utf8(&tagged[1..]).unwrap(),
        r#"["t","Uint8Array","AQI="]"#
    );
}

#[test]
fn sql_alarms_and_fetch() {
    let host = probe_host();
    assert_eq!(host.call("probe", "p", "note", json!(["first", 1.5])), 1);
    assert_eq!(host.call("probe", "p", "note", json!(["second", 2.25])), 1);
    assert_eq!(
        host.call("probe", "p", "notes", json!([])),
        json!([[1, "first", 1.5], [2, "second", 2.25]])
    );
    assert_eq!(
        host.call("probe", "p", "bad-sql", json!([])),
        "StorageError sql"
    );

    host.call("probe", "p", "arm", json!([200]));
    host.wait_for(Duration::from_secs(20), "the alarm fired", || {
        host.call("probe", "p", "fired", json!([])) == 1
    });

    let get = host.request("GET", "/objects/probe/p/some/path?q=1", b"");
    assert_eq!(get.status, 200);
    assert!(get.text.starts_with("GET http"), "{}", get.text);
    assert!(get.text.ends_with("/some/path?q=1"), "{}", get.text);
    assert!(
        get.headers
            .iter()
            .any(|(k, v)| k == "x-probe" && v == "yes")
    );
    let post = host.request("POST", "/objects/probe/p/x", br#"{"n": 1}"#);
    assert_eq!(post.status, 201, "{}", post.text);
    assert_eq!(post.body["echo"], json!({"n": 1}));
}

/// A client of the sockets object `object` at `path` (`ws` or `standard`).
#[track_caller]
fn connect(host: &TestHost, object: &str, path: &str) -> WsClient {
    let base = host.url.replace("http://", "ws://");
    let (mut ws, _) = tungstenite::connect(format!("{base}/objects/sockets/{object}/{path}"))
        .unwrap_or_else(|e| panic!("connect: {e}; log:\n{}", host.log()));
    if let MaybeTlsStream::Plain(s) = ws.get_mut() {
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    }
    ws
}

#[track_caller]
fn ask(ws: &mut WsClient, text: &str) -> String {
    ws.send(Message::text(text)).expect("send");
    ws_text(ws)
}

#[test]
fn hibernatable_websockets_keep_tags_and_attachments_across_hibernation() {
    let host = TestHost::with_config("[limits]\nhibernate-after-ms = 300\n");
    host.deploy("sockets", PY_SOCKETS).expect(201);
    let mut ann = connect(&host, "room", "ws?name=ann");
    assert_eq!(ws_text(&mut ann), "welcome ann");
    let mut bob = connect(&host, "room", "ws?name=bob");
    assert_eq!(ws_text(&mut bob), "welcome bob");
    assert_eq!(ask(&mut ann, "tags"), r#"["room", "user:ann"]"#);
    assert_eq!(ask(&mut bob, "count"), "2");
    // a broadcast through ctx.get_websockets() reaches both
    assert_eq!(ask(&mut ann, "hello"), "ann: hello");
    assert_eq!(ws_text(&mut bob), "ann: hello");
    ann.send(Message::binary(vec![1u8, 2, 3])).unwrap();
    assert_eq!(ann.read().unwrap(), Message::binary(vec![3u8, 2, 1]));

    // the instance goes; the sockets, their tags and attachments stay
    host.wait_for(Duration::from_secs(10), "hibernation", || {
        host.metric("wasmdo_hibernations_total") >= 1
    });
    assert_eq!(host.metric("wasmdo_live_objects"), 0);
    assert_eq!(ask(&mut bob, "who"), r#"{"name": "bob", "joined": 2}"#);
    assert_eq!(ask(&mut bob, "tags"), r#"["room", "user:bob"]"#);

    // a failing handler closes nothing and loses no other socket
    bob.send(Message::text("boom")).unwrap();
    assert_eq!(ask(&mut ann, "count"), "2");

    // the auto response answers without an event; a close reaches web_socket_close
    host.call("sockets", "room", "auto", json!(["ping", "pong"]));
    assert_eq!(ask(&mut ann, "ping"), "pong");
    match ask_close(&mut ann, "bye") {
        (4000, reason) => assert_eq!(reason, "bye"),
        other => panic!("expected close 4000, got {other:?}"),
    }
    // the client's half of the closing handshake, queued when the server's close was read
    let _ = ann.flush();
    bob.close(None).unwrap();
    let _ = bob.flush();
    host.wait_for(Duration::from_secs(10), "both closes recorded", || {
        host.call("sockets", "room", "closed", json!([]))
            .as_array()
            .is_some_and(|a| a.len() == 2)
    });
    let closed = host.call("sockets", "room", "closed", json!([]));
    let mut closed: Vec<&str> = closed
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    closed.sort();
    assert!(closed[0].starts_with("ann 4000 bye"), "{closed:?}");
    assert_eq!(closed[1], "bob 1005  True");
    assert_eq!(host.call("sockets", "room", "sockets", json!([])), 0);
    let failed = host.log();
    assert!(failed.contains("the handler failed"), "{failed}");
}

/// Sends `text`, then reads until the server's close frame: its code and reason.
#[track_caller]
fn ask_close(ws: &mut WsClient, text: &str) -> (u16, String) {
    ws.send(Message::text(text)).expect("send");
    loop {
        match ws.read() {
            Ok(Message::Close(Some(frame))) => {
                return (frame.code.into(), frame.reason.to_string());
            }
            Ok(Message::Close(None)) => return (1005, String::new()),
            Ok(_) => continue,
            Err(e) => panic!("no close frame: {e}"),
        }
    }
}

#[test]
fn a_standard_websocket_belongs_to_the_instance() {
    let host = TestHost::with_config("[limits]\nhibernate-after-ms = 300\n");
    host.deploy("sockets", PY_SOCKETS).expect(201);
    let mut ws = connect(&host, "s", "standard");
    assert_eq!(ask(&mut ws, "hi"), "standard: hi");
    // well past hibernate-after-ms: a socket accepted in memory keeps the instance
    std::thread::sleep(Duration::from_millis(1200));
    assert_eq!(host.metric("wasmdo_hibernations_total"), 0);
    assert_eq!(ask(&mut ws, "again"), "standard: again");
    // it is no hibernatable socket: ctx.get_websockets() does not list it
    assert_eq!(host.call("sockets", "s", "sockets", json!([])), 0);
}

const CALLS: &str = "[limits]\nfuel-per-event = 2000000000\n\n\
    [classes.pycaller.bindings]\nRUST = \"rusty\"\nJS = \"jsprobe\"\nPY = \"probe\"\n\n\
    [classes.jscaller.bindings]\nPROBE = \"jsprobe\"\nOTHER = \"probe\"\n\n\
    [classes.rustcaller.bindings]\nPROBE = \"jsprobe\"\nOTHER = \"probe\"\n";

fn calls_host() -> TestHost {
    let host = TestHost::with_config(CALLS);
    host.deploy("probe", PY_PROBE).expect(201);
    host.deploy("rusty", RPC_TYPES).expect(201);
    host.deploy("jsprobe", JS_RUNTIME).expect(201);
    host.deploy("pycaller", PY_CALLER).expect(201);
    host.deploy("jscaller", JS_CALLER).expect(201);
    host.deploy("rustcaller", RPC_TO_JS).expect(201);
    host
}

fn py_call(host: &TestHost, binding: &str, method: &str, args: Value) -> Value {
    host.call("pycaller", "c", "call", json!([binding, "o", method, args]))
}

#[test]
fn python_calls_rust_javascript_and_python_by_name() {
    let host = calls_host();
    // Rust: typed methods by their Python spelling, values in the JSON mapping of their types
    assert_eq!(
        py_call(&host, "RUST", "add", json!([2, 3])),
        json!({"ok": 5})
    );
    let person = json!({"name": "ann", "age": null, "home": {"x": 1, "y": -2}});
    assert_eq!(
        py_call(&host, "RUST", "echo_record", json!([person])),
        json!({"ok": {"name": "ann", "age": null, "home": {"x": 1, "y": -2}}})
    );
    assert_eq!(
        py_call(&host, "RUST", "echo_enum", json!(["green"])),
        json!({"ok": "green"})
    );
    // a Rust method's own error arrives as a MethodError carrying the error value
    let failed = py_call(&host, "RUST", "fail", json!([false]));
    assert_eq!(failed["raised"]["class"], "MethodError", "{failed}");
    assert_eq!(
        failed["raised"]["value"],
        json!({"tag": "bad-input", "val": "not ok"}),
        "{failed}"
    );
    let wrong = py_call(&host, "RUST", "add", json!(["two", 3]));
    assert_eq!(wrong["raised"]["class"], "CallError", "{wrong}");
    assert!(
        wrong["raised"]["message"].as_str().unwrap().contains("`a`"),
        "{wrong}"
    );

    // JavaScript and Python: exactly what was passed and returned
    let value = json!({"nested": [1, "two", null, {"snake_case": true}]});
    assert_eq!(
        py_call(&host, "JS", "echoAny", json!([value])),
        json!({"ok": value})
    );
    assert_eq!(
        py_call(&host, "PY", "anything", json!([value])),
        json!({"ok": {"got": value, "type": "dict"}})
    );
    assert_eq!(
        py_call(&host, "PY", "hello", json!(["bob"])),
        json!({"ok": "hello bob"})
    );
    // a typed Python method reached by name gets its records and enums as its own classes
    // (from dicts and enum values or case names), and gives back plain values
    let corner = json!({"x": 0, "y": 0});
    assert_eq!(
        py_call(
            &host,
            "PY",
            "kinds",
            json!([{"x": 1, "y": 2}, {"corner": corner, "shade": "dark"}, "fast", "DARK_GREY"])
        ),
        json!({"ok": ["Point", "dict", "Point", "'fast'", "<Shade.DARK_GREY: 'dark'>"]})
    );
    assert_eq!(
        py_call(
            &host,
            "PY",
            "shapes",
            json!([{"x": 1, "y": 2}, {"corner": corner, "shade": "light"}, "fast", ["dark"]])
        ),
        json!({"ok": [{"x": 2, "y": 3, "label": null}, {"corner": {"x": 0, "y": 0, "label": null}, "shade": "light"}, "fast", ["dark"]]})
    );
    let bad = py_call(&host, "PY", "kinds", json!([{"y": 2}, {}, "fast", "light"]));
    assert_eq!(bad["raised"]["class"], "CallError", "{bad}");
    assert!(
        bad["raised"]["message"]
            .as_str()
            .unwrap()
            .contains("no field `x`"),
        "{bad}"
    );
    // what the callee raised or threw, by its name
    let raised = py_call(&host, "PY", "fail", json!(["value"]));
    assert_eq!(raised["raised"]["class"], "ValueError", "{raised}");
    assert_eq!(raised["raised"]["message"], "bad value", "{raised}");
    let thrown = py_call(&host, "JS", "failAny", json!(["no luck"]));
    assert_eq!(thrown["raised"]["class"], "TypeError", "{thrown}");
    assert_eq!(thrown["raised"]["message"], "no luck", "{thrown}");
    // a name Python has no exception for arrives as a RemoteError carrying it
    let custom = py_call(&host, "JS", "fail", json!(["custom"]));
    assert_eq!(custom["raised"]["class"], "RemoteError", "{custom}");
    assert_eq!(custom["raised"]["kind"], "QuotaError", "{custom}");
    assert_eq!(
        custom["raised"]["message"], "QuotaError: over quota",
        "{custom}"
    );

    // call errors
    let unknown = py_call(&host, "PY", "nope", json!([]));
    assert_eq!(unknown["raised"]["kind"], "bad-call", "{unknown}");
    let private = py_call(&host, "PY", "_private", json!([]));
    assert_eq!(private["raised"]["kind"], "bad-call", "{private}");
    let unbound = py_call(&host, "NOPE", "x", json!([]));
    assert_eq!(unbound["raised"]["class"], "AttributeError", "{unbound}");
    assert_eq!(
        host.call("pycaller", "c", "bad-id", json!(["PY"])),
        "invalid-id"
    );
    assert_eq!(
        host.call("pycaller", "c", "ids", json!(["PY", "o"])),
        json!([true, "o", 64, true])
    );
    // fetch reaches the other object's fetch, with the path it was given
    let fetched = host.call(
        "pycaller",
        "c",
        "fetch-other",
        json!(["PY", "o", "/a/b?c=1"]),
    );
    assert!(
        fetched
            .as_str()
            .unwrap()
            .starts_with("200 GET https://other.example/a/b?c=1"),
        "{fetched}"
    );
    // a caller that fails after its call rolls back its own writes, not the callee's
    host.rpc("pycaller", "c", "then-fail", json!(["PY", "w"]))
        .expect_error(422, "MethodError");
    assert_eq!(host.call("pycaller", "c", "before", json!([])), false);
    assert_eq!(
        host.call("probe", "w", "recall", json!(["k"])),
        "\"written by the callee\""
    );
}

#[test]
fn javascript_and_rust_call_python() {
    let host = calls_host();
    // JavaScript → Python, by name: values exactly as returned, raised errors by name
    let value = json!({"list": [1, 2.5, "x"], "none": null});
    assert_eq!(
        host.call(
            "jscaller",
            "j",
            "callOther",
            json!(["o", "anything", [value]])
        ),
        json!({"ok": {"got": value, "type": "dict"}})
    );
    assert_eq!(
        host.call(
            "jscaller",
            "j",
            "callOther",
            json!(["o", "defaults", ["a"]])
        ),
        json!({"ok": "a,7"})
    );
    assert_eq!(
        host.call(
            "jscaller",
            "j",
            "callOther",
            json!(["o", "fail", ["value"]])
        ),
        json!({"thrown": "ValueError: bad value"})
    );
    // Rust → Python, by name
    assert_eq!(
        host.call(
            "rustcaller",
            "r",
            "dynamic-other",
            json!(["o", "hello", "[\"rust\"]"])
        ),
        "\"hello rust\""
    );
    let failed = host
        .rpc(
            "rustcaller",
            "r",
            "dynamic-other",
            json!(["o", "fail", "[\"key\"]"]),
        )
        .expect_error(422, "MethodError");
    assert!(failed.contains("KeyError"), "{failed}");
}

#[test]
fn records_and_enums_cross_as_the_classes_of_the_module() {
    let host = probe_host();
    let point = json!({"x": 1, "y": 2, "label": null});
    // an Enum's cases are its members' values: Shade.DARK_GREY = "dark"
    let boxed = json!({"corner": {"x": 0, "y": 0, "label": "o"}, "shade": "dark"});
    assert_eq!(
        host.call(
            "probe",
            "p",
            "shapes",
            json!([point, boxed, "slow-ish", ["light", "dark"]])
        ),
        json!([
            {"x": 2, "y": 3, "label": null},
            boxed,
            "slow-ish",
            ["light", "dark"]
        ])
    );
    // the method gets its own classes: the dataclass, the TypedDict's dict, the Enum member
    assert_eq!(
        host.call(
            "probe",
            "p",
            "kinds",
            json!([point, boxed, "fast", "light"])
        ),
        json!(["Point", "dict", "Point", "'fast'", "<Shade.LIGHT: 'light'>"])
    );
    let wrong = host.rpc("probe", "p", "bad-shade", json!([])).expect(422);
    assert_eq!(wrong["value"]["name"], "TypeError", "{wrong}");
    assert!(
        wrong["value"]["message"]
            .as_str()
            .unwrap()
            .contains("Shade"),
        "{wrong}"
    );
    let msg = host
        .rpc(
            "probe",
            "p",
            "kinds",
            json!([point, boxed, "medium", "light"]),
        )
        .expect_error(400, "InvalidArgument");
    assert!(msg.contains("`mode`"), "{msg}");
}

#[test]
fn runaway_python_is_stopped_and_the_object_recovers() {
    let host = TestHost::with_config("[limits]\nfuel-per-event = 1000000000\n");
    host.deploy("probe", PY_PROBE).expect(201);
    assert_eq!(host.call("probe", "a", "count-activation", json!([])), 1);
    let before = host.metric("wasmdo_fuel_consumed_total");
    let err = host
        .rpc("probe", "a", "spin", json!([]))
        .expect_error(500, "CpuLimitExceeded");
    assert!(err.contains("fuel"), "{err}");
    assert!(host.metric("wasmdo_fuel_consumed_total") - before >= 1_000_000_000);
    // the instance was dropped: the next call activates the object again
    assert_eq!(host.call("probe", "a", "count-activation", json!([])), 1);
    // a memory bomb stops at the instance's memory limit
    let bomb = host
        .rpc("probe", "a", "allocate", json!([100_000]))
        .expect(500);
    assert!(
        ["MemoryLimitExceeded", "Trap"].contains(&bomb["kind"].as_str().unwrap()),
        "{bomb}"
    );
    // deep recursion is CPython's RecursionError (the method's own error) or the stack limit
    let deep = host.rpc("probe", "a", "recurse", json!([10_000_000]));
    assert!(deep.status == 422 || deep.status == 500, "{}", deep.text);
    assert_eq!(host.call("probe", "a", "recurse", json!([100])), 100);
    // other objects never noticed
    assert_eq!(host.call("probe", "b", "hello", json!(["b"])), "hello b");
    assert_eq!(host.call("probe", "a", "hello", json!(["a"])), "hello a");
}

#[test]
fn transactions_nest_commit_and_roll_back_and_logs_reach_the_host() {
    let host = probe_host();
    assert_eq!(
        host.call("probe", "p", "transactions", json!([])),
        json!(["1", "rolled back", "1"])
    );
    host.call("probe", "p", "log", json!(["hello"]));
    host.wait_for(
        Duration::from_secs(5),
        "the guest's output in the log",
        || {
            let log = host.log();
            log.contains("printed hello") && log.contains("logged hello")
        },
    );
}

#[test]
fn a_pure_python_dependency_of_the_projects_environment_is_bundled() {
    // a virtual environment holding a package, and a class importing it, built by that
    // environment's Python as a project would be
    let work = tempfile::tempdir().unwrap();
    let venv = work.path().join("venv");
    let made = std::process::Command::new("python3")
        .args(["-m", "venv", "--without-pip"])
        .arg(&venv)
        .status()
        .expect("python3 -m venv");
    assert!(made.success());
    let python = venv.join("bin/python");
    let out = std::process::Command::new(&python)
        .args([
            "-c",
            "import sysconfig; print(sysconfig.get_paths()['purelib'])",
        ])
        .output()
        .unwrap();
    let site = std::path::PathBuf::from(String::from_utf8(out.stdout).unwrap().trim());
    std::fs::create_dir_all(site.join("shouty")).unwrap();
    std::fs::write(
        site.join("shouty/__init__.py"),
        "def shout(text):\n    return text.upper() + '!'\n",
    )
    .unwrap();
    let class = work.path().join("loud.py");
    std::fs::write(
        &class,
        "from shouty import shout\nfrom workers import DurableObject\n\n\
         class Loud(DurableObject):\n    async def say(self, text: str) -> str:\n        return shout(text)\n",
    )
    .unwrap();
    let wasm = work.path().join("loud.wasm");
    let sdk = concat!(env!("CARGO_MANIFEST_DIR"), "/../guest-sdk-python");
    let built = std::process::Command::new(&python)
        .args(["-m", "wasmdo_py", "build"])
        .arg(&class)
        .arg("-o")
        .arg(&wasm)
        .env("PYTHONPATH", sdk)
        .output()
        .unwrap();
    assert!(
        built.status.success(),
        "{}",
        String::from_utf8_lossy(&built.stderr)
    );
    let host = TestHost::start();
    host.deploy("loud", wasm.to_str().unwrap()).expect(201);
    assert_eq!(host.call("loud", "a", "say", json!(["hi"])), "HI!");
}

#[test]
fn python_objects_fill_every_live_slot() {
    // a Python instance holds ~10 core instances: the engine's pool must still fit
    // `max-live-objects` of them, and the least recently used make room beyond that
    let host = TestHost::with_config("[limits]\nmax-live-objects = 6\n");
    host.deploy("probe", PY_PROBE).expect(201);
    for i in 0..12 {
        assert_eq!(
            host.call("probe", &format!("o{i}"), "count-activation", json!([])),
            1
        );
    }
    assert_eq!(host.metric("wasmdo_live_objects"), 6);
    assert_eq!(host.call("probe", "o11", "count-activation", json!([])), 2);
}

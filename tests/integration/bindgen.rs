//! `wasmdo bindgen CLASS --lang ts`: a generated TypeScript client, type-checked by `tsc` and
//! used by a real Node program against the real host; a call with a wrong argument type is a
//! compile error.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};
use wasmdo_test_artifacts::JS_RUNTIME;

use crate::harness::{TestHost, cli};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Runs the TypeScript compiler (guest-sdk-js's) strictly over `files` in `dir`.
fn tsc(dir: &Path, files: &[&str]) -> (bool, String) {
    let out = Command::new("node")
        .arg(repo().join("guest-sdk-js/node_modules/typescript/bin/tsc"))
        .args([
            "--strict",
            "--target",
            "es2022",
            "--module",
            "esnext",
            "--moduleResolution",
            "bundler",
            "--lib",
            "es2022,dom",
            "--skipLibCheck",
        ])
        .args(files)
        .current_dir(dir)
        .output()
        .expect("run tsc");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

const PROGRAM: &str = r#"
import { Rt, WasmdoError, type Everything } from "./rt.js";
declare const process: { argv: string[] };

const rt = new Rt(process.argv[2]);
const a = rt.get("a");
const out: unknown[] = [];
out.push(await a.defaults("x"));
out.push(await a.defaults("x", 1, true));
const value: Everything = {
  "n": 1.5, "s": "s", "b": true, "big": 7, "bytes": [1, 2], "list": ["l"], "pair": [3, "three"],
  "nullable": null, "color": "dark-blue", "point": { "x": 4000000000, "y": -5 }, "small": 255,
  "snake-case-field": 6, "points": [],
};
const echoed: Everything = await a.echo(value);
out.push(echoed.color, echoed.point.x, echoed.maybe);
try {
  await a.fail("type");
} catch (e) {
  if (e instanceof WasmdoError) out.push([e.status, e.kind, e.value]);
}
const [id, name] = await a.whoami();
const [sameId] = await rt.getById(id).whoami();
out.push(name, sameId === id);
console.log(JSON.stringify(out));
"#;

#[test]
fn a_generated_typescript_client_calls_the_class_with_its_types() {
    let host = TestHost::start();
    host.deploy("rt", JS_RUNTIME).expect(201);
    let dir = tempfile::tempdir().unwrap();
    let client = dir.path().join("rt.ts");
    let (ok, _, err) = cli(&[
        "bindgen",
        "rt",
        "--lang",
        "ts",
        "-o",
        client.to_str().unwrap(),
        "--server",
        &host.url,
    ]);
    assert!(ok, "{err}");
    std::fs::write(dir.path().join("package.json"), r#"{"type":"module"}"#).unwrap();
    std::fs::write(dir.path().join("main.ts"), PROGRAM).unwrap();
    let (ok, diagnostics) = tsc(dir.path(), &["rt.ts", "main.ts"]);
    assert!(ok, "tsc:\n{diagnostics}");
    let run = Command::new("node")
        .arg(dir.path().join("main.js"))
        .arg(&host.url)
        .output()
        .expect("run node");
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let printed: Value = serde_json::from_slice(&run.stdout).expect("JSON output");
    assert_eq!(
        printed,
        json!([
            "x,7,undefined",
            "x,1,true",
            "dark-blue",
            4_000_000_000u32,
            null,
            [422, "MethodError", {"name": "TypeError", "message": "wrong type of thing"}],
            "a",
            true
        ])
    );

    // the compiler refuses a wrong argument type, a missing argument and an unknown method
    for (call, complaint) in [
        (
            "a.defaults(5)",
            "not assignable to parameter of type 'string'",
        ),
        ("a.echo({ n: 1 })", "is missing the following properties"),
        ("a.nope()", "Property 'nope' does not exist"),
    ] {
        let program = format!(
            "import {{ Rt }} from \"./rt.js\";\nconst a = new Rt(\"\").get(\"a\");\nawait {call};\nexport {{}};\n"
        );
        std::fs::write(dir.path().join("wrong.ts"), program).unwrap();
        let (ok, diagnostics) = tsc(dir.path(), &["rt.ts", "wrong.ts"]);
        assert!(!ok, "`{call}` compiled");
        assert!(diagnostics.contains(complaint), "`{call}`:\n{diagnostics}");
    }
}

#[test]
fn bindgen_explains_what_it_cannot_do() {
    let host = TestHost::start();
    let (ok, _, err) = cli(&["bindgen", "nope", "--server", &host.url]);
    assert!(!ok);
    assert!(err.contains("cannot get the WIT of `nope`"), "{err}");
    let (ok, _, err) = cli(&["bindgen", "nope", "--lang", "cobol", "--server", &host.url]);
    assert!(!ok);
    assert!(err.contains("`--lang cobol` is not supported yet"), "{err}");
}

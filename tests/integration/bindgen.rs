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

    // every WIT type has a TypeScript form that compiles (the rpc_types fixture has them all)
    host.deploy("types", wasmdo_test_artifacts::RPC_TYPES)
        .expect(201);
    let all = dir.path().join("types.ts");
    let (ok, _, err) = cli(&[
        "bindgen",
        "types",
        "-o",
        all.to_str().unwrap(),
        "--server",
        &host.url,
    ]);
    assert!(ok, "{err}");
    let (ok, diagnostics) = tsc(dir.path(), &["types.ts"]);
    assert!(ok, "tsc types.ts:\n{diagnostics}");
    let generated = std::fs::read_to_string(&all).unwrap();
    for line in [
        "export type Permissions = (\"read\" | \"write\" | \"execute\")[];",
        "echoOptionOption(v?: { tag: \"none\" } | { tag: \"some\"; val: number | null }): Promise<{ tag: \"none\" } | { tag: \"some\"; val: number | null }>",
        "fail(ok: boolean): Promise<string> {",
        "return this.call<string, MyError>(\"fail\", [ok]);",
    ] {
        assert!(generated.contains(line), "no `{line}` in:\n{generated}");
    }

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

const RUST_MAIN: &str = r#"
mod types;
use types::*;

fn main() {
    let base = std::env::args().nth(1).expect("host URL");
    let client = Types::new(&base);
    let o = client.get("a");
    let person = Person { name: "ann".into(), age: None, home: Point { x: 1, y: -2 } };
    assert_eq!(o.echo_record(person.clone()).unwrap(), person);
    assert_eq!(o.echo_variant(Shape::Rectangle(Point { x: 3, y: 4 })).unwrap(), Shape::Rectangle(Point { x: 3, y: 4 }));
    assert_eq!(o.echo_variant(Shape::Empty).unwrap(), Shape::Empty);
    assert_eq!(o.echo_enum(Color::Blue).unwrap(), Color::Blue);
    let perms = vec![PermissionsFlag::Read, PermissionsFlag::Execute];
    assert_eq!(o.echo_flags(perms.clone()).unwrap(), perms);
    assert_eq!(o.echo_option(None).unwrap(), None);
    assert_eq!(o.echo_option_option(WitOption::Some(None)).unwrap(), WitOption::Some(None));
    assert_eq!(o.echo_option_option(WitOption::None).unwrap(), WitOption::None);
    assert_eq!(o.echo_tuple((7, "x".into(), true)).unwrap(), (7, "x".into(), true));
    // a top-level result is unwrapped: ok is the return value, err the typed Error::Method
    o.echo_result_unit(WitResultNoOk::Ok).unwrap();
    match o.echo_result_unit(WitResultNoOk::Err("no".into())) {
        Err(Error::Method(e)) => assert_eq!(e, "no"),
        other => panic!("expected the method's error, got {other:?}"),
    }
    assert_eq!(o.echo_u64(u64::MAX).unwrap(), u64::MAX);
    assert_eq!(o.add(2, 3).unwrap(), 5);
    o.nothing().unwrap();
    assert_eq!(o.fail(true).unwrap(), "ok");
    match o.fail(false) {
        Err(Error::Method(e)) => println!("method error: {e:?}"),
        other => panic!("expected a method error, got {other:?}"),
    }
    match client.get_by_id("00").add(1, 1) {
        Err(Error::Host { status: 400, kind, .. }) => println!("host error: {kind}"),
        other => panic!("expected a host error, got {other:?}"),
    }
    println!("ok");
}
"#;

/// A cargo project for the generated Rust client, offline, with its own target directory kept
/// between runs (the first build compiles serde and ureq).
fn rust_project(dir: &Path, client: &str, main: &str) -> Command {
    std::fs::create_dir_all(dir.join("src")).unwrap();
    std::fs::write(
        dir.join("Cargo.toml"),
        "[package]\nname = \"client\"\nversion = \"0.0.0\"\nedition = \"2024\"\n[workspace]\n\
         [dependencies]\nserde = { version = \"1\", features = [\"derive\"] }\nserde_json = \"1\"\n\
         ureq = { version = \"3\", default-features = false }\n",
    )
    .unwrap();
    // the host's lock pins versions that are already downloaded
    std::fs::copy(repo().join("Cargo.lock"), dir.join("Cargo.lock")).unwrap();
    std::fs::write(dir.join("src/types.rs"), client).unwrap();
    std::fs::write(dir.join("src/main.rs"), main).unwrap();
    let mut cargo = Command::new(env!("CARGO"));
    cargo
        .current_dir(dir)
        .env(
            "CARGO_TARGET_DIR",
            Path::new(env!("CARGO_TARGET_TMPDIR")).join("bindgen-rust-client"),
        )
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .arg("--offline");
    cargo
}

#[test]
fn a_generated_rust_client_calls_the_class_with_its_types() {
    let host = TestHost::start();
    host.deploy("types", wasmdo_test_artifacts::RPC_TYPES)
        .expect(201);
    let (ok, client, err) = cli(&["bindgen", "types", "--lang", "rust", "--server", &host.url]);
    assert!(ok, "{err}");
    let dir = tempfile::tempdir().unwrap();
    let run = rust_project(dir.path(), &client, RUST_MAIN)
        .args(["run", "--quiet", "--", &host.url])
        .output()
        .expect("cargo run");
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(stdout.contains("method error: "), "{stdout}");
    assert!(stdout.contains("host error: InvalidName"), "{stdout}");
    assert!(stdout.trim_end().ends_with("ok"), "{stdout}");

    // a wrong argument type does not compile
    let wrong = "mod types;\nfn main() { let c = types::Types::new(\"\"); let _ = c.get(\"a\").add(\"two\", 3); }\n";
    let check = rust_project(dir.path(), &client, wrong)
        .args(["check", "--quiet"])
        .output()
        .expect("cargo check");
    let stderr = String::from_utf8_lossy(&check.stderr);
    assert!(!check.status.success(), "a wrong argument type compiled");
    assert!(stderr.contains("mismatched types"), "{stderr}");
}

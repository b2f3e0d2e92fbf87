//! Worker projects on the command line: `wasmdo dev` and `wasmdo deploy --project` on the
//! wrangler project `tests/fixtures-projects/counter-worker` (a Worker in front of one Durable
//! Object class), built from source by the real wasmdo-js; and config mistakes stopping both
//! before anything is built or served.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::harness::{TestHost, binary, cli};

/// How long a build and deploy may take: two JS components, built and compiled on 2 cores.
const BUILD_TIMEOUT: Duration = Duration::from_secs(600);

/// A fresh copy of `tests/fixtures-projects/<fixture>` at a path of its own that stays the same
/// across runs (wasmdo-js's build cache is keyed on the entry module's path, so an unchanged
/// fixture is built once, not once per run).
fn project_copy(fixture: &str, copy: &str) -> PathBuf {
    let from = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures-projects")
        .join(fixture);
    copy_project(&from, copy)
}

/// A fresh copy of the project in `from` (as [`project_copy`]).
pub(crate) fn copy_project(from: &Path, copy: &str) -> PathBuf {
    let to = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("projects")
        .join(copy);
    let _ = std::fs::remove_dir_all(&to);
    copy_dir(from, &to);
    to
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create dir");
    for entry in std::fs::read_dir(from).expect("read fixture") {
        let entry = entry.expect("entry");
        let name = entry.file_name();
        if name == ".wasmdo" || name == "node_modules" {
            continue;
        }
        if entry.file_type().expect("file type").is_dir() {
            copy_dir(&entry.path(), &to.join(&name));
        } else {
            std::fs::copy(entry.path(), to.join(&name)).expect("copy");
        }
    }
}

/// Host settings for a project host: the test hosts' shared compile cache, then `more`.
fn settings(dir: &Path, more: &str) -> PathBuf {
    let cache = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("compile-cache");
    let file = dir.join("wasmdo.toml");
    std::fs::write(
        &file,
        format!("compile-cache = {:?}\n{more}", cache.display().to_string()),
    )
    .expect("write wasmdo.toml");
    file
}

/// A running `wasmdo dev <project>`; killed on drop.
pub(crate) struct Dev {
    child: Child,
    /// The project's name, as the ready line gives it.
    pub(crate) name: String,
    pub(crate) url: String,
    lines: mpsc::Receiver<String>,
    log: PathBuf,
    /// How long a line on stdout may take (a build and deploy).
    timeout: Duration,
    _dir: tempfile::TempDir,
}

impl Dev {
    /// Starts `wasmdo dev` (watching for changes) and waits for its ready line.
    pub(crate) fn start(project: &Path) -> Dev {
        Dev::start_with(project, "", true, BUILD_TIMEOUT)
    }

    /// Starts `wasmdo dev` with `more` host settings (`wasmdo.toml`, besides the shared compile
    /// cache), watching for changes or not, and waits up to `timeout` for its ready line.
    pub(crate) fn start_with(project: &Path, more: &str, watch: bool, timeout: Duration) -> Dev {
        let dir = tempfile::tempdir().expect("temp dir");
        let log = dir.path().join("dev.log");
        let mut command = Command::new(binary());
        command
            .arg("dev")
            .arg(project)
            .args(["--listen", "127.0.0.1:0", "--data"])
            .arg(dir.path().join("data"))
            .arg("--config")
            .arg(settings(dir.path(), more));
        if !watch {
            command.arg("--no-watch");
        }
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::from(std::fs::File::create(&log).expect("log")))
            .spawn()
            .expect("start wasmdo dev");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let mut dev = Dev {
            child,
            name: String::new(),
            url: String::new(),
            lines,
            log,
            timeout,
            _dir: dir,
        };
        let first = dev.next_line();
        // the contract: the first stdout line, once the project is deployed
        let (name, url) = first
            .strip_prefix("wasmdo dev: ")
            .and_then(|rest| rest.split_once(" ready on "))
            .unwrap_or_else(|| panic!("unexpected first line {first:?}; log:\n{}", dev.log()));
        (dev.name, dev.url) = (name.to_owned(), url.to_owned());
        dev
    }

    fn next_line(&self) -> String {
        self.lines
            .recv_timeout(self.timeout)
            .unwrap_or_else(|e| panic!("no line from wasmdo dev ({e}); log:\n{}", self.log()))
    }

    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until the log contains `text`.
    fn wait_for_log(&self, text: &str) {
        let deadline = Instant::now() + BUILD_TIMEOUT;
        while !self.log().contains(text) {
            assert!(
                Instant::now() < deadline,
                "no {text:?} in the log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Dev {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An HTTP client that answers every status (no error for 4xx/5xx), within two minutes.
fn agent() -> ureq::Agent {
    crate::harness::agent(Some(Duration::from_secs(120)))
}

/// `GET url` → (status, body).
pub(crate) fn get(url: &str) -> (u16, String) {
    let response = agent()
        .get(url)
        .call()
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let status = response.status().as_u16();
    (status, response.into_body().read_to_string().expect("body"))
}

/// `POST url` with `body` and `headers` → (status, body).
pub(crate) fn post(url: &str, body: &str, headers: &[(&str, &str)]) -> (u16, String) {
    let mut request = agent().post(url);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request
        .send(body)
        .unwrap_or_else(|e| panic!("POST {url}: {e}"));
    let status = response.status().as_u16();
    (status, response.into_body().read_to_string().expect("body"))
}

pub(crate) fn get_json(url: &str) -> Value {
    let (status, body) = get(url);
    assert_eq!(status, 200, "GET {url}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {url}: {e}: {body}"))
}

#[test]
fn dev_runs_a_wrangler_project_and_redeploys_it_on_change() {
    let project = project_copy("counter-worker", "dev");
    let dev = Dev::start(&project);
    assert_eq!(dev.name, "counter-worker");
    let url = &dev.url;

    // the Worker calls the object's RPC method through its binding, and reads a JSON var
    assert_eq!(
        get_json(&format!("{url}/increment/alice")),
        json!({"value": 1, "max": 3})
    );
    assert_eq!(
        get_json(&format!("{url}/increment/alice")),
        json!({"value": 2, "max": 3})
    );
    // stub.fetch reaches the object's fetch, which reads a string var
    assert_eq!(
        get(&format!("{url}/show/alice")),
        (200, "hello from /show/alice: 2".into())
    );
    // a module rule: the .md file is its text
    assert_eq!(
        get(&format!("{url}/notes")),
        (200, "# notes\nimported as text\n".into())
    );
    assert_eq!(get(&format!("{url}/nope")).0, 404);
    // what the project asks for and wasmdo does not provide is a warning naming the key
    assert!(
        dev.log()
            .contains("wrangler.toml: kv_namespaces: ignored: wasmdo does not provide Workers KV"),
        "{}",
        dev.log()
    );

    // a change that does not build: reported, and the running version keeps serving
    let source = project.join("src/index.ts");
    let good = std::fs::read_to_string(&source).expect("read source");
    std::fs::write(&source, format!("{good}\nexport const broken = ;\n")).expect("write");
    dev.wait_for_log("still serving the previous version of counter-worker");
    assert_eq!(
        get(&format!("{url}/show/alice")),
        (200, "hello from /show/alice: 2".into())
    );
    // fixed: rebuilt and redeployed (wasmdo-js's cache knows this source)
    std::fs::write(&source, &good).expect("write");
    assert_eq!(dev.next_line(), "wasmdo dev: counter-worker reloaded");

    // a config change: the classes are redeployed with the new env, and keep their data
    let config = project.join("wrangler.toml");
    let text = std::fs::read_to_string(&config).expect("read config");
    std::fs::write(
        &config,
        text.replace("GREETING = \"hello\"", "GREETING = \"hello again\""),
    )
    .expect("write");
    assert_eq!(dev.next_line(), "wasmdo dev: counter-worker reloaded");
    assert_eq!(
        get(&format!("{url}/show/alice")),
        (200, "hello again from /show/alice: 2".into())
    );
    assert_eq!(
        get_json(&format!("{url}/increment/alice")),
        json!({"value": 3, "max": 3})
    );
}

#[test]
fn deploy_project_builds_and_deploys_to_a_running_host() {
    let project = project_copy("counter-worker", "deploy");
    let host = TestHost::start();
    let (ok, out, err) = cli(&[
        "deploy",
        "--project",
        project.to_str().expect("utf-8 path"),
        "--server",
        &host.url,
    ]);
    assert!(ok, "{err}");
    let reply: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(reply["project"], "counter-worker", "{reply}");
    assert!(err.contains("kv_namespaces: ignored"), "{err}");

    let body = host.request("GET", "/increment/bob", b"").expect(200);
    assert_eq!(body, json!({"value": 1, "max": 3}));
    // the project's classes are ordinary classes of the host
    let body = host
        .request("POST", "/rpc/Counter/bob/increment", b"[10]")
        .expect(200);
    assert_eq!(body.as_f64(), Some(11.0), "{body}");

    // the other form still works, and neither is a clear error
    let (ok, _, err) = cli(&["deploy", "--server", &host.url]);
    assert!(!ok);
    assert!(
        err.contains("wasmdo deploy <CLASS> <FILE>") && err.contains("wasmdo deploy --project"),
        "{err}"
    );
}

/// A project in a temp dir with this config and `src/index.ts` exporting `ChatRoom` and a
/// Worker.
fn broken_project(config: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::create_dir(dir.path().join("src")).expect("mkdir");
    std::fs::write(
        dir.path().join("src/index.ts"),
        "import { DurableObject } from \"cloudflare:workers\";\n\
         export class ChatRoom extends DurableObject {}\n\
         export default { async fetch() { return new Response(\"hi\"); } };\n",
    )
    .expect("write source");
    std::fs::write(dir.path().join("wrangler.toml"), config).expect("write config");
    dir
}

#[test]
fn config_mistakes_stop_dev_before_anything_is_built_or_served() {
    let dir = broken_project(
        r#"
name = "broken"
main = "src/index.ts"
durable_objects.bindings = [
  { name = "ROOMS", class_name = "ChatRoom" },
  { name = "ROOMS", class_name = "Lobby" },
]
[[migrations]]
tag = "v1"
renamed_classes = [{ from = "Room", to = "ChatRoom" }]
"#,
    );
    let project = dir.path().to_str().expect("utf-8 path");
    let (ok, out, err) = cli(&["dev", project, "--listen", "127.0.0.1:0"]);
    assert!(!ok, "{out}");
    assert_eq!(out, "", "nothing served");
    let file = dir.path().join("wrangler.toml").display().to_string();
    assert!(
        err.contains(&format!(
            "error: {file}: durable_objects.bindings[1].name: \"ROOMS\" is also durable_objects.bindings[0].name: each binding needs its own name"
        )),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "error: {file}: migrations[0].renamed_classes[0].from: class \"Room\" is renamed, but no earlier migration created it"
        )),
        "{err}"
    );
    assert!(!dir.path().join(".wasmdo").exists(), "nothing built");

    // the same config, deployed: the same errors, and the host is never contacted
    let (ok, _, deploy_err) = cli(&[
        "deploy",
        "--project",
        project,
        "--server",
        "http://127.0.0.1:9",
    ]);
    assert!(!ok);
    assert!(
        deploy_err.contains("each binding needs its own name"),
        "{deploy_err}"
    );
}

#[test]
fn a_bound_class_the_module_does_not_export_is_named_with_what_it_exports() {
    let dir = broken_project(
        r#"
name = "broken"
main = "src/index.ts"
[[durable_objects.bindings]]
name = "ROOMS"
class_name = "Chatroom"
"#,
    );
    let (ok, out, err) = cli(&[
        "dev",
        dir.path().to_str().expect("utf-8 path"),
        "--listen",
        "127.0.0.1:0",
    ]);
    assert!(!ok, "{out}");
    let file = dir.path().join("wrangler.toml").display().to_string();
    assert!(
        err.contains(&format!(
            "error: {file}: durable_objects.bindings[0].class_name: class \"Chatroom\" is not exported by src/index.ts and not created by any migration; the module exports ChatRoom"
        )),
        "{err}"
    );
    assert!(
        !dir.path().join(".wasmdo/build/worker.wasm").exists(),
        "nothing built"
    );
}

#[test]
fn the_development_engines_hide_their_own_env_and_name_a_module_that_fails_to_load() {
    let project = project_copy("counter-worker", "dev-engines");
    let source = project.join("src/index.ts");
    let good = std::fs::read_to_string(&source)
        .expect("read source")
        .replace(
            "      case \"notes\":",
            "      case \"env\":\n        return Response.json(Object.keys(env).sort());\n      case \"notes\":",
        );
    std::fs::write(&source, &good).expect("write");
    let dev = Dev::start(&project);
    let url = &dev.url;
    // the bundle, class name, JSON var and binding names the engines read are not the code's env
    assert_eq!(
        get_json(&format!("{url}/env/x")),
        json!(["COUNTER", "GREETING", "LIMITS"])
    );
    // typed in TypeScript, called by name: the same result
    assert_eq!(
        get_json(&format!("{url}/increment/bob")),
        json!({"value": 1, "max": 3})
    );

    // a module whose top level throws bundles and deploys; each request says what it threw
    std::fs::write(
        &source,
        format!("{good}\nthrow new Error(\"boom at load\");\n"),
    )
    .expect("write");
    assert_eq!(dev.next_line(), "wasmdo dev: counter-worker reloaded");
    let (status, body) = get(&format!("{url}/env/x"));
    assert_eq!(status, 500, "{body}");
    assert!(
        body.contains("loading the Worker failed") && body.contains("boom at load"),
        "{body}"
    );
    // fixed: serving again, the object's data kept
    std::fs::write(&source, &good).expect("write");
    assert_eq!(dev.next_line(), "wasmdo dev: counter-worker reloaded");
    assert_eq!(
        get_json(&format!("{url}/increment/bob")),
        json!({"value": 2, "max": 3})
    );
}

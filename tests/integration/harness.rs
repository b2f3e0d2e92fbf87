//! The test harness: starts the real `wasmdo` binary on `127.0.0.1:0` with a temporary data dir
//! and talks to it over HTTP like a user would.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// A running `wasmdo serve`.
pub(crate) struct TestHost {
    child: Option<Child>,
    pub(crate) url: String,
    /// The public plane's URL, when the config sets `public-listen`.
    pub(crate) public_url: Option<String>,
    /// Sent as `Authorization: Bearer …` with every request that sets no header of its own.
    pub(crate) token: Option<String>,
    pub(crate) data: PathBuf,
    config: PathBuf,
    _dir: tempfile::TempDir,
    agent: ureq::Agent,
}

/// A reply: status and JSON body (or the raw text as a JSON string if the body is not JSON).
#[derive(Debug)]
pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) body: Value,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) text: String,
}

impl Reply {
    /// Asserts the status and returns the body.
    #[track_caller]
    pub(crate) fn expect(self, status: u16) -> Value {
        assert_eq!(
            self.status, status,
            "unexpected status; body: {}",
            self.text
        );
        self.body
    }

    /// Asserts an error reply of `status` and `kind`; returns the message.
    #[track_caller]
    pub(crate) fn expect_error(self, status: u16, kind: &str) -> String {
        assert_eq!(
            self.status, status,
            "unexpected status; body: {}",
            self.text
        );
        assert_eq!(
            self.body["kind"], kind,
            "unexpected kind; body: {}",
            self.text
        );
        self.body["error"]
            .as_str()
            .expect("error message")
            .to_string()
    }

    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

pub(crate) fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_wasmdo")
}

impl TestHost {
    /// A host with default limits.
    pub(crate) fn start() -> TestHost {
        TestHost::with_config("")
    }

    /// A host with this `wasmdo.toml` content and `admin-token = token`; requests send the
    /// token unless they set `authorization` themselves.
    pub(crate) fn with_admin_token(config: &str, token: &str) -> TestHost {
        let mut host = TestHost::with_config(&format!("admin-token = {token:?}\n{config}"));
        host.token = Some(token.to_owned());
        host
    }

    /// A host with this `wasmdo.toml` content.
    pub(crate) fn with_config(config: &str) -> TestHost {
        let dir = tempfile::tempdir().expect("temp dir");
        let data = dir.path().join("data");
        let config_path = dir.path().join("wasmdo.toml");
        // test hosts share one compile cache unless a test sets its own: a JS component then
        // compiles once per run, not once per test (~10 s each)
        let config = if config.contains("compile-cache") {
            config.to_owned()
        } else {
            let cache = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("compile-cache");
            format!(
                "compile-cache = {:?}\n{config}",
                cache.display().to_string()
            )
        };
        std::fs::write(&config_path, config).expect("write config");
        let agent = agent(Some(Duration::from_secs(120)));
        let mut host = TestHost {
            child: None,
            url: String::new(),
            public_url: None,
            token: None,
            data,
            config: config_path,
            _dir: dir,
            agent,
        };
        host.launch();
        host
    }

    fn launch(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.data.with_extension("log"))
            .expect("log file");
        let mut child = Command::new(binary())
            .args(["serve", "--listen", "127.0.0.1:0", "--data"])
            .arg(&self.data)
            .arg("--config")
            .arg(&self.config)
            .env("WASMDO_LOG", "info,wasmdo.guest=debug")
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("start wasmdo");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let first = lines
            .next()
            .and_then(Result::ok)
            .unwrap_or_else(|| panic!("wasmdo exited before listening; log:\n{}", self.log()));
        let url = first
            .strip_prefix("wasmdo listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {first:?}"))
            .to_string();
        let config = std::fs::read_to_string(&self.config).unwrap_or_default();
        if config.contains("public-listen") {
            let line = lines.next().and_then(Result::ok).unwrap_or_default();
            let public = line
                .trim()
                .strip_prefix("public (entry Worker only) on ")
                .unwrap_or_else(|| panic!("unexpected second line {line:?}"));
            self.public_url = Some(public.to_owned());
        }
        // keep draining stdout so the host never blocks on a full pipe
        std::thread::spawn(move || for _ in lines {});
        self.url = url;
        self.child = Some(child);
    }

    /// The host's log so far.
    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(self.data.with_extension("log")).unwrap_or_default()
    }

    /// `kill -9` the host (no clean shutdown), then start it again on the same data dir.
    pub(crate) fn crash_and_restart(&mut self) {
        self.kill();
        self.launch();
    }

    pub(crate) fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill(); // SIGKILL
            let _ = child.wait();
        }
    }

    /// Asks the host to shut down (SIGTERM) and waits for it to exit: its exit status.
    pub(crate) fn terminate(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("running");
        let pid = child.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status();
        assert!(sent.is_ok_and(|s| s.success()), "kill -TERM {pid}");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("the host did not exit after SIGTERM; log:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The host's process id.
    pub(crate) fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// Whether the process is still running.
    pub(crate) fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| c.try_wait().expect("try_wait").is_none())
    }

    pub(crate) fn request(&self, method: &str, path: &str, body: &[u8]) -> Reply {
        self.request_with(method, path, &[], body)
    }

    pub(crate) fn request_with(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Reply {
        self.request_to(&self.url, method, path, headers, body)
    }

    /// A request to `base` (the control or the public URL).
    pub(crate) fn request_to(
        &self,
        base: &str,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Reply {
        let url = format!("{base}{path}");
        let mut builder = ureq::http::Request::builder().method(method).uri(&url);
        for (k, v) in headers {
            builder = builder.header(*k, *v);
        }
        if let Some(token) = &self.token
            && !headers
                .iter()
                .any(|(k, _)| k.eq_ignore_ascii_case("authorization"))
        {
            builder = builder.header("authorization", format!("Bearer {token}"));
        }
        let request = builder.body(body.to_vec()).expect("request");
        let response = self
            .agent
            .run(request)
            .unwrap_or_else(|e| panic!("{method} {url}: {e}; log:\n{}", self.log()));
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
            .collect();
        let text = response
            .into_body()
            .with_config()
            .limit(256 * 1024 * 1024)
            .read_to_string()
            .unwrap_or_default();
        let body = serde_json::from_str(&text).unwrap_or_else(|_| Value::String(text.clone()));
        Reply {
            status,
            body,
            headers,
            text,
        }
    }

    /// Deploys the component at `path` as `class`.
    pub(crate) fn deploy(&self, class: &str, path: &str) -> Reply {
        let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("read {path}: {e}"));
        self.deploy_bytes(class, &bytes)
    }

    pub(crate) fn deploy_bytes(&self, class: &str, bytes: &[u8]) -> Reply {
        self.request("PUT", &format!("/_admin/classes/{class}"), bytes)
    }

    /// `POST /rpc/{class}/{name}/{method}` with `args` (a JSON array).
    pub(crate) fn rpc(&self, class: &str, name: &str, method: &str, args: Value) -> Reply {
        let body = serde_json::to_vec(&args).expect("json");
        self.request("POST", &format!("/rpc/{class}/{name}/{method}"), &body)
    }

    /// RPC that must succeed; returns the result.
    #[track_caller]
    pub(crate) fn call(&self, class: &str, name: &str, method: &str, args: Value) -> Value {
        self.rpc(class, name, method, args).expect(200)
    }

    /// A metric's current value from `/_admin/metrics`.
    pub(crate) fn metric(&self, name: &str) -> u64 {
        metric_value(&self.request("GET", "/_admin/metrics", b"").text, name)
    }

    /// Waits until `check` holds (polling), panicking after `timeout`.
    #[track_caller]
    pub(crate) fn wait_for(&self, timeout: Duration, what: &str, check: impl FnMut() -> bool) {
        wait_until(timeout, what, check);
    }

    /// Path of the compiled-artifact cache of a host started with
    /// `compile-cache = "data/compiled"` (the default place, private to the host).
    pub(crate) fn compiled_dir(&self) -> PathBuf {
        self.data.join("compiled")
    }
}

impl Drop for TestHost {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            eprintln!("---- wasmdo log ----\n{}", self.log());
        }
    }
}

/// Sends `count` POSTs from `threads` client threads at once; request `i` goes to `request(i)`
/// = (path, body). Every reply must be 200.
pub(crate) fn post_concurrently(
    url: &str,
    threads: usize,
    count: usize,
    request: impl Fn(usize) -> (String, String) + Send + Sync + 'static,
) {
    let request = std::sync::Arc::new(request);
    let workers: Vec<_> = (0..threads)
        .map(|t| {
            let (url, request) = (url.to_string(), request.clone());
            std::thread::spawn(move || {
                let agent = agent(None);
                for i in (t..count).step_by(threads) {
                    let (path, body) = request(i);
                    let reply = agent.post(format!("{url}{path}")).send(body).unwrap();
                    let status = reply.status().as_u16();
                    let text = reply.into_body().read_to_string().unwrap_or_default();
                    assert_eq!(status, 200, "POST {path}: {text}");
                }
            })
        })
        .collect();
    for worker in workers {
        worker.join().unwrap();
    }
}

/// Runs the `wasmdo` CLI with `args`; returns (success, stdout, stderr).
pub(crate) fn cli(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(binary())
        .args(args)
        .output()
        .expect("run wasmdo");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Asserts that `wasmdo bindgen <args>` prints exactly the committed file `path` (relative to
/// the repository): generated code kept in the tree must be what the generator writes today.
#[track_caller]
pub(crate) fn assert_bindgen_output(args: &[&str], path: &str) {
    let mut command = vec!["bindgen"];
    command.extend_from_slice(args);
    let (ok, generated, err) = cli(&command);
    assert!(ok, "{err}");
    let file = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(path);
    let committed =
        std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("read {}: {e}", file.display()));
    assert!(
        generated == committed,
        "{path} is stale: regenerate it with `wasmdo bindgen {} -o {path}`",
        args.join(" ")
    );
}

/// The value of metric `name` in a `/_admin/metrics` text.
#[track_caller]
pub(crate) fn metric_value(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .unwrap_or_else(|| panic!("no metric {name} in:\n{text}"))
        .trim()
        .parse()
        .expect("metric value")
}

/// Waits until `check` holds (polling every 20 ms), panicking after `timeout`.
#[track_caller]
pub(crate) fn wait_until(timeout: Duration, what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A WebSocket client of a test host.
pub(crate) type WsClient =
    tungstenite::WebSocket<tungstenite::stream::MaybeTlsStream<std::net::TcpStream>>;

/// The next text message on `ws` (pings and pongs skipped; anything else fails the test).
#[track_caller]
pub(crate) fn ws_text(ws: &mut WsClient) -> String {
    loop {
        match ws.read().expect("a message") {
            tungstenite::Message::Text(t) => return t.to_string(),
            tungstenite::Message::Ping(_) | tungstenite::Message::Pong(_) => continue,
            other => panic!("expected text, got {other:?}"),
        }
    }
}

/// An HTTP client that answers every status as a reply (no error for 4xx/5xx), each request
/// within `timeout` if one is given.
pub(crate) fn agent(timeout: Option<Duration>) -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(timeout)
        .build()
        .into()
}

/// Reads `ws` until its close frame: the close code (`None`: the connection ended without one).
pub(crate) fn ws_close_code(ws: &mut WsClient) -> Option<u16> {
    loop {
        match ws.read() {
            Ok(tungstenite::Message::Close(frame)) => return frame.map(|f| u16::from(f.code)),
            Ok(_) => continue,
            Err(_) => return None,
        }
    }
}

/// The values of header `name` in the request the `object_info` fixture echoed (`body`:
/// its reply, with `headers` as `[name, value]` pairs).
pub(crate) fn header_values(body: &Value, name: &str) -> Vec<String> {
    body["headers"]
        .as_array()
        .expect("the echoed headers")
        .iter()
        .filter(|h| h[0] == name)
        .map(|h| h[1].as_str().expect("a header value").to_owned())
        .collect()
}

/// Every file under `dir`, at any depth.
pub(crate) fn walk(dir: &std::path::Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

/// A TCP connection to `to` from the loopback address `from` (all of 127.0.0.0/8 is local on
/// Linux): another client, as far as the host can tell.
pub(crate) fn connect_from(from: &str, to: std::net::SocketAddr) -> std::net::TcpStream {
    let socket = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .expect("runtime")
        .block_on(async {
            let socket = tokio::net::TcpSocket::new_v4().expect("socket");
            socket
                .bind(format!("{from}:0").parse().expect("address"))
                .expect("bind a loopback source address");
            socket
                .connect(to)
                .await
                .expect("connect")
                .into_std()
                .expect("std socket")
        });
    socket.set_nonblocking(false).expect("blocking");
    socket
}

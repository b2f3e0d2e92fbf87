//! A PostgreSQL server for the cluster tests and the cluster bench: `WASMDO_TEST_POSTGRES` (a
//! server URL, e.g. `postgres://postgres@127.0.0.1:5432`) if set; otherwise a throwaway server
//! started once per process (`initdb` + `pg_ctl` from Debian's `postgresql`, which
//! `scripts/test` installs), as the `postgres` user when running as root, and stopped when the
//! process exits. Included by path by `cli/benches/cluster.rs`.

use std::process::Command;
use std::sync::OnceLock;

/// The URL of a PostgreSQL server for the tests (without a database name).
pub(crate) fn postgres_server() -> &'static str {
    static SERVER: OnceLock<String> = OnceLock::new();
    SERVER.get_or_init(|| match std::env::var("WASMDO_TEST_POSTGRES") {
        Ok(url) if !url.is_empty() => url,
        _ => Server::start().url,
    })
}

/// Whether this process runs as root.
fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).trim() == "0")
}

/// Runs `program` as the `postgres` user when this process is root (`initdb` refuses root).
fn as_postgres(program: &str) -> Command {
    match is_root() {
        true => {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--", program]);
            command
        }
        false => Command::new(program),
    }
}

/// A throwaway PostgreSQL server of this process: stopped when the process exits, and in between
/// stopped and started again at will (a test of the store going away).
pub(crate) struct Server {
    /// `postgres://postgres@127.0.0.1:<port>` (no database).
    pub(crate) url: String,
    bin: String,
    data: std::path::PathBuf,
    dir: std::path::PathBuf,
    options: String,
}

impl Server {
    /// Creates and starts a server on a free port.
    #[expect(
        clippy::zombie_processes,
        reason = "the reaper outlives this process: it waits for it to exit, then stops the server"
    )]
    pub(crate) fn start() -> Server {
        let bin = pg_bin_dir();
        let dir = tempfile::Builder::new()
            .prefix("wasmdo-pg-")
            .tempdir()
            .expect("temp dir")
            .keep();
        let data = dir.join("data");
        std::fs::create_dir(&data).expect("pg data dir");
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).expect("chmod");
        }
        if is_root() {
            let status = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(&dir)
                .status()
                .expect("chown");
            assert!(status.success(), "chown the PostgreSQL directory");
        }
        let initdb = as_postgres(&format!("{bin}/initdb"))
            .args(["-A", "trust", "-U", "postgres", "-E", "UTF8", "-D"])
            .arg(&data)
            .output()
            .expect("run initdb");
        assert!(
            initdb.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&initdb.stderr)
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let options = format!(
            "-p {port} -k {} -c listen_addresses=127.0.0.1 -c max_connections=500",
            dir.display()
        );
        let server = Server {
            url: format!("postgres://postgres@127.0.0.1:{port}"),
            bin,
            data,
            dir,
            options,
        };
        server.resume();
        // stop the server once this process is gone, whatever way it ends
        let stop = format!(
            "while kill -0 {pid} 2>/dev/null; do sleep 1; done; {runas} {bin}/pg_ctl -D {data} -m immediate stop >/dev/null 2>&1; rm -rf {dir}",
            pid = std::process::id(),
            runas = if is_root() {
                "runuser -u postgres --"
            } else {
                ""
            },
            bin = server.bin,
            data = server.data.display(),
            dir = server.dir.display()
        );
        Command::new("sh")
            .args(["-c", &stop])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn the PostgreSQL reaper");
        server
    }

    /// Starts the (stopped) server again.
    pub(crate) fn resume(&self) {
        let started = as_postgres(&format!("{}/pg_ctl", self.bin))
            .args(["-w", "-t", "60", "-o", &self.options, "-l"])
            .arg(self.dir.join("log"))
            .arg("-D")
            .arg(&self.data)
            .arg("start")
            .output()
            .expect("run pg_ctl");
        assert!(
            started.status.success(),
            "pg_ctl start failed: {}\n{}",
            String::from_utf8_lossy(&started.stderr),
            std::fs::read_to_string(self.dir.join("log")).unwrap_or_default()
        );
    }

    /// Stops the server the way a crash would (`immediate`: no checkpoint, clients cut off).
    pub(crate) fn crash(&self) {
        let stopped = as_postgres(&format!("{}/pg_ctl", self.bin))
            .args(["-w", "-m", "immediate", "-D"])
            .arg(&self.data)
            .arg("stop")
            .output()
            .expect("run pg_ctl");
        assert!(stopped.status.success(), "pg_ctl stop failed");
    }
}

/// Where Debian's PostgreSQL binaries are (`/usr/lib/postgresql/<version>/bin`).
fn pg_bin_dir() -> String {
    let mut versions: Vec<_> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL is installed (scripts/test installs Debian's `postgresql`)")
        .filter_map(Result::ok)
        .map(|e| e.path().join("bin"))
        .filter(|bin| bin.join("pg_ctl").exists())
        .collect();
    versions.sort();
    versions
        .pop()
        .expect("a PostgreSQL version with pg_ctl")
        .display()
        .to_string()
}

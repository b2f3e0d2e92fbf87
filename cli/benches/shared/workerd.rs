//! workerd (Cloudflare's runtime, from `bench/workerd`) serving one of that directory's configs,
//! for side-by-side numbers in the same run. Shared by the bench binaries.

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

/// A running workerd; killed on drop.
pub(crate) struct Workerd {
    pub(crate) child: std::process::Child,
    pub(crate) addr: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Drop for Workerd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// workerd serving `config` (a file of bench/workerd, its port replaced by a free one), with
/// the files it embeds put beside it by `prepare` (given bench/workerd and the directory it runs
/// in); `None` when bench/workerd is not installed.
pub(crate) fn start_workerd(
    config: &str,
    prepare: impl FnOnce(&Path, &Path) -> anyhow::Result<()>,
) -> anyhow::Result<Option<Workerd>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../bench/workerd");
    let binary = root.join("node_modules/.bin/workerd");
    if !binary.exists() {
        println!(
            "(workerd not installed: `scripts/npm-deps bench/workerd` to compare side by side)"
        );
        return Ok(None);
    }
    let dir = tempfile::tempdir()?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let text = std::fs::read_to_string(root.join(config))?
        .replace("127.0.0.1:8788", &format!("127.0.0.1:{port}"));
    std::fs::write(dir.path().join(config), text)?;
    prepare(&root, dir.path())?;
    std::fs::create_dir(dir.path().join("data"))?;
    let child = std::process::Command::new(binary)
        .args(["serve", config, "--experimental"])
        .current_dir(dir.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()?;
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse()?;
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(addr).is_err() {
        anyhow::ensure!(Instant::now() < deadline, "workerd did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(Some(Workerd {
        child,
        addr,
        _dir: dir,
    }))
}

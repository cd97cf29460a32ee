//! A real OCI registry (Debian's `docker-registry`) on loopback, and
//! pushes to it.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{free_port, repo};

/// A running registry, stopped when dropped.
pub struct Registry {
    /// `host:port`.
    pub addr: String,
    /// Where it keeps its data.
    pub root: PathBuf,
    child: Child,
}

impl Registry {
    /// Starts one on loopback, with basic authentication from `htpasswd`
    /// if given.
    pub fn start(dir: &Path, htpasswd: Option<&Path>) -> Self {
        let port = free_port();
        let root = dir.join(format!("registry-{port}"));
        std::fs::create_dir_all(&root).unwrap();
        let auth = htpasswd.map_or(String::new(), |p| {
            format!(
                "auth:\n  htpasswd:\n    realm: shoal-test\n    path: {}\n",
                p.display()
            )
        });
        let config = root.join("config.yml");
        std::fs::write(
            &config,
            format!("version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\n{auth}", root.join("data").display()),
        )
        .unwrap();
        let child = Command::new("docker-registry")
            .args(["serve"])
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::from(
                std::fs::File::create(root.join("registry.log")).unwrap(),
            ))
            .spawn()
            .expect("docker-registry is installed by scripts/test.sh");
        let addr = format!("127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(&addr).is_err() {
            assert!(Instant::now() < deadline, "registry did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Self { addr, root, child }
    }

    /// Pushes `wasm` as `target` (`repo:tag`) with `tests/support/oras_push.py`;
    /// `extra` are its options (`--format container`, credentials).
    pub fn push(&self, target: &str, wasm: &Path, extra: &[&str]) {
        let out = Command::new("python3")
            .arg(repo().join("tests/support/oras_push.py"))
            .args([&self.addr, target])
            .arg(wasm)
            .args(extra)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "oras push failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

//! A real containerd (Debian's package) of its own — root, state and
//! socket in a test directory — that finds `containerd-shim-shoal-v1` (as
//! built with the tests) on its `PATH`, driven with containerd's own `ctr`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The runtime name of shoal's shim.
pub const RUNTIME: &str = "io.containerd.shoal.v1";

/// The shim binary built with the tests.
pub fn shim_binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_containerd-shim-shoal-v1"))
}

/// A running containerd, stopped (with the shim daemons it started) when
/// dropped.
pub struct Containerd {
    pub dir: PathBuf,
    pub socket: PathBuf,
    /// The shim's data directory (`SHOAL_SHIM_ROOT`).
    pub shim_root: PathBuf,
    /// Its configuration file.
    pub config: PathBuf,
    env: Vec<(String, String)>,
    child: Option<Child>,
}

impl Containerd {
    /// Starts one in `dir` (short: containerd's socket path must fit a
    /// unix address). `config` is added to its configuration (the CRI
    /// plugin stays off without it); `env` reaches the shims it starts.
    pub fn start(dir: &Path, config: Option<&str>, env: &[(&str, &str)]) -> Self {
        let mut c = Self::configure(dir, config, env);
        c.boot();
        c
    }

    /// Writes its configuration file ([`Containerd::config`]) without
    /// starting it: [`Containerd::boot`] does.
    pub fn configure(dir: &Path, config: Option<&str>, env: &[(&str, &str)]) -> Self {
        std::fs::create_dir_all(dir).unwrap();
        let socket = dir.join("c.sock");
        let shim_root = dir.join("shim");
        let disabled = if config.is_some() {
            ""
        } else {
            "disabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n"
        };
        let path = dir.join("config.toml");
        std::fs::write(
            &path,
            format!(
                "version = 2\nroot = \"{root}\"\nstate = \"{state}\"\n{disabled}\
                 [grpc]\n  address = \"{sock}\"\n[ttrpc]\n  address = \"{sock}.ttrpc\"\n{extra}",
                root = dir.join("root").display(),
                state = dir.join("state").display(),
                sock = socket.display(),
                extra = config.unwrap_or(""),
            ),
        )
        .unwrap();
        let mut env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        env.push(("SHOAL_SHIM_ROOT".into(), shim_root.display().to_string()));
        Self {
            dir: dir.to_path_buf(),
            socket,
            shim_root,
            config: path,
            env,
            child: None,
        }
    }

    /// Starts containerd and waits until it answers.
    pub fn boot(&mut self) {
        let bin_dir = shim_binary().parent().unwrap().to_path_buf();
        let path = format!(
            "{}:{}",
            bin_dir.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("containerd.log"))
            .unwrap();
        let child = Command::new("containerd")
            .arg("--config")
            .arg(&self.config)
            .env("PATH", path)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("containerd is installed by scripts/test.sh");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while !self.ctr(&["version"]).status.success() {
            assert!(Instant::now() < deadline, "containerd did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops containerd (its shims keep running) and starts it again.
    pub fn restart(&mut self) {
        self.stop();
        self.boot();
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill").arg(c.id().to_string()).status();
            let _ = c.wait();
        }
    }

    /// A `ctr` command against this containerd.
    pub fn command(&self) -> Command {
        let mut c = Command::new("ctr");
        c.arg("--address").arg(&self.socket);
        c
    }

    /// Runs `ctr` with `args`.
    pub fn ctr(&self, args: &[&str]) -> Output {
        self.command()
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    /// Runs `ctr` with `args`, which must succeed; its stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.ctr(args);
        assert!(
            out.status.success(),
            "ctr {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Pulls `image` from a plain-HTTP registry.
    pub fn pull(&self, image: &str) {
        self.ok(&["images", "pull", "--plain-http", image]);
    }

    /// `ctr task ls`: each task's (pid, status), by id.
    pub fn tasks(&self) -> std::collections::BTreeMap<String, (u32, String)> {
        self.ok(&["task", "ls"])
            .lines()
            .skip(1)
            .filter_map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                (f.len() == 3).then(|| {
                    (
                        f[0].to_string(),
                        (f[1].parse().unwrap_or(0), f[2].to_string()),
                    )
                })
            })
            .collect()
    }

    /// Waits until `ready` holds for the task list.
    pub fn wait_tasks(
        &self,
        what: &str,
        ready: impl Fn(&std::collections::BTreeMap<String, (u32, String)>) -> bool,
    ) -> std::collections::BTreeMap<String, (u32, String)> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let tasks = self.tasks();
            if ready(&tasks) {
                return tasks;
            }
            assert!(Instant::now() < deadline, "{what}: tasks {tasks:?}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Mounts under this containerd's directory (root filesystems left
    /// mounted).
    pub fn mounts(&self) -> Vec<String> {
        let dir = self.dir.display().to_string();
        std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap()
            .lines()
            .filter(|l| l.contains(&dir))
            .map(String::from)
            .collect()
    }

    /// The pids of shim daemons serving this containerd.
    pub fn shim_daemons(&self) -> Vec<u32> {
        let socket = self.socket.display().to_string();
        let mut pids = Vec::new();
        for e in std::fs::read_dir("/proc").unwrap().flatten() {
            let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            let Ok(cmd) = std::fs::read(e.path().join("cmdline")) else {
                continue;
            };
            let args: Vec<String> = cmd
                .split(|b| *b == 0)
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect();
            let ours = args
                .first()
                .is_some_and(|a| a.ends_with("containerd-shim-shoal-v1"));
            if ours && args.iter().any(|a| a == "-socket") && args.contains(&socket) {
                pids.push(pid);
            }
        }
        pids
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        self.stop();
        let daemons = self.shim_daemons();
        for pid in &daemons {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
        }
        // Gone before their mounts are taken down, deepest first.
        let deadline = Instant::now() + Duration::from_secs(5);
        while daemons
            .iter()
            .any(|p| Path::new(&format!("/proc/{p}")).exists())
            && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(20));
        }
        let mut points: Vec<String> = self
            .mounts()
            .iter()
            .filter_map(|m| m.split_whitespace().nth(4).map(String::from))
            .collect();
        points.sort_by_key(|p| std::cmp::Reverse(p.len()));
        for point in points {
            let ok = Command::new("umount")
                .args(["-l", &point])
                .status()
                .is_ok_and(|s| s.success());
            if !ok {
                eprintln!("could not unmount {point}");
            }
        }
    }
}

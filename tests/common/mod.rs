//! A shoal cluster started from the real binary, driven with the real
//! kubectl.

#![allow(dead_code)]

pub mod containerd;
pub mod registry;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// A running `shoal up`.
pub struct Cluster {
    pub dir: PathBuf,
    pub kubeconfig: PathBuf,
    pub api_port: u16,
    pub kubelet_port: u16,
    extra_args: Vec<String>,
    /// A shell `ulimit` command run before shoal, e.g. `ulimit -Sn 1024`.
    limits: Option<String>,
    /// The network namespace (a host of a [`Lan`]) shoal runs in, and its
    /// address there.
    host: Option<(String, String)>,
    /// The command: `up`, or `server` for one of several servers.
    verb: &'static str,
    child: Option<Child>,
}

/// Three started servers on the first three of `hosts`, nodes `s1`–`s3`:
/// the first with `--cluster-init`, the others joining it.
pub fn three_servers(hosts: &[Host], test: &str) -> Vec<Cluster> {
    let first = Cluster::start_server_on(
        &hosts[0],
        &format!("{test}-1"),
        &["--cluster-init", "--node-name", "s1"],
    );
    let mut servers = vec![first];
    for n in 2..=3 {
        let mut c =
            servers[0].joiner_on(&hosts[n - 1], &format!("{test}-{n}"), &format!("s{n}"), &[]);
        c.boot();
        servers.push(c);
    }
    servers
}

/// The shoal binary: the one built with the tests, or `SHOAL_BINARY` (a
/// benchmark comparing two builds).
pub fn shoal_binary() -> String {
    std::env::var("SHOAL_BINARY").unwrap_or_else(|_| env!("CARGO_BIN_EXE_shoal").to_string())
}

/// A command running the shoal binary, in network namespace `ns` and
/// under the shell's `limits` if given (the process keeps the pid).
fn shoal_command(ns: Option<&str>, limits: Option<&str>) -> Command {
    let shoal = shoal_binary();
    let mut argv: Vec<String> = Vec::new();
    if let Some(ns) = ns {
        argv.extend(["ip", "netns", "exec", ns].map(String::from));
    }
    if let Some(limits) = limits {
        argv.extend([
            "sh".into(),
            "-c".into(),
            format!("{limits} && exec \"$0\" \"$@\""),
        ]);
    }
    argv.push(shoal);
    let mut c = Command::new(&argv[0]);
    c.args(&argv[1..]);
    c
}

/// Machines for tests that cross a network: network namespaces, each a
/// host with its own address, joined by veth pairs to one bridge (the
/// test's own namespace has the bridge's address, `.254`).
pub struct Lan {
    id: u32,
    subnet: String,
    hosts: Vec<String>,
}

/// A host of a [`Lan`].
pub struct Host {
    /// Its network namespace.
    pub ns: String,
    /// Its address.
    pub ip: String,
}

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("running ip");
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Lan {
    /// A new LAN, its subnet chosen from the test process's id.
    pub fn new() -> Self {
        let id = std::process::id();
        let subnet = format!("10.{}.{}", 100 + id % 100, (id / 100) % 250);
        let lan = Self {
            id,
            subnet,
            hosts: Vec::new(),
        };
        let br = lan.bridge();
        let _ = Command::new("ip").args(["link", "del", &br]).output();
        ip(&["link", "add", &br, "type", "bridge"]);
        ip(&["addr", "add", &format!("{}.254/24", lan.subnet), "dev", &br]);
        ip(&["link", "set", &br, "up"]);
        lan
    }

    fn bridge(&self) -> String {
        format!("shbr{}", self.id)
    }

    /// Adds host number `n` (1–253): its address is `<subnet>.n`.
    pub fn host(&mut self, n: u8) -> Host {
        let ns = format!("sh{}h{n}", self.id);
        let (outer, inner) = (format!("sh{}v{n}", self.id), format!("sh{}i{n}", self.id));
        let _ = Command::new("ip").args(["netns", "del", &ns]).output();
        ip(&["netns", "add", &ns]);
        ip(&[
            "link", "add", &outer, "type", "veth", "peer", "name", &inner,
        ]);
        ip(&["link", "set", &inner, "netns", &ns]);
        ip(&["link", "set", &outer, "master", &self.bridge()]);
        ip(&["link", "set", &outer, "up"]);
        let addr = format!("{}.{n}", self.subnet);
        let in_ns = |args: &[&str]| {
            let mut all = vec!["netns", "exec", &ns, "ip"];
            all.extend_from_slice(args);
            ip(&all);
        };
        in_ns(&["link", "set", "lo", "up"]);
        in_ns(&["link", "set", &inner, "name", "eth0"]);
        in_ns(&["addr", "add", &format!("{addr}/24"), "dev", "eth0"]);
        in_ns(&["link", "set", "eth0", "up"]);
        in_ns(&[
            "route",
            "add",
            "default",
            "via",
            &format!("{}.254", self.subnet),
        ]);
        self.hosts.push(ns.clone());
        Host { ns, ip: addr }
    }
}

impl Drop for Lan {
    fn drop(&mut self) {
        for ns in &self.hosts {
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
        }
        let _ = Command::new("ip")
            .args(["link", "del", &self.bridge()])
            .output();
    }
}

impl Host {
    /// Runs `argv` on this host and returns its output.
    pub fn run(&self, argv: &[&str]) -> Output {
        Command::new("ip")
            .args(["netns", "exec", &self.ns])
            .args(argv)
            .output()
            .expect("running a command on a host")
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The path of an example's module, building the examples if needed.
pub fn example(name: &str) -> PathBuf {
    example_file(&format!("{name}/{name}.wasm"))
}

/// The path of a module `examples/build.sh` makes (`guestbook/backend.wasm`),
/// building the examples if needed.
pub fn example_file(relative: &str) -> PathBuf {
    let path = repo().join("examples").join(relative);
    if !path.exists() {
        let st = Command::new("bash")
            .arg(repo().join("examples/build.sh"))
            .status()
            .expect("running examples/build.sh");
        assert!(st.success(), "building the examples failed");
    }
    path
}

impl Cluster {
    /// Starts a cluster in a fresh data directory.
    pub fn start(test: &str) -> Self {
        Self::start_with(test, &[])
    }

    /// Starts a cluster whose `shoal up` gets `args` as well.
    pub fn start_with(test: &str, args: &[&str]) -> Self {
        Self::start_limited(test, args, None)
    }

    /// Starts a cluster whose `shoal up` gets `args` and runs under the
    /// shell's `limits` (`ulimit -Sn 1024`, say).
    pub fn start_limited(test: &str, args: &[&str], limits: Option<&str>) -> Self {
        // Clusters of the machine's own network share it: their pod IPs
        // stay labels so they do not claim each other's addresses.
        let mut all = vec!["--pod-network", "none"];
        all.extend_from_slice(args);
        Self::start_in(test, &all, limits, None)
    }

    /// Starts a cluster on `host` of a [`Lan`] (its control plane and first
    /// node listen on the host's address), with pod IPs routed.
    pub fn start_on(host: &Host, test: &str, args: &[&str]) -> Self {
        let mut all = vec!["--bind-address", &host.ip, "--node-ip", &host.ip];
        all.extend_from_slice(args);
        Self::start_in(test, &all, None, Some((host.ns.clone(), host.ip.clone())))
    }

    /// Starts `shoal server` on `host` of a [`Lan`] with `args`
    /// (`--cluster-init`, or `--join URL --token T`), pod IPs routed.
    pub fn start_server_on(host: &Host, test: &str, args: &[&str]) -> Self {
        let mut c = Self::server_on(host, test, args);
        c.boot();
        c
    }

    /// `shoal server --join` to this server on `host`, as node `node`, not
    /// yet started (with `args` as well).
    pub fn joiner_on(&self, host: &Host, test: &str, node: &str, args: &[&str]) -> Self {
        let token = self.server_token();
        let url = self.server();
        let mut all = vec!["--join", &url, "--token", &token, "--node-name", node];
        all.extend_from_slice(args);
        Self::server_on(host, test, &all)
    }

    /// The token servers join this one with (`<data-dir>/token`).
    pub fn server_token(&self) -> String {
        std::fs::read_to_string(self.dir.join("token"))
            .unwrap()
            .trim()
            .to_string()
    }

    /// This server's id in the store's group (`<data-dir>/member-id`).
    pub fn member_id(&self) -> u64 {
        std::fs::read_to_string(self.dir.join("member-id"))
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    }

    /// As [`Cluster::start_server_on`], not yet started.
    pub fn server_on(host: &Host, test: &str, args: &[&str]) -> Self {
        let mut all = vec!["--bind-address", &host.ip, "--node-ip", &host.ip];
        all.extend_from_slice(args);
        Self::unstarted(
            "server",
            test,
            &all,
            None,
            Some((host.ns.clone(), host.ip.clone())),
        )
    }

    fn start_in(
        test: &str,
        args: &[&str],
        limits: Option<&str>,
        host: Option<(String, String)>,
    ) -> Self {
        let mut c = Self::unstarted("up", test, args, limits, host);
        c.boot();
        c
    }

    fn unstarted(
        verb: &'static str,
        test: &str,
        args: &[&str],
        limits: Option<&str>,
        host: Option<(String, String)>,
    ) -> Self {
        let dir = std::env::temp_dir().join(format!("shoal-e2e-{test}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Self {
            kubeconfig: dir.join("kubeconfig"),
            dir,
            api_port: free_port(),
            kubelet_port: free_port(),
            extra_args: args.iter().map(|a| a.to_string()).collect(),
            limits: limits.map(String::from),
            host,
            verb,
            child: None,
        }
    }

    /// The API's URL as nodes reach it.
    pub fn server(&self) -> String {
        let host = self
            .host
            .as_ref()
            .map_or("127.0.0.1", |(_, ip)| ip.as_str());
        format!("https://{host}:{}", self.api_port)
    }

    /// `shoal up` (or `shoal server`) on this cluster's data directory,
    /// ports and arguments.
    fn up_command(&self) -> Command {
        let ns = self.host.as_ref().map(|(ns, _)| ns.as_str());
        let mut command = shoal_command(ns, self.limits.as_deref());
        command
            .args([self.verb, "--data-dir"])
            .arg(&self.dir)
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args([
                "--api-port",
                &self.api_port.to_string(),
                "--kubelet-port",
                &self.kubelet_port.to_string(),
            ])
            .args(&self.extra_args);
        command
    }

    /// Starts `shoal up` on this cluster's data directory and waits for its
    /// ready line.
    pub fn boot(&mut self) {
        let mut child = self
            .up_command()
            .stdout(Stdio::piped())
            .stderr(Stdio::from(
                std::fs::File::create(self.dir.join("shoal.log")).unwrap(),
            ))
            .spawn()
            .expect("starting shoal");
        let rx = stdout_lines(&mut child);
        let Ok(line) = rx.recv_timeout(Duration::from_secs(60)) else {
            // Not left running after the test.
            let _ = child.kill();
            let _ = child.wait();
            panic!("shoal did not become ready; log:\n{}", self.log());
        };
        assert!(
            line.contains("shoal is ready"),
            "unexpected first line: {line}"
        );
        assert!(
            line.contains(&format!("KUBECONFIG={}", self.kubeconfig.display())),
            "{line}"
        );
        self.child = Some(child);
    }

    /// Adds `args` to those `shoal up` gets from the next boot on.
    pub fn add_args(&mut self, args: &[&str]) {
        self.extra_args.extend(args.iter().map(|a| a.to_string()));
    }

    /// Starts `shoal up` as [`Cluster::boot`] does, expecting it to refuse
    /// to start: its log.
    pub fn boot_fails(&self) -> String {
        let out = self
            .up_command()
            .stdin(Stdio::null())
            .output()
            .expect("starting shoal");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!out.status.success(), "shoal started: {text}");
        text
    }

    /// The process id of the running `shoal up`.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// Stops shoal with SIGINT (as Ctrl-C) and waits for it to exit.
    pub fn stop(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("running");
        Command::new("kill")
            .args(["-INT", &child.id().to_string()])
            .status()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(st) = child.try_wait().unwrap() {
                return st;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("shoal did not stop within 20s of SIGINT");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The exit status, once the process has stopped by itself (it is
    /// then no longer running).
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        let status = self.child.as_mut()?.try_wait().unwrap()?;
        self.child = None;
        Some(status)
    }

    /// Kills shoal with SIGKILL, as a crash or power loss would stop it.
    pub fn crash(&mut self) {
        let mut child = self.child.take().expect("running");
        child.kill().unwrap();
        child.wait().unwrap();
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("shoal.log")).unwrap_or_default()
    }

    /// Runs kubectl against the cluster.
    pub fn kubectl(&self, args: &[&str]) -> Output {
        // Global flags first: whatever follows `--` is the pod's command.
        Command::new("kubectl")
            .arg(format!(
                "--cache-dir={}",
                self.dir.join("kube-cache").display()
            ))
            .args(args)
            .env("KUBECONFIG", &self.kubeconfig)
            .env("KUBECACHEDIR", self.dir.join("kube-cache"))
            .stdin(Stdio::null())
            .output()
            .expect("running kubectl")
    }

    /// Runs kubectl and returns stdout, failing the test on error.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.kubectl(args);
        assert!(
            out.status.success(),
            "kubectl {args:?} failed: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Runs kubectl expecting failure and returns stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        let out = self.kubectl(args);
        assert!(
            !out.status.success(),
            "kubectl {args:?} unexpectedly succeeded: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8(out.stderr).unwrap()
    }

    /// Imports a module into the node's image store with `shoal images import`.
    pub fn import(&self, file: &Path, name: &str) {
        import_into(&self.dir, file, name);
    }

    /// Issues credentials with `shoal node-config` and starts `shoal agent`
    /// as node `name` at address `ip`, joined to this cluster, with `args`
    /// as well.
    pub fn join(&self, name: &str, ip: &str, args: &[&str]) -> Node {
        let mut all = vec!["--pod-network", "none"];
        all.extend_from_slice(args);
        self.join_in(name, ip, None, &all, None)
    }

    /// Starts `shoal agent` as node `name` on `host` of a [`Lan`], with pod
    /// IPs routed.
    /// Starts `shoal agent` as node `name` on `host` of a [`Lan`], with pod
    /// IPs routed, joined with the cluster's bootstrap token as a person
    /// would join a machine.
    pub fn join_on(&self, host: &Host, name: &str, args: &[&str]) -> Node {
        let token = self.node_token();
        self.join_in(name, &host.ip, Some(&host.ns), args, Some(&token))
    }

    /// Starts `shoal agent` as node `name` at address `ip`, joined with
    /// bootstrap token `token` (none: with the credentials a former join
    /// kept).
    pub fn join_with_token(&self, name: &str, ip: &str, token: Option<&str>) -> Node {
        self.join_in(
            name,
            ip,
            None,
            &["--pod-network", "none"],
            token.or(Some("")),
        )
    }

    /// The token `shoal up` made for joining nodes.
    pub fn node_token(&self) -> String {
        std::fs::read_to_string(self.dir.join("node-token"))
            .expect("shoal up writes node-token")
            .trim()
            .to_string()
    }

    /// Starts an agent: with `token` (empty: none) it joins with
    /// `--server` and the token; without, with credentials from `shoal
    /// node-config`.
    fn join_in(
        &self,
        name: &str,
        ip: &str,
        ns: Option<&str>,
        args: &[&str],
        token: Option<&str>,
    ) -> Node {
        let dir = self.dir.join(format!("node-{name}"));
        let mut command = shoal_command(ns, None);
        command.arg("agent").arg("--data-dir").arg(dir.join("data"));
        match token {
            Some(token) => {
                command.args(["--server", &self.server()]);
                if !token.is_empty() {
                    command.args(["--token", token]);
                }
            }
            None => {
                let creds = dir.join("credentials");
                let out = Command::new(shoal_binary())
                    .args(["node-config", "--data-dir"])
                    .arg(&self.dir)
                    .args(["--node-name", name, "--node-ip", ip, "--server"])
                    .arg(self.server())
                    .arg("--out")
                    .arg(&creds)
                    .output()
                    .unwrap();
                assert!(
                    out.status.success(),
                    "node-config failed: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
                command
                    .arg("--kubeconfig")
                    .arg(creds.join("kubeconfig"))
                    .arg("--tls-cert-file")
                    .arg(creds.join("kubelet.crt"))
                    .arg("--tls-private-key-file")
                    .arg(creds.join("kubelet.key"))
                    .arg("--client-ca-file")
                    .arg(creds.join("ca.crt"));
            }
        }
        std::fs::create_dir_all(&dir).unwrap();
        let mut child = command
            .args(["--node-name", name, "--node-ip", ip])
            .args(["--kubelet-port", &free_port().to_string()])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::from(
                std::fs::File::create(dir.join("agent.log")).unwrap(),
            ))
            .spawn()
            .expect("starting shoal agent");
        let rx = stdout_lines(&mut child);
        let node = Node {
            data_dir: dir.join("data"),
            dir,
            child,
        };
        let line = rx
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("shoal agent did not become ready; log:\n{}", node.log()));
        assert!(line.contains("shoal agent is ready"), "{line}");
        node
    }

    /// The first NodePort of a Service.
    pub fn node_port(&self, svc: &str) -> u16 {
        self.ok(&[
            "get",
            "service",
            svc,
            "-o",
            "jsonpath={.spec.ports[0].nodePort}",
        ])
        .trim()
        .parse()
        .unwrap()
    }

    /// Runs `kubectl logs -f` with `extra` arguments and returns the first
    /// `n` lines it prints (fewer if it ends or `timeout` passes first).
    pub fn follow_logs(
        &self,
        pod: &str,
        extra: &[&str],
        n: usize,
        timeout: Duration,
    ) -> Vec<String> {
        let mut follow = Command::new("kubectl")
            .args(["logs", "-f", pod])
            .args(extra)
            .env("KUBECONFIG", &self.kubeconfig)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut reader = BufReader::new(follow.stdout.take().unwrap());
        let started = Instant::now();
        let mut lines = Vec::new();
        let mut line = String::new();
        while lines.len() < n && started.elapsed() < timeout {
            line.clear();
            if reader.read_line(&mut line).unwrap() == 0 {
                break;
            }
            lines.push(line.trim_end().to_string());
        }
        let _ = follow.kill();
        let _ = follow.wait();
        lines
    }

    /// Polls `kubectl args` until `pred` holds on its stdout.
    pub fn wait_for(&self, args: &[&str], what: &str, pred: impl Fn(&str) -> bool) -> String {
        self.wait_for_within(60, args, what, pred)
    }

    /// [`Cluster::wait_for`] with a deadline of `secs` seconds.
    pub fn wait_for_within(
        &self,
        secs: u64,
        args: &[&str],
        what: &str,
        pred: impl Fn(&str) -> bool,
    ) -> String {
        let deadline = Instant::now() + Duration::from_secs(secs);
        let mut last = String::new();
        while Instant::now() < deadline {
            let out = self.kubectl(args);
            last = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            if out.status.success() && pred(&last) {
                return last;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!(
            "timed out waiting for {what}; last output of kubectl {args:?}:\n{last}\nshoal log tail:\n{}",
            tail(&self.log(), 40)
        );
    }
}

/// The whitespace-separated cells of the row of `out` (kubectl's table
/// output) whose first cell is `name`.
pub fn row(out: &str, name: &str) -> Vec<String> {
    out.lines()
        .map(|l| l.split_whitespace().map(String::from).collect::<Vec<_>>())
        .find(|cols| cols.first().is_some_and(|c| c == name))
        .unwrap_or_else(|| panic!("no row {name} in\n{out}"))
}

pub fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// The lines a child prints on stdout, as they come.
fn stdout_lines(child: &mut Child) -> mpsc::Receiver<String> {
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    rx
}

/// Imports a module into the image store under `data_dir`.
pub fn import_into(data_dir: &Path, file: &Path, name: &str) {
    let out = Command::new(shoal_binary())
        .args(["images", "import", "--data-dir"])
        .arg(data_dir)
        .arg(file)
        .arg(name)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "import failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A running `shoal agent` joined to a [`Cluster`].
pub struct Node {
    pub dir: PathBuf,
    pub data_dir: PathBuf,
    child: Child,
}

impl Node {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("agent.log")).unwrap_or_default()
    }

    /// Imports a module into this node's image store.
    pub fn import(&self, file: &Path, name: &str) {
        import_into(&self.data_dir, file, name);
    }

    /// Kills the agent with SIGKILL, as a crash or a lost machine stops it.
    pub fn crash(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Stops the agent with SIGINT (as Ctrl-C) and waits for it to exit.
    pub fn stop(&mut self) -> std::process::ExitStatus {
        Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                return st;
            }
            assert!(
                Instant::now() < deadline,
                "shoal agent did not stop within 20s of SIGINT"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// A plain HTTP/1.1 GET; returns the status code and body, or None when the
/// connection fails.
pub fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).ok()?;
    let code = buf.split_whitespace().nth(1)?.parse().ok()?;
    let body = buf
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Some((code, decode_chunked(&body)))
}

fn decode_chunked(body: &str) -> String {
    // Bodies of unknown length arrive chunked; keep the text lines only.
    let mut out = String::new();
    let mut rest = body;
    while let Some((size, after)) = rest.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            return body.to_string();
        };
        if n == 0 || after.len() < n {
            break;
        }
        out.push_str(&after[..n]);
        rest = after[n..].trim_start_matches("\r\n");
    }
    if out.is_empty() {
        body.to_string()
    } else {
        out
    }
}

/// The resident memory of a process, in KiB.
/// A number from the environment (a benchmark's setting), or `default`.
pub fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

pub fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap()
}

/// How many descriptors process `pid` holds open.
pub fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// The median of `v` (benchmarks' figures).
pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// The `p` quantile of `v` (0.99: p99).
pub fn percentile(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    v[((v.len() as f64 * p) as usize).min(v.len() - 1)]
}

/// A kube-rs client for `kubeconfig`.
pub async fn kube_client(kubeconfig: &Path) -> kube::Client {
    let kc = kube::config::Kubeconfig::read_from(kubeconfig).unwrap();
    let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .unwrap();
    kube::Client::try_from(cfg).unwrap()
}

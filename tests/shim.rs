//! shoal's runtime as a containerd runtime: a real containerd pulls Wasm
//! images from a real registry and runs them with
//! `ctr run --runtime io.containerd.shoal.v1`, served by one
//! `containerd-shim-shoal-v1` daemon — output, exit codes, memory limits
//! and OOM events, exec, kill, stats, and what happens when the daemon or
//! containerd dies.

mod common;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::containerd::{Containerd, RUNTIME, shim_binary};
use common::example;
use common::registry::Registry;

struct Setup {
    ctd: Containerd,
    registry: Registry,
    image: String,
}

fn setup(name: &str, env: &[(&str, &str)]) -> Setup {
    let dir = PathBuf::from(format!("/tmp/shoal-shim-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let registry = Registry::start(&dir, None);
    registry.push(
        "container/hello-cmd:v1",
        &example("hello-cmd"),
        &["--format", "container"],
    );
    let ctd = Containerd::start(&dir.join("ctd"), None, env);
    let image = format!("{}/container/hello-cmd:v1", registry.addr);
    ctd.pull(&image);
    Setup {
        ctd,
        registry,
        image,
    }
}

/// `ctr run --rm` of the image with `env`: exit code, stdout, stderr.
fn run(s: &Setup, id: &str, extra: &[&str]) -> (i32, String, String) {
    let mut args = vec!["run", "--rm", "--runtime", RUNTIME];
    args.extend_from_slice(extra);
    args.extend([s.image.as_str(), id]);
    let out = s.ctd.ctr(&args);
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn runs_wasm_images_pulled_by_containerd() {
    let s = setup("run", &[]);
    let (code, out, err) = run(&s, "three", &["--env", "COUNT=3", "--env", "INTERVAL=0"]);
    assert_eq!(code, 0, "{out}{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines,
        (1..=3)
            .map(|i| format!("hello from the image config #{i}"))
            .collect::<Vec<_>>(),
        "the image's entrypoint and environment, with the run's"
    );

    // A failing guest fails the container (a WASI preview 2 command ends
    // with success or failure only).
    let (code, _, _) = run(
        &s,
        "fails",
        &[
            "--env",
            "COUNT=1",
            "--env",
            "INTERVAL=0",
            "--env",
            "EXIT_CODE=3",
        ],
    );
    assert_eq!(code, 1);

    // The container's memory limit bounds the guest; containerd hears of
    // the OOM.
    let mut events = s
        .ctd
        .command()
        .arg("events")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let (code, out, err) = run(
        &s,
        "hungry",
        &[
            "--memory-limit",
            "33554432",
            "--env",
            "HOLD_MIB=64",
            "--env",
            "INTERVAL=0",
        ],
    );
    assert_eq!(code, 137, "out of memory: {out}{err}");
    let mut seen = String::new();
    let mut lines = BufReader::new(events.stdout.take().unwrap()).lines();
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        let Some(Ok(l)) = lines.next() else { break };
        seen.push_str(&l);
        seen.push('\n');
        if l.contains("/tasks/delete") {
            break;
        }
    }
    let _ = events.kill();
    assert!(seen.contains("/tasks/oom"), "events: {seen}");
    assert!(seen.contains("/tasks/exit"), "events: {seen}");

    // The guest sees the root filesystem of the image and nothing else.
    let (code, out, _) = run(
        &s,
        "files",
        &[
            "--env",
            "SHOW_FILES=/etc/motd,/etc/shadow,/../../etc/passwd",
            "--env",
            "COUNT=1",
            "--env",
            "INTERVAL=0",
        ],
    );
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("base layer"), "the image's lower layer: {out}");
    assert!(!out.contains("root:"), "nothing of the host: {out}");

    assert!(s.ctd.mounts().is_empty(), "{:?}", s.ctd.mounts());
}

#[test]
fn one_daemon_serves_every_container() {
    let s = setup("daemon", &[("SHOAL_SHIM_LINGER_SECONDS", "2")]);
    let ids: Vec<String> = (0..5).map(|i| format!("c{i}")).collect();
    for id in &ids {
        s.ctd.ok(&["run", "-d", "--runtime", RUNTIME, &s.image, id]);
    }
    let tasks = s.ctd.wait_tasks("five running", |t| {
        t.len() == 5 && t.values().all(|(_, st)| st == "RUNNING")
    });
    let pids: std::collections::BTreeSet<u32> = tasks.values().map(|(p, _)| *p).collect();
    assert_eq!(pids.len(), 1, "one process serves them all: {tasks:?}");
    let daemon = *pids.iter().next().unwrap();
    assert_eq!(s.ctd.shim_daemons(), [daemon]);
    let exe = std::fs::read_link(format!("/proc/{daemon}/exe")).unwrap();
    assert_eq!(exe, shim_binary().canonicalize().unwrap());

    // exec runs a new instance of the container's module; its output
    // comes back, and a kill ends it alone.
    let mut exec = s
        .ctd
        .command()
        .args(["task", "exec", "--exec-id", "e1", "c0", "/app.wasm"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(exec.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert_eq!(first.trim(), "hello from the image config #1");
    s.ctd
        .ok(&["task", "kill", "--exec-id", "e1", "-s", "SIGKILL", "c0"]);
    let status = exec.wait().unwrap();
    assert_eq!(status.code(), Some(137));
    assert_eq!(s.ctd.tasks()["c0"].1, "RUNNING");

    let missing = s
        .ctd
        .ctr(&["task", "exec", "--exec-id", "e2", "c0", "/bin/sh"]);
    assert!(!missing.status.success());
    assert!(
        String::from_utf8_lossy(&missing.stderr).contains("No such file"),
        "{}",
        String::from_utf8_lossy(&missing.stderr)
    );

    // Stats for `kubectl top` on a host cluster.
    std::thread::sleep(Duration::from_millis(1500));
    let metrics = s.ctd.ok(&["task", "metrics", "c0"]);
    let value = |name: &str| -> u64 {
        metrics
            .lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{name} in {metrics}"))
    };
    assert!(value("cpu.usage_usec") > 0, "{metrics}");
    assert!(value("memory.usage") > 0, "{metrics}");

    // SIGTERM stops a container (128 + 15); the others keep running.
    s.ctd.ok(&["task", "kill", "c1"]);
    s.ctd.wait_tasks("c1 stopped", |t| t["c1"].1 == "STOPPED");
    assert!(
        ids.iter()
            .filter(|id| *id != "c1")
            .all(|id| s.ctd.tasks()[id.as_str()].1 == "RUNNING")
    );

    for id in &ids {
        let _ = s.ctd.ctr(&["task", "kill", "-s", "SIGKILL", id]);
    }
    s.ctd
        .wait_tasks("all stopped", |t| t.values().all(|(_, st)| st == "STOPPED"));
    for id in &ids {
        s.ctd.ok(&["task", "rm", id]);
        s.ctd.ok(&["container", "rm", id]);
    }
    assert!(s.ctd.mounts().is_empty(), "{:?}", s.ctd.mounts());
    // Without containers the daemon leaves, socket and all.
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::path::Path::new(&format!("/proc/{daemon}")).exists() {
        assert!(Instant::now() < deadline, "the idle daemon stays");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn bad_images_dead_daemons_and_restarts() {
    let mut s = setup("faults", &[]);
    let dir = s.ctd.dir.clone();
    let script = dir.join("not-wasm");
    std::fs::write(&script, "#!/bin/sh\necho hi\n").unwrap();
    let reg = s.registry.addr.clone();
    s.registry
        .push("container/not-wasm:v1", &script, &["--format", "container"]);
    let bad = format!("{reg}/container/not-wasm:v1");
    s.ctd.pull(&bad);
    let out = s
        .ctd
        .ctr(&["run", "--rm", "--runtime", RUNTIME, &bad, "bad"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not a WebAssembly module"), "{err}");
    assert!(s.ctd.tasks().is_empty());
    assert!(s.ctd.mounts().is_empty(), "{:?}", s.ctd.mounts());
    let _ = s.ctd.ctr(&["container", "rm", "bad"]);

    // The daemon killed: containerd sees its containers gone and cleans
    // up; the next container starts a new daemon.
    s.ctd
        .ok(&["run", "-d", "--runtime", RUNTIME, &s.image, "k1"]);
    let old = s.ctd.wait_tasks("k1 running", |t| {
        t.get("k1").is_some_and(|t| t.1 == "RUNNING")
    })["k1"]
        .0;
    let _ = std::process::Command::new("kill")
        .args(["-9", &old.to_string()])
        .status();
    s.ctd
        .wait_tasks("k1 gone", |t| t.get("k1").is_none_or(|t| t.1 != "RUNNING"));
    let deadline = Instant::now() + Duration::from_secs(10);
    while !s.ctd.mounts().is_empty() {
        assert!(Instant::now() < deadline, "{:?}", s.ctd.mounts());
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = s.ctd.ctr(&["task", "rm", "k1"]);
    s.ctd.ok(&["container", "rm", "k1"]);
    s.ctd
        .ok(&["run", "-d", "--runtime", RUNTIME, &s.image, "k2"]);
    let new = s.ctd.wait_tasks("k2 running", |t| {
        t.get("k2").is_some_and(|t| t.1 == "RUNNING")
    })["k2"]
        .0;
    assert_ne!(new, old);

    // containerd restarted: it finds the daemon again.
    s.ctd.restart();
    assert_eq!(s.ctd.tasks()["k2"], (new, "RUNNING".to_string()));
    s.ctd.ok(&["task", "kill", "-s", "SIGKILL", "k2"]);
    s.ctd.wait_tasks("k2 stopped", |t| t["k2"].1 == "STOPPED");
    s.ctd.ok(&["task", "rm", "k2"]);
    assert!(s.ctd.mounts().is_empty(), "{:?}", s.ctd.mounts());
}

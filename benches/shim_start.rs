//! Containers through a real containerd: shoal's shim
//! (`io.containerd.shoal.v1`, one daemon for every container) against runc
//! (`io.containerd.runc.v2`, a shim process per container) running a
//! static busybox — the floor of what a process-per-container runtime
//! costs, as runwasi's shims are one process per container too.
//!
//! For each runtime, containers start one after another as `ctr run -d`
//! would start them, in its two steps: `ctr container create` (containerd's
//! metadata and the snapshot: the same for both runtimes) and `ctr task
//! start -d` (the runtime's part: the shim started or found, the task
//! created and started). Both are timed from the command to its exit, so
//! both include the `ctr` process itself (printed alone as `ctr version`).
//! The memory of everything the runtime runs for the containers is summed
//! once all are running: proportional set sizes (shared pages split
//! fairly) of the shim processes and, for runc, the containers' processes.
//!
//! Run with `cargo bench --bench shim_start` (STARTS=N, default 200, for
//! the start figures; RUNNING=N, default 500, for the memory figure).

#[path = "../tests/common/mod.rs"]
mod common;

use std::collections::HashSet;
use std::time::Instant;

use common::containerd::{Containerd, RUNTIME};
use common::registry::Registry;
use common::{env_number, percentile};

/// Proportional set size of a process, in KiB.
fn pss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Pss:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// Every process with its parent.
fn processes() -> Vec<(u32, u32, String)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
            continue;
        };
        let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
            continue;
        };
        let ppid = rest
            .split_whitespace()
            .nth(1)
            .and_then(|p| p.parse().ok())
            .unwrap_or(0);
        let cmd = std::fs::read(e.path().join("cmdline"))
            .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
            .unwrap_or_default();
        out.push((pid, ppid, cmd));
    }
    out
}

/// The memory (KiB) of the shims serving `ctd` whose binary is `shim`,
/// with every process under them.
fn runtime_memory(ctd: &Containerd, shim: &str) -> (u64, usize) {
    let socket = ctd.socket.display().to_string();
    let all = processes();
    let mut ours: HashSet<u32> = all
        .iter()
        .filter(|(_, _, cmd)| cmd.contains(shim) && cmd.contains(&socket))
        .map(|(pid, _, _)| *pid)
        .collect();
    let shims = ours.len();
    loop {
        let before = ours.len();
        for (pid, ppid, _) in &all {
            if ours.contains(ppid) {
                ours.insert(*pid);
            }
        }
        if ours.len() == before {
            break;
        }
    }
    (ours.iter().map(|p| pss_kib(*p)).sum(), shims)
}

struct Figures {
    /// Container create and task start together.
    p50_ms: f64,
    p99_ms: f64,
    /// Task start alone.
    task_p50_ms: f64,
    task_p99_ms: f64,
    kib_per_container: f64,
    shims: usize,
}

/// A container to start: runtime, `ctr run` flags, image, command.
struct Kind<'a> {
    runtime: &'a str,
    flags: &'a [&'a str],
    image: &'a str,
    cmd: &'a [&'a str],
    /// The shim binary's name.
    shim: &'a str,
}

fn measure(ctd: &Containerd, k: &Kind, starts: usize, running: usize) -> Figures {
    let n = starts.max(running);
    let mut times = Vec::with_capacity(n);
    let mut task_times = Vec::with_capacity(n);
    for i in 0..n {
        let id = format!("b{i}");
        let mut args = vec!["container", "create", "--runtime", k.runtime];
        args.extend_from_slice(k.flags);
        args.extend([k.image, &id]);
        args.extend_from_slice(k.cmd);
        let t = Instant::now();
        ctd.ok(&args);
        let created = t.elapsed().as_secs_f64() * 1000.0;
        let t = Instant::now();
        ctd.ok(&["task", "start", "-d", &id]);
        let started = t.elapsed().as_secs_f64() * 1000.0;
        times.push(created + started);
        task_times.push(started);
    }
    let tasks = ctd.wait_tasks("all running", |t| {
        t.len() == n && t.values().all(|(_, s)| s == "RUNNING")
    });
    assert_eq!(tasks.len(), n);
    std::thread::sleep(std::time::Duration::from_secs(2));
    let (kib, shims) = runtime_memory(ctd, k.shim);
    let mut first: Vec<f64> = times[..starts].to_vec();
    let mut task: Vec<f64> = task_times[..starts].to_vec();
    let figures = Figures {
        p50_ms: percentile(&mut first, 0.50),
        p99_ms: percentile(&mut first, 0.99),
        task_p50_ms: percentile(&mut task, 0.50),
        task_p99_ms: percentile(&mut task, 0.99),
        kib_per_container: kib as f64 / n as f64,
        shims,
    };
    for i in 0..n {
        let _ = ctd.ctr(&["task", "kill", "-s", "SIGKILL", &format!("b{i}")]);
    }
    ctd.wait_tasks("all stopped", |t| t.values().all(|(_, s)| s == "STOPPED"));
    for i in 0..n {
        let id = format!("b{i}");
        let _ = ctd.ctr(&["task", "rm", &id]);
        let _ = ctd.ctr(&["container", "rm", &id]);
    }
    figures
}

fn main() {
    let starts = env_number("STARTS", 200);
    let running = env_number("RUNNING", 500);
    let dir = std::path::PathBuf::from(format!("/tmp/shoal-bench-shim-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let registry = Registry::start(&dir, None);
    registry.push(
        "bench/hello-cmd:v1",
        &common::example("hello-cmd"),
        &["--format", "container"],
    );
    registry.push(
        "bench/busybox:v1",
        std::path::Path::new("/bin/busybox"),
        &[
            "--format",
            "container",
            "--path",
            "bin/busybox",
            "--entrypoint",
            "[\"/bin/busybox\"]",
        ],
    );
    let ctd = Containerd::start(&dir.join("ctd"), None, &[]);
    let wasm = format!("{}/bench/hello-cmd:v1", registry.addr);
    let busybox = format!("{}/bench/busybox:v1", registry.addr);
    ctd.pull(&wasm);
    ctd.pull(&busybox);

    // Both idle once started: the guest prints one line an hour.
    let shoal = Kind {
        runtime: RUNTIME,
        flags: &["--env", "INTERVAL=3600"],
        image: &wasm,
        cmd: &[],
        shim: "containerd-shim-shoal-v1",
    };
    let runc = Kind {
        runtime: "io.containerd.runc.v2",
        flags: &[],
        image: &busybox,
        cmd: &["/bin/busybox", "sleep", "100000"],
        shim: "containerd-shim-runc-v2",
    };
    let mut ctr_alone: Vec<f64> = (0..20)
        .map(|_| {
            let t = Instant::now();
            ctd.ok(&["version"]);
            t.elapsed().as_secs_f64() * 1000.0
        })
        .collect();
    let ctr_alone = percentile(&mut ctr_alone, 0.5);
    let shoal = measure(&ctd, &shoal, starts, running);
    let runc = measure(&ctd, &runc, starts, running);
    println!(
        "{starts} starts, {running} running, one containerd (the ctr process alone: {ctr_alone:.1} ms):\n\
         runtime                     create+start p50/p99     task start p50/p99   KiB/container  shims\n\
         shoal (one daemon)          {:>6.1} / {:>6.1} ms      {:>6.1} / {:>6.1} ms   {:>10.0}   {}\n\
         runc (shim per container)   {:>6.1} / {:>6.1} ms      {:>6.1} / {:>6.1} ms   {:>10.0}   {}\n\
         ratio runc/shoal            {:>6.2}× / {:>5.2}×        {:>6.2}× / {:>5.2}×   {:>10.1}×",
        shoal.p50_ms,
        shoal.p99_ms,
        shoal.task_p50_ms,
        shoal.task_p99_ms,
        shoal.kib_per_container,
        shoal.shims,
        runc.p50_ms,
        runc.p99_ms,
        runc.task_p50_ms,
        runc.task_p99_ms,
        runc.kib_per_container,
        runc.shims,
        runc.p50_ms / shoal.p50_ms,
        runc.p99_ms / shoal.p99_ms,
        runc.task_p50_ms / shoal.task_p50_ms,
        runc.task_p99_ms / shoal.task_p99_ms,
        runc.kib_per_container / shoal.kib_per_container,
    );
    drop(ctd);
    drop(registry);
    let _ = std::fs::remove_dir_all(&dir);
}

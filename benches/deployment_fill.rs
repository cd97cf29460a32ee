//! One `kubectl apply` of a big Deployment on `shoal up`, as a new user
//! would load a node: REPLICAS idle Wasm commands (10,000 by default), the
//! process started under the default soft open-files limit (1,024). Timed
//! until every replica is Ready; `kubectl get` is run every 200 ms
//! meanwhile; then the Deployment is deleted and the process's memory read
//! again 45 s after the last pod is gone (Events stay for their hour). ROUNDS times in a row (2 by default).
//!
//! Run with `cargo bench --bench deployment_fill` (REPLICAS=N, ROUNDS=R).
//! Targets (DESIGN.md): all Ready in ≤ 30 s, `kubectl get` p99 ≤ 1 s,
//! twice in a row.

#[path = "../tests/common/mod.rs"]
mod common;

use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)]
}

fn main() {
    let replicas = common::env_number("REPLICAS", 10_000);
    let rounds = common::env_number("ROUNDS", 2);
    let max_pods = (replicas + 100).to_string();
    // A node's pod CIDR must hold its pods: /18 gives 16,382 addresses.
    let mask = if replicas > 16_000 { "14" } else { "18" };
    let cluster = common::Cluster::start_limited(
        "bench-deployment-fill",
        &["--max-pods", &max_pods, "--node-cidr-mask-size", mask],
        Some("ulimit -Sn 1024"),
    );
    let pid = cluster.pid();
    cluster.import(&common::example("hello-cmd"), "hello-cmd:v1");
    let manifest = cluster.dir.join("idle.yaml");
    std::fs::write(
        &manifest,
        format!(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: idle}}\nspec:\n  replicas: {replicas}\n  selector: {{matchLabels: {{app: idle}}}}\n  template:\n    metadata: {{labels: {{app: idle}}}}\n    spec:\n      containers:\n      - name: idle\n        image: hello-cmd:v1\n        env: [{{name: INTERVAL, value: \"3600\"}}]\n"
        ),
    )
    .unwrap();
    std::thread::sleep(Duration::from_secs(2));
    let idle_kib = common::rss_kib(pid);
    let idle_fds = fds(pid);
    println!(
        "shoal up idle: RSS {:.1} MiB, {idle_fds} descriptors",
        idle_kib as f64 / 1024.0
    );
    println!(
        "| round | replicas | all Ready | pods/s | kubectl get p50 | p99 | max | RSS with pods | per pod | descriptors (max) | per pod | RSS after delete | delete took |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for round in 1..=rounds {
        let done = Arc::new(AtomicBool::new(false));
        let gets = Arc::new(Mutex::new(Vec::new()));
        let prober = {
            let (done, gets) = (done.clone(), gets.clone());
            let kubeconfig = cluster.kubeconfig.clone();
            std::thread::spawn(move || {
                while !done.load(Ordering::Relaxed) {
                    let t = Instant::now();
                    let ok = Command::new("kubectl")
                        .env("KUBECONFIG", &kubeconfig)
                        .args(["get", "deployment", "idle", "-o", "name"])
                        .output()
                        .is_ok_and(|o| o.status.success());
                    if ok {
                        gets.lock().unwrap().push(t.elapsed());
                    }
                    std::thread::sleep(Duration::from_millis(200));
                }
            })
        };
        let start = Instant::now();
        cluster.ok(&["apply", "-f", manifest.to_str().unwrap()]);
        let mut max_fds = 0;
        loop {
            max_fds = max_fds.max(fds(pid));
            let ready = cluster.ok(&[
                "get",
                "deployment",
                "idle",
                "-o",
                "jsonpath={.status.readyReplicas}",
            ]);
            if ready.trim() == replicas.to_string() {
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(900),
                "{ready} ready after 15 minutes"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        let took = start.elapsed();
        done.store(true, Ordering::Relaxed);
        prober.join().unwrap();
        let full_kib = common::rss_kib(pid);
        let deleting = Instant::now();
        cluster.ok(&["delete", "deployment", "idle"]);
        loop {
            let left = cluster.ok(&["get", "pods", "-o", "name"]);
            if left.trim().is_empty() {
                break;
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        let delete_took = deleting.elapsed();
        // The allocator gives freed pages back over some tens of seconds
        // (measured: settled within 40 s).
        std::thread::sleep(Duration::from_secs(45));
        let after_kib = common::rss_kib(pid);
        let mut gets = gets.lock().unwrap().clone();
        gets.sort();
        println!(
            "| {round} | {replicas} | {:.2} s | {:.0} | {:.0} ms | {:.0} ms | {:.0} ms | {:.0} MiB | {:.1} KiB | {max_fds} | {:.3} | {:.0} MiB | {:.1} s |",
            took.as_secs_f64(),
            replicas as f64 / took.as_secs_f64(),
            percentile(&gets, 0.5).as_secs_f64() * 1000.0,
            percentile(&gets, 0.99).as_secs_f64() * 1000.0,
            gets.last().copied().unwrap_or_default().as_secs_f64() * 1000.0,
            full_kib as f64 / 1024.0,
            full_kib.saturating_sub(idle_kib) as f64 / replicas as f64,
            max_fds.saturating_sub(idle_fds) as f64 / replicas as f64,
            after_kib as f64 / 1024.0,
            delete_took.as_secs_f64(),
        );
    }
    let log = cluster.log();
    println!(
        "shoal's log: {} bytes, {} lines",
        log.len(),
        log.lines().count()
    );
}

//! The node under load, as users load it: one `kubectl apply` of a big
//! Deployment under the default open-files limit, a pod that cannot start
//! and retries, and a listener out of descriptors.

mod common;

use std::time::{Duration, Instant};

use common::{Cluster, example, rss_kib};

/// Pods in the scaled-down fill (the benchmark runs 10,000 and 50,000).
const REPLICAS: usize = 2000;

fn deployment(replicas: usize) -> String {
    format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: idle
spec:
  replicas: {replicas}
  selector:
    matchLabels: {{app: idle}}
  template:
    metadata:
      labels: {{app: idle}}
    spec:
      # No volumes, so no preopened directories: each mounted volume is a
      # descriptor a running instance holds, the service account's too.
      automountServiceAccountToken: false
      containers:
      - name: idle
        image: hello-cmd:v1
        env:
        - {{name: INTERVAL, value: "3600"}}
"#
    )
}

/// The soft and hard open-files limits of a process.
fn nofile(pid: u32) -> (String, String) {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap()
        .to_string();
    let f: Vec<&str> = line.split_whitespace().collect();
    (f[3].to_string(), f[4].to_string())
}

/// Applies the Deployment and waits until every replica is ready, timing
/// `kubectl get` meanwhile; returns the slowest get and the most
/// descriptors seen.
fn fill(c: &Cluster, manifest: &std::path::Path, within: Duration) -> (Duration, usize) {
    c.ok(&["apply", "-f", manifest.to_str().unwrap()]);
    let start = Instant::now();
    let (mut slowest, mut fds) = (Duration::ZERO, 0);
    loop {
        let t = Instant::now();
        let ready = c.ok(&[
            "get",
            "deployment",
            "idle",
            "-o",
            "jsonpath={.status.readyReplicas}",
        ]);
        slowest = slowest.max(t.elapsed());
        fds = fds.max(common::open_fds(c.pid()));
        if ready.trim() == REPLICAS.to_string() {
            return (slowest, fds);
        }
        assert!(
            start.elapsed() < within,
            "{ready} of {REPLICAS} ready after {within:?}; pods:\n{}",
            common::tail(&c.ok(&["get", "pods", "--no-headers"]), 20)
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Deletes the Deployment and waits until no pod is left.
fn drain(c: &Cluster, within: Duration) {
    c.ok(&["delete", "deployment", "idle"]);
    let start = Instant::now();
    loop {
        let pods = c.ok(&["get", "pods", "--no-headers", "-o", "name"]);
        if pods.trim().is_empty() {
            return;
        }
        assert!(
            start.elapsed() < within,
            "{} pods left after {within:?}",
            pods.lines().count()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

#[test]
fn a_big_deployment_fills_the_node_twice_under_the_default_descriptor_limit() {
    // Events expire in seconds here, so that what stays after the pods are
    // gone is what the node keeps of them, not their hour of Events.
    let mut c =
        Cluster::start_limited("load-fill", &["--event-ttl", "5s"], Some("ulimit -Sn 1024"));
    let pid = c.pid();
    let (soft, hard) = nofile(pid);
    assert_eq!(
        soft, hard,
        "shoal raises its soft open-files limit to the hard one"
    );
    c.import(&example("hello-cmd"), "hello-cmd:v1");
    let manifest = c.dir.join("idle.yaml");
    std::fs::write(&manifest, deployment(REPLICAS)).unwrap();
    let idle_rss = rss_kib(pid);
    let mut after_first = 0;
    for round in 1..=2 {
        let (slowest, fds) = fill(&c, &manifest, Duration::from_secs(240));
        eprintln!(
            "round {round}: {REPLICAS} ready, slowest kubectl get {slowest:?}, at most {fds} descriptors, RSS {} MiB",
            rss_kib(pid) / 1024
        );
        // A running pod holds no descriptor of its own: its log file is
        // opened while it writes, within the node's budget.
        assert!(fds < 1024 + 200, "{fds} descriptors for {REPLICAS} pods");
        assert!(
            slowest < Duration::from_secs(10),
            "kubectl get took {slowest:?}"
        );
        let peak = rss_kib(pid);
        drain(&c, Duration::from_secs(240));
        c.wait_for_within(
            90,
            &["get", "events", "-o", "name"],
            "the Events expire",
            |o| o.trim().is_empty(),
        );
        // The pods' memory goes back (their instances' pages, their workers,
        // their status) within the allocator's decay time; the store keeps
        // a history bounded in bytes, and the Events for an hour.
        let bound = idle_rss + (peak - idle_rss) / 2;
        let settled = Instant::now();
        let mut after = rss_kib(pid);
        while after >= bound && settled.elapsed() < Duration::from_secs(30) {
            std::thread::sleep(Duration::from_secs(1));
            after = rss_kib(pid);
        }
        eprintln!(
            "round {round}: deleted, RSS {} MiB after {:?}",
            after / 1024,
            settled.elapsed()
        );
        assert!(
            after < bound,
            "RSS {after} KiB after deleting the pods (idle {idle_rss} KiB, with them {peak} KiB)"
        );
        if round == 1 {
            after_first = after;
        } else {
            assert!(
                after < after_first + after_first / 4,
                "memory grows with each fill: {after_first} KiB, then {after} KiB"
            );
        }
    }
    let log = c.log();
    assert!(
        log.len() < 256 * 1024,
        "the log grew to {} bytes:\n{}",
        log.len(),
        common::tail(&log, 20)
    );
    assert!(!log.contains("panicked"), "{}", common::tail(&log, 40));
    c.stop();
}

/// `apiserver_request_total` for status writes of pods, from `/metrics`.
fn pod_status_writes(c: &Cluster) -> u64 {
    c.ok(&["get", "--raw", "/metrics"])
        .lines()
        .filter(|l| {
            l.starts_with("apiserver_request_total{")
                && l.contains("resource=\"pods\"")
                && l.contains("subresource=\"status\"")
                && l.contains("verb=\"PATCH\"")
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

#[test]
fn a_pod_that_cannot_mount_its_volume_backs_off_quietly() {
    let c = Cluster::start("load-broken");
    c.import(&example("hello-cmd"), "hello-cmd:v1");
    let before = pod_status_writes(&c);
    let pod = c.dir.join("broken.yaml");
    std::fs::write(
        &pod,
        r#"apiVersion: v1
kind: Pod
metadata:
  name: broken
spec:
  containers:
  - name: main
    image: hello-cmd:v1
    volumeMounts:
    - {name: config, mountPath: /config}
  volumes:
  - name: config
    configMap: {name: does-not-exist}
"#,
    )
    .unwrap();
    c.ok(&["apply", "-f", pod.to_str().unwrap()]);
    c.wait_for(
        &["get", "pod", "broken"],
        "CreateContainerConfigError",
        |o| o.contains("CreateContainerConfigError"),
    );
    std::thread::sleep(Duration::from_secs(30));
    let writes = pod_status_writes(&c) - before;
    assert!(
        (1..10).contains(&writes),
        "{writes} status writes in 30 s for one broken pod"
    );
    let events = c.ok(&[
        "get",
        "events",
        "--field-selector",
        "involvedObject.name=broken,reason=FailedMount",
        "-o",
        "jsonpath={range .items[*]}{.count}{\"\\n\"}{end}",
    ]);
    let counts: Vec<u64> = events.lines().filter_map(|l| l.parse().ok()).collect();
    assert_eq!(
        counts.len(),
        1,
        "one FailedMount event for the retries, not one per retry: {events:?}"
    );
    assert!(
        counts[0] >= 2,
        "the repeats count into the event: count {}",
        counts[0]
    );
}

#[test]
fn a_flood_of_connections_waits_within_the_descriptor_budget() {
    // Hard and soft limit alike, so shoal cannot raise it: its listeners
    // may hold 192 - 64 connections at once.
    let c = Cluster::start_limited("load-accept", &[], Some("ulimit -n 192"));
    let pid = c.pid();
    c.ok(&["get", "nodes"]);
    let log_before = c.log().lines().count();
    // Idle connections that never start TLS: more than the budget.
    let mut held = Vec::new();
    for _ in 0..400 {
        match std::net::TcpStream::connect(("127.0.0.1", c.api_port)) {
            Ok(s) => held.push(s),
            Err(_) => break,
        }
    }
    assert!(held.len() > 192, "only {} connections", held.len());
    std::thread::sleep(Duration::from_secs(3));
    let fds = common::open_fds(pid);
    assert!(
        (120..180).contains(&fds),
        "{fds} descriptors: the budget is not what holds the flood"
    );
    // The rest wait in the backlog while the silent ones are closed (10 s
    // handshake deadline), kubectl among them; nothing runs out.
    c.wait_for(&["get", "nodes"], "the node", |o| o.contains("Ready"));
    let log = c.log();
    assert!(
        !log.contains("Too many open files"),
        "shoal ran out of descriptors:\n{}",
        common::tail(&log, 10)
    );
    assert!(
        log.lines().count() - log_before < 40,
        "the flood flooded the log:\n{}",
        common::tail(&log, 20)
    );
    drop(held);
    c.ok(&["get", "nodes"]);
}

//! `shoal agent` joins a running cluster as a second node with credentials
//! from `shoal node-config`; pods scheduled to it run there and their logs
//! reach kubectl through its kubelet API.

mod common;

use common::{Cluster, example};

#[test]
fn a_second_node_joins_runs_pods_and_serves_their_logs() {
    let c = Cluster::start("agent");
    let worker = c.join("worker-1", "127.0.0.2", &[]);
    worker.import(&example("hello-cmd"), "hello-cmd:v1");

    c.wait_for(
        &[
            "get",
            "node",
            "worker-1",
            "-o",
            "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}",
        ],
        "worker-1 Ready",
        |s| s == "True",
    );
    let nodes = c.ok(&["get", "nodes", "--no-headers"]);
    let roles: Vec<(&str, &str)> = nodes
        .lines()
        .map(|l| {
            let cols: Vec<&str> = l.split_whitespace().collect();
            (cols[0], cols[2])
        })
        .collect();
    assert_eq!(
        roles,
        [("shoal", "control-plane"), ("worker-1", "<none>")],
        "{nodes}"
    );
    let cidrs = c.ok(&["get", "nodes", "-o", "jsonpath={.items[*].spec.podCIDR}"]);
    let cidrs: Vec<&str> = cidrs.split_whitespace().collect();
    assert_eq!(cidrs.len(), 2, "each node has a pod CIDR: {cidrs:?}");
    assert_ne!(cidrs[0], cidrs[1]);

    let manifest = c.dir.join("pod.yaml");
    std::fs::write(
        &manifest,
        r#"apiVersion: v1
kind: Pod
metadata: {name: on-worker}
spec:
  nodeSelector: {kubernetes.io/hostname: worker-1}
  containers:
  - name: main
    image: hello-cmd:v1
    env: [{name: GREETING, value: hello from worker-1}]
"#,
    )
    .unwrap();
    c.ok(&["apply", "-f", manifest.to_str().unwrap()]);
    c.wait_for(
        &["get", "pod", "on-worker", "-o", "jsonpath={.status.phase}"],
        "pod on worker-1 running",
        |s| s == "Running" || s == "Succeeded",
    );
    let placed = c.ok(&[
        "get",
        "pod",
        "on-worker",
        "-o",
        "jsonpath={.spec.nodeName} {.status.hostIP} {.status.podIP}",
    ]);
    let placed: Vec<&str> = placed.split_whitespace().collect();
    assert_eq!(placed[..2], ["worker-1", "127.0.0.2"]);
    let pod_ip: std::net::Ipv4Addr = placed[2].parse().unwrap();
    let worker_cidr = c.ok(&["get", "node", "worker-1", "-o", "jsonpath={.spec.podCIDR}"]);
    let (net, bits) = worker_cidr.split_once('/').unwrap();
    let (net, bits): (std::net::Ipv4Addr, u32) = (net.parse().unwrap(), bits.parse().unwrap());
    let mask = u32::MAX << (32 - bits);
    assert_eq!(
        u32::from(pod_ip) & mask,
        u32::from(net),
        "pod IP {pod_ip} is from worker-1's CIDR {worker_cidr}"
    );
    let logs = c.wait_for(
        &["logs", "on-worker"],
        "logs through worker-1's kubelet API",
        |s| s.contains("hello from worker-1"),
    );
    assert!(logs.contains("hello from worker-1"));
    // The pod ran on the agent: its log file is in the agent's data dir,
    // and the control plane's node has none.
    let uid = c.ok(&["get", "pod", "on-worker", "-o", "jsonpath={.metadata.uid}"]);
    let log_dir = |root: &std::path::Path| root.join("node/pods").join(&uid).join("logs/main");
    assert!(log_dir(&worker.data_dir).exists(), "{}", worker.log());
    assert!(!log_dir(&c.dir).exists());

    // A serving certificate that is not PEM is refused by name.
    let creds = worker.dir.join("credentials");
    let bad = c.dir.join("bad.crt");
    std::fs::write(&bad, "not a certificate").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_shoal"))
        .arg("agent")
        .arg("--data-dir")
        .arg(c.dir.join("bad-agent"))
        .arg("--kubeconfig")
        .arg(creds.join("kubeconfig"))
        .arg("--tls-cert-file")
        .arg(&bad)
        .arg("--tls-private-key-file")
        .arg(creds.join("kubelet.key"))
        .arg("--client-ca-file")
        .arg(creds.join("ca.crt"))
        .args(["--node-name", "bad", "--node-ip", "127.0.0.3"])
        .env("RUST_BACKTRACE", "0")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad.crt") && err.contains("malformed PEM in certificate"),
        "{err}"
    );
    assert!(c.fails(&["get", "node", "bad"]).contains("NotFound"));

    c.ok(&["delete", "pod", "on-worker", "--wait=true", "--timeout=30s"]);
    assert!(
        c.fails(&["get", "pod", "on-worker"]).contains("NotFound"),
        "the pod is gone"
    );
}

#[test]
fn node_config_needs_a_cluster_data_dir() {
    let dir = std::env::temp_dir().join(format!("shoal-e2e-nodecfg-{}", std::process::id()));
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_shoal"))
        .args(["node-config", "--data-dir"])
        .arg(&dir)
        .args(["--node-name", "n", "--node-ip", "127.0.0.3", "--out"])
        .arg(dir.join("out"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("holds no cluster"), "{err}");
    assert!(!dir.join("out").exists(), "nothing was written");
}

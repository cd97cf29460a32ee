//! Network programming latency: a Service change until every node routes
//! by it. Three nodes, each in its own network namespace on one LAN (the
//! control plane's node and two joined agents); two web pods. Each of
//! CHANGES Services selecting them is created through the API, and timed
//! from the create's answer until the Service's ClusterIP is in every
//! node's nftables map (seen by `nft monitor` in each namespace, so the
//! watching costs no polling). That takes the endpoints controller's slice
//! and every agent's rule write.
//!
//! Run with `cargo bench --bench service_programming` (CHANGES=N, default
//! 1,000). Target (DESIGN.md): p99 ≤ 100 ms over 1,000 changes on 3 nodes
//! (Kubernetes' SLO: 30 s).

#[path = "../tests/common/mod.rs"]
mod common;

use std::collections::HashMap;
use std::io::BufRead;
use std::process::{Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Service;
use kube::api::{Api, PostParams};

/// When each node first had each ClusterIP in its service map.
type Seen = Arc<(Mutex<Vec<HashMap<String, Instant>>>, Condvar)>;

/// Follows `nft monitor` in `ns` and records node `i`'s first sight of
/// each address in the service map.
fn watch(ns: &str, i: usize, seen: Seen) -> std::process::Child {
    let mut child = Command::new("ip")
        .args(["netns", "exec", ns, "nft", "monitor", "ruleset"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("nft monitor");
    let out = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            if !line.contains("service-ips") {
                continue;
            }
            let now = Instant::now();
            let (lock, cv) = &*seen;
            let mut maps = lock.lock().unwrap();
            for word in line.split([' ', '{', ',']) {
                if word.starts_with("10.96.") {
                    maps[i].entry(word.to_string()).or_insert(now);
                }
            }
            cv.notify_all();
        }
    });
    child
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)]
}

fn main() {
    let changes = common::env_number("CHANGES", 1000);
    let mut lan = common::Lan::new();
    let (h1, h2, h3) = (lan.host(1), lan.host(2), lan.host(3));
    let c = common::Cluster::start_on(&h1, "bench-programming", &[]);
    let n2 = c.join_on(&h2, "n2", &[]);
    let n3 = c.join_on(&h3, "n3", &[]);
    for n in [&n2, &n3] {
        n.import(&common::example("hello-http"), "hello-http:v1");
    }
    c.wait_for(&["get", "nodes"], "three Ready nodes", |o| {
        o.lines().filter(|l| l.contains(" Ready")).count() == 3
    });
    let pods: String = ["n2", "n3"]
        .iter()
        .map(|n| {
            format!(
                "apiVersion: v1\nkind: Pod\nmetadata: {{name: web-{n}, labels: {{app: web}}}}\nspec:\n  nodeSelector: {{kubernetes.io/hostname: {n}}}\n  containers:\n  - {{name: web, image: hello-http:v1, ports: [{{containerPort: 8080}}]}}\n---\n"
            )
        })
        .collect();
    let manifest = c.dir.join("pods.yaml");
    std::fs::write(&manifest, pods).unwrap();
    c.ok(&["apply", "-f", manifest.to_str().unwrap()]);
    c.wait_for(&["get", "pods"], "two Running pods", |o| {
        o.lines().filter(|l| l.contains(" Running ")).count() == 2
    });
    let seen: Seen = Arc::new((Mutex::new(vec![HashMap::new(); 3]), Condvar::new()));
    let mut monitors: Vec<_> = [&h1, &h2, &h3]
        .iter()
        .enumerate()
        .map(|(i, h)| watch(&h.ns, i, seen.clone()))
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let rt = tokio::runtime::Runtime::new().unwrap();
    let api: Api<Service> = rt.block_on(async {
        let kc = kube::config::Kubeconfig::read_from(&c.kubeconfig).unwrap();
        let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default())
            .await
            .unwrap();
        Api::namespaced(kube::Client::try_from(cfg).unwrap(), "default")
    });
    let mut latencies = Vec::with_capacity(changes);
    let mut missed = 0;
    for i in 0..changes {
        let svc: Service = serde_json::from_value(serde_json::json!({
            "metadata": {"name": format!("p{i}")},
            "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]}
        }))
        .unwrap();
        let created = rt
            .block_on(api.create(&PostParams::default(), &svc))
            .expect("create");
        let t0 = Instant::now();
        let ip = created.spec.and_then(|s| s.cluster_ip).unwrap_or_default();
        let (lock, cv) = &*seen;
        let mut maps = lock.lock().unwrap();
        let deadline = t0 + Duration::from_secs(10);
        loop {
            let times: Vec<Instant> = maps.iter().filter_map(|m| m.get(&ip).copied()).collect();
            if times.len() == 3 {
                let last = times.into_iter().max().unwrap();
                latencies.push(last.saturating_duration_since(t0));
                break;
            }
            let now = Instant::now();
            if now >= deadline {
                missed += 1;
                break;
            }
            maps = cv.wait_timeout(maps, deadline - now).unwrap().0;
        }
    }
    for m in &mut monitors {
        let _ = m.kill();
        let _ = m.wait();
    }
    latencies.sort();
    println!(
        "network programming over {} Service creations, 3 nodes: p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms; {missed} not seen within 10 s",
        latencies.len(),
        percentile(&latencies, 0.5).as_secs_f64() * 1e3,
        percentile(&latencies, 0.9).as_secs_f64() * 1e3,
        percentile(&latencies, 0.99).as_secs_f64() * 1e3,
        latencies.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
    );
}

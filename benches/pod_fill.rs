//! Pod start rate while filling a node: N pods created by 16 concurrent
//! kube-rs clients, timed until every one is Running and Ready, and the
//! memory of the `shoal up` process (control plane and node agent) per
//! running pod.
//!
//! Run with `cargo bench --bench pod_fill` (PODS=N, default 500; the node
//! is started with `--max-pods` N + 100). Targets (issue 3): ≥ 500 pods/s
//! for the runtime alone (see the runtime's `density` benchmark);
//! kube-scheduler alone is ~100–300 pods/s.

#[path = "../tests/common/mod.rs"]
mod common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, PostParams};
use kube::runtime::watcher;

fn main() {
    let pods: usize = std::env::var("PODS")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(500);
    let max_pods = (pods + 100).to_string();
    let cluster = common::Cluster::start_with("bench-fill", &["--max-pods", &max_pods]);
    cluster.import(&common::example("hello-cmd"), "hello-cmd:v1");
    let rss_before = rss_kib(cluster.pid());
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (created_in, running_in) = rt.block_on(async {
        let kc = kube::config::Kubeconfig::read_from(&cluster.kubeconfig).unwrap();
        let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default())
            .await
            .unwrap();
        let client = kube::Client::try_from(cfg).unwrap();
        let api: Api<Pod> = Api::namespaced(client, "default");
        let watch_api = api.clone();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut s = watcher(watch_api, watcher::Config::default().labels("bench=fill")).boxed();
            while let Some(Ok(ev)) = s.next().await {
                if let watcher::Event::Apply(p) | watcher::Event::InitApply(p) = ev {
                    let ready = p
                        .status
                        .as_ref()
                        .and_then(|s| s.conditions.as_ref())
                        .is_some_and(|cs| {
                            cs.iter().any(|c| c.type_ == "Ready" && c.status == "True")
                        });
                    if ready {
                        let _ = tx.send(p.metadata.name.unwrap_or_default());
                    }
                }
            }
        });
        tokio::time::sleep(Duration::from_millis(300)).await;
        let start = Instant::now();
        let workers: Vec<_> = (0..16)
            .map(|w| {
                let api = api.clone();
                tokio::spawn(async move {
                    for i in (w..pods).step_by(16) {
                        let pod: Pod = serde_json::from_value(serde_json::json!({
                            "metadata": {"name": format!("fill-{i}"), "labels": {"bench": "fill"}},
                            "spec": {"containers": [{"name": "c", "image": "hello-cmd:v1"}]},
                        }))
                        .unwrap();
                        api.create(&PostParams::default(), &pod).await.unwrap();
                    }
                })
            })
            .collect();
        for w in workers {
            w.await.unwrap();
        }
        let created_in = start.elapsed();
        let mut running = HashSet::new();
        let deadline = Instant::now() + Duration::from_secs(900);
        while running.len() < pods {
            match tokio::time::timeout_at(deadline.into(), rx.recv()).await {
                Ok(Some(name)) => {
                    running.insert(name);
                }
                _ => panic!("only {} of {pods} pods became Running", running.len()),
            }
        }
        (created_in, start.elapsed())
    });
    std::thread::sleep(Duration::from_secs(5));
    let rss_after = rss_kib(cluster.pid());
    println!(
        "{pods} pods (hello-cmd), 16 concurrent creators: created in {:.2} s ({:.0} creates/s), all Running in {:.2} s → {:.0} pods/s | target ≥ 500 pods/s ({:.2}×)",
        created_in.as_secs_f64(),
        pods as f64 / created_in.as_secs_f64(),
        running_in.as_secs_f64(),
        pods as f64 / running_in.as_secs_f64(),
        pods as f64 / running_in.as_secs_f64() / 500.0
    );
    println!(
        "shoal up RSS: {rss_before} KiB idle, {rss_after} KiB with {pods} pods running → {:.1} KiB per pod (API objects, watch history, agent and instance together)",
        (rss_after.saturating_sub(rss_before)) as f64 / pods as f64
    );
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap()
}

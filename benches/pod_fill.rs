//! Pod start rate while filling a node: N long-lived pods created by 16
//! concurrent kube-rs clients, timed until every one is Running and Ready,
//! and the memory per running pod of the node agent and of the control
//! plane, each in its own process: `shoal up` runs the control plane, and
//! the pods go to a `shoal agent` joined as node `fill` (nodeSelector).
//!
//! Run with `cargo bench --bench pod_fill` (PODS=N, default 500; the agent
//! is started with `--max-pods` N + 100). Targets (DESIGN.md): ≥ 500 pods/s
//! (kube-scheduler alone is ~100–300 pods/s); agent overhead ≤ 200 KiB per
//! pod beyond the guest's own memory.
//!
//! `PROBE=exec` gives every pod a readiness probe that runs `true` in it
//! every 10 s (a new instance per run), so a run with it beside one
//! without shows what probes cost a filling node.

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
    let probe = std::env::var("PROBE").ok().filter(|p| p == "exec");
    let container = match &probe {
        Some(_) => serde_json::json!({"name": "c", "image": "hello-cmd:v1",
            "readinessProbe": {"exec": {"command": ["true"]}, "periodSeconds": 10}}),
        None => serde_json::json!({"name": "c", "image": "hello-cmd:v1"}),
    };
    let cluster = common::Cluster::start("bench-fill");
    let node = cluster.join("fill", "127.0.0.2", &["--max-pods", &max_pods]);
    node.import(&common::example("hello-cmd"), "hello-cmd:v1");
    cluster.wait_for(
        &["get", "node", "fill", "-o", "jsonpath={.spec.podCIDR}"],
        "node fill registered",
        |s| !s.is_empty(),
    );
    let agent_before = common::rss_kib(node.pid());
    let control_before = common::rss_kib(cluster.pid());
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
                let container = container.clone();
                tokio::spawn(async move {
                    for i in (w..pods).step_by(16) {
                        let pod: Pod = serde_json::from_value(serde_json::json!({
                            "metadata": {"name": format!("fill-{i}"), "labels": {"bench": "fill"}},
                            "spec": {
                                "nodeSelector": {"kubernetes.io/hostname": "fill"},
                                "containers": [container.clone()],
                            },
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
    let agent_after = common::rss_kib(node.pid());
    let control_after = common::rss_kib(cluster.pid());
    println!(
        "{pods} pods (hello-cmd{}), 16 concurrent creators: created in {:.2} s ({:.0} creates/s), all Running in {:.2} s → {:.0} pods/s | target ≥ 500 pods/s ({:.2}×)",
        if probe.is_some() {
            ", exec readiness probe every 10 s"
        } else {
            ""
        },
        created_in.as_secs_f64(),
        pods as f64 / created_in.as_secs_f64(),
        running_in.as_secs_f64(),
        pods as f64 / running_in.as_secs_f64(),
        pods as f64 / running_in.as_secs_f64() / 500.0
    );
    if probe.is_some() {
        let out = cluster.kubectl(&[
            "get",
            "events",
            "--field-selector",
            "reason=Unhealthy",
            "-o",
            "jsonpath={range .items[*]}{.message}{\"\\n\"}{end}",
        ]);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let mut kinds = std::collections::BTreeMap::<&str, usize>::new();
        for m in text.lines().filter(|l| !l.is_empty()) {
            *kinds.entry(m).or_default() += 1;
        }
        println!("probe failures while filling (Unhealthy events, by message): {kinds:?}");
    }
    let per_pod = |before: u64, after: u64| after.saturating_sub(before) as f64 / pods as f64;
    println!(
        "shoal agent RSS: {agent_before} KiB idle, {agent_after} KiB with {pods} pods running → {:.1} KiB per pod, the guest's own memory included | target ≤ 200 KiB beyond the guest's memory",
        per_pod(agent_before, agent_after)
    );
    println!(
        "control plane (shoal up) RSS: {control_before} KiB idle, {control_after} KiB → {:.1} KiB per pod (objects, events, watch history)",
        per_pod(control_before, control_after)
    );
}

//! `kubectl apply` → pod Running latency on a single-node `shoal up`.
//!
//! Starts the real binary, imports the hello-http example, then creates
//! pods one at a time and measures, for each, the time from the request to
//! the watch event that shows it Running and Ready:
//!
//! - `api`: the pod is POSTed with kube-rs (what `kubectl apply` sends);
//! - `kubectl`: `kubectl apply -f` is run as a process (adds kubectl's own
//!   start-up, ~tens of ms).
//!
//! Run with `cargo bench --bench pod_startup` (PODS=N to change the count).
//! Target (DESIGN.md): p50 ≤ 50 ms, p99 ≤ 200 ms; Kubernetes' SLO is p99 ≤ 5 s.

#[path = "../tests/common/mod.rs"]
mod common;

use std::collections::HashMap;
use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, PostParams};
use kube::runtime::watcher;

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn pod_manifest(name: &str) -> serde_json::Value {
    serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": {"bench": "startup"}},
        "spec": {"containers": [{"name": "hello", "image": "hello-http:v1", "ports": [{"containerPort": 8080}]}]},
    })
}

fn main() {
    let pods: usize = std::env::var("PODS")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(100);
    let module = common::example("hello-http");
    let cluster = common::Cluster::start("bench-startup");
    cluster.import(&module, "hello-http:v1");
    let (dir, kubeconfig) = (cluster.dir.clone(), cluster.kubeconfig.clone());

    let rt = tokio::runtime::Runtime::new().unwrap();
    let (api_ms, kubectl_ms, kubectl_exit_ms) = rt.block_on(async {
        let kc = kube::config::Kubeconfig::read_from(&kubeconfig).unwrap();
        let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default())
            .await
            .unwrap();
        let client = kube::Client::try_from(cfg).unwrap();
        let api: Api<Pod> = Api::namespaced(client.clone(), "default");
        let running: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
        let seen = running.clone();
        let watch_api = api.clone();
        tokio::spawn(async move {
            let mut s = watcher(
                watch_api,
                watcher::Config::default().labels("bench=startup"),
            )
            .boxed();
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
                        seen.lock()
                            .unwrap()
                            .entry(p.metadata.name.unwrap_or_default())
                            .or_insert_with(Instant::now);
                    }
                }
            }
        });
        tokio::time::sleep(Duration::from_millis(300)).await;
        let wait = |name: String| {
            let running = running.clone();
            async move {
                let deadline = Instant::now() + Duration::from_secs(30);
                loop {
                    if let Some(t) = running.lock().unwrap().get(&name) {
                        return *t;
                    }
                    assert!(Instant::now() < deadline, "{name} never became Running");
                    tokio::time::sleep(Duration::from_micros(200)).await;
                }
            }
        };
        // Warm-up: the first pod compiles the module.
        let warm: Pod = serde_json::from_value(pod_manifest("warmup")).unwrap();
        api.create(&PostParams::default(), &warm).await.unwrap();
        wait("warmup".into()).await;
        let mut api_ms = Vec::new();
        for i in 0..pods {
            let name = format!("api-{i}");
            let pod: Pod = serde_json::from_value(pod_manifest(&name)).unwrap();
            let t0 = Instant::now();
            api.create(&PostParams::default(), &pod).await.unwrap();
            let t1 = wait(name).await;
            api_ms.push((t1 - t0).as_secs_f64() * 1000.0);
        }
        let mut kubectl_ms = Vec::new();
        let mut kubectl_exit_ms = Vec::new();
        for i in 0..pods {
            let name = format!("kubectl-{i}");
            let file = dir.join(format!("{name}.json"));
            std::fs::File::create(&file)
                .unwrap()
                .write_all(pod_manifest(&name).to_string().as_bytes())
                .unwrap();
            let t0 = Instant::now();
            let st = Command::new("kubectl")
                .arg("apply")
                .arg("-f")
                .arg(&file)
                .env("KUBECONFIG", &kubeconfig)
                .stdout(Stdio::null())
                .status()
                .unwrap();
            assert!(st.success());
            kubectl_exit_ms.push(t0.elapsed().as_secs_f64() * 1000.0);
            let t1 = wait(name).await;
            kubectl_ms.push((t1 - t0).as_secs_f64() * 1000.0);
        }
        (api_ms, kubectl_ms, kubectl_exit_ms)
    });
    drop(cluster);
    println!("pod start latency, {pods} pods each, single node, wasm (hello-http)");
    let mut exits = kubectl_exit_ms;
    exits.sort_by(f64::total_cmp);
    println!(
        "(of which the kubectl process, start to exit: p50 {:.2} ms, p99 {:.2} ms)",
        percentile(&exits, 0.5),
        percentile(&exits, 0.99)
    );
    for (label, mut v) in [
        ("api (POST → Running)", api_ms),
        ("kubectl apply → Running", kubectl_ms),
    ] {
        v.sort_by(f64::total_cmp);
        let (p50, p99) = (percentile(&v, 0.5), percentile(&v, 0.99));
        println!(
            "{label:28} p50 {p50:7.2} ms  p99 {p99:7.2} ms  max {:7.2} ms | target p50 ≤ 50 ms ({:.2}× of budget), p99 ≤ 200 ms ({:.2}×); Kubernetes SLO p99 ≤ 5000 ms ({:.0}× faster)",
            v[v.len() - 1],
            p50 / 50.0,
            p99 / 200.0,
            5000.0 / p99
        );
    }
}

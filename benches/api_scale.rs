//! The API at scale, against the real `shoal up`:
//!
//! 1. Lists: OBJECTS pods (default 10,000, in 10 namespaces, Pending on a
//!    node selector nothing matches) are stored, then `kubectl get pods -A`
//!    (kubectl pages by 500) and a label-selected `kubectl get pods -A -l`
//!    are timed, 5 runs each (medians), with the control plane's memory.
//! 2. Watch fan-out: WATCHERS watches (default 1,000) on ConfigMaps while
//!    one writer creates RATE objects/s (default 500) for SECONDS (default
//!    10). Every watcher must see every event once, in revision order; the
//!    delivery latency (creation request sent → event received) and the
//!    create latency are reported as p50/p99 against Kubernetes' API SLO
//!    (mutating calls p99 ≤ 1 s).
//!
//! Run with `cargo bench --bench api_scale`.

#[path = "../tests/common/mod.rs"]
mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod};
use kube::api::{Api, PostParams, WatchEvent, WatchParams};

fn main() {
    let objects = common::env_number("OBJECTS", 10_000);
    let watchers = common::env_number("WATCHERS", 1_000);
    let rate = common::env_number("RATE", 500);
    let seconds = common::env_number("SECONDS", 10);
    let cluster = common::Cluster::start("bench-scale");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let client = rt.block_on(common::kube_client(&cluster.kubeconfig));

    // 1. Lists over OBJECTS stored pods.
    let idle = common::rss_kib(cluster.pid());
    let created_in = rt.block_on(fill(client.clone(), objects));
    let filled = common::rss_kib(cluster.pid());
    let time = |args: &[&str]| {
        let runs: Vec<f64> = (0..5)
            .map(|_| {
                let start = Instant::now();
                let out = cluster.kubectl(args);
                assert!(
                    out.status.success(),
                    "{}",
                    String::from_utf8_lossy(&out.stderr)
                );
                let rows = out.stdout.iter().filter(|&&b| b == b'\n').count();
                assert!(rows > 0);
                start.elapsed().as_secs_f64() * 1000.0
            })
            .collect();
        common::median(runs)
    };
    let raw: Vec<f64> = (0..5)
        .map(|_| {
            rt.block_on(async {
                let api: Api<Pod> = Api::all(client.clone());
                let start = Instant::now();
                let (mut items, mut token) = (0, None::<String>);
                loop {
                    let mut params = kube::api::ListParams::default().limit(500);
                    if let Some(t) = &token {
                        params = params.continue_token(t);
                    }
                    let page = api.list(&params).await.unwrap();
                    items += page.items.len();
                    token = page.metadata.continue_.filter(|t| !t.is_empty());
                    if token.is_none() {
                        break;
                    }
                }
                assert_eq!(items, objects);
                start.elapsed().as_secs_f64() * 1000.0
            })
        })
        .collect();
    let raw = common::median(raw);
    let all = time(&["get", "pods", "-A", "--no-headers"]);
    let selected = time(&["get", "pods", "-A", "-l", "app=a7", "--no-headers"]);
    let rows = cluster
        .ok(&["get", "pods", "-A", "-l", "app=a7", "--no-headers"])
        .lines()
        .count();
    println!(
        "{objects} pods stored in {:.1} s ({:.0} creates/s, 16 clients)",
        created_in.as_secs_f64(),
        objects as f64 / created_in.as_secs_f64()
    );
    println!("kubectl get pods -A (paged by 500, Table): median {all:.0} ms");
    println!("the same pages as JSON through kube-rs (limit 500 + continue): median {raw:.0} ms");
    println!("kubectl get pods -A -l app=a7 ({rows} of {objects}): median {selected:.0} ms");
    println!(
        "control plane RSS: {idle} KiB idle, {filled} KiB with {objects} pods → {:.1} KiB per pod",
        filled.saturating_sub(idle) as f64 / objects as f64
    );

    // 2. Watch fan-out, with the CPU time the server and this client (the
    //    watchers decoding every event) each spent on it.
    let (server, me) = (cpu_seconds(cluster.pid()), cpu_seconds(std::process::id()));
    rt.block_on(fan_out(
        client,
        &cluster.kubeconfig,
        watchers,
        rate,
        seconds,
    ));
    println!(
        "CPU time during the fan-out: shoal {:.1} s, the benchmark's watchers and writer {:.1} s (2 cores)",
        cpu_seconds(cluster.pid()) - server,
        cpu_seconds(std::process::id()) - me
    );
}

/// User and system CPU time of a process so far.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after_name = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of stat, 12 and 13 after the name.
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    ticks / 100.0
}

async fn fill(client: kube::Client, objects: usize) -> Duration {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    for n in 0..10 {
        let ns: Namespace =
            serde_json::from_value(serde_json::json!({"metadata": {"name": format!("scale-{n}")}}))
                .unwrap();
        namespaces
            .create(&PostParams::default(), &ns)
            .await
            .unwrap();
    }
    let start = Instant::now();
    let workers: Vec<_> = (0..16)
        .map(|w| {
            let client = client.clone();
            tokio::spawn(async move {
                for i in (w..objects).step_by(16) {
                    let api: Api<Pod> = Api::namespaced(client.clone(), &format!("scale-{}", i % 10));
                    let pod: Pod = serde_json::from_value(serde_json::json!({
                        "metadata": {"name": format!("p-{i}"), "labels": {"app": format!("a{}", i % 100)}},
                        "spec": {
                            "nodeSelector": {"bench": "no-such-node"},
                            "containers": [{"name": "c", "image": "hello-cmd:v1"}],
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
    start.elapsed()
}

async fn fan_out(
    client: kube::Client,
    kubeconfig: &std::path::Path,
    watchers: usize,
    rate: usize,
    seconds: usize,
) {
    let ns: Api<Namespace> = Api::all(client.clone());
    let obj: Namespace =
        serde_json::from_value(serde_json::json!({"metadata": {"name": "fan"}})).unwrap();
    ns.create(&PostParams::default(), &obj).await.unwrap();
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "fan");
    let total = rate * seconds;
    let origin = Instant::now();
    let rv = api
        .list_metadata(&Default::default())
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();

    // Each watcher: the latency of every event, and whether revisions rose.
    let mut tasks = Vec::new();
    for _ in 0..watchers {
        let api = api.clone();
        let rv = rv.clone();
        tasks.push(tokio::spawn(async move {
            let params = WatchParams::default().timeout(290);
            let mut stream = api.watch(&params, &rv).await.unwrap().boxed();
            let (mut latencies, mut last, mut ordered) = (Vec::with_capacity(total), 0u64, true);
            while latencies.len() < total {
                match tokio::time::timeout(Duration::from_secs(60), stream.try_next()).await {
                    Ok(Ok(Some(WatchEvent::Added(cm)))) => {
                        let now = origin.elapsed().as_secs_f64();
                        let sent: f64 = cm
                            .data
                            .as_ref()
                            .and_then(|d| d.get("sent"))
                            .and_then(|s| s.parse().ok())
                            .unwrap_or(now);
                        latencies.push(now - sent);
                        let rv: u64 = cm
                            .metadata
                            .resource_version
                            .as_deref()
                            .unwrap_or("0")
                            .parse()
                            .unwrap_or(0);
                        ordered &= rv > last;
                        last = rv;
                    }
                    Ok(Ok(Some(_))) => {}
                    _ => break,
                }
            }
            (latencies, ordered)
        }));
    }
    // Let the watches establish.
    tokio::time::sleep(Duration::from_secs(3)).await;

    // The writer has a thread, runtime and client of its own, so its
    // requests do not wait behind the watchers' decoding.
    let kubeconfig = kubeconfig.to_path_buf();
    let writer = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let api: Api<ConfigMap> =
                Api::namespaced(common::kube_client(&kubeconfig).await, "fan");
            let writes = Arc::new(std::sync::Mutex::new(Vec::with_capacity(total)));
            let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate as f64));
            let mut pending = Vec::new();
            let writing = Instant::now();
            for i in 0..total {
                tick.tick().await;
                let (api, writes) = (api.clone(), writes.clone());
                pending.push(tokio::spawn(async move {
                    let sent = origin.elapsed().as_secs_f64();
                    let cm: ConfigMap = serde_json::from_value(serde_json::json!({
                        "metadata": {"name": format!("cm-{i}")}, "data": {"sent": sent.to_string()},
                    }))
                    .unwrap();
                    api.create(&PostParams::default(), &cm).await.unwrap();
                    writes
                        .lock()
                        .unwrap()
                        .push(origin.elapsed().as_secs_f64() - sent);
                }));
            }
            let written_in = writing.elapsed().as_secs_f64();
            futures::future::join_all(pending).await;
            let writes = writes.lock().unwrap().clone();
            (written_in, writes)
        })
    });
    let (written_in, mut writes) = tokio::task::spawn_blocking(move || writer.join().unwrap())
        .await
        .unwrap();
    let mut all = Vec::with_capacity(total * watchers);
    let (mut complete, mut in_order) = (0, 0);
    for t in tasks {
        let (latencies, ordered) = t.await.unwrap();
        complete += usize::from(latencies.len() == total);
        in_order += usize::from(ordered);
        all.extend(latencies);
    }
    println!(
        "{watchers} watchers, {total} creates at {rate}/s over {seconds} s (sent in {written_in:.1} s): {complete} watchers got every event, {in_order} in revision order"
    );
    println!(
        "delivery latency: p50 {:.1} ms, p99 {:.1} ms over {} deliveries",
        common::percentile(&mut all, 0.5) * 1000.0,
        common::percentile(&mut all, 0.99) * 1000.0,
        all.len()
    );
    let p99 = common::percentile(&mut writes, 0.99);
    println!(
        "create latency under that load: p50 {:.1} ms, p99 {:.1} ms | Kubernetes SLO: p99 ≤ 1 s ({:.2}× of the limit)",
        common::percentile(&mut writes, 0.5) * 1000.0,
        p99 * 1000.0,
        p99
    );
}

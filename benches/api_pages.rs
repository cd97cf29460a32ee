//! Paged lists at scale while writers write, against the real `shoal up`:
//! OBJECTS ConfigMaps (default 100,000) are stored in one namespace, then
//! WRITERS clients (default 16) create ConfigMaps in another namespace
//! without pause. Their create latency is taken for a few seconds alone,
//! then while the whole namespace is listed in pages of PAGE (default 500)
//! through kube-rs (`limit` + `continue`, as client-go's pager does), LISTS
//! times (default 3). Printed: each list's time (median), the writers'
//! p50/p99 alone and during the lists, and their ratio.
//!
//! Run with `cargo bench --bench api_pages` (`SHOAL_BINARY=path` runs
//! another build of shoal with the same clients).

#[path = "../tests/common/mod.rs"]
mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{Api, ListParams, PostParams};

fn main() {
    let objects = common::env_number("OBJECTS", 100_000);
    let writers = common::env_number("WRITERS", 16);
    let page = common::env_number("PAGE", 500);
    let lists = common::env_number("LISTS", 3);
    let cluster = common::Cluster::start("bench-pages");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let client = rt.block_on(common::kube_client(&cluster.kubeconfig));
    rt.block_on(async {
        for ns in ["pages", "churn"] {
            let obj: Namespace =
                serde_json::from_value(serde_json::json!({"metadata": {"name": ns}})).unwrap();
            Api::<Namespace>::all(client.clone())
                .create(&PostParams::default(), &obj)
                .await
                .unwrap();
        }
    });
    let start = Instant::now();
    rt.block_on(fill(client.clone(), objects));
    let filled = start.elapsed().as_secs_f64();
    println!(
        "{objects} ConfigMaps stored in {filled:.1} s ({:.0} creates/s, 16 clients)",
        objects as f64 / filled
    );

    // The writers run from here to the end, each recording when every
    // create finished and how long it took.
    let stop = Arc::new(AtomicBool::new(false));
    let origin = Instant::now();
    let tasks: Vec<_> = (0..writers)
        .map(|w| {
            let api: Api<ConfigMap> = Api::namespaced(client.clone(), "churn");
            let stop = stop.clone();
            rt.spawn(async move {
                let mut done = Vec::new();
                let mut i = 0;
                while !stop.load(Ordering::Relaxed) {
                    let cm = config_map(&format!("w{w}-{i}"));
                    let sent = Instant::now();
                    api.create(&PostParams::default(), &cm).await.unwrap();
                    done.push((origin.elapsed().as_secs_f64(), sent.elapsed().as_secs_f64()));
                    i += 1;
                }
                done
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(5));
    let alone_until = origin.elapsed().as_secs_f64();
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "pages");
    let times: Vec<f64> = (0..lists)
        .map(|_| {
            rt.block_on(async {
                let start = Instant::now();
                let (mut items, mut token, mut pages) = (0, None::<String>, 0);
                loop {
                    let mut params = ListParams::default().limit(page as u32);
                    if let Some(t) = &token {
                        params = params.continue_token(t);
                    }
                    let got = api.list(&params).await.unwrap();
                    // Every namespace also holds its `kube-root-ca.crt`.
                    items += got
                        .items
                        .iter()
                        .filter(|cm| {
                            cm.metadata
                                .name
                                .as_ref()
                                .is_some_and(|n| n.starts_with("cm-"))
                        })
                        .count();
                    pages += 1;
                    token = got.metadata.continue_.filter(|t| !t.is_empty());
                    if token.is_none() {
                        break;
                    }
                }
                assert_eq!(items, objects, "a paged list returned every object once");
                assert_eq!(pages, (objects + 1).div_ceil(page));
                start.elapsed().as_secs_f64()
            })
        })
        .collect();
    let lists_until = origin.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    let done: Vec<(f64, f64)> = rt.block_on(async {
        let mut all = Vec::new();
        for t in tasks {
            all.extend(t.await.unwrap());
        }
        all
    });
    let mut alone: Vec<f64> = done
        .iter()
        // The first second opens the writers' connections.
        .filter(|(at, _)| *at > 1.0 && *at <= alone_until)
        .map(|(_, l)| l * 1000.0)
        .collect();
    let mut during: Vec<f64> = done
        .iter()
        .filter(|(at, _)| *at > alone_until && *at <= lists_until)
        .map(|(_, l)| l * 1000.0)
        .collect();
    let list_median = common::median(times.clone());
    println!(
        "listing {objects} ConfigMaps in pages of {page} through kube-rs: {} → median {list_median:.2} s",
        times
            .iter()
            .map(|t| format!("{t:.2} s"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let (a50, a99) = (
        common::percentile(&mut alone, 0.5),
        common::percentile(&mut alone, 0.99),
    );
    let (d50, d99) = (
        common::percentile(&mut during, 0.5),
        common::percentile(&mut during, 0.99),
    );
    println!(
        "{writers} writers' creates alone: {} at {:.0}/s, p50 {a50:.1} ms, p99 {a99:.1} ms",
        alone.len(),
        alone.len() as f64 / (alone_until - 1.0)
    );
    println!(
        "during the lists: {} at {:.0}/s, p50 {d50:.1} ms, p99 {d99:.1} ms (p99 during/alone {:.2})",
        during.len(),
        during.len() as f64 / (lists_until - alone_until),
        d99 / a99
    );
}

fn config_map(name: &str) -> ConfigMap {
    serde_json::from_value(serde_json::json!({
        "metadata": {"name": name, "labels": {"bench": "pages"}},
        "data": {"key": "value of a typical size for a small configuration entry"},
    }))
    .unwrap()
}

async fn fill(client: kube::Client, objects: usize) {
    let workers: Vec<_> = (0..16)
        .map(|w| {
            let api: Api<ConfigMap> = Api::namespaced(client.clone(), "pages");
            tokio::spawn(async move {
                for i in (w..objects).step_by(16) {
                    api.create(&PostParams::default(), &config_map(&format!("cm-{i:06}")))
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    for w in workers {
        w.await.unwrap();
    }
}

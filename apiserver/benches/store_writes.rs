//! Raft store write throughput and latency: C concurrent writers (WRITERS,
//! default 16) putting N objects (WRITES, default 20,000) of about 2 KiB,
//! each write waiting until it is applied, with the log fsynced.
//!
//! Run with `cargo bench -p shoal-apiserver --bench store_writes`.

use std::time::Instant;

use serde_json::json;
use shoal_apiserver::store::{Command, Cond, Store};

fn main() {
    let writers: usize = std::env::var("WRITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(16);
    let writes: usize = std::env::var("WRITES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let dir = tempfile::tempdir().unwrap();
    let exec = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (elapsed, mut latencies) = exec.block_on(async {
        let store = std::sync::Arc::new(Store::open_single(dir.path(), 1, "127.0.0.1:1").await.unwrap());
        let filler = "x".repeat(2000);
        let started = Instant::now();
        let tasks: Vec<_> = (0..writers)
            .map(|w| {
                let (store, filler) = (store.clone(), filler.clone());
                tokio::spawn(async move {
                    let mut lat = Vec::new();
                    for i in (w..writes).step_by(writers) {
                        let t = Instant::now();
                        store
                            .write(Command::Put {
                                key: format!("configmaps/default/cm-{i}"),
                                value: json!({"metadata": {"name": format!("cm-{i}")}, "data": {"v": filler}}),
                                cond: Cond::Absent,
                            })
                            .await
                            .unwrap();
                        lat.push(t.elapsed().as_secs_f64() * 1e3);
                    }
                    lat
                })
            })
            .collect();
        let mut all = Vec::new();
        for t in tasks {
            all.extend(t.await.unwrap());
        }
        let elapsed = started.elapsed();
        store.shutdown().await;
        (elapsed, all)
    });
    latencies.sort_by(f64::total_cmp);
    let p = |q: f64| latencies[((latencies.len() - 1) as f64 * q) as usize];
    println!(
        "{writes} writes, {writers} concurrent writers: {:.0} writes/s, latency p50 {:.2} ms, p99 {:.2} ms",
        writes as f64 / elapsed.as_secs_f64(),
        p(0.5),
        p(0.99)
    );
}

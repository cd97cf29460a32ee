//! Raft store write throughput and latency: C concurrent writers (WRITERS,
//! default 16) putting N objects (WRITES, default 20,000) of about 2 KiB,
//! each write waiting until it is applied, with the log fsynced.
//!
//! The peer is etcd (Debian `etcd-server`, single member, fsync on) given
//! the same writes as create-if-absent transactions through its JSON
//! gateway, one HTTP/1.1 connection per writer; it runs when `etcd` is on
//! PATH, and the ratio is printed.
//!
//! Run with `cargo bench -p shoal-apiserver --bench store_writes`.

use std::time::{Duration, Instant};

use base64::Engine as _;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use serde_json::json;
use shoal_store::{Command, Cond, Store};

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
    let (elapsed, latencies) = exec.block_on(async {
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
    let shoal = report("shoal store", writes, writers, elapsed, latencies);
    match exec.block_on(etcd(writers, writes)) {
        Some((elapsed, latencies)) => {
            let etcd = report(
                "etcd 3.4 (JSON gateway)",
                writes,
                writers,
                elapsed,
                latencies,
            );
            println!("shoal / etcd: {:.2}× the writes/s", shoal / etcd);
        }
        None => println!("etcd is not on PATH (apt-get install etcd-server): no peer run"),
    }
}

/// Prints a run's figures and returns its writes/s.
fn report(
    name: &str,
    writes: usize,
    writers: usize,
    elapsed: Duration,
    mut latencies: Vec<f64>,
) -> f64 {
    latencies.sort_by(f64::total_cmp);
    let p = |q: f64| latencies[((latencies.len() - 1) as f64 * q) as usize];
    let rate = writes as f64 / elapsed.as_secs_f64();
    println!(
        "{name}: {writes} writes, {writers} concurrent writers: {rate:.0} writes/s, latency p50 {:.2} ms, p99 {:.2} ms",
        p(0.5),
        p(0.99)
    );
    rate
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The same writes against a single-member etcd, if it is installed.
async fn etcd(writers: usize, writes: usize) -> Option<(Duration, Vec<f64>)> {
    let dir = tempfile::tempdir().unwrap();
    let (client, peer) = (free_port(), free_port());
    let client_url = format!("http://127.0.0.1:{client}");
    let peer_url = format!("http://127.0.0.1:{peer}");
    let mut child = std::process::Command::new("etcd")
        .args(["--name", "bench", "--data-dir"])
        .arg(dir.path())
        .args([
            "--listen-client-urls",
            &client_url,
            "--advertise-client-urls",
            &client_url,
        ])
        .args([
            "--listen-peer-urls",
            &peer_url,
            "--initial-advertise-peer-urls",
            &peer_url,
        ])
        .args(["--initial-cluster", &format!("bench={peer_url}")])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .ok()?;
    let addr = format!("127.0.0.1:{client}");
    let mut ready = false;
    for _ in 0..100 {
        if post(&addr, "/v3/kv/range", &json!({"key": "AA=="}))
            .await
            .is_some()
        {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ready, "etcd did not start");
    let filler = "x".repeat(2000);
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let started = Instant::now();
    let tasks: Vec<_> = (0..writers)
        .map(|w| {
            let (addr, filler) = (addr.clone(), filler.clone());
            tokio::spawn(async move {
                let stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
                let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                    .await
                    .unwrap();
                tokio::spawn(conn);
                let mut lat = Vec::new();
                for i in (w..writes).step_by(writers) {
                    let key = b64(&format!("/registry/configmaps/default/cm-{i}"));
                    let value =
                        json!({"metadata": {"name": format!("cm-{i}")}, "data": {"v": filler}})
                            .to_string();
                    let txn = json!({
                        "compare": [{"key": key, "target": "CREATE", "create_revision": "0"}],
                        "success": [{"request_put": {"key": key, "value": b64(&value)}}],
                    });
                    let t = Instant::now();
                    let req = hyper::Request::post("/v3/kv/txn")
                        .header("host", &addr)
                        .body(Full::new(bytes::Bytes::from(txn.to_string())))
                        .unwrap();
                    let resp = send.send_request(req).await.unwrap();
                    let body = resp.into_body().collect().await.unwrap().to_bytes();
                    assert!(
                        body.windows(9).any(|w| w == b"succeeded"),
                        "{}",
                        String::from_utf8_lossy(&body)
                    );
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
    let _ = child.kill();
    let _ = child.wait();
    Some((elapsed, all))
}

/// One JSON POST on a fresh connection; the body if it answered 200.
async fn post(addr: &str, path: &str, body: &serde_json::Value) -> Option<bytes::Bytes> {
    let stream = tokio::net::TcpStream::connect(addr).await.ok()?;
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .ok()?;
    tokio::spawn(conn);
    let req = hyper::Request::post(path)
        .header("host", addr)
        .body(Full::new(bytes::Bytes::from(body.to_string())))
        .ok()?;
    let resp = send.send_request(req).await.ok()?;
    if !resp.status().is_success() {
        return None;
    }
    Some(resp.into_body().collect().await.ok()?.to_bytes())
}

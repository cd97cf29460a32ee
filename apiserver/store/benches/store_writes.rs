//! Raft store write throughput and latency: C concurrent writers (WRITERS,
//! default 16) putting N objects (WRITES, default 20,000) of about 2 KiB,
//! each write waiting until it is applied, with the log fsynced.
//!
//! MEMBERS (default 1) replicas: with 3, three stores in this process
//! reach each other over HTTP/1.1 on loopback (the store's own JSON
//! calls, pooled connections, no TLS, as the etcd peers below), the
//! writes go to the leader, and each waits until a quorum has the entry
//! fsynced and the leader has applied it.
//!
//! The peer is etcd (Debian `etcd-server`, as many members on loopback,
//! fsync on) given the same writes as create-if-absent transactions
//! through its leader's JSON gateway, one HTTP/1.1 connection per writer;
//! it runs when `etcd` is on PATH, and the ratio is printed.
//!
//! Run with `cargo bench -p shoal-store --bench store_writes`.

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
    let members: usize = std::env::var("MEMBERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    let dirs: Vec<_> = (0..members).map(|_| tempfile::tempdir().unwrap()).collect();
    let exec = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (elapsed, latencies) = exec.block_on(async {
        let group = if members == 1 {
            vec![Store::open_single(dirs[0].path(), 1, "127.0.0.1:1").await.unwrap()]
        } else {
            replicated(&dirs).await
        };
        let store = std::sync::Arc::new(group[0].clone());
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
        for s in group {
            s.shutdown().await;
        }
        (elapsed, all)
    });
    let shoal = report(
        &format!("shoal store, {members} member(s)"),
        writes,
        writers,
        elapsed,
        latencies,
    );
    match exec.block_on(etcd(writers, writes, members)) {
        Some((elapsed, latencies)) => {
            let etcd = report(
                &format!("etcd 3.4, {members} member(s) (JSON gateway)"),
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

/// The same writes against an etcd of `members` members on loopback, if
/// it is installed, through its leader.
async fn etcd(writers: usize, writes: usize, members: usize) -> Option<(Duration, Vec<f64>)> {
    let dirs: Vec<_> = (0..members).map(|_| tempfile::tempdir().unwrap()).collect();
    let ports: Vec<(u16, u16)> = (0..members).map(|_| (free_port(), free_port())).collect();
    let cluster = ports
        .iter()
        .enumerate()
        .map(|(n, (_, peer))| format!("m{n}=http://127.0.0.1:{peer}"))
        .collect::<Vec<_>>()
        .join(",");
    let mut children = Vec::new();
    for (n, (client, peer)) in ports.iter().enumerate() {
        let client_url = format!("http://127.0.0.1:{client}");
        let peer_url = format!("http://127.0.0.1:{peer}");
        let child = std::process::Command::new("etcd")
            .args(["--name", &format!("m{n}"), "--data-dir"])
            .arg(dirs[n].path())
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
            .args([
                "--initial-cluster",
                &cluster,
                "--initial-cluster-state",
                "new",
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .ok()?;
        children.push(child);
    }
    // The member that leads: its status names itself as the leader.
    let mut leader = None;
    for _ in 0..100 {
        for (client, _) in &ports {
            let addr = format!("127.0.0.1:{client}");
            if let Some(body) = post(&addr, "/v3/maintenance/status", &json!({})).await {
                let status: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
                let me = status.pointer("/header/member_id").and_then(|v| v.as_str());
                let leads = status.get("leader").and_then(|v| v.as_str());
                if me.is_some() && me == leads {
                    leader = Some(addr);
                }
            }
        }
        if leader.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let addr = leader.expect("etcd elected no leader");
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
    for mut child in children {
        let _ = child.kill();
        let _ = child.wait();
    }
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

/// The store's calls to its peers as HTTP/1.1 POSTs to
/// `http://<addr>/<call>` on pooled connections.
struct Http(
    hyper_util::client::legacy::Client<
        hyper_util::client::legacy::connect::HttpConnector,
        Full<bytes::Bytes>,
    >,
);

impl shoal_store::Transport for Http {
    fn call(
        &self,
        addr: &str,
        rpc: shoal_store::Rpc,
        body: Vec<u8>,
    ) -> futures::future::BoxFuture<'static, Result<Vec<u8>, String>> {
        let client = self.0.clone();
        let uri = format!("http://{addr}/{}", rpc.name());
        Box::pin(async move {
            let req = hyper::Request::post(uri)
                .body(Full::new(bytes::Bytes::from(body)))
                .map_err(|e| e.to_string())?;
            let resp = client.request(req).await.map_err(|e| e.to_string())?;
            let ok = resp.status().is_success();
            let bytes = resp
                .into_body()
                .collect()
                .await
                .map_err(|e| e.to_string())?
                .to_bytes();
            if ok {
                Ok(bytes.to_vec())
            } else {
                Err(String::from_utf8_lossy(&bytes).into_owned())
            }
        })
    }
}

/// Serves the store's peers' calls on `listener`.
async fn serve_peers(listener: tokio::net::TcpListener, store: Store) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            return;
        };
        let _ = stream.set_nodelay(true);
        let store = store.clone();
        tokio::spawn(async move {
            let service =
                hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let store = store.clone();
                    async move {
                        let rpc =
                            shoal_store::Rpc::from_name(req.uri().path().trim_start_matches('/'));
                        let body = req.into_body().collect().await?.to_bytes();
                        let (status, reply) = match rpc {
                            Some(rpc) => match store.serve(rpc, &body).await {
                                Ok(r) => (200, r),
                                Err(e) => (400, e.into_bytes()),
                            },
                            None => (404, Vec::new()),
                        };
                        let mut resp = hyper::Response::new(Full::new(bytes::Bytes::from(reply)));
                        *resp.status_mut() = hyper::StatusCode::from_u16(status).unwrap();
                        Ok::<_, hyper::Error>(resp)
                    }
                });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// A group of one store per directory, reaching each other over HTTP on
/// loopback; the first leads.
async fn replicated(dirs: &[tempfile::TempDir]) -> Vec<Store> {
    let mut http = hyper_util::client::legacy::connect::HttpConnector::new();
    http.set_nodelay(true);
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build(http);
    let mut group = Vec::new();
    for (n, dir) in dirs.iter().enumerate() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let store = Store::open(
            dir.path(),
            shoal_store::Options {
                id: n as u64 + 1,
                addr,
                sealer: None,
                transport: Some(std::sync::Arc::new(Http(client.clone()))),
                init: n == 0,
                election_seed: None,
            },
        )
        .await
        .unwrap();
        tokio::spawn(serve_peers(listener, store.clone()));
        if n > 0 {
            let first = group
                .first()
                .map(|s: &Store| s.members()[0].addr.clone())
                .unwrap();
            store.join(&first).await.unwrap();
        }
        group.push(store);
    }
    group
}

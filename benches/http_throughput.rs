//! HTTP function throughput, side by side with `wasmtime serve`
//! (wasmtime-cli 48.0.8, the same wasmtime as shoal) on the same component
//! and the same load generator (wrk), two ways:
//!
//! - through a node's NodePort proxy on a real `shoal up`;
//! - in-process: shoal's runtime serving the component straight from a
//!   hyper listener in this process, without the Service lookup.
//!
//! Needs `wrk` (Debian) and `wasmtime` 48.0.8 (`cargo install wasmtime-cli
//! --version 48.0.8 --locked`; set WASMTIME=path if not on PATH).
//! Run with `cargo bench --bench http_throughput`. Target (DESIGN.md):
//! ≥ 1.0× `wasmtime serve`.

#[path = "../tests/common/mod.rs"]
mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn wait_http(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let ok = Command::new("curl")
            .args([
                "-sf",
                "-o",
                "/dev/null",
                &format!("http://127.0.0.1:{port}/"),
            ])
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            return;
        }
        assert!(Instant::now() < deadline, "nothing answers on port {port}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Runs wrk and returns requests per second.
fn wrk(port: u16, secs: u32) -> f64 {
    let out = Command::new("wrk")
        .args([
            "-t2",
            "-c32",
            &format!("-d{secs}s"),
            &format!("http://127.0.0.1:{port}/"),
        ])
        .output()
        .expect("wrk is installed (apt-get install wrk)");
    let text = String::from_utf8_lossy(&out.stdout);
    if text.contains("Non-2xx") {
        panic!("errors under load:\n{text}");
    }
    text.lines()
        .find_map(|l| l.strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no Requests/sec in wrk output:\n{text}"))
}

/// shoal's runtime serving `module` from a hyper listener in this process.
fn in_process(module: &std::path::Path, dir: &std::path::Path) -> (u16, tokio::runtime::Runtime) {
    use shoal_runtime_wasm::{CommandSpec, NetworkAccess, OutputSink, Runtime, RuntimeConfig};
    struct Discard;
    impl OutputSink for Discard {
        fn write(&self, _: &[u8]) {}
    }
    let exec = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let rt = Runtime::new(RuntimeConfig::new(dir.join("in-process"))).unwrap();
    rt.images()
        .import("hello-http:v1", &std::fs::read(module).unwrap())
        .unwrap();
    let port = common::free_port();
    let listener = exec
        .block_on(tokio::net::TcpListener::bind(("127.0.0.1", port)))
        .unwrap();
    let sink: std::sync::Arc<dyn OutputSink> = std::sync::Arc::new(Discard);
    let spec = CommandSpec {
        argv: vec!["fn".into()],
        env: vec![("HOSTNAME".into(), "fn".into())],
        stdout: sink.clone(),
        stderr: sink,
        memory_limit: None,
        preopens: vec![],
        cpu_millis: None,
        working_dir: None,
        network: NetworkAccess::None,
        stdio: None,
        usage: None,
    };
    exec.spawn(async move {
        let w = rt.load("hello-http:v1").await.unwrap();
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                continue;
            };
            let _ = tcp.set_nodelay(true);
            let (rt, w, spec) = (rt.clone(), w.clone(), spec.clone());
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req| {
                    let (rt, w, spec) = (rt.clone(), w.clone(), spec.clone());
                    async move {
                        rt.serve_http(&w, &spec, req, std::future::pending())
                            .await
                            .map_err(std::io::Error::other)
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(tcp), svc)
                    .await;
            });
        }
    });
    (port, exec)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let module = common::example("hello-http");
    let wasmtime = std::env::var("WASMTIME").unwrap_or_else(|_| {
        if std::path::Path::new("/opt/wasmtime-48/bin/wasmtime").exists() {
            "/opt/wasmtime-48/bin/wasmtime".into()
        } else {
            "wasmtime".into()
        }
    });
    let version = Command::new(&wasmtime)
        .arg("--version")
        .output()
        .expect("wasmtime-cli 48.0.8 is installed");
    let version = String::from_utf8_lossy(&version.stdout).trim().to_string();
    assert!(
        version.contains("48.0.8"),
        "the peer must be wasmtime 48.0.8, found {version}"
    );

    let cluster = common::Cluster::start("bench-http");
    cluster.import(&module, "hello-http:v1");
    let (dir, kubeconfig) = (cluster.dir.clone(), cluster.kubeconfig.clone());
    let manifest = dir.join("fn.yaml");
    let node_port = 30000 + common::free_port() % 2700;
    std::fs::write(
        &manifest,
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: fn, labels: {{app: fn}}}}\nspec:\n  containers:\n  - {{name: fn, image: hello-http:v1, ports: [{{containerPort: 8080}}]}}\n---\napiVersion: v1\nkind: Service\nmetadata: {{name: fn}}\nspec:\n  type: NodePort\n  selector: {{app: fn}}\n  ports: [{{port: 80, targetPort: 8080, nodePort: {node_port}}}]\n"
        ),
    )
    .unwrap();
    assert!(
        Command::new("kubectl")
            .args(["apply", "-f"])
            .arg(&manifest)
            .env("KUBECONFIG", &kubeconfig)
            .stdout(Stdio::null())
            .status()
            .unwrap()
            .success()
    );
    wait_http(node_port);

    let serve_port = common::free_port();
    let mut serve = Command::new(&wasmtime)
        .args([
            "serve",
            "-S",
            "cli",
            "-O",
            "pooling-allocator",
            "--addr",
            &format!("127.0.0.1:{serve_port}"),
        ])
        .arg(&module)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_http(serve_port);
    let (direct_port, direct_exec) = in_process(&module, &dir);
    wait_http(direct_port);

    let secs = std::env::var("SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(8);
    let _ = wrk(node_port, 2);
    let _ = wrk(serve_port, 2);
    let _ = wrk(direct_port, 2);
    let (mut ours, mut peer, mut direct) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..3 {
        ours.push(wrk(node_port, secs));
        peer.push(wrk(serve_port, secs));
        direct.push(wrk(direct_port, secs));
    }
    let _ = serve.kill();
    let _ = serve.wait();
    drop(direct_exec);
    drop(cluster);
    let (o, p, d) = (
        median(ours.clone()),
        median(peer.clone()),
        median(direct.clone()),
    );
    println!("hello-http, wrk -t2 -c32 -d{secs}s, 3 alternating runs each, medians");
    println!("shoal NodePort proxy   {o:10.0} req/s  (runs: {ours:.0?})");
    println!("shoal in-process       {d:10.0} req/s  (runs: {direct:.0?})");
    println!("wasmtime serve 48.0.8  {p:10.0} req/s  (runs: {peer:.0?})");
    println!(
        "ratio NodePort / wasmtime serve: {:.2}×, in-process / wasmtime serve: {:.2}× (target ≥ 1.0×)",
        o / p,
        d / p
    );
}

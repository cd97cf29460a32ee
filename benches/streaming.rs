//! What kubectl's streaming commands cost against a Wasm pod: `kubectl
//! exec web -- true` (a toolbox command started in the pod's sandbox)
//! beside `kubectl get pod web` (the same kubectl start, TLS and API
//! round trip, without the node), medians of alternating runs; and HTTP
//! requests per second through `kubectl port-forward` (kubectl's
//! WebSocket tunnel, then SPDY) beside the same requests sent to the pod's
//! IP, `wrk -t1 -c4`, medians of alternating rounds.
//!
//! Run with `cargo bench --bench streaming` (needs `wrk`; root).
//! `RUNS` (exec runs, 20) and `SECONDS` (each wrk round, 5).

#[path = "../tests/common/mod.rs"]
mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Instant;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn wrk(run: impl Fn(&[&str]) -> std::process::Output, url: &str, secs: u64) -> f64 {
    let d = format!("-d{secs}s");
    let out = run(&["wrk", "-t1", "-c4", &d, url]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!text.contains("Non-2xx"), "errors under load:\n{text}");
    text.lines()
        .find_map(|l| l.strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no Requests/sec in wrk output:\n{text}"))
}

fn main() {
    let runs = common::env_number("RUNS", 20);
    let secs = common::env_number("SECONDS", 5) as u64;
    let mut lan = common::Lan::new();
    let h1 = lan.host(1);
    let c = common::Cluster::start_on(&h1, "bench-streaming", &[]);
    c.import(&common::example("hello-http"), "hello-http:v1");
    let manifest = c.dir.join("web.yaml");
    std::fs::write(
        &manifest,
        "apiVersion: v1\nkind: Pod\nmetadata: {name: web}\nspec:\n  containers:\n  - {name: web, image: hello-http:v1, ports: [{containerPort: 8080}]}\n",
    )
    .unwrap();
    c.ok(&["apply", "-f", manifest.to_str().unwrap()]);
    c.ok(&["wait", "--for=condition=Ready", "pod/web", "--timeout=60s"]);
    let ip = c.ok(&["get", "pod", "web", "-o", "jsonpath={.status.podIP}"]);

    // exec beside get, alternating.
    let time = |args: &[&str]| {
        let t = Instant::now();
        c.ok(args);
        t.elapsed().as_secs_f64() * 1000.0
    };
    let (mut exec, mut get) = (Vec::new(), Vec::new());
    time(&["exec", "web", "--", "true"]);
    for _ in 0..runs {
        exec.push(time(&["exec", "web", "--", "true"]));
        get.push(time(&["get", "pod", "web", "-o", "name"]));
    }
    let (exec, get) = (median(exec), median(get));
    println!(
        "kubectl exec web -- true: {exec:.1} ms median; kubectl get pod web: {get:.1} ms; exec costs {:.1} ms more (x{:.2})",
        exec - get,
        exec / get
    );

    // port-forward beside the pod's IP.
    let forward = |spdy: bool| {
        let port = common::free_port();
        let mut child = Command::new("kubectl")
            .args(["port-forward", "pod/web", &format!("{port}:8080")])
            .env("KUBECONFIG", &c.kubeconfig)
            .env(
                "KUBECTL_PORT_FORWARD_WEBSOCKETS",
                if spdy { "false" } else { "true" },
            )
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let first = lines.next().and_then(Result::ok).unwrap_or_default();
        assert!(first.starts_with("Forwarding from"), "{first}");
        std::thread::spawn(move || for _ in lines {});
        (child, port)
    };
    let local = |args: &[&str]| Command::new(args[0]).args(&args[1..]).output().unwrap();
    let (mut ws, mut spdy, mut direct) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..3 {
        for (tunnel, into) in [(false, &mut ws), (true, &mut spdy)] {
            let (mut child, port) = forward(tunnel);
            into.push(wrk(local, &format!("http://127.0.0.1:{port}/"), secs));
            let _ = child.kill();
            let _ = child.wait();
        }
        direct.push(wrk(
            |a| h1.run(a),
            &format!("http://{}:8080/", ip.trim()),
            secs,
        ));
    }
    let (ws, spdy, direct) = (median(ws), median(spdy), median(direct));
    println!(
        "HTTP through kubectl port-forward: {ws:.0} req/s (WebSocket tunnel), {spdy:.0} req/s (SPDY); to the pod IP: {direct:.0} req/s; ratio {:.3} / {:.3}",
        ws / direct,
        spdy / direct
    );
}

//! What a Service costs a Wasm client: requests per second from a Wasm
//! HTTP client to a Wasm HTTP server on another node, three ways — to the
//! server pod's IP, to its Service's ClusterIP, and to the Service's
//! NodePort on the server's node. Two nodes, each in its own network
//! namespace; the client is a hello-http pod whose `/fetch?URL` makes one
//! outgoing request per incoming one; `wrk -t2 -c16` drives the client
//! from the client's node for each target in turn, three alternating
//! rounds, medians.
//!
//! Run with `cargo bench --bench service_hop` (needs `wrk`; root).
//! Target (DESIGN.md): the ClusterIP hop costs ≤ 10% against the pod IP.

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::Duration;

fn wrk(host: &common::Host, url: &str, secs: u32) -> f64 {
    let out = host.run(&["wrk", "-t2", "-c16", &format!("-d{secs}s"), url]);
    let text = String::from_utf8_lossy(&out.stdout);
    if text.contains("Non-2xx") {
        panic!("errors under load:\n{text}");
    }
    text.lines()
        .find_map(|l| l.strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| {
            panic!(
                "no Requests/sec in wrk output:\n{text}\n{}",
                String::from_utf8_lossy(&out.stderr)
            )
        })
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let secs = common::env_number("SECONDS", 8) as u32;
    let mut lan = common::Lan::new();
    let (h1, h2, h3) = (lan.host(1), lan.host(2), lan.host(3));
    let c = common::Cluster::start_on(&h1, "bench-hop", &[]);
    let n2 = c.join_on(&h2, "n2", &[]);
    let n3 = c.join_on(&h3, "n3", &[]);
    for n in [&n2, &n3] {
        n.import(&common::example("hello-http"), "hello-http:v1");
    }
    let pod = |name: &str, node: &str, app: &str| {
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}, labels: {{app: {app}}}}}\nspec:\n  nodeSelector: {{kubernetes.io/hostname: {node}}}\n  containers:\n  - {{name: c, image: hello-http:v1, ports: [{{containerPort: 8080}}]}}\n---\n"
        )
    };
    let manifest = c.dir.join("hop.yaml");
    std::fs::write(
        &manifest,
        pod("server", "n2", "server")
            + &pod("client", "n3", "client")
            + "apiVersion: v1\nkind: Service\nmetadata: {name: server}\nspec:\n  type: NodePort\n  selector: {app: server}\n  ports: [{port: 80, targetPort: 8080}]\n",
    )
    .unwrap();
    c.ok(&["apply", "-f", manifest.to_str().unwrap()]);
    c.wait_for(&["get", "pods"], "two Running pods", |o| {
        o.lines().filter(|l| l.contains(" Running ")).count() == 2
    });
    let get = |args: &[&str]| c.ok(args).trim().to_string();
    let server_ip = get(&["get", "pod", "server", "-o", "jsonpath={.status.podIP}"]);
    let client_ip = get(&["get", "pod", "client", "-o", "jsonpath={.status.podIP}"]);
    let cluster_ip = get(&["get", "svc", "server", "-o", "jsonpath={.spec.clusterIP}"]);
    let node_port = c.node_port("server");
    let targets = [
        ("pod IP", format!("http://{server_ip}:8080/")),
        ("ClusterIP", format!("http://{cluster_ip}/")),
        ("NodePort", format!("http://{}:{node_port}/", h2.ip)),
    ];
    let url = |target: &str| format!("http://{client_ip}:8080/fetch?{target}");
    // Every path answers before it is measured.
    for (_, t) in &targets {
        for _ in 0..100 {
            let out = h3.run(&["curl", "-s", "--max-time", "3", &url(t)]);
            if String::from_utf8_lossy(&out.stdout).contains("status 200") {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    let mut results: Vec<Vec<f64>> = vec![Vec::new(); targets.len()];
    for _ in 0..3 {
        for (i, (_, t)) in targets.iter().enumerate() {
            results[i].push(wrk(&h3, &url(t), secs));
        }
    }
    let medians: Vec<f64> = results.into_iter().map(median).collect();
    println!("Wasm client → Wasm server on another node, wrk -t2 -c16 -d{secs}s, medians of 3:");
    for ((name, _), m) in targets.iter().zip(&medians) {
        println!(
            "  {name:<10} {m:>9.0} req/s  ({:.3}× the pod IP)",
            m / medians[0]
        );
    }
    println!(
        "  the ClusterIP hop costs {:.1}%",
        (1.0 - medians[1] / medians[0]) * 100.0
    );
}

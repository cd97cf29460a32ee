//! Cluster DNS throughput and latency beside a Debian resolver serving the
//! same records. `shoal up` runs in a network namespace of its own (pod
//! IPs routed, so it serves 10.96.0.10); SERVICES Services (200 by
//! default) are created; dnsmasq is started in the same namespace with the
//! same names and addresses as a hosts file. `dnsperf` (Debian) then sends
//! the same queries (each Service's A record, in turn) to each for
//! SECONDS seconds (10), 4 clients with 100 queries outstanding, and the
//! queries per second and the latency percentiles of both are printed with
//! the ratio.
//!
//! Run with `cargo bench --bench cluster_dns` (needs `dnsmasq` and
//! `dnsperf`: `apt-get install dnsmasq-base dnsperf`). Target (DESIGN.md):
//! ≥ 1.0× the peer's queries per second.

#[path = "../tests/common/mod.rs"]
mod common;

use std::process::Command;

/// Queries/s and the latency percentiles (p50, p99, in ms) of one run.
struct Figures {
    qps: f64,
    p50: f64,
    p99: f64,
    lost: u64,
}

fn dnsperf(
    ns: &str,
    server: &str,
    port: u16,
    queries: &std::path::Path,
    seconds: usize,
) -> Figures {
    let out = Command::new("ip")
        .args(["netns", "exec", ns, "dnsperf", "-s", server, "-p"])
        .arg(port.to_string())
        .arg("-d")
        .arg(queries)
        .args(["-l", &seconds.to_string(), "-c", "4", "-q", "100", "-v"])
        .output()
        .expect("dnsperf (apt-get install dnsperf)");
    let text = String::from_utf8_lossy(&out.stdout);
    // `-v` prints a line per answered query ending in its latency (s).
    let mut latencies: Vec<f64> = text
        .lines()
        .filter(|l| l.starts_with("> "))
        .filter_map(|l| l.split_whitespace().last()?.parse::<f64>().ok())
        .collect();
    latencies.sort_by(f64::total_cmp);
    let pick = |p: f64| {
        latencies
            .get(((latencies.len() as f64 * p) as usize).min(latencies.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0.0)
            * 1e3
    };
    let field = |name: &str| {
        text.lines()
            .find(|l| l.trim_start().starts_with(name))
            .and_then(|l| l.split(':').nth(1))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    Figures {
        qps: field("Queries per second"),
        p50: pick(0.5),
        p99: pick(0.99),
        lost: field("Queries lost") as u64,
    }
}

fn main() {
    let services = common::env_number("SERVICES", 200);
    let seconds = common::env_number("SECONDS", 10);
    let mut lan = common::Lan::new();
    let h1 = lan.host(1);
    let c = common::Cluster::start_on(&h1, "bench-dns", &[]);
    let mut manifest = String::new();
    for i in 0..services {
        manifest.push_str(&format!(
            "apiVersion: v1\nkind: Service\nmetadata: {{name: s{i}}}\nspec:\n  ports: [{{port: 80}}]\n---\n"
        ));
    }
    let file = c.dir.join("services.yaml");
    std::fs::write(&file, manifest).unwrap();
    c.ok(&["apply", "-f", file.to_str().unwrap()]);
    let ips = c.ok(&[
        "get",
        "svc",
        "-o",
        "jsonpath={range .items[*]}{.metadata.name} {.spec.clusterIP}{\"\\n\"}{end}",
    ]);
    let mut hosts = String::new();
    let mut queries = String::new();
    for line in ips.lines() {
        let mut w = line.split_whitespace();
        let (Some(name), Some(ip)) = (w.next(), w.next()) else {
            continue;
        };
        if !name.starts_with('s') {
            continue;
        }
        hosts.push_str(&format!("{ip} {name}.default.svc.cluster.local\n"));
        queries.push_str(&format!("{name}.default.svc.cluster.local A\n"));
    }
    let hosts_file = c.dir.join("dns-hosts");
    let queries_file = c.dir.join("dns-queries");
    std::fs::write(&hosts_file, hosts).unwrap();
    std::fs::write(&queries_file, queries).unwrap();
    let last = format!("s{}.default.svc.cluster.local", services - 1);
    for _ in 0..100 {
        let out = h1.run(&["dig", "+short", "@10.96.0.10", &last]);
        if !out.stdout.is_empty() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let mut dnsmasq = Command::new("ip")
        .args([
            "netns",
            "exec",
            &h1.ns,
            "dnsmasq",
            "--keep-in-foreground",
            "--no-resolv",
            "--no-hosts",
        ])
        .arg(format!("--addn-hosts={}", hosts_file.display()))
        .args([
            "--port",
            "5353",
            "--listen-address",
            &h1.ip,
            "--bind-interfaces",
        ])
        .args([
            "--local=/cluster.local/",
            "--cache-size=10000",
            "--user=root",
        ])
        .spawn()
        .expect("dnsmasq (apt-get install dnsmasq-base)");
    std::thread::sleep(std::time::Duration::from_millis(500));
    let shoal = dnsperf(&h1.ns, "10.96.0.10", 53, &queries_file, seconds);
    let peer = dnsperf(&h1.ns, &h1.ip, 5353, &queries_file, seconds);
    let _ = dnsmasq.kill();
    let _ = dnsmasq.wait();
    println!(
        "cluster DNS, {services} Services, {seconds} s each, dnsperf -c 4 -q 100:\n  shoal   {:>9.0} queries/s, p50 {:.2} ms, p99 {:.2} ms, {} lost\n  dnsmasq {:>9.0} queries/s, p50 {:.2} ms, p99 {:.2} ms, {} lost\n  ratio (shoal / dnsmasq) {:.2}x",
        shoal.qps,
        shoal.p50,
        shoal.p99,
        shoal.lost,
        peer.qps,
        peer.p50,
        peer.p99,
        peer.lost,
        shoal.qps / peer.qps.max(1.0)
    );
}

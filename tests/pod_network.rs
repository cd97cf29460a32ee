//! Pod IPs are real: nodes in network namespaces of their own, on one
//! LAN, as separate machines; pods on each reached at their IPs from the
//! other hosts, by processes and by Wasm guests.

mod common;

use std::time::Duration;

use common::{Cluster, Lan, example};

fn pod(name: &str, node: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: Pod
metadata:
  name: {name}
spec:
  nodeSelector: {{kubernetes.io/hostname: {node}}}
  containers:
  - name: web
    image: hello-http:v1
    ports:
    - containerPort: 8080
"#
    )
}

/// `curl` from a host, retried while the answer does not contain `want`.
fn curl_until(host: &common::Host, url: &str, want: &str) -> String {
    let mut last = String::new();
    for _ in 0..50 {
        let out = host.run(&["curl", "-s", "--max-time", "3", url]);
        last = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        if last.contains(want) {
            return last;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("{url} from {}: {last:?}, not {want:?}", host.ns);
}

#[test]
fn pods_are_reached_at_their_ips_from_every_host() {
    let mut lan = Lan::new();
    let (h1, h2, h3) = (lan.host(1), lan.host(2), lan.host(3));
    let c = Cluster::start_on(&h1, "podnet", &[]);
    let mut n2 = c.join_on(&h2, "n2", &[]);
    let n3 = c.join_on(&h3, "n3", &[]);
    for n in [&n2, &n3] {
        n.import(&example("hello-http"), "hello-http:v1");
    }
    c.wait_for(&["get", "nodes"], "three Ready nodes", |o| {
        o.lines().filter(|l| l.contains(" Ready")).count() == 3
    });
    let manifest = c.dir.join("pods.yaml");
    std::fs::write(
        &manifest,
        pod("web-2", "n2") + "---\n" + &pod("web-3", "n3"),
    )
    .unwrap();
    c.ok(&["apply", "-f", manifest.to_str().unwrap()]);
    let ip = |name: &str| {
        c.wait_for(
            &[
                "get",
                "pod",
                name,
                "-o",
                "jsonpath={.status.phase} {.status.podIP}",
            ],
            "Running with an IP",
            |o| o.starts_with("Running 10.244."),
        )
        .split_whitespace()
        .nth(1)
        .unwrap()
        .to_string()
    };
    let (ip2, ip3) = (ip("web-2"), ip("web-3"));
    // A process on a host running neither pod reaches both, across the LAN.
    curl_until(&h1, &format!("http://{ip2}:8080/"), "served by web-2");
    curl_until(&h1, &format!("http://{ip3}:8080/"), "served by web-3");
    // A Wasm guest on n3 reaches the pod on n2 at its IP.
    curl_until(
        &h3,
        &format!("http://{ip3}:8080/fetch?http://{ip2}:8080/"),
        "status 200",
    );
    // A stopped agent takes its routes with it; the others withdraw theirs
    // to its pod CIDR once its Node is gone.
    let routes = |h: &common::Host| {
        String::from_utf8(
            h.run(&["ip", "-4", "route", "show", "table", "all", "proto", "83"])
                .stdout,
        )
        .unwrap()
    };
    assert!(routes(&h2).contains("local 10.244."), "{}", routes(&h2));
    n2.stop();
    assert!(routes(&h2).trim().is_empty(), "{}", routes(&h2));
    let n2_cidr = c.ok(&["get", "node", "n2", "-o", "jsonpath={.spec.podCIDR}"]);
    assert!(routes(&h1).contains(n2_cidr.trim()), "{}", routes(&h1));
    c.ok(&["delete", "node", "n2"]);
    let mut gone = false;
    for _ in 0..50 {
        if !routes(&h1).contains(n2_cidr.trim()) {
            gone = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(gone, "h1 still routes {}: {}", n2_cidr.trim(), routes(&h1));
    drop(n3);
}

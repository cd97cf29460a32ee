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
  labels: {{app: web}}
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
    let rules = host.run(&["nft", "list", "ruleset"]);
    panic!(
        "{url} from {}: {last:?}, not {want:?}; its nftables:\n{}",
        host.ns,
        String::from_utf8_lossy(&rules.stdout)
    );
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

const SERVICE: &str = r#"apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  type: NodePort
  selector: {app: web}
  ports:
  - port: 80
    targetPort: 8080
"#;

/// Asks `url` from `host` `n` times and returns the distinct `served by`
/// pods.
fn served_by(host: &common::Host, url: &str, n: usize) -> std::collections::BTreeSet<String> {
    (0..n)
        .filter_map(|_| {
            let out = host.run(&["curl", "-s", "--max-time", "3", url]);
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            text.split("served by ")
                .nth(1)
                .map(|p| p.trim().trim_end_matches(')').to_string())
        })
        .collect()
}

#[test]
fn services_reach_pods_from_processes_guests_and_other_hosts() {
    let mut lan = Lan::new();
    let (h1, h2, h3) = (lan.host(1), lan.host(2), lan.host(3));
    let c = Cluster::start_on(&h1, "services", &[]);
    let n2 = c.join_on(&h2, "n2", &[]);
    let n3 = c.join_on(&h3, "n3", &[]);
    for n in [&n2, &n3] {
        n.import(&example("hello-http"), "hello-http:v1");
    }
    c.wait_for(&["get", "nodes"], "three Ready nodes", |o| {
        o.lines().filter(|l| l.contains(" Ready")).count() == 3
    });
    let manifest = c.dir.join("web.yaml");
    std::fs::write(
        &manifest,
        pod("web-2", "n2") + "---\n" + &pod("web-3", "n3") + "---\n" + SERVICE,
    )
    .unwrap();
    c.ok(&["apply", "-f", manifest.to_str().unwrap()]);
    let cluster_ip = c.ok(&["get", "svc", "web", "-o", "jsonpath={.spec.clusterIP}"]);
    let node_port = c.ok(&[
        "get",
        "svc",
        "web",
        "-o",
        "jsonpath={.spec.ports[0].nodePort}",
    ]);
    c.wait_for(
        &[
            "get",
            "endpointslices",
            "-l",
            "kubernetes.io/service-name=web",
            "-o",
            "jsonpath={.items[*].endpoints[*].conditions.ready}",
        ],
        "two ready endpoints",
        |o| o.split_whitespace().filter(|r| *r == "true").count() == 2,
    );
    let by_ip = format!("http://{}/", cluster_ip.trim());
    curl_until(&h1, &by_ip, "served by web-");
    // The ClusterIP balances over both pods, from a node running neither.
    let seen = served_by(&h1, &by_ip, 30);
    assert_eq!(seen.len(), 2, "{seen:?}");
    // A NodePort of one node reaches pods on it and on another, from a
    // host outside the cluster (the test's own namespace).
    let via_node = format!("http://{}:{}/", h2.ip, node_port.trim());
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..30 {
        let out = std::process::Command::new("curl")
            .args(["-s", "--max-time", "3", &via_node])
            .output()
            .unwrap();
        if let Some(p) = String::from_utf8_lossy(&out.stdout)
            .split("served by ")
            .nth(1)
        {
            seen.insert(p.trim().trim_end_matches(')').to_string());
        }
    }
    assert_eq!(seen.len(), 2, "NodePort {via_node}: {seen:?}");
    // A Wasm guest reaches the Service by its ClusterIP.
    let ip3 = c.ok(&["get", "pod", "web-3", "-o", "jsonpath={.status.podIP}"]);
    curl_until(
        &h3,
        &format!("http://{}:8080/fetch?{by_ip}", ip3.trim()),
        "status 200",
    );
    // A deleted pod's endpoint goes, and no request reaches it after.
    c.ok(&["delete", "pod", "web-3"]);
    c.wait_for(
        &[
            "get",
            "endpointslices",
            "-l",
            "kubernetes.io/service-name=web",
            "-o",
            "jsonpath={.items[*].endpoints[*].targetRef.name}",
        ],
        "web-3 out of the endpoints",
        |o| !o.contains("web-3"),
    );
    // The node programs the change within moments of the slice's update.
    std::thread::sleep(Duration::from_secs(1));
    let mut after = std::collections::BTreeSet::new();
    for _ in 0..20 {
        after.extend(served_by(&h1, &by_ip, 1));
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!after.contains("web-3"), "{after:?}");
    // A Service without endpoints is refused at once, not left to time out.
    c.ok(&["delete", "pod", "web-2"]);
    c.wait_for(
        &[
            "get",
            "endpointslices",
            "-l",
            "kubernetes.io/service-name=web",
            "-o",
            "jsonpath={.items[*].endpoints}",
        ],
        "no endpoints",
        |o| o.trim().is_empty() || o.trim() == "[]",
    );
    let mut refused = false;
    for _ in 0..50 {
        let started = std::time::Instant::now();
        let out = h1.run(&["curl", "-s", "--max-time", "3", &by_ip]);
        // curl's exit code 7: connection refused.
        if out.status.code() == Some(7) && started.elapsed() < Duration::from_secs(1) {
            refused = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(refused, "a Service without endpoints refuses connections");
}

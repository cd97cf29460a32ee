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

/// The pod's IP once it is Running.
fn running_ip(c: &Cluster, name: &str) -> String {
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
    let ip = |name: &str| running_ip(&c, name);
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

const SNEAKY: &str = r#"apiVersion: v1
kind: Service
metadata:
  name: sneaky
spec:
  ports:
  - name: ssh
    port: 80
    targetPort: 22
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: sneaky-1
  labels: {kubernetes.io/service-name: sneaky}
addressType: IPv4
ports:
- name: ssh
  port: 22
  protocol: TCP
endpoints:
- addresses: [NODE_IP]
  conditions: {ready: true}
"#;

const EXTRA_SERVICES: &str = r#"apiVersion: v1
kind: Service
metadata:
  name: web-lb
spec:
  type: LoadBalancer
  selector: {app: web}
  ports:
  - port: 8081
    targetPort: 8080
---
apiVersion: v1
kind: Service
metadata:
  name: web-sticky
spec:
  selector: {app: web}
  sessionAffinity: ClientIP
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
    // A LoadBalancer Service is served at every Ready node's address.
    let lb = c.dir.join("lb.yaml");
    std::fs::write(&lb, EXTRA_SERVICES).unwrap();
    c.ok(&["apply", "-f", lb.to_str().unwrap()]);
    let ingress = c.wait_for(
        &[
            "get",
            "svc",
            "web-lb",
            "-o",
            "jsonpath={.status.loadBalancer.ingress[*].ip}",
        ],
        "three load-balancer addresses",
        |o| o.split_whitespace().count() == 3,
    );
    assert!(ingress.contains(&h3.ip), "{ingress}");
    // kubectl shows them, and the slices as Kubernetes prints them.
    let row = c.ok(&["get", "svc", "web-lb"]);
    assert!(row.contains("EXTERNAL-IP") && row.contains(&h3.ip), "{row}");
    let slices = c.ok(&[
        "get",
        "endpointslices",
        "-l",
        "kubernetes.io/service-name=web",
    ]);
    assert!(
        slices.contains("ADDRESSTYPE") && slices.contains("IPv4") && slices.contains(" 8080 "),
        "{slices}"
    );
    let via_lb = format!("http://{}:8081/", h3.ip);
    let out = std::process::Command::new("curl")
        .args([
            "-s",
            "--retry",
            "20",
            "--retry-connrefused",
            "--retry-delay",
            "1",
            "--max-time",
            "3",
            &via_lb,
        ])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("served by web-"),
        "{via_lb}: {out:?}"
    );
    // ClientIP affinity: one client keeps its pod.
    let sticky_ip = c.ok(&[
        "get",
        "svc",
        "web-sticky",
        "-o",
        "jsonpath={.spec.clusterIP}",
    ]);
    let sticky = format!("http://{}/", sticky_ip.trim());
    curl_until(&h1, &sticky, "served by web-");
    let seen = served_by(&h1, &sticky, 20);
    assert_eq!(seen.len(), 1, "{seen:?}");
    // A Wasm guest reaches the Service by its ClusterIP.
    let ip3 = c.ok(&["get", "pod", "web-3", "-o", "jsonpath={.status.podIP}"]);
    curl_until(
        &h3,
        &format!("http://{}:8080/fetch?{by_ip}", ip3.trim()),
        "status 200",
    );
    // A Service whose endpoint is the node itself is the node: a guest
    // there may not reach it (another node's guest may, as it may reach
    // that node's address).
    let sneaky = c.dir.join("sneaky.yaml");
    std::fs::write(&sneaky, SNEAKY.replace("NODE_IP", &h3.ip)).unwrap();
    c.ok(&["apply", "-f", sneaky.to_str().unwrap()]);
    let sneaky_ip = c.ok(&["get", "svc", "sneaky", "-o", "jsonpath={.spec.clusterIP}"]);
    curl_until(
        &h3,
        &format!(
            "http://{}:8080/fetch?http://{}/",
            ip3.trim(),
            sneaky_ip.trim()
        ),
        "DestinationIpProhibited",
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

const DNS_OBJECTS: &str = r#"apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  selector: {app: web}
  ports:
  - name: http
    port: 80
    targetPort: 8080
---
apiVersion: v1
kind: Service
metadata:
  name: db
spec:
  clusterIP: None
  selector: {app: db}
  ports:
  - name: http
    port: 8080
---
apiVersion: v1
kind: Service
metadata:
  name: ext
spec:
  type: ExternalName
  externalName: web.default.svc.cluster.local
---
apiVersion: v1
kind: Pod
metadata:
  name: db-a
  labels: {app: db}
spec:
  hostname: db-a
  subdomain: db
  nodeSelector: {kubernetes.io/hostname: n2}
  containers:
  - name: web
    image: hello-http:v1
    ports:
    - containerPort: 8080
"#;

/// `dig +short` at the cluster DNS from `host`, retried until `pred`
/// holds of the answer.
fn dig_until(host: &common::Host, args: &[&str], pred: impl Fn(&str) -> bool) -> String {
    let mut argv = vec!["dig", "+short", "+time=2", "+tries=1", "@10.96.0.10"];
    argv.extend_from_slice(args);
    let mut last = String::new();
    for _ in 0..50 {
        let out = host.run(&argv);
        last = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if pred(&last) {
            return last;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("dig {args:?} from {}: {last:?}", host.ns);
}

#[test]
fn cluster_dns_names_services_for_hosts_and_guests() {
    let mut lan = Lan::new();
    let (h1, h2) = (lan.host(1), lan.host(2));
    let c = Cluster::start_on(&h1, "dns", &[]);
    let n2 = c.join_on(&h2, "n2", &[]);
    n2.import(&example("hello-http"), "hello-http:v1");
    c.wait_for(&["get", "nodes"], "two Ready nodes", |o| {
        o.lines().filter(|l| l.contains(" Ready")).count() == 2
    });
    let manifest = c.dir.join("dns.yaml");
    std::fs::write(&manifest, pod("web-2", "n2") + "---\n" + DNS_OBJECTS).unwrap();
    c.ok(&["apply", "-f", manifest.to_str().unwrap()]);
    let cluster_ip = c.ok(&["get", "svc", "web", "-o", "jsonpath={.spec.clusterIP}"]);
    let cluster_ip = cluster_ip.trim();
    let running_ip = |name: &str| running_ip(&c, name);
    let (web_ip, db_ip) = (running_ip("web-2"), running_ip("db-a"));
    // Every node answers for the cluster's names, over UDP and TCP.
    for h in [&h1, &h2] {
        dig_until(h, &["web.default.svc.cluster.local"], |a| a == cluster_ip);
        dig_until(h, &["+tcp", "kubernetes.default.svc.cluster.local"], |a| {
            a == "10.96.0.1"
        });
    }
    dig_until(
        &h2,
        &["SRV", "_http._tcp.web.default.svc.cluster.local"],
        |a| a == "0 100 80 web.default.svc.cluster.local.",
    );
    // A headless Service is its ready pods, each also by its hostname.
    dig_until(&h1, &["db.default.svc.cluster.local"], |a| a == db_ip);
    dig_until(&h1, &["db-a.db.default.svc.cluster.local"], |a| a == db_ip);
    dig_until(&h1, &["ext.default.svc.cluster.local"], |a| {
        a.lines().next() == Some("web.default.svc.cluster.local.")
    });
    let dashed = db_ip.replace('.', "-");
    dig_until(
        &h1,
        &[&format!("{dashed}.default.pod.cluster.local")],
        |a| a == db_ip,
    );
    let status = |name: &str| {
        let out = h1.run(&["dig", "+time=2", "+tries=1", "@10.96.0.10", name]);
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert!(
        status("nope.default.svc.cluster.local").contains("status: NXDOMAIN"),
        "{}",
        status("nope.default.svc.cluster.local")
    );
    // A query whose name has a label over 63 bytes, or is over 255 bytes
    // in all, is answered with a format error, not dropped.
    let raw = h1.run(&[
        "python3",
        "-c",
        "import socket,sys\n\
         h=b'\\x12\\x34\\x01\\x00\\x00\\x01\\x00\\x00\\x00\\x00\\x00\\x00'\n\
         t=b'\\x00\\x00\\x01\\x00\\x01'\n\
         for name in [bytes([64])+b'a'*64, (bytes([63])+b'a'*63)*5]:\n\
         \x20s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM);s.settimeout(3)\n\
         \x20s.sendto(h+name+t,('10.96.0.10',53));r=s.recv(512)\n\
         \x20print(r[0]==0x12 and r[1]==0x34, r[3]&15)",
    ]);
    let raw = String::from_utf8_lossy(&raw.stdout).into_owned();
    assert_eq!(raw, "True 1\nTrue 1\n", "{raw:?} {:?}", h1.ns);
    // Guests resolve the same names in-process, with their search path.
    for name in ["web", "web.default.svc", "ext", "db-a.db:8080"] {
        curl_until(
            &h1,
            &format!("http://{web_ip}:8080/fetch?http://{name}/"),
            "status 200",
        );
    }
    let out = h1.run(&[
        "curl",
        "-s",
        &format!("http://{web_ip}:8080/fetch?http://nope/"),
    ]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("no such host"),
        "{out:?}"
    );
    // A command's `wasi:sockets` lookups (Rust's `TcpStream::connect` with
    // a name) go through the same names and search path.
    let client = c.dir.join("client.yaml");
    std::fs::write(
        &client,
        "apiVersion: v1\nkind: Pod\nmetadata: {name: client}\nspec:\n  nodeSelector: {kubernetes.io/hostname: n2}\n  containers:\n  - name: c\n    image: hello-cmd:v1\n    env:\n    - {name: CONNECT, value: \"web:80,db-a.db:8080,nope:80\"}\n    - {name: INTERVAL, value: \"3600\"}\n",
    )
    .unwrap();
    n2.import(&example("hello-cmd"), "hello-cmd:v1");
    c.ok(&["apply", "-f", client.to_str().unwrap()]);
    let logs = c.wait_for(&["logs", "client"], "three connect lines", |o| {
        o.matches("connect ").count() >= 3
    });
    assert!(logs.contains("connect web:80: ok"), "{logs}");
    assert!(logs.contains("connect db-a.db:8080: ok"), "{logs}");
    assert!(logs.contains("connect nope:80: error"), "{logs}");
}

/// The guestbook example as its README tells: a frontend HTTP component
/// calling the backend Service by its DNS name, the backend a command
/// listening on its pod IP, reached at a NodePort of a node that runs
/// neither.
#[test]
fn the_guestbook_example_runs_across_nodes() {
    let mut lan = Lan::new();
    let (h1, h2, h3) = (lan.host(1), lan.host(2), lan.host(3));
    let c = Cluster::start_on(&h1, "guestbook", &[]);
    let n2 = c.join_on(&h2, "n2", &[]);
    let n3 = c.join_on(&h3, "n3", &[]);
    for part in ["frontend", "backend"] {
        let module = common::example_file(&format!("guestbook/{part}.wasm"));
        let name = format!("guestbook-{part}:v1");
        for n in [&n2, &n3] {
            n.import(&module, &name);
        }
    }
    c.wait_for(&["get", "nodes"], "three Ready nodes", |o| {
        o.lines().filter(|l| l.contains(" Ready")).count() == 3
    });
    // The control-plane node takes no part: the example runs on n2 and n3.
    c.ok(&["taint", "node", "shoal", "dedicated=control:NoSchedule"]);
    let dir = common::repo().join("examples/guestbook");
    c.ok(&["apply", "-f", dir.to_str().unwrap()]);
    for d in ["deployment/backend", "deployment/frontend"] {
        c.ok(&["rollout", "status", d, "--timeout=60s"]);
    }
    let node_port = c.node_port("frontend");
    let url = format!("http://{}:{node_port}/", h1.ip);
    // Signing goes frontend → backend by name; the backend keeps it.
    let sign = |text: &str| {
        let mut last = String::new();
        for _ in 0..50 {
            let out = std::process::Command::new("curl")
                .args(["-s", "--max-time", "3", "-d", text, &url])
                .output()
                .unwrap();
            last = String::from_utf8_lossy(&out.stdout).into_owned();
            if last.starts_with("signed: ") {
                return;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!("signing {text:?} at {url}: {last:?}");
    };
    sign("first entry");
    sign("second entry");
    let out = std::process::Command::new("curl")
        .args(["-s", "--max-time", "3", &url])
        .output()
        .unwrap();
    let page = String::from_utf8_lossy(&out.stdout);
    assert!(
        page.starts_with("Guestbook (frontend frontend-")
            && page.contains("first entry\nsecond entry\n"),
        "{page:?}"
    );
    // The probes the manifests give passed (the rollouts waited for
    // readiness; a readiness probe may fail while the backend binds) and
    // the backend's liveness probe, a real request to its pod IP, never
    // failed.
    let probed = c.ok(&[
        "get",
        "events",
        "--field-selector",
        "reason=Unhealthy",
        "-o",
        "jsonpath={.items[*].message}",
    ]);
    assert!(!probed.contains("Liveness"), "{probed}");
    let restarts = c.ok(&[
        "get",
        "pods",
        "-l",
        "tier=backend",
        "-o",
        "jsonpath={.items[*].status.containerStatuses[*].restartCount}",
    ]);
    assert_eq!(restarts, "0");
}

/// An agent killed outright and started again takes its routes and rules
/// over, and its pod is reached at the same IP and through its Service.
#[test]
fn a_killed_agent_comes_back_with_its_pods_reachable() {
    let mut lan = Lan::new();
    let (h1, h2) = (lan.host(1), lan.host(2));
    let c = Cluster::start_on(&h1, "restart-net", &[]);
    let n2 = c.join_on(&h2, "n2", &[]);
    n2.import(&example("hello-http"), "hello-http:v1");
    let manifest = c.dir.join("web.yaml");
    std::fs::write(&manifest, pod("web-2", "n2") + "---\n" + SERVICE).unwrap();
    c.ok(&["apply", "-f", manifest.to_str().unwrap()]);
    let ip = running_ip(&c, "web-2");
    let cluster_ip = c.ok(&["get", "svc", "web", "-o", "jsonpath={.spec.clusterIP}"]);
    let by_service = format!("http://{}/", cluster_ip.trim());
    curl_until(&h1, &by_service, "served by web-2");
    let ready_since = || {
        c.ok(&[
            "get",
            "node",
            "n2",
            "-o",
            "jsonpath={.status.conditions[?(@.type==\"Ready\")].lastTransitionTime}",
        ])
    };
    let since = ready_since();
    // SIGKILL: nothing is cleaned up.
    drop(n2);
    std::thread::sleep(Duration::from_millis(1100));
    let n2 = c.join_on(&h2, "n2", &[]);
    curl_until(&h1, &format!("http://{ip}:8080/"), "served by web-2");
    curl_until(&h1, &by_service, "served by web-2");
    curl_until(&h2, &by_service, "served by web-2");
    let routes = String::from_utf8(
        h2.run(&["ip", "-4", "route", "show", "table", "all", "proto", "83"])
            .stdout,
    )
    .unwrap();
    assert_eq!(
        routes
            .lines()
            .filter(|l| l.starts_with("local 10.244."))
            .count(),
        1,
        "{routes}"
    );
    let tables = String::from_utf8(h2.run(&["nft", "list", "tables"]).stdout).unwrap();
    assert_eq!(tables.matches("table ip shoal").count(), 1, "{tables}");
    // Ready all along, as far as the cluster saw.
    assert_eq!(ready_since(), since);
    drop(n2);
}

/// UDP to a pod's IP from another host, and through a Service's ClusterIP
/// (balanced over pods on two nodes).
#[test]
fn udp_reaches_pods_and_services() {
    let mut lan = Lan::new();
    let (h1, h2, h3) = (lan.host(1), lan.host(2), lan.host(3));
    let c = Cluster::start_on(&h1, "udp", &[]);
    let n2 = c.join_on(&h2, "n2", &[]);
    let n3 = c.join_on(&h3, "n3", &[]);
    for n in [&n2, &n3] {
        n.import(&example("hello-cmd"), "hello-cmd:v1");
    }
    // One echo binds its pod IP, the other any address (as most servers
    // do), which is its pod IP too.
    let echo = |name: &str, node: &str, at: &str| {
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}, labels: {{app: echo}}}}\nspec:\n  nodeSelector: {{kubernetes.io/hostname: {node}}}\n  containers:\n  - name: echo\n    image: hello-cmd:v1\n    ports: [{{containerPort: 5353, protocol: UDP, name: echo}}]\n    env:\n    - name: POD_IP\n      valueFrom: {{fieldRef: {{fieldPath: status.podIP}}}}\n    - {{name: UDP_ECHO, value: \"{at}:5353\"}}\n---\n"
        )
    };
    let manifest = c.dir.join("echo.yaml");
    std::fs::write(
        &manifest,
        echo("echo-2", "n2", "$(POD_IP)")
            + &echo("echo-3", "n3", "0.0.0.0")
            + "apiVersion: v1\nkind: Service\nmetadata: {name: echo}\nspec:\n  selector: {app: echo}\n  ports: [{name: echo, port: 53, targetPort: echo, protocol: UDP}]\n",
    )
    .unwrap();
    c.ok(&["apply", "-f", manifest.to_str().unwrap()]);
    for p in ["echo-2", "echo-3"] {
        c.wait_for(&["logs", p], "the echo listening", |o| {
            o.contains("udp echo on ")
        });
    }
    let ip2 = c.ok(&["get", "pod", "echo-2", "-o", "jsonpath={.status.podIP}"]);
    let cluster_ip = c.ok(&["get", "svc", "echo", "-o", "jsonpath={.spec.clusterIP}"]);
    // A datagram from h1 (a fresh source port each time), and the answer.
    let ask = |to: &str, port: &str| {
        let script = format!(
            "import socket\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM);s.settimeout(2)\ns.sendto(b'ping',('{to}',{port}))\nprint(s.recv(1500).decode())"
        );
        let out = h1.run(&["python3", "-c", &script]);
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    let mut answer = String::new();
    for _ in 0..50 {
        answer = ask(ip2.trim(), "5353");
        if !answer.is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(answer, "echo from echo-2: ping");
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..40 {
        let a = ask(cluster_ip.trim(), "53");
        if let Some(pod) = a
            .strip_prefix("echo from ")
            .and_then(|r| r.split(':').next())
        {
            seen.insert(pod.to_string());
        }
        if seen.len() == 2 {
            break;
        }
    }
    assert_eq!(seen.len(), 2, "{seen:?}");
}

/// NetworkPolicy for Wasm pods: ingress to an HTTP pod by address block,
/// egress from a pod's guest by address and port, a deny-all, and a
/// change that takes effect at once.
#[test]
fn network_policies_decide_who_reaches_whom() {
    let mut lan = Lan::new();
    let (h1, h2, h3) = (lan.host(1), lan.host(2), lan.host(3));
    let c = Cluster::start_on(&h1, "netpol", &[]);
    let n2 = c.join_on(&h2, "n2", &[]);
    let n3 = c.join_on(&h3, "n3", &[]);
    for n in [&n2, &n3] {
        n.import(&example("hello-http"), "hello-http:v1");
    }
    let labelled = |name: &str, node: &str, app: &str| {
        pod(name, node).replace("labels: {app: web}", &format!("labels: {{app: {app}}}"))
    };
    let manifest = c.dir.join("pods.yaml");
    std::fs::write(
        &manifest,
        labelled("web", "n2", "web")
            + "---\n"
            + &labelled("client", "n3", "client")
            + "---\n"
            + &labelled("other", "n3", "other"),
    )
    .unwrap();
    c.ok(&["apply", "-f", manifest.to_str().unwrap()]);
    let ip = |name: &str| running_ip(&c, name);
    let (web, client, other) = (ip("web"), ip("client"), ip("other"));
    let web_url = format!("http://{web}:8080/");
    curl_until(&h1, &web_url, "served by web");
    curl_until(&h3, &web_url, "served by web");
    let policies = |text: &str| {
        let f = c.dir.join("policy.yaml");
        std::fs::write(&f, text).unwrap();
        c.ok(&["apply", "-f", f.to_str().unwrap()]);
    };
    // Ingress to web only from h1's address.
    policies(&format!(
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {{name: web-in}}\nspec:\n  podSelector: {{matchLabels: {{app: web}}}}\n  ingress:\n  - from: [{{ipBlock: {{cidr: {}/32}}}}]\n    ports: [{{port: 8080}}]\n",
        h1.ip
    ));
    let refused = |host: &common::Host, url: &str| {
        let started = std::time::Instant::now();
        loop {
            let out = host.run(&["curl", "-s", "--max-time", "2", url]);
            if !String::from_utf8_lossy(&out.stdout).contains("served by") {
                return started.elapsed();
            }
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "{url} from {} still served",
                host.ns
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    let took = refused(&h3, &web_url);
    assert!(took < Duration::from_secs(1), "the policy took {took:?}");
    curl_until(&h1, &web_url, "served by web");
    // Egress from client: only to web's port 8080.
    policies(
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: client-out}\nspec:\n  podSelector: {matchLabels: {app: client}}\n  policyTypes: [Egress]\n  egress:\n  - to: [{podSelector: {matchLabels: {app: web}}}]\n    ports: [{port: 8080}]\n",
    );
    // (web admits only h1, so the client's guest is turned away there;
    // open web again for the egress checks.)
    c.ok(&["delete", "networkpolicy", "web-in"]);
    curl_until(
        &h3,
        &format!("http://{client}:8080/fetch?http://{web}:8080/"),
        "status 200",
    );
    curl_until(
        &h3,
        &format!("http://{client}:8080/fetch?http://{other}:8080/"),
        "DestinationIpProhibited",
    );
    // Other pods are not selected.
    curl_until(
        &h3,
        &format!("http://{other}:8080/fetch?http://{client}:8080/"),
        "status 200",
    );
    // Ingress to web from the client pod only: a guest's plain-HTTP
    // request comes from its pod's address.
    policies(
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: web-from-client}\nspec:\n  podSelector: {matchLabels: {app: web}}\n  ingress:\n  - from: [{podSelector: {matchLabels: {app: client}}}]\n",
    );
    c.ok(&["delete", "networkpolicy", "client-out"]);
    curl_until(
        &h3,
        &format!("http://{client}:8080/fetch?http://{web}:8080/"),
        "status 200",
    );
    curl_until(
        &h3,
        &format!("http://{other}:8080/fetch?http://{web}:8080/"),
        "error",
    );
    refused(&h1, &web_url);
    c.ok(&["delete", "networkpolicy", "web-from-client"]);
    // A deny-all for the namespace (no pod hears anyone), then removed.
    policies(
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: deny-all}\nspec:\n  podSelector: {}\n  policyTypes: [Ingress, Egress]\n",
    );
    refused(&h1, &web_url);
    refused(&h3, &format!("http://{other}:8080/"));
    c.ok(&["delete", "networkpolicy", "--all"]);
    curl_until(&h1, &web_url, "served by web");
}

/// A command's own listener (bound to any address, so its pod's) hears
/// only the pods a policy admits: a client command's `wasi:sockets`
/// connection leaves from its pod's address, on the same node and from
/// another.
#[test]
fn command_listeners_admit_only_the_pods_a_policy_allows() {
    let mut lan = Lan::new();
    let (h1, h2, h3) = (lan.host(1), lan.host(2), lan.host(3));
    let c = Cluster::start_on(&h1, "listeners", &[]);
    let n2 = c.join_on(&h2, "n2", &[]);
    let n3 = c.join_on(&h3, "n3", &[]);
    let store = common::example_file("guestbook/backend.wasm");
    n2.import(&store, "guestbook-backend:v1");
    for n in [&n2, &n3] {
        n.import(&example("hello-cmd"), "hello-cmd:v1");
    }
    let manifest = c.dir.join("store.yaml");
    std::fs::write(
        &manifest,
        "apiVersion: v1\nkind: Pod\nmetadata: {name: store, labels: {app: store}}\nspec:\n  nodeSelector: {kubernetes.io/hostname: n2}\n  containers:\n  - name: store\n    image: guestbook-backend:v1\n    env:\n    - {name: POD_IP, value: 0.0.0.0}\n    - {name: PORT, value: \"8080\"}\n---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: store-in}\nspec:\n  podSelector: {matchLabels: {app: store}}\n  ingress:\n  - from: [{podSelector: {matchLabels: {app: friend}}}]\n    ports: [{port: 8080}]\n",
    )
    .unwrap();
    c.ok(&["apply", "-f", manifest.to_str().unwrap()]);
    let ip = running_ip(&c, "store");
    c.wait_for(&["logs", "store"], "the store listening", |o| {
        o.contains("listening on")
    });
    let client = |name: &str, node: &str, app: &str| {
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}, labels: {{app: {app}}}}}\nspec:\n  nodeSelector: {{kubernetes.io/hostname: {node}}}\n  restartPolicy: Never\n  containers:\n  - name: c\n    image: hello-cmd:v1\n    env:\n    - {{name: ASK, value: \"{ip}:8080/entries\"}}\n    - {{name: COUNT, value: \"1\"}}\n"
        )
    };
    let clients = c.dir.join("clients.yaml");
    std::fs::write(
        &clients,
        [
            client("friend", "n3", "friend"),
            client("near-friend", "n2", "friend"),
            client("stranger", "n3", "stranger"),
            client("near-stranger", "n2", "stranger"),
        ]
        .join("---\n"),
    )
    .unwrap();
    c.ok(&["apply", "-f", clients.to_str().unwrap()]);
    let asked = |name: &str| {
        c.wait_for(&["logs", name], "an ask line", |o| o.contains("ask "))
            .lines()
            .find(|l| l.starts_with("ask "))
            .unwrap()
            .to_string()
    };
    for name in ["friend", "near-friend"] {
        let line = asked(name);
        assert!(line.ends_with(": HTTP/1.1 200 OK"), "{name}: {line}");
    }
    for name in ["stranger", "near-stranger"] {
        let line = asked(name);
        assert!(line.contains(": error: "), "{name}: {line}");
    }
    // Without the policy, everyone is heard.
    c.ok(&["delete", "networkpolicy", "store-in"]);
    c.ok(&["delete", "pod", "stranger", "--wait=true"]);
    c.ok(&["apply", "-f", clients.to_str().unwrap()]);
    let line = asked("stranger");
    assert!(line.ends_with(": HTTP/1.1 200 OK"), "stranger: {line}");
}

/// The Service's pods that answer, of `n` requests from `host`; panics if
/// any request goes unanswered.
fn all_served_by(host: &common::Host, url: &str, n: usize) -> std::collections::BTreeSet<String> {
    let mut seen = std::collections::BTreeSet::new();
    for i in 0..n {
        let out = host.run(&["curl", "-sS", "--max-time", "3", url]);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let Some(pod) = text.split("served by ").nth(1) else {
            let rules = host.run(&["nft", "list", "ruleset"]);
            panic!(
                "request {i} to {url} from {}: {text:?} {out:?}; its nftables:\n{}",
                host.ns,
                String::from_utf8_lossy(&rules.stdout)
            );
        };
        seen.insert(pod.trim().trim_end_matches(')').to_string());
    }
    seen
}

/// A node whose agent falls silent is marked unreachable after the grace
/// period and its pods leave the Service: no request goes to them. When it
/// speaks again, they come back. A Node deleted takes its pods and the
/// other nodes' route to its pod CIDR with it.
#[test]
fn a_silent_or_vanished_node_is_withdrawn() {
    let mut lan = Lan::new();
    let (h1, h2, h3) = (lan.host(1), lan.host(2), lan.host(3));
    // Leases renewed every half second; silent for 3 s is unreachable.
    let lease = ["--node-lease-duration", "2s"];
    let c = Cluster::start_on(
        &h1,
        "vanish",
        &["--node-monitor-grace-period", "3s", lease[0], lease[1]],
    );
    let n2 = c.join_on(&h2, "n2", &lease);
    let n3 = c.join_on(&h3, "n3", &lease);
    for n in [&n2, &n3] {
        n.import(&example("hello-http"), "hello-http:v1");
    }
    let manifest = c.dir.join("web.yaml");
    std::fs::write(
        &manifest,
        pod("web-2", "n2") + "---\n" + &pod("web-3", "n3") + "---\n" + SERVICE,
    )
    .unwrap();
    c.ok(&["apply", "-f", manifest.to_str().unwrap()]);
    running_ip(&c, "web-2");
    running_ip(&c, "web-3");
    let cluster_ip = c.ok(&["get", "svc", "web", "-o", "jsonpath={.spec.clusterIP}"]);
    let by_service = format!("http://{}/", cluster_ip.trim());
    // The ready pods of the Service, as its Endpoints list them.
    let addresses_args = [
        "get",
        "endpoints",
        "web",
        "-o",
        "jsonpath={.subsets[*].addresses[*].targetRef.name}",
    ];
    let addresses = || c.ok(&addresses_args);
    c.wait_for(&addresses_args, "both pods ready", |o| {
        o.contains("web-2") && o.contains("web-3")
    });
    curl_until(&h1, &by_service, "served by web-3");
    let ready =
        |what: &str| format!("jsonpath={{.status.conditions[?(@.type==\"Ready\")].status}}{what}");
    // The agent stops (as a hung machine would): not a byte more from it.
    let signal = |sig: &str| {
        let ok = std::process::Command::new("kill")
            .args([sig, &n3.pid().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill {sig}");
    };
    signal("-STOP");
    c.wait_for(&["get", "node", "n3"], "n3 NotReady", |o| {
        o.contains("NotReady")
    });
    let node = c.ok(&["get", "node", "n3", "-o", &ready(" {.spec.taints[*].key}")]);
    assert!(
        node.starts_with("Unknown ") && node.contains("node.kubernetes.io/unreachable"),
        "{node}"
    );
    c.wait_for(
        &["get", "pod", "web-3", "-o", &ready("")],
        "web-3 not Ready",
        |o| o == "False",
    );
    c.wait_for(&addresses_args, "web-3 out of the Service", |o| {
        o == "web-2"
    });
    // Every node's proxy has it within its programming time.
    std::thread::sleep(Duration::from_millis(500));
    for host in [&h1, &h2] {
        let seen = all_served_by(host, &by_service, 12);
        assert_eq!(
            seen.into_iter().collect::<Vec<_>>(),
            ["web-2"],
            "{}",
            host.ns
        );
    }
    // Back: Ready again, the pod with it, the taint gone.
    signal("-CONT");
    c.wait_for(&["get", "node", "n3", "-o", &ready("")], "n3 Ready", |o| {
        o == "True"
    });
    c.wait_for(
        &["get", "pod", "web-3", "-o", &ready("")],
        "web-3 Ready",
        |o| o == "True",
    );
    c.wait_for(
        &["get", "node", "n3", "-o", "jsonpath={.spec.taints}"],
        "no taints",
        str::is_empty,
    );
    c.wait_for(&addresses_args, "web-3 back", |o| o.contains("web-3"));
    curl_until(&h1, &by_service, "served by web-3");
    // Deleted: its pods go at once, and h2's route to its pod CIDR.
    let cidr = c.ok(&["get", "node", "n3", "-o", "jsonpath={.spec.podCIDR}"]);
    let cidr = cidr.trim().to_string();
    assert!(cidr.starts_with("10.244."), "{cidr}");
    let route_on_h2 = || {
        let out = h2.run(&["ip", "-4", "route", "show", "table", "all", "proto", "83"]);
        String::from_utf8_lossy(&out.stdout).contains(&cidr)
    };
    assert!(route_on_h2());
    drop(n3);
    c.ok(&["delete", "node", "n3"]);
    c.wait_for(&["get", "pods", "-o", "name"], "web-3 deleted", |o| {
        !o.contains("web-3")
    });
    assert_eq!(addresses().trim(), "web-2");
    let started = std::time::Instant::now();
    while route_on_h2() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "h2 still routes {cidr}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(n2);
}

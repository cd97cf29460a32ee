//! A pod reaches the network its spec grants: outgoing connections, but not
//! the node's own services unless it asks for `hostNetwork`.

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;

use common::{Cluster, example, http_get};

/// A tiny HTTP server on every address of the node, standing in for a
/// service of the node (the kubelet, a database on localhost, …).
fn node_service() -> u16 {
    let listener = TcpListener::bind("0.0.0.0:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut s) = conn else { continue };
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf);
            let _ =
                s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok");
        }
    });
    port
}

/// An address of the machine other than loopback, if it has one.
fn other_node_address() -> Option<String> {
    let out = std::process::Command::new("hostname")
        .arg("-I")
        .output()
        .ok()?;
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .find(|a| !a.contains(':'))
        .map(String::from)
}

/// What the HTTP pod behind `node_port` answers when asked to fetch `url`,
/// retried while the NodePort does not answer 200 yet.
fn fetch(node_port: u16, url: &str) -> (u16, String) {
    let mut answer = None;
    for _ in 0..50 {
        answer = http_get(node_port, &format!("/fetch?{url}"));
        if answer.as_ref().is_some_and(|(code, _)| *code == 200) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    answer.expect("the NodePort answers")
}

fn pods_yaml(targets: &str) -> String {
    let mut yaml = String::new();
    for (suffix, host_network) in [("sandboxed", false), ("host", true)] {
        yaml.push_str(&format!(
            r#"---
apiVersion: v1
kind: Pod
metadata: {{name: cmd-{suffix}}}
spec:
  hostNetwork: {host_network}
  restartPolicy: Never
  containers:
  - name: main
    image: hello-cmd:v1
    env:
    - {{name: CONNECT, value: "{targets}"}}
---
apiVersion: v1
kind: Pod
metadata: {{name: web-{suffix}, labels: {{app: web-{suffix}}}}}
spec:
  hostNetwork: {host_network}
  containers:
  - name: main
    image: hello-http:v1
    ports: [{{containerPort: 8080}}]
---
apiVersion: v1
kind: Service
metadata: {{name: web-{suffix}}}
spec:
  type: NodePort
  selector: {{app: web-{suffix}}}
  ports: [{{port: 80, targetPort: 8080}}]
"#
        ));
    }
    yaml
}

#[test]
fn pods_cannot_reach_the_node_unless_granted_host_network() {
    let c = Cluster::start("network");
    c.import(&example("hello-cmd"), "hello-cmd:v1");
    c.import(&example("hello-http"), "hello-http:v1");
    let port = node_service();
    let mut targets = vec![format!("127.0.0.1:{port}")];
    if let Some(addr) = other_node_address() {
        targets.push(format!("{addr}:{port}"));
    }
    let manifest = c.dir.join("network.yaml");
    let url = format!("http://127.0.0.1:{port}/");
    std::fs::write(&manifest, pods_yaml(&targets.join(","))).unwrap();
    c.ok(&["apply", "-f", manifest.to_str().unwrap()]);

    for (pod, allowed) in [("cmd-sandboxed", false), ("cmd-host", true)] {
        let logs = c.wait_for(&["logs", pod], "the connection report", |o| {
            targets.iter().all(|t| o.contains(&format!("connect {t}:")))
        });
        for t in &targets {
            let line = logs
                .lines()
                .find(|l| l.starts_with(&format!("connect {t}:")))
                .unwrap();
            if allowed {
                assert_eq!(line, format!("connect {t}: ok"), "{pod}");
            } else {
                assert!(line.contains("error"), "{pod} reached {t}: {line}");
            }
        }
    }

    for (svc, allowed) in [("web-sandboxed", false), ("web-host", true)] {
        let node_port = c.node_port(svc);
        c.wait_for(
            &["get", "pod", svc, "-o", "jsonpath={.status.phase}"],
            "Running",
            |o| o == "Running",
        );
        let (code, body) = fetch(node_port, &url);
        assert_eq!(code, 200, "{svc}: {body}");
        if allowed {
            assert_eq!(body.trim(), format!("fetch {url}: status 200"), "{svc}");
        } else {
            assert_eq!(
                body.trim(),
                format!("fetch {url}: error: ErrorCode::DestinationIpProhibited"),
                "{svc}"
            );
        }
    }
}

/// A network namespace joined to the machine by a veth pair, holding a
/// server on an address that is not the node's: a stand-in for another
/// machine. Removed on drop.
struct Remote {
    ns: String,
    server: std::process::Child,
    addr: String,
}

impl Remote {
    fn start(port: u16) -> Self {
        let id = std::process::id() % 250 + 1;
        let ns = format!("shoal-remote-{id}");
        let (host_if, ns_if) = (format!("shr{id}a"), format!("shr{id}b"));
        let (host_ip, ns_ip) = (format!("10.213.{id}.1"), format!("10.213.{id}.2"));
        let run = |args: &[&str]| {
            let st = std::process::Command::new("ip")
                .args(args)
                .status()
                .unwrap();
            assert!(st.success(), "ip {args:?}");
        };
        let _ = std::process::Command::new("ip")
            .args(["netns", "del", &ns])
            .status();
        run(&["netns", "add", &ns]);
        run(&[
            "link", "add", &host_if, "type", "veth", "peer", "name", &ns_if,
        ]);
        run(&["link", "set", &ns_if, "netns", &ns]);
        run(&["addr", "add", &format!("{host_ip}/30"), "dev", &host_if]);
        run(&["link", "set", &host_if, "up"]);
        let in_ns = |args: &[&str]| {
            let mut all = vec!["netns", "exec", &ns, "ip"];
            all.extend_from_slice(args);
            run(&all);
        };
        in_ns(&["addr", "add", &format!("{ns_ip}/30"), "dev", &ns_if]);
        in_ns(&["link", "set", &ns_if, "up"]);
        in_ns(&["link", "set", "lo", "up"]);
        let server = std::process::Command::new("ip")
            .args(["netns", "exec", &ns, "python3", "-m", "http.server"])
            .args(["--bind", &ns_ip, &port.to_string()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let addr = format!("{ns_ip}:{port}");
        for _ in 0..50 {
            if std::net::TcpStream::connect(&addr).is_ok() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        Self { ns, server, addr }
    }
}

impl Drop for Remote {
    fn drop(&mut self) {
        let _ = self.server.kill();
        let _ = self.server.wait();
        let _ = std::process::Command::new("ip")
            .args(["netns", "del", &self.ns])
            .status();
    }
}

#[test]
fn pods_reach_other_machines_over_plain_http() {
    let c = Cluster::start("network-remote");
    c.import(&example("hello-http"), "hello-http:v1");
    // The server's address is in another namespace: not one of the node's.
    let remote = Remote::start(common::free_port());
    let manifest = c.dir.join("remote.yaml");
    std::fs::write(&manifest, pods_yaml("")).unwrap();
    c.ok(&["apply", "-f", manifest.to_str().unwrap()]);
    let node_port = c.node_port("web-sandboxed");
    c.wait_for(
        &[
            "get",
            "pod",
            "web-sandboxed",
            "-o",
            "jsonpath={.status.phase}",
        ],
        "Running",
        |o| o == "Running",
    );
    let url = format!("http://{}/", remote.addr);
    let (code, body) = fetch(node_port, &url);
    assert_eq!(code, 200, "{body}");
    assert_eq!(body.trim(), format!("fetch {url}: status 200"));
}

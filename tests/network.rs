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
        let mut answer = None;
        for _ in 0..50 {
            answer = http_get(node_port, &format!("/fetch?{url}"));
            if answer.as_ref().is_some_and(|(code, _)| *code == 200) {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
        let (code, body) = answer.expect("the NodePort answers");
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

//! `kubectl port-forward` to a Wasm pod: an HTTP component's port (served
//! in-process, no socket) and a `wasi:sockets` listener, over kubectl's
//! WebSocket tunnel and over plain SPDY, while curl talks through it; a
//! port nothing serves is the node's clear error; the Python client's
//! WebSocket port-forward. HTTP through the API's `pods/proxy`,
//! `services/proxy` and `nodes/proxy`, with `kubectl get --raw` and
//! `kubectl proxy`.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use common::{Cluster, Lan, example_file, free_port};

const PODS: &str = "apiVersion: v1
kind: Pod
metadata: {name: web, labels: {app: web}}
spec:
  containers:
  - name: web
    image: hello-http:v1
    ports: [{containerPort: 8080, name: http}]
    env: [{name: GREETING, value: forwarded hello}]
---
apiVersion: v1
kind: Pod
metadata: {name: book}
spec:
  containers:
  - name: backend
    image: guestbook-backend:v1
    ports: [{containerPort: 8080}]
    env:
    - name: POD_IP
      valueFrom: {fieldRef: {fieldPath: status.podIP}}
    - {name: PORT, value: '8080'}
    readinessProbe:
      tcpSocket: {port: 8080}
      periodSeconds: 1
---
apiVersion: v1
kind: Service
metadata: {name: websvc}
spec:
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: http}]
";

/// A running `kubectl port-forward`, stopped when dropped.
struct Forward {
    child: Child,
    port: u16,
}

impl Forward {
    /// Forwards a free local port to `remote` of pod `pod`; `spdy` turns
    /// kubectl's WebSocket tunnel off. Returns once kubectl listens.
    fn start(c: &Cluster, pod: &str, remote: u16, spdy: bool) -> Forward {
        let port = free_port();
        let mut child = Command::new("kubectl")
            .args([
                "port-forward",
                &format!("pod/{pod}"),
                &format!("{port}:{remote}"),
            ])
            .env("KUBECONFIG", &c.kubeconfig)
            .env(
                "KUBECTL_PORT_FORWARD_WEBSOCKETS",
                if spdy { "false" } else { "true" },
            )
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let first = lines.next().and_then(Result::ok).unwrap_or_default();
        assert!(
            first.starts_with("Forwarding from 127.0.0.1"),
            "kubectl port-forward said {first:?}"
        );
        // kubectl prints "Handling connection" per connection; keep reading
        // so it never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Forward { child, port }
    }

    /// curl through the forwarded port.
    fn curl(&self, args: &[&str]) -> std::process::Output {
        Command::new("curl")
            .args(["-sS", "--max-time", "20"])
            .args(args)
            .output()
            .unwrap()
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// What kubectl wrote to stderr, once stopped.
    fn stop(mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let mut said = String::new();
        if let Some(mut e) = self.child.stderr.take() {
            let _ = std::io::Read::read_to_string(&mut e, &mut said);
        }
        said
    }
}

impl Drop for Forward {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn text(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn port_forward_reaches_http_components_and_socket_listeners() {
    // A node of its own with pod IPs routed, so the guest listens on its
    // pod's address as on any node.
    let mut lan = Lan::new();
    let host = lan.host(1);
    let c = Cluster::start_on(&host, "port-forward", &[]);
    c.import(&example_file("hello-http/hello-http.wasm"), "hello-http:v1");
    c.import(
        &example_file("guestbook/backend.wasm"),
        "guestbook-backend:v1",
    );
    let manifest = c.dir.join("pods.yaml");
    std::fs::write(&manifest, PODS).unwrap();
    c.ok(&["apply", "-f", manifest.to_str().unwrap()]);
    c.ok(&[
        "wait",
        "--for=condition=Ready",
        "pod/web",
        "pod/book",
        "--timeout=60s",
    ]);

    for spdy in [false, true] {
        // The HTTP component, many requests over one forward, a large
        // request body.
        let f = Forward::start(&c, "web", 8080, spdy);
        for _ in 0..5 {
            let out = f.curl(&[&f.url("/")]);
            assert!(
                text(&out).contains("forwarded hello"),
                "spdy={spdy}: {}",
                text(&out)
            );
        }
        let body = c.dir.join("body");
        std::fs::write(&body, "x".repeat(1 << 20)).unwrap();
        let upload = format!("@{}", body.display());
        let out = f.curl(&[
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--data-binary",
            &upload,
            &f.url("/"),
        ]);
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "200",
            "{}",
            text(&out)
        );

        // The guest's own listener.
        let b = Forward::start(&c, "book", 8080, spdy);
        let entry = format!("entry over spdy={spdy}");
        let out = b.curl(&["--data-binary", &entry, &b.url("/entries")]);
        assert!(text(&out).contains("entries"), "{}", text(&out));
        let out = b.curl(&[&b.url("/entries")]);
        assert!(text(&out).contains(&entry), "{}", text(&out));

        // A port nothing listens on: the node says why, kubectl passes it on.
        let bad = Forward::start(&c, "web", 9999, spdy);
        let out = bad.curl(&[&bad.url("/")]);
        assert!(!out.status.success(), "{}", text(&out));
        let said = bad.stop();
        assert!(
            said.contains("error forwarding port 9999 to pod default/web"),
            "spdy={spdy}: {said}"
        );
    }

    // The API's proxies: to a pod's port, a Service's endpoint, a node.
    let out = c.ok(&[
        "get",
        "--raw",
        "/api/v1/namespaces/default/pods/web:8080/proxy/hello?x=1",
    ]);
    assert!(out.contains("forwarded hello! GET /hello?x=1"), "{out}");
    let out = c.ok(&[
        "get",
        "--raw",
        "/api/v1/namespaces/default/pods/web:http/proxy/",
    ]);
    assert!(out.contains("GET / "), "{out}");
    let out = c.ok(&[
        "get",
        "--raw",
        "/api/v1/namespaces/default/services/websvc:http/proxy/svc",
    ]);
    assert!(out.contains("GET /svc (served by web)"), "{out}");
    let node = c.ok(&["get", "nodes", "-o", "jsonpath={.items[0].metadata.name}"]);
    let out = c.ok(&[
        "get",
        "--raw",
        &format!("/api/v1/nodes/{node}/proxy/healthz"),
    ]);
    assert_eq!(out, "ok");
    let out = c.ok(&[
        "get",
        "--raw",
        &format!("/api/v1/nodes/{node}/proxy/stats/summary"),
    ]);
    assert!(out.contains("\"podRef\""), "{out}");
    let err = c.fails(&[
        "get",
        "--raw",
        "/api/v1/namespaces/default/pods/web:9999/proxy/",
    ]);
    assert!(
        err.contains("error trying to reach pod default/web on port 9999"),
        "{err}"
    );
    // kubectl proxy: any method, with a body.
    let port = free_port();
    let mut proxy = Command::new("kubectl")
        .args(["proxy", &format!("--port={port}")])
        .env("KUBECONFIG", &c.kubeconfig)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(proxy.stdout.take().unwrap()).lines();
    let first = lines.next().and_then(Result::ok).unwrap_or_default();
    assert!(first.starts_with("Starting to serve"), "{first}");
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "20", "--data-binary", "posted"])
        .arg(format!(
            "http://127.0.0.1:{port}/api/v1/namespaces/default/services/websvc/proxy/form"
        ))
        .output()
        .unwrap();
    let _ = proxy.kill();
    let _ = proxy.wait();
    assert!(text(&out).contains("POST /form"), "{}", text(&out));

    // The Python client's port-forward (WebSocket channels).
    let out = Command::new("timeout")
        .args(["120", "python3"])
        .arg(common::repo().join("tests/support/python_portforward.py"))
        .arg(&c.kubeconfig)
        .output()
        .unwrap();
    assert!(
        out.status.success() && text(&out).contains("python port-forward: ok"),
        "{}",
        text(&out)
    );
}

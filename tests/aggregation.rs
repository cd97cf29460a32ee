//! The aggregation layer: an extension API server on another machine of
//! the LAN, reached through a Service, serves `metrics.k8s.io` for the
//! cluster; kubectl's discovery, `get --raw` and `top` reach it through
//! shoal, which names the caller in the front-proxy headers.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use base64::Engine as _;
use common::{Cluster, Lan};
use serde_json::Value;

/// Kills the extension server when the test ends, however it ends.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("running openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA of the extension server's own and its serving certificate for the
/// Service's name.
fn serving_certificate(dir: &Path) {
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let mut ca = vec!["req", "-x509", "-days", "2", "-subj", "/CN=extension-ca"];
    ca.extend(ec);
    ca.extend(["-keyout", "ca.key", "-out", "ca.crt"]);
    openssl(dir, &ca);
    let mut csr = vec!["req", "-subj", "/CN=metrics-ext"];
    csr.extend(ec);
    csr.extend(["-keyout", "srv.key", "-out", "srv.csr"]);
    openssl(dir, &csr);
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=DNS:metrics-ext.kube-system.svc\n",
    )
    .unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-days",
            "2",
            "-in",
            "srv.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-extfile",
            "ext.cnf",
            "-out",
            "srv.crt",
        ],
    );
}

/// The requests the extension server logged for `path`.
fn seen(log: &Path, path: &str) -> Vec<Value> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|r| r["path"] == path)
        .collect()
}

#[test]
fn aggregated_apis_are_proxied_with_the_callers_identity() {
    let mut lan = Lan::new();
    let machine = lan.host(1);
    let c = Cluster::start("aggregation");
    let dir = c.dir.join("extension");
    std::fs::create_dir_all(&dir).unwrap();
    serving_certificate(&dir);

    // What the cluster tells extension servers to trust.
    let cm = c.ok(&[
        "get",
        "configmap",
        "-n",
        "kube-system",
        "extension-apiserver-authentication",
        "-o",
        "json",
    ]);
    let cm_file = dir.join("cm.json");
    std::fs::write(&cm_file, &cm).unwrap();
    let data: Value = serde_json::from_str(&cm).unwrap();
    assert_eq!(
        data["data"]["requestheader-username-headers"],
        r#"["X-Remote-User"]"#
    );
    let client_ca = data["data"]["client-ca-file"].as_str().unwrap();
    let front_ca = data["data"]["requestheader-client-ca-file"]
        .as_str()
        .unwrap();
    assert!(client_ca.contains("BEGIN CERTIFICATE") && front_ca.contains("BEGIN CERTIFICATE"));
    assert_ne!(client_ca, front_ca, "the front proxy has a CA of its own");

    let node = c.ok(&["get", "nodes", "-o", "jsonpath={.items[0].metadata.name}"]);
    let log = dir.join("requests.log");
    let script = common::repo().join("tests/support/extension_apiserver.py");
    let mut child = Command::new("ip")
        .args(["netns", "exec", &machine.ns, "python3"])
        .arg(&script)
        .args([&machine.ip, "8443"])
        .arg(dir.join("srv.crt"))
        .arg(dir.join("srv.key"))
        .arg(&cm_file)
        .arg(&node)
        .arg(&log)
        .stdout(Stdio::piped())
        .spawn()
        .expect("starting the extension server");
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert_eq!(first.trim(), "serving");
    let server = Killed(child);

    let ca_bundle = base64::engine::general_purpose::STANDARD
        .encode(std::fs::read(dir.join("ca.crt")).unwrap());
    let manifest = format!(
        r#"apiVersion: v1
kind: Service
metadata: {{name: metrics-ext, namespace: kube-system}}
spec:
  ports: [{{name: https, port: 443, targetPort: 8443}}]
---
apiVersion: v1
kind: Endpoints
metadata: {{name: metrics-ext, namespace: kube-system}}
subsets:
- addresses: [{{ip: "{ip}"}}]
  ports: [{{name: https, port: 8443}}]
---
apiVersion: apiregistration.k8s.io/v1
kind: APIService
metadata: {{name: v1beta1.metrics.k8s.io}}
spec:
  group: metrics.k8s.io
  version: v1beta1
  groupPriorityMinimum: 100
  versionPriority: 100
  caBundle: {ca_bundle}
  service: {{namespace: kube-system, name: metrics-ext, port: 443}}
"#,
        ip = machine.ip
    );
    let f = dir.join("apiservice.yaml");
    std::fs::write(&f, manifest).unwrap();
    c.ok(&["apply", "-f", f.to_str().unwrap()]);
    c.wait_for(
        &["get", "apiservice", "v1beta1.metrics.k8s.io"],
        "the discovery check to pass",
        |o| o.contains("True"),
    );
    let reason = c.ok(&[
        "get",
        "apiservice",
        "v1beta1.metrics.k8s.io",
        "-o",
        "jsonpath={.status.conditions[0].reason}",
    ]);
    assert_eq!(reason, "Passed");

    // Discovery: the group is listed and its resources are known.
    let groups = c.ok(&["api-versions"]);
    assert!(
        groups.lines().any(|l| l == "metrics.k8s.io/v1beta1"),
        "{groups}"
    );
    let resources = c.wait_for(
        &["api-resources", "--api-group", "metrics.k8s.io"],
        "the aggregated resources in discovery",
        |o| o.contains("NodeMetrics"),
    );
    assert!(resources.contains("PodMetrics"), "{resources}");

    // Requests reach the extension server as the caller.
    let raw = c.ok(&["get", "--raw", "/apis/metrics.k8s.io/v1beta1/nodes"]);
    let list: Value = serde_json::from_str(&raw).unwrap();
    assert_eq!(list["items"][0]["metadata"]["name"], node.as_str());
    assert_eq!(list["items"][0]["usage"]["cpu"], "250m");
    let req = seen(&log, "/apis/metrics.k8s.io/v1beta1/nodes");
    let last = req
        .last()
        .expect("the request reached the extension server");
    assert_eq!(last["user"], "shoal-admin", "{last}");
    let groups: Vec<&str> = last["groups"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(groups, ["system:masters", "system:authenticated"]);

    let top = c.ok(&["top", "node", "--no-headers"]);
    let fields: Vec<&str> = top.split_whitespace().collect();
    assert_eq!(fields[..2], [node.as_str(), "250m"], "{top}");

    // A client cannot name someone else, nor pass its credentials on.
    let pki = c.dir.join("pki");
    let url = format!(
        "https://127.0.0.1:{}/apis/metrics.k8s.io/v1beta1/nodes?spoof=1",
        c.api_port
    );
    let out = Command::new("curl")
        .args(["-sS", "--fail", "--cacert"])
        .arg(pki.join("ca.crt"))
        .arg("--cert")
        .arg(pki.join("admin.crt"))
        .arg("--key")
        .arg(pki.join("admin.key"))
        .args([
            "-H",
            "X-Remote-User: mallory",
            "-H",
            "X-Remote-Group: system:nodes",
            "-H",
            "Authorization: Bearer stolen",
            &url,
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let spoofed = seen(&log, "/apis/metrics.k8s.io/v1beta1/nodes?spoof=1");
    let spoofed = spoofed
        .last()
        .expect("the request reached the extension server");
    assert_eq!(spoofed["user"], "shoal-admin", "{spoofed}");
    assert!(!spoofed.to_string().contains("mallory"), "{spoofed}");
    assert!(!spoofed.to_string().contains("stolen"), "{spoofed}");

    // The backend goes away: the APIService says so, requests get 503.
    drop(server);
    c.wait_for(
        &[
            "get",
            "apiservice",
            "v1beta1.metrics.k8s.io",
            "-o",
            "jsonpath={.status.conditions[0].reason}",
        ],
        "the failed discovery check",
        |o| o == "FailedDiscoveryCheck",
    );
    let err = c.fails(&["get", "--raw", "/apis/metrics.k8s.io/v1beta1/nodes"]);
    assert!(err.contains("ServiceUnavailable"), "{err}");
    // The rest of the API is unaffected.
    c.ok(&["get", "nodes"]);
}

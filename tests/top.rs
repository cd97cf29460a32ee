//! `kubectl top` against shoal: the resource metrics API
//! (`metrics.k8s.io/v1beta1`) made from the nodes' `/stats/summary`, with
//! a pod's CPU from the time its instance actually ran and its memory from
//! the linear memory it holds; an idle pod costs next to nothing. The same
//! through the Python client.

mod common;

use std::process::Command;

use common::{Cluster, example};

const PODS: &str = "apiVersion: v1
kind: Pod
metadata: {name: busy, labels: {app: top}}
spec:
  containers:
  - name: main
    image: hello-cmd:v1
    env: [{name: BUSY_MS, value: '50'}, {name: HOLD_MIB, value: '48'}]
---
apiVersion: v1
kind: Pod
metadata: {name: idle, labels: {app: top}}
spec:
  containers:
  - name: main
    image: hello-cmd:v1
    env: [{name: INTERVAL, value: '3600'}]
";

/// `kubectl top pods` rows: name, millicores, MiB.
fn pods(out: &str) -> Vec<(String, u64, u64)> {
    out.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let cpu = f.get(1)?.strip_suffix('m')?.parse().ok()?;
            let mem = f.get(2)?.strip_suffix("Mi")?.parse().ok()?;
            Some((f[0].to_string(), cpu, mem))
        })
        .collect()
}

#[test]
fn kubectl_top_shows_what_pods_use() {
    let c = Cluster::start("top");
    c.import(&example("hello-cmd"), "hello-cmd:v1");
    let file = c.dir.join("pods.yaml");
    std::fs::write(&file, PODS).unwrap();
    c.ok(&["apply", "-f", file.to_str().unwrap()]);
    c.ok(&[
        "wait",
        "--for=condition=Ready",
        "pod/busy",
        "pod/idle",
        "--timeout=60s",
    ]);

    // The API is discovered as metrics-server's would be.
    let groups = c.ok(&["api-versions"]);
    assert!(groups.contains("metrics.k8s.io/v1beta1"), "{groups}");

    // A rate needs two reads a window apart: wait for the second.
    std::thread::sleep(std::time::Duration::from_secs(3));
    c.ok(&["top", "pods", "--no-headers"]);
    std::thread::sleep(std::time::Duration::from_secs(11));
    let out = c.ok(&["top", "pods", "-l", "app=top", "--no-headers"]);
    let rows = pods(&out);
    let row = |name: &str| {
        rows.iter()
            .find(|r| r.0 == name)
            .unwrap_or_else(|| panic!("{name} in {out}"))
            .clone()
    };
    let (busy, idle) = (row("busy"), row("idle"));
    // Half of each 100 ms computing: about half a core on a quiet machine;
    // a loaded one gives it less.
    assert!(
        (150..=700).contains(&busy.1),
        "busy uses {}m: {out}",
        busy.1
    );
    assert!(idle.1 <= 10, "idle uses {}m: {out}", idle.1);
    assert!(busy.2 >= 48, "busy holds {}Mi: {out}", busy.2);
    assert!(
        idle.2 < busy.2 && idle.2 < 16,
        "idle holds {}Mi: {out}",
        idle.2
    );

    // Containers by name; nodes with their share of allocatable.
    let out = c.ok(&["top", "pod", "busy", "--containers", "--no-headers"]);
    assert!(out.starts_with("busy") && out.contains("main"), "{out}");
    let out = c.ok(&["top", "node", "--no-headers"]);
    let f: Vec<&str> = out.split_whitespace().collect();
    assert!(
        f.len() >= 5 && f[1].ends_with('m') && f[2].ends_with('%') && f[4].ends_with('%'),
        "{out}"
    );
    let err = c.fails(&["top", "pod", "nothere"]);
    assert!(err.contains("not found"), "{err}");

    // The Python client reads the same objects.
    let script = "import sys\nfrom kubernetes import client, config\nconfig.load_kube_config(sys.argv[1])\napi = client.CustomObjectsApi()\npods = api.list_namespaced_custom_object('metrics.k8s.io', 'v1beta1', 'default', 'pods')\nnames = sorted(p['metadata']['name'] for p in pods['items'])\nassert names == ['busy', 'idle'], names\nnodes = api.list_cluster_custom_object('metrics.k8s.io', 'v1beta1', 'nodes')\nassert nodes['items'] and nodes['items'][0]['usage']['cpu'].endswith('n'), nodes\nprint('python metrics: ok')\n";
    let out = Command::new("python3")
        .args(["-c", script])
        .arg(&c.kubeconfig)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("python metrics: ok"), "{text}");
}

//! apps/v1 DaemonSets on two nodes: a pod on each admitted node, a node
//! selector, a rolling update with `set image` and `rollout status`, and
//! node taints for daemon pods and the scheduler.

mod common;

use common::{Cluster, example};

const DAEMONSET: &str = r#"
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: agent}
spec:
  selector: {matchLabels: {app: agent}}
  template:
    metadata: {labels: {app: agent}}
    spec:
      containers: [{name: c, image: hello-cmd:v1}]
"#;

fn nodes_of(c: &Cluster, selector: &str) -> Vec<String> {
    let out = c.ok(&[
        "get",
        "pods",
        "-l",
        selector,
        "-o",
        "jsonpath={.items[*].spec.nodeName}",
    ]);
    let mut nodes: Vec<String> = out.split_whitespace().map(String::from).collect();
    nodes.sort();
    nodes
}

#[test]
fn daemonsets_run_a_pod_per_node() {
    let c = Cluster::start("daemonsets");
    let worker = c.join("worker-2", "127.0.0.3", &[]);
    for (image, name) in [("hello-cmd", "hello-cmd:v1"), ("hello-cmd", "hello-cmd:v2")] {
        c.import(&example(image), name);
        worker.import(&example(image), name);
    }
    c.wait_for(
        &[
            "get",
            "node",
            "worker-2",
            "-o",
            "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}",
        ],
        "worker-2 Ready",
        |s| s == "True",
    );
    let file = c.dir.join("ds.yaml");
    std::fs::write(&file, DAEMONSET).unwrap();
    c.ok(&["apply", "-f", file.to_str().unwrap()]);
    c.ok(&["rollout", "status", "ds/agent", "--timeout=60s"]);
    assert_eq!(nodes_of(&c, "app=agent"), ["shoal", "worker-2"]);
    let row = c.ok(&["get", "ds", "agent", "--no-headers"]);
    let cols: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(
        cols[..7],
        ["agent", "2", "2", "2", "2", "2", "<none>"],
        "{row}"
    );

    // A new image rolls out node by node; every pod ends on the new revision.
    c.ok(&["set", "image", "ds/agent", "c=hello-cmd:v2"]);
    c.ok(&["rollout", "status", "ds/agent", "--timeout=60s"]);
    let images = c.ok(&[
        "get",
        "pods",
        "-l",
        "app=agent",
        "-o",
        "jsonpath={.items[*].spec.containers[0].image}",
    ]);
    assert_eq!(images, "hello-cmd:v2 hello-cmd:v2");
    let hashes = c.ok(&[
        "get",
        "pods",
        "-l",
        "app=agent",
        "-o",
        "jsonpath={.items[*].metadata.labels.controller-revision-hash}",
    ]);
    let hashes: Vec<&str> = hashes.split_whitespace().collect();
    assert!(hashes.len() == 2 && hashes[0] == hashes[1], "{hashes:?}");

    // Each template is a ControllerRevision: history lists both, and undo
    // rolls the first image back out.
    let history = c.ok(&["rollout", "history", "ds/agent"]);
    assert!(
        history.lines().any(|l| l.trim_start().starts_with('1'))
            && history.lines().any(|l| l.trim_start().starts_with('2')),
        "{history}"
    );
    c.ok(&["rollout", "undo", "ds/agent"]);
    c.ok(&["rollout", "status", "ds/agent", "--timeout=60s"]);
    let images = c.ok(&[
        "get",
        "pods",
        "-l",
        "app=agent",
        "-o",
        "jsonpath={.items[*].spec.containers[0].image}",
    ]);
    assert_eq!(images, "hello-cmd:v1 hello-cmd:v1");

    // A node selector narrows it to one node; the other pod goes.
    c.ok(&[
        "patch",
        "ds",
        "agent",
        "--type=merge",
        "-p",
        r#"{"spec":{"template":{"spec":{"nodeSelector":{"kubernetes.io/hostname":"worker-2"}}}}}"#,
    ]);
    c.wait_for(
        &[
            "get",
            "pods",
            "-l",
            "app=agent",
            "-o",
            "jsonpath={.items[*].spec.nodeName}",
        ],
        "one pod, on worker-2",
        |o| o.trim() == "worker-2",
    );
    c.ok(&["rollout", "status", "ds/agent", "--timeout=60s"]);
    assert!(c.ok(&["get", "all"]).contains("daemonset.apps/agent"));

    // Taints: NoExecute removes the daemon pod from worker-2; a pod that
    // does not tolerate it is not scheduled there; removing the taint
    // brings the daemon pod back.
    c.ok(&["taint", "nodes", "worker-2", "dedicated=db:NoExecute"]);
    c.wait_for(
        &["get", "pods", "-l", "app=agent", "-o", "name"],
        "the daemon pod evicted by the taint",
        |o| o.trim().is_empty(),
    );
    let pinned = c.dir.join("pinned.yaml");
    std::fs::write(
        &pinned,
        "apiVersion: v1\nkind: Pod\nmetadata: {name: pinned}\nspec:\n  nodeSelector: {kubernetes.io/hostname: worker-2}\n  containers: [{name: c, image: hello-cmd:v1}]\n",
    )
    .unwrap();
    c.ok(&["apply", "-f", pinned.to_str().unwrap()]);
    c.wait_for(
        &[
            "get",
            "pod",
            "pinned",
            "-o",
            "jsonpath={.status.conditions[?(@.type==\"PodScheduled\")].message}",
        ],
        "the pod left unscheduled",
        |m| m.contains("1 node(s) had untolerated taint {dedicated: db}"),
    );
    c.ok(&["taint", "nodes", "worker-2", "dedicated-"]);
    c.ok(&["rollout", "status", "ds/agent", "--timeout=60s"]);
    assert_eq!(nodes_of(&c, "app=agent"), ["worker-2"]);
    c.wait_for(
        &["get", "pod", "pinned", "-o", "jsonpath={.spec.nodeName}"],
        "the pod scheduled once the taint is gone",
        |n| n == "worker-2",
    );

    c.ok(&["delete", "ds", "agent", "--wait"]);
    c.wait_for(
        &["get", "pods", "-l", "app=agent", "-o", "name"],
        "the pods to go",
        |o| o.trim().is_empty(),
    );
}

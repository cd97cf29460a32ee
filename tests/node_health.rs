//! Nodes lost and nodes drained, as a Kubernetes user meets them: the pods
//! of a node whose agent died are evicted once their toleration of the
//! `unreachable` taint runs out and come back elsewhere through their
//! Deployment; `kubectl drain` evicts a node's pods through the eviction
//! API, held back while a PodDisruptionBudget would be broken. A node
//! under a hard eviction threshold reports the pressure and evicts pods
//! with the kubelet's reason and message.

mod common;

use common::{Cluster, example};

fn deployment(name: &str, replicas: u32, tolerations: &str) -> String {
    format!(
        r#"---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: {name}}}
spec:
  replicas: {replicas}
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec:
      {tolerations}
      containers:
      - {{name: hello, image: "hello-http:v1", ports: [{{containerPort: 8080}}]}}
"#
    )
}

/// The kubectl arguments that list the `web` pods as `node phase` lines.
const WHERE_WEB_RUNS: [&str; 6] = [
    "get",
    "pods",
    "-l",
    "app=web",
    "-o",
    "jsonpath={range .items[*]}{.spec.nodeName} {.status.phase}{\"\\n\"}{end}",
];

/// `name`'s pods as `pod node phase` lines.
fn placement(c: &Cluster, app: &str) -> String {
    c.ok(&[
        "get",
        "pods",
        "-l",
        &format!("app={app}"),
        "-o",
        "jsonpath={range .items[*]}{.metadata.name} {.spec.nodeName} {.status.phase} {.metadata.deletionTimestamp}{\"\\n\"}{end}",
    ])
}

#[test]
fn the_pods_of_a_lost_node_are_evicted_after_their_toleration_and_replaced() {
    let c = Cluster::start_with("lost-node", &["--node-monitor-grace-period", "5s"]);
    let mut worker = c.join("worker-1", "127.0.0.2", &[]);
    c.import(&example("hello-http"), "hello-http:v1");
    worker.import(&example("hello-http"), "hello-http:v1");
    // The pod goes to the worker: the control-plane node takes nothing yet.
    c.ok(&["cordon", "shoal"]);
    let file = c.dir.join("web.yaml");
    std::fs::write(
        &file,
        deployment(
            "web",
            1,
            "tolerations: [{key: node.kubernetes.io/unreachable, operator: Exists, effect: NoExecute, tolerationSeconds: 3}]",
        ),
    )
    .unwrap();
    c.ok(&["apply", "-f", file.to_str().unwrap()]);
    c.ok(&["rollout", "status", "deployment/web", "--timeout=60s"]);
    let first = placement(&c, "web");
    let old = first.split_whitespace().next().unwrap().to_string();
    assert!(first.contains(" worker-1 Running"), "{first}");
    // Admission added the default toleration the pod did not set.
    let tolerations = c.ok(&["get", "pod", &old, "-o", "jsonpath={.spec.tolerations}"]);
    assert!(
        tolerations.contains(
            r#""key":"node.kubernetes.io/not-ready","operator":"Exists","tolerationSeconds":300"#
        ),
        "{tolerations}"
    );

    // The worker's agent dies; the control-plane node may take pods again.
    worker.crash();
    c.ok(&["uncordon", "shoal"]);
    c.wait_for(
        &[
            "get",
            "node",
            "worker-1",
            "-o",
            "jsonpath={.spec.taints[*].key}",
        ],
        "worker-1 to be tainted unreachable",
        |s| s.contains("node.kubernetes.io/unreachable"),
    );
    // Three seconds later the pod is evicted and its replacement runs on
    // the node that is left.
    c.wait_for(&WHERE_WEB_RUNS, "a replacement running on shoal", |s| {
        s.lines().any(|l| l == "shoal Running")
    });
    let reason = c.ok(&[
        "get",
        "pod",
        &old,
        "-o",
        "jsonpath={.status.conditions[?(@.type==\"DisruptionTarget\")].reason}",
    ]);
    assert_eq!(reason, "DeletionByTaintManager");
    let events = c.ok(&[
        "get",
        "events",
        "--field-selector",
        &format!("involvedObject.name={old}"),
        "-o",
        "jsonpath={.items[*].reason}",
    ]);
    assert!(events.contains("TaintManagerEviction"), "{events}");
}

#[test]
fn drain_evicts_a_nodes_pods_within_their_disruption_budget() {
    let c = Cluster::start("drain");
    let worker = c.join("worker-1", "127.0.0.2", &[]);
    c.import(&example("hello-http"), "hello-http:v1");
    worker.import(&example("hello-http"), "hello-http:v1");
    let file = c.dir.join("web.yaml");
    let budget = |min: u32| {
        format!(
            "---\napiVersion: policy/v1\nkind: PodDisruptionBudget\nmetadata: {{name: web}}\nspec:\n  minAvailable: {min}\n  selector: {{matchLabels: {{app: web}}}}\n"
        )
    };
    std::fs::write(&file, deployment("web", 2, "") + &budget(2)).unwrap();
    c.ok(&["apply", "-f", file.to_str().unwrap()]);
    c.ok(&["rollout", "status", "deployment/web", "--timeout=60s"]);
    c.wait_for(
        &[
            "get",
            "pdb",
            "web",
            "-o",
            "jsonpath={.status.currentHealthy} {.status.disruptionsAllowed}",
        ],
        "the budget's figures",
        |s| s == "2 0",
    );
    let pods = placement(&c, "web");
    let node = pods.split_whitespace().nth(1).unwrap().to_string();
    let other = if node == "shoal" { "worker-1" } else { "shoal" };

    // Both replicas must stay: the drain cordons the node but evicts
    // nothing.
    let refused = c.fails(&[
        "drain",
        &node,
        "--ignore-daemonsets",
        "--delete-emptydir-data",
        "--timeout=8s",
    ]);
    assert!(
        refused.contains("Cannot evict pod as it would violate the pod's disruption budget"),
        "{refused}"
    );
    let cordoned = c.ok(&["get", "node", &node, "-o", "jsonpath={.spec.unschedulable}"]);
    assert_eq!(cordoned, "true");
    assert_eq!(placement(&c, "web"), pods, "nothing was evicted");

    // One may go at a time: the drain evicts them one by one, each
    // replacement ready on the other node before the next goes.
    std::fs::write(&file, budget(1)).unwrap();
    c.ok(&["apply", "-f", file.to_str().unwrap()]);
    let out = c.ok(&[
        "drain",
        &node,
        "--ignore-daemonsets",
        "--delete-emptydir-data",
        "--timeout=90s",
    ]);
    assert!(out.contains(&format!("node/{node} drained")), "{out}");
    c.wait_for(&WHERE_WEB_RUNS, "both replicas on the other node", |s| {
        s.lines()
            .filter(|l| *l == format!("{other} Running"))
            .count()
            == 2
            && s.lines().count() == 2
    });
    c.ok(&["uncordon", &node]);
}

#[test]
fn a_node_under_pressure_says_so_and_evicts_its_pods() {
    // A threshold no machine meets: the node is always short of memory.
    let c = Cluster::start_with(
        "pressure",
        &[
            "--eviction-hard",
            "memory.available<1000Ti,nodefs.available<1%",
        ],
    );
    c.import(&example("hello-http"), "hello-http:v1");
    let conditions = |c: &Cluster| {
        c.ok(&[
            "get",
            "nodes",
            "-o",
            "jsonpath={range .items[0].status.conditions[*]}{.type}={.status}/{.reason};{end}",
        ])
    };
    c.wait_for_within(
        60,
        &[
            "get",
            "nodes",
            "-o",
            "jsonpath={.items[0].status.conditions[?(@.type==\"MemoryPressure\")].status}",
        ],
        "memory pressure on the node",
        |o| o == "True",
    );
    let conds = conditions(&c);
    assert!(
        conds.contains("MemoryPressure=True/KubeletHasInsufficientMemory")
            && conds.contains("DiskPressure=False/KubeletHasNoDiskPressure")
            && conds.contains("Ready=True"),
        "{conds}"
    );
    // The condition is a NoSchedule taint: a pod that does not tolerate
    // it is not placed, and says why.
    c.wait_for_within(
        60,
        &[
            "get",
            "nodes",
            "-o",
            "jsonpath={.items[0].spec.taints[*].key}",
        ],
        "the memory-pressure taint",
        |o| {
            o.split(' ')
                .any(|k| k == "node.kubernetes.io/memory-pressure")
        },
    );
    let file = c.dir.join("shy.yaml");
    std::fs::write(&file, deployment("shy", 1, "")).unwrap();
    c.ok(&["apply", "-f", file.to_str().unwrap()]);
    c.wait_for_within(
        60,
        &[
            "get",
            "pods",
            "-l",
            "app=shy",
            "-o",
            "jsonpath={.items[0].status.conditions[?(@.type==\"PodScheduled\")].message}",
        ],
        "the pod left pending by the taint",
        |o| o.contains("untolerated taint {node.kubernetes.io/memory-pressure: }"),
    );
    c.ok(&["delete", "deployment", "shy"]);
    // One that tolerates it runs, and is evicted.
    let file = c.dir.join("web.yaml");
    std::fs::write(
        &file,
        deployment(
            "web",
            1,
            "tolerations: [{key: node.kubernetes.io/memory-pressure, operator: Exists, effect: NoSchedule}]",
        ),
    )
    .unwrap();
    c.ok(&["apply", "-f", file.to_str().unwrap()]);
    let evicted = c.wait_for_within(
        90,
        &[
            "get",
            "pods",
            "-o",
            "jsonpath={range .items[*]}{.status.reason}: {.status.message}{\"\\n\"}{end}",
        ],
        "a pod evicted",
        |o| o.contains("Evicted: "),
    );
    assert!(
        evicted.contains("The node was low on resource: memory."),
        "{evicted}"
    );
    let events = c.ok(&[
        "get",
        "events",
        "--field-selector",
        "reason=Evicted",
        "-o",
        "name",
    ]);
    assert!(!events.trim().is_empty(), "no Evicted event");
    // kubectl shows the pod failed, evicted, its container killed (as
    // kubectl 1.32 shows a kubelet's evicted pod: `Error` in the list).
    let pods = c.ok(&["get", "pods", "-l", "app=web"]);
    assert!(pods.contains("Error"), "{pods}");
    let described = c.ok(&["describe", "pods", "-l", "app=web"]);
    assert!(
        described.contains("Reason:           Evicted") && described.contains("Exit Code:    137"),
        "{described}"
    );
}

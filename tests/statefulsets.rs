//! apps/v1 StatefulSets: stable ordinal names, ordered start, scale down
//! from the top, rolling updates and `rollout status`.

mod common;

use common::{Cluster, example};

const STATEFULSET: &str = r#"
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db}
spec:
  serviceName: db
  replicas: 3
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec:
      containers: [{name: c, image: hello-cmd:v1}]
"#;

fn pod_names(c: &Cluster) -> Vec<String> {
    let out = c.ok(&[
        "get",
        "pods",
        "-l",
        "app=db",
        "-o",
        "jsonpath={.items[*].metadata.name}",
    ]);
    let mut names: Vec<String> = out.split_whitespace().map(String::from).collect();
    names.sort();
    names
}

#[test]
fn statefulsets_keep_ordinal_pods() {
    let c = Cluster::start("statefulsets");
    c.import(&example("hello-cmd"), "hello-cmd:v1");
    c.import(&example("hello-cmd"), "hello-cmd:v2");
    let file = c.dir.join("sts.yaml");
    std::fs::write(&file, STATEFULSET).unwrap();
    c.ok(&["apply", "-f", file.to_str().unwrap()]);
    c.ok(&["rollout", "status", "sts/db", "--timeout=60s"]);
    assert_eq!(pod_names(&c), ["db-0", "db-1", "db-2"]);
    assert_eq!(
        c.ok(&[
            "get",
            "pod",
            "db-1",
            "-o",
            "jsonpath={.spec.hostname}.{.spec.subdomain}"
        ]),
        "db-1.db"
    );
    // Ordered start: each pod was created after the one before it was Ready.
    let events = c.ok(&[
        "get",
        "events",
        "--field-selector",
        "involvedObject.name=db",
        "-o",
        "jsonpath={.items[*].message}",
    ]);
    for i in 0..3 {
        assert!(
            events.contains(&format!("create Pod db-{i} in StatefulSet db successful")),
            "{events}"
        );
    }
    let row = c.ok(&["get", "sts", "db", "--no-headers"]);
    assert!(row.starts_with("db") && row.contains("3/3"), "{row}");

    // A new template replaces the pods, highest ordinal first.
    c.ok(&["set", "image", "sts/db", "c=hello-cmd:v2"]);
    c.ok(&["rollout", "status", "sts/db", "--timeout=90s"]);
    let images = c.ok(&[
        "get",
        "pods",
        "-l",
        "app=db",
        "-o",
        "jsonpath={.items[*].spec.containers[0].image}",
    ]);
    assert_eq!(images, "hello-cmd:v2 hello-cmd:v2 hello-cmd:v2");
    let revisions = c.ok(&[
        "get",
        "sts",
        "db",
        "-o",
        "jsonpath={.status.currentRevision} {.status.updateRevision}",
    ]);
    let (current, update) = revisions.split_once(' ').unwrap();
    assert_eq!(current, update);

    // Both templates are ControllerRevisions; undo brings the first back.
    let history = c.ok(&["rollout", "history", "sts/db"]);
    assert!(
        history.lines().any(|l| l.trim_start().starts_with('2')),
        "{history}"
    );
    c.ok(&["rollout", "undo", "sts/db"]);
    c.ok(&["rollout", "status", "sts/db", "--timeout=90s"]);
    let images = c.ok(&[
        "get",
        "pods",
        "-l",
        "app=db",
        "-o",
        "jsonpath={.items[*].spec.containers[0].image}",
    ]);
    assert_eq!(images, "hello-cmd:v1 hello-cmd:v1 hello-cmd:v1");

    // Scaling down removes the highest ordinals and keeps db-0.
    c.ok(&["scale", "sts/db", "--replicas=1"]);
    c.wait_for(
        &[
            "get",
            "pods",
            "-l",
            "app=db",
            "-o",
            "jsonpath={.items[*].metadata.name}",
        ],
        "only db-0",
        |o| o.trim() == "db-0",
    );
    assert!(c.ok(&["get", "all"]).contains("statefulset.apps/db"));
}

//! `kubectl delete --cascade`: background, foreground and orphan deletion
//! of a Deployment's ReplicaSets and pods.

mod common;

use common::{Cluster, example};

fn count(c: &Cluster, kind: &str, selector: &str) -> usize {
    c.ok(&["get", kind, "-l", selector, "-o", "name"])
        .lines()
        .count()
}

fn deploy(c: &Cluster, name: &str) {
    let manifest = c.dir.join(format!("{name}.yaml"));
    std::fs::write(
        &manifest,
        format!(
            r#"apiVersion: apps/v1
kind: Deployment
metadata: {{name: {name}, labels: {{app: {name}}}}}
spec:
  replicas: 2
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec:
      containers: [{{name: main, image: "hello-cmd:v1"}}]
"#
        ),
    )
    .unwrap();
    c.ok(&["apply", "-f", manifest.to_str().unwrap()]);
    c.ok(&[
        "rollout",
        "status",
        &format!("deployment/{name}"),
        "--timeout=60s",
    ]);
}

#[test]
fn cascade_orphan_and_foreground() {
    let c = Cluster::start("deletion");
    c.import(&example("hello-cmd"), "hello-cmd:v1");

    // Orphan: the Deployment goes, its ReplicaSet and pods stay, no longer
    // owned by it.
    deploy(&c, "kept");
    c.ok(&[
        "delete",
        "deployment",
        "kept",
        "--cascade=orphan",
        "--timeout=10s",
    ]);
    assert!(c.fails(&["get", "deployment", "kept"]).contains("NotFound"));
    std::thread::sleep(std::time::Duration::from_secs(2));
    assert_eq!(count(&c, "replicasets", "app=kept"), 1);
    assert_eq!(count(&c, "pods", "app=kept"), 2);
    let owners = c.ok(&[
        "get",
        "replicasets",
        "-l",
        "app=kept",
        "-o",
        "jsonpath={.items[*].metadata.ownerReferences}",
    ]);
    assert_eq!(owners.trim(), "", "the ReplicaSet has no owner left");
    let pod_owners = c.ok(&[
        "get",
        "pods",
        "-l",
        "app=kept",
        "-o",
        "jsonpath={.items[*].metadata.ownerReferences[*].kind}",
    ]);
    assert_eq!(
        pod_owners.split_whitespace().collect::<Vec<_>>(),
        ["ReplicaSet", "ReplicaSet"]
    );

    // Foreground: once `delete --wait` returns, the ReplicaSet and the pods
    // are already gone.
    deploy(&c, "gone");
    c.ok(&[
        "delete",
        "deployment",
        "gone",
        "--cascade=foreground",
        "--wait=true",
        "--timeout=60s",
    ]);
    assert_eq!(count(&c, "replicasets", "app=gone"), 0);
    assert_eq!(count(&c, "pods", "app=gone"), 0);

    // An unknown policy is refused and deletes nothing.
    deploy(&c, "bad");
    let out = std::process::Command::new("kubectl")
        .env("KUBECONFIG", &c.kubeconfig)
        .args(["delete", "--raw"])
        .arg("/apis/apps/v1/namespaces/default/deployments/bad?propagationPolicy=Sideways")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("Unsupported value"), "{err}");
    c.ok(&["get", "deployment", "bad"]);

    // The orphaned ReplicaSet is now on its own: deleting it in the
    // background takes its pods with it.
    c.ok(&["delete", "replicasets", "-l", "app=kept"]);
    c.wait_for(
        &["get", "pods", "-l", "app=kept", "-o", "name"],
        "pods collected",
        |o| o.trim().is_empty(),
    );
}

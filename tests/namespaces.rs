//! Deleting a namespace deletes what it holds, then the namespace.

mod common;

use common::{Cluster, example};

#[test]
fn namespace_deletion_cascades() {
    let c = Cluster::start("namespaces");
    c.import(&example("hello-cmd"), "hello-cmd:v1");
    let manifest = c.dir.join("ns.yaml");
    std::fs::write(
        &manifest,
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: scratch}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: cm, namespace: scratch}\ndata: {a: b}\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: worker, namespace: scratch}\nspec:\n  containers:\n  - {name: main, image: hello-cmd:v1}\n",
    )
    .unwrap();
    c.ok(&["apply", "-f", manifest.to_str().unwrap()]);
    c.wait_for(
        &["get", "pod", "worker", "-n", "scratch"],
        "worker Running",
        |o| o.contains(" Running "),
    );
    // Every namespace gets the `default` ServiceAccount and the cluster CA.
    c.wait_for(
        &["get", "serviceaccount", "default", "-n", "scratch"],
        "default ServiceAccount",
        |_| true,
    );
    let ca = c.wait_for(
        &[
            "get",
            "configmap",
            "kube-root-ca.crt",
            "-n",
            "scratch",
            "-o",
            "jsonpath={.data.ca\\.crt}",
        ],
        "kube-root-ca.crt",
        |o| o.contains("BEGIN CERTIFICATE"),
    );
    let pki_ca = std::fs::read_to_string(c.dir.join("pki/ca.crt")).unwrap();
    assert_eq!(ca.trim(), pki_ca.trim());
    let out = c.ok(&["delete", "namespace", "scratch", "--timeout=60s"]);
    assert!(out.contains("namespace \"scratch\" deleted"), "{out}");
    assert!(
        c.fails(&["get", "namespace", "scratch"])
            .contains("NotFound")
    );
    assert!(
        c.ok(&["get", "pods", "-A"])
            .lines()
            .all(|l| !l.starts_with("scratch "))
    );
    assert!(
        c.ok(&["get", "configmaps,serviceaccounts", "-A"])
            .lines()
            .all(|l| !l.starts_with("scratch "))
    );
    let err = c.fails(&["delete", "namespace", "default"]);
    assert!(err.contains("Forbidden"), "{err}");
}

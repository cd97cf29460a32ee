//! Paged lists read one snapshot: every page of a `limit`/`continue` list
//! shows the objects as they were when its first page was read, as
//! `resourceVersionMatch=Exact` does; a token from before a restart gets
//! 410 Expired.

mod common;

use common::Cluster;
use serde_json::Value;

fn raw(c: &Cluster, path: &str) -> Value {
    serde_json::from_str(&c.ok(&["get", "--raw", path])).unwrap()
}

fn names(list: &Value) -> Vec<String> {
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["metadata"]["name"].as_str().unwrap().to_string())
        .collect()
}

/// The test's ConfigMaps (the namespace also gets `kube-root-ca.crt`).
const CONFIGMAPS: &str = "/api/v1/namespaces/paging/configmaps?labelSelector=set%3Dpaging";

#[test]
fn pages_of_a_list_come_from_one_snapshot() {
    let mut c = Cluster::start("lists");
    let configmap = |name: &str| {
        let manifest = c.dir.join(format!("{name}.yaml"));
        std::fs::write(
            &manifest,
            format!(
                "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}, namespace: paging, labels: {{set: paging}}}}\ndata: {{v: \"1\"}}\n"
            ),
        )
        .unwrap();
        c.ok(&["apply", "-f", manifest.to_str().unwrap()]);
    };
    let ns = c.dir.join("ns.yaml");
    std::fs::write(
        &ns,
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: paging}\n",
    )
    .unwrap();
    c.ok(&["apply", "-f", ns.to_str().unwrap()]);
    for n in ["a", "b", "c"] {
        configmap(n);
    }
    let first = raw(&c, &format!("{CONFIGMAPS}&limit=1"));
    assert_eq!(names(&first), ["a"]);
    let rv = first["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();
    let token = first["metadata"]["continue"].as_str().unwrap().to_string();

    // Changes after the first page: b modified, c deleted, d created.
    c.ok(&["-n", "paging", "label", "configmap", "b", "changed=yes"]);
    c.ok(&["-n", "paging", "delete", "configmap", "c"]);
    configmap("d");

    let rest = raw(&c, &format!("{CONFIGMAPS}&limit=10&continue={token}"));
    assert_eq!(names(&rest), ["b", "c"], "the snapshot of the first page");
    assert_eq!(rest["metadata"]["resourceVersion"], rv.as_str());
    assert!(
        rest["items"][0]["metadata"]["labels"]["changed"].is_null(),
        "b as it was"
    );
    assert!(rest["metadata"]["continue"].is_null(), "the last page");

    let exact = raw(
        &c,
        &format!("{CONFIGMAPS}&resourceVersionMatch=Exact&resourceVersion={rv}"),
    );
    assert_eq!(names(&exact), ["a", "b", "c"]);
    let now = raw(&c, CONFIGMAPS);
    assert_eq!(names(&now), ["a", "b", "d"]);

    // kubectl pages through the current state.
    let chunked = c.ok(&[
        "-n",
        "paging",
        "get",
        "configmaps",
        "-l",
        "set=paging",
        "--chunk-size=1",
        "-o",
        "name",
    ]);
    assert_eq!(
        chunked.lines().collect::<Vec<_>>(),
        ["configmap/a", "configmap/b", "configmap/d"]
    );

    let err = c.fails(&[
        "get",
        "--raw",
        &format!("{CONFIGMAPS}&continue=not-a-token"),
    ]);
    assert!(err.contains("invalid continue token"), "{err}");
    let future: u64 = now["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let err = c.fails(&[
        "get",
        "--raw",
        &format!(
            "{CONFIGMAPS}&resourceVersionMatch=Exact&resourceVersion={}",
            future + 1000
        ),
    ]);
    assert!(err.contains("Too large resource version"), "{err}");

    // After a restart the changes before it are gone: the token expires.
    c.stop();
    c.boot();
    let err = c.fails(&[
        "get",
        "--raw",
        &format!("{CONFIGMAPS}&limit=10&continue={token}"),
    ]);
    assert!(
        err.contains("too old to display a consistent list"),
        "{err}"
    );
    assert_eq!(names(&raw(&c, CONFIGMAPS)), ["a", "b", "d"]);
}

//! LimitRanges and ResourceQuotas enforced at admission, as a namespace's
//! administrator sets them: containers get the defaults a LimitRange
//! gives, pods outside its range are refused, and creates past a quota
//! are refused with Kubernetes' message while its status reports usage.

mod common;

use common::Cluster;

#[test]
fn limit_ranges_default_and_bound_pods_and_quotas_refuse_what_they_cannot_hold() {
    let c = Cluster::start("quotas");
    let f = c.dir.join("policy.yaml");
    std::fs::write(
        &f,
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: team}\n---\napiVersion: v1\nkind: LimitRange\nmetadata: {name: limits, namespace: team}\nspec:\n  limits:\n  - type: Container\n    default: {cpu: 200m, memory: 64Mi}\n    defaultRequest: {cpu: 100m}\n    max: {memory: 256Mi}\n---\napiVersion: v1\nkind: ResourceQuota\nmetadata: {name: compute, namespace: team}\nspec:\n  hard: {pods: \"2\", requests.cpu: 250m, configmaps: \"3\"}\n",
    )
    .unwrap();
    c.ok(&["apply", "-f", f.to_str().unwrap()]);

    // Defaults from the LimitRange, noted on the pod.
    c.ok(&["run", "a", "-n", "team", "--image=hello-cmd:v1"]);
    let resources = c.ok(&[
        "get",
        "pod",
        "a",
        "-n",
        "team",
        "-o",
        "jsonpath={.spec.containers[0].resources}",
    ]);
    let resources: serde_json::Value = serde_json::from_str(&resources).unwrap();
    assert_eq!(
        resources,
        serde_json::json!({"limits": {"cpu": "200m", "memory": "64Mi"},
            "requests": {"cpu": "100m", "memory": "64Mi"}})
    );
    let note = c.ok(&[
        "get",
        "pod",
        "a",
        "-n",
        "team",
        "-o",
        "jsonpath={.metadata.annotations.kubernetes\\.io/limit-ranger}",
    ]);
    assert!(
        note.starts_with("LimitRanger plugin set: cpu, memory request for container a"),
        "{note}"
    );

    // Outside the range: refused in Kubernetes' words.
    let err = c.fails(&["run", "big", "-n", "team", "--image=hello-cmd:v1",
        "--overrides={\"spec\": {\"containers\": [{\"name\": \"big\", \"image\": \"hello-cmd:v1\", \"resources\": {\"limits\": {\"memory\": \"512Mi\"}}}]}}"]);
    assert!(
        err.contains("pods \"big\" is forbidden: [maximum memory usage per Container is 256Mi, but limit is 512Mi]"),
        "{err}"
    );

    // The quota holds two pods and 250m of requested CPU.
    c.ok(&["run", "b", "-n", "team", "--image=hello-cmd:v1"]);
    let err = c.fails(&["run", "c", "-n", "team", "--image=hello-cmd:v1"]);
    assert!(
        err.contains("pods \"c\" is forbidden: exceeded quota: compute, requested: pods=1,requests.cpu=100m, used: pods=2,requests.cpu=200m, limited: pods=2,requests.cpu=250m"),
        "{err}"
    );
    // Object counts too, and the status reports what is used.
    for name in ["one", "two"] {
        c.ok(&["create", "configmap", name, "-n", "team"]);
    }
    let err = c.fails(&["create", "configmap", "three", "-n", "team"]);
    assert!(err.contains("exceeded quota: compute, requested: configmaps=1, used: configmaps=3, limited: configmaps=3"), "{err}");
    c.wait_for(
        &[
            "get",
            "resourcequota",
            "compute",
            "-n",
            "team",
            "-o",
            "jsonpath={.status.used}",
        ],
        "the quota's usage",
        |s| s.contains("\"pods\":\"2\"") && s.contains("\"requests.cpu\":\"200m\""),
    );
    // A finished pod's share comes back.
    c.ok(&["delete", "pod", "b", "-n", "team", "--wait=false"]);
    c.wait_for(
        &["get", "pods", "-n", "team", "-o", "name"],
        "b gone",
        |s| !s.contains("pod/b"),
    );
    c.ok(&["run", "c", "-n", "team", "--image=hello-cmd:v1"]);
}

//! Encoding objects as JSON: in Go's field order (`gotypes::json`, what
//! the store and responses use) against serde_json's sorted keys, for one
//! pod as a Deployment makes it and a list of 1,000. Prints the median of
//! ROUNDS rounds of each and the ratio.
//!
//! `cargo bench -p shoal-apiserver --bench encode`

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use shoal_wire::gotypes;

fn pod(i: usize) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": format!("web-5d4f8-{i:05}"), "generateName": "web-5d4f8-", "namespace": "default",
            "uid": format!("6f1c9a52-7d0e-4c1b-9a3e-{i:012}"), "resourceVersion": format!("{}", 1000 + i),
            "creationTimestamp": "2026-12-01T10:00:00Z", "labels": {"app": "web", "pod-template-hash": "5d4f8"},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-5d4f8",
                "uid": "0b8e2f9c-1111-2222-3333-444455556666", "controller": true, "blockOwnerDeletion": true}],
            "managedFields": [{"manager": "kube-controller-manager", "operation": "Update", "apiVersion": "v1",
                "time": "2026-12-01T10:00:00Z", "fieldsType": "FieldsV1",
                "fieldsV1": {"f:metadata": {"f:labels": {".": {}, "f:app": {}}}}}]},
        "spec": {"containers": [{"name": "web", "image": "hello-http:v1",
                "ports": [{"containerPort": 8080, "protocol": "TCP"}],
                "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}},
                "terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File",
                "imagePullPolicy": "IfNotPresent"}],
            "restartPolicy": "Always", "terminationGracePeriodSeconds": 30, "dnsPolicy": "ClusterFirst",
            "serviceAccountName": "default", "nodeName": "node-1", "schedulerName": "default-scheduler",
            "enableServiceLinks": true, "preemptionPolicy": "PreemptLowerPriority", "priority": 0,
            "tolerations": [{"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}]},
        "status": {"phase": "Running", "podIP": "10.244.0.5", "podIPs": [{"ip": "10.244.0.5"}], "hostIP": "10.0.0.1",
            "startTime": "2026-12-01T10:00:01Z", "qosClass": "Burstable",
            "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": "2026-12-01T10:00:02Z"}],
            "containerStatuses": [{"name": "web", "ready": true, "started": true, "restartCount": 0,
                "image": "hello-http:v1", "imageID": "sha256:abc", "containerID": "wasm://abc",
                "state": {"running": {"startedAt": "2026-12-01T10:00:02Z"}}}]}})
}

fn median(f: impl Fn() -> usize, rounds: usize) -> (Duration, usize) {
    let mut times = Vec::new();
    let mut bytes = 0;
    for _ in 0..rounds {
        let t = Instant::now();
        bytes = f();
        times.push(t.elapsed());
    }
    times.sort();
    (times[times.len() / 2], bytes)
}

fn main() {
    let rounds: usize = std::env::var("ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let one = pod(1);
    let items: Vec<Value> = (0..1000).map(pod).collect();
    let list = json!({"kind": "PodList", "apiVersion": "v1", "metadata": {"resourceVersion": "9"}, "items": items});
    // Both encodings hold the same object.
    let ordered = gotypes::json::to_vec(&list);
    assert_eq!(serde_json::from_slice::<Value>(&ordered).unwrap(), list);
    for (what, v, n) in [("one pod", &one, 1000), ("a list of 1,000 pods", &list, 1)] {
        let (sorted, size) = median(
            || (0..n).map(|_| serde_json::to_vec(v).unwrap().len()).sum(),
            rounds,
        );
        let (go, _) = median(
            || (0..n).map(|_| gotypes::json::to_vec(v).len()).sum(),
            rounds,
        );
        let per = |d: Duration| d.as_secs_f64() * 1e6 / n as f64;
        println!(
            "{what} ({} bytes): serde_json sorted {:.1} µs, Go order {:.1} µs, ratio {:.2}×",
            size / n,
            per(sorted),
            per(go),
            go.as_secs_f64() / sorted.as_secs_f64()
        );
    }
}

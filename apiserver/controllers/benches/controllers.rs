//! One controller pass over a large snapshot: 10,000 pods in 100
//! namespaces, each with a ReplicaSet of 100 pods, a Service selecting them
//! and a ResourceQuota. Prints the median time of each reconcile.
//!
//! `cargo bench -p shoal-apiserver --bench controllers`

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use shoal_controllers::{
    self as controllers, Dirty, Snapshot, reconcile_endpoints, reconcile_jobs, reconcile_quotas,
    reconcile_replicasets, reconcile_statefulsets,
};

fn snapshot(namespaces: usize, pods_each: usize) -> Snapshot {
    let (mut pods, mut sets, mut services, mut quotas) = (vec![], vec![], vec![], vec![]);
    for n in 0..namespaces {
        let ns = format!("ns-{n}");
        let uid = format!("rs-{n}");
        sets.push(json!({"apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": "web", "namespace": ns, "uid": uid, "generation": 1},
            "spec": {"replicas": pods_each, "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}},
            "status": {"replicas": pods_each, "fullyLabeledReplicas": pods_each, "readyReplicas": pods_each,
                "availableReplicas": pods_each, "observedGeneration": 1}}));
        services.push(
            json!({"metadata": {"name": "web", "namespace": ns, "uid": format!("svc-{n}")},
            "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]}}),
        );
        quotas.push(
            json!({"metadata": {"name": "q", "namespace": ns, "uid": format!("q-{n}")},
            "spec": {"hard": {"pods": "1000", "requests.cpu": "100"}}}),
        );
        for p in 0..pods_each {
            pods.push(json!({"metadata": {"name": format!("web-{p}"), "namespace": ns, "uid": format!("p-{n}-{p}"),
                "labels": {"app": "web"}, "ownerReferences": [{"uid": uid, "controller": true, "kind": "ReplicaSet"}]},
                "spec": {"nodeName": "node", "containers": [{"name": "c", "resources": {"requests": {"cpu": "10m"}}}]},
                "status": {"phase": "Running", "podIP": format!("10.{n}.{}.{}", p / 250, p % 250),
                    "conditions": [{"type": "Ready", "status": "True"}]}}));
        }
    }
    let tagged = |plural: &'static str, v: Vec<Value>| v.into_iter().map(move |o| (plural, o));
    Snapshot::of_objects(
        tagged("pods", pods)
            .chain(tagged("replicasets", sets))
            .chain(tagged("services", services))
            .chain(tagged("resourcequotas", quotas)),
    )
}

/// The median time of `f` over fresh snapshots (each pass of the
/// controller loop reads a new one, so no index carries over); `dirty`
/// names the one namespace that changed since the last pass, if not all.
fn median(name: &str, dirty: Option<&str>, f: impl Fn(&Snapshot) -> usize) {
    const RUNS: usize = 15;
    let snapshots: Vec<Snapshot> = (0..RUNS)
        .map(|_| {
            let mut s = snapshot(100, 100);
            s.dirty = dirty.map(|ns| Dirty::namespaces([ns]));
            s
        })
        .collect();
    let mut times: Vec<Duration> = snapshots
        .iter()
        .map(|s| {
            let t = Instant::now();
            std::hint::black_box(f(s));
            t.elapsed()
        })
        .collect();
    times.sort();
    println!("{name:<32} median {:>9.2?}", times[RUNS / 2]);
}

fn main() {
    let now = jiff::Timestamp::now();
    println!("one controller pass over 10,000 pods in 100 namespaces");
    median("replicasets", None, |s| reconcile_replicasets(s).len());
    median("endpoints", None, |s| reconcile_endpoints(s).len());
    median("quotas", None, |s| reconcile_quotas(s).len());
    median("jobs", None, |s| reconcile_jobs(s, now).len());
    median("statefulsets", None, |s| reconcile_statefulsets(s).len());
    median("garbage", None, |s| controllers::reconcile_garbage(s).len());
    let all = |s: &Snapshot| {
        reconcile_replicasets(s).len()
            + reconcile_endpoints(s).len()
            + reconcile_quotas(s).len()
            + reconcile_jobs(s, now).len()
            + reconcile_statefulsets(s).len()
    };
    median("all but garbage, everything new", None, all);
    // The usual pass: a pod changed, so one namespace is dirty (garbage
    // collection runs only after deletions).
    median("all but garbage, one namespace", Some("ns-7"), all);
}

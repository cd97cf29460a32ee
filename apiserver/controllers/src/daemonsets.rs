//! DaemonSets: one pod on every node the template's `nodeSelector` admits,
//! replaced node by node within `maxUnavailable` when the template changes.

use serde_json::{Value, json};

use super::revisions::REVISION_LABEL;
use super::{
    Action, Snapshot, active, int, owner_ref, pod_ready, res, status_patch, template_hash,
    terminating,
};
use shoal_machinery::meta::{self, str_at};

/// Whether `node` is one the DaemonSet's pods belong on.
/// Whether a DaemonSet's pod belongs on `node`: its selector and node
/// affinity match and the node has no taint its tolerations miss. A
/// running pod stays through a `NoSchedule` taint (`running`); only
/// `NoExecute` ones remove it, as in Kubernetes.
fn admits(ds: &Value, node: &Value, running: bool) -> bool {
    if terminating(node) {
        return false;
    }
    let spec = ds.pointer("/spec/template/spec").unwrap_or(&Value::Null);
    let tolerations = with_daemon_tolerations(spec.get("tolerations"));
    let effects: &[&str] = if running {
        &["NoExecute"]
    } else {
        &["NoSchedule", "NoExecute"]
    };
    shoal_scheduler::node_matches(spec, node)
        && shoal_scheduler::untolerated_taint(Some(&tolerations), node, effects).is_none()
}

/// A template's tolerations with those Kubernetes gives every daemon pod,
/// so that it keeps running on a node that is not ready, unreachable,
/// under pressure or cordoned.
fn with_daemon_tolerations(tolerations: Option<&Value>) -> Value {
    let mut all: Vec<Value> = tolerations
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for (key, effect) in [
        ("node.kubernetes.io/not-ready", "NoExecute"),
        ("node.kubernetes.io/unreachable", "NoExecute"),
        ("node.kubernetes.io/disk-pressure", "NoSchedule"),
        ("node.kubernetes.io/memory-pressure", "NoSchedule"),
        ("node.kubernetes.io/pid-pressure", "NoSchedule"),
        ("node.kubernetes.io/unschedulable", "NoSchedule"),
    ] {
        if !all.iter().any(|t| t["key"] == key && t["effect"] == effect) {
            all.push(json!({"key": key, "operator": "Exists", "effect": effect}));
        }
    }
    Value::Array(all)
}

/// Creates, replaces and removes each DaemonSet's pods, one per node.
pub fn reconcile_daemonsets(s: &Snapshot) -> Vec<Action> {
    let (ds_r, pod_r) = (res("DaemonSet", "apps"), res("Pod", ""));
    let mut actions = Vec::new();
    for ds in s.of("daemonsets") {
        if terminating(ds) {
            continue;
        }
        let (ns, name, uid) = (meta::namespace(ds), meta::name(ds), meta::uid(ds));
        let template = ds.pointer("/spec/template").cloned().unwrap_or(json!({}));
        let hash = template_hash(&template);
        actions.extend(super::revisions::keep(
            s,
            ds,
            "DaemonSet",
            &format!("{name}-{hash}"),
            &hash,
        ));
        let pods: Vec<&Value> = s
            .controlled("pods", ns, uid)
            .filter(|p| active(p))
            .collect();
        let on = |node: &str| -> Vec<&Value> {
            pods.iter()
                .copied()
                .filter(|p| str_at(p, "/spec/nodeName") == Some(node))
                .collect()
        };
        let nodes: Vec<&str> = s
            .of("nodes")
            .iter()
            .filter(|n| admits(ds, n, false))
            .map(|n| meta::name(n))
            .collect();
        let rolling =
            str_at(ds, "/spec/updateStrategy/type").unwrap_or("RollingUpdate") == "RollingUpdate";
        let max_unavailable = super::percent(
            ds.pointer("/spec/updateStrategy/rollingUpdate/maxUnavailable"),
            nodes.len() as i64,
            true,
        )
        .max(1);

        let (mut current, mut ready, mut updated, mut available) = (0, 0, 0, 0);
        let mut unavailable = 0;
        let mut outdated = Vec::new();
        let mut created = 0;
        for node in &nodes {
            let mine = on(node);
            match mine.as_slice() {
                [] => {
                    let mut pod = template.clone();
                    let m = meta::metadata(&mut pod);
                    m.insert("generateName".into(), json!(format!("{name}-")));
                    m.insert("namespace".into(), json!(ns));
                    m.insert("ownerReferences".into(), owner_ref(ds, "DaemonSet"));
                    m.remove("name");
                    let labels = m.entry("labels").or_insert_with(|| json!({}));
                    labels[REVISION_LABEL] = json!(hash);
                    pod["apiVersion"] = json!("v1");
                    pod["kind"] = json!("Pod");
                    pod["spec"]["nodeName"] = json!(node);
                    pod["spec"]["tolerations"] =
                        with_daemon_tolerations(pod.pointer("/spec/tolerations"));
                    pod["spec"]["affinity"] = json!({"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
                        "nodeSelectorTerms": [{"matchFields": [{"key": "metadata.name", "operator": "In", "values": [node]}]}]}}});
                    actions.push(Action::Create {
                        resource: pod_r,
                        namespace: ns.to_string(),
                        object: pod,
                    });
                    created += 1;
                    unavailable += 1;
                }
                [first, extra @ ..] => {
                    current += 1;
                    for p in extra {
                        actions.push(Action::Delete {
                            resource: pod_r,
                            namespace: ns.to_string(),
                            name: meta::name(p).to_string(),
                        });
                    }
                    let is_ready = pod_ready(first);
                    ready += i64::from(is_ready);
                    available += i64::from(is_ready);
                    unavailable += i64::from(!is_ready);
                    if str_at(first, &format!("/metadata/labels/{REVISION_LABEL}"))
                        == Some(hash.as_str())
                    {
                        updated += 1;
                    } else {
                        outdated.push((*first, is_ready));
                    }
                }
            }
        }
        if created > 0 {
            actions.push(Action::Event {
                object: (**ds).clone(),
                reason: "SuccessfulCreate",
                message: format!("Created {created} pod(s)"),
            });
        }
        // Pods on nodes the DaemonSet no longer admits.
        let keep: Vec<&str> = s
            .of("nodes")
            .iter()
            .filter(|n| admits(ds, n, true))
            .map(|n| meta::name(n))
            .collect();
        let misscheduled: Vec<&&Value> = pods
            .iter()
            .filter(|p| str_at(p, "/spec/nodeName").is_none_or(|n| !keep.contains(&n)))
            .collect();
        for p in &misscheduled {
            actions.push(Action::Delete {
                resource: pod_r,
                namespace: ns.to_string(),
                name: meta::name(p).to_string(),
            });
        }
        // A rolling update replaces outdated pods, not-ready ones first,
        // while no more than maxUnavailable nodes lack a ready pod.
        if rolling {
            outdated.sort_by_key(|(_, is_ready)| *is_ready);
            let mut budget = max_unavailable - unavailable;
            for (p, is_ready) in outdated {
                if is_ready && budget <= 0 {
                    break;
                }
                if is_ready {
                    budget -= 1;
                }
                actions.push(Action::Delete {
                    resource: pod_r,
                    namespace: ns.to_string(),
                    name: meta::name(p).to_string(),
                });
            }
        }

        let desired = nodes.len() as i64;
        let status = json!({
            "desiredNumberScheduled": desired, "currentNumberScheduled": current,
            "numberMisscheduled": misscheduled.len(), "numberReady": ready,
            "updatedNumberScheduled": updated, "numberAvailable": available,
            "numberUnavailable": desired - available,
            "observedGeneration": int(ds, "/metadata/generation"),
        });
        actions.extend(status_patch(ds_r, ds, status));
    }
    actions
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{created, deleted, snap, status};
    use super::*;

    fn with(ds: Value, nodes: &[(&str, &str)], pods: Vec<Value>) -> Snapshot {
        let mut items = vec![("daemonsets", ds)];
        for (n, zone) in nodes {
            items.push((
                "nodes",
                json!({"metadata": {"name": n, "labels": {"zone": zone}}}),
            ));
        }
        items.extend(pods.into_iter().map(|p| ("pods", p)));
        snap(&items)
    }

    fn created_on(actions: &[Action]) -> Vec<&str> {
        created(actions)
            .iter()
            .filter_map(|p| p["spec"]["nodeName"].as_str())
            .collect()
    }

    fn ds(image: &str, node_selector: Value) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "DaemonSet",
            "metadata": {"name": "agent", "namespace": "d", "uid": "ds-uid", "generation": 1},
            "spec": {"selector": {"matchLabels": {"app": "agent"}},
                "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1}},
                "template": {"metadata": {"labels": {"app": "agent"}},
                    "spec": {"nodeSelector": node_selector, "containers": [{"name": "c", "image": image}]}}}})
    }

    fn pod(name: &str, node: &str, hash: &str, ready: bool) -> Value {
        json!({"metadata": {"name": name, "namespace": "d", "labels": {REVISION_LABEL: hash},
            "ownerReferences": [{"uid": "ds-uid", "controller": true}]},
            "spec": {"nodeName": node},
            "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]}})
    }

    #[test]
    fn one_pod_per_admitted_node() {
        let d = ds("a:v1", json!({"zone": "east"}));
        let s = with(
            d.clone(),
            &[("n1", "east"), ("n2", "west"), ("n3", "east")],
            vec![],
        );
        let a = reconcile_daemonsets(&s);
        assert_eq!(created_on(&a), ["n1", "n3"]);
        let hash = template_hash(&d["spec"]["template"]);
        // A pod on a node that no longer matches goes; a second pod on one
        // node goes.
        let pods = vec![
            pod("p1", "n1", &hash, true),
            pod("p1b", "n1", &hash, true),
            pod("p2", "n2", &hash, true),
            pod("p3", "n3", &hash, true),
        ];
        let a = reconcile_daemonsets(&with(
            d,
            &[("n1", "east"), ("n2", "west"), ("n3", "east")],
            pods,
        ));
        assert!(created_on(&a).is_empty());
        assert_eq!(deleted(&a), ["pods/p1b", "pods/p2"]);
    }

    #[test]
    fn taints_keep_new_pods_away_and_no_execute_removes_them() {
        let d = ds("a:v1", json!({}));
        let hash = template_hash(&d["spec"]["template"]);
        let taint = |effect: &str| {
            json!({"metadata": {"name": "n2", "labels": {}},
            "spec": {"taints": [{"key": "dedicated", "value": "db", "effect": effect}]}})
        };
        let node1 = json!({"metadata": {"name": "n1", "labels": {}}});
        let snapshot = |ds: &Value, n2: Value, pods: Vec<Value>| {
            let mut items = vec![
                ("daemonsets", ds.clone()),
                ("nodes", node1.clone()),
                ("nodes", n2),
            ];
            items.extend(pods.into_iter().map(|p| ("pods", p)));
            snap(&items)
        };
        // NoSchedule: no pod is made for n2, and every daemon pod tolerates
        // the node conditions.
        let actions = reconcile_daemonsets(&snapshot(&d, taint("NoSchedule"), vec![]));
        assert_eq!(created_on(&actions), ["n1"]);
        let made = created(&actions);
        let daemon = made.iter().find(|o| o["kind"] == "Pod").unwrap();
        let tolerations = &daemon["spec"]["tolerations"];
        assert!(
            tolerations
                .as_array()
                .unwrap()
                .iter()
                .any(|t| t["key"] == "node.kubernetes.io/not-ready")
        );
        // A pod already on n2 stays through NoSchedule, goes with NoExecute.
        let on_n2 = || vec![pod("p1", "n1", &hash, true), pod("p2", "n2", &hash, true)];
        assert!(
            deleted(&reconcile_daemonsets(&snapshot(
                &d,
                taint("NoSchedule"),
                on_n2()
            )))
            .is_empty()
        );
        assert_eq!(
            deleted(&reconcile_daemonsets(&snapshot(
                &d,
                taint("NoExecute"),
                on_n2()
            ))),
            ["pods/p2"]
        );
        // A toleration in the template admits n2.
        let mut tolerant = d.clone();
        tolerant["spec"]["template"]["spec"]["tolerations"] =
            json!([{"key": "dedicated", "operator": "Exists"}]);
        let actions = reconcile_daemonsets(&snapshot(&tolerant, taint("NoExecute"), vec![]));
        assert_eq!(created_on(&actions), ["n1", "n2"]);
    }

    #[test]
    fn a_new_template_replaces_pods_within_max_unavailable() {
        let old = template_hash(&ds("a:v1", json!({}))["spec"]["template"]);
        let d = ds("a:v2", json!({}));
        let nodes = [("n1", "x"), ("n2", "x"), ("n3", "x")];
        let pods = vec![
            pod("p1", "n1", &old, true),
            pod("p2", "n2", &old, true),
            pod("p3", "n3", &old, true),
        ];
        let a = reconcile_daemonsets(&with(d.clone(), &nodes, pods));
        assert_eq!(deleted(&a).len(), 1, "one node at a time");
        // While one node has no ready pod, nothing else is replaced.
        let new = template_hash(&d["spec"]["template"]);
        let pods = vec![
            pod("p1", "n1", &new, false),
            pod("p2", "n2", &old, true),
            pod("p3", "n3", &old, true),
        ];
        let a = reconcile_daemonsets(&with(d, &nodes, pods));
        assert!(deleted(&a).is_empty());
        let st = status(&a);
        assert_eq!(st["updatedNumberScheduled"], 1);
        assert_eq!(st["numberReady"], 2);
        assert_eq!(st["desiredNumberScheduled"], 3);
    }
}

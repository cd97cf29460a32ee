//! ReplicaSets (and ReplicationControllers): as many pods of the template
//! as `replicas` asks, the newest and least ready removed first.

use serde_json::{Value, json};

use super::{Action, Snapshot, active, int, owner_ref, pod_ready, res, status_patch, terminating};
use shoal_machinery::meta::{self, str_at};
use shoal_registry::resources::Resource;

/// Keeps each ReplicaSet's and ReplicationController's pod count at its
/// replicas and its status true.
pub fn reconcile_replicasets(s: &Snapshot) -> Vec<Action> {
    let mut actions = replicate(s, res("ReplicaSet", "apps"));
    actions.extend(replicate(s, res("ReplicationController", "")));
    actions
}

fn replicate(s: &Snapshot, rs_r: &'static Resource) -> Vec<Action> {
    let pod_r = res("Pod", "");
    let mut actions = Vec::new();
    for rs in s.of(rs_r.plural) {
        if terminating(rs) {
            continue;
        }
        let (ns, uid) = (meta::namespace(rs), meta::uid(rs));
        if !s.is_dirty(ns) {
            continue;
        }
        let mut owned: Vec<&Value> = s
            .controlled("pods", ns, uid)
            .filter(|p| active(p))
            .collect();
        let want = int(rs, "/spec/replicas");
        let have = owned.len() as i64;
        if have < want {
            for _ in have..want {
                let mut tmpl = rs.pointer("/spec/template").cloned().unwrap_or(json!({}));
                let m = meta::metadata(&mut tmpl);
                m.insert("generateName".into(), json!(format!("{}-", meta::name(rs))));
                m.insert("namespace".into(), json!(ns));
                m.insert("ownerReferences".into(), owner_ref(rs, rs_r.kind));
                m.remove("name");
                tmpl["apiVersion"] = json!("v1");
                tmpl["kind"] = json!("Pod");
                actions.push(Action::Create {
                    resource: pod_r,
                    namespace: ns.to_string(),
                    object: tmpl,
                });
            }
            actions.push(Action::Event {
                object: (**rs).clone(),
                reason: "SuccessfulCreate",
                message: format!("Created {} pod(s)", want - have),
            });
        } else if have > want {
            owned.sort_by_key(|p| {
                (
                    str_at(p, "/spec/nodeName").is_some(),
                    pod_ready(p),
                    std::cmp::Reverse(
                        str_at(p, "/metadata/creationTimestamp")
                            .unwrap_or_default()
                            .to_string(),
                    ),
                )
            });
            for p in owned.iter().take((have - want) as usize) {
                actions.push(Action::Delete {
                    resource: pod_r,
                    namespace: ns.to_string(),
                    name: meta::name(p).to_string(),
                });
            }
        }
        let ready = owned.iter().filter(|p| pod_ready(p)).count() as i64;
        let status = json!({
            "replicas": have, "fullyLabeledReplicas": have, "readyReplicas": ready, "availableReplicas": ready,
            "observedGeneration": int(rs, "/metadata/generation"),
        });
        actions.extend(status_patch(rs_r, rs, status));
    }
    actions
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{deployment, rs_of, snap};

    #[test]
    fn replicasets_create_and_trim_pods() {
        let d = deployment(2, "a:v1");
        let rs = rs_of(&d, 2, 0);
        let actions = reconcile_replicasets(&snap(&[("replicasets", rs.clone())]));
        assert_eq!(
            actions
                .iter()
                .filter(|a| matches!(a, Action::Create { .. }))
                .count(),
            2
        );
        let pod = |n: &str| {
            json!({"metadata": {"name": n, "namespace": "d", "creationTimestamp": "2026-01-01T00:00:00Z",
            "ownerReferences": [{"uid": rs["metadata"]["uid"], "controller": true}]}, "status": {"phase": "Running"}})
        };
        let mut small = rs.clone();
        small["spec"]["replicas"] = json!(1);
        let actions = reconcile_replicasets(&snap(&[
            ("replicasets", small),
            ("pods", pod("p1")),
            ("pods", pod("p2")),
        ]));
        assert_eq!(
            actions
                .iter()
                .filter(|a| matches!(a, Action::Delete { .. }))
                .count(),
            1
        );
    }

    #[test]
    fn replication_controllers_own_their_pods() {
        let rc = json!({"apiVersion": "v1", "kind": "ReplicationController",
            "metadata": {"name": "web", "namespace": "d", "uid": "rc1", "generation": 1},
            "spec": {"replicas": 2, "selector": {"app": "web"},
                "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}}});
        let actions = reconcile_replicasets(&snap(&[("replicationcontrollers", rc)]));
        let owners: Vec<&Value> = actions
            .iter()
            .filter_map(|a| match a {
                Action::Create {
                    resource: r,
                    namespace: _,
                    object: pod,
                } if r.kind == "Pod" => Some(&pod["metadata"]["ownerReferences"][0]["kind"]),
                _ => None,
            })
            .collect();
        assert_eq!(owners, ["ReplicationController", "ReplicationController"]);
        assert!(actions.iter().any(|a| matches!(a,
            Action::Patch { resource: r, name: n, patch: p, status: true, .. } if r.kind == "ReplicationController" && n == "web" && p["status"]["replicas"] == 0)));
    }
}

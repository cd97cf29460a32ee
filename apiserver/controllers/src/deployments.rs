//! Deployments: a ReplicaSet per template, rolled over within `maxSurge`
//! and `maxUnavailable`, or recreated; history kept to
//! `revisionHistoryLimit`; the Deployment's conditions and status.

use serde_json::{Value, json};

use super::{
    Action, Snapshot, int, owner_ref, percent, res, subset_equal, template_hash, terminating,
};
use shoal_machinery::meta::{self, str_at};

/// Rolls each Deployment's ReplicaSets towards its template and replicas.
pub fn reconcile_deployments(s: &Snapshot) -> Vec<Action> {
    let (d_r, rs_r) = (res("Deployment", "apps"), res("ReplicaSet", "apps"));
    let mut actions = Vec::new();
    for d in s.of("deployments") {
        if terminating(d) {
            continue;
        }
        let (ns, uid, name) = (meta::namespace(d), meta::uid(d), meta::name(d));
        let template = d.pointer("/spec/template").cloned().unwrap_or(json!({}));
        let hash = template_hash(&template);
        let owned: Vec<&Value> = s.controlled("replicasets", ns, uid).collect();
        let desired = int(d, "/spec/replicas");
        let new_rs = owned
            .iter()
            .find(|r| str_at(r, "/metadata/labels/pod-template-hash") == Some(hash.as_str()))
            .copied();
        let olds: Vec<&Value> = owned
            .iter()
            .filter(|r| Some(**r) != new_rs)
            .copied()
            .collect();
        let revision = |r: &Value| {
            str_at(
                r,
                "/metadata/annotations/deployment.kubernetes.io~1revision",
            )
            .and_then(|v| v.parse::<i64>().ok())
            .unwrap_or(0)
        };
        let max_rev = owned.iter().map(|r| revision(r)).max().unwrap_or(0);
        let recreate = str_at(d, "/spec/strategy/type") == Some("Recreate");
        let surge = if recreate {
            0
        } else {
            percent(
                d.pointer("/spec/strategy/rollingUpdate/maxSurge"),
                desired,
                true,
            )
        };
        let unavailable = if recreate {
            desired
        } else {
            percent(
                d.pointer("/spec/strategy/rollingUpdate/maxUnavailable"),
                desired,
                false,
            )
        };
        let total_spec: i64 = owned.iter().map(|r| int(r, "/spec/replicas")).sum();
        let old_pods: i64 = olds.iter().map(|r| int(r, "/status/replicas")).sum();
        match new_rs {
            None => {
                let start = if olds.is_empty() {
                    desired
                } else if recreate {
                    0
                } else {
                    (desired + surge - total_spec).clamp(0, desired)
                };
                let mut labels = template
                    .pointer("/metadata/labels")
                    .cloned()
                    .unwrap_or(json!({}));
                labels["pod-template-hash"] = json!(hash);
                let mut tmpl = template.clone();
                tmpl["metadata"]["labels"] = labels.clone();
                let mut selector = d.pointer("/spec/selector").cloned().unwrap_or(json!({}));
                selector["matchLabels"]["pod-template-hash"] = json!(hash);
                let rs = json!({
                    "apiVersion": "apps/v1", "kind": "ReplicaSet",
                    "metadata": {"name": format!("{name}-{hash}"), "namespace": ns, "labels": labels,
                        "annotations": {"deployment.kubernetes.io/revision": (max_rev + 1).to_string(),
                            "deployment.kubernetes.io/desired-replicas": desired.to_string(),
                            "deployment.kubernetes.io/max-replicas": (desired + surge).to_string()},
                        "ownerReferences": owner_ref(d, "Deployment")},
                    "spec": {"replicas": start, "selector": selector, "template": tmpl},
                });
                actions.push(Action::Event {
                    object: (**d).clone(),
                    reason: "ScalingReplicaSet",
                    message: format!("Scaled up replica set {name}-{hash} from 0 to {start}"),
                });
                actions.push(Action::Create {
                    resource: rs_r,
                    namespace: ns.to_string(),
                    object: rs,
                });
            }
            Some(new) => {
                let cur = int(new, "/spec/replicas");
                let target = if olds.is_empty() {
                    desired
                } else if recreate {
                    if old_pods == 0 { desired } else { 0 }
                } else {
                    (cur + (desired + surge - total_spec).max(0)).min(desired)
                };
                let target = if cur > desired {
                    desired
                } else {
                    target.max(cur)
                };
                if target != cur {
                    let dir = if target > cur { "up" } else { "down" };
                    actions.push(Action::Event {
                        object: (**d).clone(),
                        reason: "ScalingReplicaSet",
                        message: format!(
                            "Scaled {dir} replica set {} from {cur} to {target}",
                            meta::name(new)
                        ),
                    });
                    actions.push(Action::Patch {
                        resource: rs_r,
                        namespace: ns.to_string(),
                        name: meta::name(new).to_string(),
                        patch: json!({"spec": {"replicas": target}}),
                        status: false,
                    });
                }
                let available: i64 = owned
                    .iter()
                    .map(|r| int(r, "/status/availableReplicas"))
                    .sum();
                let mut removable = if recreate {
                    i64::MAX
                } else {
                    (available - (desired - unavailable)).max(0)
                };
                let new_done = int(new, "/status/availableReplicas") >= desired;
                for old in &olds {
                    let r = int(old, "/spec/replicas");
                    if r == 0 {
                        continue;
                    }
                    let cut = if new_done { r } else { r.min(removable) };
                    if cut > 0 {
                        removable -= cut;
                        actions.push(Action::Event {
                            object: (**d).clone(),
                            reason: "ScalingReplicaSet",
                            message: format!(
                                "Scaled down replica set {} from {r} to {}",
                                meta::name(old),
                                r - cut
                            ),
                        });
                        actions.push(Action::Patch {
                            resource: rs_r,
                            namespace: ns.to_string(),
                            name: meta::name(old).to_string(),
                            patch: json!({"spec": {"replicas": r - cut}}),
                            status: false,
                        });
                    }
                }
            }
        }
        let sum = |p: &str| owned.iter().map(|r| int(r, p)).sum::<i64>();
        let updated = new_rs.map_or(0, |r| int(r, "/status/replicas"));
        let available = sum("/status/availableReplicas");
        let complete = new_rs.is_some_and(|r| int(r, "/status/availableReplicas") >= desired)
            && old_pods == 0
            && updated == desired;
        let keep = |ty: &str, status: &str, reason: &str, message: String| {
            let old = d
                .pointer("/status/conditions")
                .and_then(Value::as_array)
                .and_then(|cs| cs.iter().find(|c| c.get("type") == Some(&json!(ty))));
            let same = old.is_some_and(|c| {
                c.get("status") == Some(&json!(status)) && c.get("reason") == Some(&json!(reason))
            });
            if same {
                return old.cloned().unwrap_or_default();
            }
            let now = meta::now();
            json!({"type": ty, "status": status, "reason": reason, "message": message, "lastUpdateTime": now, "lastTransitionTime": now})
        };
        let avail_ok = available >= desired - unavailable;
        let conditions = json!([
            keep(
                "Available",
                if avail_ok { "True" } else { "False" },
                if avail_ok {
                    "MinimumReplicasAvailable"
                } else {
                    "MinimumReplicasUnavailable"
                },
                if avail_ok {
                    "Deployment has minimum availability.".into()
                } else {
                    "Deployment does not have minimum availability.".into()
                }
            ),
            keep(
                "Progressing",
                "True",
                if complete {
                    "NewReplicaSetAvailable"
                } else {
                    "ReplicaSetUpdated"
                },
                format!(
                    "ReplicaSet \"{name}-{hash}\" {}",
                    if complete {
                        "has successfully progressed."
                    } else {
                        "is progressing."
                    }
                )
            ),
        ]);
        let mut status = json!({
            "observedGeneration": int(d, "/metadata/generation"), "replicas": sum("/status/replicas"),
            "updatedReplicas": updated, "readyReplicas": sum("/status/readyReplicas"), "availableReplicas": available,
            "conditions": conditions,
        });
        let unavail = (sum("/status/replicas") - available)
            .max(desired - available)
            .max(0);
        if unavail > 0 {
            status["unavailableReplicas"] = json!(unavail);
        }
        let mut have = d.get("status").cloned().unwrap_or(json!({}));
        if unavail == 0
            && let Some(m) = have.as_object_mut()
        {
            m.remove("unavailableReplicas");
        }
        if !subset_equal(&status, Some(&have))
            || (unavail == 0 && d.pointer("/status/unavailableReplicas").is_some())
        {
            let mut patch_status = status.clone();
            if unavail == 0 {
                patch_status["unavailableReplicas"] = Value::Null;
            }
            actions.push(Action::Patch {
                resource: d_r,
                namespace: ns.to_string(),
                name: name.to_string(),
                patch: json!({"status": patch_status}),
                status: true,
            });
        }
    }
    actions
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{deployment, rs_of, snap};

    #[test]
    fn a_new_deployment_gets_a_replicaset_at_full_size() {
        let d = deployment(3, "a:v1");
        let actions = reconcile_deployments(&snap(&[("deployments", d)]));
        let created: Vec<&Value> = actions
            .iter()
            .filter_map(|a| match a {
                Action::Create {
                    resource: _,
                    namespace: _,
                    object: o,
                } => Some(o),
                _ => None,
            })
            .collect();
        assert_eq!(created.len(), 1);
        assert_eq!(created[0]["spec"]["replicas"], json!(3));
        assert_eq!(
            created[0]["metadata"]["ownerReferences"][0]["uid"],
            json!("dep-uid")
        );
        assert!(created[0]["spec"]["selector"]["matchLabels"]["pod-template-hash"].is_string());
    }

    #[test]
    fn a_template_change_rolls_within_surge() {
        let old_d = deployment(4, "a:v1");
        let new_d = deployment(4, "a:v2");
        let old_rs = rs_of(&old_d, 4, 4);
        let new_rs = rs_of(&new_d, 0, 0);
        let s = snap(&[
            ("deployments", new_d.clone()),
            ("replicasets", old_rs),
            ("replicasets", new_rs),
        ]);
        let actions = reconcile_deployments(&s);
        let scaled: Vec<(String, i64)> = actions
            .iter()
            .filter_map(|a| match a {
                Action::Patch {
                    resource: r,
                    name,
                    patch: p,
                    status: false,
                    ..
                } if r.kind == "ReplicaSet" => {
                    Some((name.clone(), p["spec"]["replicas"].as_i64().unwrap()))
                }
                _ => None,
            })
            .collect();
        let new_name = format!("web-{}", template_hash(&new_d["spec"]["template"]));
        assert!(
            scaled.contains(&(new_name, 1)),
            "surge of 25% of 4 = 1 new pod first: {scaled:?}"
        );
        let old_name = format!("web-{}", template_hash(&old_d["spec"]["template"]));
        assert!(
            scaled.contains(&(old_name, 3)),
            "maxUnavailable 1 lets one old pod go: {scaled:?}"
        );
    }
}

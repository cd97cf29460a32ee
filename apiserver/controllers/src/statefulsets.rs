//! StatefulSets: pods with stable names `<set>-<ordinal>`, started in order
//! (or all at once with `podManagementPolicy: Parallel`), removed from the
//! highest ordinal down and updated from the highest ordinal down to the
//! partition, one pod at a time.

use serde_json::{Value, json};

use super::revisions::REVISION_LABEL;
use super::{
    Action, Snapshot, int, owner_ref, pod_ready, res, status_patch, template_hash, terminating,
};
use shoal_machinery::meta::{self, str_at};

/// The ordinal of a pod named `<set>-<ordinal>`.
fn ordinal(set: &str, pod: &Value) -> Option<i64> {
    meta::name(pod)
        .strip_prefix(set)?
        .strip_prefix('-')?
        .parse()
        .ok()
}

fn revision_of(pod: &Value) -> Option<&str> {
    str_at(pod, &format!("/metadata/labels/{REVISION_LABEL}"))
}

/// Keeps each StatefulSet's ordinals, one step at a time.
pub fn reconcile_statefulsets(s: &Snapshot) -> Vec<Action> {
    let (sts_r, pod_r) = (res("StatefulSet", "apps"), res("Pod", ""));
    let mut actions = Vec::new();
    for sts in s.of("statefulsets") {
        if terminating(sts) {
            continue;
        }
        let (ns, name, uid) = (meta::namespace(sts), meta::name(sts), meta::uid(sts));
        let template = sts.pointer("/spec/template").cloned().unwrap_or(json!({}));
        let hash = template_hash(&template);
        let revision = format!("{name}-{hash}");
        actions.extend(super::revisions::keep(
            s,
            sts,
            "StatefulSet",
            &revision,
            &hash,
        ));
        let want = int(sts, "/spec/replicas");
        let parallel = str_at(sts, "/spec/podManagementPolicy") == Some("Parallel");
        let mut pods: Vec<(i64, &Value)> = s
            .controlled("pods", ns, uid)
            .filter_map(|p| ordinal(name, p).map(|i| (i, p)))
            .collect();
        pods.sort_by_key(|(i, _)| *i);
        let at = |i: i64| pods.iter().find(|(o, _)| *o == i).map(|(_, p)| *p);
        let healthy = |p: &Value| {
            !terminating(p) && str_at(p, "/status/phase") == Some("Running") && pod_ready(p)
        };

        // Finished pods are deleted so their ordinal starts again.
        for (_, p) in &pods {
            if !terminating(p) && matches!(str_at(p, "/status/phase"), Some("Succeeded" | "Failed"))
            {
                actions.push(Action::Delete {
                    resource: pod_r,
                    namespace: ns.to_string(),
                    name: meta::name(p).to_string(),
                });
            }
        }
        // Up: missing ordinals below replicas, in order unless Parallel.
        for i in 0..want {
            match at(i) {
                None => {
                    actions.push(Action::Create {
                        resource: pod_r,
                        namespace: ns.to_string(),
                        object: new_pod(sts, &template, i, &revision),
                    });
                    actions.push(Action::Event {
                        object: (**sts).clone(),
                        reason: "SuccessfulCreate",
                        message: format!("create Pod {name}-{i} in StatefulSet {name} successful"),
                    });
                    if !parallel {
                        break;
                    }
                }
                Some(p) if !parallel && !healthy(p) => break,
                Some(_) => {}
            }
        }
        // Down: ordinals at or above replicas, highest first.
        let excess: Vec<&Value> = pods
            .iter()
            .rev()
            .filter(|(i, _)| *i >= want)
            .map(|(_, p)| *p)
            .collect();
        let all_healthy = pods.iter().all(|(_, p)| healthy(p));
        for p in &excess {
            if terminating(p) {
                if parallel {
                    continue;
                }
                break;
            }
            if !parallel && !all_healthy && excess.first() != Some(p) {
                break;
            }
            actions.push(Action::Delete {
                resource: pod_r,
                namespace: ns.to_string(),
                name: meta::name(p).to_string(),
            });
            actions.push(Action::Event {
                object: (**sts).clone(),
                reason: "SuccessfulDelete",
                message: format!(
                    "delete Pod {} in StatefulSet {name} successful",
                    meta::name(p)
                ),
            });
            if !parallel {
                break;
            }
        }
        // Updates: the highest outdated ordinal at or above the partition,
        // once every pod is healthy.
        let rolling =
            str_at(sts, "/spec/updateStrategy/type").unwrap_or("RollingUpdate") == "RollingUpdate";
        let partition = int(sts, "/spec/updateStrategy/rollingUpdate/partition");
        let in_range: Vec<(i64, &Value)> =
            pods.iter().copied().filter(|(i, _)| *i < want).collect();
        if rolling
            && excess.is_empty()
            && in_range.len() as i64 == want
            && all_healthy
            && let Some((_, p)) = in_range
                .iter()
                .rev()
                .find(|(i, p)| *i >= partition && revision_of(p) != Some(revision.as_str()))
        {
            actions.push(Action::Delete {
                resource: pod_r,
                namespace: ns.to_string(),
                name: meta::name(p).to_string(),
            });
        }

        let live: Vec<&Value> = in_range
            .iter()
            .map(|(_, p)| *p)
            .filter(|p| !terminating(p))
            .collect();
        let updated = live
            .iter()
            .filter(|p| revision_of(p) == Some(revision.as_str()))
            .count() as i64;
        let ready = live.iter().filter(|p| pod_ready(p)).count() as i64;
        let done = updated == want && ready == want;
        let current_revision = match str_at(sts, "/status/currentRevision") {
            Some(c) if !done => c.to_string(),
            _ => revision.clone(),
        };
        let current = live
            .iter()
            .filter(|p| revision_of(p) == Some(current_revision.as_str()))
            .count() as i64;
        let status = json!({
            "observedGeneration": int(sts, "/metadata/generation"),
            "replicas": live.len(), "readyReplicas": ready, "availableReplicas": ready,
            "currentReplicas": current, "updatedReplicas": updated,
            "currentRevision": current_revision, "updateRevision": revision, "collisionCount": 0,
        });
        actions.extend(status_patch(sts_r, sts, status));
    }
    actions
}

fn new_pod(sts: &Value, template: &Value, i: i64, revision: &str) -> Value {
    let name = meta::name(sts);
    let pod_name = format!("{name}-{i}");
    let mut pod = template.clone();
    let m = meta::metadata(&mut pod);
    m.insert("name".into(), json!(pod_name));
    m.insert("namespace".into(), json!(meta::namespace(sts)));
    m.insert("ownerReferences".into(), owner_ref(sts, "StatefulSet"));
    let labels = m.entry("labels").or_insert_with(|| json!({}));
    labels[REVISION_LABEL] = json!(revision);
    labels["statefulset.kubernetes.io/pod-name"] = json!(pod_name);
    labels["apps.kubernetes.io/pod-index"] = json!(i.to_string());
    pod["apiVersion"] = json!("v1");
    pod["kind"] = json!("Pod");
    pod["spec"]["hostname"] = json!(pod_name);
    if let Some(service) = str_at(sts, "/spec/serviceName").filter(|s| !s.is_empty()) {
        pod["spec"]["subdomain"] = json!(service);
    }
    pod
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{created, deleted, snap};
    use super::*;

    fn sts(replicas: i64, image: &str, policy: &str) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "StatefulSet",
            "metadata": {"name": "db", "namespace": "d", "uid": "sts-uid", "generation": 1},
            "spec": {"replicas": replicas, "serviceName": "db", "podManagementPolicy": policy,
                "selector": {"matchLabels": {"app": "db"}},
                "template": {"metadata": {"labels": {"app": "db"}}, "spec": {"containers": [{"name": "c", "image": image}]}}}})
    }

    fn pod(i: i64, revision: &str, ready: bool) -> Value {
        json!({"metadata": {"name": format!("db-{i}"), "namespace": "d", "labels": {REVISION_LABEL: revision},
            "ownerReferences": [{"uid": "sts-uid", "controller": true}]},
            "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]}})
    }

    fn revision(s: &Value) -> String {
        format!("db-{}", template_hash(&s["spec"]["template"]))
    }

    fn with_pods(sts: Value, pods: Vec<Value>) -> Snapshot {
        let mut items = vec![("statefulsets", sts)];
        items.extend(pods.into_iter().map(|p| ("pods", p)));
        snap(&items)
    }

    /// The pods the actions create (not the ControllerRevision).
    fn pods(actions: &[Action]) -> Vec<&Value> {
        created(actions)
            .into_iter()
            .filter(|o| o["kind"] == "Pod")
            .collect()
    }

    fn names(actions: &[Action], create: bool) -> Vec<String> {
        if create {
            pods(actions)
                .iter()
                .map(|p| meta::name(p).to_string())
                .collect()
        } else {
            deleted(actions)
                .iter()
                .map(|d| d.trim_start_matches("pods/").to_string())
                .collect()
        }
    }

    #[test]
    fn ordered_pods_start_one_at_a_time_and_stop_from_the_top() {
        let s = sts(3, "a:v1", "OrderedReady");
        let r = revision(&s);
        let a = reconcile_statefulsets(&with_pods(s.clone(), vec![]));
        assert_eq!(names(&a, true), ["db-0"]);
        let p = pods(&a)[0];
        assert_eq!(p["spec"]["hostname"], "db-0");
        assert_eq!(p["spec"]["subdomain"], "db");
        assert_eq!(p["metadata"]["labels"]["apps.kubernetes.io/pod-index"], "0");
        // db-0 not ready yet: nothing else starts.
        assert!(
            names(
                &reconcile_statefulsets(&with_pods(s.clone(), vec![pod(0, &r, false)])),
                true
            )
            .is_empty()
        );
        assert_eq!(
            names(
                &reconcile_statefulsets(&with_pods(s.clone(), vec![pod(0, &r, true)])),
                true
            ),
            ["db-1"]
        );

        let down = sts(1, "a:v1", "OrderedReady");
        let pods = vec![pod(0, &r, true), pod(1, &r, true), pod(2, &r, true)];
        assert_eq!(
            names(
                &reconcile_statefulsets(&with_pods(down, pods.clone())),
                false
            ),
            ["db-2"]
        );
        let parallel = sts(1, "a:v1", "Parallel");
        assert_eq!(
            names(&reconcile_statefulsets(&with_pods(parallel, pods)), false),
            ["db-2", "db-1"]
        );
        assert_eq!(
            names(
                &reconcile_statefulsets(&with_pods(sts(3, "a:v1", "Parallel"), vec![])),
                true
            ),
            ["db-0", "db-1", "db-2"]
        );
    }

    #[test]
    fn updates_go_from_the_highest_ordinal_down_to_the_partition() {
        let old = revision(&sts(3, "a:v1", "OrderedReady"));
        let mut s = sts(3, "a:v2", "OrderedReady");
        let new = revision(&s);
        let a = reconcile_statefulsets(&with_pods(
            s.clone(),
            vec![pod(0, &old, true), pod(1, &old, true), pod(2, &old, true)],
        ));
        assert_eq!(names(&a, false), ["db-2"]);
        let a = reconcile_statefulsets(&with_pods(
            s.clone(),
            vec![pod(0, &old, true), pod(1, &old, true), pod(2, &new, true)],
        ));
        assert_eq!(names(&a, false), ["db-1"]);
        s["spec"]["updateStrategy"] =
            json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 2}});
        let a = reconcile_statefulsets(&with_pods(
            s,
            vec![pod(0, &old, true), pod(1, &old, true), pod(2, &new, true)],
        ));
        assert!(
            names(&a, false).is_empty(),
            "ordinals below the partition keep their revision"
        );
    }
}

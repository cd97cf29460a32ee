//! ResourceQuota usage: `status.hard` and `status.used` for object counts
//! and the compute requests and limits of a namespace's pods, as
//! Kubernetes' quota controller reports them (the registry's `quota`
//! counts; its admission plugin refuses what a quota cannot hold).

use serde_json::{Map, Value, json};

use super::{Action, Snapshot, res, status_patch};
use shoal_machinery::meta;
use shoal_registry::quota;

/// How much of one quota resource a namespace uses, if shoal counts it.
fn used(s: &Snapshot, ns: &str, name: &str) -> Option<String> {
    let m = quota::measure(name)?;
    let objects =
        |r: &'static shoal_registry::resources::Resource| s.in_namespace(r.plural, ns).to_vec();
    Some(quota::format(m, quota::usage(m, &objects)))
}

/// Keeps each ResourceQuota's `status.hard` and `status.used`.
pub fn reconcile_quotas(s: &Snapshot) -> Vec<Action> {
    let quota_r = res("ResourceQuota", "");
    let mut actions = Vec::new();
    for q in s.of("resourcequotas") {
        let ns = meta::namespace(q);
        if !s.is_dirty(ns) {
            continue;
        }
        let hard = q
            .pointer("/spec/hard")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        let used: Map<String, Value> = hard
            .keys()
            .filter_map(|k| used(s, ns, k).map(|u| (k.clone(), json!(u))))
            .collect();
        let status = json!({"hard": hard, "used": used});
        actions.extend(status_patch(quota_r, q, status));
    }
    actions
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{snap, status};
    use super::*;

    #[test]
    fn usage_counts_objects_and_sums_pod_resources() {
        let quota = json!({"metadata": {"name": "q", "namespace": "d"},
            "spec": {"hard": {"pods": "10", "requests.cpu": "2", "limits.memory": "1Gi", "configmaps": "5",
                "count/deployments.apps": "3", "example.com/gadgets": "1"}}});
        let pod = |name: &str, ns: &str, phase: &str| {
            json!({"metadata": {"name": name, "namespace": ns}, "status": {"phase": phase},
                "spec": {"containers": [{"resources": {"requests": {"cpu": "250m"}, "limits": {"memory": "64Mi"}}},
                    {"resources": {"requests": {"cpu": "1"}}}]}})
        };
        let s = snap(&[
            ("resourcequotas", quota),
            ("pods", pod("a", "d", "Running")),
            ("pods", pod("b", "d", "Succeeded")),
            ("pods", pod("c", "other", "Running")),
            (
                "configmaps",
                json!({"metadata": {"name": "x", "namespace": "d"}}),
            ),
        ]);
        let st = status(&reconcile_quotas(&s));
        assert_eq!(
            st["used"],
            json!({"pods": "1", "requests.cpu": "1250m", "limits.memory": "64Mi", "configmaps": "1",
                "count/deployments.apps": "0"})
        );
        assert_eq!(st["hard"]["pods"], "10");
    }
}

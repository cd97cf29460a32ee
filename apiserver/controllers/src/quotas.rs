//! ResourceQuota usage: `status.hard` and `status.used` for object counts
//! and the compute requests and limits of a namespace's pods, as
//! Kubernetes' quota controller reports them (nothing is refused by them).

use serde_json::{Map, Value, json};

use super::{Action, Snapshot, active, res, status_patch};
use shoal_machinery::meta::{self, str_at};
use shoal_scheduler::{bytes, cpu_millis};

/// The sum of one compute resource over the containers of `pods`.
fn compute(pods: &[&Value], field: &str, resource: &str) -> String {
    let parse = |q: &str| {
        if resource == "cpu" {
            cpu_millis(q)
        } else {
            bytes(q)
        }
    };
    let total: i64 = pods
        .iter()
        .flat_map(|p| {
            p.pointer("/spec/containers")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
        })
        .filter_map(|c| {
            c.pointer(&format!("/resources/{field}/{resource}"))
                .and_then(Value::as_str)
        })
        .filter_map(parse)
        .sum();
    let total = u64::try_from(total).unwrap_or(0);
    if resource == "cpu" {
        shoal_quantity::format_millicores(total)
    } else {
        shoal_quantity::format_bytes(total)
    }
}

/// How much of one quota resource a namespace uses, if shoal counts it.
fn used(s: &Snapshot, ns: &str, name: &str) -> Option<String> {
    let pods: Vec<&Value> = s
        .in_namespace("pods", ns)
        .iter()
        .map(|a| &**a)
        .filter(|p| active(p))
        .collect();
    let services_of = |ty: &str| {
        s.in_namespace("services", ns)
            .iter()
            .filter(|o| str_at(o, "/spec/type") == Some(ty))
            .count()
    };
    Some(match name {
        "pods" | "count/pods" => pods.len().to_string(),
        "cpu" | "requests.cpu" => compute(&pods, "requests", "cpu"),
        "memory" | "requests.memory" => compute(&pods, "requests", "memory"),
        "limits.cpu" => compute(&pods, "limits", "cpu"),
        "limits.memory" => compute(&pods, "limits", "memory"),
        "services.nodeports" => (services_of("NodePort") + services_of("LoadBalancer")).to_string(),
        "services.loadbalancers" => services_of("LoadBalancer").to_string(),
        "persistentvolumeclaims" => "0".into(),
        other => {
            // `services`, `count/deployments.apps`, …
            let resource = other.strip_prefix("count/").unwrap_or(other);
            let (plural, group) = resource.split_once('.').unwrap_or((resource, ""));
            let r = shoal_registry::resources::RESOURCES
                .iter()
                .find(|r| r.plural == plural && r.group == group)?;
            s.in_namespace(r.plural, ns).len().to_string()
        }
    })
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

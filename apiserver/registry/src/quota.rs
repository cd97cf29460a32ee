//! ResourceQuota accounting, one definition for the quota controller
//! (which reports `status.used`) and the admission plugin (which refuses a
//! create the quota cannot hold): what each quota resource name counts,
//! in the unit it is compared in (millicores for CPU, bytes for memory,
//! objects otherwise).
//!
//! May import: `resources` (the kinds `count/…` names).

use std::sync::Arc;

use serde_json::Value;

use crate::resources::{self, Resource};
use shoal_machinery::meta::str_at;

/// What a quota resource name measures.
#[derive(Debug, Clone, Copy)]
pub enum Measure {
    /// CPU of pods' containers, in millicores: `requests` or `limits`.
    Cpu(&'static str),
    /// Memory of pods' containers, in bytes: `requests` or `limits`.
    Memory(&'static str),
    /// Active pods.
    Pods,
    /// Services of a type (NodePort counts LoadBalancers too).
    Services(&'static str),
    /// Objects of a resource.
    Objects(&'static Resource),
}

/// What `name` measures, if shoal counts it.
pub fn measure(name: &str) -> Option<Measure> {
    Some(match name {
        "pods" | "count/pods" => Measure::Pods,
        "cpu" | "requests.cpu" => Measure::Cpu("requests"),
        "memory" | "requests.memory" => Measure::Memory("requests"),
        "limits.cpu" => Measure::Cpu("limits"),
        "limits.memory" => Measure::Memory("limits"),
        "services.nodeports" => Measure::Services("NodePort"),
        "services.loadbalancers" => Measure::Services("LoadBalancer"),
        other => {
            // `services`, `configmaps`, `count/deployments.apps`, …
            let resource = other.strip_prefix("count/").unwrap_or(other);
            let (plural, group) = resource.split_once('.').unwrap_or((resource, ""));
            Measure::Objects(
                resources::RESOURCES
                    .iter()
                    .find(|r| r.plural == plural && r.group == group && r.view.is_none())?,
            )
        }
    })
}

/// Whether a pod still holds its quota: not finished, not being deleted.
pub fn active(pod: &Value) -> bool {
    pod.pointer("/metadata/deletionTimestamp").is_none()
        && !matches!(str_at(pod, "/status/phase"), Some("Succeeded" | "Failed"))
}

/// The sum of one compute resource over a pod's containers; when
/// `strict`, `None` if a container does not say (a quota of it then
/// cannot admit the pod), otherwise what the others say.
fn pod_compute(pod: &Value, field: &str, resource: &str, strict: bool) -> Option<u64> {
    let mut total = 0u64;
    for c in pod
        .pointer("/spec/containers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let Some(q) = c.pointer(&format!("/resources/{field}/{resource}")) else {
            if strict {
                return None;
            }
            continue;
        };
        let q = q
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| q.to_string());
        let n = if resource == "cpu" {
            shoal_quantity::millicores(&q).map(u64::from)
        } else {
            shoal_quantity::bytes(&q)
        }?;
        total = total.saturating_add(n);
    }
    Some(total)
}

/// What one object of `r` adds to what `m` measures; `None` when the
/// object does not say and the quota therefore cannot admit it.
pub fn demand(m: Measure, r: &Resource, obj: &Value) -> Option<u64> {
    let pod = r.group.is_empty() && r.kind == "Pod";
    let service = r.group.is_empty() && r.kind == "Service";
    Some(match m {
        Measure::Pods => u64::from(pod),
        Measure::Cpu(field) if pod => pod_compute(obj, field, "cpu", true)?,
        Measure::Memory(field) if pod => pod_compute(obj, field, "memory", true)?,
        Measure::Cpu(_) | Measure::Memory(_) => 0,
        Measure::Services(ty) => {
            let t = str_at(obj, "/spec/type").unwrap_or("ClusterIP");
            u64::from(service && (t == ty || (ty == "NodePort" && t == "LoadBalancer")))
        }
        Measure::Objects(counted) => u64::from(std::ptr::eq(counted, r)),
    })
}

/// How much of `m` a namespace uses: `objects` gives the namespace's
/// objects of a resource.
pub fn usage(m: Measure, objects: &dyn Fn(&'static Resource) -> Vec<Arc<Value>>) -> u64 {
    let pods = || {
        resources::by_kind("", "Pod")
            .map(objects)
            .unwrap_or_default()
            .into_iter()
            .filter(|p| active(p))
    };
    match m {
        Measure::Pods => pods().count() as u64,
        Measure::Cpu(field) => pods()
            .map(|p| pod_compute(&p, field, "cpu", false).unwrap_or(0))
            .sum(),
        Measure::Memory(field) => pods()
            .map(|p| pod_compute(&p, field, "memory", false).unwrap_or(0))
            .sum(),
        Measure::Services(ty) => resources::by_kind("", "Service")
            .map(objects)
            .unwrap_or_default()
            .iter()
            .filter(|s| {
                let t = str_at(s, "/spec/type").unwrap_or("ClusterIP");
                t == ty || (ty == "NodePort" && t == "LoadBalancer")
            })
            .count() as u64,
        Measure::Objects(r) => objects(r).len() as u64,
    }
}

/// A quantity of `m` (a quota's `hard` value) in its unit.
pub fn parse(m: Measure, q: &str) -> Option<u64> {
    match m {
        Measure::Cpu(_) => shoal_quantity::millicores(q).map(u64::from),
        Measure::Memory(_) => shoal_quantity::bytes(q),
        _ => shoal_quantity::bytes(q),
    }
}

/// An amount of `m` as Kubernetes writes it.
pub fn format(m: Measure, amount: u64) -> String {
    match m {
        Measure::Cpu(_) => shoal_quantity::format_millicores(amount),
        Measure::Memory(_) => shoal_quantity::format_bytes(amount),
        _ => amount.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_write_demands_what_its_quota_counts() {
        let pods = resources::by_kind("", "Pod").unwrap();
        let pod = json!({"spec": {"containers": [
            {"resources": {"requests": {"cpu": "250m", "memory": "1Gi"}}},
            {"resources": {"requests": {"cpu": "1"}}}]}});
        let m = |n: &str| measure(n).unwrap();
        assert_eq!(demand(m("pods"), pods, &pod), Some(1));
        assert_eq!(demand(m("requests.cpu"), pods, &pod), Some(1250));
        // A container that does not say cannot be admitted by a quota of it.
        assert_eq!(demand(m("requests.memory"), pods, &pod), None);
        assert_eq!(demand(m("configmaps"), pods, &pod), Some(0));
        let cms = resources::by_kind("", "ConfigMap").unwrap();
        assert_eq!(demand(m("configmaps"), cms, &json!({})), Some(1));
        assert_eq!(demand(m("count/configmaps"), cms, &json!({})), Some(1));
        let svcs = resources::by_kind("", "Service").unwrap();
        let lb = json!({"spec": {"type": "LoadBalancer"}});
        assert_eq!(demand(m("services.nodeports"), svcs, &lb), Some(1));
        assert_eq!(demand(m("services.loadbalancers"), svcs, &lb), Some(1));
        assert!(measure("example.com/gadgets").is_none());
        assert_eq!(parse(m("requests.memory"), "1Gi"), Some(1 << 30));
        assert_eq!(format(m("limits.cpu"), 1500), "1500m");
    }
}

//! APIService availability, as the aggregator's controller reports it in
//! the `Available` condition: a local APIService (no Service, its group
//! served by the API server itself) is available (`Local`). One backed by
//! a Service is not while the Service (`ServiceNotFound`) or its endpoints
//! (`MissingEndpoints`) are missing; once they are there, the aggregation
//! layer's discovery check decides (`Passed` or `FailedDiscoveryCheck`).

use jiff::Timestamp;
use serde_json::Value;

use super::{Action, Snapshot, res};
use shoal_machinery::conditions::condition_patch;
use shoal_machinery::meta::{self, str_at};

/// The `Available` condition `api_service` should have: status, reason,
/// message; `None` when the discovery check is to say.
fn availability(s: &Snapshot, api_service: &Value) -> Option<(&'static str, &'static str, String)> {
    let Some(svc) = api_service
        .pointer("/spec/service")
        .filter(|v| !v.is_null())
    else {
        return Some((
            "True",
            "Local",
            "Local APIServices are always available".to_string(),
        ));
    };
    let (ns, name) = (
        str_at(svc, "/namespace").unwrap_or_default(),
        str_at(svc, "/name").unwrap_or_default(),
    );
    let exists = |plural: &'static str| {
        s.in_namespace(plural, ns)
            .iter()
            .find(|o| meta::name(o) == name)
            .cloned()
    };
    if exists("services").is_none() {
        return Some((
            "False",
            "ServiceNotFound",
            format!("service/{name} in \"{ns}\" is not present"),
        ));
    }
    let ready = exists("endpoints").is_some_and(|e| {
        e.get("subsets")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .any(|sub| {
                sub.get("addresses")
                    .and_then(Value::as_array)
                    .is_some_and(|a| !a.is_empty())
            })
    });
    (!ready).then(|| {
        (
            "False",
            "MissingEndpoints",
            format!("endpoints for service/{name} in \"{ns}\" have no addresses"),
        )
    })
}

/// Writes each APIService's `Available` condition where it differs.
pub fn reconcile_api_services(s: &Snapshot, now: Timestamp) -> Vec<Action> {
    let r = res("APIService", "apiregistration.k8s.io");
    let mut actions = Vec::new();
    for a in s.of("apiservices") {
        let Some((status, reason, message)) = availability(s, a) else {
            continue;
        };
        if let Some(patch) = condition_patch(a, "Available", status, reason, &message, now) {
            actions.push(Action::Patch {
                resource: r,
                namespace: String::new(),
                name: meta::name(a).to_string(),
                patch,
                status: true,
            });
        }
    }
    actions
}

#[cfg(test)]
mod tests {

    use super::*;
    use serde_json::json;

    fn snapshot(items: Vec<(&'static str, Value)>) -> Snapshot {
        Snapshot::of_objects(items)
    }

    fn condition(actions: &[Action], name: &str) -> Value {
        actions
            .iter()
            .find_map(|a| match a {
                Action::Patch {
                    name: n,
                    patch: p,
                    status: true,
                    ..
                } if n == name => Some(p["status"]["conditions"][0].clone()),
                _ => None,
            })
            .unwrap_or_else(|| panic!("no condition for {name}: {actions:?}"))
    }

    #[test]
    fn local_ones_are_available_and_backed_ones_say_why_not() {
        let local =
            json!({"metadata": {"name": "v1.apps"}, "spec": {"group": "apps", "version": "v1"}});
        let backed = |name: &str, svc: &str| {
            json!({"metadata": {"name": name}, "spec": {"group": "metrics.k8s.io", "version": "v1beta1",
                "service": {"namespace": "kube-system", "name": svc}}})
        };
        let svc = |name: &str| json!({"metadata": {"name": name, "namespace": "kube-system"}});
        let s = snapshot(vec![
            ("apiservices", local),
            ("apiservices", backed("a", "gone")),
            ("apiservices", backed("b", "empty")),
            ("apiservices", backed("c", "served")),
            ("services", svc("empty")),
            ("services", svc("served")),
            (
                "endpoints",
                json!({"metadata": {"name": "served", "namespace": "kube-system"},
                "subsets": [{"addresses": [{"ip": "10.244.0.5"}]}]}),
            ),
        ]);
        let now: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let actions = reconcile_api_services(&s, now);
        assert_eq!(condition(&actions, "v1.apps")["reason"], "Local");
        assert_eq!(condition(&actions, "v1.apps")["status"], "True");
        assert_eq!(condition(&actions, "a")["reason"], "ServiceNotFound");
        assert_eq!(condition(&actions, "b")["reason"], "MissingEndpoints");
        // With endpoints, the aggregation layer's discovery check says.
        assert!(
            !actions
                .iter()
                .any(|a| matches!(a, Action::Patch { name: n, .. } if n == "c"))
        );
        // Written once: the same condition again is left alone.
        let mut written = s
            .of("apiservices")
            .iter()
            .find(|o| meta::name(o) == "v1.apps")
            .map(|o| (**o).clone())
            .unwrap();
        written["status"] = json!({"conditions": [condition(&actions, "v1.apps")]});
        let again = snapshot(vec![("apiservices", written)]);
        assert!(reconcile_api_services(&again, now).is_empty());
    }
}

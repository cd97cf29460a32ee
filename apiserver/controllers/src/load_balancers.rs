//! The built-in Service load balancer, as k3s's: a `LoadBalancer` Service
//! that names no `loadBalancerClass` gets the InternalIPs of the Ready
//! nodes as its `status.loadBalancer.ingress`, and every node forwards
//! connections to its address and the Service's ports to the endpoints
//! (the agent's service rules). A Service that stops being a
//! `LoadBalancer` loses its ingress.

use serde_json::{Value, json};

use super::{Action, Snapshot, res};
use shoal_machinery::meta::{self, str_at};

/// The ingress every built-in load balancer gets: the Ready nodes'
/// InternalIPs, sorted.
fn node_ingress(s: &Snapshot) -> Vec<Value> {
    let mut ips: Vec<&str> = s
        .of("nodes")
        .iter()
        .filter(|n| meta::condition_true(n, "Ready"))
        .filter_map(|n| {
            n.pointer("/status/addresses")
                .and_then(Value::as_array)?
                .iter()
                .find(|a| a.get("type").and_then(Value::as_str) == Some("InternalIP"))
                .and_then(|a| a.get("address").and_then(Value::as_str))
        })
        .collect();
    ips.sort_unstable();
    ips.dedup();
    ips.into_iter()
        .map(|ip| json!({"ip": ip, "ipMode": "VIP"}))
        .collect()
}

/// Writes each Service's load-balancer status where it differs.
pub fn reconcile_load_balancers(s: &Snapshot) -> Vec<Action> {
    let svc_r = res("Service", "");
    let ingress = node_ingress(s);
    let mut actions = Vec::new();
    for svc in s.of("services") {
        let ours = str_at(svc, "/spec/type") == Some("LoadBalancer")
            && svc.pointer("/spec/loadBalancerClass").is_none();
        let want = if ours {
            json!({"ingress": ingress})
        } else if str_at(svc, "/spec/type") == Some("LoadBalancer") {
            // Another implementation's: not ours to write.
            continue;
        } else {
            json!({})
        };
        let have = svc
            .pointer("/status/loadBalancer")
            .cloned()
            .unwrap_or(json!({}));
        let empty = |v: &Value| {
            v.get("ingress")
                .and_then(Value::as_array)
                .is_none_or(|a| a.is_empty())
        };
        if have == want || (empty(&have) && empty(&want)) {
            continue;
        }
        actions.push(Action::Patch {
            resource: svc_r,
            namespace: meta::namespace(svc).to_string(),
            name: meta::name(svc).to_string(),
            patch: json!({"status": {"loadBalancer": want}}),
            status: true,
        });
    }
    actions
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{snap, status};
    use super::*;

    fn node(name: &str, ip: &str, ready: &str) -> Value {
        json!({"metadata": {"name": name}, "status": {
            "addresses": [{"type": "InternalIP", "address": ip}, {"type": "Hostname", "address": name}],
            "conditions": [{"type": "Ready", "status": ready}]}})
    }

    fn svc(kind: &str) -> Value {
        json!({"metadata": {"name": "web", "namespace": "d"}, "spec": {"type": kind, "ports": [{"port": 80}]}})
    }

    #[test]
    fn load_balancers_get_the_ready_nodes_addresses() {
        let s = snap(&[
            ("nodes", node("b", "10.0.0.2", "True")),
            ("nodes", node("a", "10.0.0.1", "True")),
            ("nodes", node("c", "10.0.0.3", "False")),
            ("services", svc("LoadBalancer")),
            ("services", {
                let mut v = svc("ClusterIP");
                v["metadata"]["name"] = json!("plain");
                v
            }),
        ]);
        let actions = reconcile_load_balancers(&s);
        assert_eq!(actions.len(), 1, "{actions:?}");
        assert_eq!(
            status(&actions)["loadBalancer"]["ingress"],
            json!([{"ip": "10.0.0.1", "ipMode": "VIP"}, {"ip": "10.0.0.2", "ipMode": "VIP"}])
        );
    }

    #[test]
    fn other_classes_are_left_alone_and_former_load_balancers_cleared() {
        let mut other = svc("LoadBalancer");
        other["spec"]["loadBalancerClass"] = json!("example.com/lb");
        let mut former = svc("ClusterIP");
        former["metadata"]["name"] = json!("former");
        former["status"] = json!({"loadBalancer": {"ingress": [{"ip": "10.0.0.1"}]}});
        let s = snap(&[
            ("nodes", node("a", "10.0.0.1", "True")),
            ("services", other),
            ("services", former),
        ]);
        let actions = reconcile_load_balancers(&s);
        assert_eq!(actions.len(), 1, "{actions:?}");
        assert_eq!(status(&actions)["loadBalancer"], json!({}));
    }
}

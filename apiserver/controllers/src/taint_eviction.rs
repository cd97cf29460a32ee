//! The taint manager, as Kubernetes' (`NoExecute` taint-based eviction): a
//! pod bound to a node with a `NoExecute` taint it does not tolerate is
//! deleted at once; one that tolerates every such taint for a while
//! (`tolerationSeconds`) is deleted when the shortest of those runs out,
//! counted from when the taint was added (`timeAdded`); one that tolerates
//! them for good stays. A deleted pod gets the `DisruptionTarget`
//! condition and an event first, and its controller replaces it: it no
//! longer counts once it is terminating.
//!
//! With the node lifecycle's `unreachable` and `not-ready` taints and the
//! 300 s tolerations admission gives every pod, a node lost for longer than
//! that has its pods replaced elsewhere.
//!
//! Only pods of nodes with `NoExecute` taints are looked at, every pass
//! while there are any: their deadlines pass without a change to wake on.

use std::collections::BTreeMap;

use jiff::{SignedDuration, Timestamp};
use serde_json::{Value, json};

use super::{Action, Snapshot, active, res};
use shoal_machinery::meta::{self, str_at};

/// Each node's `NoExecute` taints, for the nodes that have any.
fn no_execute_taints(s: &Snapshot) -> BTreeMap<&str, Vec<&Value>> {
    s.of("nodes")
        .iter()
        .filter_map(|n| {
            let taints: Vec<&Value> = n
                .pointer("/spec/taints")
                .and_then(Value::as_array)?
                .iter()
                .filter(|t| str_at(t, "/effect") == Some("NoExecute"))
                .collect();
            (!taints.is_empty()).then(|| (meta::name(n), taints))
        })
        .collect()
}

/// When `pod` must leave a node with `taints` (`NoExecute`): at once for a
/// taint it does not tolerate, else when the shortest toleration of one
/// runs out; never when it tolerates them all for good.
fn deadline(pod: &Value, taints: &[&Value], now: Timestamp) -> Option<Timestamp> {
    let tolerations = pod
        .pointer("/spec/tolerations")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let mut due: Option<Timestamp> = None;
    for taint in taints {
        let matching: Vec<&Value> = tolerations
            .iter()
            .filter(|t| shoal_scheduler::tolerates(t, taint))
            .collect();
        if matching.is_empty() {
            return Some(now);
        }
        let seconds: Option<i64> = matching
            .iter()
            .map(|t| t.get("tolerationSeconds").and_then(Value::as_i64))
            .try_fold(i64::MAX, |least, s| s.map(|s| least.min(s)));
        // A toleration without `tolerationSeconds` keeps it for good.
        let Some(seconds) = seconds else { continue };
        let added = str_at(taint, "/timeAdded")
            .and_then(|t| t.parse::<Timestamp>().ok())
            .unwrap_or(now);
        let at = added
            .checked_add(SignedDuration::from_secs(seconds.max(0)))
            .unwrap_or(now);
        due = Some(due.map_or(at, |d| d.min(at)));
    }
    due
}

/// The pods whose time on a tainted node ran out, with the taint
/// manager's condition, event and delete for each.
pub fn reconcile_taint_eviction(s: &Snapshot, now: Timestamp) -> Vec<Action> {
    let tainted = no_execute_taints(s);
    if tainted.is_empty() {
        return Vec::new();
    }
    let pod_r = res("Pod", "");
    let mut actions = Vec::new();
    for pod in s.of("pods") {
        if !active(pod) {
            continue;
        }
        let Some(taints) = pod
            .pointer("/spec/nodeName")
            .and_then(Value::as_str)
            .and_then(|n| tainted.get(n))
        else {
            continue;
        };
        if deadline(pod, taints, now).is_none_or(|d| d > now) {
            continue;
        }
        let (ns, name) = (meta::namespace(pod), meta::name(pod));
        let mut conditions: Vec<Value> = pod
            .pointer("/status/conditions")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        conditions.retain(|c| str_at(c, "/type") != Some("DisruptionTarget"));
        conditions.push(json!({"type": "DisruptionTarget", "status": "True",
            "reason": "DeletionByTaintManager",
            "message": "Taint manager: deleting due to NoExecute taint",
            "lastTransitionTime": now.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()}));
        actions.push(Action::Patch {
            resource: pod_r,
            namespace: ns.to_string(),
            name: name.to_string(),
            patch: json!({"status": {"conditions": conditions}}),
            status: true,
        });
        actions.push(Action::Event {
            object: (**pod).clone(),
            reason: "TaintManagerEviction",
            message: format!("Marking for deletion Pod {ns}/{name}"),
        });
        actions.push(Action::Delete {
            resource: pod_r,
            namespace: ns.to_string(),
            name: name.to_string(),
        });
    }
    actions
}

/// When the next pod on a tainted node runs out of toleration.
pub fn next_eviction(s: &Snapshot, now: Timestamp) -> Option<Timestamp> {
    let tainted = no_execute_taints(s);
    if tainted.is_empty() {
        return None;
    }
    s.of("pods")
        .iter()
        .filter(|p| active(p))
        .filter_map(|p| {
            let taints = tainted.get(p.pointer("/spec/nodeName")?.as_str()?)?;
            deadline(p, taints, now)
        })
        .filter(|d| *d > now)
        .min()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, taints: Value) -> (&'static str, Value) {
        (
            "nodes",
            json!({"metadata": {"name": name}, "spec": {"taints": taints}}),
        )
    }

    fn pod(name: &str, node: &str, tolerations: Value) -> (&'static str, Value) {
        (
            "pods",
            json!({"metadata": {"name": name, "namespace": "d"},
            "spec": {"nodeName": node, "tolerations": tolerations},
            "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "False"}]}}),
        )
    }

    fn at(t: &str) -> Timestamp {
        t.parse().unwrap()
    }

    fn deleted(actions: &[Action]) -> Vec<String> {
        let mut names: Vec<String> = actions
            .iter()
            .filter_map(|a| match a {
                Action::Delete { name, .. } => Some(name.clone()),
                _ => None,
            })
            .collect();
        names.sort();
        names
    }

    const UNREACHABLE: &str = "node.kubernetes.io/unreachable";

    #[test]
    fn pods_go_when_their_toleration_of_a_lost_node_runs_out() {
        let taint = json!([{"key": UNREACHABLE, "effect": "NoExecute", "timeAdded": "2026-01-01T00:00:00Z"},
            {"key": UNREACHABLE, "effect": "NoSchedule"}]);
        let for_secs = |s: i64| json!([{"key": UNREACHABLE, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": s}]);
        let s = Snapshot::of_objects(vec![
            node("lost", taint),
            node(
                "fine",
                json!([{"key": "dedicated", "effect": "NoSchedule"}]),
            ),
            pod("untolerated", "lost", json!([])),
            pod("brief", "lost", for_secs(30)),
            pod("patient", "lost", for_secs(300)),
            pod("forever", "lost", json!([{"operator": "Exists"}])),
            pod("elsewhere", "fine", json!([])),
        ]);
        let early = reconcile_taint_eviction(&s, at("2026-01-01T00:00:10Z"));
        assert_eq!(deleted(&early), ["untolerated"]);
        let cond = early
            .iter()
            .find_map(|a| match a {
                Action::Patch { patch, .. } => Some(patch.clone()),
                _ => None,
            })
            .unwrap();
        let conditions = cond["status"]["conditions"].as_array().unwrap();
        assert_eq!(conditions[0]["type"], "Ready", "the others stay");
        assert_eq!(conditions[1]["reason"], "DeletionByTaintManager");
        assert!(early.iter().any(|a| matches!(a,
            Action::Event { reason: "TaintManagerEviction", message, .. } if message == "Marking for deletion Pod d/untolerated")));
        assert_eq!(
            next_eviction(&s, at("2026-01-01T00:00:10Z")),
            Some(at("2026-01-01T00:00:30Z"))
        );
        assert_eq!(
            deleted(&reconcile_taint_eviction(&s, at("2026-01-01T00:00:30Z"))),
            ["brief", "untolerated"]
        );
        assert_eq!(
            deleted(&reconcile_taint_eviction(&s, at("2026-01-01T01:00:00Z"))),
            ["brief", "patient", "untolerated"]
        );
    }

    #[test]
    fn nothing_is_looked_at_without_no_execute_taints_and_terminating_pods_are_left() {
        let s = Snapshot::of_objects(vec![
            node("a", json!([{"key": "x", "effect": "NoSchedule"}])),
            pod("p", "a", json!([])),
        ]);
        assert!(reconcile_taint_eviction(&s, at("2026-01-01T00:00:00Z")).is_empty());
        assert_eq!(next_eviction(&s, at("2026-01-01T00:00:00Z")), None);
        let mut going = pod("going", "b", json!([])).1;
        going["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
        let s = Snapshot::of_objects(vec![
            node("b", json!([{"key": "x", "effect": "NoExecute"}])),
            ("pods", going),
        ]);
        assert!(reconcile_taint_eviction(&s, at("2026-01-01T00:00:00Z")).is_empty());
    }
}

//! Node lifecycle: a node whose agent has neither renewed its Lease nor
//! posted its status for the grace period is unreachable. Its conditions
//! become `Unknown` (`NodeStatusUnknown`), it is tainted
//! `node.kubernetes.io/unreachable` (`NoSchedule` and `NoExecute`), and its
//! pods are marked not Ready, so Services stop sending them connections.
//! An agent posting `Ready` again lifts the taints and writes its pods'
//! statuses anew. A reachable node's pressure conditions, a
//! `NetworkUnavailable` condition and a cordon become `NoSchedule` taints
//! (`node.kubernetes.io/memory-pressure`, …, `unschedulable`), as
//! Kubernetes' `TaintNodesByCondition` does, so only pods tolerating them
//! are placed there. Pods bound to a Node that no longer exists are deleted
//! at once (the pod garbage collector's orphans): nothing is left to run or
//! end them.
//!
//! A pass looks at every Node but only at the pods that changed since the
//! last ([`Snapshot::changed_pods`]): a pod's standing changes with the pod
//! or with its Node, and a changed Node or a timer's wake-up looks at every
//! pod again.

use std::collections::{BTreeMap, BTreeSet};

use jiff::{SignedDuration, Timestamp};
use serde_json::{Value, json};

use super::{Action, Snapshot, pod_ready, res};
use shoal_machinery::meta::{self, str_at};

/// How long a node may stay silent before it is unreachable, unless
/// configured (the controller manager's `--node-monitor-grace-period`).
pub const GRACE: SignedDuration = SignedDuration::from_secs(40);

/// The taint of a node whose agent stopped reporting.
const UNREACHABLE: &str = "node.kubernetes.io/unreachable";
/// The taint of a node whose agent reports it not ready.
const NOT_READY: &str = "node.kubernetes.io/not-ready";

fn time(o: &Value, pointer: &str) -> Option<Timestamp> {
    str_at(o, pointer).and_then(|t| t.parse().ok())
}

fn condition<'a>(node: &'a Value, kind: &str) -> Option<&'a Value> {
    node.pointer("/status/conditions")?
        .as_array()?
        .iter()
        .find(|c| c.get("type").and_then(Value::as_str) == Some(kind))
}

/// When the node's agent was last heard from: its Lease, its Ready
/// condition's heartbeat, the Node's creation, or `since` (when the
/// controller started: a control plane that was down gives every agent
/// the grace period anew).
fn last_heard(
    node: &Value,
    leases: &BTreeMap<&str, &Value>,
    since: Timestamp,
) -> Option<Timestamp> {
    let lease = leases
        .get(meta::name(node))
        .and_then(|l| time(l, "/spec/renewTime"));
    let heartbeat = condition(node, "Ready").and_then(|c| time(c, "/lastHeartbeatTime"));
    let created = time(node, "/metadata/creationTimestamp");
    [lease, heartbeat, created, Some(since)]
        .into_iter()
        .flatten()
        .max()
}

fn ready_status(node: &Value) -> &str {
    condition(node, "Ready")
        .and_then(|c| str_at(c, "/status"))
        .unwrap_or("Unknown")
}

fn stamp(t: Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// The node's Leases by name.
fn leases(s: &Snapshot) -> BTreeMap<&str, &Value> {
    s.of("leases")
        .iter()
        .filter(|l| meta::namespace(l) == "kube-node-lease")
        .map(|l| (meta::name(l), &**l))
        .collect()
}

/// The condition taints (`TaintNodesByCondition`): a node under pressure,
/// without a network or cordoned takes no new pods but those tolerating it.
const BY_CONDITION: [(&str, &str); 4] = [
    ("MemoryPressure", "node.kubernetes.io/memory-pressure"),
    ("DiskPressure", "node.kubernetes.io/disk-pressure"),
    ("PIDPressure", "node.kubernetes.io/pid-pressure"),
    (
        "NetworkUnavailable",
        "node.kubernetes.io/network-unavailable",
    ),
];
/// The taint of a cordoned node (`spec.unschedulable`).
const UNSCHEDULABLE: &str = "node.kubernetes.io/unschedulable";

/// The taints the lifecycle manages for a node whose Ready status is
/// `ready`: key and effect.
fn lifecycle_taints(node: &Value, ready: &str) -> Vec<(&'static str, &'static str)> {
    let mut out = Vec::new();
    let key = match ready {
        "True" => None,
        "False" => Some(NOT_READY),
        _ => Some(UNREACHABLE),
    };
    if let Some(key) = key {
        out.extend([(key, "NoSchedule"), (key, "NoExecute")]);
    }
    // The conditions of a silent node are unknown, so none holds.
    if ready != "Unknown" {
        for (kind, key) in BY_CONDITION {
            if condition(node, kind).and_then(|c| str_at(c, "/status")) == Some("True") {
                out.push((key, "NoSchedule"));
            }
        }
    }
    if node.pointer("/spec/unschedulable") == Some(&json!(true)) {
        out.push((UNSCHEDULABLE, "NoSchedule"));
    }
    out
}

/// Whether the lifecycle owns taints under `key`.
fn managed(key: &str) -> bool {
    key == UNREACHABLE
        || key == NOT_READY
        || key == UNSCHEDULABLE
        || BY_CONDITION.iter().any(|(_, k)| *k == key)
}

/// The taints a node should carry for its Ready status, conditions and
/// cordon: those of the lifecycle replaced (a kept one keeps its
/// `timeAdded`), every other kept; null for none.
fn taints(node: &Value, ready: &str, now: Timestamp) -> Value {
    let current = node
        .pointer("/spec/taints")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let wanted = lifecycle_taints(node, ready);
    let is = |t: &Value, (key, effect): (&str, &str)| {
        str_at(t, "/key") == Some(key) && str_at(t, "/effect") == Some(effect)
    };
    let mut out: Vec<Value> = current
        .iter()
        .filter(|t| {
            !managed(str_at(t, "/key").unwrap_or_default()) || wanted.iter().any(|w| is(t, *w))
        })
        .cloned()
        .collect();
    for (key, effect) in wanted {
        if !out.iter().any(|t| is(t, (key, effect))) {
            let mut t = json!({"key": key, "effect": effect});
            if effect == "NoExecute" {
                t["timeAdded"] = json!(stamp(now));
            }
            out.push(t);
        }
    }
    if out.is_empty() {
        Value::Null
    } else {
        Value::Array(out)
    }
}

/// The object's status conditions, each passed through `change`.
fn conditions_with(o: &Value, change: impl Fn(&mut Value)) -> Vec<Value> {
    let mut out = o
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    out.iter_mut().for_each(change);
    out
}

/// Every condition of `node` as `Unknown`, as the controller writes them
/// for a silent node.
fn unknown_conditions(node: &Value, now: Timestamp) -> Value {
    let mut out = conditions_with(node, |c| {
        if str_at(c, "/status") != Some("Unknown") {
            c["lastTransitionTime"] = json!(stamp(now));
        }
        c["status"] = json!("Unknown");
        c["reason"] = json!("NodeStatusUnknown");
        c["message"] = json!("Kubelet stopped posting node status.");
    });
    if !out.iter().any(|c| str_at(c, "/type") == Some("Ready")) {
        out.push(
            json!({"type": "Ready", "status": "Unknown", "reason": "NodeStatusUnknown",
            "message": "Kubelet never posted node status.", "lastTransitionTime": stamp(now)}),
        );
    }
    Value::Array(out)
}

/// The pod's conditions with Ready false.
fn not_ready(pod: &Value, now: Timestamp) -> Value {
    Value::Array(conditions_with(pod, |c| {
        if str_at(c, "/type") == Some("Ready") {
            c["status"] = json!("False");
            c["lastTransitionTime"] = json!(stamp(now));
        }
    }))
}

/// Marks silent nodes unreachable and their pods not Ready, lifts the
/// taints of nodes that are back, and deletes pods of vanished nodes.
pub fn reconcile_node_lifecycle(
    s: &Snapshot,
    now: Timestamp,
    since: Timestamp,
    grace: SignedDuration,
) -> Vec<Action> {
    let node_r = res("Node", "");
    let pod_r = res("Pod", "");
    let leases = leases(s);
    let mut actions = Vec::new();
    let mut down = BTreeSet::new();
    let mut nodes = BTreeSet::new();
    for node in s.of("nodes") {
        let name = meta::name(node);
        nodes.insert(name);
        let silent = last_heard(node, &leases, since).is_none_or(|t| now.duration_since(t) > grace);
        let mut ready = ready_status(node);
        if silent && ready != "Unknown" {
            actions.push(Action::Patch {
                resource: node_r,
                namespace: String::new(),
                name: name.to_string(),
                patch: json!({"status": {"conditions": unknown_conditions(node, now)}}),
                status: true,
            });
            actions.push(Action::Event {
                object: (**node).clone(),
                reason: "NodeNotReady",
                message: format!("Node {name} status is now: NodeNotReady"),
            });
            ready = "Unknown";
        }
        let want = taints(node, ready, now);
        let have = node.pointer("/spec/taints").cloned().unwrap_or(Value::Null);
        if want != have {
            actions.push(Action::Patch {
                resource: node_r,
                namespace: String::new(),
                name: name.to_string(),
                patch: json!({"spec": {"taints": want}}),
                status: false,
            });
        }
        if ready != "True" {
            down.insert(name);
        }
    }
    for pod in s.changed_pods() {
        let Some(node) = node_name(pod) else {
            continue;
        };
        let (ns, name) = (
            meta::namespace(pod).to_string(),
            meta::name(pod).to_string(),
        );
        if !nodes.contains(node) {
            // A pod bound to a node that is yet to register is given the
            // grace period first (the pod collector's quarantine).
            let created = time(pod, "/metadata/creationTimestamp");
            if created.is_none_or(|t| now.duration_since(t) > grace) {
                actions.push(Action::DeleteNow {
                    resource: pod_r,
                    namespace: ns,
                    name,
                });
            }
        } else if down.contains(node) && pod_ready(pod) {
            actions.push(Action::Patch {
                resource: pod_r,
                namespace: ns,
                name,
                patch: json!({"status": {"conditions": not_ready(pod, now)}}),
                status: true,
            });
        }
    }
    actions
}

/// The node a pod is bound to.
fn node_name(pod: &Value) -> Option<&str> {
    pod.get("spec")?.get("nodeName")?.as_str()
}

/// When the next node falls silent if its agent says nothing more.
pub fn next_silence(s: &Snapshot, since: Timestamp, grace: SignedDuration) -> Option<Timestamp> {
    let leases = leases(s);
    s.of("nodes")
        .iter()
        .filter(|n| ready_status(n) != "Unknown")
        .filter_map(|n| last_heard(n, &leases, since))
        .min()
        .and_then(|t| t.checked_add(grace).ok())
}

/// When the next of the pods that may have changed, bound to a node that
/// is missing, has waited out its grace. Pods that did not change keep the
/// deadline an earlier pass found; the caller holds it.
pub fn next_orphan_deadline(s: &Snapshot, grace: SignedDuration) -> Option<Timestamp> {
    let nodes: BTreeSet<&str> = s.of("nodes").iter().map(|n| meta::name(n)).collect();
    s.changed_pods()
        .filter(|p| node_name(p).is_some_and(|n| !nodes.contains(n)))
        .filter_map(|p| time(p, "/metadata/creationTimestamp"))
        .min()
        .and_then(|t| t.checked_add(grace).ok())
}

#[cfg(test)]
mod tests {

    use super::*;

    fn node(name: &str, heartbeat: &str, ready: &str) -> Value {
        json!({"metadata": {"name": name, "creationTimestamp": "2026-01-01T00:00:00Z"},
            "status": {"conditions": [
                {"type": "Ready", "status": ready, "lastHeartbeatTime": heartbeat},
                {"type": "MemoryPressure", "status": "False", "lastHeartbeatTime": heartbeat}]}})
    }

    fn pod(name: &str, node: &str, ready: &str) -> Value {
        json!({"metadata": {"name": name, "namespace": "d"}, "spec": {"nodeName": node},
            "status": {"phase": "Running", "conditions": [
                {"type": "PodScheduled", "status": "True"}, {"type": "Ready", "status": ready}]}})
    }

    fn snapshot(items: Vec<(&'static str, Value)>) -> Snapshot {
        Snapshot::of_objects(items)
    }

    fn at(t: &str) -> Timestamp {
        t.parse().unwrap()
    }

    #[test]
    fn a_silent_node_is_unreachable_and_its_pods_not_ready() {
        let s = snapshot(vec![
            ("nodes", node("a", "2026-01-01T00:00:00Z", "True")),
            ("nodes", node("b", "2026-01-01T00:00:30Z", "True")),
            ("pods", pod("on-a", "a", "True")),
            ("pods", pod("on-b", "b", "True")),
        ]);
        let actions = reconcile_node_lifecycle(
            &s,
            at("2026-01-01T00:00:45Z"),
            at("2026-01-01T00:00:00Z"),
            GRACE,
        );
        let mut conditions = None;
        let mut taint = None;
        let mut pods = Vec::new();
        for a in &actions {
            match a {
                Action::Patch {
                    resource: r,
                    name,
                    patch: p,
                    status: true,
                    ..
                } if r.plural == "nodes" => {
                    assert_eq!(name, "a");
                    conditions = Some(p.clone());
                }
                Action::Patch {
                    resource: r,
                    name,
                    patch: p,
                    status: false,
                    ..
                } if r.plural == "nodes" => {
                    assert_eq!(name, "a");
                    taint = Some(p.clone());
                }
                Action::Patch {
                    resource: r,
                    name,
                    patch: p,
                    status: true,
                    ..
                } if r.plural == "pods" => {
                    pods.push(name.clone());
                    assert_eq!(p["status"]["conditions"][1]["status"], "False");
                    assert_eq!(p["status"]["conditions"][0]["status"], "True");
                }
                Action::Event { .. } => {}
                other => panic!("unexpected {other:?}"),
            }
        }
        let c = conditions.unwrap();
        for cond in c["status"]["conditions"].as_array().unwrap() {
            assert_eq!(cond["status"], "Unknown");
            assert_eq!(cond["reason"], "NodeStatusUnknown");
        }
        let t = taint.unwrap();
        assert_eq!(t["spec"]["taints"][0]["key"], UNREACHABLE);
        assert_eq!(t["spec"]["taints"].as_array().unwrap().len(), 2);
        assert_eq!(pods, ["on-a"]);
    }

    #[test]
    fn a_lease_keeps_a_node_reachable() {
        let s = snapshot(vec![
            ("nodes", node("a", "2026-01-01T00:00:00Z", "True")),
            (
                "leases",
                json!({"metadata": {"name": "a", "namespace": "kube-node-lease"},
                    "spec": {"renewTime": "2026-01-01T00:00:40.000000Z"}}),
            ),
        ]);
        assert!(
            reconcile_node_lifecycle(
                &s,
                at("2026-01-01T00:01:00Z"),
                at("2026-01-01T00:00:00Z"),
                GRACE
            )
            .is_empty()
        );
        assert_eq!(
            next_silence(&s, at("2026-01-01T00:00:00Z"), GRACE),
            Some(at("2026-01-01T00:01:20Z"))
        );
    }

    #[test]
    fn a_control_plane_back_from_downtime_gives_agents_the_grace_anew() {
        let s = snapshot(vec![("nodes", node("a", "2026-01-01T00:00:00Z", "True"))]);
        let since = at("2026-01-01T01:00:00Z");
        assert!(reconcile_node_lifecycle(&s, at("2026-01-01T01:00:30Z"), since, GRACE).is_empty());
        assert!(!reconcile_node_lifecycle(&s, at("2026-01-01T01:00:41Z"), since, GRACE).is_empty());
    }

    #[test]
    fn a_node_back_loses_its_taints_and_other_taints_stay() {
        let mut n = node("a", "2026-01-01T00:01:00Z", "True");
        n["spec"] = json!({"taints": [
            {"key": UNREACHABLE, "effect": "NoSchedule"},
            {"key": UNREACHABLE, "effect": "NoExecute"},
            {"key": "dedicated", "value": "x", "effect": "NoSchedule"}]});
        let s = snapshot(vec![("nodes", n)]);
        let actions = reconcile_node_lifecycle(
            &s,
            at("2026-01-01T00:01:05Z"),
            at("2026-01-01T00:00:00Z"),
            GRACE,
        );
        assert_eq!(actions.len(), 1);
        let Action::Patch {
            patch: p,
            status: false,
            ..
        } = &actions[0]
        else {
            panic!("{actions:?}")
        };
        assert_eq!(
            p["spec"]["taints"],
            json!([{"key": "dedicated", "value": "x", "effect": "NoSchedule"}])
        );
    }

    #[test]
    fn pressure_and_cordon_become_no_schedule_taints_while_the_node_reports() {
        let mut n = node("a", "2026-01-01T00:01:00Z", "True");
        n["status"]["conditions"][1]["status"] = json!("True");
        n["status"]["conditions"]
            .as_array_mut()
            .unwrap()
            .push(json!({"type": "DiskPressure", "status": "False"}));
        n["spec"] = json!({"unschedulable": true, "taints": [
            {"key": "node.kubernetes.io/pid-pressure", "effect": "NoSchedule"},
            {"key": "dedicated", "value": "x", "effect": "NoSchedule"}]});
        let taints_after = |n: &Value, now: &str| {
            let s = snapshot(vec![("nodes", n.clone())]);
            reconcile_node_lifecycle(&s, at(now), at("2026-01-01T00:00:00Z"), GRACE)
                .into_iter()
                .find_map(|a| match a {
                    Action::Patch {
                        patch,
                        status: false,
                        ..
                    } => Some(patch["spec"]["taints"].clone()),
                    _ => None,
                })
        };
        assert_eq!(
            taints_after(&n, "2026-01-01T00:01:05Z"),
            Some(json!([
                {"key": "dedicated", "value": "x", "effect": "NoSchedule"},
                {"key": "node.kubernetes.io/memory-pressure", "effect": "NoSchedule"},
                {"key": UNSCHEDULABLE, "effect": "NoSchedule"}]))
        );
        // Silent: unreachable, and its conditions no longer count.
        let t = taints_after(&n, "2026-01-01T00:05:00Z").unwrap();
        let keys: Vec<&str> = t
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|t| str_at(t, "/key"))
            .collect();
        assert_eq!(keys, ["dedicated", UNREACHABLE, UNREACHABLE, UNSCHEDULABLE]);
        // Taints as wanted already: nothing to write.
        n["spec"]["taints"] = taints_after(&n, "2026-01-01T00:01:05Z").unwrap();
        assert_eq!(taints_after(&n, "2026-01-01T00:01:05Z"), None);
    }

    #[test]
    fn a_pass_looks_only_at_pods_that_changed_unless_a_node_did() {
        let mut s = snapshot(vec![
            ("nodes", node("a", "2026-01-01T00:00:00Z", "True")),
            ("pods", pod("orphan", "gone", "True")),
        ]);
        let (now, since) = (at("2026-01-01T00:01:00Z"), at("2026-01-01T00:00:00Z"));
        let deletes = |s: &Snapshot| {
            reconcile_node_lifecycle(s, now, since, GRACE)
                .iter()
                .filter(|a| matches!(a, Action::DeleteNow { name, .. } if name == "orphan"))
                .count()
        };
        s.dirty = Some(crate::Dirty::namespaces(["elsewhere"]));
        assert_eq!(deletes(&s), 0, "pods of unchanged namespaces are not read");
        assert_eq!(next_orphan_deadline(&s, GRACE), None);
        let mut d = crate::Dirty::namespaces(["d"]);
        s.dirty = Some(d.clone());
        assert_eq!(deletes(&s), 0, "only the pods that changed are read");
        d.pod_names.insert("d/orphan".into());
        s.dirty = Some(d);
        assert_eq!(deletes(&s), 1);
        let mut d = crate::Dirty::namespaces(["elsewhere"]);
        d.nodes = true;
        s.dirty = Some(d);
        assert_eq!(deletes(&s), 1, "a changed node looks at every pod");
        s.dirty = None;
        assert_eq!(deletes(&s), 1);
    }

    #[test]
    fn pods_of_a_vanished_node_are_deleted_at_once() {
        let mut young = pod("young", "coming", "True");
        young["metadata"]["creationTimestamp"] = json!("2026-01-01T00:00:00Z");
        let s = snapshot(vec![
            ("nodes", node("a", "2026-01-01T00:00:00Z", "True")),
            ("pods", pod("kept", "a", "True")),
            ("pods", pod("orphan", "gone", "True")),
            ("pods", young),
            (
                "pods",
                json!({"metadata": {"name": "pending", "namespace": "d"}, "spec": {}}),
            ),
        ]);
        let actions = reconcile_node_lifecycle(
            &s,
            at("2026-01-01T00:00:10Z"),
            at("2026-01-01T00:00:00Z"),
            GRACE,
        );
        assert!(
            matches!(&actions[..], [Action::DeleteNow { resource: r, namespace: ns, name }] if r.plural == "pods" && ns == "d" && name == "orphan"),
            "{actions:?}"
        );
    }
}

//! The disruption controller, as Kubernetes': each PodDisruptionBudget's
//! status says how many of its pods are expected (`expectedPods`: the
//! pods for an integer `minAvailable`, else the scale of their
//! controllers), how many must stay healthy (`desiredHealthy`), how many
//! are (`currentHealthy`: ready, not going, not just evicted) and so how
//! many may be disrupted now (`disruptionsAllowed`), which the eviction
//! subresource spends. Evictions recorded in `disruptedPods` are dropped
//! once their pod is going or gone, or after two minutes.

use std::collections::BTreeSet;

use jiff::{SignedDuration, Timestamp};
use serde_json::{Map, Value, json};

use super::{Action, Snapshot, pod_ready, res};
use shoal_machinery::meta::{self, str_at};
use shoal_machinery::selectors::LabelSelector;

/// How long an eviction counts against a budget before its pod must be
/// going (Kubernetes' `DeletionTimeout`).
const EVICTION_TIMEOUT: SignedDuration = SignedDuration::from_secs(120);

/// An `IntOrString` of a budget: a count, or a percentage of `of` rounded
/// up.
fn amount(v: &Value, of: i64) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => {
            let pct: i64 = s.strip_suffix('%')?.parse().ok()?;
            Some((of * pct + 99) / 100)
        }
        _ => None,
    }
}

/// The replicas the controller of `pod` wants: a ReplicaSet's (its
/// Deployment's when a Deployment owns it), a StatefulSet's or a
/// ReplicationController's, with the controller's identity; a pod without
/// such a controller counts as one.
fn controller_scale(s: &Snapshot, pod: &Value) -> (String, i64) {
    let ns = meta::namespace(pod);
    let controller = pod
        .pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .find(|o| o.get("controller") == Some(&json!(true)));
    let replicas = |plural: &str, name: &str| {
        s.by_key(plural, &format!("{ns}/{name}")).map(|o| {
            (
                o.clone(),
                o.pointer("/spec/replicas")
                    .and_then(Value::as_i64)
                    .unwrap_or(1),
            )
        })
    };
    let Some(c) = controller else {
        return (format!("pod/{}", meta::uid(pod)), 1);
    };
    let (kind, name) = (
        str_at(c, "/kind").unwrap_or_default(),
        str_at(c, "/name").unwrap_or_default(),
    );
    let found = match kind {
        "ReplicaSet" => replicas("replicasets", name).map(|(rs, n)| {
            let deployment = rs
                .pointer("/metadata/ownerReferences")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .find(|o| str_at(o, "/kind") == Some("Deployment"))
                .and_then(|d| str_at(d, "/name"))
                .and_then(|d| replicas("deployments", d).map(|(_, n)| (d.to_string(), n)));
            match deployment {
                Some((d, n)) => (format!("Deployment/{d}"), n),
                None => (format!("ReplicaSet/{name}"), n),
            }
        }),
        "StatefulSet" => {
            replicas("statefulsets", name).map(|(_, n)| (format!("StatefulSet/{name}"), n))
        }
        "ReplicationController" => replicas("replicationcontrollers", name)
            .map(|(_, n)| (format!("ReplicationController/{name}"), n)),
        _ => None,
    };
    found.unwrap_or_else(|| (format!("pod/{}", meta::uid(pod)), 1))
}

/// A budget's status as the pods and controllers of `s` make it.
fn status(s: &Snapshot, pdb: &Value, now: Timestamp) -> Value {
    let ns = meta::namespace(pdb);
    let selector = pdb
        .pointer("/spec/selector")
        .filter(|s| s.is_object())
        .map(LabelSelector::from_object);
    let pods: Vec<&Value> = match &selector {
        // A budget without a selector selects no pod.
        None => Vec::new(),
        Some(sel) => s
            .in_namespace("pods", ns)
            .iter()
            .map(|p| &**p)
            .filter(|p| sel.matches_object(p))
            .filter(|p| !matches!(str_at(p, "/status/phase"), Some("Succeeded" | "Failed")))
            .collect(),
    };
    let going = |p: &Value| p.pointer("/metadata/deletionTimestamp").is_some();
    // Evictions still under way: their pod is here, not yet going, and
    // the eviction is recent.
    let mut disrupted = Map::new();
    if let Some(recorded) = pdb
        .pointer("/status/disruptedPods")
        .and_then(Value::as_object)
    {
        for (name, at) in recorded {
            let recent = at
                .as_str()
                .and_then(|t| t.parse::<Timestamp>().ok())
                .is_some_and(|t| now.duration_since(t) < EVICTION_TIMEOUT);
            let waiting = pods.iter().any(|p| meta::name(p) == name && !going(p));
            if recent && waiting {
                disrupted.insert(name.clone(), at.clone());
            }
        }
    }
    let healthy = pods
        .iter()
        .filter(|p| !going(p) && pod_ready(p) && !disrupted.contains_key(meta::name(p)))
        .count() as i64;
    let scale = || {
        let mut seen = BTreeSet::new();
        pods.iter()
            .map(|p| controller_scale(s, p))
            .filter(|(id, _)| seen.insert(id.clone()))
            .map(|(_, n)| n)
            .sum::<i64>()
    };
    let (expected, desired) = match (
        pdb.pointer("/spec/minAvailable"),
        pdb.pointer("/spec/maxUnavailable"),
    ) {
        (Some(min @ Value::Number(_)), _) => (pods.len() as i64, amount(min, 0).unwrap_or(0)),
        (Some(min), _) => {
            let expected = scale();
            (expected, amount(min, expected).unwrap_or(0))
        }
        (None, Some(max)) => {
            let expected = scale();
            let unavailable = amount(max, expected).unwrap_or(0);
            (expected, (expected - unavailable).max(0))
        }
        (None, None) => (pods.len() as i64, 0),
    };
    let allowed = (healthy - desired).max(0);
    json!({
        "observedGeneration": pdb.pointer("/metadata/generation").cloned().unwrap_or(json!(1)),
        "disruptedPods": disrupted,
        "disruptionsAllowed": allowed,
        "currentHealthy": healthy,
        "desiredHealthy": desired,
        "expectedPods": expected,
    })
}

/// Brings every budget's status up to date.
pub fn reconcile_disruption_budgets(s: &Snapshot, now: Timestamp) -> Vec<Action> {
    let pdb_r = res("PodDisruptionBudget", "policy");
    let mut actions = Vec::new();
    for pdb in s.of("poddisruptionbudgets") {
        let mut want = status(s, pdb, now);
        let have = pdb.get("status").cloned().unwrap_or(json!({}));
        let allowed = want["disruptionsAllowed"].as_i64().unwrap_or(0) > 0;
        let (state, reason) = if allowed {
            ("True", "SufficientPods")
        } else {
            ("False", "InsufficientPods")
        };
        let previous = have
            .get("conditions")
            .and_then(Value::as_array)
            .and_then(|cs| {
                cs.iter()
                    .find(|c| str_at(c, "/type") == Some("DisruptionAllowed"))
            });
        let since = previous
            .filter(|c| str_at(c, "/status") == Some(state))
            .and_then(|c| c.get("lastTransitionTime").cloned())
            .unwrap_or_else(|| json!(now.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()));
        want["conditions"] = json!([{"type": "DisruptionAllowed", "status": state,
            "reason": reason, "message": "", "observedGeneration": want["observedGeneration"],
            "lastTransitionTime": since}]);
        let same = want.as_object().into_iter().flatten().all(|(k, v)| {
            have.get(k) == Some(v)
                || (k == "disruptedPods" && v == &json!({}) && have.get(k).is_none())
        });
        if !same {
            actions.push(Action::Patch {
                resource: pdb_r,
                namespace: meta::namespace(pdb).to_string(),
                name: meta::name(pdb).to_string(),
                // `disruptedPods` whole: entries dropped are set to null.
                patch: json!({"status": with_nulls(want, &have)}),
                status: true,
            });
        }
    }
    actions
}

/// `want` as a merge patch over `have`: `disruptedPods` entries `have`
/// holds and `want` does not become null.
fn with_nulls(mut want: Value, have: &Value) -> Value {
    if let Some(old) = have.get("disruptedPods").and_then(Value::as_object) {
        let new = want["disruptedPods"].as_object_mut();
        if let Some(new) = new {
            for k in old.keys() {
                new.entry(k.clone()).or_insert(Value::Null);
            }
        }
    }
    want
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str, ready: bool, owner: Option<&str>) -> (&'static str, Value) {
        let mut p = json!({"metadata": {"name": name, "namespace": "d", "uid": name, "labels": {"app": "web"}},
            "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]}});
        if let Some(rs) = owner {
            p["metadata"]["ownerReferences"] =
                json!([{"kind": "ReplicaSet", "name": rs, "controller": true}]);
        }
        ("pods", p)
    }

    fn pdb(spec: Value) -> (&'static str, Value) {
        let mut spec = spec;
        spec["selector"] = json!({"matchLabels": {"app": "web"}});
        (
            "poddisruptionbudgets",
            json!({"metadata": {"name": "web", "namespace": "d", "generation": 2}, "spec": spec}),
        )
    }

    fn at(t: &str) -> Timestamp {
        t.parse().unwrap()
    }

    fn patched(s: &Snapshot) -> Value {
        let actions = reconcile_disruption_budgets(s, at("2026-01-01T00:00:00Z"));
        match actions.as_slice() {
            [Action::Patch { patch, .. }] => patch["status"].clone(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn min_available_counts_ready_pods() {
        let s = Snapshot::of_objects(vec![
            pdb(json!({"minAvailable": 2})),
            pod("a", true, None),
            pod("b", true, None),
            pod("c", true, None),
            pod("d", false, None),
        ]);
        let st = patched(&s);
        assert_eq!(
            (
                &st["expectedPods"],
                &st["desiredHealthy"],
                &st["currentHealthy"],
                &st["disruptionsAllowed"]
            ),
            (&json!(4), &json!(2), &json!(3), &json!(1))
        );
        assert_eq!(st["observedGeneration"], 2);
        assert_eq!(st["conditions"][0]["reason"], "SufficientPods");
    }

    #[test]
    fn max_unavailable_counts_against_the_controllers_scale() {
        let s = Snapshot::of_objects(vec![
            pdb(json!({"maxUnavailable": "25%"})),
            (
                "replicasets",
                json!({"metadata": {"name": "rs", "namespace": "d",
                "ownerReferences": [{"kind": "Deployment", "name": "web"}]}, "spec": {"replicas": 3}}),
            ),
            (
                "deployments",
                json!({"metadata": {"name": "web", "namespace": "d"}, "spec": {"replicas": 4}}),
            ),
            pod("a", true, Some("rs")),
            pod("b", true, Some("rs")),
            pod("c", true, Some("rs")),
        ]);
        let st = patched(&s);
        // Four wanted (the Deployment's), one may be unavailable: three
        // must be healthy, and three are.
        assert_eq!(st["expectedPods"], 4);
        assert_eq!(st["desiredHealthy"], 3);
        assert_eq!(st["disruptionsAllowed"], 0);
        assert_eq!(st["conditions"][0]["reason"], "InsufficientPods");
    }

    #[test]
    fn an_eviction_under_way_counts_until_its_pod_goes() {
        let (_, mut budget) = pdb(json!({"minAvailable": 1}));
        budget["status"] =
            json!({"disruptedPods": {"a": "2025-12-31T23:59:30Z", "gone": "2025-12-31T23:59:30Z"}});
        let s = Snapshot::of_objects(vec![
            ("poddisruptionbudgets", budget),
            pod("a", true, None),
            pod("b", true, None),
        ]);
        let st = patched(&s);
        assert_eq!(st["currentHealthy"], 1, "a is being evicted");
        assert_eq!(st["disruptionsAllowed"], 0);
        assert_eq!(st["disruptedPods"]["a"], "2025-12-31T23:59:30Z");
        assert_eq!(st["disruptedPods"]["gone"], Value::Null, "dropped");
    }

    #[test]
    fn an_unchanged_status_is_not_written_again() {
        let s = Snapshot::of_objects(vec![pdb(json!({"minAvailable": 1})), pod("a", true, None)]);
        let st = patched(&s);
        let (_, mut budget) = pdb(json!({"minAvailable": 1}));
        budget["status"] = st;
        let s = Snapshot::of_objects(vec![("poddisruptionbudgets", budget), pod("a", true, None)]);
        assert!(reconcile_disruption_budgets(&s, at("2026-01-01T00:05:00Z")).is_empty());
    }
}

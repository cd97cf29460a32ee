//! The scheduler: binds pending pods to Ready nodes with room for their
//! requests, honouring `nodeSelector`. [`decide`] is pure; [`run`] is the
//! loop that feeds it and writes the bindings.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use shoal_machinery::conditions::set_condition;
use shoal_machinery::meta::{self, str_at};
use shoal_registry::binding::bind;
use shoal_registry::objects::{Objects, PatchType, WriteOpts};
use shoal_registry::resources;

/// A CPU quantity in millicores, as the node grants it.
pub fn cpu_millis(q: &str) -> Option<i64> {
    shoal_quantity::millicores(q).map(i64::from)
}

/// A memory quantity in bytes, as the node grants it.
pub fn bytes(q: &str) -> Option<i64> {
    shoal_quantity::bytes(q).and_then(|b| i64::try_from(b).ok())
}

fn requests(pod: &Value) -> (i64, i64) {
    let Some(cs) = pod.pointer("/spec/containers").and_then(Value::as_array) else {
        return (0, 0);
    };
    cs.iter().fold((0, 0), |(c, m), ct| {
        let r = ct
            .pointer("/resources/requests")
            .or_else(|| ct.pointer("/resources/limits"));
        let cpu = r
            .and_then(|r| r.get("cpu"))
            .and_then(Value::as_str)
            .and_then(cpu_millis)
            .unwrap_or(0);
        let mem = r
            .and_then(|r| r.get("memory"))
            .and_then(Value::as_str)
            .and_then(bytes)
            .unwrap_or(0);
        (c + cpu, m + mem)
    })
}

fn node_ready(node: &Value) -> bool {
    meta::condition_true(node, "Ready") && node.pointer("/spec/unschedulable") != Some(&json!(true))
}

/// Whether a toleration tolerates a taint: the same key (an `Exists`
/// toleration without a key tolerates every taint), the same value unless
/// `Exists`, and the same effect unless the toleration names none.
pub fn tolerates(toleration: &Value, taint: &Value) -> bool {
    let field = |v: &Value, k: &str| {
        v.get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let exists = field(toleration, "operator") == "Exists";
    let key = field(toleration, "key");
    let effect = field(toleration, "effect");
    (effect.is_empty() || effect == field(taint, "effect"))
        && ((exists && key.is_empty())
            || (key == field(taint, "key")
                && (exists || field(toleration, "value") == field(taint, "value"))))
}

/// The first of `node`'s taints with one of `effects` that `tolerations`
/// do not tolerate.
pub fn untolerated_taint<'a>(
    tolerations: Option<&Value>,
    node: &'a Value,
    effects: &[&str],
) -> Option<&'a Value> {
    let tolerations = tolerations
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    node.pointer("/spec/taints")
        .and_then(Value::as_array)?
        .iter()
        .filter(|t| {
            t.get("effect")
                .and_then(Value::as_str)
                .is_some_and(|e| effects.contains(&e))
        })
        .find(|t| !tolerations.iter().any(|tol| tolerates(tol, t)))
}

/// Whether `node` satisfies a pod spec's `nodeSelector` and its required
/// node affinity (any term; within a term, every expression and field).
pub fn node_matches(spec: &Value, node: &Value) -> bool {
    let labels = node.pointer("/metadata/labels");
    let selector_ok = spec
        .get("nodeSelector")
        .and_then(Value::as_object)
        .is_none_or(|sel| {
            sel.iter()
                .all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v))
        });
    let Some(terms) = spec
        .pointer("/affinity/nodeAffinity/requiredDuringSchedulingIgnoredDuringExecution/nodeSelectorTerms")
        .and_then(Value::as_array)
    else {
        return selector_ok;
    };
    let requirement = |r: &Value, value: Option<&str>| {
        let values: Vec<&str> = r["values"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        let number = |s: Option<&str>| s.and_then(|s| s.parse::<i64>().ok());
        match r.get("operator").and_then(Value::as_str) {
            Some("In") => value.is_some_and(|v| values.contains(&v)),
            Some("NotIn") => value.is_none_or(|v| !values.contains(&v)),
            Some("Exists") => value.is_some(),
            Some("DoesNotExist") => value.is_none(),
            Some("Gt") => number(value)
                .zip(number(values.first().copied()))
                .is_some_and(|(a, b)| a > b),
            Some("Lt") => number(value)
                .zip(number(values.first().copied()))
                .is_some_and(|(a, b)| a < b),
            _ => false,
        }
    };
    let term_ok = |term: &Value| {
        let exprs = term["matchExpressions"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default();
        let fields = term["matchFields"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default();
        (!exprs.is_empty() || !fields.is_empty())
            && exprs.iter().all(|r| {
                let key = r.get("key").and_then(Value::as_str).unwrap_or_default();
                requirement(r, labels.and_then(|l| l.get(key)).and_then(Value::as_str))
            })
            && fields.iter().all(|r| {
                r.get("key").and_then(Value::as_str) == Some("metadata.name")
                    && requirement(r, Some(meta::name(node)))
            })
    };
    selector_ok && terms.iter().any(term_ok)
}

/// One decision: pod (namespace, name) goes to node, or why it cannot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Bind the pod to the node.
    Bind {
        /// Pod namespace.
        namespace: String,
        /// Pod name.
        pod: String,
        /// Node name.
        node: String,
    },
    /// No node fits.
    Unschedulable {
        /// Pod namespace.
        namespace: String,
        /// Pod name.
        pod: String,
        /// Why.
        message: String,
    },
}

/// Places every unbound pod, least-loaded node first.
pub fn decide(pods: &[&Value], nodes: &[&Value]) -> Vec<Decision> {
    struct Room<'a> {
        name: String,
        node: &'a Value,
        cpu: i64,
        mem: i64,
        pods: i64,
    }
    let mut rooms: Vec<Room> = nodes
        .iter()
        .filter(|n| node_ready(n))
        .map(|n| {
            let a = n.pointer("/status/allocatable");
            let get = |k: &str| a.and_then(|a| a.get(k)).and_then(Value::as_str);
            Room {
                name: meta::name(n).to_string(),
                node: n,
                cpu: get("cpu").and_then(cpu_millis).unwrap_or(i64::MAX),
                mem: get("memory").and_then(bytes).unwrap_or(i64::MAX),
                pods: get("pods").and_then(|p| p.parse().ok()).unwrap_or(110),
            }
        })
        .collect();
    let mut by_node: BTreeMap<&str, Vec<&Value>> = BTreeMap::new();
    for p in pods {
        if let Some(n) = str_at(p, "/spec/nodeName") {
            let done = matches!(str_at(p, "/status/phase"), Some("Succeeded" | "Failed"));
            if !done {
                by_node.entry(n).or_default().push(p);
            }
        }
    }
    for room in &mut rooms {
        for p in by_node.get(room.name.as_str()).into_iter().flatten() {
            let (c, m) = requests(p);
            room.cpu -= c;
            room.mem -= m;
            room.pods -= 1;
        }
    }
    let mut out = Vec::new();
    for p in pods.iter().filter(|p| {
        str_at(p, "/spec/nodeName").is_none() && p.pointer("/metadata/deletionTimestamp").is_none()
    }) {
        if str_at(p, "/spec/schedulerName").is_some_and(|s| s != "default-scheduler") {
            continue;
        }
        let (c, m) = requests(p);
        let spec = p.get("spec").unwrap_or(&Value::Null);
        let tolerations = spec.get("tolerations");
        // Why a node does not fit, in Kubernetes' words; None if it fits.
        let misfit = |r: &Room| -> Option<String> {
            if let Some(t) = untolerated_taint(tolerations, r.node, &["NoSchedule", "NoExecute"]) {
                let field = |k: &str| t.get(k).and_then(Value::as_str).unwrap_or_default();
                return Some(format!(
                    "node(s) had untolerated taint {{{}: {}}}",
                    field("key"),
                    field("value")
                ));
            }
            if !node_matches(spec, r.node) {
                return Some("node(s) didn't match Pod's node affinity/selector".into());
            }
            if r.pods <= 0 {
                return Some("Too many pods".into());
            }
            if r.cpu < c {
                return Some("Insufficient cpu".into());
            }
            (r.mem < m).then(|| "Insufficient memory".into())
        };
        let mut reasons: BTreeMap<String, usize> = BTreeMap::new();
        let best = rooms
            .iter_mut()
            .filter(|r| match misfit(r) {
                Some(why) => {
                    *reasons.entry(why).or_default() += 1;
                    false
                }
                None => true,
            })
            .max_by_key(|r| (r.pods, r.cpu));
        let (namespace, pod) = (meta::namespace(p).to_string(), meta::name(p).to_string());
        match best {
            Some(r) => {
                r.cpu -= c;
                r.mem -= m;
                r.pods -= 1;
                out.push(Decision::Bind {
                    namespace,
                    pod,
                    node: r.name.clone(),
                });
            }
            None => {
                let total = nodes.len();
                let down = total - rooms.len();
                if down > 0 {
                    reasons.insert("node(s) were not ready or were unschedulable".into(), down);
                }
                let why: Vec<String> = reasons.iter().map(|(r, n)| format!("{n} {r}")).collect();
                let message = format!("0/{total} nodes are available: {}.", why.join(", "));
                out.push(Decision::Unschedulable {
                    namespace,
                    pod,
                    message,
                });
            }
        }
    }
    out
}

/// Whether a change can change a decision: any change of a node, a new or
/// removed pod, and a pod that is unbound, finished or being deleted
/// (status updates of running pods do not).
fn wakes_scheduler(e: &shoal_store::Event) -> bool {
    use shoal_store::EventKind;
    if e.key.starts_with("nodes/") {
        return true;
    }
    if !e.key.starts_with("pods/") {
        return false;
    }
    let p = &e.object;
    e.kind != EventKind::Modified
        || str_at(p, "/spec/nodeName").is_none()
        || p.pointer("/metadata/deletionTimestamp").is_some()
        || matches!(str_at(p, "/status/phase"), Some("Succeeded" | "Failed"))
        || e.prev
            .as_ref()
            .and_then(|v| str_at(v, "/spec/nodeName"))
            .is_none()
}

/// Runs the scheduler until the task is dropped.
pub async fn run(objects: Objects) {
    let pods_r = resources::by_kind("", "Pod").expect("pods are served");
    let nodes_r = resources::by_kind("", "Node").expect("nodes are served");
    let mut reported: BTreeMap<String, String> = BTreeMap::new();
    let Ok((_, mut rx)) = objects.store().watch(None) else {
        return;
    };
    loop {
        let started = tokio::time::Instant::now();
        let (pods, _) = objects.store().list(&pods_r.prefix(None));
        let (nodes, _) = objects.store().list(&nodes_r.prefix(None));
        let pods: Vec<&Value> = pods.iter().map(|s| &*s.value).collect();
        let nodes: Vec<&Value> = nodes.iter().map(|s| &*s.value).collect();
        let (binds, unschedulable): (Vec<Decision>, Vec<Decision>) = decide(&pods, &nodes)
            .into_iter()
            .partition(|d| matches!(d, Decision::Bind { .. }));
        // Bindings of one pass go to the store together, so their writes
        // share log flushes.
        let bound = futures::future::join_all(binds.into_iter().map(|d| {
            let objects = &objects;
            async move {
                let Decision::Bind {
                    namespace,
                    pod,
                    node,
                } = d
                else {
                    return None;
                };
                match bind(objects, &namespace, &pod, &node).await {
                    Ok(()) => {
                        if let Ok(p) = objects.get(pods_r, &namespace, &pod) {
                            let msg = format!("Successfully assigned {namespace}/{pod} to {node}");
                            objects
                                .event(&p.value, "Normal", "Scheduled", &msg, "default-scheduler")
                                .await;
                        }
                        Some(format!("{namespace}/{pod}"))
                    }
                    Err(e) => {
                        tracing::debug!("binding {namespace}/{pod}: {e}");
                        None
                    }
                }
            }
        }))
        .await;
        for key in bound.into_iter().flatten() {
            reported.remove(&key);
        }
        // Forget pods that are no longer waiting (bound elsewhere, or gone).
        reported.retain(|key, _| {
            unschedulable.iter().any(|d| match d {
                Decision::Unschedulable { namespace, pod, .. } => {
                    key.split_once('/') == Some((namespace.as_str(), pod.as_str()))
                }
                Decision::Bind { .. } => false,
            })
        });
        for d in unschedulable {
            match d {
                Decision::Bind { .. } => {}
                Decision::Unschedulable {
                    namespace,
                    pod,
                    message,
                } => {
                    let key = format!("{namespace}/{pod}");
                    if reported.get(&key) != Some(&message) {
                        if let Ok(p) = objects.get(pods_r, &namespace, &pod) {
                            let mut v = (*p.value).clone();
                            set_condition(
                                &mut v,
                                "PodScheduled",
                                "False",
                                Some("Unschedulable"),
                                Some(&message),
                            );
                            let st = json!({"status": {"conditions": v["status"]["conditions"]}});
                            let _ = objects
                                .patch(
                                    pods_r,
                                    &namespace,
                                    &pod,
                                    PatchType::Merge,
                                    &st,
                                    Some(resources::Sub::Status),
                                    WriteOpts::default(),
                                )
                                .await;
                            objects
                                .event(
                                    &p.value,
                                    "Warning",
                                    "FailedScheduling",
                                    &message,
                                    "default-scheduler",
                                )
                                .await;
                        }
                        reported.insert(key, message);
                    }
                }
            }
        }
        // Wait for a change that can move a scheduling decision, then take
        // every queued change; a pass waits at least as long as the last
        // one took.
        let took = started.elapsed();
        loop {
            match rx.recv().await {
                Ok(e) if wakes_scheduler(&e) => break,
                Ok(_) => continue,
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => break,
                Err(_) => return,
            }
        }
        tokio::time::sleep(took.max(std::time::Duration::from_millis(1))).await;
        while rx.try_recv().is_ok() {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, ready: bool, labels: Value) -> Value {
        json!({"metadata": {"name": name, "labels": labels}, "status": {
            "allocatable": {"cpu": "2", "memory": "1Gi", "pods": "3"},
            "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]}})
    }

    fn pod(name: &str, cpu: &str, sel: Value) -> Value {
        json!({"metadata": {"name": name, "namespace": "d"}, "spec": {"nodeSelector": sel,
            "containers": [{"name": "c", "resources": {"requests": {"cpu": cpu}}}]}})
    }

    #[test]
    fn quantities() {
        assert_eq!(cpu_millis("100m"), Some(100));
        assert_eq!(cpu_millis("1.5"), Some(1500));
        assert_eq!(bytes("64Mi"), Some(64 << 20));
        assert_eq!(bytes("1G"), Some(1_000_000_000));
        assert_eq!(bytes("x"), None);
    }

    #[test]
    fn honours_readiness_selectors_and_capacity() {
        let (a, b) = (
            node("a", true, json!({"disk": "ssd"})),
            node("b", false, json!({})),
        );
        let p1 = pod("p1", "1500m", json!({"disk": "ssd"}));
        let p2 = pod("p2", "1", json!({}));
        let p3 = pod("p3", "100m", json!({"disk": "hdd"}));
        let got = decide(&[&p1, &p2, &p3], &[&a, &b]);
        assert_eq!(
            got[0],
            Decision::Bind {
                namespace: "d".into(),
                pod: "p1".into(),
                node: "a".into()
            }
        );
        assert!(
            matches!(got[1], Decision::Unschedulable { .. }),
            "only 500m left on a; b is not Ready"
        );
        assert!(matches!(got[2], Decision::Unschedulable { .. }));
    }

    fn placed(got: &[Decision]) -> Vec<String> {
        got.iter()
            .map(|d| match d {
                Decision::Bind { node, .. } => node.clone(),
                Decision::Unschedulable { message, .. } => message.clone(),
            })
            .collect()
    }

    #[test]
    fn taints_keep_pods_away_unless_tolerated() {
        let mut tainted = node("a", true, json!({"zone": "z1"}));
        tainted["spec"] = json!({"taints": [{"key": "gpu", "value": "yes", "effect": "NoSchedule"},
            {"key": "soft", "effect": "PreferNoSchedule"}]});
        let plain = pod("p", "100m", json!({}));
        let mut tolerant = pod("q", "100m", json!({}));
        tolerant["spec"]["tolerations"] =
            json!([{"key": "gpu", "operator": "Equal", "value": "yes", "effect": "NoSchedule"}]);
        let mut anything = pod("r", "100m", json!({}));
        anything["spec"]["tolerations"] = json!([{"operator": "Exists"}]);
        let mut wrong = pod("s", "100m", json!({}));
        wrong["spec"]["tolerations"] = json!([{"key": "gpu", "value": "no"}]);
        assert_eq!(
            placed(&decide(
                &[&plain, &tolerant, &anything, &wrong],
                &[&tainted]
            )),
            [
                "0/1 nodes are available: 1 node(s) had untolerated taint {gpu: yes}.",
                "a",
                "a",
                "0/1 nodes are available: 1 node(s) had untolerated taint {gpu: yes}.",
            ]
        );
    }

    #[test]
    fn required_node_affinity_picks_nodes() {
        let (a, b, c) = (
            node("a", true, json!({"zone": "z1", "cores": "8"})),
            node("b", true, json!({"zone": "z2", "cores": "2"})),
            node("c", false, json!({})),
        );
        let affine = |name: &str, terms: Value| {
            let mut p = pod(name, "100m", json!({}));
            p["spec"]["affinity"] = json!({"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": terms}}});
            p
        };
        let zone2 = affine(
            "p",
            json!([{"matchExpressions": [{"key": "zone", "operator": "In", "values": ["z2"]}]}]),
        );
        let big = affine(
            "q",
            json!([{"matchExpressions": [{"key": "cores", "operator": "Gt", "values": ["4"]}]}]),
        );
        let named = affine(
            "r",
            json!([{"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["b"]}]}]),
        );
        let nowhere = affine(
            "s",
            json!([{"matchExpressions": [{"key": "zone", "operator": "DoesNotExist"}]}]),
        );
        assert_eq!(
            placed(&decide(&[&zone2, &big, &named, &nowhere], &[&a, &b, &c])),
            [
                "b",
                "a",
                "b",
                "0/3 nodes are available: 2 node(s) didn't match Pod's node affinity/selector, 1 node(s) were not ready or were unschedulable.",
            ]
        );
    }
}

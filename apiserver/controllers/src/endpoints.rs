//! The endpoints and EndpointSlice controllers: for each Service with a
//! selector, an Endpoints object (ready and not-ready addresses, at most
//! 1,000, as Kubernetes truncates) and EndpointSlices of at most 100
//! endpoints each, whose conditions say `ready`, `serving` and
//! `terminating`. A terminating pod stays in its slice, not ready, until it
//! is gone, so proxies can tell it from a pod that is merely unready.
//! Endpoints keep their slice when others come and go; new ones fill the
//! slices with room first.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde_json::{Value, json};

use super::{Action, Snapshot, owner_ref, pod_ready, res, terminating};
use shoal_machinery::meta::{self, str_at};
use shoal_machinery::selectors::LabelSelector;

/// Endpoints per slice (the EndpointSlice controller's default).
const MAX_ENDPOINTS_PER_SLICE: usize = 100;

/// Addresses an Endpoints object lists before it is truncated.
const MAX_ENDPOINTS_ADDRESSES: usize = 1000;

/// The `endpointslice.kubernetes.io/managed-by` value of the slices this
/// controller writes, as Kubernetes' controller names itself.
const SLICE_MANAGER: &str = "endpointslice-controller.k8s.io";

fn managed_slice(e: &Value) -> bool {
    str_at(
        e,
        "/metadata/labels/endpointslice.kubernetes.io~1managed-by",
    ) == Some(SLICE_MANAGER)
}

/// A pod's hostname as an endpoint of `service`: set when the pod names
/// the Service as its `subdomain` (a StatefulSet's pods, or by hand), so
/// cluster DNS answers `<hostname>.<service>.<ns>.svc`.
fn endpoint_hostname<'a>(pod: &'a Value, service: &str) -> Option<&'a str> {
    (str_at(pod, "/spec/subdomain") == Some(service))
        .then(|| str_at(pod, "/spec/hostname"))
        .flatten()
}

fn finished(p: &Value) -> bool {
    matches!(str_at(p, "/status/phase"), Some("Succeeded" | "Failed"))
}

/// The Service's ports with each `targetPort` resolved (a named one
/// through the first pod's container ports).
fn ports(svc: &Value, pods: &[&Value]) -> Vec<Value> {
    let declared = svc
        .pointer("/spec/ports")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    declared
        .iter()
        .map(|p| {
            let target = match p.get("targetPort") {
                Some(Value::String(named)) => pods
                    .first()
                    .and_then(|pod| {
                        pod.pointer("/spec/containers")
                            .and_then(Value::as_array)?
                            .iter()
                            .flat_map(|c| {
                                c.get("ports")
                                    .and_then(Value::as_array)
                                    .cloned()
                                    .unwrap_or_default()
                            })
                            .find(|cp| cp.get("name") == Some(&json!(named)))
                            .and_then(|cp| cp.get("containerPort").cloned())
                    })
                    .unwrap_or(json!(0)),
                Some(v) => v.clone(),
                None => p.get("port").cloned().unwrap_or(json!(0)),
            };
            let mut port = json!({"port": target, "protocol": p.get("protocol").cloned().unwrap_or(json!("TCP"))});
            if let Some(n) = p.get("name") {
                port["name"] = n.clone();
            }
            port
        })
        .collect()
}

/// Keeps an Endpoints object and the EndpointSlices of each selector
/// Service in step with its pods.
pub fn reconcile_endpoints(s: &Snapshot) -> Vec<Action> {
    let ep_r = res("Endpoints", "");
    let mut actions = Vec::new();
    let mut wanted: BTreeSet<(String, String)> = BTreeSet::new();
    // What exists, by Service, looked up once per pass.
    let mut slices_of: HashMap<(&str, &str), Vec<&Value>> = HashMap::new();
    for e in s.of("endpointslices").iter().filter(|e| managed_slice(e)) {
        let service = str_at(e, "/metadata/labels/kubernetes.io~1service-name").unwrap_or_default();
        slices_of
            .entry((meta::namespace(e), service))
            .or_default()
            .push(&**e);
    }
    let endpoints_of: HashMap<(&str, &str), &Value> = s
        .of("endpoints")
        .iter()
        .map(|e| ((meta::namespace(e), meta::name(e)), &**e))
        .collect();
    for svc in s.of("services") {
        let Some(sel) = svc
            .pointer("/spec/selector")
            .filter(|v| v.as_object().is_some_and(|m| !m.is_empty()))
        else {
            continue;
        };
        let (ns, name) = (meta::namespace(svc), meta::name(svc));
        wanted.insert((ns.to_string(), name.to_string()));
        if !s.service_dirty(ns, name) {
            continue;
        }
        let selector = LabelSelector::from_map(sel);
        let mut pods: Vec<&Value> = s
            .in_namespace("pods", ns)
            .iter()
            .map(|a| &**a)
            .filter(|p| {
                selector.matches_object(p) && str_at(p, "/status/podIP").is_some() && !finished(p)
            })
            .collect();
        pods.sort_by_key(|p| str_at(p, "/status/podIP").unwrap_or_default().to_string());
        let publish_all = svc.pointer("/spec/publishNotReadyAddresses") == Some(&json!(true));
        // Endpoints lists no terminating pod; slices keep them, marked.
        let current: Vec<&Value> = pods.iter().copied().filter(|p| !terminating(p)).collect();
        let ports = ports(svc, &current);
        let existing = endpoints_of.get(&(ns, name)).copied();
        actions.extend(endpoints_object(
            existing,
            svc,
            &current,
            &ports,
            publish_all,
        ));
        let mut own = slices_of.remove(&(ns, name)).unwrap_or_default();
        own.sort_by_key(|e| meta::name(e));
        actions.extend(slices(own, svc, &pods, &ports, publish_all));
    }
    for e in s.of("endpoints") {
        let managed = str_at(e, "/metadata/annotations/shoal.dev~1managed-by")
            == Some("endpoints-controller");
        let key = (meta::namespace(e).to_string(), meta::name(e).to_string());
        if managed && !wanted.contains(&key) {
            actions.push(Action::Delete {
                resource: ep_r,
                namespace: key.0,
                name: key.1,
            });
        }
    }
    let slice_r = res("EndpointSlice", "discovery.k8s.io");
    for e in s.of("endpointslices").iter().filter(|e| managed_slice(e)) {
        let ns = meta::namespace(e);
        let service = str_at(e, "/metadata/labels/kubernetes.io~1service-name").unwrap_or_default();
        if s.is_dirty(ns) && !wanted.contains(&(ns.to_string(), service.to_string())) {
            actions.push(Action::Delete {
                resource: slice_r,
                namespace: ns.to_string(),
                name: meta::name(e).to_string(),
            });
        }
    }
    actions
}

/// The Service's Endpoints object: ready and not-ready addresses.
fn endpoints_object(
    existing: Option<&Value>,
    svc: &Value,
    pods: &[&Value],
    ports: &[Value],
    publish_all: bool,
) -> Option<Action> {
    let ep_r = res("Endpoints", "");
    let (ns, name) = (meta::namespace(svc), meta::name(svc));
    let addr = |p: &Value| {
        let mut a = json!({"ip": str_at(p, "/status/podIP"), "nodeName": str_at(p, "/spec/nodeName"),
            "targetRef": {"kind": "Pod", "namespace": ns, "name": meta::name(p), "uid": meta::uid(p)}});
        if let Some(h) = endpoint_hostname(p, name) {
            a["hostname"] = json!(h);
        }
        a
    };
    let (mut ready, mut not_ready): (Vec<Value>, Vec<Value>) = (Vec::new(), Vec::new());
    for p in pods {
        if pod_ready(p) || publish_all {
            ready.push(addr(p));
        } else {
            not_ready.push(addr(p));
        }
    }
    // Kubernetes keeps at most 1,000 addresses, ready ones first.
    let truncated = ready.len() + not_ready.len() > MAX_ENDPOINTS_ADDRESSES;
    ready.truncate(MAX_ENDPOINTS_ADDRESSES);
    not_ready.truncate(MAX_ENDPOINTS_ADDRESSES - ready.len());
    let subsets = if ready.is_empty() && not_ready.is_empty() {
        json!([])
    } else {
        let mut sub = json!({"ports": ports});
        if !ready.is_empty() {
            sub["addresses"] = json!(ready);
        }
        if !not_ready.is_empty() {
            sub["notReadyAddresses"] = json!(not_ready);
        }
        json!([sub])
    };
    let mut annotations = json!({"shoal.dev/managed-by": "endpoints-controller"});
    if truncated {
        annotations["endpoints.kubernetes.io/over-capacity"] = json!("truncated");
    }
    match existing {
        None => Some(Action::Create {
            resource: ep_r,
            namespace: ns.to_string(),
            object: json!({
                "apiVersion": "v1", "kind": "Endpoints",
                "metadata": {"name": name, "namespace": ns,
                    "labels": svc.pointer("/metadata/labels").cloned().unwrap_or(json!({})),
                    "annotations": annotations},
                "subsets": subsets,
            }),
        }),
        Some(e) => {
            let over = e.pointer("/metadata/annotations/endpoints.kubernetes.io~1over-capacity");
            let same_subsets = e.get("subsets").unwrap_or(&json!([])) == &subsets;
            if same_subsets && over.is_some() == truncated {
                return None;
            }
            let mut patch = json!({"subsets": subsets});
            patch["metadata"] = json!({"annotations": {
                "endpoints.kubernetes.io/over-capacity": if truncated { json!("truncated") } else { Value::Null }}});
            Some(Action::Patch {
                resource: ep_r,
                namespace: ns.to_string(),
                name: name.to_string(),
                patch,
                status: false,
            })
        }
    }
}

/// A pod as a slice endpoint.
fn slice_endpoint(p: &Value, service: &str, publish_all: bool) -> Value {
    let ns = meta::namespace(p);
    let gone = terminating(p);
    let serving = pod_ready(p) || publish_all;
    let mut e = json!({"addresses": [str_at(p, "/status/podIP")],
        "conditions": {"ready": serving && !gone, "serving": serving, "terminating": gone},
        "nodeName": str_at(p, "/spec/nodeName"),
        "targetRef": {"kind": "Pod", "namespace": ns, "name": meta::name(p), "uid": meta::uid(p)}});
    if let Some(h) = endpoint_hostname(p, service) {
        e["hostname"] = json!(h);
    }
    e
}

fn endpoint_key(e: &Value) -> String {
    str_at(e, "/targetRef/uid")
        .or_else(|| str_at(e, "/addresses/0"))
        .unwrap_or_default()
        .to_string()
}

/// The Service's EndpointSlices: each endpoint stays in the slice it is
/// in; new endpoints fill slices with room, then new slices; emptied
/// slices go, but a Service always keeps one.
fn slices(
    existing: Vec<&Value>,
    svc: &Value,
    pods: &[&Value],
    ports: &[Value],
    publish_all: bool,
) -> Vec<Action> {
    let slice_r = res("EndpointSlice", "discovery.k8s.io");
    let (ns, name) = (meta::namespace(svc), meta::name(svc));
    let mut remaining: BTreeMap<String, Value> = pods
        .iter()
        .map(|p| slice_endpoint(p, name, publish_all))
        .map(|e| (endpoint_key(&e), e))
        .collect();
    let mut plan: Vec<(Option<&Value>, Vec<Value>)> = existing
        .iter()
        .map(|e| {
            let kept = e
                .get("endpoints")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|ep| remaining.remove(&endpoint_key(ep)))
                .collect();
            (Some(*e), kept)
        })
        .collect();
    for (_, eps) in &mut plan {
        while eps.len() < MAX_ENDPOINTS_PER_SLICE {
            let Some((_, e)) = remaining.pop_first() else {
                break;
            };
            eps.push(e);
        }
    }
    let fresh: Vec<Value> = remaining.into_values().collect();
    for chunk in fresh.chunks(MAX_ENDPOINTS_PER_SLICE) {
        plan.push((None, chunk.to_vec()));
    }
    if plan.is_empty() {
        plan.push((None, Vec::new()));
    }
    let any_full = plan.iter().any(|(_, eps)| !eps.is_empty());
    let mut kept_empty = any_full;
    let mut actions = Vec::new();
    for (slice, mut eps) in plan {
        eps.sort_by_key(|e| str_at(e, "/addresses/0").unwrap_or_default().to_string());
        match slice {
            Some(e) if eps.is_empty() && kept_empty => actions.push(Action::Delete {
                resource: slice_r,
                namespace: ns.to_string(),
                name: meta::name(e).to_string(),
            }),
            Some(e) => {
                kept_empty |= eps.is_empty();
                if e["endpoints"] != json!(eps) || e["ports"] != json!(ports) {
                    actions.push(Action::Patch {
                        resource: slice_r,
                        namespace: ns.to_string(),
                        name: meta::name(e).to_string(),
                        patch: json!({"endpoints": eps, "ports": ports}),
                        status: false,
                    });
                }
            }
            None => {
                kept_empty |= eps.is_empty();
                actions.push(Action::Create { resource: slice_r, namespace: ns.to_string(), object: json!({
                        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                        "metadata": {"generateName": format!("{name}-"), "namespace": ns,
                            "labels": {"kubernetes.io/service-name": name, "endpointslice.kubernetes.io/managed-by": SLICE_MANAGER},
                            "ownerReferences": owner_ref(svc, "Service")},
                        "addressType": "IPv4", "endpoints": eps, "ports": ports,
                    }) });
            }
        }
    }
    actions
}

#[cfg(test)]
mod tests {
    use super::super::test_support::snap;
    use super::*;

    fn web() -> Value {
        json!({"metadata": {"name": "web", "namespace": "d", "uid": "svc"},
            "spec": {"selector": {"app": "web"}, "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}})
    }

    fn pod(n: &str, ip: &str, ready: &str) -> Value {
        json!({"metadata": {"name": n, "namespace": "d", "uid": n, "labels": {"app": "web"}},
            "spec": {"nodeName": "n1", "containers": [{"name": "c", "ports": [{"name": "http", "containerPort": 8080}]}]},
            "status": {"podIP": ip, "phase": "Running", "conditions": [{"type": "Ready", "status": ready}]}})
    }

    fn made<'a>(actions: &'a [Action], kind: &str) -> Vec<&'a Value> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Create {
                    resource: r,
                    namespace: _,
                    object: o,
                } if r.kind == kind => Some(o),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn endpoints_follow_ready_pods_and_named_ports() {
        let s = snap(&[
            ("services", web()),
            ("pods", pod("a", "10.0.0.2", "True")),
            ("pods", pod("b", "10.0.0.3", "False")),
        ]);
        let actions = reconcile_endpoints(&s);
        let ep = made(&actions, "Endpoints")[0];
        assert_eq!(ep["subsets"][0]["addresses"][0]["ip"], json!("10.0.0.2"));
        assert_eq!(
            ep["subsets"][0]["notReadyAddresses"][0]["ip"],
            json!("10.0.0.3")
        );
        assert_eq!(ep["subsets"][0]["ports"][0]["port"], json!(8080));
        // The same endpoints as one EndpointSlice owned by the Service.
        let slice = made(&actions, "EndpointSlice")[0];
        assert_eq!(
            slice["metadata"]["labels"]["kubernetes.io/service-name"],
            "web"
        );
        assert_eq!(slice["metadata"]["generateName"], "web-");
        let seen: Vec<(&Value, &Value)> = slice["endpoints"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| (&e["addresses"][0], &e["conditions"]["ready"]))
            .collect();
        assert_eq!(
            seen,
            [
                (&json!("10.0.0.2"), &json!(true)),
                (&json!("10.0.0.3"), &json!(false))
            ]
        );
        assert_eq!(slice["ports"][0]["port"], json!(8080));
    }

    #[test]
    fn terminating_pods_stay_in_slices_marked_and_leave_endpoints() {
        let mut gone = pod("b", "10.0.0.3", "True");
        gone["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
        let s = snap(&[
            ("services", web()),
            ("pods", pod("a", "10.0.0.2", "True")),
            ("pods", gone),
        ]);
        let actions = reconcile_endpoints(&s);
        let ep = made(&actions, "Endpoints")[0];
        assert_eq!(ep["subsets"][0]["addresses"].as_array().unwrap().len(), 1);
        assert!(ep["subsets"][0].get("notReadyAddresses").is_none());
        let slice = made(&actions, "EndpointSlice")[0];
        assert_eq!(
            slice["endpoints"][1]["conditions"],
            json!({"ready": false, "serving": true, "terminating": true})
        );
    }

    #[test]
    fn slices_hold_a_hundred_and_endpoints_stay_where_they_are() {
        let mut items = vec![("services", web())];
        for i in 0..250 {
            items.push((
                "pods",
                pod(
                    &format!("p{i:03}"),
                    &format!("10.0.{}.{}", i / 200, i % 200 + 1),
                    "True",
                ),
            ));
        }
        let actions = reconcile_endpoints(&snap(&items));
        let slices = made(&actions, "EndpointSlice");
        let sizes: Vec<usize> = slices
            .iter()
            .map(|s| s["endpoints"].as_array().unwrap().len())
            .collect();
        assert_eq!(sizes, [100, 100, 50]);
        // Stored, then one pod of the first slice goes and one comes: the
        // first slice takes the newcomer; the others are not written.
        let mut stored: Vec<(&'static str, Value)> = items
            .iter()
            .filter(|(_, p)| p["metadata"]["name"] != "p000")
            .cloned()
            .collect();
        stored.push(("pods", pod("new", "10.9.9.9", "True")));
        for (i, s) in slices.iter().enumerate() {
            let mut s = (*s).clone();
            s["metadata"]["name"] = json!(format!("web-{i}"));
            stored.push(("endpointslices", s));
        }
        let again = reconcile_endpoints(&snap(&stored));
        let patched: Vec<(&str, &Value)> = again
            .iter()
            .filter_map(|a| match a {
                Action::Patch {
                    resource: r,
                    name: n,
                    patch: p,
                    ..
                } if r.kind == "EndpointSlice" => Some((n.as_str(), p)),
                _ => None,
            })
            .collect();
        assert_eq!(patched.len(), 1, "{patched:?}");
        assert_eq!(patched[0].0, "web-0");
        let eps = patched[0].1["endpoints"].as_array().unwrap();
        assert_eq!(eps.len(), 100);
        assert!(eps.iter().any(|e| e["addresses"][0] == "10.9.9.9"));
        assert!(made(&again, "EndpointSlice").is_empty());
    }

    #[test]
    fn an_endpoints_object_is_truncated_at_a_thousand() {
        let mut items = vec![("services", web())];
        for i in 0..1001 {
            items.push((
                "pods",
                pod(
                    &format!("p{i}"),
                    &format!("10.1.{}.{}", i / 250, i % 250 + 1),
                    "True",
                ),
            ));
        }
        let actions = reconcile_endpoints(&snap(&items));
        let ep = made(&actions, "Endpoints")[0];
        assert_eq!(
            ep["subsets"][0]["addresses"].as_array().unwrap().len(),
            1000
        );
        assert_eq!(
            ep["metadata"]["annotations"]["endpoints.kubernetes.io/over-capacity"],
            "truncated"
        );
        assert_eq!(made(&actions, "EndpointSlice").len(), 11);
    }

    #[test]
    fn passes_reconcile_only_services_whose_objects_or_pods_changed() {
        let svc = |name: &str| json!({"metadata": {"name": name, "namespace": "d"}, "spec": {"selector": {"app": "web"}}});
        let pod = json!({"metadata": {"name": "a", "namespace": "d", "uid": "a", "labels": {"app": "web"}},
            "status": {"podIP": "10.0.0.2", "phase": "Running"}});
        let mut s = snap(&[
            ("services", svc("one")),
            ("services", svc("two")),
            ("pods", pod.clone()),
        ]);
        let event = |key: &str, object: Value| shoal_store::Event {
            revision: 1,
            kind: shoal_store::EventKind::Modified,
            key: key.to_string(),
            object: std::sync::Arc::new(object),
            prev: None,
            json: Default::default(),
        };
        let mut d = super::super::Dirty::default();
        d.note(&event("services/d/two", svc("two")));
        s.dirty = Some(d.clone());
        let names = |actions: &[Action]| {
            actions
                .iter()
                .filter_map(|a| match a {
                    Action::Create {
                        resource: _,
                        namespace: _,
                        object: o,
                    } => Some(
                        str_at(o, "/metadata/labels/kubernetes.io~1service-name")
                            .unwrap_or(meta::name(o))
                            .to_string(),
                    ),
                    _ => None,
                })
                .collect::<Vec<_>>()
        };
        let made = names(&reconcile_endpoints(&s));
        assert!(made.iter().all(|n| n == "two"), "{made:?}");
        assert_eq!(made.len(), 2);
        // A slice names its Service by label.
        let mut d = super::super::Dirty::default();
        d.note(&event(
            "endpointslices.discovery.k8s.io/d/one-abcde",
            json!({"metadata": {"name": "one-abcde", "namespace": "d", "labels": {"kubernetes.io/service-name": "one"}}}),
        ));
        s.dirty = Some(d);
        let made = names(&reconcile_endpoints(&s));
        assert_eq!(made, ["one", "one"]);
        // A pod may be any Service's endpoint.
        let mut d = super::super::Dirty::default();
        d.note(&event("pods/d/a", pod));
        s.dirty = Some(d);
        assert_eq!(names(&reconcile_endpoints(&s)).len(), 4);
    }

    #[test]
    fn passes_skip_namespaces_where_nothing_changed() {
        let svc = json!({"metadata": {"name": "web", "namespace": "d"}, "spec": {"selector": {"app": "web"}}});
        let pod = json!({"metadata": {"name": "a", "namespace": "d", "uid": "a", "labels": {"app": "web"}},
            "status": {"podIP": "10.0.0.2", "phase": "Running"}});
        let mut s = snap(&[("services", svc), ("pods", pod)]);
        s.dirty = Some(super::super::Dirty::namespaces(["other"]));
        assert!(reconcile_endpoints(&s).is_empty());
        s.dirty = Some(super::super::Dirty::namespaces(["d"]));
        // The Endpoints and the EndpointSlice.
        assert_eq!(reconcile_endpoints(&s).len(), 2);
    }
}

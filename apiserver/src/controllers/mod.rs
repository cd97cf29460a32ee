//! Controllers: Deployment → ReplicaSet → Pods, CronJob → Job → Pods,
//! DaemonSet → a pod per node, StatefulSet → ordinal pods,
//! Endpoints for Services, CustomResourceDefinitions' status and cleanup,
//! garbage collection by ownerReferences, pod CIDRs for nodes, node
//! lifecycle (silent nodes unreachable, vanished nodes' pods deleted),
//! APIServices' availability. Each
//! `reconcile_*` takes a [`Snapshot`] and returns [`Action`]s; [`run`] is the
//! loop that takes snapshots and performs the actions.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, OnceLock};

use serde_json::{Value, json};

use crate::meta::{self, str_at};
use crate::objects::{
    DeleteOpts, FOREGROUND_DELETION, ORPHAN, Objects, PatchType, Propagation, WriteOpts,
};
use crate::resources::{self, RESOURCES, Resource, Sub};

pub mod api_services;
mod crds;
mod cronjobs;
mod daemonsets;
mod endpoints;
pub use endpoints::reconcile_endpoints;
mod event_ttl;
mod jobs;
mod load_balancers;
mod node_lifecycle;
mod quotas;
mod revisions;
mod statefulsets;
pub use crds::reconcile_definitions;
pub use cronjobs::reconcile_cronjobs;
pub use daemonsets::reconcile_daemonsets;
pub use jobs::reconcile_jobs;
pub use quotas::reconcile_quotas;
pub use statefulsets::reconcile_statefulsets;

/// What a controller wants done.
#[derive(Debug, Clone)]
pub enum Action {
    /// Create an object.
    Create(&'static Resource, String, Value),
    /// Merge-patch an object (or its status).
    Patch(&'static Resource, String, String, Value, bool),
    /// Delete an object.
    Delete(&'static Resource, String, String),
    /// Delete an object with no grace period: nothing is left to end it.
    DeleteNow(&'static Resource, String, String),
    /// Delete a dependent of an object deleted in the foreground, in the
    /// foreground too.
    DeleteForeground(&'static Resource, String, String),
    /// Record a Normal event about an object.
    Event(Value, &'static str, String),
    /// Remove an emptied, terminating namespace.
    FinalizeNamespace(String),
}

/// All objects of the kinds the controllers read.
#[derive(Default)]
pub struct Snapshot {
    /// Objects of the built-in resources by plural.
    pub by_resource: BTreeMap<&'static str, Vec<Arc<Value>>>,
    /// Objects of each custom resource (one served version of each).
    pub custom: Vec<(&'static Resource, Vec<Arc<Value>>)>,
    /// Objects by resource plural and controller uid, made on first use.
    controlled: OnceLock<Index>,
    /// Objects by resource plural and namespace, made on first use.
    namespaced: OnceLock<Index>,
    /// What changed since the last pass, for the controllers that read
    /// only namespaced objects; `None` when anything may have (the first
    /// pass, a lagging watch, a failed action).
    pub dirty: Option<Dirty>,
}

/// What changed since the last pass.
#[derive(Debug, Default, Clone)]
pub struct Dirty {
    /// The namespaces where anything changed.
    pub namespaces: BTreeSet<String>,
    /// The namespaces where pods changed.
    pub pods: BTreeSet<String>,
    /// The Services whose own objects changed (the Service, its Endpoints
    /// or its EndpointSlices), by namespace and name.
    pub services: BTreeSet<(String, String)>,
}

impl Dirty {
    /// Only the namespaces `ns` changed (in tests).
    pub fn namespaces<const N: usize>(ns: [&str; N]) -> Self {
        Self {
            namespaces: ns.iter().map(|n| n.to_string()).collect(),
            pods: ns.iter().map(|n| n.to_string()).collect(),
            services: BTreeSet::new(),
        }
    }

    /// Notes the change `e`.
    fn note(&mut self, e: &crate::store::Event) {
        let mut parts = e.key.splitn(3, '/');
        let (plural, ns, name) = (
            parts.next().unwrap_or_default(),
            parts.next().unwrap_or_default(),
            parts.next().unwrap_or_default(),
        );
        if ns.is_empty() {
            return;
        }
        if !self.namespaces.contains(ns) {
            self.namespaces.insert(ns.to_string());
        }
        match plural {
            "pods" if !self.pods.contains(ns) => {
                self.pods.insert(ns.to_string());
            }
            "pods" => {}
            "services" | "endpoints" => {
                self.services.insert((ns.to_string(), name.to_string()));
            }
            "endpointslices.discovery.k8s.io" => {
                for o in std::iter::once(&e.object).chain(e.prev.as_ref()) {
                    if let Some(svc) = str_at(o, "/metadata/labels/kubernetes.io~1service-name") {
                        self.services.insert((ns.to_string(), svc.to_string()));
                    }
                }
            }
            _ => {}
        }
    }
}

/// Objects grouped by resource plural and a string (an owner or a
/// namespace).
type Index = HashMap<(&'static str, String), Vec<Arc<Value>>>;

/// The resources whose objects controllers look up by their controller.
const CONTROLLED: [&str; 4] = ["pods", "replicasets", "jobs", "controllerrevisions"];

impl Snapshot {
    /// Whether objects in namespace `ns` may have changed since the last
    /// pass.
    fn is_dirty(&self, ns: &str) -> bool {
        self.dirty
            .as_ref()
            .is_none_or(|d| d.namespaces.contains(ns))
    }

    /// Whether the Service `ns/name`'s endpoints may have changed since
    /// the last pass: its own objects did, or pods of its namespace.
    fn service_dirty(&self, ns: &str, name: &str) -> bool {
        self.dirty.as_ref().is_none_or(|d| {
            d.pods.contains(ns) || d.services.contains(&(ns.to_string(), name.to_string()))
        })
    }

    /// The objects of `plural` in namespace `ns` whose controller is `uid`:
    /// one lookup, not a pass over every object of the kind.
    fn controlled<'a>(
        &'a self,
        plural: &'static str,
        ns: &'a str,
        uid: &str,
    ) -> impl Iterator<Item = &'a Value> + 'a {
        let index = self.controlled.get_or_init(|| {
            let mut index = Index::new();
            for plural in CONTROLLED {
                for o in self.of(plural) {
                    if let Some(owner) = controller_uid(o) {
                        index
                            .entry((plural, owner.to_string()))
                            .or_default()
                            .push(o.clone());
                    }
                }
            }
            index
        });
        debug_assert!(CONTROLLED.contains(&plural), "{plural} is not indexed");
        index
            .get(&(plural, uid.to_string()))
            .into_iter()
            .flatten()
            .map(|o| &**o)
            .filter(move |o| meta::namespace(o) == ns)
    }

    /// The objects of the built-in resource `plural` in namespace `ns`.
    fn in_namespace(&self, plural: &'static str, ns: &str) -> &[Arc<Value>] {
        let index = self.namespaced.get_or_init(|| {
            let mut index = Index::new();
            for (plural, objects) in &self.by_resource {
                for o in objects {
                    index
                        .entry((*plural, meta::namespace(o).to_string()))
                        .or_default()
                        .push(o.clone());
                }
            }
            index
        });
        index
            .get(&(plural, ns.to_string()))
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }

    fn of(&self, plural: &str) -> &[Arc<Value>] {
        self.by_resource
            .get(plural)
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }

    /// Every resource with its objects, built-in ones first.
    fn each(&self) -> impl Iterator<Item = (&'static Resource, &[Arc<Value>])> {
        RESOURCES
            .iter()
            .filter(|r| r.view.is_none())
            .map(|r| (r, self.of(r.plural)))
            .chain(self.custom.iter().map(|(r, os)| (*r, os.as_slice())))
    }

    /// Reads the snapshot from the store.
    pub fn read(objects: &Objects) -> Self {
        let list = |r: &Resource| -> Vec<Arc<Value>> {
            let (items, _) = objects.store().list(&r.prefix(None));
            items.into_iter().map(|s| s.value).collect()
        };
        let by_resource = RESOURCES
            .iter()
            .filter(|r| r.view.is_none())
            .map(|r| (r.plural, list(r)))
            .collect();
        let mut custom: Vec<(&'static Resource, Vec<Arc<Value>>)> = Vec::new();
        for r in objects.resources().custom().iter().copied() {
            // The versions of a definition share their objects.
            if !custom
                .iter()
                .any(|(c, _)| c.storage_prefix() == r.storage_prefix())
            {
                custom.push((r, list(r)));
            }
        }
        Self {
            by_resource,
            custom,
            controlled: OnceLock::new(),
            namespaced: OnceLock::new(),
            dirty: None,
        }
    }
}

fn res(kind: &str, group: &str) -> &'static Resource {
    resources::by_kind(group, kind).expect("kind is served")
}

fn controller_uid(obj: &Value) -> Option<&str> {
    obj.pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)?
        .iter()
        .find(|o| o.get("controller") == Some(&json!(true)))
        .and_then(|o| o.get("uid").and_then(Value::as_str))
}

fn owner_ref(owner: &Value, kind: &str) -> Value {
    json!([{"apiVersion": owner["apiVersion"], "kind": kind, "name": meta::name(owner), "uid": meta::uid(owner), "controller": true, "blockOwnerDeletion": true}])
}

fn terminating(o: &Value) -> bool {
    o.pointer("/metadata/deletionTimestamp").is_some()
}

fn pod_ready(p: &Value) -> bool {
    meta::condition_true(p, "Ready")
}

fn active(p: &Value) -> bool {
    !terminating(p) && !matches!(str_at(p, "/status/phase"), Some("Succeeded" | "Failed"))
}

fn int(o: &Value, p: &str) -> i64 {
    o.pointer(p).and_then(Value::as_i64).unwrap_or(0)
}

/// Keeps each ReplicaSet's and ReplicationController's pod count at its
/// replicas and its status true.
pub fn reconcile_replicasets(s: &Snapshot) -> Vec<Action> {
    let mut actions = replicate(s, res("ReplicaSet", "apps"));
    actions.extend(replicate(s, res("ReplicationController", "")));
    actions
}

fn replicate(s: &Snapshot, rs_r: &'static Resource) -> Vec<Action> {
    let pod_r = res("Pod", "");
    let mut actions = Vec::new();
    for rs in s.of(rs_r.plural) {
        if terminating(rs) {
            continue;
        }
        let (ns, uid) = (meta::namespace(rs), meta::uid(rs));
        if !s.is_dirty(ns) {
            continue;
        }
        let mut owned: Vec<&Value> = s
            .controlled("pods", ns, uid)
            .filter(|p| active(p))
            .collect();
        let want = int(rs, "/spec/replicas");
        let have = owned.len() as i64;
        if have < want {
            for _ in have..want {
                let mut tmpl = rs.pointer("/spec/template").cloned().unwrap_or(json!({}));
                let m = meta::metadata(&mut tmpl);
                m.insert("generateName".into(), json!(format!("{}-", meta::name(rs))));
                m.insert("namespace".into(), json!(ns));
                m.insert("ownerReferences".into(), owner_ref(rs, rs_r.kind));
                m.remove("name");
                tmpl["apiVersion"] = json!("v1");
                tmpl["kind"] = json!("Pod");
                actions.push(Action::Create(pod_r, ns.to_string(), tmpl));
            }
            actions.push(Action::Event(
                (**rs).clone(),
                "SuccessfulCreate",
                format!("Created {} pod(s)", want - have),
            ));
        } else if have > want {
            owned.sort_by_key(|p| {
                (
                    str_at(p, "/spec/nodeName").is_some(),
                    pod_ready(p),
                    std::cmp::Reverse(
                        str_at(p, "/metadata/creationTimestamp")
                            .unwrap_or_default()
                            .to_string(),
                    ),
                )
            });
            for p in owned.iter().take((have - want) as usize) {
                actions.push(Action::Delete(
                    pod_r,
                    ns.to_string(),
                    meta::name(p).to_string(),
                ));
            }
        }
        let ready = owned.iter().filter(|p| pod_ready(p)).count() as i64;
        let status = json!({
            "replicas": have, "fullyLabeledReplicas": have, "readyReplicas": ready, "availableReplicas": ready,
            "observedGeneration": int(rs, "/metadata/generation"),
        });
        actions.extend(status_patch(rs_r, rs, status));
    }
    actions
}

fn subset_equal(want: &Value, have: Option<&Value>) -> bool {
    want.as_object().is_some_and(|w| {
        w.iter().all(|(k, v)| {
            let h = have.and_then(|h| h.get(k));
            h == Some(v) || ((v == &json!(0) || v.is_null()) && h.is_none())
        })
    })
}

/// A merge patch of `obj`'s status to `status`, unless it already says so
/// (a zero or null field reads as an absent one).
fn status_patch(r: &'static Resource, obj: &Value, status: Value) -> Option<Action> {
    (!subset_equal(&status, obj.get("status"))).then(|| {
        Action::Patch(
            r,
            meta::namespace(obj).to_string(),
            meta::name(obj).to_string(),
            json!({"status": status}),
            true,
        )
    })
}

/// The pod-template-hash of a template.
pub fn template_hash(template: &Value) -> String {
    let text = serde_json::to_string(template).unwrap_or_default();
    let h = text.bytes().fold(0x811c9dc5u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x01000193)
    });
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut n = h;
    (0..10)
        .map(|_| {
            let c = ALPHABET[(n % 27) as usize] as char;
            n /= 27;
            if n == 0 {
                n = h.rotate_left(7)
            }
            c
        })
        .collect()
}

fn percent(v: Option<&Value>, total: i64, round_up: bool) -> i64 {
    match v {
        Some(Value::Number(n)) => n.as_i64().unwrap_or(0),
        Some(Value::String(s)) => {
            let p: i64 = s.trim_end_matches('%').parse().unwrap_or(25);
            if round_up {
                (p * total + 99) / 100
            } else {
                p * total / 100
            }
        }
        _ => {
            if round_up {
                (25 * total + 99) / 100
            } else {
                25 * total / 100
            }
        }
    }
}

/// Rolls each Deployment's ReplicaSets towards its template and replicas.
pub fn reconcile_deployments(s: &Snapshot) -> Vec<Action> {
    let (d_r, rs_r) = (res("Deployment", "apps"), res("ReplicaSet", "apps"));
    let mut actions = Vec::new();
    for d in s.of("deployments") {
        if terminating(d) {
            continue;
        }
        let (ns, uid, name) = (meta::namespace(d), meta::uid(d), meta::name(d));
        let template = d.pointer("/spec/template").cloned().unwrap_or(json!({}));
        let hash = template_hash(&template);
        let owned: Vec<&Value> = s.controlled("replicasets", ns, uid).collect();
        let desired = int(d, "/spec/replicas");
        let new_rs = owned
            .iter()
            .find(|r| str_at(r, "/metadata/labels/pod-template-hash") == Some(hash.as_str()))
            .copied();
        let olds: Vec<&Value> = owned
            .iter()
            .filter(|r| Some(**r) != new_rs)
            .copied()
            .collect();
        let revision = |r: &Value| {
            str_at(
                r,
                "/metadata/annotations/deployment.kubernetes.io~1revision",
            )
            .and_then(|v| v.parse::<i64>().ok())
            .unwrap_or(0)
        };
        let max_rev = owned.iter().map(|r| revision(r)).max().unwrap_or(0);
        let recreate = str_at(d, "/spec/strategy/type") == Some("Recreate");
        let surge = if recreate {
            0
        } else {
            percent(
                d.pointer("/spec/strategy/rollingUpdate/maxSurge"),
                desired,
                true,
            )
        };
        let unavailable = if recreate {
            desired
        } else {
            percent(
                d.pointer("/spec/strategy/rollingUpdate/maxUnavailable"),
                desired,
                false,
            )
        };
        let total_spec: i64 = owned.iter().map(|r| int(r, "/spec/replicas")).sum();
        let old_pods: i64 = olds.iter().map(|r| int(r, "/status/replicas")).sum();
        match new_rs {
            None => {
                let start = if olds.is_empty() {
                    desired
                } else if recreate {
                    0
                } else {
                    (desired + surge - total_spec).clamp(0, desired)
                };
                let mut labels = template
                    .pointer("/metadata/labels")
                    .cloned()
                    .unwrap_or(json!({}));
                labels["pod-template-hash"] = json!(hash);
                let mut tmpl = template.clone();
                tmpl["metadata"]["labels"] = labels.clone();
                let mut selector = d.pointer("/spec/selector").cloned().unwrap_or(json!({}));
                selector["matchLabels"]["pod-template-hash"] = json!(hash);
                let rs = json!({
                    "apiVersion": "apps/v1", "kind": "ReplicaSet",
                    "metadata": {"name": format!("{name}-{hash}"), "namespace": ns, "labels": labels,
                        "annotations": {"deployment.kubernetes.io/revision": (max_rev + 1).to_string(),
                            "deployment.kubernetes.io/desired-replicas": desired.to_string(),
                            "deployment.kubernetes.io/max-replicas": (desired + surge).to_string()},
                        "ownerReferences": owner_ref(d, "Deployment")},
                    "spec": {"replicas": start, "selector": selector, "template": tmpl},
                });
                actions.push(Action::Event(
                    (**d).clone(),
                    "ScalingReplicaSet",
                    format!("Scaled up replica set {name}-{hash} from 0 to {start}"),
                ));
                actions.push(Action::Create(rs_r, ns.to_string(), rs));
            }
            Some(new) => {
                let cur = int(new, "/spec/replicas");
                let target = if olds.is_empty() {
                    desired
                } else if recreate {
                    if old_pods == 0 { desired } else { 0 }
                } else {
                    (cur + (desired + surge - total_spec).max(0)).min(desired)
                };
                let target = if cur > desired {
                    desired
                } else {
                    target.max(cur)
                };
                if target != cur {
                    let dir = if target > cur { "up" } else { "down" };
                    actions.push(Action::Event(
                        (**d).clone(),
                        "ScalingReplicaSet",
                        format!(
                            "Scaled {dir} replica set {} from {cur} to {target}",
                            meta::name(new)
                        ),
                    ));
                    actions.push(Action::Patch(
                        rs_r,
                        ns.to_string(),
                        meta::name(new).to_string(),
                        json!({"spec": {"replicas": target}}),
                        false,
                    ));
                }
                let available: i64 = owned
                    .iter()
                    .map(|r| int(r, "/status/availableReplicas"))
                    .sum();
                let mut removable = if recreate {
                    i64::MAX
                } else {
                    (available - (desired - unavailable)).max(0)
                };
                let new_done = int(new, "/status/availableReplicas") >= desired;
                for old in &olds {
                    let r = int(old, "/spec/replicas");
                    if r == 0 {
                        continue;
                    }
                    let cut = if new_done { r } else { r.min(removable) };
                    if cut > 0 {
                        removable -= cut;
                        actions.push(Action::Event(
                            (**d).clone(),
                            "ScalingReplicaSet",
                            format!(
                                "Scaled down replica set {} from {r} to {}",
                                meta::name(old),
                                r - cut
                            ),
                        ));
                        actions.push(Action::Patch(
                            rs_r,
                            ns.to_string(),
                            meta::name(old).to_string(),
                            json!({"spec": {"replicas": r - cut}}),
                            false,
                        ));
                    }
                }
            }
        }
        let sum = |p: &str| owned.iter().map(|r| int(r, p)).sum::<i64>();
        let updated = new_rs.map_or(0, |r| int(r, "/status/replicas"));
        let available = sum("/status/availableReplicas");
        let complete = new_rs.is_some_and(|r| int(r, "/status/availableReplicas") >= desired)
            && old_pods == 0
            && updated == desired;
        let keep = |ty: &str, status: &str, reason: &str, message: String| {
            let old = d
                .pointer("/status/conditions")
                .and_then(Value::as_array)
                .and_then(|cs| cs.iter().find(|c| c.get("type") == Some(&json!(ty))));
            let same = old.is_some_and(|c| {
                c.get("status") == Some(&json!(status)) && c.get("reason") == Some(&json!(reason))
            });
            if same {
                return old.cloned().unwrap_or_default();
            }
            let now = meta::now();
            json!({"type": ty, "status": status, "reason": reason, "message": message, "lastUpdateTime": now, "lastTransitionTime": now})
        };
        let avail_ok = available >= desired - unavailable;
        let conditions = json!([
            keep(
                "Available",
                if avail_ok { "True" } else { "False" },
                if avail_ok {
                    "MinimumReplicasAvailable"
                } else {
                    "MinimumReplicasUnavailable"
                },
                if avail_ok {
                    "Deployment has minimum availability.".into()
                } else {
                    "Deployment does not have minimum availability.".into()
                }
            ),
            keep(
                "Progressing",
                "True",
                if complete {
                    "NewReplicaSetAvailable"
                } else {
                    "ReplicaSetUpdated"
                },
                format!(
                    "ReplicaSet \"{name}-{hash}\" {}",
                    if complete {
                        "has successfully progressed."
                    } else {
                        "is progressing."
                    }
                )
            ),
        ]);
        let mut status = json!({
            "observedGeneration": int(d, "/metadata/generation"), "replicas": sum("/status/replicas"),
            "updatedReplicas": updated, "readyReplicas": sum("/status/readyReplicas"), "availableReplicas": available,
            "conditions": conditions,
        });
        let unavail = (sum("/status/replicas") - available)
            .max(desired - available)
            .max(0);
        if unavail > 0 {
            status["unavailableReplicas"] = json!(unavail);
        }
        let mut have = d.get("status").cloned().unwrap_or(json!({}));
        if unavail == 0
            && let Some(m) = have.as_object_mut()
        {
            m.remove("unavailableReplicas");
        }
        if !subset_equal(&status, Some(&have))
            || (unavail == 0 && d.pointer("/status/unavailableReplicas").is_some())
        {
            let mut patch_status = status.clone();
            if unavail == 0 {
                patch_status["unavailableReplicas"] = Value::Null;
            }
            actions.push(Action::Patch(
                d_r,
                ns.to_string(),
                name.to_string(),
                json!({"status": patch_status}),
                true,
            ));
        }
    }
    actions
}

/// Deletes objects whose owners are all gone.
pub fn reconcile_garbage(s: &Snapshot) -> Vec<Action> {
    let uids: BTreeSet<&str> = s
        .each()
        .flat_map(|(_, os)| os)
        .map(|o| meta::uid(o))
        .collect();
    let mut actions = propagate_deletions(s);
    for (r, os) in s.each() {
        for o in os {
            let owners = o
                .pointer("/metadata/ownerReferences")
                .and_then(Value::as_array);
            if owners.is_some_and(|os| {
                !os.is_empty()
                    && os.iter().all(|w| {
                        !uids.contains(w.get("uid").and_then(Value::as_str).unwrap_or_default())
                    })
            }) {
                actions.push(Action::Delete(
                    r,
                    meta::namespace(o).to_string(),
                    meta::name(o).to_string(),
                ));
            }
        }
    }
    actions
}

fn owner_uids(o: &Value) -> impl Iterator<Item = &str> {
    o.pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|w| w.get("uid").and_then(Value::as_str))
}

fn has_finalizer(o: &Value, f: &str) -> bool {
    o.pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .is_some_and(|fs| fs.iter().any(|x| x == f))
}

/// Whether `dependent`'s reference to the owner `uid` has
/// `blockOwnerDeletion: true`.
fn blocks_deletion_of(dependent: &Value, uid: &str) -> bool {
    dependent
        .pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .is_some_and(|refs| {
            refs.iter().any(|w| {
                w.get("uid").and_then(Value::as_str) == Some(uid)
                    && w.get("blockOwnerDeletion") == Some(&json!(true))
            })
        })
}

/// The object's finalizers without `f`, as a merge patch.
fn without_finalizer(o: &Value, f: &str) -> Value {
    let rest: Vec<&Value> = o
        .pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|x| *x != f)
        .collect();
    json!({"metadata": {"finalizers": if rest.is_empty() { Value::Null } else { json!(rest) }}})
}

/// Deletions with a propagation policy: an owner held by `orphan` is
/// removed from its dependents' owners, one held by `foregroundDeletion`
/// has its dependents deleted (in the foreground too); once it has no
/// dependents left, its finalizer is removed and the deletion completes.
fn propagate_deletions(s: &Snapshot) -> Vec<Action> {
    let mut dependents: BTreeMap<&str, Vec<(&'static Resource, &Value)>> = BTreeMap::new();
    for (r, os) in s.each() {
        for o in os {
            for uid in owner_uids(o) {
                dependents.entry(uid).or_default().push((r, o));
            }
        }
    }
    let mut actions = Vec::new();
    for (r, os) in s.each() {
        for o in os.iter().filter(|o| terminating(o)) {
            let uid = meta::uid(o);
            let deps = dependents.get(uid).map(Vec::as_slice).unwrap_or(&[]);
            let finalizer = if has_finalizer(o, ORPHAN) {
                for (dr, d) in deps {
                    let rest: Vec<&Value> = d
                        .pointer("/metadata/ownerReferences")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                        .filter(|w| w.get("uid").and_then(Value::as_str) != Some(uid))
                        .collect();
                    let refs = if rest.is_empty() {
                        Value::Null
                    } else {
                        json!(rest)
                    };
                    actions.push(Action::Patch(
                        dr,
                        meta::namespace(d).to_string(),
                        meta::name(d).to_string(),
                        json!({"metadata": {"ownerReferences": refs}}),
                        false,
                    ));
                }
                ORPHAN
            } else if has_finalizer(o, FOREGROUND_DELETION) {
                for (dr, d) in deps.iter().filter(|(_, d)| !terminating(d)) {
                    actions.push(Action::DeleteForeground(
                        dr,
                        meta::namespace(d).to_string(),
                        meta::name(d).to_string(),
                    ));
                }
                FOREGROUND_DELETION
            } else {
                continue;
            };
            // A foreground deletion waits only for the dependents that
            // block it (`blockOwnerDeletion`); the others are deleted too,
            // and collected as orphans if their owner goes first.
            let waiting = deps
                .iter()
                .any(|(_, d)| finalizer == ORPHAN || blocks_deletion_of(d, uid));
            if !waiting {
                actions.push(Action::Patch(
                    r,
                    meta::namespace(o).to_string(),
                    meta::name(o).to_string(),
                    without_finalizer(o, finalizer),
                    false,
                ));
            }
        }
    }
    actions
}

/// What Kubernetes puts in every namespace: the `default` ServiceAccount
/// and the `kube-root-ca.crt` ConfigMap holding the cluster's CA.
pub fn reconcile_namespace_defaults(s: &Snapshot, ca_pem: &str) -> Vec<Action> {
    let present = |plural: &str, name: &str| -> BTreeSet<&str> {
        s.of(plural)
            .iter()
            .filter(|o| meta::name(o) == name)
            .map(|o| meta::namespace(o))
            .collect()
    };
    let accounts = present("serviceaccounts", "default");
    let cas = present("configmaps", "kube-root-ca.crt");
    let mut actions = Vec::new();
    for ns in s.of("namespaces").iter().filter(|n| !terminating(n)) {
        let ns = meta::name(ns);
        if !accounts.contains(ns) {
            actions.push(Action::Create(
                res("ServiceAccount", ""),
                ns.to_string(),
                json!({"apiVersion": "v1", "kind": "ServiceAccount",
                    "metadata": {"name": "default", "namespace": ns}}),
            ));
        }
        if !cas.contains(ns) {
            actions.push(Action::Create(
                res("ConfigMap", ""),
                ns.to_string(),
                json!({"apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": {"name": "kube-root-ca.crt", "namespace": ns,
                        "annotations": {"kubernetes.io/description": "Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints such as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across distributions of Kubernetes clusters."}},
                    "data": {"ca.crt": ca_pem}}),
            ));
        }
    }
    actions
}

/// Empties terminating namespaces, then lets them go.
pub fn reconcile_namespaces(s: &Snapshot) -> Vec<Action> {
    let mut actions = Vec::new();
    for ns in s.of("namespaces").iter().filter(|n| terminating(n)) {
        let name = meta::name(ns);
        let mut left = 0;
        for (r, os) in s.each().filter(|(r, _)| r.namespaced) {
            for o in os.iter().filter(|o| meta::namespace(o) == name) {
                left += 1;
                if !terminating(o) || r.builtin_kind() != "Pod" {
                    actions.push(Action::Delete(
                        r,
                        name.to_string(),
                        meta::name(o).to_string(),
                    ));
                }
            }
        }
        if left == 0 {
            actions.push(Action::FinalizeNamespace(name.to_string()));
        }
    }
    actions
}

/// Gives every node a pod CIDR.
pub fn reconcile_node_cidrs(s: &Snapshot, cluster_cidr: &str, node_mask: u8) -> Vec<Action> {
    let Ok(cidr) = cluster_cidr.parse() else {
        return Vec::new();
    };
    let Ok(mut alloc) = shoal_cni::NodeCidrAllocator::new(cidr, node_mask) else {
        return Vec::new();
    };
    for n in s.of("nodes") {
        if let Some(c) = str_at(n, "/spec/podCIDR").and_then(|c| c.parse().ok()) {
            alloc.reserve(c);
        }
    }
    let node_r = res("Node", "");
    let mut actions = Vec::new();
    for n in s
        .of("nodes")
        .iter()
        .filter(|n| str_at(n, "/spec/podCIDR").is_none())
    {
        if let Ok(c) = alloc.allocate() {
            actions.push(Action::Patch(
                node_r,
                String::new(),
                meta::name(n).to_string(),
                json!({"spec": {"podCIDR": c.to_string(), "podCIDRs": [c.to_string()]}}),
                false,
            ));
        }
    }
    actions
}

/// Performs an action; false if it failed.
async fn perform(objects: &Objects, a: Action) -> bool {
    let result = match &a {
        Action::Create(r, ns, obj) => objects
            .create(r, ns, obj.clone(), WriteOpts::default())
            .await
            .map(|_| ()),
        Action::Patch(r, ns, name, p, status) => objects
            .patch(
                r,
                ns,
                name,
                PatchType::Merge,
                p,
                status.then_some(Sub::Status),
                WriteOpts::default(),
            )
            .await
            .map(|_| ()),
        Action::Delete(r, ns, name) => objects
            .delete(r, ns, name, DeleteOpts::default())
            .await
            .map(|_| ()),
        Action::DeleteNow(r, ns, name) => {
            let opts = DeleteOpts {
                grace_period: Some(0),
                ..DeleteOpts::default()
            };
            objects.delete(r, ns, name, opts).await.map(|_| ())
        }
        Action::DeleteForeground(r, ns, name) => {
            let opts = DeleteOpts {
                propagation: Propagation::Foreground,
                ..DeleteOpts::default()
            };
            objects.delete(r, ns, name, opts).await.map(|_| ())
        }
        Action::FinalizeNamespace(name) => objects.finalize_namespace(name).await.map(|_| ()),
        Action::Event(involved, reason, message) => {
            let component = match involved["kind"].as_str() {
                Some("Deployment") => "deployment-controller",
                Some("Job") => "job-controller",
                Some("DaemonSet") => "daemonset-controller",
                Some("StatefulSet") => "statefulset-controller",
                Some("CronJob") => "cronjob-controller",
                Some("ReplicationController") => "replication-controller",
                _ => "replicaset-controller",
            };
            objects
                .event(involved, "Normal", reason, message, component)
                .await;
            Ok(())
        }
    };
    match result {
        Ok(()) => true,
        // The object changed or went: that change wakes the next pass.
        Err(e) if e.code == 404 || e.code == 409 => {
            tracing::debug!("controller action {a:?}: {e}");
            true
        }
        Err(e) => {
            tracing::warn!("controller action failed: {e}");
            false
        }
    }
}

/// Notes the namespace a change touched.
fn note(dirty: &mut Option<Dirty>, e: &crate::store::Event) {
    if let Some(d) = dirty {
        d.note(e);
    }
}

/// Whether a change can give a controller work: Events and Leases never do.
fn relevant(e: &crate::store::Event) -> bool {
    !(e.key.starts_with("events/") || e.key.starts_with("leases/"))
}

/// Whether a change can give the garbage collector work: an object gone,
/// one being deleted (its dependents may wait on it), or one whose owners
/// changed (an owner may wait on it).
fn wakes_gc(e: &crate::store::Event) -> bool {
    let owners = |o: &Value| o.pointer("/metadata/ownerReferences").cloned();
    e.kind == crate::store::EventKind::Deleted
        || terminating(&e.object)
        || e.prev
            .as_ref()
            .is_some_and(|p| owners(p) != owners(&e.object))
}

/// What the controllers are configured with.
#[derive(Debug, Clone)]
pub struct ControllerConfig {
    /// The range node pod CIDRs are cut from.
    pub cluster_cidr: String,
    /// Prefix length of each node's pod CIDR.
    pub node_mask: u8,
    /// The cluster CA, published in each namespace's `kube-root-ca.crt`.
    pub ca_pem: String,
    /// How long an Event lives after it was last written.
    pub event_ttl: std::time::Duration,
    /// How long a node may stay silent before it is unreachable.
    pub node_grace: std::time::Duration,
}

/// How often the garbage collector looks for orphans when nothing was
/// deleted (an object can be created with owners that are already gone).
const GC_PERIOD: std::time::Duration = std::time::Duration::from_secs(30);

/// Runs every controller until the task is dropped. A pass reads a
/// snapshot of the store and reconciles it; changes that arrive during a
/// pass are taken together by the next one, which waits at least as long
/// as the last pass took, so under a flood of changes the controllers use
/// at most about half of a core.
pub async fn run(objects: Objects, config: ControllerConfig) {
    let ControllerConfig {
        cluster_cidr,
        node_mask,
        ca_pem,
        event_ttl,
        node_grace,
    } = config;
    let node_grace = jiff::SignedDuration::try_from(node_grace).unwrap_or(node_lifecycle::GRACE);
    let Ok((_, mut rx)) = objects.store().watch(None) else {
        return;
    };
    let since = jiff::Timestamp::now();
    let mut deleted = true;
    let mut last_gc = tokio::time::Instant::now();
    let mut dirty: Option<Dirty> = None;
    loop {
        let started = tokio::time::Instant::now();
        let mut snap = Snapshot::read(&objects);
        snap.dirty = dirty.replace(Dirty::default());
        let mut actions = reconcile_node_cidrs(&snap, &cluster_cidr, node_mask);
        actions.extend(reconcile_deployments(&snap));
        actions.extend(reconcile_replicasets(&snap));
        actions.extend(reconcile_daemonsets(&snap));
        actions.extend(reconcile_statefulsets(&snap));
        let now = jiff::Timestamp::now();
        actions.extend(reconcile_cronjobs(&snap, now));
        actions.extend(reconcile_jobs(&snap, now));
        actions.extend(node_lifecycle::reconcile_node_lifecycle(
            &snap, now, since, node_grace,
        ));
        actions.extend(reconcile_endpoints(&snap));
        actions.extend(load_balancers::reconcile_load_balancers(&snap));
        actions.extend(reconcile_quotas(&snap));
        actions.extend(reconcile_definitions(&snap));
        actions.extend(api_services::reconcile_api_services(&snap, now));
        if deleted || last_gc.elapsed() >= GC_PERIOD {
            actions.extend(reconcile_garbage(&snap));
            actions.extend(event_ttl::reconcile_event_ttl(&snap, now, event_ttl));
            deleted = false;
            last_gc = tokio::time::Instant::now();
        }
        actions.extend(reconcile_namespaces(&snap));
        actions.extend(reconcile_namespace_defaults(&snap, &ca_pem));
        let timer = [
            jobs::next_deadline(&snap),
            cronjobs::next_run(&snap, now),
            node_lifecycle::next_deadline(&snap, since, node_grace),
        ]
        .into_iter()
        .flatten()
        .min();
        drop(snap);
        let done =
            futures::future::join_all(actions.into_iter().map(|a| perform(&objects, a))).await;
        if done.contains(&false) {
            // Try everything again next time.
            dirty = None;
        }
        let took = started.elapsed();
        // Wait for a change that matters, the garbage collector's turn or a
        // Job's deadline.
        let mut until = last_gc + GC_PERIOD;
        if let Some(t) = timer {
            let secs = (t - jiff::Timestamp::now()).get_seconds().max(0) as u64;
            // Timestamps have whole seconds: wake just after the second turns.
            let due =
                tokio::time::Instant::now() + std::time::Duration::from_millis(secs * 1000 + 1000);
            until = until.min(due);
        }
        let wait = tokio::time::sleep_until(until);
        tokio::pin!(wait);
        loop {
            tokio::select! {
                got = rx.recv() => match got {
                    Ok(e) if relevant(&e) => {
                        deleted |= wakes_gc(&e);
                        note(&mut dirty, &e);
                        break;
                    }
                    Ok(_) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                        deleted = true;
                        dirty = None;
                        break;
                    }
                    Err(_) => return,
                },
                // A timer's wake-up looks at everything again.
                () = &mut wait => {
                    dirty = None;
                    break;
                }
            }
        }
        tokio::time::sleep(took.max(std::time::Duration::from_millis(2))).await;
        loop {
            match rx.try_recv() {
                Ok(e) => {
                    deleted |= wakes_gc(&e);
                    if relevant(&e) {
                        note(&mut dirty, &e);
                    }
                }
                Err(tokio::sync::broadcast::error::TryRecvError::Lagged(_)) => {
                    deleted = true;
                    dirty = None;
                }
                Err(_) => break,
            }
        }
    }
}

/// Helpers for the controllers' unit tests.
#[cfg(test)]
mod test_support {
    use super::*;

    /// A snapshot holding `items`, each under its resource plural.
    pub fn snap(items: &[(&'static str, Value)]) -> Snapshot {
        let mut by_resource: BTreeMap<&'static str, Vec<Arc<Value>>> = BTreeMap::new();
        for (plural, v) in items {
            by_resource
                .entry(plural)
                .or_default()
                .push(Arc::new(v.clone()));
        }
        Snapshot {
            by_resource,
            ..Snapshot::default()
        }
    }

    /// The objects the actions create.
    pub fn created(actions: &[Action]) -> Vec<&Value> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Create(_, _, obj) => Some(obj),
                _ => None,
            })
            .collect()
    }

    /// `plural/name` of each object the actions delete.
    pub fn deleted(actions: &[Action]) -> Vec<String> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Delete(r, _, name) => Some(format!("{}/{name}", r.plural)),
                _ => None,
            })
            .collect()
    }

    /// The status the actions write, or null.
    pub fn status(actions: &[Action]) -> Value {
        actions
            .iter()
            .find_map(|a| match a {
                Action::Patch(_, _, _, p, true) => Some(p["status"].clone()),
                _ => None,
            })
            .unwrap_or(Value::Null)
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::snap;
    use super::*;

    fn deployment(replicas: i64, image: &str) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "d", "uid": "dep-uid", "generation": 2},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}},
                "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": image}]}}}})
    }

    fn rs_of(d: &Value, replicas: i64, available: i64) -> Value {
        let hash = template_hash(&d["spec"]["template"]);
        json!({"apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": format!("web-{hash}"), "namespace": "d", "uid": format!("rs-{hash}"),
                "labels": {"app": "web", "pod-template-hash": hash},
                "ownerReferences": [{"uid": "dep-uid", "controller": true, "kind": "Deployment", "name": "web"}]},
            "spec": {"replicas": replicas, "template": d["spec"]["template"]},
            "status": {"replicas": available, "availableReplicas": available, "readyReplicas": available}})
    }

    #[test]
    fn a_new_deployment_gets_a_replicaset_at_full_size() {
        let d = deployment(3, "a:v1");
        let actions = reconcile_deployments(&snap(&[("deployments", d)]));
        let created: Vec<&Value> = actions
            .iter()
            .filter_map(|a| match a {
                Action::Create(_, _, o) => Some(o),
                _ => None,
            })
            .collect();
        assert_eq!(created.len(), 1);
        assert_eq!(created[0]["spec"]["replicas"], json!(3));
        assert_eq!(
            created[0]["metadata"]["ownerReferences"][0]["uid"],
            json!("dep-uid")
        );
        assert!(created[0]["spec"]["selector"]["matchLabels"]["pod-template-hash"].is_string());
    }

    #[test]
    fn a_template_change_rolls_within_surge() {
        let old_d = deployment(4, "a:v1");
        let new_d = deployment(4, "a:v2");
        let old_rs = rs_of(&old_d, 4, 4);
        let new_rs = rs_of(&new_d, 0, 0);
        let s = snap(&[
            ("deployments", new_d.clone()),
            ("replicasets", old_rs),
            ("replicasets", new_rs),
        ]);
        let actions = reconcile_deployments(&s);
        let scaled: Vec<(String, i64)> = actions
            .iter()
            .filter_map(|a| match a {
                Action::Patch(r, _, name, p, false) if r.kind == "ReplicaSet" => {
                    Some((name.clone(), p["spec"]["replicas"].as_i64().unwrap()))
                }
                _ => None,
            })
            .collect();
        let new_name = format!("web-{}", template_hash(&new_d["spec"]["template"]));
        assert!(
            scaled.contains(&(new_name, 1)),
            "surge of 25% of 4 = 1 new pod first: {scaled:?}"
        );
        let old_name = format!("web-{}", template_hash(&old_d["spec"]["template"]));
        assert!(
            scaled.contains(&(old_name, 3)),
            "maxUnavailable 1 lets one old pod go: {scaled:?}"
        );
    }

    #[test]
    fn replicasets_create_and_trim_pods() {
        let d = deployment(2, "a:v1");
        let rs = rs_of(&d, 2, 0);
        let actions = reconcile_replicasets(&snap(&[("replicasets", rs.clone())]));
        assert_eq!(
            actions
                .iter()
                .filter(|a| matches!(a, Action::Create(..)))
                .count(),
            2
        );
        let pod = |n: &str| {
            json!({"metadata": {"name": n, "namespace": "d", "creationTimestamp": "2026-01-01T00:00:00Z",
            "ownerReferences": [{"uid": rs["metadata"]["uid"], "controller": true}]}, "status": {"phase": "Running"}})
        };
        let mut small = rs.clone();
        small["spec"]["replicas"] = json!(1);
        let actions = reconcile_replicasets(&snap(&[
            ("replicasets", small),
            ("pods", pod("p1")),
            ("pods", pod("p2")),
        ]));
        assert_eq!(
            actions
                .iter()
                .filter(|a| matches!(a, Action::Delete(..)))
                .count(),
            1
        );
    }

    #[test]
    fn replication_controllers_own_their_pods() {
        let rc = json!({"apiVersion": "v1", "kind": "ReplicationController",
            "metadata": {"name": "web", "namespace": "d", "uid": "rc1", "generation": 1},
            "spec": {"replicas": 2, "selector": {"app": "web"},
                "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}}});
        let actions = reconcile_replicasets(&snap(&[("replicationcontrollers", rc)]));
        let owners: Vec<&Value> = actions
            .iter()
            .filter_map(|a| match a {
                Action::Create(r, _, pod) if r.kind == "Pod" => {
                    Some(&pod["metadata"]["ownerReferences"][0]["kind"])
                }
                _ => None,
            })
            .collect();
        assert_eq!(owners, ["ReplicationController", "ReplicationController"]);
        assert!(actions.iter().any(|a| matches!(a,
            Action::Patch(r, _, n, p, true) if r.kind == "ReplicationController" && n == "web" && p["status"]["replicas"] == 0)));
    }

    #[test]
    fn orphan_and_foreground_deletions_handle_dependents_first() {
        let owner = |fin: &str| {
            json!({"metadata": {"name": "r", "namespace": "d", "uid": "rs1",
                "deletionTimestamp": "2026-01-01T00:00:00Z", "finalizers": ["keep", fin]}})
        };
        let pod = json!({"metadata": {"name": "q", "namespace": "d", "uid": "y",
            "ownerReferences": [{"uid": "rs1", "blockOwnerDeletion": true}, {"uid": "other"}]}});
        let other = json!({"metadata": {"name": "o", "namespace": "d", "uid": "other"}});

        // Orphan: the dependent loses this owner and keeps the other one.
        let actions = reconcile_garbage(&snap(&[
            ("replicasets", owner(ORPHAN)),
            ("pods", pod.clone()),
            ("replicasets", other.clone()),
        ]));
        assert_eq!(actions.len(), 1, "{actions:?}");
        assert!(matches!(&actions[0], Action::Patch(r, _, n, p, false)
            if r.kind == "Pod" && n == "q" && p["metadata"]["ownerReferences"] == json!([{"uid": "other"}])));

        // Foreground: the dependent is deleted, in the foreground too; the
        // owner keeps its finalizer meanwhile.
        let actions = reconcile_garbage(&snap(&[
            ("replicasets", owner(FOREGROUND_DELETION)),
            ("pods", pod.clone()),
            ("replicasets", other.clone()),
        ]));
        assert_eq!(actions.len(), 1, "{actions:?}");
        assert!(
            matches!(&actions[0], Action::DeleteForeground(r, _, n) if r.kind == "Pod" && n == "q")
        );
        // A dependent that does not block its owner is deleted, but the
        // owner goes at once.
        let mut free = pod.clone();
        free["metadata"]["ownerReferences"][0]["blockOwnerDeletion"] = json!(false);
        let actions = reconcile_garbage(&snap(&[
            ("replicasets", owner(FOREGROUND_DELETION)),
            ("pods", free),
            ("replicasets", other.clone()),
        ]));
        assert_eq!(actions.len(), 2, "{actions:?}");
        assert!(
            actions
                .iter()
                .any(|a| matches!(a, Action::Patch(r, _, _, p, false)
            if r.kind == "ReplicaSet" && p["metadata"]["finalizers"] == json!(["keep"])))
        );

        // With no dependents left, only the policy's finalizer goes.
        for fin in [ORPHAN, FOREGROUND_DELETION] {
            let actions = reconcile_garbage(&snap(&[("replicasets", owner(fin))]));
            assert_eq!(actions.len(), 1, "{actions:?}");
            assert!(matches!(&actions[0], Action::Patch(r, _, n, p, false)
                if r.kind == "ReplicaSet" && n == "r" && p["metadata"]["finalizers"] == json!(["keep"])));
        }
    }

    #[test]
    fn orphans_are_collected() {
        let orphan = json!({"metadata": {"name": "p", "namespace": "d", "uid": "x", "ownerReferences": [{"uid": "gone"}]}});
        let owned = json!({"metadata": {"name": "q", "namespace": "d", "uid": "y", "ownerReferences": [{"uid": "rs1"}]}});
        let owner = json!({"metadata": {"name": "r", "namespace": "d", "uid": "rs1"}});
        let actions = reconcile_garbage(&snap(&[
            ("pods", orphan),
            ("pods", owned),
            ("replicasets", owner),
        ]));
        assert_eq!(actions.len(), 1);
        assert!(matches!(&actions[0], Action::Delete(r, _, n) if r.kind == "Pod" && n == "p"));
    }
}

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

use shoal_machinery::meta::{self, str_at};
use shoal_registry::objects::{DeleteOpts, Objects, PatchType, Propagation, WriteOpts};
use shoal_registry::resources::{self, RESOURCES, Resource, Sub};

pub use certificates::{Approver, Signer};

pub mod api_services;
mod bootstrap;
mod certificates;
mod crds;
mod cronjobs;
mod daemonsets;
mod endpoints;
pub use endpoints::reconcile_endpoints;
mod deployments;
mod disruption;
mod event_ttl;
mod garbage;
mod jobs;
mod load_balancers;
mod namespaces;
mod node_cidrs;
mod node_lifecycle;
mod quotas;
mod replicasets;
mod revisions;
mod statefulsets;
mod taint_eviction;
pub use crds::reconcile_definitions;
pub use cronjobs::reconcile_cronjobs;
pub use daemonsets::reconcile_daemonsets;
pub use deployments::reconcile_deployments;
pub use garbage::reconcile_garbage;
pub use jobs::reconcile_jobs;
pub use namespaces::{reconcile_namespace_defaults, reconcile_namespaces};
pub use node_cidrs::reconcile_node_cidrs;
pub use quotas::reconcile_quotas;
pub use replicasets::reconcile_replicasets;
pub use statefulsets::reconcile_statefulsets;

/// What a controller wants done.
#[derive(Debug, Clone)]
pub enum Action {
    /// Create an object.
    Create {
        /// Its resource.
        resource: &'static Resource,
        /// Its namespace (empty for a cluster object).
        namespace: String,
        /// The object.
        object: Value,
    },
    /// Merge-patch an object, or its status.
    Patch {
        /// Its resource.
        resource: &'static Resource,
        /// Its namespace (empty for a cluster object).
        namespace: String,
        /// Its name.
        name: String,
        /// The merge patch.
        patch: Value,
        /// Whether the patch is of the `status` subresource.
        status: bool,
    },
    /// Delete an object.
    Delete {
        /// Its resource.
        resource: &'static Resource,
        /// Its namespace (empty for a cluster object).
        namespace: String,
        /// Its name.
        name: String,
    },
    /// Delete an object with no grace period: nothing is left to end it.
    DeleteNow {
        /// Its resource.
        resource: &'static Resource,
        /// Its namespace (empty for a cluster object).
        namespace: String,
        /// Its name.
        name: String,
    },
    /// Delete a dependent of an object deleted in the foreground, in the
    /// foreground too.
    DeleteForeground {
        /// Its resource.
        resource: &'static Resource,
        /// Its namespace (empty for a cluster object).
        namespace: String,
        /// Its name.
        name: String,
    },
    /// Record a Normal event about an object.
    Event {
        /// The object the event is about.
        object: Value,
        /// The reason (`SuccessfulCreate`).
        reason: &'static str,
        /// What happened.
        message: String,
    },
    /// Remove an emptied, terminating namespace.
    FinalizeNamespace(String),
}

/// All objects of the kinds the controllers read.
#[derive(Default)]
pub struct Snapshot {
    /// Objects of the built-in resources by plural, each kind in the
    /// store's order (by namespace, then name).
    by_resource: BTreeMap<&'static str, Vec<Arc<Value>>>,
    /// Objects of each custom resource (one served version of each).
    pub custom: Vec<(&'static Resource, Vec<Arc<Value>>)>,
    /// Objects by resource plural and controller uid, made on first use.
    controlled: OnceLock<Index>,
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
    /// The pods that changed, as `namespace/name`.
    pub pod_names: BTreeSet<String>,
    /// Whether any Node changed.
    pub nodes: bool,
}

impl Dirty {
    /// Only the namespaces `ns` changed (in tests).
    pub fn namespaces<const N: usize>(ns: [&str; N]) -> Self {
        Self {
            namespaces: ns.iter().map(|n| n.to_string()).collect(),
            pods: ns.iter().map(|n| n.to_string()).collect(),
            services: BTreeSet::new(),
            pod_names: BTreeSet::new(),
            nodes: false,
        }
    }

    /// Notes the change `e`.
    fn note(&mut self, e: &shoal_store::Event) {
        let mut parts = e.key.splitn(3, '/');
        let (plural, ns, name) = (
            parts.next().unwrap_or_default(),
            parts.next().unwrap_or_default(),
            parts.next().unwrap_or_default(),
        );
        if ns.is_empty() {
            self.nodes |= plural == "nodes";
            return;
        }
        if !self.namespaces.contains(ns) {
            self.namespaces.insert(ns.to_string());
        }
        match plural {
            "pods" => {
                if !self.pods.contains(ns) {
                    self.pods.insert(ns.to_string());
                }
                self.pod_names.insert(format!("{ns}/{name}"));
            }
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

    /// The pods that may have changed since the last pass (each found by
    /// a binary search), or every pod when anything may have or a Node
    /// changed (a pod's standing follows its node's).
    fn changed_pods(&self) -> Box<dyn Iterator<Item = &Value> + '_> {
        match &self.dirty {
            Some(d) if !d.nodes => Box::new(
                d.pod_names
                    .iter()
                    .filter_map(|key| self.by_key("pods", key))
                    .map(|p| &**p),
            ),
            _ => Box::new(self.of("pods").iter().map(|p| &**p)),
        }
    }

    /// The index of the first object of `plural` whose `namespace/name`
    /// is not below `bound`: a binary search, as the objects are in the
    /// store's order.
    fn first_not_below(&self, plural: &str, bound: &str) -> usize {
        self.of(plural)
            .partition_point(|o| store_order(o).cmp(bound.as_bytes().iter()).is_lt())
    }

    /// The object of the built-in resource `plural` at `namespace/name`.
    fn by_key(&self, plural: &str, key: &str) -> Option<&Arc<Value>> {
        let found = self.of(plural).get(self.first_not_below(plural, key))?;
        store_order(found)
            .eq(key.as_bytes().iter())
            .then_some(found)
    }

    /// The objects of the built-in resource `plural` in namespace `ns`.
    fn in_namespace(&self, plural: &'static str, ns: &str) -> &[Arc<Value>] {
        // A namespace's keys are those from `ns/` up to `ns0` ('0' follows
        // '/'), whatever other namespaces' names share its start.
        let start = self.first_not_below(plural, &format!("{ns}/"));
        let end = self.first_not_below(plural, &format!("{ns}0"));
        &self.of(plural)[start..end.max(start)]
    }

    /// A snapshot of `items` under their resource plurals (for tests and
    /// benchmarks), each kind put in the store's order.
    pub fn of_objects(items: impl IntoIterator<Item = (&'static str, Value)>) -> Self {
        let mut by_resource: BTreeMap<&'static str, Vec<Arc<Value>>> = BTreeMap::new();
        for (plural, o) in items {
            by_resource.entry(plural).or_default().push(Arc::new(o));
        }
        for objects in by_resource.values_mut() {
            objects.sort_by(|a, b| store_order(a).cmp(store_order(b)));
        }
        Self {
            by_resource,
            ..Self::default()
        }
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
            .filter(|r| r.view.is_none() && r.stored)
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
            .filter(|r| r.view.is_none() && r.stored)
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
            dirty: None,
        }
    }
}

/// The bytes an object's storage key sorts by after its resource's
/// prefix: `namespace/name`.
fn store_order(o: &Value) -> impl Iterator<Item = &u8> + Clone {
    meta::namespace(o)
        .as_bytes()
        .iter()
        .chain(b"/")
        .chain(meta::name(o).as_bytes())
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
    (!subset_equal(&status, obj.get("status"))).then(|| Action::Patch {
        resource: r,
        namespace: meta::namespace(obj).to_string(),
        name: meta::name(obj).to_string(),
        patch: json!({"status": status}),
        status: true,
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

fn has_finalizer(o: &Value, f: &str) -> bool {
    o.pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .is_some_and(|fs| fs.iter().any(|x| x == f))
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

/// Performs an action; false if it failed.
async fn perform(objects: &Objects, a: Action) -> bool {
    let result = match &a {
        Action::Create {
            resource: r,
            namespace: ns,
            object: obj,
        } => objects
            .create(r, ns, obj.clone(), WriteOpts::default())
            .await
            .map(|_| ()),
        Action::Patch {
            resource: r,
            namespace: ns,
            name,
            patch: p,
            status,
        } => objects
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
        Action::Delete {
            resource: r,
            namespace: ns,
            name,
        } => objects
            .delete(r, ns, name, DeleteOpts::default())
            .await
            .map(|_| ()),
        Action::DeleteNow {
            resource: r,
            namespace: ns,
            name,
        } => {
            let opts = DeleteOpts {
                grace_period: Some(0),
                ..DeleteOpts::default()
            };
            objects.delete(r, ns, name, opts).await.map(|_| ())
        }
        Action::DeleteForeground {
            resource: r,
            namespace: ns,
            name,
        } => {
            let opts = DeleteOpts {
                propagation: Propagation::Foreground,
                ..DeleteOpts::default()
            };
            objects.delete(r, ns, name, opts).await.map(|_| ())
        }
        Action::FinalizeNamespace(name) => objects.finalize_namespace(name).await.map(|_| ()),
        Action::Event {
            object: involved,
            reason,
            message,
        } => {
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
fn note(dirty: &mut Option<Dirty>, e: &shoal_store::Event) {
    if let Some(d) = dirty {
        d.note(e);
    }
}

/// Whether a change can give a controller work: Events never do, nor do
/// Leases but the nodes' (an agent heard from again).
fn relevant(e: &shoal_store::Event) -> bool {
    const LEASES: &str = "leases.coordination.k8s.io/";
    !(e.key.starts_with("events/")
        || e.key.starts_with(LEASES) && !e.key[LEASES.len()..].starts_with("kube-node-lease/"))
}

/// Whether a change can give the garbage collector work: an object gone,
/// one being deleted (its dependents may wait on it), or one whose owners
/// changed (an owner may wait on it).
fn wakes_gc(e: &shoal_store::Event) -> bool {
    let owners = |o: &Value| o.pointer("/metadata/ownerReferences").cloned();
    e.kind == shoal_store::EventKind::Deleted
        || terminating(&e.object)
        || e.prev
            .as_ref()
            .is_some_and(|p| owners(p) != owners(&e.object))
}

/// What the controllers are configured with.
#[derive(Clone)]
pub struct ControllerConfig {
    /// The range node pod CIDRs are cut from.
    pub cluster_cidr: String,
    /// Prefix length of each node's pod CIDR.
    pub node_mask: u8,
    /// Whether Nodes are given pod CIDRs (kube-controller-manager's
    /// `--allocate-node-cidrs`).
    pub allocate_node_cidrs: bool,
    /// The cluster CA, published in each namespace's `kube-root-ca.crt`.
    pub ca_pem: String,
    /// How long an Event lives after it was last written.
    pub event_ttl: std::time::Duration,
    /// How long a node may stay silent before it is unreachable.
    pub node_grace: std::time::Duration,
    /// Signs approved CertificateSigningRequests; `None` leaves them
    /// unsigned.
    pub signer: Option<Signer>,
    /// Approves the CertificateSigningRequests nodes make; `None` leaves
    /// every request to a person.
    pub approver: Option<Approver>,
    /// The kubeconfig (server and CA, no credentials) published in
    /// `kube-public/cluster-info` for joining nodes.
    pub cluster_info: Option<String>,
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
        allocate_node_cidrs,
        ca_pem,
        event_ttl,
        node_grace,
        signer,
        approver,
        cluster_info,
    } = config;
    let node_grace = jiff::SignedDuration::try_from(node_grace).unwrap_or(node_lifecycle::GRACE);
    let Ok((_, mut rx)) = objects.store().watch(None) else {
        return;
    };
    let since = jiff::Timestamp::now();
    let mut deleted = true;
    let mut last_gc = tokio::time::Instant::now();
    let mut dirty: Option<Dirty> = None;
    // The earliest deadline of a pod bound to a missing node, held across
    // passes that look only at pods that changed.
    let mut orphans_due: Option<jiff::Timestamp> = None;
    loop {
        let started = tokio::time::Instant::now();
        let mut snap = Snapshot::read(&objects);
        snap.dirty = dirty.replace(Dirty::default());
        let mut actions = if allocate_node_cidrs {
            reconcile_node_cidrs(&snap, &cluster_cidr, node_mask)
        } else {
            Vec::new()
        };
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
        actions.extend(taint_eviction::reconcile_taint_eviction(&snap, now));
        actions.extend(disruption::reconcile_disruption_budgets(&snap, now));
        actions.extend(reconcile_endpoints(&snap));
        actions.extend(load_balancers::reconcile_load_balancers(&snap));
        actions.extend(reconcile_quotas(&snap));
        actions.extend(reconcile_definitions(&snap));
        actions.extend(certificates::approve_certificates(&snap, approver.as_ref()));
        actions.extend(certificates::reconcile_certificates(&snap, signer.as_ref()));
        actions.extend(bootstrap::reconcile_cluster_info(
            &snap,
            cluster_info.as_deref(),
            now.as_second(),
        ));
        actions.extend(bootstrap::reconcile_expired_tokens(&snap, now.as_second()));
        actions.extend(api_services::reconcile_api_services(&snap, now));
        if deleted || last_gc.elapsed() >= GC_PERIOD {
            actions.extend(reconcile_garbage(&snap));
            actions.extend(event_ttl::reconcile_event_ttl(&snap, now, event_ttl));
            deleted = false;
            last_gc = tokio::time::Instant::now();
        }
        actions.extend(reconcile_namespaces(&snap));
        actions.extend(reconcile_namespace_defaults(&snap, &ca_pem));
        if snap.dirty.is_none() {
            orphans_due = None;
        }
        orphans_due = orphans_due
            .into_iter()
            .chain(node_lifecycle::next_orphan_deadline(&snap, node_grace))
            .min();
        let timer = [
            jobs::next_deadline(&snap),
            cronjobs::next_run(&snap, now),
            node_lifecycle::next_silence(&snap, since, node_grace),
            taint_eviction::next_eviction(&snap, now),
            orphans_due,
            bootstrap::next_expiry(&snap),
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
        Snapshot::of_objects(items.iter().cloned())
    }

    /// The objects the actions create.
    pub fn created(actions: &[Action]) -> Vec<&Value> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Create {
                    resource: _,
                    namespace: _,
                    object: obj,
                } => Some(obj),
                _ => None,
            })
            .collect()
    }

    /// `plural/name` of each object the actions delete.
    pub fn deleted(actions: &[Action]) -> Vec<String> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Delete {
                    resource: r,
                    namespace: _,
                    name,
                } => Some(format!("{}/{name}", r.plural)),
                _ => None,
            })
            .collect()
    }

    /// The status the actions write, or null.
    pub fn status(actions: &[Action]) -> Value {
        actions
            .iter()
            .find_map(|a| match a {
                Action::Patch {
                    patch: p,
                    status: true,
                    ..
                } => Some(p["status"].clone()),
                _ => None,
            })
            .unwrap_or(Value::Null)
    }

    pub fn deployment(replicas: i64, image: &str) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "d", "uid": "dep-uid", "generation": 2},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}},
                "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": image}]}}}})
    }

    pub fn rs_of(d: &Value, replicas: i64, available: i64) -> Value {
        let hash = template_hash(&d["spec"]["template"]);
        json!({"apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": format!("web-{hash}"), "namespace": "d", "uid": format!("rs-{hash}"),
                "labels": {"app": "web", "pod-template-hash": hash},
                "ownerReferences": [{"uid": "dep-uid", "controller": true, "kind": "Deployment", "name": "web"}]},
            "spec": {"replicas": replicas, "template": d["spec"]["template"]},
            "status": {"replicas": available, "availableReplicas": available, "readyReplicas": available}})
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_namespace_is_found_among_namespaces_sharing_its_start() {
        let namespaces = ["a", "a-b", "a.b", "ab", "a0", "b", ""];
        let s = Snapshot::of_objects(namespaces.iter().rev().flat_map(|ns| {
            ["x", "y"].map(|n| ("pods", json!({"metadata": {"name": n, "namespace": ns}})))
        }));
        for ns in namespaces {
            let found = s.in_namespace("pods", ns);
            assert_eq!(found.len(), 2, "{ns:?}");
            assert!(found.iter().all(|o| meta::namespace(o) == ns), "{ns:?}");
        }
        assert!(s.in_namespace("pods", "c").is_empty());
        assert!(s.in_namespace("services", "a").is_empty());
        for ns in namespaces {
            let found = s.by_key("pods", &format!("{ns}/y")).unwrap();
            assert_eq!((meta::namespace(found), meta::name(found)), (ns, "y"));
        }
        assert!(s.by_key("pods", "a/z").is_none());
        assert!(s.by_key("pods", "a-b/").is_none());
    }
}

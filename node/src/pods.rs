//! Pod workers: one task per pod bound to this node: its IP, volumes and
//! place in the start queue, its containers started in order (each a task
//! of `containers.rs`), the status they report, eviction, and deletion
//! within the grace period.

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, Preconditions};
use serde_json::{Value, json};
use tokio::sync::{mpsc, watch};

use crate::agent::Shared;
use crate::containers::{ContainerCtx, StartPermit, Update, backoff, event, now, run_container};
use crate::pod_status::{ContainerStatus, PodFacts, State, pod_status};

/// A pod's worker task and the channel that hands it newer versions.
pub(crate) struct PodWorker {
    task: tokio::task::JoinHandle<()>,
    updates: watch::Sender<Pod>,
}

impl PodWorker {
    pub fn abort(self) {
        self.task.abort();
    }
}

/// Takes a new or changed pod from the watch.
pub(crate) fn observe(shared: &Arc<Shared>, pod: Pod) {
    let Some(uid) = pod.metadata.uid.clone() else {
        return;
    };
    // The uid names the pod's directory: anything but a UUID's characters
    // could lead it elsewhere.
    if uid.is_empty()
        || uid.len() > 128
        || !uid.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    {
        tracing::warn!(uid, "pod with an unusable uid ignored");
        return;
    }
    let key = (
        pod.metadata.namespace.clone().unwrap_or_default(),
        pod.metadata.name.clone().unwrap_or_default(),
    );
    let ready = pod
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == "Ready"))
        .map(|c| c.status == "True");
    shared
        .status
        .observed(&uid, pod.metadata.resource_version.as_deref(), ready);
    let mut pods = shared.pods.lock().expect("pods lock");
    if let Some(w) = pods.get(&uid) {
        let _ = w.updates.send(pod);
        return;
    }
    shared
        .by_name
        .lock()
        .expect("names lock")
        .insert(key, uid.clone());
    let (tx, rx) = watch::channel(pod);
    let task = tokio::spawn(run_pod(shared.clone(), uid.clone(), rx));
    pods.insert(uid, PodWorker { task, updates: tx });
}

/// The images of every pod this node runs.
pub(crate) fn images_in_use(shared: &Shared) -> Vec<String> {
    let pods = shared.pods.lock().expect("pods lock");
    let mut images: Vec<String> = pods
        .values()
        .flat_map(|w| {
            let pod = w.updates.borrow();
            pod.spec
                .iter()
                .flat_map(|s| {
                    s.containers
                        .iter()
                        .chain(s.init_containers.iter().flatten())
                })
                .filter_map(|c| c.image.clone())
                .collect::<Vec<_>>()
        })
        .collect();
    images.sort();
    images.dedup();
    images
}

/// Takes a pod the API no longer has.
pub(crate) fn forget(shared: &Arc<Shared>, pod: &Pod) {
    let Some(uid) = pod.metadata.uid.as_deref() else {
        return;
    };
    shared.evicted.lock().expect("evicted lock").remove(uid);
    if let Some(w) = shared.pods.lock().expect("pods lock").remove(uid) {
        w.abort();
    }
    cleanup(shared, pod, uid);
}

/// Releases everything the node holds for a pod: its IP, its directory,
/// its HTTP targets, and what the status writer and event recorder keep.
fn cleanup(shared: &Arc<Shared>, pod: &Pod, uid: &str) {
    shared.http.remove_pod(uid);
    shared.status.forget(uid);
    shared.events.forget(uid);
    if let Some(ip) = pod
        .status
        .as_ref()
        .and_then(|s| s.pod_ip.as_ref())
        .and_then(|ip| ip.parse::<Ipv4Addr>().ok())
        && let Some(ipam) = shared.ipam.lock().expect("ipam lock").as_mut()
    {
        ipam.release(ip);
    }
    let key = (
        pod.metadata.namespace.clone().unwrap_or_default(),
        pod.metadata.name.clone().unwrap_or_default(),
    );
    {
        let mut names = shared.by_name.lock().expect("names lock");
        if names.get(&key).is_some_and(|u| u == uid) {
            names.remove(&key);
        }
    }
    let pod_dir = shared.config.data_dir.join("pods").join(uid);
    crate::volumes::unmount_all(&pod_dir);
    let _ = std::fs::remove_dir_all(pod_dir);
    shared.image_gc.notify_one();
}

/// `pod` with the IP this node gave it, for releasing on deletion.
fn with_ip(mut pod: Pod, ip: &str) -> Pod {
    pod.status.get_or_insert_with(Default::default).pod_ip = Some(ip.to_string());
    pod
}

/// How a wait of a pod worker ended.
enum Wake {
    /// The time was up.
    Elapsed,
    /// The pod is being deleted (its latest version).
    Deleted(Box<Pod>),
    /// The worker is being dropped.
    Gone,
}

/// Sleeps for `delay`, unless the pod is deleted first. Other updates of
/// the pod (its own status writes among them) do not end the wait: a
/// back-off is ended by time alone.
async fn sleep_unless_deleted(updates: &mut watch::Receiver<Pod>, delay: Duration) -> Wake {
    let deadline = tokio::time::Instant::now().checked_add(delay);
    let elapsed = async {
        match deadline {
            Some(d) => tokio::time::sleep_until(d).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(elapsed);
    loop {
        let latest = updates.borrow_and_update().clone();
        if latest.metadata.deletion_timestamp.is_some() {
            return Wake::Deleted(Box::new(latest));
        }
        tokio::select! {
            () = &mut elapsed => return Wake::Elapsed,
            changed = updates.changed() => if changed.is_err() {
                return Wake::Gone;
            },
        }
    }
}

/// The pod's IP: the one it has, or a free one of the node's CIDR.
fn pod_ip(shared: &Shared, pod: &Pod) -> Option<String> {
    if let Some(ip) = pod.status.as_ref().and_then(|s| s.pod_ip.clone()) {
        return Some(ip);
    }
    let mut ipam = shared.ipam.lock().expect("ipam lock");
    ipam.as_mut()?.allocate().ok().map(|ip| ip.to_string())
}

async fn run_pod(shared: Arc<Shared>, uid: String, mut updates: watch::Receiver<Pod>) {
    let pod = updates.borrow().clone();
    let pod_json = serde_json::to_value(&pod).unwrap_or_default();
    let ns = pod.metadata.namespace.clone().unwrap_or_default();
    let name = pod.metadata.name.clone().unwrap_or_default();
    let api: Api<Pod> = Api::namespaced(shared.client.clone(), &ns);
    let finished = matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    ) || shared.evicted.lock().expect("evicted lock").contains(&uid);
    if pod.metadata.deletion_timestamp.is_some() || finished {
        wait_and_delete(&shared, &api, &pod, &uid, &mut updates, finished).await;
        return;
    }
    // The node admits the pod only if its allocatable memory holds it.
    let _admitted = match shared
        .admissions
        .admit(&uid, crate::admit::memory_request(&pod_json))
    {
        Ok(a) => a,
        Err(message) => {
            event(&shared, &pod, "Warning", "OutOfmemory", &message);
            shared.status.set(
                &uid,
                &ns,
                &name,
                json!({"phase": "Failed", "reason": "OutOfmemory", "message": message}),
            );
            wait_and_delete(&shared, &api, &pod, &uid, &mut updates, true).await;
            return;
        }
    };
    // Pods start in the order they came, a bounded number at a time.
    let permit = tokio::select! {
        p = shared.starts.clone().acquire_owned() => p.ok(),
        wake = sleep_unless_deleted(&mut updates, Duration::MAX) => {
            if let Wake::Deleted(latest) = wake {
                delete_now(&shared, &api, &latest, &uid);
            }
            return;
        }
    };
    let permit = StartPermit(Arc::new(std::sync::Mutex::new(permit)));
    // A runtime this node has: its RuntimeClass's handler.
    // A failed sandbox: said, the start turn given up, tried again after
    // a back-off; `false` when the pod went meanwhile.
    let mut attempt = 0u32;
    let mut sandbox_failed = async |message: &str, updates: &mut watch::Receiver<Pod>| {
        event(&shared, &pod, "Warning", "FailedCreatePodSandBox", message);
        permit.release();
        match sleep_unless_deleted(updates, backoff(attempt)).await {
            Wake::Elapsed => {
                attempt += 1;
                true
            }
            Wake::Deleted(latest) => {
                delete_now(&shared, &api, &latest, &uid);
                false
            }
            Wake::Gone => false,
        }
    };
    while let Err(message) = shared.runtime_classes.check(&shared.client, &pod).await {
        if !sandbox_failed(&message, &mut updates).await {
            return;
        }
    }
    let ip = loop {
        if let Some(ip) = pod_ip(&shared, &pod) {
            break ip;
        }
        if !sandbox_failed("no free pod IP on the node", &mut updates).await {
            return;
        }
    };
    let start_time = pod
        .status
        .as_ref()
        .and_then(|s| s.start_time.as_ref())
        // As the API wrote it (RFC 3339), not as the type displays.
        .and_then(|t| serde_json::to_value(t).ok())
        .and_then(|v| v.as_str().map(String::from))
        .unwrap_or_else(now);
    let list = |field: &str| -> Vec<Value> {
        pod_json
            .pointer(&format!("/spec/{field}"))
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    let (inits, containers) = (list("initContainers"), list("containers"));
    // Init containers first, then the containers: the status vector, the
    // containers' indexes and their tasks all follow this order.
    let specs: Vec<Value> = inits.iter().chain(&containers).cloned().collect();
    let policy = pod_json
        .pointer("/spec/restartPolicy")
        .and_then(Value::as_str)
        .unwrap_or("Always")
        .to_string();
    let waiting_for = if inits.is_empty() {
        "ContainerCreating"
    } else {
        "PodInitializing"
    };
    let mut statuses: Vec<ContainerStatus> = specs
        .iter()
        .map(|c| {
            ContainerStatus::waiting(
                c.get("image").and_then(Value::as_str).unwrap_or_default(),
                waiting_for,
            )
        })
        .collect();
    let pod_dir = shared.config.data_dir.join("pods").join(&uid);
    let host = shared.config.node_ip.to_string();
    let facts = PodFacts {
        pod: &pod_json,
        ip: &ip,
        host: &host,
        start: &start_time,
        inits: &inits,
        containers: &containers,
    };
    let last_status = std::sync::Mutex::new(None::<Value>);
    // Ephemeral containers (`kubectl debug`), added while the pod runs:
    // their specs and statuses, in the order they came.
    let ephemeral = std::sync::Mutex::new((Vec::<Value>::new(), Vec::<ContainerStatus>::new()));
    let report = |statuses: &[ContainerStatus], evicted: Option<&str>| {
        let mut last = last_status.lock().expect("status lock");
        let mut status = pod_status(&facts, last.as_ref(), statuses, evicted);
        {
            let eph = ephemeral.lock().expect("ephemeral lock");
            if !eph.0.is_empty() {
                status["ephemeralContainerStatuses"] =
                    serde_json::json!(crate::pod_status::statuses_json(&facts, &eph.0, &eph.1));
            }
        }
        shared.status.set(&uid, &ns, &name, status.clone());
        *last = Some(status);
    };
    let mut attempt = 0u32;
    let volumes = loop {
        match crate::volumes::prepare(&shared.client, &pod_json, &pod_dir, &shared.config.data_dir)
            .await
        {
            Ok(v) => break Arc::new(v),
            Err(msg) => {
                for st in statuses.iter_mut() {
                    st.state = State::Waiting("CreateContainerConfigError".into(), msg.clone());
                }
                report(&statuses, None);
                event(&shared, &pod, "Warning", "FailedMount", &msg);
                permit.release();
                match sleep_unless_deleted(&mut updates, backoff(attempt)).await {
                    Wake::Elapsed => attempt += 1,
                    Wake::Deleted(latest) => {
                        delete_now(&shared, &api, &with_ip(*latest, &ip), &uid);
                        return;
                    }
                    Wake::Gone => return,
                }
            }
        }
    };
    let (tx, mut rx) = mpsc::channel::<Update>(64);
    // The containers' tasks (init containers' first) end with the worker,
    // however it ends (a pod deleted with no grace goes from the watch
    // without a word).
    let mut running: Vec<Option<tokio_util::task::AbortOnDropHandle<()>>> =
        specs.iter().map(|_| None).collect();
    // Until every container has been started, the worker keeps a sender;
    // once it lets it go, the channel closes when the last container
    // ends for good.
    let mut starter = Some(tx);
    let (stop, stop_rx) = watch::channel(None::<tokio::time::Instant>);
    let start = |i: usize, tx: &mpsc::Sender<Update>| {
        // An init container runs to completion: restarted on failure
        // unless the pod never restarts anything; a sidecar always.
        let policy = match (i < inits.len(), policy.as_str()) {
            (false, p) => p.to_string(),
            (true, _) if crate::pod_status::sidecar(&specs[i]) => "Always".into(),
            (true, "Never") => "Never".into(),
            (true, _) => "OnFailure".into(),
        };
        let ctx = ContainerCtx {
            shared: shared.clone(),
            pod: pod.clone(),
            uid: uid.clone(),
            ip: ip.clone(),
            index: i,
            spec: specs[i].clone(),
            policy,
            tx: tx.clone(),
            volumes: volumes.clone(),
            permit: permit.clone(),
            stop: stop_rx.clone(),
        };
        tokio_util::task::AbortOnDropHandle::new(tokio::spawn(run_container(ctx)))
    };
    // Starts whatever the init containers' progress allows.
    let advance = |running: &mut Vec<Option<tokio_util::task::AbortOnDropHandle<()>>>,
                   starter: &mut Option<mpsc::Sender<Update>>,
                   statuses: &[ContainerStatus]| {
        let Some(tx) = starter.as_ref() else { return };
        let progress = crate::pod_status::init_progress(&inits, &statuses[..inits.len()]);
        let upto = if progress > inits.len() {
            specs.len()
        } else {
            progress
        };
        for (i, slot) in running.iter_mut().enumerate().take(upto) {
            if slot.is_none() {
                *slot = Some(start(i, tx));
            }
        }
        if upto == specs.len() {
            *starter = None;
        }
    };
    advance(&mut running, &mut starter, &statuses);
    let mut tasks = Vec::new();
    if let Some(first) = crate::volumes::token_refresh_due(&pod_json) {
        // Projected tokens are renewed at 80% of their life while the pod runs.
        let (client, pod_json, pod_dir) =
            (shared.client.clone(), pod_json.clone(), pod_dir.clone());
        tasks.push(tokio_util::task::AbortOnDropHandle::new(tokio::spawn(
            async move {
                let mut wait = first;
                loop {
                    tokio::time::sleep(wait).await;
                    wait = match crate::volumes::refresh_tokens(&client, &pod_json, &pod_dir).await
                    {
                        Ok(next) => next.unwrap_or(first),
                        Err(e) => {
                            tracing::warn!("refreshing a pod's service-account token: {e}");
                            std::time::Duration::from_secs(10)
                        }
                    };
                }
            },
        )));
    }
    report(&statuses, None);
    let abort_all = |running: &mut Vec<Option<tokio_util::task::AbortOnDropHandle<()>>>,
                     tasks: &[tokio_util::task::AbortOnDropHandle<()>]| {
        for t in running.iter_mut() {
            *t = None;
        }
        for t in tasks {
            t.abort();
        }
    };
    let (etx, mut erx) = mpsc::channel::<Update>(16);
    let mut eph_running: Vec<tokio_util::task::AbortOnDropHandle<()>> = Vec::new();
    let limits = crate::volumes::disk_limits(&pod_json);
    let mut check = tokio::time::interval(EMPTY_DIR_CHECK);
    loop {
        tokio::select! {
            _ = check.tick(), if !limits.is_empty() => {
                let Some(message) = over_limit(&limits, &volumes) else { continue };
                abort_all(&mut running, &tasks);
                let finished = now();
                for st in statuses.iter_mut() {
                    let started = match &st.state {
                        State::Running(t) => t.clone(),
                        _ => finished.clone(),
                    };
                    st.state = State::Terminated {
                        code: 137,
                        reason: "Error".into(),
                        message: "the pod was evicted".into(),
                        started,
                        finished: finished.clone(),
                    };
                    st.ready = false;
                    st.started = false;
                    st.done = true;
                }
                report(&statuses, Some(&message));
                event(&shared, &pod, "Warning", "Evicted", &message);
                let gone = with_ip(pod.clone(), &ip);
                shared.http.remove_pod(&uid);
                wait_and_delete(&shared, &api, &gone, &uid, &mut updates, true).await;
                return;
            }
            u = rx.recv() => match u {
                Some(u) => {
                    statuses[u.index] = u.status;
                    while let Ok(more) = rx.try_recv() {
                        statuses[more.index] = more.status;
                    }
                    let n = inits.len();
                    if crate::pod_status::init_failed(&inits, &statuses[..n]) {
                        // The pod failed: its sidecars stop and nothing
                        // more starts.
                        abort_all(&mut running, &tasks);
                        stop_sidecars(&inits, &mut statuses, 137, "Error");
                        report(&statuses, None);
                        let gone = with_ip(pod.clone(), &ip);
                        wait_and_delete(&shared, &api, &gone, &uid, &mut updates, true).await;
                        return;
                    }
                    advance(&mut running, &mut starter, &statuses);
                    if starter.is_none() && statuses[n..].iter().all(|s| s.done) {
                        // The containers are done: their sidecars stop.
                        for (slot, spec) in running.iter_mut().zip(&inits) {
                            if crate::pod_status::sidecar(spec) {
                                *slot = None;
                            }
                        }
                        stop_sidecars(&inits, &mut statuses, 0, "Completed");
                    }
                    report(&statuses, None);
                }
                None => {
                    // Every container ended for good; wait for deletion.
                    let gone = with_ip(pod.clone(), &ip);
                    wait_and_delete(&shared, &api, &gone, &uid, &mut updates, true).await;
                    return;
                }
            },
            Some(u) = erx.recv() => {
                if let Some(st) = ephemeral.lock().expect("ephemeral lock").1.get_mut(u.index) {
                    *st = u.status;
                }
                report(&statuses, None);
            }
            changed = updates.changed() => {
                if changed.is_err() {
                    return;
                }
                let latest = updates.borrow().clone();
                // Ephemeral containers added since: each started once, never
                // restarted, beside the others.
                let added = new_ephemeral(&latest, &ephemeral.lock().expect("ephemeral lock").0);
                for mut spec in added {
                    // A debug container aimed at a container sees what it
                    // sees: its volumes (a Wasm pod has no process
                    // namespace to share).
                    if spec.get("volumeMounts").is_none()
                        && let Some(target) = spec.get("targetContainerName").and_then(Value::as_str)
                        && let Some(mounts) = specs
                            .iter()
                            .find(|c| c.get("name").and_then(Value::as_str) == Some(target))
                            .and_then(|c| c.get("volumeMounts"))
                    {
                        spec["volumeMounts"] = mounts.clone();
                    }
                    let index = {
                        let mut eph = ephemeral.lock().expect("ephemeral lock");
                        let image = spec.get("image").and_then(Value::as_str).unwrap_or_default();
                        eph.1.push(ContainerStatus::waiting(image, "ContainerCreating"));
                        eph.0.push(spec.clone());
                        eph.0.len() - 1
                    };
                    let ctx = ContainerCtx {
                        shared: shared.clone(),
                        pod: pod.clone(),
                        uid: uid.clone(),
                        ip: ip.clone(),
                        index,
                        spec,
                        policy: "Never".into(),
                        tx: etx.clone(),
                        volumes: volumes.clone(),
                        permit: permit.clone(),
                        stop: stop_rx.clone(),
                    };
                    eph_running.push(tokio_util::task::AbortOnDropHandle::new(tokio::spawn(run_container(ctx))));
                    report(&statuses, None);
                }
                if latest.metadata.deletion_timestamp.is_some() {
                    // Running containers run their preStop hooks and are
                    // asked to stop (HTTP instances finish the requests
                    // they are serving, commands see the stop file);
                    // whatever still runs at the end of the grace period
                    // is cancelled.
                    let grace = latest
                        .metadata
                        .deletion_grace_period_seconds
                        .and_then(|s| u64::try_from(s).ok())
                        .unwrap_or(30);
                    let deadline = tokio::time::Instant::now() + Duration::from_secs(grace);
                    let gone = with_ip(latest.clone(), &ip);
                    let mut live = Vec::new();
                    for ((c, st), task) in specs.iter().zip(&statuses).zip(running.iter_mut()) {
                        let n = c.get("name").and_then(Value::as_str).unwrap_or_default();
                        if let (State::Running(_), Some(task)) = (&st.state, task.as_mut()) {
                            event(&shared, &gone, "Normal", "Killing", &format!("Stopping container {n}"));
                            live.push(task);
                        }
                    }
                    stop.send_replace(Some(deadline));
                    let _ = tokio::time::timeout_at(deadline, futures::future::join_all(live)).await;
                    let cut = shared.http.drain(&uid, Duration::ZERO).await;
                    if cut > 0 {
                        tracing::info!("{ns}/{name}: {cut} requests cut off at the end of the grace period");
                    }
                    abort_all(&mut running, &tasks);
                    delete_now(&shared, &api, &gone, &uid);
                    return;
                }
            }
        }
    }
}

/// Evicts a running pod as the kubelet's eviction manager does under
/// pressure (`why`, its message; the pod chosen by
/// [`victim`](crate::pressure::victim)): its
/// containers are stopped and it is `Failed` with reason `Evicted` until
/// it is deleted (its controller makes a replacement). Returns its name.
pub(crate) fn evict_one(shared: &Arc<Shared>, why: &str) -> Option<String> {
    let mut memory: std::collections::HashMap<String, usize> = Default::default();
    for ((uid, _), t) in shared.exec.all() {
        *memory.entry(uid).or_default() += t.spec.usage.as_ref().map_or(0, |u| u.memory());
    }
    let (uid, worker) = {
        let mut pods = shared.pods.lock().expect("pods lock");
        let (uids, candidates): (Vec<&String>, Vec<_>) = pods
            .iter()
            .map(|(uid, w)| {
                let pod = w.updates.borrow();
                let candidate = crate::pressure::Candidate {
                    usage: memory.get(uid).copied().unwrap_or(0) as u64,
                    request: memory_request(&pod),
                    priority: pod.spec.as_ref().and_then(|s| s.priority).unwrap_or(0),
                };
                (uid, candidate)
            })
            .unzip();
        let uid = uids[crate::pressure::victim(&candidates)?].clone();
        let worker = pods.remove(&uid)?;
        (uid, worker)
    };
    shared
        .evicted
        .lock()
        .expect("evicted lock")
        .insert(uid.clone());
    let pod = worker.updates.borrow().clone();
    worker.abort();
    shared.http.remove_pod(&uid);
    let (ns, name) = (
        pod.metadata.namespace.clone().unwrap_or_default(),
        pod.metadata.name.clone().unwrap_or_default(),
    );
    let status = crate::pod_status::evicted_status(
        serde_json::to_value(&pod.status).unwrap_or_default(),
        why,
    );
    shared.status.set(&uid, &ns, &name, status);
    event(shared, &pod, "Warning", "Evicted", why);
    tracing::info!("{ns}/{name} evicted: {why}");
    Some(name)
}

/// The memory `pod`'s containers request, in bytes.
fn memory_request(pod: &Pod) -> u64 {
    pod.spec
        .iter()
        .flat_map(|s| &s.containers)
        .filter_map(|c| c.resources.as_ref()?.requests.as_ref()?.get("memory"))
        .filter_map(|q| shoal_quantity::bytes(&q.0))
        .sum()
}

/// The ephemeral containers of `pod` not among `known` (by name).
fn new_ephemeral(pod: &Pod, known: &[Value]) -> Vec<Value> {
    let json = serde_json::to_value(pod).unwrap_or_default();
    json.pointer("/spec/ephemeralContainers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|c| {
            let name = c.get("name");
            name.is_some() && !known.iter().any(|k| k.get("name") == name)
        })
        .cloned()
        .collect()
}

/// Marks the pod's sidecars that have not ended as ended with `code`
/// (their tasks were stopped).
fn stop_sidecars(inits: &[Value], statuses: &mut [ContainerStatus], code: i32, reason: &str) {
    let finished = now();
    for (st, spec) in statuses.iter_mut().zip(inits) {
        if !crate::pod_status::sidecar(spec) || st.done {
            continue;
        }
        let started = match &st.state {
            State::Running(t) => t.clone(),
            _ => finished.clone(),
        };
        st.state = State::Terminated {
            code,
            reason: reason.into(),
            message: String::new(),
            started,
            finished: finished.clone(),
        };
        st.ready = false;
        st.started = false;
        st.done = true;
    }
}

/// How often disk-backed emptyDirs are measured against their `sizeLimit`.
const EMPTY_DIR_CHECK: Duration = Duration::from_secs(2);

/// The eviction message when an emptyDir holds more than its `sizeLimit`.
fn over_limit(limits: &[(String, u64)], volumes: &crate::volumes::Volumes) -> Option<String> {
    limits.iter().find_map(|(name, limit)| {
        let used = crate::volumes::usage(volumes.get(name)?);
        (used > *limit).then(|| {
            format!("Usage of EmptyDir volume \"{name}\" exceeds the limit of {limit} bytes ({used} bytes used).")
        })
    })
}

async fn wait_and_delete(
    shared: &Arc<Shared>,
    api: &Api<Pod>,
    pod: &Pod,
    uid: &str,
    updates: &mut watch::Receiver<Pod>,
    wait: bool,
) {
    if wait {
        loop {
            if updates.borrow().metadata.deletion_timestamp.is_some() {
                break;
            }
            if updates.changed().await.is_err() {
                return;
            }
        }
    }
    let mut latest = updates.borrow().clone();
    if latest
        .status
        .as_ref()
        .and_then(|s| s.pod_ip.as_ref())
        .is_none()
    {
        latest.status = pod.status.clone();
    }
    delete_now(shared, api, &latest, uid);
}

/// Releases what the node holds for the pod and removes it from the API
/// (grace 0). The delete runs in a task of its own and is retried until
/// the API has taken it, so neither the worker going away nor a lost
/// connection leaves the pod Terminating.
fn delete_now(shared: &Arc<Shared>, api: &Api<Pod>, pod: &Pod, uid: &str) {
    cleanup(shared, pod, uid);
    shared.pods.lock().expect("pods lock").remove(uid);
    let name = pod.metadata.name.clone().unwrap_or_default();
    let dp = DeleteParams {
        grace_period_seconds: Some(0),
        preconditions: Some(Preconditions {
            uid: Some(uid.to_string()),
            resource_version: None,
        }),
        ..Default::default()
    };
    let api = api.clone();
    tokio::spawn(async move {
        let mut failures = 0u32;
        loop {
            match api.delete(&name, &dp).await {
                Ok(_) => return,
                // Gone already, or the name is another pod's now.
                Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => return,
                Err(e) => {
                    tracing::debug!("deleting pod {name}: {e}");
                    let delay = Duration::from_millis(200 << failures.min(6));
                    tokio::time::sleep(delay).await;
                    failures += 1;
                }
            }
        }
    });
}

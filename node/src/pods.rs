//! Pod workers: one task per pod bound to this node, one sub-task per
//! container, and the status they report.

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, Preconditions};
use serde_json::{Value, json};
use shoal_runtime_wasm::{CommandSpec, Error as RtError, Exit, ImageConfig, NetworkAccess};
use tokio::sync::{mpsc, watch};

use crate::agent::Shared;
use crate::logs::{ContainerLog, log_path};
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

fn now() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
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

struct Update {
    index: usize,
    status: ContainerStatus,
}

/// Records an Event about `pod`; never waits.
fn event(shared: &Shared, pod: &Pod, ty: &'static str, reason: &str, message: &str) {
    shared
        .events
        .record(crate::events::Involved::pod(pod), ty, reason, message);
}

fn memory_limit(c: &Value) -> Option<usize> {
    let q = c.pointer("/resources/limits/memory")?.as_str()?;
    shoal_quantity::bytes(q).and_then(|b| usize::try_from(b).ok())
}

/// `pod` with the IP this node gave it, for releasing on deletion.
fn with_ip(mut pod: Pod, ip: &str) -> Pod {
    pod.status.get_or_insert_with(Default::default).pod_ip = Some(ip.to_string());
    pod
}

/// `limits.cpu` in millicores.
fn cpu_limit(c: &Value) -> Option<u32> {
    shoal_quantity::millicores(c.pointer("/resources/limits/cpu")?.as_str()?)
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

/// A pod's place in the node's start queue, shared by the pod worker and
/// its containers; released as soon as the pod is started, waits for
/// something (a back-off, an image pull) or fails.
#[derive(Clone)]
struct StartPermit(Arc<std::sync::Mutex<Option<tokio::sync::OwnedSemaphorePermit>>>);

impl StartPermit {
    fn release(&self) {
        self.0.lock().expect("start permit lock").take();
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
    );
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
    let mut attempt = 0u32;
    let ip = loop {
        if let Some(ip) = pod_ip(&shared, &pod) {
            break ip;
        }
        event(
            &shared,
            &pod,
            "Warning",
            "FailedCreatePodSandBox",
            "no free pod IP on the node",
        );
        permit.release();
        match sleep_unless_deleted(&mut updates, backoff(attempt)).await {
            Wake::Elapsed => attempt += 1,
            Wake::Deleted(latest) => {
                delete_now(&shared, &api, &latest, &uid);
                return;
            }
            Wake::Gone => return,
        }
    };
    let start_time = pod
        .status
        .as_ref()
        .and_then(|s| s.start_time.as_ref())
        .map(|t| t.0.to_string())
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
    let report = |statuses: &[ContainerStatus], evicted: Option<&str>| {
        let mut last = last_status.lock().expect("status lock");
        let status = pod_status(&facts, last.as_ref(), statuses, evicted);
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
            changed = updates.changed() => {
                if changed.is_err() {
                    return;
                }
                let latest = updates.borrow().clone();
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

/// The container's argv as Kubernetes builds it: `command` replaces the
/// image's Entrypoint (and drops its Cmd), `args` replaces the Cmd. Without
/// either, argv[0] is the container's name.
fn argv(
    container: &Value,
    name: &str,
    image: &ImageConfig,
    env: &[(String, String)],
) -> Vec<String> {
    let list = |k: &str| {
        container.get(k).and_then(Value::as_array).map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(|s| crate::env::expand(s, env)))
                .collect::<Vec<_>>()
        })
    };
    let (command, args) = match (list("command"), list("args")) {
        (Some(c), a) => (c, a.unwrap_or_default()),
        (None, Some(a)) => (image.entrypoint.clone(), a),
        (None, None) => (image.entrypoint.clone(), image.cmd.clone()),
    };
    let mut argv = command;
    if argv.is_empty() {
        argv.push(name.to_string());
    }
    argv.extend(args);
    argv
}

/// The image config's `Env` under the container's own environment.
fn with_image_env(env: Vec<(String, String)>, image: &ImageConfig) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = image
        .env
        .iter()
        .filter_map(|kv| kv.split_once('='))
        .filter(|(k, _)| !env.iter().any(|(n, _)| n == k))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    out.extend(env);
    out
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

struct ContainerCtx {
    shared: Arc<Shared>,
    pod: Pod,
    uid: String,
    ip: String,
    index: usize,
    spec: Value,
    policy: String,
    tx: mpsc::Sender<Update>,
    volumes: Arc<crate::volumes::Volumes>,
    permit: StartPermit,
    /// When the pod is asked to stop: the end of its grace period.
    stop: watch::Receiver<Option<tokio::time::Instant>>,
}

/// Completes with the end of the grace period once the pod is asked to
/// stop.
async fn stop_requested(
    mut stop: watch::Receiver<Option<tokio::time::Instant>>,
) -> tokio::time::Instant {
    loop {
        if let Some(deadline) = *stop.borrow_and_update() {
            return deadline;
        }
        if stop.changed().await.is_err() {
            return std::future::pending().await;
        }
    }
}

/// Runs a container's postStart hook: whether it passed (a failure is
/// the kubelet's event, and the container is restarted).
async fn post_started(
    hook: Option<&crate::hooks::Hook>,
    runner: &crate::probes::Runner<'_>,
    limit: Duration,
    events: impl Fn(&'static str, &str, &str),
) -> bool {
    let Some(hook) = hook else { return true };
    match crate::hooks::run(hook, runner, limit).await {
        Ok(()) => true,
        Err(why) => {
            events(
                "Warning",
                "FailedPostStartHook",
                &format!("PostStartHook failed: {why}"),
            );
            false
        }
    }
}

/// Runs a container's preStop hook within what is left of the grace
/// period.
async fn pre_stop_hook(
    hook: Option<&crate::hooks::Hook>,
    runner: &crate::probes::Runner<'_>,
    deadline: tokio::time::Instant,
    events: impl Fn(&'static str, &str, &str),
) {
    let Some(hook) = hook else { return };
    let left = deadline.saturating_duration_since(tokio::time::Instant::now());
    if let Err(why) = crate::hooks::run(hook, runner, left).await {
        events(
            "Warning",
            "FailedPreStopHook",
            &format!("PreStopHook failed: {why}"),
        );
    }
}

/// How a container's run ended.
enum Ended {
    /// The guest returned or failed.
    Exited(Exit),
    /// A startup or liveness probe failed.
    Killed,
}

fn backoff(n: u32) -> Duration {
    Duration::from_secs((10u64 << n.min(5)).min(300))
}

async fn run_container(ctx: ContainerCtx) {
    let shared = &ctx.shared;
    let name = ctx
        .spec
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let image = ctx
        .spec
        .get("image")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let mut st = ContainerStatus::waiting(&image, "ContainerCreating");
    let mut failures = 0u32;
    // Any news of the container (it runs, or it failed and waits) ends the
    // pod's turn in the start queue.
    let send = |st: &ContainerStatus| {
        ctx.permit.release();
        let tx = ctx.tx.clone();
        let u = Update {
            index: ctx.index,
            status: st.clone(),
        };
        async move {
            let _ = tx.send(u).await;
        }
    };
    let pod_value = serde_json::to_value(&ctx.pod).unwrap_or_default();
    let workload = loop {
        let pulling_msg = format!("Pulling image \"{image}\"");
        // A pull may take long: the pod gives up its place in the start
        // queue while it waits for the registry.
        let pulling = async {
            event(shared, &ctx.pod, "Normal", "Pulling", &pulling_msg);
            ctx.permit.release();
        };
        let obtained = crate::images::obtain(
            &shared.runtime,
            &shared.client,
            &pod_value,
            &ctx.spec,
            pulling,
        )
        .await;
        let loaded = match obtained {
            Ok(how) => shared
                .runtime
                .load(&image)
                .await
                .map(|w| (w, how))
                .map_err(|e| {
                    let reason = match e {
                        RtError::ImageNotFound(_) | RtError::InvalidImageRef(_) => "ErrImagePull",
                        _ => "CreateContainerError",
                    };
                    crate::images::ImageFailure {
                        reason,
                        message: e.to_string(),
                    }
                }),
            Err(f) => Err(f),
        };
        match loaded {
            Ok((w, how)) => {
                let msg = match how {
                    crate::images::Obtained::Present => {
                        format!("Container image \"{image}\" already present on machine")
                    }
                    crate::images::Obtained::Pulled { millis } => {
                        format!("Successfully pulled image \"{image}\" in {millis}ms")
                    }
                };
                event(shared, &ctx.pod, "Normal", "Pulled", &msg);
                break w;
            }
            Err(f) => {
                st.state = State::Waiting(f.reason.into(), f.message.clone());
                send(&st).await;
                let what = match f.reason {
                    "ErrImagePull" => format!("Failed to pull image \"{image}\": {}", f.message),
                    _ => format!("Error: {}", f.message),
                };
                event(shared, &ctx.pod, "Warning", "Failed", &what);
                tokio::time::sleep(Duration::from_secs(2)).await;
                if f.reason == "ErrImagePull" {
                    st.state = State::Waiting(
                        "ImagePullBackOff".into(),
                        format!("Back-off pulling image \"{image}\": {}", f.message),
                    );
                    event(
                        shared,
                        &ctx.pod,
                        "Normal",
                        "BackOff",
                        &format!("Back-off pulling image \"{image}\""),
                    );
                    send(&st).await;
                }
                tokio::time::sleep(backoff(failures)).await;
                failures += 1;
            }
        }
    };
    let root = shared.config.data_dir.clone();
    let mut pod_json = serde_json::to_value(&ctx.pod).unwrap_or_default();
    // The downward API sees the addresses this node gave the pod, which
    // its status may not carry yet.
    if let Some(status) = pod_json
        .as_object_mut()
        .map(|p| p.entry("status").or_insert_with(|| serde_json::json!({})))
        && let Some(status) = status.as_object_mut()
    {
        status.insert("podIP".into(), ctx.ip.clone().into());
        status.insert("hostIP".into(), shared.config.node_ip.to_string().into());
    }
    let mut config_failures = 0u32;
    let env = loop {
        match crate::env::resolve(&shared.client, &pod_json, &ctx.spec).await {
            Ok(mut env) => {
                if !env.iter().any(|(k, _)| k == "HOSTNAME") {
                    env.insert(
                        0,
                        (
                            "HOSTNAME".into(),
                            ctx.pod.metadata.name.clone().unwrap_or_default(),
                        ),
                    );
                }
                break env;
            }
            Err(msg) => {
                st.state = State::Waiting("CreateContainerConfigError".into(), msg.clone());
                send(&st).await;
                event(
                    shared,
                    &ctx.pod,
                    "Warning",
                    "Failed",
                    &format!("Error: {msg}"),
                );
                tokio::time::sleep(backoff(config_failures)).await;
                config_failures += 1;
            }
        }
    };
    let preopens = match crate::volumes::mounts(&ctx.spec, &ctx.volumes) {
        Ok(p) => p,
        Err(msg) => {
            st.state = State::Waiting("CreateContainerConfigError".into(), msg.clone());
            send(&st).await;
            event(
                shared,
                &ctx.pod,
                "Warning",
                "Failed",
                &format!("Error: {msg}"),
            );
            return std::future::pending::<()>().await;
        }
    };
    let image_config = shared.runtime.image_config(&image).unwrap_or_default();
    let argv = argv(&ctx.spec, &name, &image_config, &env);
    let env = with_image_env(env, &image_config);
    let working_dir = ctx
        .spec
        .get("workingDir")
        .and_then(Value::as_str)
        .filter(|d| !d.is_empty())
        .map(String::from)
        .or_else(|| Some(image_config.working_dir.clone()).filter(|d| !d.is_empty()));
    let guard = Arc::new(crate::policy::PodGuard {
        shared: shared.clone(),
        subject: crate::policy::PodView::of(&pod_json),
        pod_ip: ctx.ip.parse().ok().filter(|_| shared.pod_ips_live),
        listening: std::sync::Mutex::new(Vec::new()),
    });
    let network = if pod_json.pointer("/spec/hostNetwork") == Some(&Value::Bool(true)) {
        NetworkAccess::Host
    } else {
        NetworkAccess::Outbound {
            node_addrs: shared.node_addrs.clone(),
            pod_ip: ctx.ip.parse().ok().filter(|_| shared.pod_ips_live),
            resolver: shared.names.clone().map(|names| {
                shoal_runtime_wasm::Resolver(Arc::new(crate::dns::PodResolver::for_pod(
                    names, &pod_json,
                )))
            }),
            policy: Some(shoal_runtime_wasm::Policy(guard.clone())),
        }
    };
    let probes = crate::probes::Probes::of(&ctx.spec);
    let (post_start, pre_stop) = (
        crate::hooks::of(&ctx.spec, crate::hooks::When::PostStart),
        crate::hooks::of(&ctx.spec, crate::hooks::When::PreStop),
    );
    for (hook, when) in [
        (&post_start, crate::hooks::When::PostStart),
        (&pre_stop, crate::hooks::When::PreStop),
    ] {
        if let Some(why) = hook.as_ref().and_then(|h| crate::hooks::not_run(h, when)) {
            event(shared, &ctx.pod, "Warning", "HookNotRun", &why);
        }
    }
    // A command of a pod that says it follows the stop request gets its
    // own directory, where the stop file appears (a directory a running
    // instance holds open: only for those that use it).
    let asks_to_stop = !workload.is_http()
        && ctx
            .pod
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(crate::hooks::STOP_FILE_ANNOTATION))
            .is_some_and(|v| v == "true");
    let run_dir = root.join("pods").join(&ctx.uid).join("run").join(&name);
    let mut preopens = preopens;
    if asks_to_stop {
        let made = std::fs::create_dir_all(&run_dir);
        let _ = std::fs::remove_file(run_dir.join(crate::hooks::STOP_FILE));
        match made {
            Ok(()) => preopens.push(shoal_runtime_wasm::Preopen {
                host: run_dir.clone(),
                guest: crate::hooks::RUN_DIR.into(),
                read_only: true,
            }),
            Err(e) => tracing::warn!("pod {}: cannot make {}: {e}", ctx.uid, run_dir.display()),
        }
    }
    let runner = crate::probes::Runner {
        http: &shared.http,
        pod_ip: ctx.ip.clone(),
        reach: ctx
            .ip
            .parse()
            .ok()
            .filter(|_| shared.pod_ips_live)
            .unwrap_or(std::net::IpAddr::V4(Ipv4Addr::LOCALHOST)),
        in_process: workload.is_http(),
    };
    // A probe's restart lets HTTP requests finish within the probe's (or
    // the pod's) grace period.
    let pod_grace = ctx
        .pod
        .spec
        .as_ref()
        .and_then(|s| s.termination_grace_period_seconds)
        .and_then(|s| u64::try_from(s).ok())
        .map_or(Duration::from_secs(30), Duration::from_secs);
    let mut listening = false;
    let mut crashes = 0u32;
    let mut log_failures = 0u32;
    loop {
        let path = log_path(&root, &ctx.uid, &name, false);
        let opened = ContainerLog::open(&path, shared.config.log_rotation, &shared.open_logs);
        let (stdout, stderr) = match opened {
            Ok(log) => (
                Arc::new(log.stream("stdout")),
                Arc::new(log.stream("stderr")),
            ),
            Err(e) => {
                // The node's disk or descriptors may come back: try again.
                let message = format!("cannot create log file {}: {e}", path.display());
                st.state = State::Waiting("CreateContainerError".into(), message.clone());
                send(&st).await;
                event(
                    shared,
                    &ctx.pod,
                    "Warning",
                    "Failed",
                    &format!("Error: {message}"),
                );
                tokio::time::sleep(backoff(log_failures)).await;
                log_failures += 1;
                continue;
            }
        };
        let spec = CommandSpec {
            argv: argv.clone(),
            env: env.clone(),
            stdout,
            stderr,
            memory_limit: memory_limit(&ctx.spec),
            preopens: preopens.clone(),
            cpu_millis: cpu_limit(&ctx.spec),
            working_dir: working_dir.clone(),
            network: network.clone(),
        };
        event(
            shared,
            &ctx.pod,
            "Normal",
            "Created",
            &format!("Created container {name}"),
        );
        event(
            shared,
            &ctx.pod,
            "Normal",
            "Started",
            &format!("Started container {name}"),
        );
        let started = now();
        st.state = State::Running(started.clone());
        let standing = probes.at_start();
        st.started = standing.started;
        st.ready = standing.ready;
        let events = |ty: &'static str, reason: &str, message: &str| {
            event(shared, &ctx.pod, ty, reason, message);
        };
        let began = Instant::now();
        // The postStart hook, then the probes (which report the container
        // running as they begin): ends with the probe that failed, or with
        // none when the hook did.
        let watched = async {
            if !post_started(post_start.as_ref(), &runner, pod_grace, events).await {
                return None;
            }
            Some(
                crate::probes::supervise(
                    &probes,
                    &runner,
                    &name,
                    |standing| {
                        st.started = standing.started;
                        st.ready = standing.ready;
                        send(&st)
                    },
                    events,
                )
                .await,
            )
        };
        let ended = if workload.is_http() {
            let ports: Vec<u16> = ctx
                .spec
                .get("ports")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default()
                .iter()
                .filter_map(|p| {
                    p.get("containerPort")
                        .and_then(Value::as_u64)
                        .map(|p| p as u16)
                })
                .collect();
            // An HTTP container without ports serves port 80.
            let ports = if ports.is_empty() { vec![80] } else { ports };
            shared.http.add(
                &shared.runtime,
                &ctx.uid,
                &ctx.ip,
                &ports,
                workload.clone(),
                spec,
            );
            // The pod's listeners outlive a restart of its container.
            if shared.pod_ips_live && !listening {
                crate::proxy::listen_at_pod_ip(shared, &ctx.uid, &ctx.ip, &ports, guard.clone())
                    .await;
                listening = true;
            }
            tokio::select! {
                why = watched => {
                    let grace = why.and_then(|k| probes.grace(k)).unwrap_or(pod_grace);
                    shared.http.stop_ports(&ctx.ip, &ports, grace).await;
                    Ended::Killed
                }
                deadline = stop_requested(ctx.stop.clone()) => {
                    // The pod is going: its requests finish within the
                    // grace period the preStop hook leaves.
                    pre_stop_hook(pre_stop.as_ref(), &runner, deadline, events).await;
                    let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                    shared.http.stop_ports(&ctx.ip, &ports, left).await;
                    return;
                }
            }
        } else {
            let run = shared.runtime.run_command(&workload, spec);
            tokio::pin!(run);
            tokio::select! {
                exit = &mut run => Ended::Exited(exit),
                _ = watched => Ended::Killed,
                deadline = stop_requested(ctx.stop.clone()) => {
                    // After its preStop hook, a guest that follows the
                    // stop request is asked, as SIGTERM asks a process,
                    // and may end within the grace period; any other is
                    // cancelled at once (it could not be asked).
                    pre_stop_hook(pre_stop.as_ref(), &runner, deadline, events).await;
                    if asks_to_stop {
                        if let Err(e) = std::fs::write(run_dir.join(crate::hooks::STOP_FILE), b"") {
                            tracing::warn!("pod {}: cannot ask {name} to stop: {e}", ctx.uid);
                        }
                        let _ = tokio::time::timeout_at(deadline, &mut run).await;
                    }
                    return;
                }
            }
        };
        let (code, reason, message) = match &ended {
            Ended::Exited(exit) => {
                let (reason, message) = match exit {
                    Exit::Code(0) => ("Completed", String::new()),
                    Exit::Code(_) => ("Error", String::new()),
                    Exit::Trap(m) => ("Error", m.clone()),
                    Exit::OutOfMemory(m) => ("OOMKilled", m.clone()),
                    Exit::StartFailed(m) => ("StartError", m.clone()),
                };
                (exit.code(), reason, message)
            }
            // Stopped by the node, as SIGKILL stops a process.
            Ended::Killed => (137, "Error", String::new()),
        };
        let term = State::Terminated {
            code,
            reason: reason.into(),
            message,
            started,
            finished: now(),
        };
        st.ready = false;
        st.started = false;
        let restart = match ctx.policy.as_str() {
            "Never" => false,
            "OnFailure" => code != 0,
            _ => true,
        };
        if !restart {
            st.state = term;
            st.done = true;
            send(&st).await;
            return;
        }
        if began.elapsed() > Duration::from_secs(600) {
            crashes = 0;
        }
        let delay = backoff(crashes);
        crashes += 1;
        st.last = Some(term.clone());
        st.state = term;
        send(&st).await;
        st.state = State::Waiting(
            "CrashLoopBackOff".into(),
            format!(
                "back-off {}s restarting failed container={name} pod={}_{}",
                delay.as_secs(),
                ctx.pod.metadata.name.clone().unwrap_or_default(),
                ctx.pod.metadata.namespace.clone().unwrap_or_default()
            ),
        );
        send(&st).await;
        if code != 0 {
            event(
                shared,
                &ctx.pod,
                "Warning",
                "BackOff",
                "Back-off restarting failed container",
            );
        }
        tokio::time::sleep(delay).await;
        crate::logs::retire(&root, &ctx.uid, &name);
        st.restarts += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argv_follows_kubernetes_rules() {
        let image = ImageConfig {
            entrypoint: vec!["/app.wasm".into(), "--serve".into()],
            cmd: vec!["default".into()],
            ..Default::default()
        };
        let c = |v: Value| argv(&v, "main", &image, &[]);
        assert_eq!(c(json!({})), ["/app.wasm", "--serve", "default"]);
        assert_eq!(c(json!({"args": ["x"]})), ["/app.wasm", "--serve", "x"]);
        assert_eq!(c(json!({"command": ["/other"]})), ["/other"]);
        assert_eq!(
            c(json!({"command": ["/other"], "args": ["y"]})),
            ["/other", "y"]
        );
        assert_eq!(
            argv(
                &json!({"args": ["z"]}),
                "main",
                &ImageConfig::default(),
                &[]
            ),
            ["main", "z"]
        );
        let env = [("A".to_string(), "b".to_string())];
        assert_eq!(
            argv(
                &json!({"command": ["x", "--a=$(A)"], "args": ["$$(A)"]}),
                "main",
                &ImageConfig::default(),
                &env
            ),
            ["x", "--a=b", "$(A)"]
        );
    }

    #[test]
    fn image_env_is_overridden_by_the_container() {
        let image = ImageConfig {
            env: vec!["A=image".into(), "B=image".into(), "bad".into()],
            ..Default::default()
        };
        let env = with_image_env(vec![("B".into(), "pod".into())], &image);
        assert_eq!(
            env,
            [("A".into(), "image".into()), ("B".into(), "pod".into())]
        );
    }
}

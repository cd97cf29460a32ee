//! A container of a pod, run by the node: its image, environment, volumes
//! and network grant; its log; its probes and hooks; its restarts with
//! back-off; and how it stops. What it does is sent to its pod's worker
//! (`pods.rs`) as [`Update`]s.
//!
//! May import: the agent's shared state and the parts a container is made
//! of (images, env, volumes, logs, probes, hooks, policy, proxy); not the
//! pod worker.

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use serde_json::Value;
use shoal_runtime_wasm::{CommandSpec, Error as RtError, Exit, ImageConfig, NetworkAccess};
use tokio::sync::{mpsc, watch};

use crate::agent::Shared;
use crate::logs::{ContainerLog, log_path};
use crate::pod_status::{ContainerStatus, State};

pub(crate) fn now() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

pub(crate) struct Update {
    pub index: usize,
    pub status: ContainerStatus,
}

/// Records an Event about `pod`; never waits.
pub(crate) fn event(shared: &Shared, pod: &Pod, ty: &'static str, reason: &str, message: &str) {
    shared
        .events
        .record(crate::events::Involved::pod(pod), ty, reason, message);
}

fn memory_limit(c: &Value) -> Option<usize> {
    let q = c.pointer("/resources/limits/memory")?.as_str()?;
    shoal_quantity::bytes(q).and_then(|b| usize::try_from(b).ok())
}

/// `limits.cpu` in millicores.
fn cpu_limit(c: &Value) -> Option<u32> {
    shoal_quantity::millicores(c.pointer("/resources/limits/cpu")?.as_str()?)
}

/// A pod's place in the node's start queue, shared by the pod worker and
/// its containers; released as soon as the pod is started, waits for
/// something (a back-off, an image pull) or fails.
#[derive(Clone)]
pub(crate) struct StartPermit(pub Arc<std::sync::Mutex<Option<tokio::sync::OwnedSemaphorePermit>>>);

impl StartPermit {
    pub fn release(&self) {
        self.0.lock().expect("start permit lock").take();
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

pub(crate) struct ContainerCtx {
    pub shared: Arc<Shared>,
    pub pod: Pod,
    pub uid: String,
    pub ip: String,
    pub index: usize,
    pub spec: Value,
    pub policy: String,
    pub tx: mpsc::Sender<Update>,
    pub volumes: Arc<crate::volumes::Volumes>,
    pub permit: StartPermit,
    /// When the pod is asked to stop: the end of its grace period.
    pub stop: watch::Receiver<Option<tokio::time::Instant>>,
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

pub(crate) fn backoff(n: u32) -> Duration {
    Duration::from_secs((10u64 << n.min(5)).min(300))
}

pub(crate) async fn run_container(ctx: ContainerCtx) {
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
    let commands = crate::exec::InContainer {
        shared: shared.as_ref(),
        uid: ctx.uid.clone(),
        container: name.clone(),
    };
    let runner = crate::probes::Runner {
        http: &shared.http,
        commands: &commands,
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
    // What the container's instances use, for `kubectl top`.
    let usage = Arc::new(shoal_runtime_wasm::Usage::default());
    let flag = |k: &str| ctx.spec.get(k).and_then(Value::as_bool).unwrap_or(false);
    let hub = crate::attach::AttachHub::new(flag("stdin"), flag("stdinOnce"), flag("tty"));
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
        // A command's output also goes to attached clients; its stdin is
        // a pipe they write to when the container asks for one.
        let (stdout, stderr): (
            Arc<dyn shoal_runtime_wasm::OutputSink>,
            Arc<dyn shoal_runtime_wasm::OutputSink>,
        ) = if workload.is_http() {
            (stdout, stderr)
        } else {
            let tee = |log: Arc<dyn shoal_runtime_wasm::OutputSink>,
                       stderr|
             -> Arc<dyn shoal_runtime_wasm::OutputSink> {
                Arc::new(crate::attach::Tee {
                    log,
                    hub: hub.clone(),
                    stderr,
                })
            };
            (tee(stdout, false), tee(stderr, true))
        };
        let (stdio, pipe) = if hub.has_stdin && !workload.is_http() {
            let (guest, ours) = tokio::io::duplex(64 * 1024);
            let stdio =
                shoal_runtime_wasm::Stdio::attached(guest, stdout.clone(), stderr.clone(), hub.tty);
            (Some(stdio), Some(ours))
        } else {
            (None, None)
        };
        let run_guard = hub.begin(pipe);
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
            stdio,
            usage: Some(usage.clone()),
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
        // Reachable by `kubectl exec` while it runs.
        let _exec = shared.exec.register(
            &ctx.uid,
            &name,
            crate::exec::Target {
                spec: spec.clone(),
                workload: workload.clone(),
                names: {
                    let mut names = crate::exec::own_names(&image_config.entrypoint);
                    names.extend(argv.first().cloned());
                    names
                },
                pod_dir: root.join("pods").join(&ctx.uid),
                pod_ip: ctx.ip.clone(),
                started: began,
                started_at: started.clone(),
                attach: hub.clone(),
            },
        );
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
        run_guard.end(code);
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
    use serde_json::json;

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

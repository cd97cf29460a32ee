//! A pod's status as its node reports it: the phase, the conditions and
//! the statuses of its init containers and containers, from what each of
//! them is doing; and the order init containers run in (each to
//! completion before the next starts; a sidecar, an init container with
//! `restartPolicy: Always`, only until it has started, and then on beside
//! the containers).
//!
//! May import: nothing of the agent's (pure).

use serde_json::{Value, json};

/// What a container is doing.
#[derive(Debug, Clone)]
pub(crate) enum State {
    Waiting(String, String),
    Running(String),
    Terminated {
        code: i32,
        reason: String,
        message: String,
        started: String,
        finished: String,
    },
}

/// A container as its status reports it.
#[derive(Debug, Clone)]
pub(crate) struct ContainerStatus {
    pub image: String,
    pub state: State,
    pub last: Option<State>,
    pub restarts: i32,
    pub ready: bool,
    /// Running, and its startup probe (if any) passed.
    pub started: bool,
    /// The container ended and will not be restarted.
    pub done: bool,
}

impl ContainerStatus {
    /// A container yet to start, waiting for `reason`.
    pub fn waiting(image: &str, reason: &str) -> Self {
        Self {
            image: image.to_string(),
            state: State::Waiting(reason.into(), String::new()),
            last: None,
            restarts: 0,
            ready: false,
            started: false,
            done: false,
        }
    }

    fn completed(&self) -> bool {
        self.done && matches!(self.state, State::Terminated { code: 0, .. })
    }
}

fn state_json(s: &State) -> Value {
    match s {
        State::Waiting(reason, message) => {
            let mut w = json!({"reason": reason});
            if !message.is_empty() {
                w["message"] = json!(message);
            }
            json!({"waiting": w})
        }
        State::Running(started) => json!({"running": {"startedAt": started}}),
        State::Terminated {
            code,
            reason,
            message,
            started,
            finished,
        } => {
            let mut t = json!({"exitCode": code, "reason": reason, "startedAt": started, "finishedAt": finished});
            if !message.is_empty() {
                t["message"] = json!(message);
            }
            json!({"terminated": t})
        }
    }
}

/// Whether an init container is a sidecar: `restartPolicy: Always`.
pub(crate) fn sidecar(spec: &Value) -> bool {
    spec.get("restartPolicy").and_then(Value::as_str) == Some("Always")
}

/// How many of the pod's init containers may be running now: those before
/// the first that has not yet let the next start (a sidecar until it has
/// started, any other until it has completed), and that one. All of them
/// and the containers may run once `inits.len()` have passed: the result
/// is then `inits.len() + 1`.
pub(crate) fn init_progress(inits: &[Value], statuses: &[ContainerStatus]) -> usize {
    inits
        .iter()
        .zip(statuses)
        .position(|(spec, st)| {
            if sidecar(spec) {
                // Restarted after it started once, or stopped with the
                // containers, it no longer holds the others back.
                !st.started && st.restarts == 0 && !st.done
            } else {
                !st.completed()
            }
        })
        .map_or(inits.len() + 1, |first_pending| first_pending + 1)
}

/// Whether an init container (not a sidecar) failed for good: it ended
/// other than with 0 and will not be restarted, so the pod has failed.
pub(crate) fn init_failed(inits: &[Value], statuses: &[ContainerStatus]) -> bool {
    inits
        .iter()
        .zip(statuses)
        .any(|(spec, st)| !sidecar(spec) && st.done && !st.completed())
}

/// What a pod's status is built from besides its containers' states.
pub(crate) struct PodFacts<'a> {
    pub pod: &'a Value,
    pub ip: &'a str,
    pub host: &'a str,
    pub start: &'a str,
    pub inits: &'a [Value],
    pub containers: &'a [Value],
}

fn now() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

fn meta_uid(pod: &Value) -> &str {
    pod.pointer("/metadata/uid")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// The statuses of `specs` as the API shows them.
pub(crate) fn statuses_json(
    f: &PodFacts,
    specs: &[Value],
    statuses: &[ContainerStatus],
) -> Vec<Value> {
    statuses
        .iter()
        .zip(specs)
        .map(|(s, c)| {
            let n = c.get("name").and_then(Value::as_str).unwrap_or_default();
            let mut v = json!({
                "name": n, "image": s.image, "imageID": "", "ready": s.ready, "restartCount": s.restarts,
                "started": s.started, "state": state_json(&s.state),
                "lastState": s.last.as_ref().map(state_json).unwrap_or(json!({})),
            });
            if !matches!(s.state, State::Waiting(..)) || s.restarts > 0 {
                v["containerID"] = json!(format!("wasm://{}/{n}", meta_uid(f.pod)));
            }
            v
        })
        .collect()
}

/// The pod's `.status` for its containers' states: `statuses` holds the
/// init containers' first, then the containers'. `evicted` carries the
/// eviction message of a pod the node evicted. Conditions keep their
/// transition times from `prev`, the status last computed (or the pod's
/// own).
pub(crate) fn pod_status(
    f: &PodFacts,
    prev: Option<&Value>,
    statuses: &[ContainerStatus],
    evicted: Option<&str>,
) -> Value {
    let (inits, apps) = statuses.split_at(f.inits.len().min(statuses.len()));
    let failed_init = init_failed(f.inits, inits);
    // Containers that have run mean the init containers passed.
    let initialized = init_progress(f.inits, inits) > f.inits.len()
        || apps
            .iter()
            .any(|s| !matches!(s.state, State::Waiting(..)) || s.restarts > 0);
    let sidecars_ready = inits
        .iter()
        .zip(f.inits)
        .filter(|(_, spec)| sidecar(spec))
        .all(|(s, _)| s.ready);
    let all_ready = initialized && sidecars_ready && apps.iter().all(|s| s.ready);
    let any_running = apps.iter().any(|s| matches!(s.state, State::Running(_)));
    let all_done = apps.iter().all(|s| s.done);
    let phase = if failed_init {
        "Failed"
    } else if !initialized {
        "Pending"
    } else if all_done {
        if apps
            .iter()
            .all(|s| matches!(s.state, State::Terminated { code: 0, .. }))
        {
            "Succeeded"
        } else {
            "Failed"
        }
    } else if any_running || apps.iter().any(|s| s.restarts > 0) {
        "Running"
    } else {
        "Pending"
    };
    let old_conds = prev
        .and_then(|p| p.get("conditions"))
        .or_else(|| f.pod.pointer("/status/conditions"))
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let cond = |ty: &str, ok: bool| {
        let status = if ok { "True" } else { "False" };
        let prev = old_conds
            .iter()
            .find(|c| c.get("type") == Some(&json!(ty)) && c.get("status") == Some(&json!(status)));
        let t = prev
            .and_then(|c| c.get("lastTransitionTime").cloned())
            .unwrap_or(json!(now()));
        let mut c =
            json!({"type": ty, "status": status, "lastProbeTime": null, "lastTransitionTime": t});
        if !ok {
            c["reason"] = json!(match ty {
                "Initialized" => "ContainersNotInitialized",
                _ => "ContainersNotReady",
            });
        }
        c
    };
    let ready = all_ready && !all_done && !failed_init;
    let mut status = json!({
        "phase": phase,
        "conditions": [cond("PodReadyToStartContainers", true), cond("Initialized", initialized), cond("Ready", ready), cond("ContainersReady", ready), cond("PodScheduled", true)],
        "hostIP": f.host, "hostIPs": [{"ip": f.host}], "podIP": f.ip, "podIPs": [{"ip": f.ip}],
        "startTime": f.start, "containerStatuses": statuses_json(f, f.containers, apps),
    });
    if !f.inits.is_empty() {
        status["initContainerStatuses"] = json!(statuses_json(f, f.inits, inits));
    }
    match evicted {
        Some(message) => evicted_status(status, message),
        None => status,
    }
}

/// `status` of a pod the node evicted (`message`, why): `Failed` with
/// reason `Evicted`, not Ready, with the `DisruptionTarget` condition, and
/// every container not yet ended killed (137).
pub(crate) fn evicted_status(mut status: Value, message: &str) -> Value {
    let at = now();
    if !status.is_object() {
        status = json!({});
    }
    status["phase"] = json!("Failed");
    status["reason"] = json!("Evicted");
    status["message"] = json!(message);
    for list in ["initContainerStatuses", "containerStatuses"] {
        let Some(cs) = status.get_mut(list).and_then(Value::as_array_mut) else {
            continue;
        };
        for c in cs {
            c["ready"] = json!(false);
            c["started"] = json!(false);
            if c.pointer("/state/terminated").is_some() {
                continue;
            }
            let started = c
                .pointer("/state/running/startedAt")
                .cloned()
                .unwrap_or(Value::Null);
            c["state"] = json!({"terminated": {"exitCode": 137, "reason": "Error",
                "message": "the pod was evicted", "startedAt": started, "finishedAt": at}});
        }
    }
    let mut conds: Vec<Value> = status
        .get("conditions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for c in conds.iter_mut() {
        let ty = c.get("type").and_then(Value::as_str).unwrap_or_default();
        if matches!(ty, "Ready" | "ContainersReady") && c.get("status") != Some(&json!("False")) {
            c["status"] = json!("False");
            c["reason"] = json!("PodFailed");
            c["lastTransitionTime"] = json!(at);
        }
    }
    if !conds
        .iter()
        .any(|c| c.get("type") == Some(&json!("DisruptionTarget")))
    {
        conds.push(
            json!({"type": "DisruptionTarget", "status": "True", "reason": "TerminationByKubelet",
            "message": message, "lastProbeTime": null, "lastTransitionTime": at}),
        );
    }
    status["conditions"] = Value::Array(conds);
    status
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_evicted_pod_is_failed_with_its_containers_killed() {
        let running = json!({
            "phase": "Running",
            "conditions": [{"type": "Ready", "status": "True"}, {"type": "PodScheduled", "status": "True"}],
            "containerStatuses": [
                {"name": "a", "ready": true, "started": true, "state": {"running": {"startedAt": "t0"}}},
                {"name": "b", "ready": false, "started": false,
                 "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}],
        });
        let s = evicted_status(running, "The node was low on resource: memory.");
        assert_eq!(
            (s["phase"].as_str(), s["reason"].as_str()),
            (Some("Failed"), Some("Evicted"))
        );
        let a = &s["containerStatuses"][0];
        assert_eq!(a["ready"], false);
        assert_eq!(a["state"]["terminated"]["exitCode"], 137);
        assert_eq!(a["state"]["terminated"]["startedAt"], "t0");
        assert_eq!(
            s["containerStatuses"][1]["state"]["terminated"]["exitCode"], 0,
            "an ended container keeps its end"
        );
        let cond = |t: &str| {
            s["conditions"]
                .as_array()
                .unwrap()
                .iter()
                .find(|c| c["type"] == t)
                .cloned()
        };
        assert_eq!(cond("Ready").unwrap()["status"], "False");
        assert_eq!(
            cond("DisruptionTarget").unwrap()["reason"],
            "TerminationByKubelet"
        );
        assert_eq!(cond("PodScheduled").unwrap()["status"], "True");
    }

    fn running(started: bool) -> ContainerStatus {
        ContainerStatus {
            state: State::Running("t".into()),
            started,
            ready: started,
            ..ContainerStatus::waiting("m", "")
        }
    }

    fn ended(code: i32, done: bool) -> ContainerStatus {
        ContainerStatus {
            state: State::Terminated {
                code,
                reason: if code == 0 { "Completed" } else { "Error" }.into(),
                message: String::new(),
                started: "t".into(),
                finished: "t".into(),
            },
            done,
            ..ContainerStatus::waiting("m", "")
        }
    }

    fn facts<'a>(pod: &'a Value, inits: &'a [Value], containers: &'a [Value]) -> PodFacts<'a> {
        PodFacts {
            pod,
            ip: "10.0.0.2",
            host: "10.0.0.1",
            start: "t",
            inits,
            containers,
        }
    }

    #[test]
    fn init_containers_run_one_after_another_and_sidecars_once_started() {
        let inits = vec![
            json!({"name": "migrate"}),
            json!({"name": "proxy", "restartPolicy": "Always"}),
            json!({"name": "warm"}),
        ];
        let waiting = ContainerStatus::waiting("m", "PodInitializing");
        let mut st = vec![waiting.clone(), waiting.clone(), waiting.clone()];
        assert_eq!(init_progress(&inits, &st), 1, "the first alone");
        st[0] = ended(1, false);
        assert_eq!(init_progress(&inits, &st), 1, "failed, to be retried");
        st[0] = ended(0, true);
        assert_eq!(init_progress(&inits, &st), 2);
        st[1] = running(false);
        assert_eq!(init_progress(&inits, &st), 2, "the sidecar is starting");
        st[1] = running(true);
        assert_eq!(init_progress(&inits, &st), 3);
        st[2] = ended(0, true);
        assert_eq!(init_progress(&inits, &st), 4, "the containers' turn");
        assert!(!init_failed(&inits, &st));
        st[2] = ended(2, true);
        assert!(init_failed(&inits, &st));
    }

    #[test]
    fn a_pod_initializing_is_pending_and_a_failed_init_fails_it() {
        let pod = json!({"metadata": {"uid": "u"}});
        let inits = vec![json!({"name": "init"})];
        let containers = vec![json!({"name": "main"})];
        let f = facts(&pod, &inits, &containers);
        let st = vec![
            running(true),
            ContainerStatus::waiting("m", "PodInitializing"),
        ];
        let s = pod_status(&f, None, &st, None);
        assert_eq!(s["phase"], "Pending");
        assert_eq!(s["conditions"][1]["status"], "False");
        assert_eq!(s["conditions"][1]["reason"], "ContainersNotInitialized");
        assert_eq!(s["initContainerStatuses"][0]["name"], "init");
        assert_eq!(
            s["containerStatuses"][0]["state"]["waiting"]["reason"],
            "PodInitializing"
        );
        let st = vec![
            ended(1, true),
            ContainerStatus::waiting("m", "PodInitializing"),
        ];
        assert_eq!(pod_status(&f, None, &st, None)["phase"], "Failed");
        let st = vec![ended(0, true), running(true)];
        let s = pod_status(&f, None, &st, None);
        assert_eq!(s["phase"], "Running");
        assert_eq!(s["conditions"][1]["status"], "True");
        assert_eq!(s["conditions"][2]["status"], "True");
    }

    #[test]
    fn a_pod_is_ready_only_with_its_sidecars_ready_and_done_without_them() {
        let pod = json!({"metadata": {"uid": "u"}});
        let inits = vec![json!({"name": "proxy", "restartPolicy": "Always"})];
        let containers = vec![json!({"name": "job"})];
        let f = facts(&pod, &inits, &containers);
        let mut sidecar = running(true);
        sidecar.ready = false;
        let s = pod_status(&f, None, &[sidecar, running(true)], None);
        assert_eq!(s["conditions"][2]["status"], "False");
        // The job completed: the pod succeeded whatever its sidecar does.
        let s = pod_status(&f, None, &[running(true), ended(0, true)], None);
        assert_eq!(s["phase"], "Succeeded");
    }
}

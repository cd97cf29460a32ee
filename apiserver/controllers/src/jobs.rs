//! Jobs: pods run to completion, up to `parallelism` at a time, until
//! `completions` have succeeded or more than `backoffLimit` have failed, as
//! Kubernetes' job controller does. An Indexed Job gives each pod an index
//! from 0 to `completions - 1` and is complete when every index has
//! succeeded once.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use super::{Action, Snapshot, active, owner_ref, pod_ready, res, status_patch, terminating};
use shoal_machinery::meta::{self, str_at};

/// Whether a Job has finished: a `Complete` or `Failed` condition.
pub fn finished(job: &Value) -> Option<&'static str> {
    ["Complete", "Failed"]
        .into_iter()
        .find(|c| meta::condition_true(job, c))
}

fn condition(ty: &str, reason: &str, message: &str, now: &str) -> Value {
    json!({"type": ty, "status": "True", "lastProbeTime": now, "lastTransitionTime": now,
        "reason": reason, "message": message})
}

/// Seconds from RFC 3339 `since` to `now`.
fn seconds_since(since: Option<&str>, now: jiff::Timestamp) -> Option<i64> {
    let t = meta::parse_time(since?)?;
    Some((now - t).get_seconds())
}

/// Brings every Job's pods and status one step closer to its spec at `now`.
pub fn reconcile_jobs(s: &Snapshot, now: jiff::Timestamp) -> Vec<Action> {
    let (job_r, pod_r) = (res("Job", "batch"), res("Pod", ""));
    let stamp = now.strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
    let mut actions = Vec::new();
    for job in s.of("jobs") {
        if terminating(job) {
            continue;
        }
        let (ns, name, uid) = (meta::namespace(job), meta::name(job), meta::uid(job));
        if let Some(done) = finished(job) {
            // ttlSecondsAfterFinished: the Job (and so its pods) goes.
            let at = if done == "Complete" {
                str_at(job, "/status/completionTime")
            } else {
                finish_time(job)
            };
            if let (Some(ttl), Some(age)) = (ttl(job), seconds_since(at, now))
                && age >= ttl
            {
                actions.push(Action::Delete {
                    resource: job_r,
                    namespace: ns.to_string(),
                    name: name.to_string(),
                });
            }
            continue;
        }
        let pods: Vec<&Value> = s.controlled("pods", ns, uid).collect();
        let phase = |want: &str| {
            pods.iter()
                .filter(|p| str_at(p, "/status/phase") == Some(want))
                .count() as i64
        };
        let spec = job.get("spec").cloned().unwrap_or_default();
        let parallelism = spec.get("parallelism").and_then(Value::as_i64).unwrap_or(1);
        let completions = spec.get("completions").and_then(Value::as_i64);
        let indexed = spec.get("completionMode").and_then(Value::as_str) == Some("Indexed");
        // An Indexed Job counts each index once, however many pods ran it.
        let done: BTreeSet<i64> = pods
            .iter()
            .filter(|p| str_at(p, "/status/phase") == Some("Succeeded"))
            .filter_map(|p| completion_index(p))
            .filter(|i| completions.is_some_and(|c| *i < c))
            .collect();
        let succeeded = if indexed {
            done.len() as i64
        } else {
            phase("Succeeded")
        };
        // A pod failure policy may ignore a failure, or fail the Job at once.
        let mut fail_job: Option<String> = None;
        let mut failed = 0;
        for p in pods
            .iter()
            .filter(|p| str_at(p, "/status/phase") == Some("Failed"))
        {
            match failure_action(&spec, p) {
                Some((action, why)) if action == "FailJob" => {
                    fail_job.get_or_insert(why);
                    failed += 1;
                }
                Some((action, _)) if action == "Ignore" => {}
                _ => failed += 1,
            }
        }
        let mut running: Vec<&Value> = pods.iter().copied().filter(|p| active(p)).collect();
        let backoff_limit = spec
            .get("backoffLimit")
            .and_then(Value::as_i64)
            .unwrap_or(6);
        let suspended = spec.get("suspend") == Some(&json!(true));
        let start = str_at(job, "/status/startTime").map(String::from);
        let start = start.or_else(|| (!suspended).then(|| stamp.clone()));

        let mut conditions: Vec<Value> = Vec::new();
        let mut completion_time = None;
        let deadline = spec.get("activeDeadlineSeconds").and_then(Value::as_i64);
        // Why the Job fails this round, if it does.
        let failure = if let Some(message) = fail_job {
            Some(("PodFailurePolicy", message))
        } else if failed > backoff_limit {
            Some((
                "BackoffLimitExceeded",
                "Job has reached the specified backoff limit".to_string(),
            ))
        } else if let Some(d) = deadline
            && seconds_since(start.as_deref(), now).is_some_and(|age| age >= d)
        {
            Some((
                "DeadlineExceeded",
                "Job was active longer than specified deadline".to_string(),
            ))
        } else {
            None
        };
        let want = if let Some((reason, message)) = failure {
            conditions.push(condition("FailureTarget", reason, &message, &stamp));
            conditions.push(condition("Failed", reason, &message, &stamp));
            actions.push(Action::Event {
                object: (**job).clone(),
                reason,
                message,
            });
            0
        } else if completions.is_some_and(|c| succeeded >= c)
            || (completions.is_none() && succeeded > 0 && running.is_empty())
        {
            let message = "Reached expected number of succeeded pods";
            conditions.push(condition(
                "SuccessCriteriaMet",
                "CompletionsReached",
                message,
                &stamp,
            ));
            conditions.push(condition("Complete", "CompletionsReached", message, &stamp));
            completion_time = Some(stamp.clone());
            actions.push(Action::Event {
                object: (**job).clone(),
                reason: "Completed",
                message: "Job completed".into(),
            });
            0
        } else if suspended {
            0
        } else if completions.is_none() && succeeded > 0 {
            // Without completions, the first success ends the Job once the
            // pods still running finish; no new pods start.
            running.len() as i64
        } else {
            parallelism
                .min(completions.map_or(i64::MAX, |c| c - succeeded))
                .max(0)
        };

        let have = running.len() as i64;
        if have < want {
            // Indexed: the lowest indexes neither done nor running.
            let busy: BTreeSet<i64> = running.iter().filter_map(|p| completion_index(p)).collect();
            let mut free =
                (0..completions.unwrap_or(0)).filter(|i| !done.contains(i) && !busy.contains(i));
            for _ in have..want {
                let mut pod = spec.get("template").cloned().unwrap_or(json!({}));
                let index = if indexed { free.next() } else { None };
                if indexed && index.is_none() {
                    break;
                }
                let m = meta::metadata(&mut pod);
                let prefix = match index {
                    Some(i) => format!("{name}-{i}-"),
                    None => format!("{name}-"),
                };
                m.insert("generateName".into(), json!(prefix));
                m.insert("namespace".into(), json!(ns));
                m.insert("ownerReferences".into(), owner_ref(job, "Job"));
                m.remove("name");
                if let Some(i) = index {
                    give_index(&mut pod, name, i);
                }
                pod["apiVersion"] = json!("v1");
                pod["kind"] = json!("Pod");
                actions.push(Action::Create {
                    resource: pod_r,
                    namespace: ns.to_string(),
                    object: pod,
                });
            }
            actions.push(Action::Event {
                object: (**job).clone(),
                reason: "SuccessfulCreate",
                message: format!("Created {} pod(s)", want - have),
            });
        } else if have > want {
            // Newest first, as Kubernetes picks pods to stop.
            running.sort_by_key(|p| {
                std::cmp::Reverse(str_at(p, "/metadata/creationTimestamp").unwrap_or_default())
            });
            for p in running.iter().take((have - want) as usize) {
                actions.push(Action::Delete {
                    resource: pod_r,
                    namespace: ns.to_string(),
                    name: meta::name(p).to_string(),
                });
            }
        }

        let ready = running.iter().filter(|p| pod_ready(p)).count() as i64;
        // A finishing Job stops its pods this round: none count as active.
        let counted = if conditions.is_empty() { have } else { 0 };
        let mut status = json!({
            "active": counted, "ready": ready, "succeeded": succeeded, "failed": failed,
            "terminating": 0, "uncountedTerminatedPods": {},
        });
        if let Some(start) = &start {
            status["startTime"] = json!(start);
        }
        if let Some(t) = completion_time {
            status["completionTime"] = json!(t);
        }
        if indexed && !done.is_empty() {
            status["completedIndexes"] = json!(ranges(&done));
        }
        let suspended_now = suspended && conditions.is_empty();
        let was_suspended = meta::condition_true(job, "Suspended");
        if suspended_now != was_suspended {
            let (st, reason, message) = if suspended_now {
                ("True", "JobSuspended", "Job suspended")
            } else {
                ("False", "JobResumed", "Job resumed")
            };
            conditions.push(
                json!({"type": "Suspended", "status": st, "lastProbeTime": stamp,
                "lastTransitionTime": stamp, "reason": reason, "message": message}),
            );
        }
        if !conditions.is_empty() {
            let mut all: Vec<Value> = job
                .pointer("/status/conditions")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            for c in conditions {
                all.retain(|o| o.get("type") != c.get("type"));
                all.push(c);
            }
            status["conditions"] = json!(all);
        }
        actions.extend(status_patch(job_r, job, status));
    }
    actions
}

/// The next moment a Job's state changes by the clock alone: a deadline
/// passing or a finished Job's time to live running out.
pub fn next_deadline(s: &Snapshot) -> Option<jiff::Timestamp> {
    let at = |since: Option<&str>, secs: Option<i64>| {
        let t = meta::parse_time(since?)?;
        t.checked_add(jiff::SignedDuration::from_secs(secs?)).ok()
    };
    s.of("jobs")
        .iter()
        .filter_map(|job| match finished(job) {
            Some("Complete") => at(str_at(job, "/status/completionTime"), ttl(job)),
            Some(_) => at(finish_time(job), ttl(job)),
            None => at(
                str_at(job, "/status/startTime"),
                job.pointer("/spec/activeDeadlineSeconds")
                    .and_then(Value::as_i64),
            ),
        })
        .min()
}

/// The first rule of the Job's `podFailurePolicy` that a failed pod
/// matches: its action, and the message Kubernetes gives a `FailJob`.
fn failure_action(spec: &Value, pod: &Value) -> Option<(String, String)> {
    let rules = spec.pointer("/podFailurePolicy/rules")?.as_array()?;
    let statuses = pod
        .pointer("/status/containerStatuses")
        .and_then(Value::as_array);
    let pod_name = format!("{}/{}", meta::namespace(pod), meta::name(pod));
    for (i, rule) in rules.iter().enumerate() {
        let action = rule
            .get("action")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if let Some(on) = rule.get("onExitCodes") {
            let container = on.get("containerName").and_then(Value::as_str);
            let values: Vec<i64> = on["values"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_i64)
                .collect();
            let not_in = on.get("operator").and_then(Value::as_str) == Some("NotIn");
            let hit = statuses.into_iter().flatten().find_map(|c| {
                let name = c.get("name").and_then(Value::as_str).unwrap_or_default();
                let code = c.pointer("/state/terminated/exitCode")?.as_i64()?;
                let matched = container.is_none_or(|want| want == name)
                    && code != 0
                    && values.contains(&code) != not_in;
                matched.then(|| (name.to_string(), code))
            });
            if let Some((name, code)) = hit {
                let why = format!(
                    "Container {name} for pod {pod_name} failed with exit code {code} matching {action} rule at index {i}"
                );
                return Some((action.to_string(), why));
            }
        }
        for cond in rule["onPodConditions"].as_array().into_iter().flatten() {
            let ty = cond.get("type").and_then(Value::as_str).unwrap_or_default();
            let want = cond.get("status").and_then(Value::as_str).unwrap_or("True");
            let has = pod
                .pointer("/status/conditions")
                .and_then(Value::as_array)
                .is_some_and(|cs| cs.iter().any(|c| c["type"] == ty && c["status"] == want));
            if has {
                let why = format!(
                    "Pod {pod_name} has condition {ty} matching {action} rule at index {i}"
                );
                return Some((action.to_string(), why));
            }
        }
    }
    None
}

/// The annotation and label that carry an Indexed Job pod's index.
pub const COMPLETION_INDEX: &str = "batch.kubernetes.io/job-completion-index";

fn completion_index(pod: &Value) -> Option<i64> {
    pod.pointer("/metadata/annotations")?
        .get(COMPLETION_INDEX)?
        .as_str()?
        .parse()
        .ok()
}

/// Marks a pod of an Indexed Job with its index, as Kubernetes does: the
/// annotation and label, the hostname `<job>-<index>` and the
/// `JOB_COMPLETION_INDEX` variable read from the annotation.
fn give_index(pod: &mut Value, job: &str, index: i64) {
    let m = meta::metadata(pod);
    for map in ["annotations", "labels"] {
        if let Some(o) = m.entry(map).or_insert_with(|| json!({})).as_object_mut() {
            o.insert(COMPLETION_INDEX.into(), json!(index.to_string()));
        }
    }
    let Some(spec) = pod.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    spec.entry("hostname")
        .or_insert_with(|| json!(format!("{job}-{index}")));
    let var = json!({"name": "JOB_COMPLETION_INDEX", "valueFrom": {"fieldRef": {
        "fieldPath": format!("metadata.annotations['{COMPLETION_INDEX}']")}}});
    for list in ["initContainers", "containers"] {
        for c in spec
            .get_mut(list)
            .and_then(Value::as_array_mut)
            .into_iter()
            .flatten()
        {
            if let Some(env) = c
                .as_object_mut()
                .map(|c| c.entry("env").or_insert_with(|| json!([])))
                .and_then(Value::as_array_mut)
                .filter(|env| !env.iter().any(|e| e["name"] == var["name"]))
            {
                env.push(var.clone());
            }
        }
    }
}

/// Indexes as Kubernetes writes `completedIndexes`: `0-2,4,7-8`.
fn ranges(indexes: &BTreeSet<i64>) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut run: Option<(i64, i64)> = None;
    for &i in indexes {
        run = match run {
            Some((a, b)) if i == b + 1 => Some((a, i)),
            Some((a, b)) => {
                out.push(if a == b {
                    a.to_string()
                } else {
                    format!("{a}-{b}")
                });
                Some((i, i))
            }
            None => Some((i, i)),
        };
    }
    if let Some((a, b)) = run {
        out.push(if a == b {
            a.to_string()
        } else {
            format!("{a}-{b}")
        });
    }
    out.join(",")
}

fn ttl(job: &Value) -> Option<i64> {
    job.pointer("/spec/ttlSecondsAfterFinished")
        .and_then(Value::as_i64)
}

/// When a failed Job failed: its `Failed` condition's transition time.
fn finish_time(job: &Value) -> Option<&str> {
    job.pointer("/status/conditions")
        .and_then(Value::as_array)?
        .iter()
        .find(|c| c["type"] == "Failed")
        .and_then(|c| c.get("lastTransitionTime"))
        .and_then(Value::as_str)
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{created, deleted, snap, status};
    use super::*;

    fn with_pods(job: Value, pods: Vec<Value>) -> Snapshot {
        let mut items = vec![("jobs", job)];
        items.extend(pods.into_iter().map(|p| ("pods", p)));
        snap(&items)
    }

    fn job(spec: Value, status: Value) -> Value {
        let mut spec = spec;
        spec["template"] = json!({"metadata": {"labels": {"job-name": "j"}},
            "spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "i"}]}});
        json!({"apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": "j", "namespace": "d", "uid": "job-uid"}, "spec": spec, "status": status})
    }

    #[test]
    fn indexed_jobs_run_each_index_until_it_succeeds() {
        let spec = json!({"completions": 5, "parallelism": 2, "completionMode": "Indexed"});
        let now = jiff::Timestamp::now();
        let actions = reconcile_jobs(&with_pods(job(spec.clone(), json!({})), vec![]), now);
        let made = created(&actions);
        let indexes: Vec<&Value> = made
            .iter()
            .map(|p| &p["metadata"]["annotations"][COMPLETION_INDEX])
            .collect();
        assert_eq!(indexes, ["0", "1"]);
        assert_eq!(made[1]["metadata"]["generateName"], "j-1-");
        assert_eq!(made[1]["metadata"]["labels"][COMPLETION_INDEX], "1");
        assert_eq!(made[1]["spec"]["hostname"], "j-1");
        assert_eq!(
            made[1]["spec"]["containers"][0]["env"][0]["valueFrom"]["fieldRef"]["fieldPath"],
            "metadata.annotations['batch.kubernetes.io/job-completion-index']"
        );
        // Index 0 succeeded twice and 2 once, 1 failed, 3 runs: 1 and 4 are next.
        let indexed = |name: &str, phase: &str, i: i64| {
            let mut p = pod(name, phase);
            p["metadata"]["annotations"] = json!({COMPLETION_INDEX: i.to_string()});
            p
        };
        let pods = vec![
            indexed("a", "Succeeded", 0),
            indexed("b", "Succeeded", 0),
            indexed("c", "Succeeded", 2),
            indexed("d", "Failed", 1),
            indexed("e", "Running", 3),
        ];
        let actions = reconcile_jobs(&with_pods(job(spec.clone(), json!({})), pods), now);
        let made = created(&actions);
        assert_eq!(made.len(), 1);
        assert_eq!(made[0]["metadata"]["annotations"][COMPLETION_INDEX], "1");
        let st = status(&actions);
        assert_eq!(
            (st["succeeded"].as_i64(), st["completedIndexes"].as_str()),
            (Some(2), Some("0,2"))
        );
        // Every index done: complete.
        let pods = (0..5)
            .map(|i| indexed(&format!("p{i}"), "Succeeded", i))
            .collect();
        let st = status(&reconcile_jobs(&with_pods(job(spec, json!({})), pods), now));
        assert_eq!(st["completedIndexes"], "0-4");
        assert!(
            st["conditions"]
                .as_array()
                .unwrap()
                .iter()
                .any(|c| c["type"] == "Complete")
        );
    }

    #[test]
    fn pod_failure_policies_ignore_or_fail_at_once() {
        let spec = json!({"completions": 1, "backoffLimit": 1, "podFailurePolicy": {"rules": [
            {"action": "Ignore", "onExitCodes": {"operator": "In", "values": [42]}},
            {"action": "FailJob", "onExitCodes": {"containerName": "c", "operator": "In", "values": [3]}},
        ]}});
        let failed = |name: &str, code: i64| {
            let mut p = pod(name, "Failed");
            p["status"]["containerStatuses"] =
                json!([{"name": "c", "state": {"terminated": {"exitCode": code}}}]);
            p
        };
        let now = jiff::Timestamp::now();
        // Two ignored failures: not past the backoff limit, a new pod starts.
        let pods = vec![failed("a", 42), failed("b", 42)];
        let actions = reconcile_jobs(&with_pods(job(spec.clone(), json!({})), pods), now);
        assert_eq!(created(&actions).len(), 1);
        assert_eq!(status(&actions)["failed"], 0);
        // Exit code 3 fails the Job at once.
        let actions = reconcile_jobs(&with_pods(job(spec, json!({})), vec![failed("c", 3)]), now);
        let st = status(&actions);
        let failed_cond = st["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["type"] == "Failed")
            .cloned()
            .unwrap();
        assert_eq!(failed_cond["reason"], "PodFailurePolicy");
        assert_eq!(
            failed_cond["message"],
            "Container c for pod d/c failed with exit code 3 matching FailJob rule at index 1"
        );
    }

    #[test]
    fn index_ranges_are_compressed() {
        let set = |v: &[i64]| v.iter().copied().collect::<BTreeSet<i64>>();
        assert_eq!(ranges(&set(&[0, 1, 2, 4, 7, 8])), "0-2,4,7-8");
        assert_eq!(ranges(&set(&[3])), "3");
        assert_eq!(ranges(&set(&[])), "");
    }

    fn pod(name: &str, phase: &str) -> Value {
        json!({"metadata": {"name": name, "namespace": "d", "creationTimestamp": "2026-01-01T00:00:00Z",
            "ownerReferences": [{"uid": "job-uid", "controller": true}]}, "status": {"phase": phase}})
    }

    fn now() -> jiff::Timestamp {
        "2026-01-01T00:10:00Z".parse().unwrap()
    }

    fn condition_types(status: &Value) -> Vec<&str> {
        status["conditions"]
            .as_array()
            .map(|cs| cs.iter().filter_map(|c| c["type"].as_str()).collect())
            .unwrap_or_default()
    }

    #[test]
    fn pods_start_up_to_parallelism_and_remaining_completions() {
        let spec = json!({"completions": 3, "parallelism": 2, "backoffLimit": 6});
        let a = reconcile_jobs(&with_pods(job(spec.clone(), json!({})), vec![]), now());
        assert_eq!(created(&a).len(), 2);
        let Some(Action::Create {
            resource: _,
            namespace: _,
            object: p,
        }) = a.iter().find(|a| matches!(a, Action::Create { .. }))
        else {
            unreachable!()
        };
        assert_eq!(p["metadata"]["generateName"], "j-");
        assert_eq!(p["metadata"]["ownerReferences"][0]["uid"], "job-uid");
        assert_eq!(p["metadata"]["labels"]["job-name"], "j");
        assert_eq!(status(&a)["startTime"], "2026-01-01T00:10:00Z");

        // Two done, one running: one more completion is wanted, and it runs.
        let pods = vec![
            pod("a", "Succeeded"),
            pod("b", "Succeeded"),
            pod("c", "Running"),
        ];
        let a = reconcile_jobs(&with_pods(job(spec.clone(), json!({})), pods), now());
        assert_eq!(created(&a).len(), 0);
        assert_eq!(status(&a)["succeeded"], 2);
        assert_eq!(status(&a)["active"], 1);

        let pods = vec![
            pod("a", "Succeeded"),
            pod("b", "Succeeded"),
            pod("c", "Succeeded"),
        ];
        let a = reconcile_jobs(&with_pods(job(spec, json!({})), pods), now());
        let st = status(&a);
        assert_eq!(condition_types(&st), ["SuccessCriteriaMet", "Complete"]);
        assert_eq!(st["completionTime"], "2026-01-01T00:10:00Z");
        assert_eq!(created(&a).len(), 0);
    }

    #[test]
    fn failures_past_the_backoff_limit_fail_the_job_and_stop_its_pods() {
        let spec = json!({"completions": 2, "parallelism": 2, "backoffLimit": 1});
        let pods = vec![pod("a", "Failed"), pod("b", "Failed"), pod("c", "Running")];
        let a = reconcile_jobs(&with_pods(job(spec, json!({})), pods), now());
        let st = status(&a);
        assert_eq!(condition_types(&st), ["FailureTarget", "Failed"]);
        assert_eq!(st["conditions"][1]["reason"], "BackoffLimitExceeded");
        assert_eq!(st["failed"], 2);
        assert_eq!(deleted(&a), ["pods/c"]);
        assert_eq!(created(&a).len(), 0);
    }

    #[test]
    fn deadlines_and_time_to_live_follow_the_clock() {
        let spec = json!({"completions": 1, "parallelism": 1, "activeDeadlineSeconds": 60});
        let started = json!({"startTime": "2026-01-01T00:00:00Z"});
        let a = reconcile_jobs(
            &with_pods(
                job(spec.clone(), started.clone()),
                vec![pod("a", "Running")],
            ),
            now(),
        );
        assert_eq!(status(&a)["conditions"][1]["reason"], "DeadlineExceeded");
        assert_eq!(deleted(&a), ["pods/a"]);
        let s = with_pods(job(spec, started), vec![]);
        assert_eq!(
            next_deadline(&s),
            Some("2026-01-01T00:01:00Z".parse().unwrap())
        );

        let done = json!({"completionTime": "2026-01-01T00:09:00Z",
            "conditions": [{"type": "Complete", "status": "True"}]});
        for (ttl, gone) in [(30, true), (120, false)] {
            let s = with_pods(
                job(json!({"ttlSecondsAfterFinished": ttl}), done.clone()),
                vec![],
            );
            assert_eq!(
                deleted(&reconcile_jobs(&s, now())) == ["jobs/j"],
                gone,
                "ttl {ttl}"
            );
        }
        let s = with_pods(job(json!({"ttlSecondsAfterFinished": 120}), done), vec![]);
        assert_eq!(
            next_deadline(&s),
            Some("2026-01-01T00:11:00Z".parse().unwrap())
        );
    }

    #[test]
    fn suspended_jobs_stop_their_pods_until_resumed() {
        let spec = json!({"completions": 1, "parallelism": 1, "suspend": true});
        let a = reconcile_jobs(
            &with_pods(job(spec, json!({})), vec![pod("a", "Running")]),
            now(),
        );
        assert_eq!(deleted(&a), ["pods/a"]);
        assert_eq!(condition_types(&status(&a)), ["Suspended"]);
        assert!(status(&a).get("startTime").is_none());
    }
}

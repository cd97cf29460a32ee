//! Jobs: pods run to completion, up to `parallelism` at a time, until
//! `completions` have succeeded or more than `backoffLimit` have failed, as
//! Kubernetes' job controller does for NonIndexed Jobs.

use serde_json::{Value, json};

use super::{Action, Snapshot, active, owner_ref, pod_ready, res, status_patch, terminating};
use crate::meta::{self, str_at};

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
                actions.push(Action::Delete(job_r, ns.to_string(), name.to_string()));
            }
            continue;
        }
        let pods: Vec<&Value> = s.controlled("pods", ns, uid).collect();
        let phase = |want: &str| {
            pods.iter()
                .filter(|p| str_at(p, "/status/phase") == Some(want))
                .count() as i64
        };
        let (succeeded, failed) = (phase("Succeeded"), phase("Failed"));
        let mut running: Vec<&Value> = pods.iter().copied().filter(|p| active(p)).collect();
        let spec = job.get("spec").cloned().unwrap_or_default();
        let parallelism = spec.get("parallelism").and_then(Value::as_i64).unwrap_or(1);
        let completions = spec.get("completions").and_then(Value::as_i64);
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
        let want = if failed > backoff_limit {
            let message = "Job has reached the specified backoff limit";
            conditions.push(condition(
                "FailureTarget",
                "BackoffLimitExceeded",
                message,
                &stamp,
            ));
            conditions.push(condition("Failed", "BackoffLimitExceeded", message, &stamp));
            actions.push(Action::Event(
                (**job).clone(),
                "BackoffLimitExceeded",
                message.into(),
            ));
            0
        } else if let Some(d) = deadline
            && seconds_since(start.as_deref(), now).is_some_and(|age| age >= d)
        {
            let message = "Job was active longer than specified deadline";
            conditions.push(condition(
                "FailureTarget",
                "DeadlineExceeded",
                message,
                &stamp,
            ));
            conditions.push(condition("Failed", "DeadlineExceeded", message, &stamp));
            actions.push(Action::Event(
                (**job).clone(),
                "DeadlineExceeded",
                message.into(),
            ));
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
            actions.push(Action::Event(
                (**job).clone(),
                "Completed",
                "Job completed".into(),
            ));
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
            for _ in have..want {
                let mut pod = spec.get("template").cloned().unwrap_or(json!({}));
                let m = meta::metadata(&mut pod);
                m.insert("generateName".into(), json!(format!("{name}-")));
                m.insert("namespace".into(), json!(ns));
                m.insert("ownerReferences".into(), owner_ref(job, "Job"));
                m.remove("name");
                pod["apiVersion"] = json!("v1");
                pod["kind"] = json!("Pod");
                actions.push(Action::Create(pod_r, ns.to_string(), pod));
            }
            actions.push(Action::Event(
                (**job).clone(),
                "SuccessfulCreate",
                format!("Created {} pod(s)", want - have),
            ));
        } else if have > want {
            // Newest first, as Kubernetes picks pods to stop.
            running.sort_by_key(|p| {
                std::cmp::Reverse(str_at(p, "/metadata/creationTimestamp").unwrap_or_default())
            });
            for p in running.iter().take((have - want) as usize) {
                actions.push(Action::Delete(
                    pod_r,
                    ns.to_string(),
                    meta::name(p).to_string(),
                ));
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
        let Some(Action::Create(_, _, p)) = a.iter().find(|a| matches!(a, Action::Create(..)))
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

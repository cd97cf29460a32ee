//! CronJobs: a Job from `jobTemplate` at each time `schedule` names, with
//! the concurrency policy, starting deadline and history limits of
//! Kubernetes' cronjob controller.

use serde_json::{Value, json};

use super::jobs::finished;
use super::{Action, Snapshot, owner_ref, res, status_patch, terminating};
use shoal_machinery::cron::{parse_schedule, time_zone};
use shoal_machinery::meta::{self, str_at};

fn stamp(t: jiff::Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// The latest scheduled time in (`after`, `now`], if any.
fn due(cj: &Value, after: jiff::Timestamp, now: jiff::Timestamp) -> Option<jiff::Timestamp> {
    let cron = parse_schedule(str_at(cj, "/spec/schedule")?).ok()?;
    let tz = time_zone(cj).ok()?;
    let t = cron
        .find_previous_occurrence(&now.to_zoned(tz), true)
        .ok()?
        .timestamp();
    (t > after).then_some(t)
}

/// The next scheduled time after `now` of any CronJob that is not suspended.
pub fn next_run(s: &Snapshot, now: jiff::Timestamp) -> Option<jiff::Timestamp> {
    s.of("cronjobs")
        .iter()
        .filter(|cj| cj.pointer("/spec/suspend") != Some(&json!(true)))
        .filter_map(|cj| {
            let cron = parse_schedule(str_at(cj, "/spec/schedule")?).ok()?;
            let tz = time_zone(cj).ok()?;
            Some(
                cron.find_next_occurrence(&now.to_zoned(tz), false)
                    .ok()?
                    .timestamp(),
            )
        })
        .min()
}

/// Deletes one of a CronJob's Jobs, with the event Kubernetes records.
fn delete_job(cj: &Value, job: &Value) -> [Action; 2] {
    let (ns, name) = (
        meta::namespace(job).to_string(),
        meta::name(job).to_string(),
    );
    [
        Action::Event {
            object: (*cj).clone(),
            reason: "SuccessfulDelete",
            message: format!("Deleted job {name}"),
        },
        Action::Delete {
            resource: res("Job", "batch"),
            namespace: ns,
            name,
        },
    ]
}

/// Starts the Jobs that are due, trims the history and keeps the status.
pub fn reconcile_cronjobs(s: &Snapshot, now: jiff::Timestamp) -> Vec<Action> {
    let (cj_r, job_r) = (res("CronJob", "batch"), res("Job", "batch"));
    let mut actions = Vec::new();
    for cj in s.of("cronjobs") {
        if terminating(cj) {
            continue;
        }
        let (ns, name, uid) = (meta::namespace(cj), meta::name(cj), meta::uid(cj));
        let mut jobs: Vec<&Value> = s
            .controlled("jobs", ns, uid)
            .filter(|j| !terminating(j))
            .collect();
        jobs.sort_by_key(|j| {
            str_at(j, "/metadata/creationTimestamp")
                .unwrap_or_default()
                .to_string()
        });
        let running: Vec<&Value> = jobs
            .iter()
            .copied()
            .filter(|j| finished(j).is_none())
            .collect();
        let mut status = json!({});

        let last = str_at(cj, "/status/lastScheduleTime")
            .or_else(|| str_at(cj, "/metadata/creationTimestamp"))
            .and_then(meta::parse_time)
            .unwrap_or(now);
        let suspended = cj.pointer("/spec/suspend") == Some(&json!(true));
        let deadline = cj
            .pointer("/spec/startingDeadlineSeconds")
            .and_then(Value::as_i64);
        let mut active = running.clone();
        if let Some(t) = due(cj, last, now).filter(|_| !suspended) {
            let missed = deadline.is_some_and(|d| (now - t).get_seconds() > d);
            let policy = str_at(cj, "/spec/concurrencyPolicy").unwrap_or("Allow");
            if missed {
                status["lastScheduleTime"] = json!(stamp(t));
                actions.push(Action::Event {
                    object: (**cj).clone(),
                    reason: "MissSchedule",
                    message: format!("Missed scheduled time to start a job: {}", stamp(t)),
                });
            } else if policy == "Forbid" && !running.is_empty() {
                // Tried again on the next round, until the deadline.
            } else {
                if policy == "Replace" {
                    for j in &running {
                        actions.extend(delete_job(cj, j));
                    }
                    active.clear();
                }
                let job_name = format!("{name}-{}", t.as_second() / 60);
                let mut job = json!({"apiVersion": "batch/v1", "kind": "Job",
                    "metadata": cj.pointer("/spec/jobTemplate/metadata").cloned().unwrap_or(json!({})),
                    "spec": cj.pointer("/spec/jobTemplate/spec").cloned().unwrap_or(json!({}))});
                let m = meta::metadata(&mut job);
                m.insert("name".into(), json!(job_name));
                m.insert("namespace".into(), json!(ns));
                m.insert("ownerReferences".into(), owner_ref(cj, "CronJob"));
                let annotations = m.entry("annotations").or_insert_with(|| json!({}));
                annotations["batch.kubernetes.io/cronjob-scheduled-timestamp"] = json!(stamp(t));
                actions.push(Action::Create {
                    resource: job_r,
                    namespace: ns.to_string(),
                    object: job,
                });
                actions.push(Action::Event {
                    object: (**cj).clone(),
                    reason: "SuccessfulCreate",
                    message: format!("Created job {job_name}"),
                });
                status["lastScheduleTime"] = json!(stamp(t));
            }
        }

        // History: the newest finished Jobs of each outcome are kept.
        for (outcome, field, keep) in [
            ("Complete", "successfulJobsHistoryLimit", 3),
            ("Failed", "failedJobsHistoryLimit", 1),
        ] {
            let limit = cj
                .pointer(&format!("/spec/{field}"))
                .and_then(Value::as_i64)
                .unwrap_or(keep)
                .max(0) as usize;
            let done: Vec<&&Value> = jobs
                .iter()
                .filter(|j| finished(j) == Some(outcome))
                .collect();
            for j in done.iter().take(done.len().saturating_sub(limit)) {
                actions.extend(delete_job(cj, j));
            }
        }
        if let Some(t) = jobs
            .iter()
            .filter(|j| finished(j) == Some("Complete"))
            .filter_map(|j| str_at(j, "/status/completionTime"))
            .max()
        {
            status["lastSuccessfulTime"] = json!(t);
        }
        let refs: Vec<Value> = active
            .iter()
            .map(|j| {
                json!({"apiVersion": "batch/v1", "kind": "Job", "name": meta::name(j),
                "namespace": ns, "uid": meta::uid(j)})
            })
            .collect();
        let had = cj
            .pointer("/status/active")
            .and_then(Value::as_array)
            .map_or(0, Vec::len);
        if !refs.is_empty() || had > 0 {
            status["active"] = json!(refs);
        }
        if had > 0 && refs.is_empty() {
            // A merge patch removes the list with null.
            status["active"] = Value::Null;
        }
        actions.extend(status_patch(cj_r, cj, status));
    }
    actions
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{deleted, snap, status};
    use super::*;

    fn with_jobs(cj: Value, jobs: Vec<Value>) -> Snapshot {
        let mut items = vec![("cronjobs", cj)];
        items.extend(jobs.into_iter().map(|j| ("jobs", j)));
        snap(&items)
    }

    fn created(actions: &[Action]) -> Vec<String> {
        super::super::test_support::created(actions)
            .iter()
            .map(|j| meta::name(j).to_string())
            .collect()
    }

    fn cronjob(spec: Value, last: &str) -> Value {
        let mut spec = spec;
        spec["jobTemplate"] = json!({"spec": {"template": {"spec": {"restartPolicy": "Never"}}}});
        json!({"apiVersion": "batch/v1", "kind": "CronJob",
            "metadata": {"name": "cj", "namespace": "d", "uid": "cj-uid", "creationTimestamp": "2026-01-01T00:00:00Z"},
            "spec": spec, "status": {"lastScheduleTime": last}})
    }

    fn job(name: &str, done: Option<&str>) -> Value {
        let conditions = done.map_or(json!([]), |c| json!([{"type": c, "status": "True"}]));
        json!({"metadata": {"name": name, "namespace": "d", "uid": format!("{name}-uid"),
            "creationTimestamp": format!("2026-01-01T00:0{}:00Z", &name[name.len() - 1..]),
            "ownerReferences": [{"uid": "cj-uid", "controller": true}]},
            "status": {"conditions": conditions, "completionTime": "2026-01-01T00:09:30Z"}})
    }

    fn at(s: &str) -> jiff::Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn a_due_schedule_starts_one_job_named_for_its_minute() {
        let every_5 = json!({"schedule": "*/5 * * * *"});
        let s = with_jobs(cronjob(every_5.clone(), "2026-01-01T00:05:00Z"), vec![]);
        // 00:09: nothing is due since 00:05.
        assert!(created(&reconcile_cronjobs(&s, at("2026-01-01T00:09:59Z"))).is_empty());
        assert_eq!(
            next_run(&s, at("2026-01-01T00:09:59Z")),
            Some(at("2026-01-01T00:10:00Z"))
        );
        // 00:12: the 00:10 run is due, and only it (00:05 ran).
        let a = reconcile_cronjobs(&s, at("2026-01-01T00:12:00Z"));
        let minutes = at("2026-01-01T00:10:00Z").as_second() / 60;
        assert_eq!(created(&a), [format!("cj-{minutes}")]);
        let Some(Action::Create {
            resource: _,
            namespace: _,
            object: j,
        }) = a.first()
        else {
            unreachable!()
        };
        assert_eq!(j["metadata"]["ownerReferences"][0]["uid"], "cj-uid");
        assert_eq!(
            j["metadata"]["annotations"]["batch.kubernetes.io/cronjob-scheduled-timestamp"],
            "2026-01-01T00:10:00Z"
        );
        assert_eq!(j["spec"]["template"]["spec"]["restartPolicy"], "Never");

        // Too late for the starting deadline: skipped, not run.
        let late = json!({"schedule": "*/5 * * * *", "startingDeadlineSeconds": 60});
        let s = with_jobs(cronjob(late, "2026-01-01T00:05:00Z"), vec![]);
        assert!(created(&reconcile_cronjobs(&s, at("2026-01-01T00:12:00Z"))).is_empty());
        // Suspended: nothing runs.
        let off = json!({"schedule": "*/5 * * * *", "suspend": true});
        let s = with_jobs(cronjob(off, "2026-01-01T00:05:00Z"), vec![]);
        assert!(created(&reconcile_cronjobs(&s, at("2026-01-01T00:12:00Z"))).is_empty());
    }

    #[test]
    fn concurrency_policies_and_history_limits() {
        let now = at("2026-01-01T00:10:00Z");
        let running = vec![job("cj-1", None)];
        let forbid = with_jobs(
            cronjob(
                json!({"schedule": "* * * * *", "concurrencyPolicy": "Forbid"}),
                "2026-01-01T00:09:00Z",
            ),
            running.clone(),
        );
        assert!(created(&reconcile_cronjobs(&forbid, now)).is_empty());
        let replace = with_jobs(
            cronjob(
                json!({"schedule": "* * * * *", "concurrencyPolicy": "Replace"}),
                "2026-01-01T00:09:00Z",
            ),
            running.clone(),
        );
        let a = reconcile_cronjobs(&replace, now);
        assert_eq!(deleted(&a), ["jobs/cj-1"]);
        assert_eq!(created(&a).len(), 1);
        let allow = with_jobs(
            cronjob(json!({"schedule": "* * * * *"}), "2026-01-01T00:09:00Z"),
            running,
        );
        let a = reconcile_cronjobs(&allow, now);
        assert!(deleted(&a).is_empty());
        assert_eq!(created(&a).len(), 1);

        // Three successes kept by default, one failure: the oldest go.
        let history = vec![
            job("cj-1", Some("Complete")),
            job("cj-2", Some("Failed")),
            job("cj-3", Some("Complete")),
            job("cj-4", Some("Complete")),
            job("cj-5", Some("Complete")),
            job("cj-6", Some("Failed")),
        ];
        let s = with_jobs(
            cronjob(json!({"schedule": "0 0 1 1 *"}), "2026-01-01T00:00:00Z"),
            history,
        );
        let a = reconcile_cronjobs(&s, now);
        assert_eq!(deleted(&a), ["jobs/cj-1", "jobs/cj-2"]);
        assert_eq!(status(&a)["lastSuccessfulTime"], "2026-01-01T00:09:30Z");
    }
}

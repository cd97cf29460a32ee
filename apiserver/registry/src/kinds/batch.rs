//! Jobs and CronJobs.

use serde_json::{Map, Value, json};

use super::pods::{default_pod_spec, validate_pod_spec};
use super::print::{
    age_cell, age_column, age_of, col, containers, human_duration, int, name_cell, name_column,
    selector_string, template_columns, text,
};
use super::{Printer, Strategy};
use shoal_machinery::error::{Cause, Causes};
use shoal_machinery::meta::{default_key, parse_time, str_at};
use shoal_machinery::selectors::LabelSelector;

/// A new Job's status and what else it starts with.
fn prepare_job(obj: &mut Value) {
    obj["status"] = json!({});
    job_selector(obj);
}

/// Fills a Job's defaults.
fn default_job(obj: &mut Value) {
    if let Some(s) = obj.get_mut("spec").and_then(Value::as_object_mut) {
        default_job_spec(s);
    }
}

/// The checks of a Job.
fn validate_job(obj: &Value, c: &mut Causes) {
    validate_job_spec(obj.get("spec"), "spec", c);
}

/// The columns `kubectl get` shows for Jobs.
pub fn job_columns() -> Vec<Value> {
    vec![
        name_column(),
        col("Status", "string", 0, "Status of the job."),
        col(
            "Completions",
            "string",
            0,
            "The completion status of the job.",
        ),
        col(
            "Duration",
            "string",
            0,
            "Time required to complete the job.",
        ),
        age_column(),
    ]
    .into_iter()
    .chain(template_columns())
    .collect()
}

/// A row of [`job_columns`] for `o`.
pub fn job_cells(o: &Value) -> Vec<Value> {
    let (cn, ci) = containers(o, "/spec/template/spec/containers");
    vec![
        name_cell(o),
        text(job_status(o).into()),
        text(job_completions(o)),
        text(job_duration(o)),
        age_cell(o),
        text(cn),
        text(ci),
        text(selector_string(o.pointer("/spec/selector"))),
    ]
}

/// Jobs.
static JOB: Strategy = Strategy {
    prepare: prepare_job,
    defaults: default_job,
    validate: validate_job,
    printer: Printer {
        columns: job_columns,
        cells: job_cells,
    },
    immutable: &["/spec/selector", "/spec/template", "/spec/completionMode"],
    field_labels: &["status.successful"],
    ..Strategy::GENERIC
};

/// Fills a CronJob's defaults.
fn default_cron_job(obj: &mut Value) {
    if let Some(s) = obj.get_mut("spec").and_then(Value::as_object_mut) {
        default_key(s, "concurrencyPolicy", json!("Allow"));
        default_key(s, "suspend", json!(false));
        default_key(s, "successfulJobsHistoryLimit", json!(3));
        default_key(s, "failedJobsHistoryLimit", json!(1));
        if let Some(t) = s
            .get_mut("jobTemplate")
            .and_then(|t| t.pointer_mut("/spec/template/spec"))
        {
            default_pod_spec(t);
        }
    }
}

/// The checks of a CronJob.
fn validate_cron_job(obj: &Value, c: &mut Causes) {
    let schedule = obj.pointer("/spec/schedule");
    match schedule.and_then(Value::as_str) {
        None | Some("") => c.required("spec.schedule", ""),
        Some(s) => {
            if let Err(e) = shoal_machinery::cron::parse_schedule(s) {
                c.invalid("spec.schedule", schedule.unwrap_or(&Value::Null), &e);
            }
        }
    }
    if let Err(e) = shoal_machinery::cron::time_zone(obj) {
        c.invalid(
            "spec.timeZone",
            obj.pointer("/spec/timeZone").unwrap_or(&Value::Null),
            &e,
        );
    }
    validate_job_spec(
        obj.pointer("/spec/jobTemplate/spec"),
        "spec.jobTemplate.spec",
        c,
    );
}

/// The columns `kubectl get` shows for CronJobs.
pub fn cron_job_columns() -> Vec<Value> {
    vec![
        name_column(),
        col("Schedule", "string", 0, "The schedule for running the job."),
        col(
            "Timezone",
            "string",
            0,
            "The time zone for running the job.",
        ),
        col(
            "Suspend",
            "boolean",
            0,
            "Whether the cron job is suspended.",
        ),
        col("Active", "integer", 0, "The number of jobs running."),
        col(
            "Last Schedule",
            "string",
            0,
            "When the job was last scheduled.",
        ),
        age_column(),
    ]
    .into_iter()
    .chain(template_columns())
    .collect()
}

/// A row of [`cron_job_columns`] for `o`.
pub fn cron_job_cells(o: &Value) -> Vec<Value> {
    let (cn, ci) = containers(o, "/spec/jobTemplate/spec/template/spec/containers");
    let last = match str_at(o, "/status/lastScheduleTime") {
        Some(_) => age_of(o, "/status/lastScheduleTime"),
        None => "<none>".into(),
    };
    vec![
        name_cell(o),
        text(str_at(o, "/spec/schedule").unwrap_or_default().into()),
        text(str_at(o, "/spec/timeZone").unwrap_or("<none>").into()),
        json!(o.pointer("/spec/suspend") == Some(&json!(true))),
        json!(
            o.pointer("/status/active")
                .and_then(Value::as_array)
                .map_or(0, Vec::len)
        ),
        text(last),
        age_cell(o),
        text(cn),
        text(ci),
        text(selector_string(
            o.pointer("/spec/jobTemplate/spec/selector"),
        )),
    ]
}

/// CronJobs.
static CRON_JOB: Strategy = Strategy {
    prepare: super::empty_status,
    defaults: default_cron_job,
    validate: validate_cron_job,
    printer: Printer {
        columns: cron_job_columns,
        cells: cron_job_cells,
    },
    ..Strategy::GENERIC
};

/// A Job's spec, as Kubernetes defaults it.
pub fn default_job_spec(s: &mut Map<String, Value>) {
    if !s.contains_key("completions") && !s.contains_key("parallelism") {
        s.insert("completions".into(), json!(1));
    }
    default_key(s, "parallelism", json!(1));
    default_key(s, "backoffLimit", json!(6));
    default_key(s, "completionMode", json!("NonIndexed"));
    default_key(s, "suspend", json!(false));
    default_key(s, "podReplacementPolicy", json!("TerminatingOrFailed"));
    if let Some(t) = s.get_mut("template").and_then(|t| t.get_mut("spec")) {
        default_pod_spec(t);
    }
}

/// A new Job's selector and pod labels, derived from its uid and name as
/// Kubernetes does unless `manualSelector` is set.
pub fn job_selector(job: &mut Value) {
    if job.pointer("/spec/manualSelector") == Some(&json!(true)) {
        return;
    }
    let (uid, name) = (
        shoal_machinery::meta::uid(job).to_string(),
        shoal_machinery::meta::name(job).to_string(),
    );
    let Some(spec) = job.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    spec.insert(
        "selector".into(),
        json!({"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}),
    );
    let template = spec.entry("template").or_insert_with(|| json!({}));
    let labels = shoal_machinery::meta::metadata(template)
        .entry("labels")
        .or_insert_with(|| json!({}));
    if let Some(l) = labels.as_object_mut() {
        for (k, v) in [
            ("batch.kubernetes.io/controller-uid", &uid),
            ("batch.kubernetes.io/job-name", &name),
            ("controller-uid", &uid),
            ("job-name", &name),
        ] {
            l.insert(k.into(), json!(v));
        }
    }
}

/// A Job's spec at `path`; a CronJob's job template has no selector yet.
fn validate_job_spec(spec: Option<&Value>, path: &str, c: &mut Causes) {
    let Some(spec) = spec else {
        return c.required(path, "");
    };
    for field in [
        "parallelism",
        "completions",
        "backoffLimit",
        "activeDeadlineSeconds",
        "ttlSecondsAfterFinished",
    ] {
        if let Some(v) = spec.get(field)
            && v.as_i64()
                .is_some_and(|n| n < 0 || (n == 0 && field == "activeDeadlineSeconds"))
        {
            let why = if field == "activeDeadlineSeconds" {
                "must be greater than 0"
            } else {
                "must be greater than or equal to 0"
            };
            c.invalid(format!("{path}.{field}"), v, why);
        }
    }
    let restart = spec.pointer("/template/spec/restartPolicy");
    if spec.get("podFailurePolicy").is_some_and(|p| !p.is_null())
        && let Some(r) = restart.filter(|r| r.as_str() != Some("Never"))
    {
        c.invalid(
            format!("{path}.template.spec.restartPolicy"),
            r,
            "only \"Never\" is supported when podFailurePolicy is specified",
        );
    }
    match spec.get("completionMode").and_then(Value::as_str) {
        None | Some("NonIndexed") => {}
        Some("Indexed") => {
            if spec.get("completions").is_none_or(Value::is_null) {
                c.required(
                    format!("{path}.completions"),
                    "when completion mode is Indexed",
                );
            }
        }
        Some(other) => c.0.push(Cause {
            kind: "FieldValueNotSupported",
            field: format!("{path}.completionMode"),
            message: format!(
                "Unsupported value: \"{other}\": supported values: \"NonIndexed\", \"Indexed\""
            ),
        }),
    }
    match spec
        .pointer("/template/spec/restartPolicy")
        .and_then(Value::as_str)
    {
        Some("Never" | "OnFailure") => {}
        Some(other) => c.0.push(Cause {
            kind: "FieldValueNotSupported",
            field: format!("{path}.template.spec.restartPolicy"),
            message: format!(
                "Unsupported value: \"{other}\": supported values: \"OnFailure\", \"Never\""
            ),
        }),
        None => c.required(
            "spec.template.spec.restartPolicy",
            "valid values: \"OnFailure\", \"Never\"",
        ),
    }
    if let Some(sel) = spec.get("selector") {
        let labels = spec.pointer("/template/metadata/labels");
        if !LabelSelector::from_object(sel).matches(labels) {
            c.invalid(
                format!("{path}.template.metadata.labels"),
                labels.unwrap_or(&Value::Null),
                "`selector` does not match template `labels`",
            );
        }
    } else if path == "spec" {
        c.required("spec.selector", "");
    }
    validate_pod_spec(
        spec.pointer("/template/spec"),
        &format!("{path}.template.spec"),
        c,
    );
}

/// The Status column of a Job: its first condition of note.
fn job_status(o: &Value) -> &'static str {
    let has = |c: &str| shoal_machinery::meta::condition_true(o, c);
    if has("Complete") {
        "Complete"
    } else if has("Failed") {
        "Failed"
    } else if o.pointer("/metadata/deletionTimestamp").is_some() {
        "Terminating"
    } else if has("Suspended") {
        "Suspended"
    } else if has("FailureTarget") {
        "FailureTarget"
    } else if has("SuccessCriteriaMet") {
        "SuccessCriteriaMet"
    } else {
        "Running"
    }
}

/// `succeeded/completions`, or `succeeded/1 of parallelism` without completions.
fn job_completions(o: &Value) -> String {
    let succeeded = int(o, "/status/succeeded");
    match o.pointer("/spec/completions").and_then(Value::as_i64) {
        Some(c) => format!("{succeeded}/{c}"),
        None => match int(o, "/spec/parallelism") {
            p if p > 1 => format!("{succeeded}/1 of {p}"),
            _ => format!("{succeeded}/1"),
        },
    }
}

/// From start to completion, or to now while running.
fn job_duration(o: &Value) -> String {
    let Some(start) = str_at(o, "/status/startTime").and_then(parse_time) else {
        return String::new();
    };
    let end = str_at(o, "/status/completionTime")
        .and_then(parse_time)
        .unwrap_or_else(jiff::Timestamp::now);
    human_duration((end - start).get_seconds())
}

/// The kinds this file holds, by name.
pub(super) static KINDS: &[(&str, &Strategy)] = &[("Job", &JOB), ("CronJob", &CRON_JOB)];

//! Pods: defaults of the spec and its containers, the QoS class, the
//! checks of a pod spec (shared with every pod template), and the STATUS
//! column as kubectl computes it.

use serde_json::{Map, Value, json};

use super::print::{age_cell, age_column, col, human_duration, int, name_cell, name_column, text};
use super::{Deletion, Printer, Strategy};
use shoal_machinery::error::{Cause, Causes};
use shoal_machinery::meta::{default_key, parse_time, str_at};
use shoal_machinery::names::is_dns_label;

/// A new Pod's status and what else it starts with.
fn prepare_pod(obj: &mut Value) {
    let qos = qos_class(obj.get("spec").unwrap_or(&Value::Null));
    obj["status"] = json!({"phase": "Pending", "qosClass": qos});
}

/// Fills a Pod's defaults.
fn default_pod(obj: &mut Value) {
    if let Some(spec) = obj.get_mut("spec") {
        default_pod_spec(spec);
    }
}

/// The checks of a Pod.
fn validate_pod(obj: &Value, c: &mut Causes) {
    validate_pod_spec(obj.get("spec"), "spec", c);
}

/// The columns `kubectl get` shows for Pods.
pub fn pod_columns() -> Vec<Value> {
    vec![
        name_column(),
        col(
            "Ready",
            "string",
            0,
            "The aggregate readiness state of this pod for accepting traffic.",
        ),
        col(
            "Status",
            "string",
            0,
            "The aggregate status of the containers in this pod.",
        ),
        col(
            "Restarts",
            "string",
            0,
            "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted.",
        ),
        age_column(),
        col("IP", "string", 1, "IP address allocated to the pod."),
        col(
            "Node",
            "string",
            1,
            "Name of the node the pod is assigned to.",
        ),
        col(
            "Nominated Node",
            "string",
            1,
            "Name of the node where the pod is nominated.",
        ),
        col("Readiness Gates", "string", 1, "Pod readiness gates."),
    ]
}

/// A row of [`pod_columns`] for `o`.
pub fn pod_cells(o: &Value) -> Vec<Value> {
    let statuses = o
        .pointer("/status/containerStatuses")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let total = o
        .pointer("/spec/containers")
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    let ready = statuses
        .iter()
        .filter(|c| c.get("ready") == Some(&json!(true)))
        .count();
    let restarts: i64 = statuses.iter().map(|c| int(c, "/restartCount")).sum();
    let last_restart = statuses
        .iter()
        .filter_map(|c| str_at(c, "/lastState/terminated/finishedAt").and_then(parse_time))
        .max();
    let restarts = match last_restart {
        Some(t) if restarts > 0 => format!(
            "{restarts} ({} ago)",
            human_duration((jiff::Timestamp::now() - t).get_seconds())
        ),
        _ => restarts.to_string(),
    };
    vec![
        name_cell(o),
        text(format!("{ready}/{total}")),
        text(pod_status(o)),
        text(restarts),
        age_cell(o),
        text(str_at(o, "/status/podIP").unwrap_or("<none>").into()),
        text(str_at(o, "/spec/nodeName").unwrap_or("<none>").into()),
        text(
            str_at(o, "/status/nominatedNodeName")
                .unwrap_or("<none>")
                .into(),
        ),
        text("<none>".into()),
    ]
}

/// Pods.
static POD: Strategy = Strategy {
    deletion: Deletion::Graceful,
    prepare: prepare_pod,
    defaults: default_pod,
    validate: validate_pod,
    printer: Printer {
        columns: pod_columns,
        cells: pod_cells,
    },
    field_labels: &[
        "spec.nodeName",
        "spec.restartPolicy",
        "spec.schedulerName",
        "spec.serviceAccountName",
        "spec.hostNetwork",
        "status.phase",
        "status.podIP",
        "status.nominatedNodeName",
    ],
    ..Strategy::GENERIC
};

/// Fills defaults of a pod spec (also used for pod templates).
pub fn default_pod_spec(spec: &mut Value) {
    let Some(s) = spec.as_object_mut() else {
        return;
    };
    default_key(s, "restartPolicy", json!("Always"));
    default_key(s, "terminationGracePeriodSeconds", json!(30));
    default_key(s, "dnsPolicy", json!("ClusterFirst"));
    default_key(s, "schedulerName", json!("default-scheduler"));
    default_key(s, "securityContext", json!({}));
    default_key(s, "enableServiceLinks", json!(true));
    for list in ["containers", "initContainers"] {
        if let Some(cs) = s.get_mut(list).and_then(Value::as_array_mut) {
            for c in cs.iter_mut().filter_map(Value::as_object_mut) {
                container(c);
            }
        }
    }
}

fn container(c: &mut Map<String, Value>) {
    let image = c.get("image").and_then(Value::as_str).unwrap_or_default();
    let last = image.rsplit('/').next().unwrap_or(image);
    let latest = !image.contains('@') && (!last.contains(':') || last.ends_with(":latest"));
    default_key(
        c,
        "imagePullPolicy",
        json!(if latest { "Always" } else { "IfNotPresent" }),
    );
    default_key(c, "terminationMessagePath", json!("/dev/termination-log"));
    default_key(c, "terminationMessagePolicy", json!("File"));
    default_key(c, "resources", json!({}));
    if let Some(ports) = c.get_mut("ports").and_then(Value::as_array_mut) {
        for p in ports.iter_mut().filter_map(Value::as_object_mut) {
            default_key(p, "protocol", json!("TCP"));
        }
    }
}

/// The QoS class of a pod spec.
pub fn qos_class(spec: &Value) -> &'static str {
    let cs = spec
        .get("containers")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let any = cs.iter().any(|c| {
        c.pointer("/resources/requests")
            .and_then(Value::as_object)
            .is_some_and(|m| !m.is_empty())
            || c.pointer("/resources/limits")
                .and_then(Value::as_object)
                .is_some_and(|m| !m.is_empty())
    });
    let guaranteed = !cs.is_empty()
        && cs.iter().all(|c| {
            let l = c.pointer("/resources/limits");
            ["cpu", "memory"]
                .iter()
                .all(|k| l.and_then(|l| l.get(*k)).is_some())
                && c.pointer("/resources/requests")
                    .is_none_or(|r| r == l.unwrap_or(&Value::Null))
        });
    if guaranteed {
        "Guaranteed"
    } else if any {
        "Burstable"
    } else {
        "BestEffort"
    }
}

pub fn validate_pod_spec(spec: Option<&Value>, path: &str, c: &mut Causes) {
    let containers = spec
        .and_then(|s| s.get("containers"))
        .and_then(Value::as_array);
    let Some(containers) = containers.filter(|v| !v.is_empty()) else {
        c.required(format!("{path}.containers"), "");
        return;
    };
    let mut seen = Vec::new();
    for (i, ct) in containers.iter().enumerate() {
        let name = ct.get("name").and_then(Value::as_str).unwrap_or_default();
        if name.is_empty() {
            c.required(format!("{path}.containers[{i}].name"), "");
        } else if !is_dns_label(name) {
            c.invalid(format!("{path}.containers[{i}].name"), &ct["name"], "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-'");
        } else if seen.contains(&name) {
            c.0.push(Cause {
                kind: "FieldValueDuplicate",
                field: format!("{path}.containers[{i}].name"),
                message: format!("Duplicate value: \"{name}\""),
            });
        }
        seen.push(name);
        if ct
            .get("image")
            .and_then(Value::as_str)
            .is_none_or(|s| s.trim().is_empty())
        {
            c.required(format!("{path}.containers[{i}].image"), "");
        }
    }
    if let Some(p) = spec
        .and_then(|s| s.get("restartPolicy"))
        .and_then(Value::as_str)
        && !["Always", "OnFailure", "Never"].contains(&p)
    {
        c.0.push(Cause {
            kind: "FieldValueNotSupported",
            field: format!("{path}.restartPolicy"),
            message: format!(
                "Unsupported value: \"{p}\": supported values: \"Always\", \"OnFailure\", \"Never\""
            ),
        });
    }
}

/// The pod's STATUS column, as kubectl computes it.
pub fn pod_status(pod: &Value) -> String {
    let mut reason = str_at(pod, "/status/reason")
        .or(str_at(pod, "/status/phase"))
        .unwrap_or("Pending")
        .to_string();
    let statuses = pod
        .pointer("/status/containerStatuses")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for cs in statuses.iter().rev() {
        if let Some(r) = str_at(cs, "/state/waiting/reason") {
            reason = r.to_string();
        } else if let Some(t) = cs.pointer("/state/terminated") {
            reason = match str_at(t, "/reason") {
                Some(r) => r.to_string(),
                None => format!("ExitCode:{}", int(t, "/exitCode")),
            };
        }
    }
    if pod.pointer("/metadata/deletionTimestamp").is_some() {
        reason = "Terminating".into();
    }
    reason
}

/// The kinds this file holds, by name.
pub(super) static KINDS: &[(&str, &Strategy)] = &[("Pod", &POD)];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pod_status_prefers_waiting_reason() {
        let pod = json!({"status": {"phase": "Pending", "containerStatuses": [{"state": {"waiting": {"reason": "ErrImagePull"}}}]}});
        assert_eq!(pod_status(&pod), "ErrImagePull");
        let gone = json!({"metadata": {"deletionTimestamp": "x"}, "status": {"phase": "Running"}});
        assert_eq!(pod_status(&gone), "Terminating");
    }
}

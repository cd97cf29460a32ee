//! Workload controllers' kinds: Deployments, ReplicaSets,
//! ReplicationControllers, StatefulSets, DaemonSets, their
//! ControllerRevisions, HorizontalPodAutoscalers and PodDisruptionBudgets.

use serde_json::{Map, Value, json};

use super::pods::{default_pod_spec, validate_pod_spec};
use super::print::{
    age_cell, age_column, col, containers, int, int_or_string, name_cell, name_column,
    selector_string, template_columns, text,
};
use super::{Printer, Strategy};
use shoal_machinery::error::Causes;
use shoal_machinery::meta::default_key;
use shoal_machinery::selectors::LabelSelector;

/// Fills a Deployment's defaults.
fn default_deployment(obj: &mut Value) {
    let spec = obj.get_mut("spec").and_then(Value::as_object_mut);
    if let Some(s) = spec {
        default_key(s, "replicas", json!(1));
        default_key(s, "revisionHistoryLimit", json!(10));
        default_key(s, "progressDeadlineSeconds", json!(600));
        rolling_update(
            s,
            "strategy",
            [("maxUnavailable", json!("25%")), ("maxSurge", json!("25%"))],
        );
        if let Some(t) = s.get_mut("template").and_then(|t| t.get_mut("spec")) {
            default_pod_spec(t);
        }
    }
}

/// The checks of a Deployment.
fn validate_deployment(obj: &Value, c: &mut Causes) {
    replicated(obj, "Deployment", c);
}

/// The columns `kubectl get` shows for Deployments.
pub fn deployment_columns() -> Vec<Value> {
    vec![
        name_column(),
        col("Ready", "string", 0, "Number of the pod with ready state"),
        col(
            "Up-to-date",
            "string",
            0,
            "Total number of non-terminated pods targeted by this deployment that have the desired template spec.",
        ),
        col(
            "Available",
            "string",
            0,
            "Total number of available pods (ready for at least minReadySeconds) targeted by this deployment.",
        ),
        age_column(),
    ]
    .into_iter()
    .chain(template_columns())
    .collect()
}

/// A row of [`deployment_columns`] for `o`.
pub fn deployment_cells(o: &Value) -> Vec<Value> {
    let (cn, ci) = containers(o, "/spec/template/spec/containers");
    vec![
        name_cell(o),
        text(format!(
            "{}/{}",
            int(o, "/status/readyReplicas"),
            int(o, "/spec/replicas")
        )),
        json!(int(o, "/status/updatedReplicas")),
        json!(int(o, "/status/availableReplicas")),
        age_cell(o),
        text(cn),
        text(ci),
        text(selector_string(o.pointer("/spec/selector"))),
    ]
}

/// Deployments.
static DEPLOYMENT: Strategy = Strategy {
    prepare: super::empty_status,
    defaults: default_deployment,
    validate: validate_deployment,
    printer: Printer {
        columns: deployment_columns,
        cells: deployment_cells,
    },
    ..Strategy::GENERIC
};

/// Fills a ReplicaSet's defaults.
fn default_replica_set(obj: &mut Value) {
    if let Some(s) = obj.get_mut("spec").and_then(Value::as_object_mut) {
        default_key(s, "replicas", json!(1));
        if let Some(t) = s.get_mut("template").and_then(|t| t.get_mut("spec")) {
            default_pod_spec(t);
        }
    }
}

/// The checks of a ReplicaSet.
fn validate_replica_set(obj: &Value, c: &mut Causes) {
    replicated(obj, "ReplicaSet", c);
}

/// The columns `kubectl get` shows for ReplicaSets and ReplicationControllers.
pub fn replica_set_columns() -> Vec<Value> {
    vec![
        name_column(),
        col("Desired", "integer", 0, "Number of desired pods."),
        col("Current", "integer", 0, "Number of actually running pods."),
        col("Ready", "integer", 0, "Number of ready pods."),
        age_column(),
    ]
    .into_iter()
    .chain(template_columns())
    .collect()
}

/// A row of [`replica_set_columns`] for `o`.
pub fn replica_set_cells(o: &Value) -> Vec<Value> {
    let (cn, ci) = containers(o, "/spec/template/spec/containers");
    vec![
        name_cell(o),
        json!(int(o, "/spec/replicas")),
        json!(int(o, "/status/replicas")),
        json!(int(o, "/status/readyReplicas")),
        age_cell(o),
        text(cn),
        text(ci),
        text(selector_string(o.pointer("/spec/selector"))),
    ]
}

/// ReplicaSets.
static REPLICA_SET: Strategy = Strategy {
    prepare: super::empty_status,
    defaults: default_replica_set,
    validate: validate_replica_set,
    printer: Printer {
        columns: replica_set_columns,
        cells: replica_set_cells,
    },
    status_zeros: &["replicas"],
    field_labels: &["status.replicas"],
    ..Strategy::GENERIC
};

/// Fills a ReplicationController's defaults.
fn default_replication_controller(obj: &mut Value) {
    // The selector and the labels default to the template's labels.
    let labels = obj.pointer("/spec/template/metadata/labels").cloned();
    if let Some(l) = labels.filter(|l| l.as_object().is_some_and(|m| !m.is_empty())) {
        if let Some(s) = obj.get_mut("spec").and_then(Value::as_object_mut)
            && s.get("selector")
                .and_then(Value::as_object)
                .is_none_or(|m| m.is_empty())
        {
            s.insert("selector".into(), l.clone());
        }
        let m = shoal_machinery::meta::metadata(obj);
        if m.get("labels")
            .and_then(Value::as_object)
            .is_none_or(|m| m.is_empty())
        {
            m.insert("labels".into(), l);
        }
    }
    if let Some(s) = obj.get_mut("spec").and_then(Value::as_object_mut) {
        default_key(s, "replicas", json!(1));
        if let Some(t) = s.get_mut("template").and_then(|t| t.get_mut("spec")) {
            default_pod_spec(t);
        }
    }
}

/// The checks of a ReplicationController.
fn validate_replication_controller(obj: &Value, c: &mut Causes) {
    replicated(obj, "ReplicationController", c);
}

/// ReplicationControllers.
static REPLICATION_CONTROLLER: Strategy = Strategy {
    scale_selector: "/spec/selector",
    prepare: super::empty_status,
    defaults: default_replication_controller,
    validate: validate_replication_controller,
    printer: Printer {
        columns: replica_set_columns,
        cells: replica_set_cells,
    },
    status_zeros: &["replicas"],
    field_labels: &["status.replicas"],
    ..Strategy::GENERIC
};

/// Fills a StatefulSet's defaults.
fn default_stateful_set(obj: &mut Value) {
    if let Some(s) = obj.get_mut("spec").and_then(Value::as_object_mut) {
        default_key(s, "replicas", json!(1));
        default_key(s, "podManagementPolicy", json!("OrderedReady"));
        default_key(s, "revisionHistoryLimit", json!(10));
        default_key(
            s,
            "persistentVolumeClaimRetentionPolicy",
            json!({"whenDeleted": "Retain", "whenScaled": "Retain"}),
        );
        rolling_update(s, "updateStrategy", [("partition", json!(0))]);
        if let Some(t) = s.get_mut("template").and_then(|t| t.get_mut("spec")) {
            default_pod_spec(t);
        }
    }
}

/// The checks of a StatefulSet.
fn validate_stateful_set(obj: &Value, c: &mut Causes) {
    replicated(obj, "StatefulSet", c);
}

/// The columns `kubectl get` shows for StatefulSets.
pub fn stateful_set_columns() -> Vec<Value> {
    vec![
        name_column(),
        col("Ready", "string", 0, "Number of the pod with ready state"),
        age_column(),
    ]
    .into_iter()
    // The template's containers and images; no selector column.
    .chain(template_columns().into_iter().take(2))
    .collect()
}

/// A row of [`stateful_set_columns`] for `o`.
pub fn stateful_set_cells(o: &Value) -> Vec<Value> {
    let name = name_cell(o);
    let age = age_cell(o);
    let (cn, ci) = containers(o, "/spec/template/spec/containers");
    let ready = format!(
        "{}/{}",
        int(o, "/status/readyReplicas"),
        int(o, "/spec/replicas")
    );
    vec![name, text(ready), age, text(cn), text(ci)]
}

/// StatefulSets.
static STATEFUL_SET: Strategy = Strategy {
    prepare: super::empty_status,
    defaults: default_stateful_set,
    validate: validate_stateful_set,
    printer: Printer {
        columns: stateful_set_columns,
        cells: stateful_set_cells,
    },
    status_zeros: &["replicas", "availableReplicas"],
    ..Strategy::GENERIC
};

/// Fills a DaemonSet's defaults.
fn default_daemon_set(obj: &mut Value) {
    if let Some(s) = obj.get_mut("spec").and_then(Value::as_object_mut) {
        default_key(s, "revisionHistoryLimit", json!(10));
        rolling_update(
            s,
            "updateStrategy",
            [("maxUnavailable", json!(1)), ("maxSurge", json!(0))],
        );
        if let Some(t) = s.get_mut("template").and_then(|t| t.get_mut("spec")) {
            default_pod_spec(t);
        }
    }
}

/// The checks of a DaemonSet.
fn validate_daemon_set(obj: &Value, c: &mut Causes) {
    replicated(obj, "DaemonSet", c);
}

/// The columns `kubectl get` shows for DaemonSets.
pub fn daemon_set_columns() -> Vec<Value> {
    vec![
        name_column(),
        col(
            "Desired",
            "integer",
            0,
            "The desired number of pods scheduled.",
        ),
        col("Current", "integer", 0, "The number of pods scheduled."),
        col("Ready", "integer", 0, "The number of ready pods."),
        col(
            "Up-to-date",
            "integer",
            0,
            "The number of pods running the current template.",
        ),
        col("Available", "integer", 0, "The number of available pods."),
        col(
            "Node Selector",
            "string",
            0,
            "The node selector of the pods.",
        ),
        age_column(),
    ]
    .into_iter()
    .chain(template_columns())
    .collect()
}

/// A row of [`daemon_set_columns`] for `o`.
pub fn daemon_set_cells(o: &Value) -> Vec<Value> {
    let (cn, ci) = containers(o, "/spec/template/spec/containers");
    let node_selector = o
        .pointer("/spec/template/spec/nodeSelector")
        .and_then(Value::as_object)
        .filter(|m| !m.is_empty())
        .map_or("<none>".to_string(), |m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                .collect::<Vec<_>>()
                .join(",")
        });
    vec![
        name_cell(o),
        json!(int(o, "/status/desiredNumberScheduled")),
        json!(int(o, "/status/currentNumberScheduled")),
        json!(int(o, "/status/numberReady")),
        json!(int(o, "/status/updatedNumberScheduled")),
        json!(int(o, "/status/numberAvailable")),
        text(node_selector),
        age_cell(o),
        text(cn),
        text(ci),
        text(selector_string(o.pointer("/spec/selector"))),
    ]
}

/// DaemonSets.
static DAEMON_SET: Strategy = Strategy {
    prepare: super::empty_status,
    defaults: default_daemon_set,
    validate: validate_daemon_set,
    printer: Printer {
        columns: daemon_set_columns,
        cells: daemon_set_cells,
    },
    status_zeros: &[
        "currentNumberScheduled",
        "numberMisscheduled",
        "desiredNumberScheduled",
        "numberReady",
    ],
    ..Strategy::GENERIC
};

/// The columns `kubectl get` shows for ControllerRevisions.
pub fn controller_revision_columns() -> Vec<Value> {
    vec![
        name_column(),
        col("Controller", "string", 0, "Controller of the object."),
        col(
            "Revision",
            "integer",
            0,
            "Revision of the ControllerRevision.",
        ),
        age_column(),
    ]
}

/// A row of [`controller_revision_columns`] for `o`.
pub fn controller_revision_cells(o: &Value) -> Vec<Value> {
    let name = name_cell(o);
    let age = age_cell(o);
    let controller = o
        .pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .and_then(|refs| refs.iter().find(|r| r["controller"] == json!(true)))
        .map_or("<none>".to_string(), |r| {
            let group = r["apiVersion"]
                .as_str()
                .unwrap_or_default()
                .split('/')
                .next()
                .unwrap_or_default();
            let kind = r["kind"].as_str().unwrap_or_default().to_lowercase();
            format!("{kind}.{group}/{}", r["name"].as_str().unwrap_or_default())
        });
    vec![name, text(controller), json!(int(o, "/revision")), age]
}

/// ControllerRevisions.
static CONTROLLER_REVISION: Strategy = Strategy {
    printer: Printer {
        columns: controller_revision_columns,
        cells: controller_revision_cells,
    },
    ..Strategy::GENERIC
};

/// HorizontalPodAutoscalers.
static HORIZONTAL_POD_AUTOSCALER: Strategy = Strategy {
    status_zeros: &["desiredReplicas"],
    ..Strategy::GENERIC
};

/// The columns `kubectl get` shows for PodDisruptionBudgets.
pub fn pod_disruption_budget_columns() -> Vec<Value> {
    vec![
        name_column(),
        col(
            "Min Available",
            "string",
            0,
            "The minimum number of pods that must be available.",
        ),
        col(
            "Max Unavailable",
            "string",
            0,
            "The maximum number of pods that may be unavailable.",
        ),
        col(
            "Allowed Disruptions",
            "integer",
            0,
            "The number of pods that may be disrupted now.",
        ),
        age_column(),
    ]
}

/// A row of [`pod_disruption_budget_columns`] for `o`.
pub fn pod_disruption_budget_cells(o: &Value) -> Vec<Value> {
    vec![
        name_cell(o),
        text(int_or_string(o, "/spec/minAvailable")),
        text(int_or_string(o, "/spec/maxUnavailable")),
        json!(int(o, "/status/disruptionsAllowed")),
        age_cell(o),
    ]
}

/// PodDisruptionBudgets.
static POD_DISRUPTION_BUDGET: Strategy = Strategy {
    printer: Printer {
        columns: pod_disruption_budget_columns,
        cells: pod_disruption_budget_cells,
    },
    ..Strategy::GENERIC
};

/// The checks every replicated workload shares: replicas, a selector
/// that matches the template's labels (a plain label map for a
/// ReplicationController), and the template's pod spec.
fn replicated(obj: &Value, kind: &str, c: &mut Causes) {
    let spec = obj.get("spec");
    if let Some(n) = spec
        .and_then(|s| s.get("replicas"))
        .filter(|n| n.as_i64().is_some_and(|n| n < 0))
    {
        c.invalid("spec.replicas", n, "must be greater than or equal to 0");
    }
    // A ReplicationController's selector is a plain label map.
    let plain = kind == "ReplicationController";
    let labels = spec.and_then(|s| s.pointer("/template/metadata/labels"));
    match spec.and_then(|s| s.get("selector")) {
        None => c.required("spec.selector", ""),
        Some(sel) => {
            let empty = if plain {
                sel.as_object().is_none_or(Map::is_empty)
            } else {
                sel.get("matchLabels")
                    .and_then(Value::as_object)
                    .is_none_or(Map::is_empty)
                    && sel
                        .get("matchExpressions")
                        .and_then(Value::as_array)
                        .is_none_or(Vec::is_empty)
            };
            let selector = if plain {
                LabelSelector::from_map(sel)
            } else {
                LabelSelector::from_object(sel)
            };
            if empty && plain {
                c.required("spec.selector", "");
            } else if empty {
                c.invalid(
                    "spec.selector",
                    sel,
                    &format!("empty selector is invalid for {}", kind.to_lowercase()),
                );
            } else if !selector.matches(labels) {
                c.invalid(
                    "spec.template.metadata.labels",
                    labels.unwrap_or(&Value::Null),
                    "`selector` does not match template `labels`",
                );
            }
        }
    }
    validate_pod_spec(
        spec.and_then(|s| s.pointer("/template/spec")),
        "spec.template.spec",
        c,
    );
}

/// The `key` update strategy of a spec: RollingUpdate unless set, with
/// `rolling` defaults for its parameters.
fn rolling_update<const N: usize>(
    spec: &mut Map<String, Value>,
    key: &str,
    rolling: [(&str, Value); N],
) {
    default_key(spec, key, json!({}));
    let Some(st) = spec.get_mut(key).and_then(Value::as_object_mut) else {
        return;
    };
    default_key(st, "type", json!("RollingUpdate"));
    if st.get("type") == Some(&json!("RollingUpdate")) {
        default_key(st, "rollingUpdate", json!({}));
        if let Some(ru) = st.get_mut("rollingUpdate").and_then(Value::as_object_mut) {
            for (k, v) in rolling {
                default_key(ru, k, v);
            }
        }
    }
}

/// The kinds this file holds, by name.
pub(super) static KINDS: &[(&str, &Strategy)] = &[
    ("Deployment", &DEPLOYMENT),
    ("ReplicaSet", &REPLICA_SET),
    ("ReplicationController", &REPLICATION_CONTROLLER),
    ("StatefulSet", &STATEFUL_SET),
    ("DaemonSet", &DAEMON_SET),
    ("ControllerRevision", &CONTROLLER_REVISION),
    ("HorizontalPodAutoscaler", &HORIZONTAL_POD_AUTOSCALER),
    ("PodDisruptionBudget", &POD_DISRUPTION_BUDGET),
];

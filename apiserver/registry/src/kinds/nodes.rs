//! Nodes and what belongs to them: Leases and RuntimeClasses.

use serde_json::{Value, json};

use super::print::{age_cell, age_column, col, join_or_none, name_cell, name_column, text};
use super::{Printer, Strategy};
use shoal_machinery::meta::str_at;

/// The columns `kubectl get` shows for Nodes.
pub fn node_columns() -> Vec<Value> {
    vec![
        name_column(),
        col("Status", "string", 0, "The status of the node"),
        col("Roles", "string", 0, "The roles of the node"),
        age_column(),
        col(
            "Version",
            "string",
            0,
            "Kubelet Version reported by the node.",
        ),
        col("Internal-IP", "string", 1, "List of internal IPs."),
        col("External-IP", "string", 1, "List of external IPs."),
        col("OS-Image", "string", 1, "OS Image."),
        col("Kernel-Version", "string", 1, "Kernel Version."),
        col(
            "Container-Runtime",
            "string",
            1,
            "Container Runtime Version.",
        ),
    ]
}

/// A row of [`node_columns`] for `o`.
pub fn node_cells(o: &Value) -> Vec<Value> {
    let ready = o
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .and_then(|cs| {
            cs.iter()
                .find(|c| c.get("type") == Some(&json!("Ready")))
                .map(|c| c.get("status") == Some(&json!("True")))
        });
    let mut status = match ready {
        Some(true) => "Ready",
        Some(false) | None => "NotReady",
    }
    .to_string();
    if o.pointer("/spec/unschedulable") == Some(&json!(true)) {
        status.push_str(",SchedulingDisabled");
    }
    let addr = |t: &str| {
        let a: Vec<String> = o
            .pointer("/status/addresses")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
            .iter()
            .filter(|a| a.get("type") == Some(&json!(t)))
            .filter_map(|a| str_at(a, "/address").map(String::from))
            .collect();
        if a.is_empty() {
            "<none>".to_string()
        } else {
            a.join(",")
        }
    };
    let roles: Vec<String> = o
        .pointer("/metadata/labels")
        .and_then(Value::as_object)
        .map(|m| {
            m.keys()
                .filter_map(|k| k.strip_prefix("node-role.kubernetes.io/").map(String::from))
                .collect()
        })
        .unwrap_or_default();
    let info = |k: &str| {
        text(
            str_at(o, &format!("/status/nodeInfo/{k}"))
                .unwrap_or("<unknown>")
                .into(),
        )
    };
    vec![
        name_cell(o),
        text(status),
        text(join_or_none(roles)),
        age_cell(o),
        info("kubeletVersion"),
        text(addr("InternalIP")),
        text(addr("ExternalIP")),
        info("osImage"),
        info("kernelVersion"),
        info("containerRuntimeVersion"),
    ]
}

/// Nodes.
static NODE: Strategy = Strategy {
    printer: Printer {
        columns: node_columns,
        cells: node_cells,
    },
    field_labels: &["spec.unschedulable"],
    ..Strategy::GENERIC
};

/// The columns `kubectl get` shows for Leases.
pub fn lease_columns() -> Vec<Value> {
    vec![
        name_column(),
        col("Holder", "string", 0, "Holder of the lease."),
        age_column(),
    ]
}

/// A row of [`lease_columns`] for `o`.
pub fn lease_cells(o: &Value) -> Vec<Value> {
    vec![
        name_cell(o),
        text(str_at(o, "/spec/holderIdentity").unwrap_or("<none>").into()),
        age_cell(o),
    ]
}

/// Leases.
static LEASE: Strategy = Strategy {
    printer: Printer {
        columns: lease_columns,
        cells: lease_cells,
    },
    ..Strategy::GENERIC
};

/// The columns `kubectl get` shows for RuntimeClasss.
pub fn runtime_class_columns() -> Vec<Value> {
    vec![
        name_column(),
        col("Handler", "string", 0, "The handler of the runtime class."),
        age_column(),
    ]
}

/// A row of [`runtime_class_columns`] for `o`.
pub fn runtime_class_cells(o: &Value) -> Vec<Value> {
    vec![
        name_cell(o),
        text(str_at(o, "/handler").unwrap_or_default().into()),
        age_cell(o),
    ]
}

/// RuntimeClasss.
static RUNTIME_CLASS: Strategy = Strategy {
    printer: Printer {
        columns: runtime_class_columns,
        cells: runtime_class_cells,
    },
    ..Strategy::GENERIC
};

/// The kinds this file holds, by name.
pub(super) static KINDS: &[(&str, &Strategy)] = &[
    ("Node", &NODE),
    ("Lease", &LEASE),
    ("RuntimeClass", &RUNTIME_CLASS),
];

//! Namespaces and what configures them: ConfigMaps, Secrets,
//! ServiceAccounts, ResourceQuotas, LimitRanges, PriorityClasses and Events.

use serde_json::{Value, json};

use super::print::{
    age_cell, age_column, age_of, col, created_at_cells, created_at_columns, int, name_cell,
    name_column, text,
};
use super::{Deletion, NameRule, Printer, Strategy};
use shoal_machinery::meta::{default_key, str_at};

/// Fills a Namespace's defaults.
fn default_namespace(obj: &mut Value) {
    if let Some(m) = obj.as_object_mut() {
        default_key(m, "status", json!({}));
    }
    if let Some(st) = obj.get_mut("status").and_then(Value::as_object_mut) {
        default_key(st, "phase", json!("Active"));
    }
}

/// The columns `kubectl get` shows for Namespaces.
pub fn namespace_columns() -> Vec<Value> {
    vec![
        name_column(),
        col("Status", "string", 0, "The status of the namespace"),
        age_column(),
    ]
}

/// A row of [`namespace_columns`] for `o`.
pub fn namespace_cells(o: &Value) -> Vec<Value> {
    vec![
        name_cell(o),
        text(str_at(o, "/status/phase").unwrap_or("Active").into()),
        age_cell(o),
    ]
}

/// Namespaces.
static NAMESPACE: Strategy = Strategy {
    deletion: Deletion::Contents {
        protected: &["default", "kube-system", "kube-public", "kube-node-lease"],
    },
    defaults: default_namespace,
    printer: Printer {
        columns: namespace_columns,
        cells: namespace_cells,
    },
    name_rule: NameRule::Label,
    field_labels: &["status.phase"],
    ..Strategy::GENERIC
};

/// The columns `kubectl get` shows for ConfigMaps.
pub fn config_map_columns() -> Vec<Value> {
    vec![
        name_column(),
        col("Data", "string", 0, "Number of data entries."),
        age_column(),
    ]
}

/// A row of [`config_map_columns`] for `o`.
pub fn config_map_cells(o: &Value) -> Vec<Value> {
    let name = name_cell(o);
    let age = age_cell(o);
    let n = o
        .get("data")
        .and_then(Value::as_object)
        .map_or(0, |m| m.len())
        + o.get("binaryData")
            .and_then(Value::as_object)
            .map_or(0, |m| m.len());
    vec![name, json!(n.to_string()), age]
}

/// ConfigMaps.
static CONFIG_MAP: Strategy = Strategy {
    printer: Printer {
        columns: config_map_columns,
        cells: config_map_cells,
    },
    ..Strategy::GENERIC
};

/// Fills a Secret's defaults, and moves `stringData` (write-only) into
/// `data`, encoded, its keys winning over `data`'s, as kube-apiserver does.
fn default_secret(obj: &mut Value) {
    use base64::Engine as _;
    let Some(m) = obj.as_object_mut() else {
        return;
    };
    default_key(m, "type", json!("Opaque"));
    if let Some(Value::Object(strings)) = m.remove("stringData") {
        let data = m.entry("data").or_insert_with(|| json!({}));
        if !data.is_object() {
            *data = json!({});
        }
        for (k, v) in strings {
            let text = match v {
                Value::String(s) => s,
                other => other.to_string(),
            };
            data[k.as_str()] = json!(base64::engine::general_purpose::STANDARD.encode(text));
        }
    }
}

/// The columns `kubectl get` shows for Secrets.
pub fn secret_columns() -> Vec<Value> {
    vec![
        name_column(),
        col("Type", "string", 0, "The type of the secret"),
        col("Data", "string", 0, "Number of data entries."),
        age_column(),
    ]
}

/// A row of [`secret_columns`] for `o`.
pub fn secret_cells(o: &Value) -> Vec<Value> {
    let n = o
        .get("data")
        .and_then(Value::as_object)
        .map_or(0, |m| m.len());
    vec![
        name_cell(o),
        text(str_at(o, "/type").unwrap_or("Opaque").into()),
        json!(n.to_string()),
        age_cell(o),
    ]
}

/// Secrets.
static SECRET: Strategy = Strategy {
    defaults: default_secret,
    printer: Printer {
        columns: secret_columns,
        cells: secret_cells,
    },
    field_labels: &["type"],
    ..Strategy::GENERIC
};

/// The columns `kubectl get` shows for ServiceAccounts.
pub fn service_account_columns() -> Vec<Value> {
    let name = name_column();
    let age = age_column();
    vec![name, col("Secrets", "string", 0, "Number of secrets."), age]
}

/// A row of [`service_account_columns`] for `o`.
pub fn service_account_cells(o: &Value) -> Vec<Value> {
    vec![
        name_cell(o),
        json!(
            o.get("secrets")
                .and_then(Value::as_array)
                .map_or(0, Vec::len)
                .to_string()
        ),
        age_cell(o),
    ]
}

/// ServiceAccounts.
static SERVICE_ACCOUNT: Strategy = Strategy {
    printer: Printer {
        columns: service_account_columns,
        cells: service_account_cells,
    },
    ..Strategy::GENERIC
};

/// The columns `kubectl get` shows for ResourceQuotas.
pub fn resource_quota_columns() -> Vec<Value> {
    vec![
        name_column(),
        age_column(),
        col(
            "Request",
            "string",
            0,
            "Request represents a minimum amount of cpu/memory that a container may consume.",
        ),
        col(
            "Limit",
            "string",
            0,
            "Limits control the maximum amount of cpu/memory that a container may use independent of contention on the node.",
        ),
    ]
}

/// A row of [`resource_quota_columns`] for `o`.
pub fn resource_quota_cells(o: &Value) -> Vec<Value> {
    let name = name_cell(o);
    let age = age_cell(o);
    // `used/hard` per resource, limits apart from the rest, sorted.
    let hard = o.pointer("/status/hard").and_then(Value::as_object);
    let (mut request, mut limit) = (Vec::new(), Vec::new());
    for (k, h) in hard.into_iter().flatten() {
        let u = o
            .pointer(&format!("/status/used/{}", k.replace('/', "~1")))
            .and_then(Value::as_str)
            .unwrap_or("0");
        let entry = format!("{k}: {u}/{}", h.as_str().unwrap_or_default());
        if k.starts_with("limits.") {
            limit.push(entry)
        } else {
            request.push(entry)
        }
    }
    vec![name, age, text(request.join(", ")), text(limit.join(", "))]
}

/// ResourceQuotas.
static RESOURCE_QUOTA: Strategy = Strategy {
    printer: Printer {
        columns: resource_quota_columns,
        cells: resource_quota_cells,
    },
    ..Strategy::GENERIC
};

/// LimitRanges.
static LIMIT_RANGE: Strategy = Strategy {
    printer: Printer {
        columns: created_at_columns,
        cells: created_at_cells,
    },
    ..Strategy::GENERIC
};

/// The columns `kubectl get` shows for PriorityClasss.
pub fn priority_class_columns() -> Vec<Value> {
    vec![
        name_column(),
        col("Value", "integer", 0, "The value of this priority class."),
        col(
            "Global-Default",
            "boolean",
            0,
            "Whether this is the default priority class.",
        ),
        age_column(),
        col(
            "PreemptionPolicy",
            "string",
            0,
            "The preemption policy of this priority class.",
        ),
    ]
}

/// A row of [`priority_class_columns`] for `o`.
pub fn priority_class_cells(o: &Value) -> Vec<Value> {
    vec![
        name_cell(o),
        json!(int(o, "/value")),
        json!(
            o.get("globalDefault")
                .and_then(Value::as_bool)
                .unwrap_or(false)
        ),
        age_cell(o),
        text(
            str_at(o, "/preemptionPolicy")
                .unwrap_or("PreemptLowerPriority")
                .into(),
        ),
    ]
}

/// PriorityClasss.
static PRIORITY_CLASS: Strategy = Strategy {
    printer: Printer {
        columns: priority_class_columns,
        cells: priority_class_cells,
    },
    ..Strategy::GENERIC
};

/// The columns `kubectl get` shows for Events.
pub fn event_columns() -> Vec<Value> {
    vec![
        col("Last Seen", "string", 0, "Time when last event was seen."),
        col("Type", "string", 0, "Type of this event."),
        col("Reason", "string", 0, "Reason of this event."),
        col("Object", "string", 0, "Object this event is about."),
        col("Message", "string", 0, "Message of this event."),
    ]
}

/// A row of [`event_columns`] for `o`.
pub fn event_cells(o: &Value) -> Vec<Value> {
    let _name = name_cell(o);
    let last = if o.get("lastTimestamp").is_some_and(|v| v.is_string()) {
        age_of(o, "/lastTimestamp")
    } else {
        age_of(o, "/eventTime")
    };
    let obj = format!(
        "{}/{}",
        str_at(o, "/involvedObject/kind")
            .unwrap_or_default()
            .to_lowercase(),
        str_at(o, "/involvedObject/name").unwrap_or_default()
    );
    vec![
        text(last),
        text(str_at(o, "/type").unwrap_or_default().into()),
        text(str_at(o, "/reason").unwrap_or_default().into()),
        text(obj),
        text(str_at(o, "/message").unwrap_or_default().into()),
    ]
}

/// Events.
static EVENT: Strategy = Strategy {
    printer: Printer {
        columns: event_columns,
        cells: event_cells,
    },
    field_labels: &[
        "involvedObject.kind",
        "involvedObject.namespace",
        "involvedObject.name",
        "involvedObject.uid",
        "involvedObject.apiVersion",
        "involvedObject.resourceVersion",
        "involvedObject.fieldPath",
        "reason",
        "reportingComponent",
        "type",
    ],
    ..Strategy::GENERIC
};

/// The kinds this file holds, by name.
pub(super) static KINDS: &[(&str, &Strategy)] = &[
    ("Namespace", &NAMESPACE),
    ("ConfigMap", &CONFIG_MAP),
    ("Secret", &SECRET),
    ("ServiceAccount", &SERVICE_ACCOUNT),
    ("ResourceQuota", &RESOURCE_QUOTA),
    ("LimitRange", &LIMIT_RANGE),
    ("PriorityClass", &PRIORITY_CLASS),
    ("Event", &EVENT),
];

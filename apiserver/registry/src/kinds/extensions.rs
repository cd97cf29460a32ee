//! The kinds that extend the API: CustomResourceDefinitions and
//! APIServices.

use serde_json::{Value, json};

use super::print::{
    age_cell, age_column, col, created_at_cells, created_at_columns, name_cell, name_column,
};
use super::{Allocation, Printer, Strategy};
use crate::custom;
use shoal_machinery::error::Causes;
use shoal_machinery::meta::{metadata, str_at};
use shoal_machinery::names::is_dns_label;

/// A new CustomResourceDefinition's status and what else it starts with.
fn prepare_custom_resource_definition(obj: &mut Value) {
    obj["status"] = json!({});
    let finalizers = metadata(obj)
        .entry("finalizers")
        .or_insert_with(|| json!([]));
    if let Some(f) = finalizers.as_array_mut()
        && !f.contains(&json!(custom::CLEANUP_FINALIZER))
    {
        f.push(json!(custom::CLEANUP_FINALIZER));
    }
}

/// Fills a CustomResourceDefinition's defaults.
fn default_custom_resource_definition(obj: &mut Value) {
    custom::default_definition(obj);
}

/// The checks of a CustomResourceDefinition.
fn validate_custom_resource_definition(obj: &Value, c: &mut Causes) {
    c.0.extend(custom::validate_definition(obj));
}

/// CustomResourceDefinitions.
static CUSTOM_RESOURCE_DEFINITION: Strategy = Strategy {
    allocation: Allocation::ServedKinds,
    prepare: prepare_custom_resource_definition,
    defaults: default_custom_resource_definition,
    validate: validate_custom_resource_definition,
    printer: Printer {
        columns: created_at_columns,
        cells: created_at_cells,
    },
    immutable: &["/spec/group", "/spec/names/plural", "/spec/scope"],
    ..Strategy::GENERIC
};

/// The checks of a APIService.
fn validate_api_service(obj: &Value, c: &mut Causes) {
    api_service(obj, shoal_machinery::meta::name(obj), c);
}

/// The columns `kubectl get` shows for APIServices.
pub fn api_service_columns() -> Vec<Value> {
    vec![
        name_column(),
        col(
            "Service",
            "string",
            0,
            "The reference to the service that hosts this API endpoint.",
        ),
        col(
            "Available",
            "string",
            0,
            "Whether this service is available.",
        ),
        age_column(),
    ]
}

/// A row of [`api_service_columns`] for `o`.
pub fn api_service_cells(o: &Value) -> Vec<Value> {
    let name = name_cell(o);
    let age = age_cell(o);
    let service = match (
        str_at(o, "/spec/service/namespace"),
        str_at(o, "/spec/service/name"),
    ) {
        (Some(ns), Some(n)) => format!("{ns}/{n}"),
        _ => "Local".to_string(),
    };
    let available = o
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .find(|c| str_at(c, "/type") == Some("Available"));
    let available = match available {
        None => "Unknown".to_string(),
        Some(c) if str_at(c, "/status") == Some("True") => "True".to_string(),
        Some(c) => format!(
            "{} ({})",
            str_at(c, "/status").unwrap_or("Unknown"),
            str_at(c, "/reason").unwrap_or_default()
        ),
    };
    vec![name, json!(service), json!(available), age]
}

/// APIServices.
static API_SERVICE: Strategy = Strategy {
    validate: validate_api_service,
    printer: Printer {
        columns: api_service_columns,
        cells: api_service_cells,
    },
    ..Strategy::GENERIC
};

/// An APIService as the aggregator checks it: named `<version>.<group>`,
/// priorities in range, and a CA bundle only with a Service.
fn api_service(obj: &Value, name: &str, c: &mut Causes) {
    let spec = obj.get("spec").unwrap_or(&Value::Null);
    let text = |k: &str| spec.get(k).and_then(Value::as_str).unwrap_or_default();
    let (group, version) = (text("group"), text("version"));
    if version.is_empty() {
        c.required("spec.version", "");
    } else if !is_dns_label(version) {
        c.invalid(
            "spec.version",
            &json!(version),
            "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-'",
        );
    }
    if !group.is_empty() && !version.is_empty() && name != format!("{version}.{group}") {
        c.invalid(
            "metadata.name",
            &json!(name),
            &format!("must be {version}.{group}"),
        );
    }
    for (field, max) in [("groupPriorityMinimum", 20000), ("versionPriority", 1000)] {
        match spec.get(field).and_then(Value::as_i64) {
            Some(n) if (1..=max).contains(&n) => {}
            Some(n) => c.invalid(
                format!("spec.{field}"),
                &json!(n),
                &format!("must be positive and less than {}", max + 1),
            ),
            None if !group.is_empty() => c.invalid(
                format!("spec.{field}"),
                &json!(0),
                &format!("must be positive and less than {}", max + 1),
            ),
            None => {}
        }
    }
    let service = spec.get("service").filter(|s| !s.is_null());
    let skip_tls = spec.get("insecureSkipTLSVerify") == Some(&json!(true));
    let ca = !text("caBundle").is_empty();
    match service {
        None if skip_tls => c.invalid(
            "spec.insecureSkipTLSVerify",
            &json!(true),
            "local APIServices may not have insecureSkipTLSVerify",
        ),
        None if ca => c.invalid(
            "spec.caBundle",
            &json!(text("caBundle")),
            "local APIServices may not have a caBundle",
        ),
        Some(_) if skip_tls && ca => c.invalid(
            "spec.insecureSkipTLSVerify",
            &json!(true),
            "may not be true if caBundle is present",
        ),
        Some(s) => {
            for k in ["namespace", "name"] {
                if s.get(k).and_then(Value::as_str).is_none_or(str::is_empty) {
                    c.required(format!("spec.service.{k}"), "");
                }
            }
        }
        None => {}
    }
}

/// The kinds this file holds, by name.
pub(super) static KINDS: &[(&str, &Strategy)] = &[
    ("CustomResourceDefinition", &CUSTOM_RESOURCE_DEFINITION),
    ("APIService", &API_SERVICE),
];

//! The kinds that configure admission: MutatingWebhookConfigurations and
//! ValidatingWebhookConfigurations, with Kubernetes' defaults and checks
//! for each webhook.

use serde_json::{Value, json};

use super::print::{age_cell, age_column, col, name_cell, name_column};
use super::{Printer, Strategy};
use shoal_machinery::error::Causes;

/// Fills each webhook's defaults, as kube-apiserver's defaulting does.
fn default_webhooks(obj: &mut Value, mutating: bool) {
    let Some(hooks) = obj.get_mut("webhooks").and_then(Value::as_array_mut) else {
        return;
    };
    for h in hooks.iter_mut().filter_map(Value::as_object_mut) {
        h.entry("failurePolicy").or_insert(json!("Fail"));
        h.entry("matchPolicy").or_insert(json!("Equivalent"));
        h.entry("namespaceSelector").or_insert(json!({}));
        h.entry("objectSelector").or_insert(json!({}));
        h.entry("timeoutSeconds").or_insert(json!(10));
        if mutating {
            h.entry("reinvocationPolicy").or_insert(json!("Never"));
        }
        if let Some(rules) = h.get_mut("rules").and_then(Value::as_array_mut) {
            for r in rules.iter_mut().filter_map(Value::as_object_mut) {
                r.entry("scope").or_insert(json!("*"));
            }
        }
        if let Some(svc) = h
            .get_mut("clientConfig")
            .and_then(|c| c.get_mut("service"))
            .and_then(Value::as_object_mut)
        {
            svc.entry("port").or_insert(json!(443));
        }
    }
}

fn default_mutating(obj: &mut Value) {
    default_webhooks(obj, true);
}

fn default_validating(obj: &mut Value) {
    default_webhooks(obj, false);
}

/// Each webhook as kube-apiserver checks it: a unique qualified name, where
/// to call (a URL or a Service, not both; `https` URLs without user or
/// fragment), its side effects, review versions, timeout and policies.
fn validate_webhooks(obj: &Value, c: &mut Causes) {
    let hooks = obj
        .get("webhooks")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut names = std::collections::BTreeSet::new();
    for (i, h) in hooks.iter().enumerate() {
        let at = |f: &str| format!("webhooks[{i}].{f}");
        let text = |k: &str| h.get(k).and_then(Value::as_str).unwrap_or_default();
        let name = text("name");
        if name.is_empty() {
            c.required(at("name"), "");
        } else if name.split('.').count() < 3 || !shoal_machinery::names::is_dns_subdomain(name) {
            c.invalid(
                at("name"),
                &json!(name),
                "should be a domain with at least three segments separated by dots",
            );
        } else if !names.insert(name.to_string()) {
            c.duplicate(at("name"), &json!(name));
        }
        match text("sideEffects") {
            "None" | "NoneOnDryRun" => {}
            "" => c.required(at("sideEffects"), ""),
            other => c.not_supported(at("sideEffects"), &json!(other), &["None", "NoneOnDryRun"]),
        }
        let versions = shoal_machinery::meta::strings(h, "admissionReviewVersions");
        if !versions.iter().any(|v| v == "v1" || v == "v1beta1") {
            c.required(
                at("admissionReviewVersions"),
                "must specify one of v1, v1beta1",
            );
        }
        match h.get("timeoutSeconds").and_then(Value::as_i64) {
            Some(t) if !(1..=30).contains(&t) => c.invalid(
                at("timeoutSeconds"),
                &json!(t),
                "the timeout value must be between 1 and 30 seconds",
            ),
            _ => {}
        }
        match text("failurePolicy") {
            "Fail" | "Ignore" => {}
            other => c.not_supported(at("failurePolicy"), &json!(other), &["Fail", "Ignore"]),
        }
        let config = h.get("clientConfig").unwrap_or(&Value::Null);
        let url = config.get("url").and_then(Value::as_str);
        let service = config.get("service").filter(|s| s.is_object());
        match (url, service) {
            (Some(_), Some(_)) | (None, None) => c.required(
                at("clientConfig"),
                "exactly one of url or service is required",
            ),
            (Some(u), None) => {
                let ok = u.strip_prefix("https://").is_some_and(|rest| {
                    let host = rest.split('/').next().unwrap_or_default();
                    !host.is_empty() && !host.contains('@') && !rest.contains('#')
                });
                if !ok {
                    c.invalid(
                        at("clientConfig.url"),
                        &json!(u),
                        "must be an https URL with a host and no user or fragment",
                    );
                }
            }
            (None, Some(s)) => {
                for k in ["namespace", "name"] {
                    if s.get(k).and_then(Value::as_str).is_none_or(str::is_empty) {
                        c.required(at(&format!("clientConfig.service.{k}")), "");
                    }
                }
            }
        }
    }
}

/// The columns `kubectl get` shows for webhook configurations.
fn webhook_columns() -> Vec<Value> {
    vec![
        name_column(),
        col("Webhooks", "integer", 0, "The number of webhooks."),
        age_column(),
    ]
}

/// A row of [`webhook_columns`] for `o`.
fn webhook_cells(o: &Value) -> Vec<Value> {
    let n = o
        .get("webhooks")
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    vec![name_cell(o), json!(n), age_cell(o)]
}

/// MutatingWebhookConfigurations.
static MUTATING: Strategy = Strategy {
    defaults: default_mutating,
    validate: validate_webhooks,
    printer: Printer {
        columns: webhook_columns,
        cells: webhook_cells,
    },
    ..Strategy::GENERIC
};

/// ValidatingWebhookConfigurations.
static VALIDATING: Strategy = Strategy {
    defaults: default_validating,
    validate: validate_webhooks,
    printer: Printer {
        columns: webhook_columns,
        cells: webhook_cells,
    },
    ..Strategy::GENERIC
};

/// The kinds this file holds, by name.
pub(super) static KINDS: &[(&str, &Strategy)] = &[
    ("MutatingWebhookConfiguration", &MUTATING),
    ("ValidatingWebhookConfiguration", &VALIDATING),
];

#[cfg(test)]
mod tests {
    use super::*;

    fn causes(obj: &Value) -> Vec<String> {
        let mut c = Causes::default();
        validate_webhooks(obj, &mut c);
        c.into_result(
            "admissionregistration.k8s.io",
            "ValidatingWebhookConfiguration",
            "x",
        )
        .err()
        .map(|e| e.message)
        .into_iter()
        .collect()
    }

    #[test]
    fn webhooks_get_defaults_and_are_checked() {
        let mut ok = json!({"webhooks": [{"name": "deny.example.com", "sideEffects": "None",
            "admissionReviewVersions": ["v1"], "clientConfig": {"url": "https://127.0.0.1:8443/x"},
            "rules": [{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods"]}]}]});
        default_validating(&mut ok);
        assert_eq!(ok["webhooks"][0]["failurePolicy"], "Fail");
        assert_eq!(ok["webhooks"][0]["timeoutSeconds"], 10);
        assert_eq!(ok["webhooks"][0]["rules"][0]["scope"], "*");
        assert!(causes(&ok).is_empty(), "{:?}", causes(&ok));
        for (field, value) in [
            ("name", json!("short.name")),
            ("sideEffects", json!("Some")),
            ("admissionReviewVersions", json!(["v2"])),
            ("timeoutSeconds", json!(31)),
            ("clientConfig", json!({"url": "http://127.0.0.1/x"})),
            ("clientConfig", json!({})),
        ] {
            let mut bad = ok.clone();
            bad["webhooks"][0][field] = value;
            assert!(
                !causes(&bad).is_empty(),
                "{field} {}",
                bad["webhooks"][0][field]
            );
        }
    }
}

//! Status conditions: setting one on an object and the patch that sets one.
//!
//! May import: `meta`.

use jiff::Timestamp;
use serde_json::{Value, json};

use crate::meta::{self, str_at};

/// The status patch that gives `object` the condition `ty` with `status`,
/// `reason` and `message`, or `None` if it has it. The transition time
/// moves only when the status does.
pub fn condition_patch(
    object: &Value,
    ty: &str,
    status: &str,
    reason: &str,
    message: &str,
    now: Timestamp,
) -> Option<Value> {
    let current = object
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .find(|c| str_at(c, "/type") == Some(ty));
    let same = |k: &str, v: &str| current.and_then(|c| str_at(c, k)) == Some(v);
    if same("/status", status) && same("/reason", reason) && same("/message", message) {
        return None;
    }
    let since = match current {
        Some(c) if same("/status", status) => c["lastTransitionTime"].clone(),
        _ => json!(now.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()),
    };
    let condition = json!({"type": ty, "status": status, "reason": reason,
        "message": message, "lastTransitionTime": since});
    Some(json!({"status": {"conditions": [condition]}}))
}

/// Sets a condition of an object's `status.conditions` (a pod's, with
/// `lastProbeTime`), stamped now.
pub fn set_condition(
    object: &mut Value,
    ty: &str,
    status: &str,
    reason: Option<&str>,
    message: Option<&str>,
) {
    let conds = object["status"]["conditions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let mut out: Vec<Value> = conds
        .into_iter()
        .filter(|c| c.get("type") != Some(&json!(ty)))
        .collect();
    let mut c = json!({"type": ty, "status": status, "lastProbeTime": null, "lastTransitionTime": meta::now()});
    if let Some(r) = reason {
        c["reason"] = json!(r);
    }
    if let Some(m) = message {
        c["message"] = json!(m);
    }
    out.push(c);
    object["status"]["conditions"] = json!(out);
}

//! events.k8s.io/v1 Events are core/v1 Events under other field names, as
//! Kubernetes converts them: both APIs read and write the same objects.

use serde_json::{Map, Value};

use super::View;

/// events.k8s.io/v1 name ↔ core/v1 name, for the fields that differ.
const RENAMED: [(&str, &str); 7] = [
    ("regarding", "involvedObject"),
    ("note", "message"),
    ("reportingController", "reportingComponent"),
    ("deprecatedSource", "source"),
    ("deprecatedFirstTimestamp", "firstTimestamp"),
    ("deprecatedLastTimestamp", "lastTimestamp"),
    ("deprecatedCount", "count"),
];

fn renamed(obj: &Map<String, Value>, api_version: &str, to_core: bool) -> Value {
    let mut out = Map::new();
    for (k, v) in obj {
        let name = RENAMED
            .iter()
            .find(|(new, old)| k == if to_core { new } else { old })
            .map_or(k.as_str(), |(new, old)| if to_core { old } else { new });
        out.insert(name.to_string(), v.clone());
    }
    out.insert("apiVersion".into(), Value::String(api_version.into()));
    Value::Object(out)
}

fn to_core(obj: Value) -> Value {
    match &obj {
        Value::Object(m) => renamed(m, "v1", true),
        _ => obj,
    }
}

fn from_core(obj: &Value) -> Value {
    match obj {
        Value::Object(m) => renamed(m, "events.k8s.io/v1", false),
        other => other.clone(),
    }
}

/// How events.k8s.io/v1 Events are stored: as core/v1 Events.
pub static VIEW: View = View {
    storage: "events",
    to_stored: to_core,
    from_stored: from_core,
};

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn events_convert_both_ways() {
        let v1 = json!({"apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": {"name": "e"},
            "regarding": {"kind": "Pod", "name": "p"}, "note": "pulled", "reason": "Pulled",
            "reportingController": "kubelet", "reportingInstance": "n1", "deprecatedCount": 2,
            "eventTime": "2026-01-01T00:00:00.000000Z", "action": "Pull", "type": "Normal"});
        let core = to_core(v1.clone());
        assert_eq!(core["apiVersion"], "v1");
        assert_eq!(core["involvedObject"]["name"], "p");
        assert_eq!(core["message"], "pulled");
        assert_eq!(core["reportingComponent"], "kubelet");
        assert_eq!(core["count"], 2);
        assert!(core.get("note").is_none() && core.get("regarding").is_none());
        assert_eq!(from_core(&core), v1);
    }
}

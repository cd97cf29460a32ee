//! The RuntimeClass admission plugin, as Kubernetes': a new pod that names
//! a `runtimeClassName` takes that RuntimeClass's `overhead` and its
//! `scheduling` (the node selector merged into the pod's, the tolerations
//! added), so it lands only on nodes that run that handler; a class that
//! does not exist, a node selector that contradicts the class's, or an
//! overhead other than the class's refuses the pod (403).

use serde_json::{Map, Value, json};

use super::{Admission, Attempt};
use crate::resources;
use shoal_machinery::error::{ApiError, Result};
use shoal_machinery::meta;
use shoal_store::Store;

/// The plugin, reading RuntimeClasses from the store.
pub struct RuntimeClasses(pub Store);

impl Admission for RuntimeClasses {
    fn admit(&self, a: Attempt<'_>) -> Result<()> {
        if !a.creates_pod() {
            return Ok(());
        }
        let name = meta::name(a.object).to_string();
        let forbidden = |why: String| {
            ApiError::forbidden(
                format!("pods {name:?} is forbidden: {why}"),
                Some(("", "pods", &name)),
            )
        };
        let Some(spec) = a.object.get_mut("spec").and_then(Value::as_object_mut) else {
            return Ok(());
        };
        let class = match spec.get("runtimeClassName").and_then(Value::as_str) {
            Some(c) if !c.is_empty() => c.to_string(),
            _ => {
                return match spec.get("overhead") {
                    Some(o) if !o.is_null() => Err(forbidden(
                        "pod rejected: Pod Overhead set without corresponding RuntimeClass defined Overhead".into(),
                    )),
                    _ => Ok(()),
                };
            }
        };
        let stored = resources::by_kind("node.k8s.io", "RuntimeClass")
            .and_then(|r| self.0.get(&r.key("", &class)));
        let Some(rc) = stored else {
            return Err(forbidden(format!(
                "pod rejected: RuntimeClass {class:?} not found"
            )));
        };
        apply(spec, &rc.value).map_err(forbidden)
    }
}

/// Gives the pod `spec` what RuntimeClass `rc` asks for, or says why not.
fn apply(spec: &mut Map<String, Value>, rc: &Value) -> std::result::Result<(), String> {
    // Overhead: the class's, or the pod's when it is the same.
    let wanted = rc.get("overhead").and_then(|o| o.get("podFixed"));
    match (spec.get("overhead").filter(|o| !o.is_null()), wanted) {
        (Some(have), Some(want)) if have != want => {
            return Err(
                "pod rejected: Pod's Overhead doesn't match RuntimeClass's defined Overhead".into(),
            );
        }
        (Some(_), None) => {
            return Err(
                "pod rejected: Pod Overhead set without corresponding RuntimeClass defined Overhead"
                    .into(),
            );
        }
        (None, Some(want)) => {
            spec.insert("overhead".into(), want.clone());
        }
        _ => {}
    }
    let Some(scheduling) = rc.get("scheduling") else {
        return Ok(());
    };
    if let Some(selector) = scheduling.get("nodeSelector").and_then(Value::as_object) {
        let own = spec.entry("nodeSelector").or_insert_with(|| json!({}));
        if own.is_null() {
            *own = json!({});
        }
        let Some(own) = own.as_object_mut() else {
            return Ok(());
        };
        for (key, value) in selector {
            match own.get(key) {
                Some(v) if v != value => {
                    return Err(format!(
                        "conflict: runtimeClass.scheduling.nodeSelector[{key}] = {}; pod.spec.nodeSelector[{key}] = {}",
                        value.as_str().unwrap_or_default(),
                        v.as_str().unwrap_or_default()
                    ));
                }
                Some(_) => {}
                None => {
                    own.insert(key.clone(), value.clone());
                }
            }
        }
    }
    if let Some(tolerations) = scheduling.get("tolerations").and_then(Value::as_array) {
        let own = spec.entry("tolerations").or_insert_with(|| json!([]));
        if own.is_null() {
            *own = json!([]);
        }
        if let Some(own) = own.as_array_mut() {
            for t in tolerations {
                if !own.contains(t) {
                    own.push(t.clone());
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    const WASM: &str = r#"{"handler": "shoal",
        "overhead": {"podFixed": {"memory": "1Mi"}},
        "scheduling": {"nodeSelector": {"shoal.dev/runtime": "wasm"},
            "tolerations": [{"key": "shoal.dev/wasm", "operator": "Exists", "effect": "NoSchedule"}]}}"#;

    #[test]
    fn a_pod_takes_its_runtime_class_overhead_and_scheduling() {
        let rc: Value = serde_json::from_str(WASM).unwrap();
        let mut s = spec(json!({"nodeSelector": {"disk": "ssd"},
            "tolerations": [{"key": "shoal.dev/wasm", "operator": "Exists", "effect": "NoSchedule"}]}));
        apply(&mut s, &rc).unwrap();
        assert_eq!(s["overhead"], json!({"memory": "1Mi"}));
        assert_eq!(
            s["nodeSelector"],
            json!({"disk": "ssd", "shoal.dev/runtime": "wasm"})
        );
        // A toleration the pod already has is not doubled.
        assert_eq!(s["tolerations"].as_array().unwrap().len(), 1);
        // A class with neither adds nothing.
        let mut s = spec(json!({}));
        apply(&mut s, &json!({"handler": "runc"})).unwrap();
        assert!(s.is_empty());
    }

    #[test]
    fn contradictions_refuse_the_pod_in_kubernetes_words() {
        let rc: Value = serde_json::from_str(WASM).unwrap();
        let mut s = spec(json!({"nodeSelector": {"shoal.dev/runtime": "oci"}}));
        assert_eq!(
            apply(&mut s, &rc).unwrap_err(),
            "conflict: runtimeClass.scheduling.nodeSelector[shoal.dev/runtime] = wasm; pod.spec.nodeSelector[shoal.dev/runtime] = oci"
        );
        let mut s = spec(json!({"overhead": {"memory": "2Mi"}}));
        assert!(
            apply(&mut s, &rc)
                .unwrap_err()
                .contains("doesn't match RuntimeClass's defined Overhead")
        );
        let mut s = spec(json!({"overhead": {"memory": "2Mi"}}));
        assert!(
            apply(&mut s, &json!({"handler": "x"}))
                .unwrap_err()
                .contains("without corresponding RuntimeClass defined Overhead")
        );
    }
}

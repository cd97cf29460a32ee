//! The DefaultTolerationSeconds admission plugin, as Kubernetes': a new
//! pod that does not tolerate the `NoExecute` taints of a node that is not
//! ready (`node.kubernetes.io/not-ready`) or unreachable
//! (`node.kubernetes.io/unreachable`) gets tolerations of them for a while
//! (300 s unless the server says otherwise), so a node lost for a moment
//! keeps its pods and one lost for longer has them evicted and replaced
//! elsewhere.

use serde_json::{Value, json};

use super::{Admission, Attempt};
use shoal_machinery::error::Result;

/// The taint of a node whose agent reports it not ready.
pub const NOT_READY: &str = "node.kubernetes.io/not-ready";
/// The taint of a node whose agent stopped reporting.
pub const UNREACHABLE: &str = "node.kubernetes.io/unreachable";

/// The plugin: how long the tolerations it adds last, in seconds
/// (kube-apiserver's `--default-not-ready-toleration-seconds` and
/// `--default-unreachable-toleration-seconds`).
#[derive(Debug, Clone, Copy)]
pub struct DefaultTolerationSeconds {
    /// For `node.kubernetes.io/not-ready`.
    pub not_ready: u64,
    /// For `node.kubernetes.io/unreachable`.
    pub unreachable: u64,
}

impl Default for DefaultTolerationSeconds {
    fn default() -> Self {
        Self {
            not_ready: 300,
            unreachable: 300,
        }
    }
}

/// Whether `toleration` tolerates a `NoExecute` taint with `key`.
fn covers(toleration: &Value, key: &str) -> bool {
    let field = |k: &str| toleration.get(k).and_then(Value::as_str).unwrap_or("");
    let effect = field("effect");
    (effect.is_empty() || effect == "NoExecute")
        && ((field("operator") == "Exists" && field("key").is_empty()) || field("key") == key)
}

impl Admission for DefaultTolerationSeconds {
    fn admit(&self, a: Attempt<'_>) -> Result<()> {
        if !a.creates_pod() {
            return Ok(());
        }
        let Some(spec) = a.object.get_mut("spec").and_then(Value::as_object_mut) else {
            return Ok(());
        };
        let tolerations = spec.entry("tolerations").or_insert_with(|| json!([]));
        if tolerations.is_null() {
            *tolerations = json!([]);
        }
        let Some(list) = tolerations.as_array_mut() else {
            return Ok(());
        };
        for (key, seconds) in [(NOT_READY, self.not_ready), (UNREACHABLE, self.unreachable)] {
            if !list.iter().any(|t| covers(t, key)) {
                list.push(
                    json!({"key": key, "operator": "Exists", "effect": "NoExecute",
                    "tolerationSeconds": seconds}),
                );
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admission::Operation;
    use crate::resources;

    fn admit(plugin: &DefaultTolerationSeconds, pod: &mut Value) {
        let r = resources::by_kind("", "Pod").unwrap();
        let mut warnings = Vec::new();
        plugin
            .admit(Attempt {
                operation: Operation::Create,
                resource: r,
                object: pod,
                old: None,
                user: None,
                dry_run: false,
                warnings: &mut warnings,
            })
            .unwrap();
    }

    #[test]
    fn pods_tolerate_lost_nodes_for_a_while_unless_they_say_otherwise() {
        let plugin = DefaultTolerationSeconds {
            not_ready: 300,
            unreachable: 60,
        };
        let mut pod = json!({"spec": {"containers": []}});
        admit(&plugin, &mut pod);
        assert_eq!(
            pod["spec"]["tolerations"],
            json!([
                {"key": NOT_READY, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
                {"key": UNREACHABLE, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 60},
            ])
        );
        // A pod's own toleration of a taint stands.
        let own = json!({"key": UNREACHABLE, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 5});
        let mut pod = json!({"spec": {"tolerations": [own.clone()]}});
        admit(&plugin, &mut pod);
        let list = pod["spec"]["tolerations"].as_array().unwrap();
        assert_eq!(list.len(), 2);
        assert_eq!(list[0], own);
        assert_eq!(list[1]["key"], NOT_READY);
        // Tolerating everything needs nothing more.
        let mut pod = json!({"spec": {"tolerations": [{"operator": "Exists"}]}});
        admit(&plugin, &mut pod);
        assert_eq!(pod["spec"]["tolerations"].as_array().unwrap().len(), 1);
    }
}

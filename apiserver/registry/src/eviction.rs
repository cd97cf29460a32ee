//! The `pods/eviction` subresource (`policy/v1` Eviction), as `kubectl
//! drain` uses it: a pod is deleted only if the PodDisruptionBudget that
//! covers it allows one more disruption, which the eviction takes from the
//! budget's status (`disruptionsAllowed`, `disruptedPods`) in the same
//! write, so two evictions never spend one disruption twice. The
//! disruption controller keeps the budgets' figures.

use serde_json::{Value, json};

use crate::objects::{DeleteOpts, Objects};
use crate::resources;
use shoal_machinery::error::{ApiError, Result};
use shoal_machinery::meta::{self, str_at};
use shoal_machinery::selectors::{FieldSelector, LabelSelector};

/// What Kubernetes answers when a budget refuses an eviction.
const REFUSED: &str = "Cannot evict pod as it would violate the pod's disruption budget.";

fn refused(cause: String) -> ApiError {
    let mut e = ApiError::with_code(429, REFUSED);
    e.details = Some(json!({"causes": [{"reason": "DisruptionBudget", "message": cause}]}));
    e
}

fn int(v: &Value, pointer: &str) -> i64 {
    v.pointer(pointer).and_then(Value::as_i64).unwrap_or(0)
}

/// Whether a budget's selector selects `pod` (a budget without a selector
/// selects none; an empty one, every pod of its namespace).
fn selects(pdb: &Value, pod: &Value) -> bool {
    pdb.pointer("/spec/selector")
        .filter(|s| s.is_object())
        .is_some_and(|s| LabelSelector::from_object(s).matches_object(pod))
}

fn ready(pod: &Value) -> bool {
    pod.pointer("/status/conditions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .any(|c| str_at(c, "/type") == Some("Ready") && str_at(c, "/status") == Some("True"))
}

/// Evicts the pod `ns/name`, deleting it with `opts` if its budget allows.
pub async fn evict(
    objects: &Objects,
    ns: &str,
    name: &str,
    opts: DeleteOpts,
    now: &str,
) -> Result<()> {
    let pods = resources::by_kind("", "Pod").expect("pods are served");
    let budgets = resources::by_kind("policy", "PodDisruptionBudget").expect("budgets are served");
    for _ in 0..5 {
        let pod = objects.get(pods, ns, name)?;
        let pod = &*pod.value;
        // A pod that is going or gone costs no budget.
        let done = matches!(str_at(pod, "/status/phase"), Some("Succeeded" | "Failed"));
        if done || pod.pointer("/metadata/deletionTimestamp").is_some() {
            objects.delete(pods, ns, name, opts).await?;
            return Ok(());
        }
        let (all, _) = objects.list(
            budgets,
            Some(ns),
            &LabelSelector::default(),
            &FieldSelector::default(),
        );
        let covering: Vec<_> = all.iter().filter(|b| selects(&b.value, pod)).collect();
        let budget = match covering.as_slice() {
            [] => {
                objects.delete(pods, ns, name, opts).await?;
                return Ok(());
            }
            [one] => *one,
            _ => {
                return Err(ApiError::internal_shown(
                    "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support.",
                ));
            }
        };
        let pdb = &*budget.value;
        let pdb_name = meta::name(pdb);
        if int(pdb, "/status/observedGeneration") < int(pdb, "/metadata/generation") {
            return Err(refused(format!(
                "The disruption budget {pdb_name} is still being processed by the server."
            )));
        }
        let (healthy, desired) = (
            int(pdb, "/status/currentHealthy"),
            int(pdb, "/status/desiredHealthy"),
        );
        // An unready pod may go while the budget is met (or always, as the
        // budget says): it is no disruption of a healthy one.
        let always = str_at(pdb, "/spec/unhealthyPodEvictionPolicy") == Some("AlwaysAllow");
        if !ready(pod) && (always || healthy >= desired) {
            objects.delete(pods, ns, name, opts).await?;
            return Ok(());
        }
        let allowed = int(pdb, "/status/disruptionsAllowed");
        if allowed <= 0 {
            return Err(refused(format!(
                "The disruption budget {pdb_name} needs {desired} healthy pods and has {healthy} currently"
            )));
        }
        if opts.dry_run {
            return objects.delete(pods, ns, name, opts).await.map(|_| ());
        }
        let mut spent = pdb.clone();
        spent["status"]["disruptionsAllowed"] = json!(allowed - 1);
        spent["status"]["disruptedPods"][name] = json!(now);
        match objects.replace_at(budgets, spent, budget.revision).await {
            Ok(_) => {
                objects.delete(pods, ns, name, opts).await?;
                return Ok(());
            }
            // Another eviction spent from the budget first: look again.
            Err(e) if e.code == 409 => continue,
            Err(e) => return Err(e),
        }
    }
    Err(ApiError::with_code(
        429,
        "too many evictions at once; try again",
    ))
}

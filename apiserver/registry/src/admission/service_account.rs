//! The ServiceAccount admission plugin, as Kubernetes': a new pod runs as
//! its service account (`default` unless it names one) and, unless the pod
//! or the account turns `automountServiceAccountToken` off, gets the
//! projected `kube-api-access-*` volume (a token bound to the pod, the
//! cluster CA, the namespace) mounted read-only at
//! `/var/run/secrets/kubernetes.io/serviceaccount` in every container.

use serde_json::{Value, json};

use super::{Admission, Attempt};
use crate::resources;
use shoal_machinery::error::Result;
use shoal_machinery::meta;
use shoal_store::Store;

/// Where a pod's service-account credentials are mounted.
pub const MOUNT_PATH: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// How long a projected token lives (kube-apiserver's figure: an hour and
/// a few seconds, so it is told apart from a requested hour).
const TOKEN_SECONDS: i64 = 3607;

/// The plugin, reading service accounts from the store.
pub struct ServiceAccounts(pub Store);

impl Admission for ServiceAccounts {
    fn admit(&self, a: Attempt<'_>) -> Result<()> {
        if !a.creates_pod() {
            return Ok(());
        }
        let ns = meta::namespace(a.object).to_string();
        let Some(spec) = a.object.get_mut("spec").and_then(Value::as_object_mut) else {
            return Ok(());
        };
        let account = ["serviceAccountName", "serviceAccount"]
            .iter()
            .find_map(|k| {
                spec.get(*k)
                    .and_then(Value::as_str)
                    .filter(|s| !s.is_empty())
            })
            .unwrap_or("default")
            .to_string();
        spec.insert("serviceAccountName".into(), json!(account));
        spec.insert("serviceAccount".into(), json!(account));
        let from_account = resources::by_kind("", "ServiceAccount")
            .and_then(|r| self.0.get(&r.key(&ns, &account)))
            .and_then(|s| {
                s.value
                    .get("automountServiceAccountToken")
                    .and_then(Value::as_bool)
            });
        let mount = spec
            .get("automountServiceAccountToken")
            .and_then(Value::as_bool)
            .or(from_account)
            .unwrap_or(true);
        if !mount || mounted(spec) {
            return Ok(());
        }
        let name = format!("kube-api-access-{}", meta::random_suffix(5));
        let volume = json!({"name": name, "projected": {"defaultMode": 420, "sources": [
            {"serviceAccountToken": {"expirationSeconds": TOKEN_SECONDS, "path": "token"}},
            {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
            {"downwardAPI": {"items": [{"path": "namespace",
                "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}},
        ]}});
        match spec.get_mut("volumes").and_then(Value::as_array_mut) {
            Some(v) => v.push(volume),
            None => {
                spec.insert("volumes".into(), json!([volume]));
            }
        }
        for list in ["containers", "initContainers"] {
            for c in spec
                .get_mut(list)
                .and_then(Value::as_array_mut)
                .map(Vec::as_mut_slice)
                .unwrap_or_default()
            {
                let m = json!({"name": name, "mountPath": MOUNT_PATH, "readOnly": true});
                match c.get_mut("volumeMounts").and_then(Value::as_array_mut) {
                    Some(ms) => ms.push(m),
                    None => c["volumeMounts"] = json!([m]),
                }
            }
        }
        Ok(())
    }
}

/// Whether a container already mounts something at the credentials' path.
fn mounted(spec: &serde_json::Map<String, Value>) -> bool {
    ["containers", "initContainers"].iter().any(|list| {
        spec.get(*list)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .flat_map(|c| {
                c.get("volumeMounts")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
            })
            .any(|m| m.get("mountPath").and_then(Value::as_str) == Some(MOUNT_PATH))
    })
}

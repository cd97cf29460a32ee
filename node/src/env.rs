//! A container's environment from its pod spec: `env` (with `value` and
//! `valueFrom`) and `envFrom`, resolved against ConfigMaps, Secrets and the
//! pod itself, as the kubelet does.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::Api;
use serde_json::Value;

/// Why an environment could not be built; shown as the container's
/// `CreateContainerConfigError` message.
pub(crate) type ConfigError = String;

struct Sources {
    client: kube::Client,
    namespace: String,
    config_maps: BTreeMap<String, Option<BTreeMap<String, String>>>,
    secrets: BTreeMap<String, Option<BTreeMap<String, String>>>,
}

impl Sources {
    async fn config_map(
        &mut self,
        name: &str,
    ) -> Result<Option<&BTreeMap<String, String>>, ConfigError> {
        if !self.config_maps.contains_key(name) {
            let api: Api<ConfigMap> = Api::namespaced(self.client.clone(), &self.namespace);
            let data = api
                .get_opt(name)
                .await
                .map_err(|e| format!("reading configmap {name:?}: {e}"))?
                .map(|cm| {
                    let mut d = cm.data.unwrap_or_default();
                    for (k, v) in cm.binary_data.unwrap_or_default() {
                        d.insert(k, String::from_utf8_lossy(&v.0).into_owned());
                    }
                    d
                });
            self.config_maps.insert(name.to_string(), data);
        }
        Ok(self.config_maps.get(name).and_then(Option::as_ref))
    }

    async fn secret(
        &mut self,
        name: &str,
    ) -> Result<Option<&BTreeMap<String, String>>, ConfigError> {
        if !self.secrets.contains_key(name) {
            let api: Api<Secret> = Api::namespaced(self.client.clone(), &self.namespace);
            let data = api
                .get_opt(name)
                .await
                .map_err(|e| format!("reading secret {name:?}: {e}"))?
                .map(|s| {
                    let mut d: BTreeMap<String, String> = s
                        .data
                        .unwrap_or_default()
                        .into_iter()
                        .map(|(k, v)| (k, String::from_utf8_lossy(&v.0).into_owned()))
                        .collect();
                    d.extend(s.string_data.unwrap_or_default());
                    d
                });
            self.secrets.insert(name.to_string(), data);
        }
        Ok(self.secrets.get(name).and_then(Option::as_ref))
    }
}

pub(crate) fn field_ref(pod: &Value, path: &str) -> Result<String, ConfigError> {
    let s = |p: &str| {
        pod.pointer(p)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let bracket = |prefix: &str, map: &str| -> Option<String> {
        let key = path.strip_prefix(prefix)?.strip_suffix("']")?;
        Some(
            pod.pointer(&format!("/metadata/{map}"))
                .and_then(|m| m.get(key))
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
        )
    };
    Ok(match path {
        "metadata.name" => s("/metadata/name"),
        "metadata.namespace" => s("/metadata/namespace"),
        "metadata.uid" => s("/metadata/uid"),
        "spec.nodeName" => s("/spec/nodeName"),
        "spec.serviceAccountName" => s("/spec/serviceAccountName"),
        "status.hostIP" => s("/status/hostIP"),
        "status.podIP" => s("/status/podIP"),
        _ => bracket("metadata.labels['", "labels")
            .or_else(|| bracket("metadata.annotations['", "annotations"))
            .ok_or_else(|| format!("unsupported fieldRef path {path:?}"))?,
    })
}

fn resource_field_ref(container: &Value, r: &Value) -> Result<String, ConfigError> {
    use shoal_quantity::{bytes, millicores};
    let resource = r
        .get("resource")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let (section, name) = resource
        .split_once('.')
        .filter(|(s, _)| matches!(*s, "limits" | "requests"))
        .ok_or_else(|| format!("unsupported resourceFieldRef {resource:?}"))?;
    let value = container
        .pointer(&format!("/resources/{section}/{name}"))
        .and_then(Value::as_str);
    let divisor = r.get("divisor").and_then(Value::as_str).unwrap_or("1");
    // As the kubelet does: the value divided by the divisor, rounded up; a
    // limit that is not set is the node's allocatable amount.
    let (value, divisor) = match name {
        "cpu" => (
            value.map_or_else(
                || {
                    u64::try_from(std::thread::available_parallelism().map_or(1, |n| n.get()))
                        .unwrap_or(1)
                        * 1000
                },
                |v| millicores(v).map_or(0, u64::from),
            ),
            millicores(divisor).map_or(1000, u64::from),
        ),
        "memory" | "ephemeral-storage" => (
            value.map_or_else(
                || crate::agent::memory_kib().map_or(0, |kib| kib * 1024),
                |v| bytes(v).unwrap_or(0),
            ),
            bytes(divisor).unwrap_or(1),
        ),
        _ => return Err(format!("unsupported resourceFieldRef {resource:?}")),
    };
    Ok(value.div_ceil(divisor.max(1)).to_string())
}

/// The environment of `container` in `pod` (both as JSON), in the order
/// Kubernetes builds it: `envFrom` first, then `env`, later entries winning.
/// `text` with each `$(NAME)` of a variable in `vars` replaced by its
/// value, as Kubernetes expands env values, commands and args: `$$` is a
/// literal `$`, and a reference to an unknown variable stays as written.
pub(crate) fn expand(text: &str, vars: &[(String, String)]) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(inner) = after.strip_prefix('(')
            && let Some(end) = inner.find(')')
        {
            let name = &inner[..end];
            match vars.iter().rev().find(|(k, _)| k == name) {
                Some((_, v)) => out.push_str(v),
                None => {
                    out.push_str("$(");
                    out.push_str(name);
                    out.push(')');
                }
            }
            rest = &inner[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

pub(crate) async fn resolve(
    client: &kube::Client,
    pod: &Value,
    container: &Value,
) -> Result<Vec<(String, String)>, ConfigError> {
    let mut src = Sources {
        client: client.clone(),
        namespace: pod
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or("default")
            .to_string(),
        config_maps: BTreeMap::new(),
        secrets: BTreeMap::new(),
    };
    let mut env: Vec<(String, String)> = api_env(client).await;
    let set = |env: &mut Vec<(String, String)>, k: String, v: String| {
        env.retain(|(n, _)| *n != k);
        env.push((k, v));
    };
    for from in container
        .get("envFrom")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
    {
        let prefix = from
            .get("prefix")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        for (kind, field) in [("configmap", "configMapRef"), ("secret", "secretRef")] {
            let Some(r) = from.get(field) else { continue };
            let name = r.get("name").and_then(Value::as_str).unwrap_or_default();
            let optional = r.get("optional").and_then(Value::as_bool).unwrap_or(false);
            let data = if kind == "configmap" {
                src.config_map(name).await?
            } else {
                src.secret(name).await?
            };
            match data {
                Some(d) => {
                    for (k, v) in d.clone() {
                        set(&mut env, format!("{prefix}{k}"), v);
                    }
                }
                None if optional => {}
                None => return Err(format!("{kind} {name:?} not found")),
            }
        }
    }
    for e in container
        .get("env")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
    {
        let Some(name) = e.get("name").and_then(Value::as_str).map(String::from) else {
            continue;
        };
        let value = match e.get("valueFrom") {
            None => expand(
                e.get("value").and_then(Value::as_str).unwrap_or_default(),
                &env,
            ),
            Some(from) => {
                if let Some(f) = from.pointer("/fieldRef/fieldPath").and_then(Value::as_str) {
                    field_ref(pod, f)?
                } else if let Some(r) = from.get("resourceFieldRef") {
                    resource_field_ref(container, r)?
                } else {
                    let (kind, r) = match (from.get("configMapKeyRef"), from.get("secretKeyRef")) {
                        (Some(r), _) => ("configmap", r),
                        (_, Some(r)) => ("secret", r),
                        _ => return Err(format!("env {name}: unsupported valueFrom")),
                    };
                    let source = r.get("name").and_then(Value::as_str).unwrap_or_default();
                    let key = r.get("key").and_then(Value::as_str).unwrap_or_default();
                    let optional = r.get("optional").and_then(Value::as_bool).unwrap_or(false);
                    let data = if kind == "configmap" {
                        src.config_map(source).await?
                    } else {
                        src.secret(source).await?
                    };
                    match data.map(|d| d.get(key).cloned()) {
                        Some(Some(v)) => v,
                        _ if optional => continue,
                        None => return Err(format!("{kind} {source:?} not found")),
                        Some(None) => {
                            return Err(format!(
                                "couldn't find key {key} in {kind} {}/{source}",
                                src.namespace
                            ));
                        }
                    }
                }
            }
        };
        set(&mut env, name, value);
    }
    Ok(env)
}

/// How long the API Service's address is remembered.
const API_ENV_TTL: std::time::Duration = std::time::Duration::from_secs(60);

/// The variables the kubelet gives every container to find the API: from
/// the `default/kubernetes` Service (remembered for a minute; none while
/// it cannot be read).
async fn api_env(client: &kube::Client) -> Vec<(String, String)> {
    type Cached = Option<(std::time::Instant, Vec<(String, String)>)>;
    static CACHE: std::sync::Mutex<Cached> = std::sync::Mutex::new(None);
    if let Some((at, env)) = CACHE.lock().expect("api env lock").as_ref()
        && at.elapsed() < API_ENV_TTL
    {
        return env.clone();
    }
    let api: kube::Api<k8s_openapi::api::core::v1::Service> =
        kube::Api::namespaced(client.clone(), "default");
    let Ok(Some(svc)) = api.get_opt("kubernetes").await else {
        return Vec::new();
    };
    let spec = svc.spec.unwrap_or_default();
    let (Some(ip), Some(port)) = (
        spec.cluster_ip.filter(|ip| !ip.is_empty() && ip != "None"),
        spec.ports.and_then(|p| p.first().map(|p| p.port)),
    ) else {
        return Vec::new();
    };
    let env = service_env(&ip, port);
    *CACHE.lock().expect("api env lock") = Some((std::time::Instant::now(), env.clone()));
    env
}

/// `KUBERNETES_SERVICE_HOST` and the rest, as the kubelet writes them.
fn service_env(ip: &str, port: i32) -> Vec<(String, String)> {
    let url = format!("tcp://{ip}:{port}");
    [
        ("KUBERNETES_SERVICE_HOST", ip.to_string()),
        ("KUBERNETES_SERVICE_PORT", port.to_string()),
        ("KUBERNETES_SERVICE_PORT_HTTPS", port.to_string()),
        ("KUBERNETES_PORT", url.clone()),
        (&format!("KUBERNETES_PORT_{port}_TCP"), url),
        (&format!("KUBERNETES_PORT_{port}_TCP_PROTO"), "tcp".into()),
        (
            &format!("KUBERNETES_PORT_{port}_TCP_PORT"),
            port.to_string(),
        ),
        (&format!("KUBERNETES_PORT_{port}_TCP_ADDR"), ip.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_expand_as_kubernetes_expands_them() {
        let vars = vec![
            ("POD_IP".to_string(), "10.244.0.5".to_string()),
            ("PORT".to_string(), "53".to_string()),
        ];
        assert_eq!(expand("$(POD_IP):$(PORT)", &vars), "10.244.0.5:53");
        assert_eq!(
            expand("$$(POD_IP) $(NOPE) $( $", &vars),
            "$(POD_IP) $(NOPE) $( $"
        );
        assert_eq!(expand("cost: $5", &vars), "cost: $5");
    }
}

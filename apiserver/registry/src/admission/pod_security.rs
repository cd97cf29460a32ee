//! The PodSecurity admission plugin, as Kubernetes': a namespace labelled
//! `pod-security.kubernetes.io/enforce: baseline` (or `restricted`) admits
//! only pods that meet that Pod Security Standard; `privileged` (or no
//! label) admits everything. The checks are the standards' (host
//! namespaces, privileged containers, capabilities, hostPath volumes, host
//! ports, seccomp, sysctls; then, for `restricted`, volume types, privilege
//! escalation, running as non-root, dropped capabilities), and the refusal
//! lists each violation as kube-apiserver does.

use serde_json::Value;

use super::{Admission, Attempt, Operation};
use crate::resources;
use shoal_machinery::error::{ApiError, Result};
use shoal_machinery::meta;
use shoal_store::Store;

/// The label that sets a namespace's enforced level.
pub const ENFORCE: &str = "pod-security.kubernetes.io/enforce";
/// The label that sets the level a namespace warns about.
pub const WARN: &str = "pod-security.kubernetes.io/warn";

/// Where a kind keeps the pod spec it makes pods from.
fn template_spec<'a>(group: &str, kind: &str, obj: &'a Value) -> Option<&'a Value> {
    match (group, kind) {
        ("apps", "Deployment" | "ReplicaSet" | "StatefulSet" | "DaemonSet")
        | ("batch", "Job")
        | ("", "ReplicationController" | "PodTemplate") => obj
            .pointer("/spec/template/spec")
            .or_else(|| obj.pointer("/template/spec")),
        ("batch", "CronJob") => obj.pointer("/spec/jobTemplate/spec/template/spec"),
        _ => None,
    }
}

/// A Pod Security Standard level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Anything.
    Privileged,
    /// No known privilege escalations.
    Baseline,
    /// Hardened.
    Restricted,
}

impl Level {
    fn parse(s: &str) -> Option<Self> {
        match s {
            "privileged" => Some(Level::Privileged),
            "baseline" => Some(Level::Baseline),
            "restricted" => Some(Level::Restricted),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Level::Privileged => "privileged",
            Level::Baseline => "baseline",
            Level::Restricted => "restricted",
        }
    }
}

/// Capabilities `baseline` lets a container add.
const BASELINE_CAPS: &[&str] = &[
    "AUDIT_WRITE",
    "CHOWN",
    "DAC_OVERRIDE",
    "FOWNER",
    "FSETID",
    "KILL",
    "MKNOD",
    "NET_BIND_SERVICE",
    "SETFCAP",
    "SETGID",
    "SETPCAP",
    "SETUID",
    "SYS_CHROOT",
];

/// Sysctls `baseline` allows.
const SAFE_SYSCTLS: &[&str] = &[
    "kernel.shm_rmid_forced",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.tcp_syncookies",
    "net.ipv4.ping_group_range",
    "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
];

/// Volume sources `restricted` allows.
const RESTRICTED_VOLUMES: &[&str] = &[
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
    "image",
];

fn containers(spec: &Value) -> impl Iterator<Item = &Value> {
    ["initContainers", "containers", "ephemeralContainers"]
        .into_iter()
        .flat_map(move |k| spec.get(k).and_then(Value::as_array).into_iter().flatten())
}

fn name_of(c: &Value) -> &str {
    c.get("name").and_then(Value::as_str).unwrap_or_default()
}

fn quoted(names: &[&str]) -> String {
    names
        .iter()
        .map(|n| format!("\"{n}\""))
        .collect::<Vec<_>>()
        .join(", ")
}

/// What keeps `spec` from meeting `level`, in Kubernetes' words.
pub fn violations(spec: &Value, level: Level) -> Vec<String> {
    let mut out = Vec::new();
    if level == Level::Privileged {
        return out;
    }
    let flag = |k: &str| spec.get(k).and_then(Value::as_bool) == Some(true);
    let hosts: Vec<String> = ["hostNetwork", "hostPID", "hostIPC"]
        .iter()
        .filter(|k| flag(k))
        .map(|k| format!("{k}=true"))
        .collect();
    if !hosts.is_empty() {
        out.push(format!("host namespaces ({})", hosts.join(", ")));
    }
    let privileged: Vec<&str> = containers(spec)
        .filter(|c| {
            c.pointer("/securityContext/privileged")
                .and_then(Value::as_bool)
                == Some(true)
        })
        .map(name_of)
        .collect();
    if !privileged.is_empty() {
        out.push(format!(
            "privileged (containers {} must not set securityContext.privileged=true)",
            quoted(&privileged)
        ));
    }
    let mut added = Vec::new();
    for c in containers(spec) {
        for cap in c
            .pointer("/securityContext/capabilities/add")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
        {
            let allowed = match level {
                Level::Restricted => cap == "NET_BIND_SERVICE",
                _ => BASELINE_CAPS.contains(&cap),
            };
            if !allowed && !added.contains(&cap) {
                added.push(cap);
            }
        }
    }
    if !added.is_empty() {
        out.push(format!(
            "non-default capabilities (must not include {} in securityContext.capabilities.add)",
            quoted(&added)
        ));
    }
    let volumes: Vec<&Value> = spec
        .get("volumes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .collect();
    let host_paths: Vec<&str> = volumes
        .iter()
        .filter(|v| v.get("hostPath").is_some())
        .map(|v| name_of(v))
        .collect();
    if !host_paths.is_empty() {
        out.push(format!(
            "hostPath volumes ({} {})",
            if host_paths.len() == 1 {
                "volume"
            } else {
                "volumes"
            },
            quoted(&host_paths)
        ));
    }
    let ports: Vec<String> = containers(spec)
        .flat_map(|c| {
            c.get("ports")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
        })
        .filter_map(|p| {
            p.get("hostPort")
                .and_then(Value::as_i64)
                .filter(|n| *n != 0)
        })
        .map(|n| n.to_string())
        .collect();
    if !ports.is_empty() {
        out.push(format!("hostPort (ports {})", ports.join(", ")));
    }
    let unconfined = |sc: Option<&Value>| {
        sc.and_then(|s| s.pointer("/seccompProfile/type"))
            .and_then(Value::as_str)
            == Some("Unconfined")
    };
    if unconfined(spec.get("securityContext"))
        || containers(spec).any(|c| unconfined(c.get("securityContext")))
    {
        out.push("seccompProfile (must not set type to \"Unconfined\")".into());
    }
    let sysctls: Vec<&str> = spec
        .pointer("/securityContext/sysctls")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|s| s.get("name").and_then(Value::as_str))
        .filter(|n| !SAFE_SYSCTLS.contains(n))
        .collect();
    if !sysctls.is_empty() {
        out.push(format!("forbidden sysctls ({})", sysctls.join(", ")));
    }
    if level < Level::Restricted {
        return out;
    }
    let restricted_volumes: Vec<String> = volumes
        .iter()
        .filter(|v| !RESTRICTED_VOLUMES.iter().any(|k| v.get(*k).is_some()))
        .map(|v| format!("\"{}\"", name_of(v)))
        .collect();
    if !restricted_volumes.is_empty() {
        out.push(format!(
            "restricted volume types (volumes {} use restricted volume types)",
            restricted_volumes.join(", ")
        ));
    }
    let pod_sc = spec.get("securityContext");
    let escalating: Vec<&str> = containers(spec)
        .filter(|c| {
            c.pointer("/securityContext/allowPrivilegeEscalation")
                .and_then(Value::as_bool)
                != Some(false)
        })
        .map(name_of)
        .collect();
    if !escalating.is_empty() {
        out.push(format!("allowPrivilegeEscalation != false (containers {} must set securityContext.allowPrivilegeEscalation=false)", quoted(&escalating)));
    }
    let not_dropping: Vec<&str> = containers(spec)
        .filter(|c| {
            !c.pointer("/securityContext/capabilities/drop")
                .and_then(Value::as_array)
                .is_some_and(|d| d.iter().any(|x| x == "ALL"))
        })
        .map(name_of)
        .collect();
    if !not_dropping.is_empty() {
        out.push(format!("unrestricted capabilities (containers {} must set securityContext.capabilities.drop=[\"ALL\"])", quoted(&not_dropping)));
    }
    let pod_non_root = pod_sc
        .and_then(|s| s.get("runAsNonRoot"))
        .and_then(Value::as_bool);
    let as_root: Vec<&str> = containers(spec)
        .filter(|c| {
            c.pointer("/securityContext/runAsNonRoot")
                .and_then(Value::as_bool)
                .or(pod_non_root)
                != Some(true)
        })
        .map(name_of)
        .collect();
    if !as_root.is_empty() {
        out.push(format!("runAsNonRoot != true (pod or containers {} must set securityContext.runAsNonRoot=true)", quoted(&as_root)));
    }
    let profile_ok = |sc: Option<&Value>| {
        matches!(
            sc.and_then(|s| s.pointer("/seccompProfile/type"))
                .and_then(Value::as_str),
            Some("RuntimeDefault" | "Localhost")
        )
    };
    let pod_profile = profile_ok(pod_sc);
    let no_profile: Vec<&str> = containers(spec)
        .filter(|c| !pod_profile && !profile_ok(c.get("securityContext")))
        .map(name_of)
        .collect();
    if !no_profile.is_empty() {
        out.push(format!("seccompProfile (pod or containers {} must set securityContext.seccompProfile.type to \"RuntimeDefault\" or \"Localhost\")", quoted(&no_profile)));
    }
    out
}

/// The plugin, reading namespaces' labels from the store.
pub struct PodSecurity(pub Store);

impl Admission for PodSecurity {
    fn admit(&self, a: Attempt<'_>) -> Result<()> {
        let pod = a.resource.group.is_empty() && a.resource.kind == "Pod";
        let spec = if pod {
            a.object.get("spec")
        } else {
            template_spec(a.resource.group, a.resource.kind, a.object)
        };
        let Some(spec) = spec else {
            return Ok(());
        };
        if a.operation != Operation::Create
            && (pod
                || a.old
                    .and_then(|o| template_spec(a.resource.group, a.resource.kind, o))
                    == Some(spec))
        {
            return Ok(());
        }
        let ns = meta::namespace(a.object);
        let labels = resources::by_kind("", "Namespace")
            .and_then(|r| self.0.get(&r.key("", ns)))
            .and_then(|n| n.value.pointer("/metadata/labels").cloned());
        let level = |label: &str| {
            labels
                .as_ref()
                .and_then(|l| l.get(label))
                .and_then(Value::as_str)
                .and_then(Level::parse)
                .unwrap_or(Level::Privileged)
        };
        let (enforce, warn) = (level(ENFORCE), level(WARN));
        // Workloads are warned about what their pods would be refused for,
        // as kube-apiserver does; pods are refused.
        for (l, refuse) in [(enforce, pod), (warn, false)] {
            let found = violations(spec, l);
            if found.is_empty() {
                continue;
            }
            let text = format!("PodSecurity \"{}:latest\": {}", l.name(), found.join(", "));
            if refuse {
                let name = meta::name(a.object);
                return Err(ApiError::forbidden(
                    format!("pods \"{name}\" is forbidden: violates {text}"),
                    Some(("", "pods", name)),
                ));
            }
            let warning = format!("would violate {text}");
            if !a.warnings.contains(&warning) {
                a.warnings.push(warning);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn each_level_refuses_what_the_standard_names() {
        let host = json!({"hostNetwork": true, "containers": [{"name": "c", "image": "i",
            "ports": [{"containerPort": 80, "hostPort": 8080}]}],
            "volumes": [{"name": "root", "hostPath": {"path": "/"}}]});
        assert!(violations(&host, Level::Privileged).is_empty());
        assert_eq!(
            violations(&host, Level::Baseline),
            [
                "host namespaces (hostNetwork=true)",
                "hostPath volumes (volume \"root\")",
                "hostPort (ports 8080)"
            ]
        );
        let plain = json!({"containers": [{"name": "c", "image": "i"}],
            "volumes": [{"name": "data", "emptyDir": {}}]});
        assert!(violations(&plain, Level::Baseline).is_empty());
        let got = violations(&plain, Level::Restricted);
        assert_eq!(got.len(), 4, "{got:?}");
        let hardened = json!({"securityContext": {"runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [{"name": "c", "image": "i", "securityContext": {
                "allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}}}],
            "volumes": [{"name": "data", "emptyDir": {}}]});
        assert!(violations(&hardened, Level::Restricted).is_empty());
        let caps = json!({"containers": [{"name": "c", "image": "i", "securityContext": {
            "privileged": true, "capabilities": {"add": ["SYS_ADMIN", "CHOWN"]}}}]});
        assert_eq!(
            violations(&caps, Level::Baseline),
            [
                "privileged (containers \"c\" must not set securityContext.privileged=true)",
                "non-default capabilities (must not include \"SYS_ADMIN\" in securityContext.capabilities.add)"
            ]
        );
    }
}

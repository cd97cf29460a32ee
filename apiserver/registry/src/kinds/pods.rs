//! Pods: defaults of the spec and its containers, the QoS class, the
//! checks of a pod spec (shared with every pod template), and the STATUS
//! column as kubectl computes it.

use serde_json::{Map, Value, json};

use super::print::{age_cell, age_column, col, human_duration, int, name_cell, name_column, text};
use super::{Deletion, Printer, Strategy};
use shoal_machinery::error::Causes;
use shoal_machinery::meta::{default_key, parse_time, str_at};
use shoal_machinery::names::is_dns_label;

/// A new Pod's status and what else it starts with.
fn prepare_pod(obj: &mut Value) {
    let qos = qos_class(obj.get("spec").unwrap_or(&Value::Null));
    obj["status"] = json!({"phase": "Pending", "qosClass": qos});
}

/// Fills a Pod's defaults.
fn default_pod(obj: &mut Value) {
    if let Some(spec) = obj.get_mut("spec") {
        default_pod_spec(spec);
    }
}

/// The checks of a Pod.
fn validate_pod(obj: &Value, c: &mut Causes) {
    validate_pod_spec(obj.get("spec"), "spec", c);
}

/// The columns `kubectl get` shows for Pods.
pub fn pod_columns() -> Vec<Value> {
    vec![
        name_column(),
        col(
            "Ready",
            "string",
            0,
            "The aggregate readiness state of this pod for accepting traffic.",
        ),
        col(
            "Status",
            "string",
            0,
            "The aggregate status of the containers in this pod.",
        ),
        col(
            "Restarts",
            "string",
            0,
            "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted.",
        ),
        age_column(),
        col("IP", "string", 1, "IP address allocated to the pod."),
        col(
            "Node",
            "string",
            1,
            "Name of the node the pod is assigned to.",
        ),
        col(
            "Nominated Node",
            "string",
            1,
            "Name of the node where the pod is nominated.",
        ),
        col("Readiness Gates", "string", 1, "Pod readiness gates."),
    ]
}

/// A row of [`pod_columns`] for `o`.
pub fn pod_cells(o: &Value) -> Vec<Value> {
    let Summary {
        ready,
        total,
        restarts,
        last_restart,
        reason,
    } = summary(o);
    let restarts = match last_restart {
        Some(t) if restarts > 0 => format!(
            "{restarts} ({} ago)",
            human_duration((jiff::Timestamp::now() - t).get_seconds())
        ),
        _ => restarts.to_string(),
    };
    vec![
        name_cell(o),
        text(format!("{ready}/{total}")),
        text(reason),
        text(restarts),
        age_cell(o),
        text(str_at(o, "/status/podIP").unwrap_or("<none>").into()),
        text(str_at(o, "/spec/nodeName").unwrap_or("<none>").into()),
        text(
            str_at(o, "/status/nominatedNodeName")
                .unwrap_or("<none>")
                .into(),
        ),
        text("<none>".into()),
    ]
}

/// Pods.
static POD: Strategy = Strategy {
    deletion: Deletion::Graceful,
    prepare: prepare_pod,
    defaults: default_pod,
    validate: validate_pod,
    printer: Printer {
        columns: pod_columns,
        cells: pod_cells,
    },
    field_labels: &[
        "spec.nodeName",
        "spec.restartPolicy",
        "spec.schedulerName",
        "spec.serviceAccountName",
        "spec.hostNetwork",
        "status.phase",
        "status.podIP",
        "status.nominatedNodeName",
    ],
    ..Strategy::GENERIC
};

/// Fills defaults of a pod spec (also used for pod templates).
pub fn default_pod_spec(spec: &mut Value) {
    let Some(s) = spec.as_object_mut() else {
        return;
    };
    default_key(s, "restartPolicy", json!("Always"));
    default_key(s, "terminationGracePeriodSeconds", json!(30));
    default_key(s, "dnsPolicy", json!("ClusterFirst"));
    default_key(s, "schedulerName", json!("default-scheduler"));
    default_key(s, "securityContext", json!({}));
    default_key(s, "enableServiceLinks", json!(true));
    for list in ["containers", "initContainers"] {
        if let Some(cs) = s.get_mut(list).and_then(Value::as_array_mut) {
            for c in cs.iter_mut().filter_map(Value::as_object_mut) {
                container(c);
            }
        }
    }
}

fn container(c: &mut Map<String, Value>) {
    let image = c.get("image").and_then(Value::as_str).unwrap_or_default();
    let last = image.rsplit('/').next().unwrap_or(image);
    let latest = !image.contains('@') && (!last.contains(':') || last.ends_with(":latest"));
    default_key(
        c,
        "imagePullPolicy",
        json!(if latest { "Always" } else { "IfNotPresent" }),
    );
    default_key(c, "terminationMessagePath", json!("/dev/termination-log"));
    default_key(c, "terminationMessagePolicy", json!("File"));
    default_key(c, "resources", json!({}));
    if let Some(ports) = c.get_mut("ports").and_then(Value::as_array_mut) {
        for p in ports.iter_mut().filter_map(Value::as_object_mut) {
            default_key(p, "protocol", json!("TCP"));
        }
    }
}

/// The QoS class of a pod spec.
pub fn qos_class(spec: &Value) -> &'static str {
    let cs = spec
        .get("containers")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let any = cs.iter().any(|c| {
        c.pointer("/resources/requests")
            .and_then(Value::as_object)
            .is_some_and(|m| !m.is_empty())
            || c.pointer("/resources/limits")
                .and_then(Value::as_object)
                .is_some_and(|m| !m.is_empty())
    });
    let guaranteed = !cs.is_empty()
        && cs.iter().all(|c| {
            let l = c.pointer("/resources/limits");
            ["cpu", "memory"]
                .iter()
                .all(|k| l.and_then(|l| l.get(*k)).is_some())
                && c.pointer("/resources/requests")
                    .is_none_or(|r| r == l.unwrap_or(&Value::Null))
        });
    if guaranteed {
        "Guaranteed"
    } else if any {
        "Burstable"
    } else {
        "BestEffort"
    }
}

/// Kubernetes' words for a name that is not an RFC 1123 label.
const LABEL_RULE: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";

/// The volume sources a pod may name; exactly one per volume.
const VOLUME_SOURCES: &[&str] = &[
    "emptyDir",
    "configMap",
    "secret",
    "downwardAPI",
    "projected",
    "hostPath",
    "persistentVolumeClaim",
    "nfs",
    "csi",
    "ephemeral",
    "image",
];

/// The checks Kubernetes makes of a pod's template or spec, for everything
/// a node turns into names, paths and ports.
pub fn validate_pod_spec(spec: Option<&Value>, path: &str, c: &mut Causes) {
    let containers = spec
        .and_then(|s| s.get("containers"))
        .and_then(Value::as_array);
    let Some(containers) = containers.filter(|v| !v.is_empty()) else {
        c.required(format!("{path}.containers"), "");
        return;
    };
    let volumes = validate_volumes(spec.and_then(|s| s.get("volumes")), path, c);
    let mut seen = Vec::new();
    let init = spec
        .and_then(|s| s.get("initContainers"))
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    for (list, field) in [
        (containers.as_slice(), "containers"),
        (init, "initContainers"),
    ] {
        for (i, ct) in list.iter().enumerate() {
            let at = format!("{path}.{field}[{i}]");
            let name = ct.get("name").and_then(Value::as_str).unwrap_or_default();
            if name.is_empty() {
                c.required(format!("{at}.name"), "");
            } else if !is_dns_label(name) {
                c.invalid(format!("{at}.name"), &ct["name"], LABEL_RULE);
            } else if seen.contains(&name) {
                c.duplicate(format!("{at}.name"), &ct["name"]);
            }
            seen.push(name);
            if ct
                .get("image")
                .and_then(Value::as_str)
                .is_none_or(|s| s.trim().is_empty())
            {
                c.required(format!("{at}.image"), "");
            }
            validate_mounts(ct, &at, &volumes, c);
            validate_ports(ct, &at, c);
        }
    }
    if let Some(p) = spec.and_then(|s| s.get("restartPolicy"))
        && !p
            .as_str()
            .is_some_and(|p| ["Always", "OnFailure", "Never"].contains(&p))
    {
        c.not_supported(
            format!("{path}.restartPolicy"),
            p,
            &["Always", "OnFailure", "Never"],
        );
    }
}

/// Volumes' names and sources; the names of the valid ones.
fn validate_volumes(volumes: Option<&Value>, path: &str, c: &mut Causes) -> Vec<String> {
    let mut names = Vec::new();
    for (i, v) in volumes
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        let at = format!("{path}.volumes[{i}]");
        match v.get("name").and_then(Value::as_str) {
            None | Some("") => c.required(format!("{at}.name"), ""),
            Some(n) if !is_dns_label(n) => c.invalid(format!("{at}.name"), &v["name"], LABEL_RULE),
            Some(n) if names.iter().any(|m| m == n) => {
                c.duplicate(format!("{at}.name"), &v["name"])
            }
            Some(n) => names.push(n.to_string()),
        }
        let sources: Vec<&str> = VOLUME_SOURCES
            .iter()
            .copied()
            .filter(|s| v.get(*s).is_some_and(|x| !x.is_null()))
            .collect();
        match sources.as_slice() {
            [] => c.required(at.clone(), "must specify a volume type"),
            [_] => {}
            [_, more, ..] => c.forbidden(
                format!("{at}.{more}"),
                "may not specify more than 1 volume type",
            ),
        }
        if let Some(p) = v.pointer("/hostPath/path") {
            let field = format!("{at}.hostPath.path");
            match p.as_str() {
                None | Some("") => c.required(field, ""),
                Some(s) if has_dot_dot(s) => c.invalid(field, p, "must not contain '..'"),
                Some(_) => {}
            }
        }
        for src in ["configMap", "secret", "downwardAPI"] {
            check_items(v.get(src), &format!("{at}.{src}"), c);
        }
        for (k, s) in v
            .pointer("/projected/sources")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .enumerate()
        {
            for src in ["configMap", "secret", "downwardAPI"] {
                check_items(s.get(src), &format!("{at}.projected.sources[{k}].{src}"), c);
            }
        }
    }
    names
}

/// The file paths of a configMap, secret or downwardAPI source's items.
fn check_items(src: Option<&Value>, at: &str, c: &mut Causes) {
    for (i, it) in src
        .and_then(|s| s.get("items"))
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        let field = format!("{at}.items[{i}].path");
        match it.get("path") {
            None => c.required(field, ""),
            Some(p) => check_relative(p, field, c),
        }
    }
}

/// A path that must stay below the directory it is joined to.
fn check_relative(p: &Value, field: String, c: &mut Causes) {
    match p.as_str() {
        None | Some("") => c.required(field, ""),
        Some(s) if s.starts_with('/') => c.invalid(field, p, "must be a relative path"),
        Some(s) if has_dot_dot(s) => c.invalid(field, p, "must not contain '..'"),
        Some(_) => {}
    }
}

/// Whether one of a path's elements is `..`.
fn has_dot_dot(p: &str) -> bool {
    p.split('/').any(|e| e == "..")
}

/// A container's volume mounts: a volume of the pod, a mount path, a
/// relative sub-path, each mount path once.
fn validate_mounts(ct: &Value, at: &str, volumes: &[String], c: &mut Causes) {
    let mut paths = Vec::new();
    for (i, m) in ct
        .get("volumeMounts")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        let mt = format!("{at}.volumeMounts[{i}]");
        match m.get("name").and_then(Value::as_str) {
            None | Some("") => c.required(format!("{mt}.name"), ""),
            Some(n) if !volumes.iter().any(|v| v == n) => {
                c.not_found(format!("{mt}.name"), &m["name"])
            }
            Some(_) => {}
        }
        match m.get("mountPath").and_then(Value::as_str) {
            None | Some("") => c.required(format!("{mt}.mountPath"), ""),
            Some(p) if paths.contains(&p) => {
                c.invalid(format!("{mt}.mountPath"), &m["mountPath"], "must be unique")
            }
            Some(p) => paths.push(p),
        }
        if let Some(sub) = m.get("subPath").filter(|s| s.as_str() != Some("")) {
            check_relative(sub, format!("{mt}.subPath"), c);
        }
    }
}

/// A container's ports: numbers in range, known protocols, unique names.
fn validate_ports(ct: &Value, at: &str, c: &mut Causes) {
    let mut names = Vec::new();
    for (i, p) in ct
        .get("ports")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        let pt = format!("{at}.ports[{i}]");
        for field in ["containerPort", "hostPort"] {
            let Some(v) = p.get(field) else { continue };
            let n = v.as_i64().unwrap_or(0);
            if (field == "containerPort" || n != 0) && !(1..=65535).contains(&n) {
                c.invalid(
                    format!("{pt}.{field}"),
                    v,
                    "must be between 1 and 65535, inclusive",
                );
            }
        }
        if p.get("containerPort").is_none() {
            c.required(format!("{pt}.containerPort"), "");
        }
        if let Some(proto) = p.get("protocol")
            && !proto
                .as_str()
                .is_some_and(|s| ["TCP", "UDP", "SCTP"].contains(&s))
        {
            c.not_supported(format!("{pt}.protocol"), proto, &["SCTP", "TCP", "UDP"]);
        }
        if let Some(name) = p.get("name").and_then(Value::as_str) {
            if !is_port_name(name) {
                c.invalid(format!("{pt}.name"), &p["name"], "must be no more than 15 characters, contain only lowercase alphanumeric characters or '-', contain at least one letter and not start or end with '-'");
            } else if names.contains(&name) {
                c.duplicate(format!("{pt}.name"), &p["name"]);
            }
            names.push(name);
        }
    }
}

/// An IANA service name, as Kubernetes requires of port names.
fn is_port_name(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 15
        && n.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && n.bytes().any(|b| b.is_ascii_lowercase())
        && !n.starts_with('-')
        && !n.ends_with('-')
        && !n.contains("--")
}

/// What `kubectl get pods` shows of a pod: ready and all containers
/// (sidecars, init containers with `restartPolicy: Always`, count), the
/// restarts and when the last was, and the status, as kube-apiserver's
/// printer makes them (`Init:1/2`, `Init:Error`, `PodInitializing`,
/// `CrashLoopBackOff`, `Completed`, `Terminating`, …).
struct Summary {
    ready: usize,
    total: usize,
    restarts: i64,
    last_restart: Option<jiff::Timestamp>,
    reason: String,
}

fn summary(pod: &Value) -> Summary {
    let list = |p: &str| {
        pod.pointer(p)
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    let (init_specs, init_statuses, statuses) = (
        list("/spec/initContainers"),
        list("/status/initContainerStatuses"),
        list("/status/containerStatuses"),
    );
    let sidecar = |name: Option<&str>| {
        init_specs
            .iter()
            .any(|c| str_at(c, "/name") == name && str_at(c, "/restartPolicy") == Some("Always"))
    };
    let mut total = list("/spec/containers").len()
        + init_specs
            .iter()
            .filter(|c| str_at(c, "/restartPolicy") == Some("Always"))
            .count();
    let mut ready = 0;
    let mut restarts = 0;
    let mut sidecar_restarts = 0;
    let mut last_restart = None;
    let mut reason = str_at(pod, "/status/reason")
        .or(str_at(pod, "/status/phase"))
        .unwrap_or("Pending")
        .to_string();
    let finished = |c: &Value| str_at(c, "/lastState/terminated/finishedAt").and_then(parse_time);
    let terminated_reason = |t: &Value| match str_at(t, "/reason") {
        Some(r) if !r.is_empty() => r.to_string(),
        _ => format!("ExitCode:{}", int(t, "/exitCode")),
    };
    let mut initializing = false;
    for (i, c) in init_statuses.iter().enumerate() {
        restarts += int(c, "/restartCount");
        last_restart = last_restart.max(finished(c));
        let is_sidecar = sidecar(str_at(c, "/name"));
        if is_sidecar {
            sidecar_restarts += int(c, "/restartCount");
            if c.get("ready") == Some(&json!(true)) {
                ready += 1;
            }
        }
        let terminated = c.pointer("/state/terminated");
        let waiting = str_at(c, "/state/waiting/reason").filter(|r| !r.is_empty());
        if terminated.is_some_and(|t| int(t, "/exitCode") == 0)
            || (is_sidecar && c.get("started") == Some(&json!(true)))
        {
            continue;
        }
        initializing = true;
        reason = match (terminated, waiting) {
            (Some(t), _) => format!("Init:{}", terminated_reason(t)),
            (None, Some(w)) if w != "PodInitializing" => format!("Init:{w}"),
            _ => format!("Init:{i}/{}", init_specs.len()),
        };
        break;
    }
    let initialized = pod
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .any(|c| str_at(c, "/type") == Some("Initialized") && str_at(c, "/status") == Some("True"));
    if !initializing || initialized {
        restarts = sidecar_restarts;
        let mut running = false;
        for c in statuses.iter().rev() {
            restarts += int(c, "/restartCount");
            last_restart = last_restart.max(finished(c));
            if let Some(w) = str_at(c, "/state/waiting/reason").filter(|r| !r.is_empty()) {
                reason = w.to_string();
            } else if let Some(t) = c.pointer("/state/terminated") {
                reason = terminated_reason(t);
            } else if c.get("ready") == Some(&json!(true)) && c.pointer("/state/running").is_some()
            {
                running = true;
                ready += 1;
            }
        }
        if reason == "Completed" && running {
            reason = "Running".into();
        }
    }
    if pod.pointer("/metadata/deletionTimestamp").is_some() {
        reason = "Terminating".into();
    }
    total = total.max(ready);
    Summary {
        ready,
        total,
        restarts,
        last_restart,
        reason,
    }
}

/// The status `kubectl get pods` shows for a pod.
pub fn pod_status(pod: &Value) -> String {
    summary(pod).reason
}

/// The kinds this file holds, by name.
pub(super) static KINDS: &[(&str, &Strategy)] = &[("Pod", &POD)];

/// `old` with the ephemeral containers of `obj`: those it had, unchanged,
/// and new ones, each with a name no container of the pod has and an
/// image, as Kubernetes allows them.
pub(crate) fn ephemeral_containers(
    old: &Value,
    obj: &Value,
) -> shoal_machinery::error::Result<Value> {
    let list = |v: &Value, field: &str| -> Vec<Value> {
        v.pointer(&format!("/spec/{field}"))
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    let (before, after) = (
        list(old, "ephemeralContainers"),
        list(obj, "ephemeralContainers"),
    );
    let name = |c: &Value| {
        c.get("name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let invalid = |msg: String| {
        let cause = shoal_machinery::error::Cause {
            kind: "FieldValueInvalid",
            field: "spec.ephemeralContainers".into(),
            message: msg,
        };
        shoal_machinery::error::ApiError::invalid(
            "",
            "Pod",
            shoal_machinery::meta::name(old),
            vec![cause],
        )
    };
    for b in &before {
        match after.iter().find(|a| name(a) == name(b)) {
            None => {
                return Err(invalid(format!(
                    "Forbidden: existing ephemeral containers \"{}\" may not be removed",
                    name(b)
                )));
            }
            Some(a) if a != b => {
                return Err(invalid(format!(
                    "Forbidden: existing ephemeral containers \"{}\" may not be changed",
                    name(b)
                )));
            }
            _ => {}
        }
    }
    let mut taken: Vec<String> = ["containers", "initContainers"]
        .iter()
        .flat_map(|f| list(old, f))
        .map(|c| name(&c))
        .collect();
    for a in after.iter().filter(|a| !before.contains(a)) {
        let n = name(a);
        if n.is_empty()
            || a.get("image")
                .and_then(Value::as_str)
                .is_none_or(str::is_empty)
        {
            return Err(invalid(
                "Required value: a new ephemeral container needs a name and an image".into(),
            ));
        }
        if taken.contains(&n) {
            return Err(invalid(format!("Duplicate value: \"{n}\"")));
        }
        taken.push(n);
    }
    let mut n = old.clone();
    if !n.get("spec").is_some_and(Value::is_object) {
        n["spec"] = json!({});
    }
    n["spec"]["ephemeralContainers"] = json!(after);
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn causes(spec: Value) -> Vec<String> {
        let mut c = Causes::default();
        validate_pod_spec(Some(&spec), "spec", &mut c);
        c.0.into_iter()
            .map(|c| format!("{}: {}", c.field, c.message))
            .collect()
    }

    #[test]
    fn paths_a_node_would_use_are_checked() {
        let got = causes(json!({
            "containers": [{"name": "app", "image": "x", "volumeMounts": [
                {"name": "cfg", "mountPath": "/a", "subPath": "../../etc"},
                {"name": "ghost", "mountPath": "/a"}],
                "ports": [{"containerPort": 0, "name": "Web"}, {"containerPort": 80, "protocol": "tcp"}]}],
            "volumes": [
                {"name": "/etc/shoal", "configMap": {"name": "c"}},
                {"name": "cfg", "configMap": {"name": "c", "items": [{"key": "k", "path": "/etc/passwd"}]}},
                {"name": "cfg", "emptyDir": {}},
                {"name": "both", "emptyDir": {}, "hostPath": {"path": "/var/../etc"}},
                {"name": "none"},
            ],
        }));
        let want = [
            "spec.volumes[0].name: Invalid value: \"/etc/shoal\": a lowercase RFC 1123 label",
            "spec.volumes[1].configMap.items[0].path: Invalid value: \"/etc/passwd\": must be a relative path",
            "spec.volumes[2].name: Duplicate value: \"cfg\"",
            "spec.volumes[3].hostPath: Forbidden: may not specify more than 1 volume type",
            "spec.volumes[3].hostPath.path: Invalid value: \"/var/../etc\": must not contain '..'",
            "spec.volumes[4]: Required value: must specify a volume type",
            "spec.containers[0].volumeMounts[0].subPath: Invalid value: \"../../etc\": must not contain '..'",
            "spec.containers[0].volumeMounts[1].name: Not found: \"ghost\"",
            "spec.containers[0].volumeMounts[1].mountPath: Invalid value: \"/a\": must be unique",
            "spec.containers[0].ports[0].containerPort: Invalid value: 0: must be between 1 and 65535, inclusive",
            "spec.containers[0].ports[0].name: Invalid value: \"Web\"",
            "spec.containers[0].ports[1].protocol: Unsupported value: \"tcp\"",
        ];
        for w in want {
            assert!(got.iter().any(|g| g.starts_with(w)), "{w}\nnot in {got:#?}");
        }
        assert_eq!(got.len(), want.len(), "{got:#?}");
        assert!(
            causes(json!({"containers": [{"name": "app", "image": "x",
            "volumeMounts": [{"name": "data", "mountPath": "/data", "subPath": "a/b"}],
            "ports": [{"containerPort": 8080, "name": "http", "protocol": "TCP"}]}],
            "volumes": [{"name": "data", "emptyDir": {}}]}))
            .is_empty()
        );
    }

    #[test]
    fn pod_status_prefers_waiting_reason() {
        let pod = json!({"status": {"phase": "Pending", "containerStatuses": [{"state": {"waiting": {"reason": "ErrImagePull"}}}]}});
        assert_eq!(pod_status(&pod), "ErrImagePull");
        let gone = json!({"metadata": {"deletionTimestamp": "x"}, "status": {"phase": "Running"}});
        assert_eq!(pod_status(&gone), "Terminating");
    }

    #[test]
    fn init_containers_show_as_kubectl_shows_them() {
        let pod = |inits: Value, statuses: Value, initialized: bool| {
            json!({"spec": {"containers": [{"name": "main"}], "initContainers": inits},
                "status": {"phase": "Pending", "conditions": [{"type": "Initialized", "status": if initialized { "True" } else { "False" }}],
                    "initContainerStatuses": statuses,
                    "containerStatuses": [{"name": "main", "ready": false, "state": {"waiting": {"reason": "PodInitializing"}}}]}})
        };
        let inits =
            json!([{"name": "a"}, {"name": "proxy", "restartPolicy": "Always"}, {"name": "b"}]);
        let done =
            json!({"name": "a", "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}});
        let waiting =
            |n: &str| json!({"name": n, "state": {"waiting": {"reason": "PodInitializing"}}});
        let p = pod(
            inits.clone(),
            json!([waiting("a"), waiting("proxy"), waiting("b")]),
            false,
        );
        let s = summary(&p);
        assert_eq!((s.reason.as_str(), s.ready, s.total), ("Init:0/3", 0, 2));
        let sidecar =
            json!({"name": "proxy", "started": true, "ready": true, "state": {"running": {}}});
        let p = pod(inits.clone(), json!([done, sidecar, waiting("b")]), false);
        let s = summary(&p);
        assert_eq!((s.reason.as_str(), s.ready), ("Init:2/3", 1));
        let failed = json!({"name": "b", "restartCount": 2, "state": {"terminated": {"exitCode": 3, "reason": "Error"}}});
        let p = pod(inits.clone(), json!([done, sidecar, failed]), false);
        assert_eq!(summary(&p).reason, "Init:Error");
        assert_eq!(summary(&p).restarts, 2);
        let backoff = json!({"name": "b", "state": {"waiting": {"reason": "CrashLoopBackOff"}}});
        let p = pod(inits, json!([done, sidecar, backoff]), false);
        assert_eq!(summary(&p).reason, "Init:CrashLoopBackOff");
        let p = pod(json!([{"name": "a"}]), json!([done]), true);
        assert_eq!(summary(&p).reason, "PodInitializing");
    }
}

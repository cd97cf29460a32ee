//! Defaulting, as the Kubernetes API server applies it on create and update.

use serde_json::{Map, Value, json};

use crate::meta::default_key;

/// Fills defaults of a pod spec (also used for pod templates).
pub fn pod_spec(spec: &mut Value) {
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

/// The `key` update strategy of a spec: RollingUpdate unless set, with
/// `rolling` defaults for its parameters.
fn rolling_update<const N: usize>(
    spec: &mut Map<String, Value>,
    key: &str,
    rolling: [(&str, Value); N],
) {
    default_key(spec, key, json!({}));
    let Some(st) = spec.get_mut(key).and_then(Value::as_object_mut) else {
        return;
    };
    default_key(st, "type", json!("RollingUpdate"));
    if st.get("type") == Some(&json!("RollingUpdate")) {
        default_key(st, "rollingUpdate", json!({}));
        if let Some(ru) = st.get_mut("rollingUpdate").and_then(Value::as_object_mut) {
            for (k, v) in rolling {
                default_key(ru, k, v);
            }
        }
    }
}

/// A Job's spec, as Kubernetes defaults it.
pub fn job_spec(s: &mut Map<String, Value>) {
    if !s.contains_key("completions") && !s.contains_key("parallelism") {
        s.insert("completions".into(), json!(1));
    }
    default_key(s, "parallelism", json!(1));
    default_key(s, "backoffLimit", json!(6));
    default_key(s, "completionMode", json!("NonIndexed"));
    default_key(s, "suspend", json!(false));
    default_key(s, "podReplacementPolicy", json!("TerminatingOrFailed"));
    if let Some(t) = s.get_mut("template").and_then(|t| t.get_mut("spec")) {
        pod_spec(t);
    }
}

/// A new Job's selector and pod labels, derived from its uid and name as
/// Kubernetes does unless `manualSelector` is set.
pub fn job_selector(job: &mut Value) {
    if job.pointer("/spec/manualSelector") == Some(&json!(true)) {
        return;
    }
    let (uid, name) = (
        crate::meta::uid(job).to_string(),
        crate::meta::name(job).to_string(),
    );
    let Some(spec) = job.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    spec.insert(
        "selector".into(),
        json!({"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}),
    );
    let template = spec.entry("template").or_insert_with(|| json!({}));
    let labels = crate::meta::metadata(template)
        .entry("labels")
        .or_insert_with(|| json!({}));
    if let Some(l) = labels.as_object_mut() {
        for (k, v) in [
            ("batch.kubernetes.io/controller-uid", &uid),
            ("batch.kubernetes.io/job-name", &name),
            ("controller-uid", &uid),
            ("job-name", &name),
        ] {
            l.insert(k.into(), json!(v));
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

/// Status fields Kubernetes' Go types always write (not `omitempty`),
/// zero until a controller sets them; typed clients (the Python client's
/// models) refuse an object without them.
const STATUS_ZEROS: &[(&str, &[&str])] = &[
    (
        "DaemonSet",
        &[
            "currentNumberScheduled",
            "numberMisscheduled",
            "desiredNumberScheduled",
            "numberReady",
        ],
    ),
    ("ReplicaSet", &["replicas"]),
    ("ReplicationController", &["replicas"]),
    ("StatefulSet", &["replicas", "availableReplicas"]),
    ("HorizontalPodAutoscaler", &["desiredReplicas"]),
];

/// The kinds whose status has fields Go always writes.
pub fn kinds_with_status_zeros() -> impl Iterator<Item = &'static str> {
    STATUS_ZEROS.iter().map(|(k, _)| *k)
}

/// Gives `obj` of `kind` the status fields of [`STATUS_ZEROS`] it lacks;
/// whether it lacked any.
pub fn status_zeros(kind: &str, obj: &mut Value) -> bool {
    let Some((_, fields)) = STATUS_ZEROS.iter().find(|(k, _)| *k == kind) else {
        return false;
    };
    let Some(m) = obj.as_object_mut() else {
        return false;
    };
    let before = m.get("status").cloned();
    if !m.get("status").is_some_and(Value::is_object) {
        m.insert("status".into(), json!({}));
    }
    if let Some(st) = m.get_mut("status").and_then(Value::as_object_mut) {
        for f in *fields {
            default_key(st, f, json!(0));
        }
    }
    m.get("status") != before.as_ref()
}

/// Defaults by kind. Service address allocation is done by the caller.
pub fn apply(kind: &str, obj: &mut Value) {
    status_zeros(kind, obj);
    match kind {
        "CustomResourceDefinition" => crate::custom::default_definition(obj),
        "PersistentVolumeClaim" => {
            if let Some(s) = obj.get_mut("spec").and_then(Value::as_object_mut) {
                default_key(s, "volumeMode", json!("Filesystem"));
            }
        }
        "PersistentVolume" => {
            if let Some(s) = obj.get_mut("spec").and_then(Value::as_object_mut) {
                default_key(s, "persistentVolumeReclaimPolicy", json!("Retain"));
                default_key(s, "volumeMode", json!("Filesystem"));
            }
        }
        "StorageClass" => {
            if let Some(m) = obj.as_object_mut() {
                default_key(m, "reclaimPolicy", json!("Delete"));
                default_key(m, "volumeBindingMode", json!("Immediate"));
            }
        }
        "Pod" => {
            if let Some(spec) = obj.get_mut("spec") {
                pod_spec(spec);
            }
        }
        "Deployment" => {
            let spec = obj.get_mut("spec").and_then(Value::as_object_mut);
            if let Some(s) = spec {
                default_key(s, "replicas", json!(1));
                default_key(s, "revisionHistoryLimit", json!(10));
                default_key(s, "progressDeadlineSeconds", json!(600));
                rolling_update(
                    s,
                    "strategy",
                    [("maxUnavailable", json!("25%")), ("maxSurge", json!("25%"))],
                );
                if let Some(t) = s.get_mut("template").and_then(|t| t.get_mut("spec")) {
                    pod_spec(t);
                }
            }
        }
        "StatefulSet" => {
            if let Some(s) = obj.get_mut("spec").and_then(Value::as_object_mut) {
                default_key(s, "replicas", json!(1));
                default_key(s, "podManagementPolicy", json!("OrderedReady"));
                default_key(s, "revisionHistoryLimit", json!(10));
                default_key(
                    s,
                    "persistentVolumeClaimRetentionPolicy",
                    json!({"whenDeleted": "Retain", "whenScaled": "Retain"}),
                );
                rolling_update(s, "updateStrategy", [("partition", json!(0))]);
                if let Some(t) = s.get_mut("template").and_then(|t| t.get_mut("spec")) {
                    pod_spec(t);
                }
            }
        }
        "DaemonSet" => {
            if let Some(s) = obj.get_mut("spec").and_then(Value::as_object_mut) {
                default_key(s, "revisionHistoryLimit", json!(10));
                rolling_update(
                    s,
                    "updateStrategy",
                    [("maxUnavailable", json!(1)), ("maxSurge", json!(0))],
                );
                if let Some(t) = s.get_mut("template").and_then(|t| t.get_mut("spec")) {
                    pod_spec(t);
                }
            }
        }
        "CronJob" => {
            if let Some(s) = obj.get_mut("spec").and_then(Value::as_object_mut) {
                default_key(s, "concurrencyPolicy", json!("Allow"));
                default_key(s, "suspend", json!(false));
                default_key(s, "successfulJobsHistoryLimit", json!(3));
                default_key(s, "failedJobsHistoryLimit", json!(1));
                if let Some(t) = s
                    .get_mut("jobTemplate")
                    .and_then(|t| t.pointer_mut("/spec/template/spec"))
                {
                    pod_spec(t);
                }
            }
        }
        "Job" => {
            if let Some(s) = obj.get_mut("spec").and_then(Value::as_object_mut) {
                job_spec(s);
            }
        }
        "ReplicationController" => {
            // The selector and the labels default to the template's labels.
            let labels = obj.pointer("/spec/template/metadata/labels").cloned();
            if let Some(l) = labels.filter(|l| l.as_object().is_some_and(|m| !m.is_empty())) {
                if let Some(s) = obj.get_mut("spec").and_then(Value::as_object_mut)
                    && s.get("selector")
                        .and_then(Value::as_object)
                        .is_none_or(|m| m.is_empty())
                {
                    s.insert("selector".into(), l.clone());
                }
                let m = crate::meta::metadata(obj);
                if m.get("labels")
                    .and_then(Value::as_object)
                    .is_none_or(|m| m.is_empty())
                {
                    m.insert("labels".into(), l);
                }
            }
            if let Some(s) = obj.get_mut("spec").and_then(Value::as_object_mut) {
                default_key(s, "replicas", json!(1));
                if let Some(t) = s.get_mut("template").and_then(|t| t.get_mut("spec")) {
                    pod_spec(t);
                }
            }
        }
        "ReplicaSet" => {
            if let Some(s) = obj.get_mut("spec").and_then(Value::as_object_mut) {
                default_key(s, "replicas", json!(1));
                if let Some(t) = s.get_mut("template").and_then(|t| t.get_mut("spec")) {
                    pod_spec(t);
                }
            }
        }
        "Service" => {
            if let Some(s) = obj.get_mut("spec").and_then(Value::as_object_mut) {
                default_key(s, "type", json!("ClusterIP"));
                default_key(s, "sessionAffinity", json!("None"));
                default_key(s, "internalTrafficPolicy", json!("Cluster"));
                default_key(s, "ipFamilies", json!(["IPv4"]));
                default_key(s, "ipFamilyPolicy", json!("SingleStack"));
                if matches!(
                    s.get("type").and_then(Value::as_str),
                    Some("NodePort" | "LoadBalancer")
                ) {
                    default_key(s, "externalTrafficPolicy", json!("Cluster"));
                }
                if let Some(ports) = s.get_mut("ports").and_then(Value::as_array_mut) {
                    for p in ports.iter_mut().filter_map(Value::as_object_mut) {
                        default_key(p, "protocol", json!("TCP"));
                        if let Some(port) = p.get("port").cloned() {
                            default_key(p, "targetPort", port);
                        }
                    }
                }
            }
        }
        "Secret" => {
            if let Some(m) = obj.as_object_mut() {
                default_key(m, "type", json!("Opaque"));
            }
        }
        "Namespace" => {
            if let Some(m) = obj.as_object_mut() {
                default_key(m, "status", json!({}));
            }
            if let Some(st) = obj.get_mut("status").and_then(Value::as_object_mut) {
                default_key(st, "phase", json!("Active"));
            }
        }
        _ => {}
    }
}

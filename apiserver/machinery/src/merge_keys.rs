//! The lists Kubernetes merges by key (strategic merge patch, server-side
//! apply) and their keys: one table, published in the OpenAPI schemas
//! kubectl reads and used by the patch and apply code.
//!
//! May import: nothing of the crate.

use serde_json::Value;

/// Lists that merge by key under strategic merge patch, as Kubernetes
/// declares them: (definition, property, merge key).
pub const LISTS: &[(&str, &str, &str)] = &[
    ("io.k8s.api.core.v1.PodSpec", "containers", "name"),
    ("io.k8s.api.core.v1.PodSpec", "initContainers", "name"),
    ("io.k8s.api.core.v1.PodSpec", "ephemeralContainers", "name"),
    ("io.k8s.api.core.v1.PodSpec", "volumes", "name"),
    ("io.k8s.api.core.v1.PodSpec", "imagePullSecrets", "name"),
    ("io.k8s.api.core.v1.PodSpec", "resourceClaims", "name"),
    ("io.k8s.api.core.v1.EphemeralContainer", "env", "name"),
    (
        "io.k8s.api.core.v1.EphemeralContainer",
        "ports",
        "containerPort",
    ),
    (
        "io.k8s.api.core.v1.EphemeralContainer",
        "volumeMounts",
        "mountPath",
    ),
    (
        "io.k8s.api.core.v1.EphemeralContainer",
        "volumeDevices",
        "devicePath",
    ),
    ("io.k8s.api.core.v1.PodSpec", "hostAliases", "ip"),
    (
        "io.k8s.api.core.v1.PodSpec",
        "topologySpreadConstraints",
        "topologyKey",
    ),
    ("io.k8s.api.core.v1.Container", "env", "name"),
    ("io.k8s.api.core.v1.Container", "ports", "containerPort"),
    ("io.k8s.api.core.v1.Container", "volumeMounts", "mountPath"),
    (
        "io.k8s.api.core.v1.Container",
        "volumeDevices",
        "devicePath",
    ),
    ("io.k8s.api.core.v1.ServiceSpec", "ports", "port"),
    (
        "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta",
        "ownerReferences",
        "uid",
    ),
    ("io.k8s.api.core.v1.PodStatus", "conditions", "type"),
    ("io.k8s.api.core.v1.NodeStatus", "conditions", "type"),
    ("io.k8s.api.core.v1.NodeStatus", "addresses", "type"),
    ("io.k8s.api.apps.v1.DeploymentStatus", "conditions", "type"),
    ("io.k8s.api.apps.v1.ReplicaSetStatus", "conditions", "type"),
];

/// The merge key of a list under field `field`, whose elements include
/// `sample`: the table's key for a property of that name (a Service's
/// `ports` merge by `port`, a container's by `containerPort`, told apart
/// by the elements).
pub fn key_of(field: &str, sample: &[Value]) -> Option<&'static str> {
    let has = |k: &str| sample.iter().any(|e| e.get(k).is_some());
    let mut keys = LISTS
        .iter()
        .filter(|(_, p, _)| *p == field)
        .map(|(_, _, k)| *k);
    let first = keys.next()?;
    let mut all = vec![first];
    all.extend(keys.filter(|k| *k != first));
    all.dedup();
    match all.as_slice() {
        [only] => Some(only),
        several => several
            .iter()
            .copied()
            .find(|k| has(k))
            .or(Some(several[several.len() - 1])),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn keys_by_field_and_by_elements() {
        assert_eq!(key_of("containers", &[]), Some("name"));
        assert_eq!(key_of("volumeMounts", &[]), Some("mountPath"));
        assert_eq!(key_of("conditions", &[]), Some("type"));
        assert_eq!(
            key_of("ports", &[json!({"containerPort": 80})]),
            Some("containerPort")
        );
        assert_eq!(
            key_of("ports", &[json!({"port": 80, "targetPort": 8080})]),
            Some("port")
        );
        assert_eq!(key_of("ports", &[]), Some("port"));
        assert_eq!(key_of("args", &[]), None);
    }
}

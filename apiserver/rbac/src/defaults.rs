//! The roles and bindings every cluster starts with, as kube-apiserver's
//! bootstrap policy makes them: `cluster-admin`, the user-facing `admin`,
//! `edit` and `view` (aggregated from `system:aggregate-to-*`), discovery
//! and self-review for every authenticated user, and the node's role.

use serde_json::{Value, json};

const READ: &[&str] = &["get", "list", "watch"];
const WRITE: &[&str] = &["create", "delete", "deletecollection", "patch", "update"];

fn rule(verbs: &[&str], groups: &[&str], resources: &[&str]) -> Value {
    json!({"verbs": verbs, "apiGroups": groups, "resources": resources})
}

fn urls(verbs: &[&str], urls: &[&str]) -> Value {
    json!({"verbs": verbs, "nonResourceURLs": urls})
}

fn meta(name: &str, labels: Value) -> Value {
    let mut labels = labels;
    labels["kubernetes.io/bootstrapping"] = json!("rbac-defaults");
    json!({"name": name, "labels": labels,
        "annotations": {"rbac.authorization.kubernetes.io/autoupdate": "true"}})
}

fn namespaced(name: &str, namespace: &str) -> Value {
    let mut m = meta(name, json!({}));
    m["namespace"] = json!(namespace);
    m
}

/// The ClusterRole whose `create` on `certificatesigningrequests/nodeclient`
/// gets a node's first client certificate approved automatically.
const NODE_CLIENT: &str = "system:certificates.k8s.io:certificatesigningrequests:nodeclient";
/// The ClusterRole whose `create` on
/// `certificatesigningrequests/selfnodeclient` gets a node's renewal of its
/// own client certificate approved automatically.
const SELF_NODE_CLIENT: &str =
    "system:certificates.k8s.io:certificatesigningrequests:selfnodeclient";

fn cluster_role(name: &str, labels: Value, rules: Vec<Value>) -> Value {
    json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
        "metadata": meta(name, labels), "rules": rules})
}

fn aggregated(name: &str, labels: Value, to: &str) -> Value {
    let mut r = cluster_role(name, labels, vec![]);
    r["aggregationRule"] = json!({"clusterRoleSelectors": [
        {"matchLabels": {format!("rbac.authorization.k8s.io/aggregate-to-{to}"): "true"}}]});
    r
}

fn binding(name: &str, role: &str, subjects: &[(&str, &str)]) -> Value {
    let subjects: Vec<Value> = subjects
        .iter()
        .map(|(kind, n)| json!({"kind": kind, "apiGroup": "rbac.authorization.k8s.io", "name": n}))
        .collect();
    json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
        "metadata": meta(name, json!({})),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
        "subjects": subjects})
}

fn with(a: &[&str], b: &[&str]) -> Vec<String> {
    a.iter().chain(b).map(|s| s.to_string()).collect()
}

/// The default ClusterRoles and ClusterRoleBindings, and the Role and
/// RoleBinding that let anyone read `kube-public/cluster-info`.
pub fn defaults() -> Vec<Value> {
    let core_read = [
        "pods",
        "pods/log",
        "pods/status",
        "configmaps",
        "endpoints",
        "persistentvolumeclaims",
        "persistentvolumeclaims/status",
        "replicationcontrollers",
        "replicationcontrollers/scale",
        "replicationcontrollers/status",
        "serviceaccounts",
        "services",
        "services/status",
        "bindings",
        "events",
        "limitranges",
        "namespaces",
        "namespaces/status",
        "resourcequotas",
        "resourcequotas/status",
    ];
    let apps = [
        "controllerrevisions",
        "daemonsets",
        "daemonsets/status",
        "deployments",
        "deployments/scale",
        "deployments/status",
        "replicasets",
        "replicasets/scale",
        "replicasets/status",
        "statefulsets",
        "statefulsets/scale",
        "statefulsets/status",
    ];
    let hpa = [
        "horizontalpodautoscalers",
        "horizontalpodautoscalers/status",
    ];
    let batch = ["cronjobs", "cronjobs/status", "jobs", "jobs/status"];
    let ingress = ["ingresses", "ingresses/status", "networkpolicies"];
    let pdb = ["poddisruptionbudgets", "poddisruptionbudgets/status"];
    let slices = ["endpointslices"];
    let view = vec![
        rule(READ, &[""], &core_read),
        rule(READ, &["apps"], &apps),
        rule(READ, &["autoscaling"], &hpa),
        rule(READ, &["batch"], &batch),
        rule(READ, &["networking.k8s.io"], &ingress),
        rule(READ, &["policy"], &pdb),
        rule(READ, &["discovery.k8s.io"], &slices),
    ];
    let core_write = [
        "pods",
        "pods/attach",
        "pods/exec",
        "pods/portforward",
        "pods/proxy",
        "configmaps",
        "events",
        "persistentvolumeclaims",
        "replicationcontrollers",
        "replicationcontrollers/scale",
        "secrets",
        "serviceaccounts",
        "services",
        "services/proxy",
    ];
    // Status is the controllers' to write: edit writes the rest.
    let writable = |list: &[&'static str]| -> Vec<&'static str> {
        list.iter()
            .copied()
            .filter(|r| !r.ends_with("/status"))
            .collect()
    };
    let edit = vec![
        rule(
            READ,
            &[""],
            &[
                "pods/attach",
                "pods/exec",
                "pods/portforward",
                "pods/proxy",
                "secrets",
                "services/proxy",
            ],
        ),
        rule(&["impersonate"], &[""], &["serviceaccounts"]),
        rule(WRITE, &[""], &core_write),
        rule(
            &["create"],
            &[""],
            &["pods/eviction", "serviceaccounts/token"],
        ),
        rule(WRITE, &["apps"], &writable(&apps)),
        rule(WRITE, &["autoscaling"], &writable(&hpa)),
        rule(WRITE, &["batch"], &writable(&batch)),
        rule(WRITE, &["networking.k8s.io"], &writable(&ingress)),
        rule(WRITE, &["policy"], &writable(&pdb)),
        rule(WRITE, &["discovery.k8s.io"], &slices),
    ];
    let admin = vec![
        rule(
            &["create"],
            &["authorization.k8s.io"],
            &["localsubjectaccessreviews"],
        ),
        json!({"verbs": with(READ, WRITE), "apiGroups": ["rbac.authorization.k8s.io"],
            "resources": ["rolebindings", "roles"]}),
    ];
    let node = vec![
        json!({"verbs": with(READ, &["create", "update", "patch", "delete"]), "apiGroups": [""], "resources": ["nodes"]}),
        rule(
            &["get", "patch", "update"],
            &[""],
            &["nodes/status", "pods/status"],
        ),
        json!({"verbs": with(READ, &["create", "delete"]), "apiGroups": [""], "resources": ["pods"]}),
        rule(
            &["create"],
            &[""],
            &["pods/eviction", "serviceaccounts/token"],
        ),
        rule(
            READ,
            &[""],
            &[
                "services",
                "endpoints",
                "configmaps",
                "secrets",
                "namespaces",
            ],
        ),
        rule(
            &["get"],
            &[""],
            &["persistentvolumeclaims", "persistentvolumes"],
        ),
        rule(
            &["create", "patch", "update"],
            &["", "events.k8s.io"],
            &["events"],
        ),
        json!({"verbs": with(READ, &["create", "update", "patch", "delete"]),
            "apiGroups": ["coordination.k8s.io"], "resources": ["leases"]}),
        rule(
            &["create", "get", "list", "watch"],
            &["certificates.k8s.io"],
            &["certificatesigningrequests"],
        ),
        rule(READ, &["node.k8s.io"], &["runtimeclasses"]),
        rule(READ, &["discovery.k8s.io"], &["endpointslices"]),
        rule(READ, &["networking.k8s.io"], &["networkpolicies"]),
        rule(&["create"], &["authentication.k8s.io"], &["tokenreviews"]),
        rule(
            &["create"],
            &["authorization.k8s.io"],
            &["subjectaccessreviews"],
        ),
    ];
    let none = json!({});
    vec![
        cluster_role(
            "cluster-admin",
            none.clone(),
            vec![rule(&["*"], &["*"], &["*"]), urls(&["*"], &["*"])],
        ),
        aggregated("admin", none.clone(), "admin"),
        aggregated(
            "edit",
            json!({"rbac.authorization.k8s.io/aggregate-to-admin": "true"}),
            "edit",
        ),
        aggregated(
            "view",
            json!({"rbac.authorization.k8s.io/aggregate-to-edit": "true"}),
            "view",
        ),
        cluster_role(
            "system:aggregate-to-admin",
            json!({"rbac.authorization.k8s.io/aggregate-to-admin": "true"}),
            admin,
        ),
        cluster_role(
            "system:aggregate-to-edit",
            json!({"rbac.authorization.k8s.io/aggregate-to-edit": "true"}),
            edit,
        ),
        cluster_role(
            "system:aggregate-to-view",
            json!({"rbac.authorization.k8s.io/aggregate-to-view": "true"}),
            view,
        ),
        cluster_role(
            "system:discovery",
            none.clone(),
            vec![urls(
                &["get"],
                &[
                    "/api",
                    "/api/*",
                    "/apis",
                    "/apis/*",
                    "/healthz",
                    "/livez",
                    "/openapi",
                    "/openapi/*",
                    "/readyz",
                    "/version",
                    "/version/",
                ],
            )],
        ),
        cluster_role(
            "system:basic-user",
            none.clone(),
            vec![
                rule(
                    &["create"],
                    &["authorization.k8s.io"],
                    &["selfsubjectaccessreviews", "selfsubjectrulesreviews"],
                ),
                rule(
                    &["create"],
                    &["authentication.k8s.io"],
                    &["selfsubjectreviews"],
                ),
            ],
        ),
        cluster_role(
            "system:public-info-viewer",
            none.clone(),
            vec![urls(
                &["get"],
                &["/healthz", "/livez", "/readyz", "/version", "/version/"],
            )],
        ),
        cluster_role("system:node", none.clone(), node),
        cluster_role(
            "system:service-account-issuer-discovery",
            none.clone(),
            vec![urls(
                &["get"],
                &["/.well-known/openid-configuration", "/openid/v1/jwks"],
            )],
        ),
        cluster_role(
            "system:auth-delegator",
            none.clone(),
            vec![
                rule(&["create"], &["authentication.k8s.io"], &["tokenreviews"]),
                rule(
                    &["create"],
                    &["authorization.k8s.io"],
                    &["subjectaccessreviews"],
                ),
            ],
        ),
        binding(
            "cluster-admin",
            "cluster-admin",
            &[("Group", super::MASTERS)],
        ),
        binding(
            "system:discovery",
            "system:discovery",
            &[("Group", "system:authenticated")],
        ),
        binding(
            "system:basic-user",
            "system:basic-user",
            &[("Group", "system:authenticated")],
        ),
        binding(
            "system:public-info-viewer",
            "system:public-info-viewer",
            &[
                ("Group", "system:authenticated"),
                ("Group", "system:unauthenticated"),
            ],
        ),
        binding("system:node", "system:node", &[("Group", "system:nodes")]),
        // Nodes joining with a bootstrap token ask for their client
        // certificate, which is approved for them; nodes renew their own.
        cluster_role(
            "system:node-bootstrapper",
            none.clone(),
            vec![rule(
                &["create", "get", "list", "watch"],
                &["certificates.k8s.io"],
                &["certificatesigningrequests"],
            )],
        ),
        cluster_role(
            NODE_CLIENT,
            none.clone(),
            vec![rule(
                &["create"],
                &["certificates.k8s.io"],
                &["certificatesigningrequests/nodeclient"],
            )],
        ),
        cluster_role(
            SELF_NODE_CLIENT,
            none.clone(),
            vec![rule(
                &["create"],
                &["certificates.k8s.io"],
                &["certificatesigningrequests/selfnodeclient"],
            )],
        ),
        binding(
            "shoal:kubelet-bootstrap",
            "system:node-bootstrapper",
            &[("Group", "system:bootstrappers")],
        ),
        binding(
            "shoal:node-autoapprove-bootstrap",
            NODE_CLIENT,
            &[("Group", "system:bootstrappers")],
        ),
        binding(
            "shoal:node-autoapprove-certificate-rotation",
            SELF_NODE_CLIENT,
            &[("Group", "system:nodes")],
        ),
        // Anyone may read the cluster's CA and its token signatures, which
        // a joining node checks with its token before it trusts the server.
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
            "metadata": namespaced("shoal:bootstrap-signer-clusterinfo", "kube-public"),
            "rules": [{"verbs": ["get"], "apiGroups": [""], "resources": ["configmaps"],
                "resourceNames": ["cluster-info"]}]}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": namespaced("shoal:bootstrap-signer-clusterinfo", "kube-public"),
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                "name": "shoal:bootstrap-signer-clusterinfo"},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User",
                "name": "system:anonymous"}]}),
        binding(
            "system:service-account-issuer-discovery",
            "system:service-account-issuer-discovery",
            &[("Group", "system:serviceaccounts")],
        ),
        // The servers of a cluster call each other under /peers/ with
        // their peer certificates; a server joining with a server token
        // may ask for what it needs to join, and nothing else there.
        cluster_role(
            "shoal:peer",
            none.clone(),
            vec![urls(&["post"], &["/peers/*"])],
        ),
        binding(
            "shoal:peer",
            "shoal:peer",
            &[("Group", "system:shoal-servers")],
        ),
        cluster_role(
            "shoal:server-join",
            none.clone(),
            vec![urls(&["post"], &["/peers/join"])],
        ),
        binding(
            "shoal:server-join",
            "shoal:server-join",
            &[("Group", SERVER_BOOTSTRAPPERS)],
        ),
    ]
}

/// The group of the bootstrap tokens servers join with (`shoal server
/// --join --token`), beside `system:bootstrappers`.
pub const SERVER_BOOTSTRAPPERS: &str = "system:bootstrappers:shoal:servers";

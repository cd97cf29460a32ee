use serde_json::json;

use super::*;
use shoal_machinery::user::ResourceAttributes;

fn user(name: &str, groups: &[&str]) -> User {
    User {
        name: name.into(),
        groups: groups
            .iter()
            .map(|g| g.to_string())
            .chain(["system:authenticated".to_string()])
            .collect(),
    }
}

fn req(verb: &str, group: &str, resource: &str, ns: &str, name: &str) -> Attributes {
    let (resource, subresource) = resource.split_once('/').unwrap_or((resource, ""));
    Attributes {
        verb: verb.into(),
        resource: Some(ResourceAttributes {
            group: group.into(),
            version: "v1".into(),
            resource: resource.into(),
            subresource: subresource.into(),
            namespace: ns.into(),
            name: name.into(),
        }),
        path: String::new(),
    }
}

/// The default policy plus `extra` objects.
fn policy(extra: Vec<Value>) -> Policy {
    let all: Vec<Value> = defaults().into_iter().chain(extra).collect();
    let of =
        |kind: &str| -> Vec<Value> { all.iter().filter(|o| o["kind"] == kind).cloned().collect() };
    Policy::new(
        &of("ClusterRole"),
        &of("Role"),
        &of("ClusterRoleBinding"),
        &of("RoleBinding"),
    )
}

fn role_binding(ns: &str, name: &str, kind: &str, role: &str, subject: Value) -> Value {
    json!({"kind": "RoleBinding", "metadata": {"namespace": ns, "name": name},
        "roleRef": {"kind": kind, "name": role}, "subjects": [subject]})
}

#[test]
fn masters_may_do_everything_and_nobody_else_by_default() {
    let p = policy(vec![]);
    let admin = user("admin", &[MASTERS]);
    assert!(
        p.authorize(&admin, &req("delete", "", "nodes", "", "n1"))
            .is_some()
    );
    let alice = user("alice", &[]);
    assert!(
        p.authorize(&alice, &req("list", "", "pods", "default", ""))
            .is_none()
    );
    // Discovery and self-review are everyone's.
    let discovery = Attributes {
        verb: "get".into(),
        resource: None,
        path: "/apis/apps/v1".into(),
    };
    assert!(p.authorize(&alice, &discovery).is_some());
    assert!(
        p.authorize(
            &alice,
            &req(
                "create",
                "authorization.k8s.io",
                "selfsubjectaccessreviews",
                "",
                ""
            )
        )
        .is_some()
    );
}

#[test]
fn role_bindings_grant_inside_their_namespace_only() {
    let p = policy(vec![
        role_binding(
            "team",
            "alice-edit",
            "ClusterRole",
            "edit",
            json!({"kind": "User", "name": "alice"}),
        ),
        json!({"kind": "Role", "metadata": {"namespace": "team", "name": "cm-one"},
            "rules": [{"verbs": ["get"], "apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["one"]}]}),
        role_binding(
            "team",
            "bob-cm",
            "Role",
            "cm-one",
            json!({"kind": "Group", "name": "readers"}),
        ),
    ]);
    let alice = user("alice", &[]);
    assert!(
        p.authorize(&alice, &req("create", "apps", "deployments", "team", ""))
            .is_some()
    );
    assert!(
        p.authorize(&alice, &req("get", "", "pods/log", "team", "p"))
            .is_some()
    );
    assert!(
        p.authorize(&alice, &req("list", "", "pods", "other", ""))
            .is_none()
    );
    // edit does not manage roles; admin (which aggregates edit) does.
    assert!(
        p.authorize(
            &alice,
            &req(
                "create",
                "rbac.authorization.k8s.io",
                "rolebindings",
                "team",
                ""
            )
        )
        .is_none()
    );
    assert!(
        p.authorize(&alice, &req("list", "", "nodes", "", ""))
            .is_none()
    );
    let bob = user("bob", &["readers"]);
    assert!(
        p.authorize(&bob, &req("get", "", "configmaps", "team", "one"))
            .is_some()
    );
    assert!(
        p.authorize(&bob, &req("get", "", "configmaps", "team", "two"))
            .is_none()
    );
    assert!(
        p.authorize(&bob, &req("list", "", "configmaps", "team", ""))
            .is_none()
    );
}

#[test]
fn aggregation_and_service_accounts() {
    let p = policy(vec![
        role_binding(
            "team",
            "ci",
            "ClusterRole",
            "admin",
            json!({"kind": "ServiceAccount", "name": "ci", "namespace": "team"}),
        ),
        json!({"kind": "ClusterRole", "metadata": {"name": "widgets",
            "labels": {"rbac.authorization.k8s.io/aggregate-to-view": "true"}},
            "rules": [{"verbs": ["get"], "apiGroups": ["example.com"], "resources": ["widgets"]}]}),
    ]);
    let ci = user(
        &service_account_user("team", "ci"),
        &["system:serviceaccounts"],
    );
    // admin ⊇ edit ⊇ view ⊇ widgets, through three levels of aggregation.
    for (verb, group, resource) in [
        ("create", "rbac.authorization.k8s.io", "roles"),
        ("delete", "", "secrets"),
        ("watch", "apps", "deployments"),
        ("get", "example.com", "widgets"),
    ] {
        assert!(
            p.authorize(&ci, &req(verb, group, resource, "team", "x"))
                .is_some(),
            "{verb} {resource}"
        );
    }
    assert!(
        p.authorize(&user("ci", &[]), &req("get", "", "pods", "team", "x"))
            .is_none()
    );
    let (rules, urls) = p.rules_for(&ci, "team");
    assert!(
        rules
            .iter()
            .any(|r| r.resources.contains(&"widgets".to_string()))
    );
    assert!(
        urls.iter()
            .any(|r| r.non_resource_urls.contains(&"/api".to_string()))
    );
    let (elsewhere, _) = p.rules_for(&ci, "other");
    assert!(
        !elsewhere
            .iter()
            .any(|r| r.resources.contains(&"secrets".to_string()))
    );
}

#[test]
fn refusals_read_as_kubernetes_writes_them() {
    let alice = user("alice", &[]);
    assert_eq!(
        forbidden_message(&alice, &req("list", "", "pods", "default", "")),
        "pods is forbidden: User \"alice\" cannot list resource \"pods\" in API group \"\" in the namespace \"default\""
    );
    assert_eq!(
        forbidden_message(&alice, &req("get", "apps", "deployments/scale", "", "d")),
        "deployments.apps \"d\" is forbidden: User \"alice\" cannot get resource \"deployments/scale\" in API group \"apps\" at the cluster scope"
    );
}

#[test]
fn nobody_grants_what_they_do_not_hold() {
    let p = policy(vec![role_binding(
        "team",
        "alice-admin",
        "ClusterRole",
        "admin",
        json!({"kind": "User", "name": "alice"}),
    )]);
    let alice = user("alice", &[]);
    let edit = p.role_rules("ClusterRole", "", "edit").unwrap();
    assert!(p.covers(&alice, &edit, "team").is_ok());
    assert!(p.covers(&alice, &edit, "other").is_err());
    let admin_everything = p.role_rules("ClusterRole", "", "cluster-admin").unwrap();
    let missing = p.covers(&alice, &admin_everything, "team").unwrap_err();
    assert!(
        missing.iter().any(|m| m.contains("Resources:[\"*\"]")),
        "{missing:?}"
    );
}

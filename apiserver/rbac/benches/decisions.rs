//! Authorizer decisions a second with many bindings: BINDINGS RoleBindings
//! (default 10,000) spread over 1,000 namespaces, one user each, bound to
//! the default aggregated `edit` and `view` roles and to a Role of their
//! own with resource names, plus 100 ClusterRoleBindings for groups.
//! Decisions alternate allowed and refused requests of users found at
//! random, as the API's authorization layer asks them; the policy's
//! build time (what a change to any role or binding costs) is reported
//! too.
//!
//! Run with `cargo bench -p shoal-rbac --bench decisions`.

use std::time::Instant;

use serde_json::{Value, json};
use shoal_machinery::user::{Attributes, ResourceAttributes, User};
use shoal_rbac::Policy;

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn attributes(verb: &str, resource: &str, namespace: &str, name: &str) -> Attributes {
    Attributes {
        verb: verb.into(),
        resource: Some(ResourceAttributes {
            group: String::new(),
            version: "v1".into(),
            resource: resource.into(),
            subresource: String::new(),
            namespace: namespace.into(),
            name: name.into(),
        }),
        path: String::new(),
    }
}

fn main() {
    let bindings = env_number("BINDINGS", 10_000);
    let decisions = env_number("DECISIONS", 1_000_000);
    let namespaces = bindings.clamp(1, 1_000);
    let cluster_roles = shoal_rbac::defaults()
        .into_iter()
        .filter(|o| o["kind"] == "ClusterRole")
        .collect::<Vec<Value>>();
    let mut roles = Vec::new();
    let mut role_bindings = Vec::new();
    for i in 0..bindings {
        let ns = format!("ns-{}", i % namespaces);
        let user = format!("user-{i}");
        let (kind, role) = match i % 3 {
            0 => ("ClusterRole", "edit".to_string()),
            1 => ("ClusterRole", "view".to_string()),
            _ => {
                roles.push(
                    json!({"metadata": {"name": format!("own-{i}"), "namespace": ns},
                    "rules": [{"verbs": ["get", "update"], "apiGroups": [""],
                        "resources": ["configmaps"], "resourceNames": [format!("cm-{i}")]}]}),
                );
                ("Role", format!("own-{i}"))
            }
        };
        role_bindings.push(
            json!({"metadata": {"name": format!("b-{i}"), "namespace": ns},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": kind, "name": role},
            "subjects": [{"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": user}]}),
        );
    }
    let cluster_bindings: Vec<Value> = (0..100)
        .map(|g| {
            json!({"metadata": {"name": format!("cb-{g}")},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
                "subjects": [{"kind": "Group", "apiGroup": "rbac.authorization.k8s.io", "name": format!("group-{g}")}]})
        })
        .collect();
    let mut cluster_bindings = cluster_bindings;
    cluster_bindings.extend(
        shoal_rbac::defaults()
            .into_iter()
            .filter(|o| o["kind"] == "ClusterRoleBinding"),
    );

    let mut builds = Vec::new();
    let mut policy = None;
    for _ in 0..5 {
        let start = Instant::now();
        policy = Some(Policy::new(
            &cluster_roles,
            &roles,
            &cluster_bindings,
            &role_bindings,
        ));
        builds.push(start.elapsed().as_secs_f64() * 1000.0);
    }
    builds.sort_by(f64::total_cmp);
    let policy = policy.expect("built");

    // A fixed pseudo-random walk over users, so each run asks the same.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let (mut allowed, mut refused) = (0usize, 0usize);
    let start = Instant::now();
    for d in 0..decisions {
        let i = (next() % bindings as u64) as usize;
        let own = format!("ns-{}", i % namespaces);
        let user = User {
            name: format!("user-{i}"),
            groups: vec![format!("group-{}", i % 200), "system:authenticated".into()],
        };
        let a = match (d % 4, i % 3) {
            (0, 0) => attributes("create", "pods", &own, ""),
            (0, _) => attributes("list", "pods", &own, ""),
            (1, 2) => attributes("update", "configmaps", &own, &format!("cm-{i}")),
            (1, _) => attributes("get", "secrets", &own, "s"),
            (2, _) => attributes("delete", "pods", "ns-other", "p"),
            _ => attributes("create", "clusterroles", "", ""),
        };
        if policy.authorize(&user, &a).is_some() {
            allowed += 1;
        } else {
            refused += 1;
        }
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{bindings} RoleBindings over {namespaces} namespaces, {} ClusterRoleBindings: policy built in {:.1} ms (median of 5)",
        cluster_bindings.len(),
        builds[2]
    );
    println!(
        "{decisions} decisions in {secs:.2} s: {:.0} decisions/s ({:.2} µs each; {allowed} allowed, {refused} refused)",
        decisions as f64 / secs,
        secs * 1e6 / decisions as f64
    );
}

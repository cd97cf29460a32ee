#![no_main]
//! RBAC over any roles and bindings: building the policy and deciding
//! never panic; `system:masters` may always; a user no binding names, in
//! no group, may do nothing; and granting more never takes a permission
//! away (a policy with one more binding allows all the first allowed).

use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use serde_json::{Value, json};
use shoal_machinery::user::{Attributes, ResourceAttributes, User};
use shoal_rbac::Policy;

const WORDS: &[&str] = &[
    "*", "", "get", "list", "create", "delete", "pods", "pods/log", "*/status", "secrets",
    "apps", "deployments", "a", "b", "ns1", "ns2", "/healthz", "/api/*", "system:authenticated",
    "alice", "bob", "devs", "edit", "view", "admin", "x/y/z", "pods/*",
];

fn word(u: &mut Unstructured<'_>) -> Result<&'static str> {
    u.choose(WORDS).copied()
}

fn words(u: &mut Unstructured<'_>) -> Result<Vec<&'static str>> {
    let n = u.int_in_range(0..=3)?;
    (0..n).map(|_| word(u)).collect()
}

fn rule(u: &mut Unstructured<'_>) -> Result<Value> {
    Ok(if u.ratio(1, 5)? {
        json!({"verbs": words(u)?, "nonResourceURLs": words(u)?})
    } else {
        json!({"verbs": words(u)?, "apiGroups": words(u)?, "resources": words(u)?,
            "resourceNames": words(u)?})
    })
}

fn role(u: &mut Unstructured<'_>, namespaced: bool) -> Result<Value> {
    let rules = (0..u.int_in_range(0..=3)?)
        .map(|_| rule(u))
        .collect::<Result<Vec<_>>>()?;
    let mut r = json!({"metadata": {"name": word(u)?}, "rules": rules});
    if namespaced {
        r["metadata"]["namespace"] = json!(word(u)?);
    } else if u.ratio(1, 4)? {
        r["aggregationRule"] = json!({"clusterRoleSelectors": [{"matchLabels": {word(u)?: "true"}}]});
        r["metadata"]["labels"] = json!({word(u)?: "true"});
    }
    Ok(r)
}

fn binding(u: &mut Unstructured<'_>, namespaced: bool) -> Result<Value> {
    let kind = *u.choose(&["User", "Group", "ServiceAccount", "Other"])?;
    let mut subject = json!({"kind": kind, "name": word(u)?});
    if kind == "ServiceAccount" {
        subject["namespace"] = json!(word(u)?);
    }
    let mut b = json!({"metadata": {"name": word(u)?},
        "roleRef": {"kind": *u.choose(&["Role", "ClusterRole", "Nope"])?, "name": word(u)?},
        "subjects": [subject]});
    if namespaced {
        b["metadata"]["namespace"] = json!(word(u)?);
    }
    Ok(b)
}

fn attributes(u: &mut Unstructured<'_>) -> Result<Attributes> {
    Ok(if u.ratio(1, 5)? {
        Attributes {
            verb: word(u)?.into(),
            resource: None,
            path: word(u)?.into(),
        }
    } else {
        Attributes {
            verb: word(u)?.into(),
            resource: Some(ResourceAttributes {
                group: word(u)?.into(),
                version: "v1".into(),
                resource: word(u)?.into(),
                subresource: word(u)?.into(),
                namespace: word(u)?.into(),
                name: word(u)?.into(),
            }),
            path: String::new(),
        }
    })
}

fn run(u: &mut Unstructured<'_>) -> Result<()> {
    let mut lists: [Vec<Value>; 4] = Default::default();
    for (i, list) in lists.iter_mut().enumerate() {
        for _ in 0..u.int_in_range(0..=4)? {
            list.push(if i < 2 { role(u, i == 1)? } else { binding(u, i == 3)? });
        }
    }
    let policy = Policy::new(&lists[0], &lists[1], &lists[2], &lists[3]);
    let namespaced: bool = u.arbitrary()?;
    let extra = binding(u, namespaced)?;
    let mut more = lists.clone();
    if extra["metadata"].get("namespace").is_some() {
        more[3].push(extra);
    } else {
        more[2].push(extra);
    }
    let wider = Policy::new(&more[0], &more[1], &more[2], &more[3]);
    for _ in 0..8 {
        let a = attributes(u)?;
        let user = User {
            name: word(u)?.into(),
            groups: words(u)?.into_iter().map(String::from).collect(),
        };
        let allowed = policy.authorize(&user, &a).is_some();
        assert!(!allowed || wider.authorize(&user, &a).is_some(), "a binding took a permission away");
        let _ = policy.rules_for(&user, word(u)?);
        let masters = User {
            name: user.name.clone(),
            groups: vec!["system:masters".into()],
        };
        assert!(policy.authorize(&masters, &a).is_some());
        let stranger = User {
            name: "nobody-named-this".into(),
            groups: Vec::new(),
        };
        assert!(policy.authorize(&stranger, &a).is_none());
    }
    Ok(())
}

fuzz_target!(|data: &[u8]| {
    let _ = run(&mut Unstructured::new(data));
});

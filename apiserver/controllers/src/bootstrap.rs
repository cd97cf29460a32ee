//! Bootstrap tokens' controllers, as kube-controller-manager's
//! `bootstrapsigner` and `tokencleaner`: the `kube-public/cluster-info`
//! ConfigMap holds the cluster's kubeconfig (its CA, no credentials) and,
//! for each unexpired token meant for signing, the token's detached JWS of
//! it, so that a joining node holding the token can trust the CA; expired
//! tokens' Secrets are deleted.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use super::{Action, Snapshot, res};
use shoal_machinery::bootstrap::{self, CLUSTER_INFO, JWS_PREFIX, Token};
use shoal_machinery::meta;

/// The bootstrap tokens the snapshot's Secrets hold.
fn tokens(s: &Snapshot) -> impl Iterator<Item = (&Value, Token)> {
    s.of("secrets")
        .iter()
        .filter(|o| meta::namespace(o) == "kube-system")
        .filter_map(|o| Token::from_secret(o).map(|t| (o.as_ref(), t)))
}

/// Creates `cluster-info` with `kubeconfig` when it is missing, and keeps
/// its token signatures those of today's signing tokens.
pub fn reconcile_cluster_info(s: &Snapshot, kubeconfig: Option<&str>, now: i64) -> Vec<Action> {
    let (ns, name) = CLUSTER_INFO;
    let r = res("ConfigMap", "");
    let current = s
        .of("configmaps")
        .iter()
        .find(|o| meta::namespace(o) == ns && meta::name(o) == name);
    let data = current
        .and_then(|o| o.get("data"))
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let Some(config) = data
        .get("kubeconfig")
        .and_then(Value::as_str)
        .or(kubeconfig)
        .map(str::to_string)
    else {
        return Vec::new();
    };
    let want: BTreeMap<String, String> = tokens(s)
        .filter(|(_, t)| t.signing && !t.expired(now))
        .map(|(_, t)| {
            (
                format!("{JWS_PREFIX}{}", t.id),
                bootstrap::detached_jws(&t.id, &t.secret, &config),
            )
        })
        .collect();
    let Some(current) = current else {
        let mut data = Map::new();
        data.insert("kubeconfig".into(), json!(config));
        for (k, v) in want {
            data.insert(k, json!(v));
        }
        return vec![Action::Create {
            resource: r,
            namespace: ns.into(),
            object: json!({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": name, "namespace": ns}, "data": data}),
        }];
    };
    let mut patch = Map::new();
    for (k, v) in &data {
        if k.starts_with(JWS_PREFIX) && !want.contains_key(k) {
            patch.insert(k.clone(), Value::Null);
        } else if k.starts_with(JWS_PREFIX) && want.get(k).map(String::as_str) != v.as_str() {
            patch.insert(k.clone(), json!(want[k]));
        }
    }
    for (k, v) in &want {
        if !data.contains_key(k) {
            patch.insert(k.clone(), json!(v));
        }
    }
    if patch.is_empty() {
        return Vec::new();
    }
    vec![Action::Patch {
        resource: r,
        namespace: ns.into(),
        name: meta::name(current).to_string(),
        patch: json!({"data": patch}),
        status: false,
    }]
}

/// Deletes the Secrets of expired bootstrap tokens.
pub fn reconcile_expired_tokens(s: &Snapshot, now: i64) -> Vec<Action> {
    let r = res("Secret", "");
    tokens(s)
        .filter(|(_, t)| t.expired(now))
        .map(|(o, _)| Action::Delete {
            resource: r,
            namespace: "kube-system".into(),
            name: meta::name(o).to_string(),
        })
        .collect()
}

/// When the next bootstrap token expires, if one will.
pub fn next_expiry(s: &Snapshot) -> Option<jiff::Timestamp> {
    tokens(s)
        .filter_map(|(_, t)| t.expires)
        .min()
        .and_then(|t| jiff::Timestamp::from_second(t).ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::snap;
    use base64::Engine as _;

    fn token(id: &str, expiration: &str) -> Value {
        let b64 = |v: &str| json!(base64::engine::general_purpose::STANDARD.encode(v));
        let mut data = json!({"token-id": b64(id), "token-secret": b64("0123456789abcdef"),
            "usage-bootstrap-signing": b64("true")});
        if !expiration.is_empty() {
            data["expiration"] = b64(expiration);
        }
        json!({"metadata": {"name": format!("bootstrap-token-{id}"), "namespace": "kube-system"},
            "type": "bootstrap.kubernetes.io/token", "data": data})
    }

    #[test]
    fn cluster_info_is_made_and_signed_by_each_live_token() {
        let now = 2_000_000_000;
        let s = snap(&[
            ("secrets", token("aaaaaa", "")),
            ("secrets", token("bbbbbb", "2001-01-01T00:00:00Z")),
        ]);
        let actions = reconcile_cluster_info(&s, Some("KC"), now);
        let [Action::Create { object, .. }] = &actions[..] else {
            panic!("{actions:?}")
        };
        assert_eq!(object["data"]["kubeconfig"], "KC");
        assert_eq!(
            object["data"]["jws-kubeconfig-aaaaaa"],
            bootstrap::detached_jws("aaaaaa", "0123456789abcdef", "KC")
        );
        assert!(object["data"].get("jws-kubeconfig-bbbbbb").is_none());

        // A revoked token's signature goes; a new one's comes.
        let stored = json!({"metadata": {"name": "cluster-info", "namespace": "kube-public"},
            "data": {"kubeconfig": "KC", "jws-kubeconfig-zzzzzz": "x",
                "jws-kubeconfig-aaaaaa": bootstrap::detached_jws("aaaaaa", "0123456789abcdef", "KC")}});
        let s = snap(&[
            ("secrets", token("cccccc", "")),
            ("secrets", token("aaaaaa", "")),
            ("configmaps", stored),
        ]);
        let actions = reconcile_cluster_info(&s, None, now);
        let [Action::Patch { patch, .. }] = &actions[..] else {
            panic!("{actions:?}")
        };
        assert_eq!(patch["data"]["jws-kubeconfig-zzzzzz"], Value::Null);
        assert!(patch["data"]["jws-kubeconfig-cccccc"].is_string());
        assert!(patch["data"].get("jws-kubeconfig-aaaaaa").is_none());
        // Without a stored or configured kubeconfig nothing is made.
        assert!(reconcile_cluster_info(&snap(&[]), None, now).is_empty());
    }

    #[test]
    fn expired_tokens_are_deleted() {
        let s = snap(&[
            ("secrets", token("aaaaaa", "")),
            ("secrets", token("bbbbbb", "2001-01-01T00:00:00Z")),
        ]);
        let gone = crate::test_support::deleted(&reconcile_expired_tokens(&s, 2_000_000_000));
        assert_eq!(gone, ["secrets/bootstrap-token-bbbbbb"]);
        assert_eq!(next_expiry(&s).unwrap().as_second(), 978_307_200);
    }
}

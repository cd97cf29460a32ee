//! Bearer tokens over HTTP: a service-account token on a request names its
//! service account (verified, unexpired, for the API's audience, and its
//! service account and bound pod still the ones it was issued for); a
//! bootstrap token (`ID.SECRET`) names `system:bootstrap:ID` while its
//! Secret in `kube-system` allows it; the
//! TokenRequest subresource (`kubectl create token`) issues them;
//! TokenReview lets others check one; the OpenID discovery documents
//! publish the key.
//!
//! May import: `authn` (the user), `request` (bodies).

use std::sync::Arc;

use serde_json::{Value, json};

use crate::ApiState;
use crate::authn::{AUTHENTICATED, User};
use shoal_machinery::error::{ApiError, Result};
use shoal_machinery::{bootstrap, meta};
use shoal_pki::tokens::{Claims, ISSUER, KubernetesClaims, ObjectRef};
use shoal_registry::admission::node_restriction;
use shoal_registry::resources;

/// The token of a request's `Authorization: Bearer` header, if any.
pub(crate) fn bearer(headers: &http::HeaderMap) -> Option<&str> {
    headers
        .get(http::header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

/// The user a service-account token names, for `audiences`; `None` when
/// the token is not valid now.
pub(crate) fn authenticate(state: &ApiState, token: &str, audiences: &[&str]) -> Option<User> {
    if let Some((id, secret)) = bootstrap::parse(token) {
        return bootstrap_user(state, id, secret);
    }
    let tokens = state.tokens.as_ref()?;
    let claims = tokens.verify(token, audiences).ok()?;
    let k = &claims.kubernetes;
    let sa = resources::by_kind("", "ServiceAccount")?;
    let account = state
        .objects
        .get(sa, &k.namespace, &k.serviceaccount.name)
        .ok()?;
    if meta::uid(&account.value) != k.serviceaccount.uid {
        return None;
    }
    if let Some(pod) = &k.pod {
        let pods = resources::by_kind("", "Pod")?;
        let p = state.objects.get(pods, &k.namespace, &pod.name).ok()?;
        if meta::uid(&p.value) != pod.uid
            || p.value.pointer("/metadata/deletionTimestamp").is_some()
        {
            return None;
        }
    }
    Some(User {
        name: claims.sub,
        groups: vec![
            "system:serviceaccounts".into(),
            format!("system:serviceaccounts:{}", k.namespace),
            AUTHENTICATED.into(),
        ],
    })
}

/// The user of bootstrap token `id.secret`: its Secret exists, is meant
/// for authentication, has not expired and holds this secret.
fn bootstrap_user(state: &ApiState, id: &str, secret: &str) -> Option<User> {
    let secrets = resources::by_kind("", "Secret")?;
    let stored = state
        .objects
        .get(
            secrets,
            "kube-system",
            &format!("{}{id}", bootstrap::SECRET_PREFIX),
        )
        .ok()?;
    let token = bootstrap::Token::from_secret(&stored.value)?;
    (token.authentication && !token.expired(now_secs()) && token.matches(secret))
        .then(|| token.user())
}

fn now_secs() -> i64 {
    jiff::Timestamp::now().as_second()
}

/// Answers a TokenRequest for the service account `ns/name`: a token for
/// its audiences (the API's by default), valid `expirationSeconds` (an
/// hour by default, at least ten minutes), bound to a pod when asked. A
/// node may ask only for tokens bound to pods bound to it.
pub(crate) fn request_token(
    state: &ApiState,
    asker: Option<&User>,
    ns: &str,
    name: &str,
    body: &Value,
) -> Result<Value> {
    let tokens = state
        .tokens
        .as_ref()
        .ok_or_else(|| ApiError::internal("no service-account key"))?;
    let sa = resources::by_kind("", "ServiceAccount").expect("served");
    let account = state.objects.get(sa, ns, name)?;
    let spec = body.get("spec").cloned().unwrap_or_else(|| json!({}));
    let expiration = spec
        .get("expirationSeconds")
        .and_then(Value::as_i64)
        .unwrap_or(3600);
    if expiration < 600 {
        return Err(invalid(
            "spec.expirationSeconds",
            &json!(expiration),
            "may not specify a duration less than 10 minutes",
        ));
    }
    let expiration = expiration.min(365 * 24 * 3600);
    let audiences: Vec<String> = match spec.get("audiences").and_then(Value::as_array) {
        Some(a) if !a.is_empty() => a
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect(),
        _ => vec![ISSUER.to_string()],
    };
    let pod = match spec.get("boundObjectRef").filter(|b| !b.is_null()) {
        None => None,
        Some(b) => {
            let kind = b.get("kind").and_then(Value::as_str).unwrap_or_default();
            if kind != "Pod" {
                return Err(invalid(
                    "spec.boundObjectRef.kind",
                    &json!(kind),
                    "supported values: \"Pod\"",
                ));
            }
            let pod_name = b.get("name").and_then(Value::as_str).unwrap_or_default();
            let pods = resources::by_kind("", "Pod").expect("served");
            let p = state.objects.get(pods, ns, pod_name)?;
            let uid = meta::uid(&p.value).to_string();
            if let Some(want) = b
                .get("uid")
                .and_then(Value::as_str)
                .filter(|u| !u.is_empty())
                && want != uid
            {
                return Err(ApiError {
                    code: 409,
                    reason: "Conflict",
                    message: format!(
                        "the UID in the bound object reference ({want}) does not match the UID in record. The object might have been deleted and then recreated"
                    ),
                    details: None,
                });
            }
            if let Some(node) = asker.and_then(node_restriction::node_name)
                && meta::str_at(&p.value, "/spec/nodeName") != Some(node)
            {
                return Err(node_token_refused(node));
            }
            Some(ObjectRef {
                name: pod_name.to_string(),
                uid,
            })
        }
    };
    if let (None, Some(node)) = (&pod, asker.and_then(node_restriction::node_name)) {
        return Err(node_token_refused(node));
    }
    let now = now_secs();
    let claims = Claims {
        iss: ISSUER.into(),
        sub: shoal_rbac::service_account_user(ns, name),
        aud: audiences.clone(),
        exp: now + expiration,
        iat: now,
        nbf: now,
        jti: meta::random_suffix(24),
        kubernetes: KubernetesClaims {
            namespace: ns.to_string(),
            serviceaccount: ObjectRef {
                name: name.to_string(),
                uid: meta::uid(&account.value).to_string(),
            },
            pod,
        },
    };
    let token = tokens.issue(&claims).map_err(ApiError::internal)?;
    let expires = jiff::Timestamp::from_second(claims.exp)
        .map(|t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_default();
    let mut spec = spec;
    spec["audiences"] = json!(audiences);
    spec["expirationSeconds"] = json!(expiration);
    Ok(json!({
        "kind": "TokenRequest",
        "apiVersion": "authentication.k8s.io/v1",
        "metadata": {"name": name, "namespace": ns, "creationTimestamp": meta::now()},
        "spec": spec,
        "status": {"token": token, "expirationTimestamp": expires},
    }))
}

/// Answers a TokenReview: whether its token is valid for its audiences (the
/// API's by default), and whose it is.
pub(crate) fn review(state: &ApiState, mut body: Value) -> Value {
    let token = body
        .pointer("/spec/token")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let mut audiences = body
        .get("spec")
        .map_or_else(Vec::new, |s| meta::strings(s, "audiences"));
    if audiences.is_empty() {
        audiences.push(ISSUER.to_string());
    }
    let refs: Vec<&str> = audiences.iter().map(String::as_str).collect();
    body["status"] = match authenticate(state, &token, &refs) {
        Some(user) => json!({"authenticated": true, "audiences": audiences,
            "user": {"username": user.name, "groups": user.groups}}),
        None => json!({"authenticated": false, "error": "invalid bearer token"}),
    };
    body["apiVersion"] = json!("authentication.k8s.io/v1");
    body["kind"] = json!("TokenReview");
    body
}

/// `/.well-known/openid-configuration`.
pub(crate) fn openid_configuration(state: &ApiState, host: Option<&str>) -> Result<Value> {
    state.tokens.as_ref().ok_or_else(ApiError::no_route)?;
    let host = host.unwrap_or("kubernetes.default.svc");
    Ok(shoal_pki::tokens::openid_configuration(&format!(
        "https://{host}/openid/v1/jwks"
    )))
}

/// `/openid/v1/jwks`.
pub(crate) fn jwks(state: &ApiState) -> Result<Value> {
    state
        .tokens
        .as_ref()
        .map(|t| t.jwks())
        .ok_or_else(ApiError::no_route)
}

fn node_token_refused(node: &str) -> ApiError {
    ApiError::forbidden(
        format!("node \"{node}\" can only get a token bound to a pod on that node"),
        None,
    )
}

fn invalid(field: &str, value: &Value, why: &str) -> ApiError {
    let mut c = shoal_machinery::error::Causes::default();
    c.invalid(field, value, why);
    c.into_result("authentication.k8s.io", "TokenRequest", "")
        .expect_err("a cause was given")
}

/// The keys, shared by every request.
pub type TokenKeys = Arc<shoal_pki::tokens::Tokens>;

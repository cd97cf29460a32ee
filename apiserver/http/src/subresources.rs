//! The subresources with handlers of their own: a Deployment's (or any
//! scalable resource's) `scale`, a pod's `binding`, and the access reviews
//! `kubectl auth can-i` creates, answered by the server's authorizer.

use axum::body::Body;
use http::{Method, Request, Response, StatusCode};
use serde_json::{Value, json};

use super::request::{Query, content_type, parse_json, read_body, write_opts};
use super::{ApiState, json_response, ok, status_response};
use crate::authn::Authenticated;
use crate::route::{Attributes, ResourceAttributes};
use shoal_machinery::error::{ApiError, Result};
use shoal_machinery::jsonpath;
use shoal_registry::kinds;
use shoal_registry::objects::{Objects, PatchType};
use shoal_registry::resources::Resource;

/// The autoscaling/v1 Scale view of `obj`: a built-in kind's
/// `.spec.replicas`, or the paths a custom resource's definition names.
pub(super) fn scale_of(r: &Resource, obj: &Value) -> Value {
    let m = &obj["metadata"];
    let first = |path: &str| jsonpath::select(obj, path).first().map(|v| (*v).clone());
    let (replicas, current, selector) = match r.custom.and_then(|c| c.scale.as_ref()) {
        Some(paths) => (
            first(&paths.spec_replicas),
            first(&paths.status_replicas),
            paths
                .label_selector
                .as_deref()
                .and_then(first)
                .and_then(|s| s.as_str().map(String::from)),
        ),
        None => (
            obj.pointer("/spec/replicas").cloned(),
            obj.pointer("/status/replicas").cloned(),
            obj.pointer(kinds::of(r).scale_selector)
                .and_then(Value::as_object)
                .map(|l| {
                    l.iter()
                        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                        .collect::<Vec<_>>()
                        .join(",")
                }),
        ),
    };
    json!({
        "kind": "Scale", "apiVersion": "autoscaling/v1",
        "metadata": {"name": m["name"], "namespace": m["namespace"], "uid": m["uid"], "resourceVersion": m["resourceVersion"], "creationTimestamp": m["creationTimestamp"]},
        "spec": {"replicas": replicas.unwrap_or(json!(0))},
        "status": {"replicas": current.unwrap_or(json!(0)), "selector": selector.unwrap_or_default()},
    })
}

/// The merge patch that sets the replica count `scale` writes to.
pub(super) fn replicas_patch(r: &Resource, replicas: i64) -> Value {
    let path = r
        .custom
        .and_then(|c| c.scale.as_ref())
        .map_or(".spec.replicas", |p| p.spec_replicas.as_str());
    let keys = jsonpath::keys(path).unwrap_or_else(|| vec!["spec".into(), "replicas".into()]);
    keys.iter()
        .rev()
        .fold(json!(replicas), |inner, k| json!({ k: inner }))
}

/// `PUT` or `PATCH` of a `scale`: the replicas it names, written to the
/// object.
pub(super) async fn update_scale(
    state: &ApiState,
    r: &'static Resource,
    ns: &str,
    name: &str,
    q: &Query,
    req: Request<Body>,
) -> Result<Response<Body>> {
    let objects = &state.objects;
    let ns = ns.to_string();
    let is_patch = req.method() == Method::PATCH;
    let opts = write_opts(q, &req)?;
    let (headers, body) = read_body(req).await?;
    let ct = content_type(&headers);
    let body = parse_json(&body)?;
    let cur = objects.get(r, &ns, name)?;
    let scale = if is_patch {
        match PatchType::from_content_type(ct)? {
            PatchType::Json => shoal_machinery::patch::json(&scale_of(r, &cur.value), &body)?,
            PatchType::Merge => shoal_machinery::patch::merge(&scale_of(r, &cur.value), &body),
            PatchType::Strategic => {
                shoal_machinery::patch::strategic_merge(&scale_of(r, &cur.value), &body)?
            }
        }
    } else {
        body
    };
    let replicas = scale
        .pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .ok_or_else(|| ApiError::bad_request("spec.replicas is required"))?;
    let p = replicas_patch(r, replicas);
    let w = objects
        .patch(r, &ns, name, PatchType::Merge, &p, None, opts)
        .await?;
    Ok(ok(&scale_of(r, &w.object)))
}

/// `POST` of a pod's `binding`: the pod is placed on the named node.
pub(super) async fn bind(
    objects: &Objects,
    ns: &str,
    name: &str,
    req: Request<Body>,
) -> Result<Response<Body>> {
    let (_, body) = read_body(req).await?;
    let binding = parse_json(&body)?;
    let node = binding
        .pointer("/target/name")
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::bad_request("binding.target.name is required"))?;
    shoal_registry::binding::bind(objects, ns, name, node).await?;
    Ok(status_response(
        StatusCode::CREATED,
        shoal_machinery::error::success_status_json(201),
    ))
}

/// `POST` of a pod's `eviction` (`policy/v1` Eviction, its
/// `deleteOptions` those of the delete): the pod is deleted if its
/// disruption budget allows, else 429 with the budget's reason.
pub(super) async fn evict(
    objects: &Objects,
    ns: &str,
    name: &str,
    q: &Query,
    req: Request<Body>,
) -> Result<Response<Body>> {
    let (_, body) = read_body(req).await?;
    let eviction = if body.is_empty() {
        json!({})
    } else {
        parse_json(&body)?
    };
    if let Some(named) = eviction.pointer("/metadata/name").and_then(Value::as_str)
        && named != name
    {
        return Err(ApiError::bad_request(format!(
            "name in URL does not match name in Eviction object: {name} != {named}"
        )));
    }
    let options = eviction
        .get("deleteOptions")
        .map(|o| serde_json::to_vec(o).unwrap_or_default())
        .unwrap_or_default();
    let opts = crate::request::delete_opts(q, &options)?;
    let now = jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    shoal_registry::eviction::evict(objects, ns, name, opts, &now).await?;
    Ok(status_response(
        StatusCode::CREATED,
        shoal_machinery::error::success_status_json(201),
    ))
}

/// `POST` of an access review: decoded and answered.
pub(super) async fn review(
    state: &ApiState,
    r: &'static Resource,
    ns: Option<&str>,
    q: &Query,
    req: Request<Body>,
) -> Result<Response<Body>> {
    let user = req
        .extensions()
        .get::<Authenticated>()
        .and_then(|a| a.0.clone())
        .ok_or_else(ApiError::unauthorized)?;
    let opts = write_opts(q, &req)?;
    let (_, body) = read_body(req).await?;
    let body = parse_json(&body)?;
    shoal_registry::validation::decode(r, &body, opts.field_validation)?;
    Ok(json_response(
        StatusCode::CREATED,
        &answer(state, &user, r, ns, body)?,
        "application/json",
    ))
}

/// The answer to a review: who the asker is (SelfSubjectReview, `kubectl
/// auth whoami`), whether a user may do something (SelfSubjectAccessReview
/// for the asker, `kubectl auth can-i`; SubjectAccessReview and
/// LocalSubjectAccessReview for the user the spec names), or everything the
/// asker may do in a namespace (SelfSubjectRulesReview, `can-i --list`),
/// each from the server's authorizer.
fn answer(
    state: &ApiState,
    user: &crate::authn::User,
    r: &Resource,
    ns: Option<&str>,
    mut review: Value,
) -> Result<Value> {
    match r.kind {
        "TokenReview" => return Ok(crate::tokens::review(state, review)),
        "SelfSubjectReview" => {
            review["status"] = json!({"userInfo": {"username": user.name, "groups": user.groups}});
        }
        "SelfSubjectRulesReview" => {
            let ns = review
                .pointer("/spec/namespace")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let rules = state.authorizer.rules(user, ns);
            review["status"] = json!({
                "resourceRules": rules.resource,
                "nonResourceRules": rules.non_resource,
                "incomplete": false,
            });
        }
        kind => {
            let spec = &review["spec"];
            let subject = match kind {
                "SelfSubjectAccessReview" => user.clone(),
                _ => crate::authn::User {
                    name: text(spec, "user"),
                    groups: shoal_machinery::meta::strings(spec, "groups"),
                },
            };
            let mut attributes = attributes_of(r, spec)?;
            if let (Some(ns), Some(a)) = (ns, attributes.resource.as_mut()) {
                if !a.namespace.is_empty() && a.namespace != ns {
                    return Err(invalid(
                        r,
                        "spec.resourceAttributes.namespace",
                        "must match metadata.namespace",
                    ));
                }
                a.namespace = ns.to_string();
            }
            review["status"] = match state.authorizer.authorize(&subject, &attributes) {
                Ok(()) => json!({"allowed": true}),
                Err(e) => json!({"allowed": false, "reason": e.message}),
            };
        }
    }
    review["apiVersion"] = json!(r.api_version());
    review["kind"] = json!(r.kind);
    Ok(review)
}

fn text(v: &Value, k: &str) -> String {
    v.get(k)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

fn invalid(r: &Resource, field: &str, message: &str) -> ApiError {
    ApiError::invalid(
        r.group,
        r.kind,
        "",
        vec![shoal_machinery::error::Cause {
            kind: "FieldValueInvalid",
            field: field.into(),
            message: format!("Invalid value: {message}"),
        }],
    )
}

/// The attributes an access review's spec asks about.
fn attributes_of(r: &Resource, spec: &Value) -> Result<Attributes> {
    match (
        spec.get("resourceAttributes"),
        spec.get("nonResourceAttributes"),
    ) {
        (Some(a), None) => Ok(Attributes {
            verb: text(a, "verb"),
            resource: Some(ResourceAttributes {
                group: text(a, "group"),
                version: text(a, "version"),
                resource: text(a, "resource"),
                subresource: text(a, "subresource"),
                namespace: text(a, "namespace"),
                name: text(a, "name"),
            }),
            path: String::new(),
        }),
        (None, Some(a)) => Ok(Attributes {
            verb: text(a, "verb"),
            resource: None,
            path: text(a, "path"),
        }),
        _ => Err(invalid(
            r,
            "spec.resourceAttributes",
            "exactly one of nonResourceAttributes or resourceAttributes must be specified",
        )),
    }
}

/// `kubectl certificate approve` and `deny` write the `approval`
/// subresource; as kube-apiserver's CertificateApproval plugin requires,
/// the writer must also hold the `approve` verb on the request's signer
/// (`signers` of `certificates.k8s.io`, named by the signer or by its
/// domain and `/*`).
pub(crate) fn may_approve(state: &ApiState, req: &Request<Body>, name: &str) -> Result<()> {
    let Some(user) = req
        .extensions()
        .get::<Authenticated>()
        .and_then(|a| a.0.clone())
    else {
        return Ok(());
    };
    let csrs =
        shoal_registry::resources::by_kind("certificates.k8s.io", "CertificateSigningRequest")
            .ok_or_else(|| ApiError::internal("certificatesigningrequests are not served"))?;
    let stored = state.objects.get(csrs, "", name)?;
    let signer = shoal_machinery::meta::str_at(&stored.value, "/spec/signerName")
        .unwrap_or_default()
        .to_string();
    let domain = signer.split('/').next().unwrap_or_default();
    let allowed = [signer.clone(), format!("{domain}/*")].iter().any(|n| {
        let a = Attributes {
            verb: "approve".into(),
            resource: Some(ResourceAttributes {
                group: "certificates.k8s.io".into(),
                version: String::new(),
                resource: "signers".into(),
                subresource: String::new(),
                namespace: String::new(),
                name: n.clone(),
            }),
            path: String::new(),
        };
        state.authorizer.authorize(&user, &a).is_ok()
    });
    if allowed {
        Ok(())
    } else {
        Err(ApiError::forbidden(
            format!(
                "certificatesigningrequests.certificates.k8s.io \"{name}\" is forbidden: user not permitted to approve requests with signerName \"{signer}\""
            ),
            Some(("certificates.k8s.io", "certificatesigningrequests", name)),
        ))
    }
}

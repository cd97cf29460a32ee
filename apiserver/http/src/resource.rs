//! The handler of a resource's requests: get, list (paged, as Tables),
//! watch, create, update, patch, apply, delete, deletecollection and the
//! status subresource; the others are `subresources.rs`'.

use axum::body::Body;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use serde_json::{Value, json};

use super::request::{
    Query, content_type, delete_opts, parse_json, read_body, write_opts, yaml_to_json,
};
use super::route::{Target, verb_of};
use super::subresources;
use super::{
    ApiState, json_response, logs, ok, status_response, streaming, table, watch, with_warnings,
};
use shoal_machinery::error::{ApiError, Result};
use shoal_machinery::selectors::{FieldSelector, LabelSelector};
use shoal_registry::kinds;
use shoal_registry::objects::PageQuery;
use shoal_registry::objects::PatchType;
use shoal_registry::resources::{Resource, Sub};
use shoal_wire::gotypes;

pub(super) fn sub_of(r: &Resource, sub: Option<&str>) -> Result<Option<Sub>> {
    match sub {
        None => Ok(None),
        Some(s) => r
            .subresources
            .iter()
            .copied()
            .find(|x| x.name() == s)
            .map(Some)
            .ok_or_else(ApiError::no_route),
    }
}

pub(super) fn list_kind(r: &Resource) -> String {
    format!("{}List", r.kind)
}

pub(super) async fn resource(
    state: &ApiState,
    t: Target,
    q: Query,
    accept: String,
    req: Request<Body>,
) -> Result<Response<Body>> {
    let r = t.r;
    let objects = &state.objects;
    let ns = t.ns.clone().unwrap_or_default();
    let sub = sub_of(r, t.sub.as_deref())?;
    let method = req.method().clone();
    let table = table::wants_table(&accept);
    let full = q.get("includeObject") == Some("Object");
    let verb = verb_of(&method, &t, &q);
    if sub.is_none() && !r.verbs().contains(&verb) {
        return Err(ApiError::method_not_allowed());
    }
    if !r.stored {
        return super::resource_metrics::serve(state, &t, &q).await;
    }
    match (method, t.name.as_deref(), sub) {
        (Method::POST, None, None)
            if matches!(r.group, "authorization.k8s.io" | "authentication.k8s.io") =>
        {
            subresources::review(state, r, t.ns.as_deref(), &q, req).await
        }
        (Method::GET, None, None) => {
            let labels = LabelSelector::parse(q.get("labelSelector").unwrap_or_default())?;
            let fields = FieldSelector::parse(q.get("fieldSelector").unwrap_or_default())?;
            kinds::of(r).check_fields(&fields)?;
            if t.watch || q.flag("watch") {
                let closer = req.extensions().get::<super::Closer>().cloned();
                let selectors = (labels, fields);
                return watch::watch(objects, r, t.ns.as_deref(), selectors, &q, table, closer)
                    .await;
            }
            let limit: usize = q
                .get("limit")
                .and_then(|l| l.parse().ok())
                .filter(|l| *l > 0)
                .unwrap_or(usize::MAX);
            let token = q
                .get("continue")
                .filter(|c| !c.is_empty())
                .map(Continue::decode)
                .transpose()?;
            let exact = match q.get("resourceVersionMatch") {
                Some("Exact") => Some(
                    q.get("resourceVersion")
                        .and_then(|v| v.parse::<u64>().ok())
                        .ok_or_else(|| {
                            ApiError::bad_request(
                                "resourceVersionMatch=Exact needs a resourceVersion",
                            )
                        })?,
                ),
                None | Some("" | "NotOlderThan") => None,
                Some(other) => {
                    return Err(ApiError::bad_request(format!(
                        "resourceVersionMatch: Unsupported value: \"{other}\": supported values: \"Exact\", \"NotOlderThan\""
                    )));
                }
            };
            // Every page of a list reads the revision of its first page.
            let at = token.as_ref().map(|t| t.revision).or(exact);
            match at {
                Some(at) => {
                    let current = objects.store().revision();
                    if at > current {
                        return Err(ApiError::too_large_resource_version(at, current));
                    }
                }
                None if most_recent(&q) => objects.consistent().await?,
                None => {}
            }
            let first_page = token.is_none() && exact.is_none();
            let query = PageQuery {
                at,
                after: token.as_ref().map(|t| t.start.as_str()),
                limit,
                labels: &labels,
                fields: &fields,
            };
            let found = objects.page(r, t.ns.as_deref(), &query)?;
            let rev = found.revision;
            let page: Vec<&shoal_store::Stored> = found.items.iter().collect();
            let cont = match page.last() {
                Some(last) if found.more => {
                    if first_page {
                        // The next pages read the objects as this one did.
                        objects.pin_list(r, t.ns.as_deref(), rev);
                    }
                    Some(
                        Continue {
                            revision: rev,
                            start: list_key(&last.value),
                        }
                        .encode(),
                    )
                }
                _ => None,
            };
            let rev = rev.to_string();
            if table {
                let page: Vec<&Value> = page.iter().map(|s| &*s.value).collect();
                return Ok(ok(&table::table(
                    r,
                    &page,
                    &rev,
                    cont.as_deref(),
                    full,
                    true,
                )));
            }
            let mut meta = json!({"resourceVersion": rev});
            if let Some(c) = cont {
                meta["continue"] = json!(c);
            }
            let head =
                json!({"kind": list_kind(r), "apiVersion": r.api_version(), "metadata": meta});
            if r.custom.is_some() {
                // Kept as maps, custom objects' lists have sorted keys.
                let items: Vec<_> = page.iter().map(|s| r.served_as(&s.value)).collect();
                let mut list = head;
                list["items"] = json!(items);
                return Ok(ok(&list));
            }
            Ok(list_response(&head, &page, r))
        }
        (_, Some(name), Some(Sub::Proxy)) => {
            super::object_proxy::serve(state, r, &ns, name, req).await
        }
        (
            Method::GET | Method::POST,
            Some(name),
            Some(sub @ (Sub::Exec | Sub::Attach | Sub::PortForward)),
        ) => {
            let pod = objects.get(r, &ns, name)?;
            streaming::proxy(state, &pod.value, sub, &q, req).await
        }
        (Method::GET, Some(name), s) => {
            if most_recent(&q) {
                objects.consistent().await?;
            }
            let cur = objects.get(r, &ns, name)?;
            match s {
                Some(Sub::Scale) => Ok(ok(&subresources::scale_of(r, &cur.value))),
                Some(Sub::Log) => logs::proxy(state, &cur.value, &q).await,
                Some(Sub::Binding | Sub::Eviction) => Err(ApiError::method_not_allowed()),
                _ if table => Ok(ok(&table::table(
                    r,
                    &[&*cur.value],
                    &cur.revision.to_string(),
                    None,
                    full,
                    true,
                ))),
                _ => Ok(ok(&r.served_as(&cur.value))),
            }
        }
        (Method::POST, None, None) => {
            let opts = write_opts(&q, &req)?;
            let (_, body) = read_body(req).await?;
            let w = objects.create(r, &ns, parse_json(&body)?, opts).await?;
            Ok(with_warnings(
                json_response(
                    StatusCode::CREATED,
                    &r.served_as(&w.object),
                    "application/json",
                ),
                &w.warnings,
            ))
        }
        (Method::POST, Some(name), Some(Sub::Token)) => {
            let asker = req
                .extensions()
                .get::<crate::authn::Authenticated>()
                .and_then(|a| a.0.clone());
            let (_, body) = read_body(req).await?;
            let body = if body.is_empty() {
                json!({})
            } else {
                parse_json(&body)?
            };
            Ok(json_response(
                StatusCode::CREATED,
                &crate::tokens::request_token(state, asker.as_deref(), &ns, name, &body)?,
                "application/json",
            ))
        }
        (Method::POST, Some(name), Some(Sub::Binding)) => {
            subresources::bind(objects, &ns, name, req).await
        }
        (Method::POST, Some(name), Some(Sub::Eviction)) => {
            subresources::evict(objects, &ns, name, &q, req).await
        }
        (
            Method::PUT,
            Some(name),
            s @ (None | Some(Sub::Status | Sub::Approval | Sub::EphemeralContainers)),
        ) => {
            if s == Some(Sub::Approval) {
                subresources::may_approve(state, &req, name)?;
            }
            let opts = write_opts(&q, &req)?;
            let (_, body) = read_body(req).await?;
            let w = objects
                .update(r, &ns, name, parse_json(&body)?, s, opts)
                .await?;
            Ok(with_warnings(ok(&r.served_as(&w.object)), &w.warnings))
        }
        (Method::PUT | Method::PATCH, Some(name), Some(Sub::Scale)) => {
            subresources::update_scale(state, r, &ns, name, &q, req).await
        }
        (Method::PATCH, Some(name), None)
            if content_type(req.headers()).starts_with("application/apply-patch") =>
        {
            let opts = write_opts(&q, &req)?;
            let manager = q
                .get("fieldManager")
                .filter(|m| !m.is_empty())
                .ok_or_else(|| {
                    ApiError::bad_request(
                        "PATCH requests with an apply content type must specify a fieldManager",
                    )
                })?;
            let manager = manager.to_string();
            let force = q.flag("force");
            let (_, body) = read_body(req).await?;
            // JSON is YAML too; most clients send it.
            let config = match serde_json::from_slice(&body) {
                Ok(c) => c,
                Err(_) => yaml_to_json(&body)?,
            };
            let (w, created) = objects
                .apply(r, &ns, name, config, &manager, force, opts)
                .await?;
            let code = if created {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            };
            Ok(with_warnings(
                json_response(code, &r.served_as(&w.object), "application/json"),
                &w.warnings,
            ))
        }
        (
            Method::PATCH,
            Some(name),
            s @ (None | Some(Sub::Status | Sub::Approval | Sub::EphemeralContainers)),
        ) => {
            if s == Some(Sub::Approval) {
                subresources::may_approve(state, &req, name)?;
            }
            let opts = write_opts(&q, &req)?;
            let (headers, body) = read_body(req).await?;
            let ty = PatchType::from_content_type(content_type(&headers))?;
            if ty == PatchType::Strategic && r.custom.is_some() {
                // Custom resources have no patch strategies to merge by.
                return Err(ApiError::unsupported_media_type(
                    content_type(&headers),
                    &[
                        "application/json-patch+json",
                        "application/merge-patch+json",
                        "application/apply-patch+yaml",
                    ],
                ));
            }
            let w = objects
                .patch(r, &ns, name, ty, &parse_json(&body)?, s, opts)
                .await?;
            Ok(with_warnings(ok(&r.served_as(&w.object)), &w.warnings))
        }
        (Method::DELETE, Some(name), None) => {
            let (_, body) = read_body(req).await?;
            let opts = delete_opts(&q, &body)?;
            let v = objects.delete(r, &ns, name, opts).await?;
            Ok(ok(&r.served_as(&v)))
        }
        (Method::DELETE, None, None) => {
            let (_, body) = read_body(req).await?;
            let opts = delete_opts(&q, &body)?;
            let labels = LabelSelector::parse(q.get("labelSelector").unwrap_or_default())?;
            let fields = FieldSelector::parse(q.get("fieldSelector").unwrap_or_default())?;
            kinds::of(r).check_fields(&fields)?;
            let (items, _) = objects.list(r, t.ns.as_deref(), &labels, &fields);
            for s in &items {
                let (n, nsp) = (
                    shoal_machinery::meta::name(&s.value),
                    shoal_machinery::meta::namespace(&s.value),
                );
                match objects.delete(r, nsp, n, opts.clone()).await {
                    Ok(_) => {}
                    Err(e) if e.code == 404 => {}
                    Err(e) => return Err(e),
                }
            }
            Ok(status_response(
                StatusCode::OK,
                shoal_machinery::error::success_status_json(0),
            ))
        }
        _ => Err(ApiError::method_not_allowed()),
    }
}

/// A list of built-in objects: its head (`kind`, `apiVersion`,
/// `metadata`), then the items as the store encoded them when they were
/// written, unless served in another form.
pub(super) fn list_response(
    head: &Value,
    page: &[&shoal_store::Stored],
    r: &Resource,
) -> Response<Body> {
    let mut body = gotypes::json::to_vec(head);
    let size: usize = page.iter().map(|s| s.json.len() + 1).sum();
    body.reserve(size + 16);
    // The head's closing brace makes way for the items.
    body.pop();
    body.extend_from_slice(b",\"items\":[");
    for (i, s) in page.iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        match r.served_as(&s.value) {
            std::borrow::Cow::Borrowed(_) => body.extend_from_slice(&s.json),
            std::borrow::Cow::Owned(v) => body.extend(gotypes::json::to_vec(&v)),
        }
    }
    body.extend_from_slice(b"]}\n");
    let mut resp = Response::new(Body::from(body));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

pub(super) fn list_key(v: &Value) -> String {
    format!(
        "{}/{}",
        shoal_machinery::meta::namespace(v),
        shoal_machinery::meta::name(v)
    )
}

/// Where a paged list goes on: the revision its first page was read at and
/// the last key returned.
#[derive(serde::Serialize, serde::Deserialize)]
pub(super) struct Continue {
    #[serde(rename = "rv")]
    revision: u64,
    start: String,
}

impl Continue {
    pub(super) fn encode(&self) -> String {
        use base64::Engine as _;
        let json = serde_json::to_vec(self).unwrap_or_default();
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json)
    }

    pub(super) fn decode(c: &str) -> Result<Self> {
        use base64::Engine as _;
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(c)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or_else(|| ApiError::bad_request("invalid continue token"))
    }
}

/// Whether a read asks for the most recent state (no `resourceVersion`):
/// then it must see every write acknowledged before it, whichever server
/// answers. `resourceVersion=0` (any) is served from what this server has.
fn most_recent(q: &Query) -> bool {
    q.get("resourceVersion").is_none_or(str::is_empty)
}

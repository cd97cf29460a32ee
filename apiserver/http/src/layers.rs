//! The API's request path as tower layers: authentication, impersonation,
//! then the route resolved to a typed [`Route`], then authorization, then
//! the handler.
//! A layer that refuses answers with a `Status`; the handler never sees
//! a request the layers before it turned away.

use axum::body::Body;
use http::{Request, Response};
use tower::util::BoxCloneService;
use tower::{BoxError, ServiceBuilder};

use crate::authn::{Authenticated, User};
use crate::request::Query;
use crate::route::{self, Attributes, Route};
use crate::{ApiState, error_response};
use shoal_machinery::error::ApiError;

/// The route a request resolved to, for the layers after resolution.
#[derive(Clone)]
pub(crate) struct Resolved(pub Route);

/// What a user may do in a namespace, as a SelfSubjectRulesReview lists
/// it: `rules[]` entries of roles.
pub struct Rules {
    /// Rules over resources.
    pub resource: Vec<serde_json::Value>,
    /// Rules over non-resource paths.
    pub non_resource: Vec<serde_json::Value>,
}

impl Rules {
    /// Everything, everywhere.
    pub fn everything() -> Self {
        Self {
            resource: vec![
                serde_json::json!({"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}),
            ],
            non_resource: vec![serde_json::json!({"verbs": ["*"], "nonResourceURLs": ["*"]})],
        }
    }
}

/// Decides whether a user may make a request.
pub trait Authorizer: Send + Sync {
    /// `Ok` when `user` may do what `attributes` describe, otherwise the
    /// error to answer with (403 `Forbidden`).
    fn authorize(&self, user: &User, attributes: &Attributes) -> Result<(), ApiError>;

    /// Every rule that applies to `user` in `namespace`.
    fn rules(&self, _user: &User, _namespace: &str) -> Rules {
        Rules::everything()
    }
}

/// Every authenticated user may do everything.
pub struct AllowAll;

impl Authorizer for AllowAll {
    fn authorize(&self, _: &User, _: &Attributes) -> Result<(), ApiError> {
        Ok(())
    }
}

/// The whole request path as one service; an error is a layer's refusal,
/// answered by [`refusal`].
pub type ApiService = BoxCloneService<Request<Body>, Response<Body>, BoxError>;

/// The `Status` answer to a layer's refusal.
pub fn refusal(e: BoxError) -> Response<Body> {
    match e.downcast::<ApiError>() {
        Ok(api) => error_response(&api),
        Err(other) => error_response(&ApiError::internal(other)),
    }
}

/// The API's service over `state`: the layers and the handler.
pub fn service(state: ApiState) -> ApiService {
    let (impersonating, resolving, authorizing) = (state.clone(), state.clone(), state.clone());
    let authenticating = state.clone();
    let svc = ServiceBuilder::new()
        .filter(move |req| authenticate(&authenticating, req))
        .filter(move |req| impersonate(&impersonating, req))
        .filter(move |req| resolve(&resolving, req))
        .filter(move |req| authorize(&authorizing, req))
        .service_fn(move |req: Request<Body>| {
            let state = state.clone();
            async move {
                let user = req.extensions().get::<Authenticated>().cloned();
                let mut resp = crate::dispatch(&state, req).await;
                // Who the request ran as, for the audit log.
                if let Some(user) = user {
                    resp.extensions_mut().insert(user);
                }
                Ok::<_, ApiError>(resp)
            }
        });
    BoxCloneService::new(svc)
}

/// Paths anyone may read, credentials or not.
fn public(path: &str) -> bool {
    matches!(
        path.trim_end_matches('/'),
        "/healthz" | "/readyz" | "/livez"
    )
}

/// Authentication: the client certificate's user, or the user of a valid
/// bearer token (a service account's or a bootstrap token's); a request
/// with neither is refused (401) unless its path is public or it reads the
/// `cluster-info` ConfigMap, and so is one with an invalid token.
fn authenticate(state: &ApiState, mut req: Request<Body>) -> Result<Request<Body>, ApiError> {
    let known = req
        .extensions()
        .get::<Authenticated>()
        .is_some_and(|a| a.0.is_some());
    if known {
        return Ok(req);
    }
    if let Some(token) = crate::tokens::bearer(req.headers()) {
        let user = crate::tokens::authenticate(state, token, &[shoal_pki::tokens::ISSUER])
            .ok_or_else(ApiError::unauthorized)?;
        req.extensions_mut()
            .insert(Authenticated(Some(std::sync::Arc::new(user))));
        return Ok(req);
    }
    if public(req.uri().path()) {
        return Ok(req);
    }
    // A joining node reads the cluster's CA before it can check the
    // server's certificate, so before it sends its token: that one object
    // is read anonymously, as kubeadm's discovery does, and RBAC decides.
    let (ns, name) = shoal_machinery::bootstrap::CLUSTER_INFO;
    if req.method() == http::Method::GET
        && req.uri().path() == format!("/api/v1/namespaces/{ns}/configmaps/{name}")
    {
        req.extensions_mut()
            .insert(Authenticated(Some(std::sync::Arc::new(User {
                name: crate::authn::ANONYMOUS.into(),
                groups: vec![crate::authn::UNAUTHENTICATED.into()],
            }))));
        return Ok(req);
    }
    Err(ApiError::unauthorized())
}

/// Impersonation (`kubectl --as`, `--as-group`): a user allowed to
/// `impersonate` the named user, groups and service account makes the
/// request as them; anyone else is refused (403).
fn impersonate(state: &ApiState, mut req: Request<Body>) -> Result<Request<Body>, ApiError> {
    let headers = req.headers();
    let name = headers
        .get("impersonate-user")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let groups: Vec<String> = headers
        .get_all("impersonate-group")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(str::to_string)
        .collect();
    let Some(name) = name else {
        if groups.is_empty() {
            return Ok(req);
        }
        return Err(ApiError::bad_request(
            "impersonating groups requires impersonating a user",
        ));
    };
    let Some(Authenticated(Some(asker))) = req.extensions().get::<Authenticated>().cloned() else {
        return Err(ApiError::unauthorized());
    };
    let check = |group: &str, resource: &str, namespace: &str, name: &str| {
        let a = Attributes {
            verb: "impersonate".into(),
            resource: Some(crate::route::ResourceAttributes {
                group: group.into(),
                version: String::new(),
                resource: resource.into(),
                subresource: String::new(),
                namespace: namespace.into(),
                name: name.into(),
            }),
            path: String::new(),
        };
        state.authorizer.authorize(&asker, &a)
    };
    let service_account = name
        .strip_prefix("system:serviceaccount:")
        .and_then(|rest| rest.split_once(':'));
    match service_account {
        Some((ns, sa)) => check("", "serviceaccounts", ns, sa)?,
        None => check("", "users", "", &name)?,
    }
    for g in &groups {
        check("", "groups", "", g)?;
    }
    let mut as_groups = groups;
    if let Some((ns, _)) = service_account {
        as_groups.push("system:serviceaccounts".into());
        as_groups.push(format!("system:serviceaccounts:{ns}"));
    }
    if !as_groups.iter().any(|g| g == crate::authn::AUTHENTICATED) {
        as_groups.push(crate::authn::AUTHENTICATED.into());
    }
    for h in ["impersonate-user", "impersonate-group", "impersonate-uid"] {
        req.headers_mut().remove(h);
    }
    req.extensions_mut()
        .insert(Authenticated(Some(std::sync::Arc::new(User {
            name,
            groups: as_groups,
        }))));
    Ok(req)
}

/// Resolution: the typed route, or 404 before any handler runs.
fn resolve(state: &ApiState, mut req: Request<Body>) -> Result<Request<Body>, ApiError> {
    let route = route::resolve(state, req.method(), req.uri().path())?;
    req.extensions_mut().insert(Resolved(route));
    Ok(req)
}

/// Authorization: the state's authorizer decides for the request's user.
fn authorize(state: &ApiState, req: Request<Body>) -> Result<Request<Body>, ApiError> {
    let user = req
        .extensions()
        .get::<Authenticated>()
        .and_then(|a| a.0.clone());
    let Some(user) = user else {
        // Only public paths get here without a user.
        return Ok(req);
    };
    let Some(Resolved(route)) = req.extensions().get::<Resolved>() else {
        return Err(ApiError::internal("authorization before resolution"));
    };
    // The servers' own traffic does not wait on the policy it replicates:
    // a joining server holds no roles until the log reaches it.
    if matches!(route, Route::Peers(_)) && user.groups.iter().any(|g| g == shoal_pki::PEER_GROUP) {
        return Ok(req);
    }
    let query = Query::parse(req.uri().query());
    let attributes = route.attributes(req.method(), req.uri().path(), &query);
    state.authorizer.authorize(&user, &attributes)?;
    Ok(req)
}

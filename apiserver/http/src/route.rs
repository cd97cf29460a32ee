//! What a request asks for, resolved from its method and path before any
//! handler runs: a typed [`Route`], and the [`Attributes`] authorization
//! decides on.

use std::sync::Arc;

use http::Method;
use serde_json::Value;

use crate::ApiState;
use crate::aggregator;
use crate::request::Query;
use shoal_machinery::error::{ApiError, Result};
use shoal_registry::resources::Resource;

/// A request for a resource path.
#[derive(Clone)]
pub(crate) struct Target {
    pub r: &'static Resource,
    pub ns: Option<String>,
    pub name: Option<String>,
    pub sub: Option<String>,
    pub watch: bool,
}

/// Every kind of request the API answers.
#[derive(Clone)]
pub(crate) enum Route {
    /// `/healthz`, `/readyz`, `/livez`.
    Health,
    /// `/metrics`.
    Metrics,
    /// `/version`.
    Version,
    /// `/api`: the legacy group's versions or aggregated discovery.
    Api,
    /// `/apis`: the groups or aggregated discovery.
    Apis,
    /// `/api/v1`: the core resources.
    CoreResources,
    /// `/apis/<group>`.
    Group(String),
    /// `/apis/<group>/<version>`.
    GroupResources(String, String),
    /// `/openapi/v3`.
    OpenApiRoot,
    /// `/openapi/v3/api/<v>` or `/openapi/v3/apis/<g>/<v>`.
    OpenApiDoc(String, String),
    /// `/openapi/v2`, which is not served.
    OpenApiV2,
    /// `/.well-known/openid-configuration`: the token issuer's discovery.
    OpenIdConfiguration,
    /// `/openid/v1/jwks`: the token issuer's public keys.
    Jwks,
    /// A group-version another server serves, through this APIService.
    Remote(Arc<Value>),
    /// A resource's objects or an object.
    Resource(Target),
    /// `/peers/<call>`: what the servers of a cluster call on each other
    /// (the store's Raft traffic, joins) and what their administrators
    /// ask of the store's group (members, backups).
    Peers(String),
}

pub use shoal_machinery::user::{Attributes, ResourceAttributes};

/// The route of a request: only the method, the path and the served
/// resources decide.
pub(crate) fn resolve(state: &ApiState, method: &Method, path: &str) -> Result<Route> {
    let path = path.trim_end_matches('/');
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    if let ["apis", g, v, ..] = segs.as_slice()
        && let Some(api_service) = aggregator::remote(&state.objects, g, v)
    {
        return Ok(Route::Remote(api_service));
    }
    if let ["peers", call @ ..] = segs.as_slice()
        && !call.is_empty()
    {
        return Ok(Route::Peers(call.join("/")));
    }
    let get = method == Method::GET;
    let fixed = match segs.as_slice() {
        ["healthz"] | ["readyz"] | ["livez"] => Some(Route::Health),
        ["metrics"] => Some(Route::Metrics),
        ["version"] => Some(Route::Version),
        ["api"] => Some(Route::Api),
        ["apis"] => Some(Route::Apis),
        ["api", "v1"] => Some(Route::CoreResources),
        ["apis", g] => Some(Route::Group(g.to_string())),
        ["apis", g, v] => Some(Route::GroupResources(g.to_string(), v.to_string())),
        ["openapi", "v3"] => Some(Route::OpenApiRoot),
        ["openapi", "v3", "api", v] => Some(Route::OpenApiDoc(String::new(), v.to_string())),
        ["openapi", "v3", "apis", g, v] => Some(Route::OpenApiDoc(g.to_string(), v.to_string())),
        ["openapi", "v2"] => Some(Route::OpenApiV2),
        [".well-known", "openid-configuration"] => Some(Route::OpenIdConfiguration),
        ["openid", "v1", "jwks"] => Some(Route::Jwks),
        _ => None,
    };
    if let Some(route) = fixed.filter(|_| get) {
        return Ok(route);
    }
    let (group, version, rest): (&str, &str, &[&str]) = match segs.as_slice() {
        ["api", v, rest @ ..] => ("", v, rest),
        ["apis", g, v, rest @ ..] => (g, v, rest),
        _ => return Err(ApiError::no_route()),
    };
    let (watch, rest) = match rest {
        ["watch", rest @ ..] => (true, rest),
        r => (false, r),
    };
    let registry = state.objects.resources();
    let namespaced_path = matches!(rest, ["namespaces", _, plural, ..] if registry.find(group, version, plural).is_some_and(|r| r.namespaced));
    let target = if namespaced_path {
        let r = registry
            .find(group, version, rest[2])
            .ok_or_else(ApiError::no_route)?;
        // Only a proxy has a path of its own after the subresource.
        if rest.len() > 5 && rest[4] != "proxy" {
            return Err(ApiError::no_route());
        }
        Target {
            r,
            ns: Some(rest[1].to_string()),
            name: rest.get(3).map(|s| s.to_string()),
            sub: rest.get(4).map(|s| s.to_string()),
            watch,
        }
    } else {
        let plural = rest.first().ok_or_else(ApiError::no_route)?;
        let r = registry
            .find(group, version, plural)
            .ok_or_else(ApiError::no_route)?;
        if rest.len() > 3 && rest[2] != "proxy" {
            return Err(ApiError::no_route());
        }
        Target {
            r,
            ns: None,
            name: rest.get(1).map(|s| s.to_string()),
            sub: rest.get(2).map(|s| s.to_string()),
            watch,
        }
    };
    if target.r.namespaced && target.ns.is_none() && target.name.is_some() {
        return Err(ApiError::no_route());
    }
    Ok(Route::Resource(target))
}

/// The Kubernetes verb of a request for a resource path.
pub(crate) fn verb_of(method: &Method, t: &Target, q: &Query) -> &'static str {
    match (method, t.name.is_some()) {
        (&Method::GET, false) if t.watch || q.flag("watch") => "watch",
        (&Method::GET, false) => "list",
        (&Method::GET, true) => "get",
        (&Method::POST, _) => "create",
        (&Method::PUT, _) => "update",
        (&Method::PATCH, _) => "patch",
        (&Method::DELETE, true) => "delete",
        (&Method::DELETE, false) => "deletecollection",
        _ => "",
    }
}

impl Route {
    /// The attributes authorization decides on.
    pub(crate) fn attributes(&self, method: &Method, path: &str, q: &Query) -> Attributes {
        let resource = match self {
            Route::Resource(t) => Some(ResourceAttributes {
                group: t.r.group.to_string(),
                version: t.r.version.to_string(),
                resource: t.r.plural.to_string(),
                subresource: t.sub.clone().unwrap_or_default(),
                namespace: t.ns.clone().unwrap_or_default(),
                name: t.name.clone().unwrap_or_default(),
            }),
            _ => None,
        };
        let verb = match self {
            Route::Resource(t) => verb_of(method, t, q),
            _ => match *method {
                Method::GET | Method::HEAD => "get",
                Method::POST => "post",
                Method::PUT => "put",
                Method::PATCH => "patch",
                Method::DELETE => "delete",
                _ => "",
            },
        };
        Attributes {
            verb: verb.to_string(),
            resource,
            path: path.to_string(),
        }
    }
}

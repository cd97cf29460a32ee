//! The HTTPS front of the API: TLS with client-certificate authentication,
//! path routing, content negotiation and `Status` errors, watches,
//! discovery, OpenAPI, tables, logs, and the aggregation layer that proxies
//! other API servers' groups.
//!
//! May import: `shoal-registry`, `shoal-machinery`, `shoal-store`,
//! `shoal-wire`, `shoal-pki`.
//! Must not import: the scheduler, the controllers (they are clients of
//! the registry, as the front is).

pub mod aggregator;
pub mod audit;
pub mod authn;
mod authz;

mod discovery;
mod inflight;
mod kubelet;
mod layers;
mod logs;
mod metrics;
mod node_authz;
mod object_proxy;
mod openapi;
mod request;
mod resource;
mod resource_metrics;
mod route;
mod streaming;
mod subresources;

use request::Query;
pub use request::yaml_to_json;
use resource::{resource, sub_of};
use route::Route;
mod table;
mod tokens;
mod watch;
mod webhooks;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::aggregator::Aggregator;
use shoal_machinery::error::{ApiError, Result};
use shoal_registry::objects::Objects;
use shoal_registry::resources::Sub;
use shoal_wire::gotypes;

pub use authn::Authenticated;
pub use authz::{NoEscalation, Rbac};
pub use inflight::Inflight;
pub use layers::{AllowAll, ApiService, Authorizer, Rules, service};
pub use metrics::Metrics;
pub use node_authz::NodeAuthorizer;
pub use openapi::KUBE_VERSION;
pub use route::{Attributes, ResourceAttributes};
pub use webhooks::WebhookAdmission;

/// Shared state of the HTTP API.
#[derive(Clone)]
pub struct ApiState {
    /// The object API.
    pub objects: Objects,
    /// TLS client config used to reach node agents (logs).
    pub kubelet_client: Arc<rustls::ClientConfig>,
    /// Request counters for `/metrics`.
    pub metrics: Arc<Metrics>,
    /// The aggregation layer.
    pub aggregator: Arc<Aggregator>,
    /// Who may do what.
    pub authorizer: Arc<dyn Authorizer>,
    /// The service-account token key; `None`: bearer tokens are not
    /// accepted or issued.
    pub tokens: Option<tokens::TokenKeys>,
    /// The budgets of requests in flight.
    pub inflight: Arc<Inflight>,
    /// The audit log, when one is kept.
    pub audit: Option<Arc<audit::Audit>>,
    /// What the other servers of the cluster call under `/peers/`; `None`
    /// for a server alone.
    pub peers: Option<Arc<dyn PeerService>>,
}

/// What the servers of a cluster call on each other under `/peers/`, and
/// what their administrators ask of the store's group there, once
/// authentication and authorization let the call through (RBAC: the
/// request's verb on the non-resource URL).
pub trait PeerService: Send + Sync {
    /// Answers call `call` (the path after `/peers/`) made with `method`
    /// and body `body`.
    fn call(
        &self,
        method: &Method,
        call: &str,
        body: bytes::Bytes,
    ) -> futures::future::BoxFuture<'static, Result<Vec<u8>, ApiError>>;
}

/// Largest body of a peer's call: a batch of log entries may carry many
/// objects of up to the object limit each.
const MAX_PEER_BODY: usize = 256 << 20;

/// Closes the connection a request came on: what a watch whose client
/// stopped reading uses to free what is queued for it, since a connection
/// that cannot write never asks the watch for more.
#[derive(Clone, Default)]
pub(crate) struct Closer(Arc<tokio::sync::Notify>);

impl Closer {
    pub(crate) fn close(&self) {
        self.0.notify_one();
    }
}

/// Serves the API on `listener` until the task is dropped.
pub async fn serve(mut listener: TcpListener, tls: Arc<rustls::ServerConfig>, state: ApiState) {
    let acceptor = TlsAcceptor::from(tls);
    let api = service(state.clone());
    loop {
        // Within the process's budget of connections; accept errors are
        // waited out.
        let (tcp, peer, slot) = shoal_listen::accept(&mut listener).await;
        let acceptor = acceptor.clone();
        let (state, api) = (state.clone(), api.clone());
        tokio::spawn(async move {
            let _slot = slot;
            let Some(tls) = shoal_listen::handshake(&acceptor, tcp, peer).await else {
                return;
            };
            let auth = Authenticated(
                tls.get_ref()
                    .1
                    .peer_certificates()
                    .and_then(|c| c.first())
                    .and_then(|c| authn::from_certificate(c))
                    .map(Arc::new),
            );
            let closer = Closer::default();
            let closed = closer.0.clone();
            let svc = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                let (state, api, auth) = (state.clone(), api.clone(), auth.clone());
                let mut req = req.map(Body::new);
                req.extensions_mut().insert(auth);
                req.extensions_mut().insert(closer.clone());
                async move { Ok::<_, std::convert::Infallible>(observe(&state, api, peer, req).await) }
            });
            let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            // The timer gives HTTP/1 its default 30 s to read a request's
            // headers, and HTTP/2 its pings.
            builder.http1().timer(TokioTimer::new());
            builder
                .http2()
                .timer(TokioTimer::new())
                .keep_alive_interval(std::time::Duration::from_secs(30));
            tokio::select! {
                served = builder.serve_connection_with_upgrades(TokioIo::new(tls), svc) => {
                    if let Err(e) = served {
                        tracing::debug!("connection from {peer}: {e}");
                    }
                }
                () = closed.notified() => {
                    tracing::debug!("closing the connection from {peer}: a watch on it stalled");
                }
            }
        });
    }
}

/// `v` as kube-apiserver writes it: a built-in kind's fields in its Go
/// type's order, then a newline.
fn json_response(code: StatusCode, v: &Value, content_type: &str) -> Response<Body> {
    let mut json = gotypes::json::to_vec(v);
    json.push(b'\n');
    let mut r = Response::new(Body::from(json));
    *r.status_mut() = code;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_str(content_type).unwrap_or(HeaderValue::from_static("application/json")),
    );
    r
}

fn ok(v: &Value) -> Response<Body> {
    json_response(StatusCode::OK, v, "application/json")
}

fn error_response(e: &ApiError) -> Response<Body> {
    let mut r = status_response(
        StatusCode::from_u16(e.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        e.status_json(),
    );
    if e.code == 429 {
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    r
}

/// A `Status` body, already encoded.
fn status_response(code: StatusCode, body: Vec<u8>) -> Response<Body> {
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = code;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

fn with_warnings(mut r: Response<Body>, warnings: &[String]) -> Response<Body> {
    for w in warnings {
        let text = format!("299 - \"{}\"", w.replace('"', "\\\""));
        if let Ok(v) = HeaderValue::from_str(&text) {
            r.headers_mut().append("Warning", v);
        }
    }
    r
}

/// Runs `req` through the API's service, counting it and logging it.
async fn observe(
    state: &ApiState,
    api: ApiService,
    peer: SocketAddr,
    req: Request<Body>,
) -> Response<Body> {
    use tower::ServiceExt as _;
    let started = std::time::Instant::now();
    let (method, path) = (req.method().clone(), req.uri().path().to_string());
    let audited = state.audit.as_ref().map(|_| {
        let header = |h: &str| {
            req.headers()
                .get(h)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let facts = audit::RequestFacts {
            uri: req
                .uri()
                .path_and_query()
                .map_or_else(|| path.clone(), |p| p.to_string()),
            source_ip: peer.ip().to_string(),
            user_agent: header("user-agent").unwrap_or_default(),
            impersonated: header("impersonate-user"),
            received: audit::timestamp(),
        };
        let query = request::Query::parse(req.uri().query());
        let attributes = match route::resolve(state, &method, &path) {
            Ok(r) => r.attributes(&method, &path, &query),
            Err(_) => Attributes {
                verb: method.as_str().to_ascii_lowercase(),
                resource: None,
                path: path.clone(),
            },
        };
        let user = req
            .extensions()
            .get::<Authenticated>()
            .and_then(|a| a.0.clone());
        (facts, attributes, user)
    });
    let resp = api.oneshot(req).await.unwrap_or_else(layers::refusal);
    if let (Some(log), Some((facts, attributes, user))) = (&state.audit, audited) {
        // The user the layers authenticated (a token's), not the one it
        // impersonated, which the event names apart.
        let user = match facts.impersonated {
            Some(_) => user,
            None => resp
                .extensions()
                .get::<Authenticated>()
                .and_then(|a| a.0.clone())
                .or(user),
        };
        log.record(user.as_deref(), &attributes, &facts, resp.status().as_u16());
    }
    if let Some(labels) = resp.extensions().get::<metrics::RequestLabels>() {
        state.metrics.request(*labels, resp.status().as_u16());
    }
    tracing::debug!(%peer, %method, %path, status = resp.status().as_u16(), elapsed = ?started.elapsed(), "request");
    resp
}

/// The handler: answers a request the layers let through, by its route.
async fn dispatch(state: &ApiState, mut req: Request<Body>) -> Response<Body> {
    let Some(layers::Resolved(route)) = req.extensions_mut().remove::<layers::Resolved>() else {
        return error_response(&ApiError::internal(
            "a request reached the handler unresolved",
        ));
    };
    // Held until the answer is made (a streamed answer, long-running, holds none).
    let _place = match state
        .inflight
        .admit(req.method(), &route, &Query::parse(req.uri().query()))
    {
        Ok(place) => place,
        Err(e) => return error_response(&e),
    };
    match answer(state, route, req).await {
        Ok(r) => r,
        Err(e) => error_response(&e),
    }
}

async fn answer(state: &ApiState, route: Route, req: Request<Body>) -> Result<Response<Body>> {
    let query = Query::parse(req.uri().query());
    let accept = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let aggregated = |core: bool| {
        let remote = if core {
            Default::default()
        } else {
            state.aggregator.discovered()
        };
        Ok(json_response(
            StatusCode::OK,
            &discovery::aggregated(state.objects.resources(), core, &remote),
            discovery::AGGREGATED,
        ))
    };
    let registry = state.objects.resources();
    match route {
        Route::Remote(api_service) => {
            let user = req
                .extensions()
                .get::<Authenticated>()
                .and_then(|a| a.0.clone())
                .ok_or_else(ApiError::unauthorized)?;
            aggregator::forward(&state.objects, &state.aggregator, &api_service, &user, req).await
        }
        Route::Health => Ok(Response::new(Body::from("ok"))),
        Route::Peers(call) => {
            let peers = state.peers.clone().ok_or_else(ApiError::no_route)?;
            let method = req.method().clone();
            use http_body_util::BodyExt as _;
            let body = http_body_util::Limited::new(req.into_body(), MAX_PEER_BODY)
                .collect()
                .await
                .map_err(|e| ApiError::bad_request(format!("reading the body: {e}")))?
                .to_bytes();
            let answer = peers.call(&method, &call, body).await?;
            let mut r = Response::new(Body::from(answer));
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            Ok(r)
        }
        Route::Metrics => {
            let mut r = Response::new(Body::from(state.metrics.render()));
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4"),
            );
            Ok(r)
        }
        Route::Version => Ok(ok(&json!({
            "major": "1", "minor": "32", "gitVersion": format!("{KUBE_VERSION}-shoal.{}", env!("CARGO_PKG_VERSION")),
            "gitCommit": "", "gitTreeState": "clean", "buildDate": "", "goVersion": "", "compiler": "rustc",
            "platform": format!("{}/{}", std::env::consts::OS, if cfg!(target_arch = "x86_64") { "amd64" } else { std::env::consts::ARCH }),
        }))),
        Route::Api if discovery::wants_aggregated(&accept) => aggregated(true),
        Route::Api => Ok(ok(&discovery::api_versions())),
        Route::Apis if discovery::wants_aggregated(&accept) => aggregated(false),
        Route::Apis => Ok(ok(&discovery::group_list(
            registry,
            &aggregator::remote_groups(&state.objects),
        ))),
        Route::CoreResources => Ok(ok(
            &discovery::resource_list(registry, "", "v1").unwrap_or_default()
        )),
        Route::Group(g) => {
            discovery::group(registry, &aggregator::remote_groups(&state.objects), &g)
                .map(|v| ok(&v))
                .ok_or_else(ApiError::no_route)
        }
        Route::GroupResources(g, v) => discovery::resource_list(registry, &g, &v)
            .map(|v| ok(&v))
            .ok_or_else(ApiError::no_route),
        Route::OpenApiRoot => Ok(ok(&openapi::root(registry))),
        Route::OpenApiDoc(g, v) => doc(state, &g, &v, query.get("hash")),
        Route::OpenIdConfiguration => {
            let host = req.uri().authority().map(|a| a.to_string()).or_else(|| {
                req.headers()
                    .get(header::HOST)
                    .and_then(|h| h.to_str().ok())
                    .map(str::to_string)
            });
            Ok(ok(&tokens::openid_configuration(state, host.as_deref())?))
        }
        Route::Jwks => Ok(json_response(
            StatusCode::OK,
            &tokens::jwks(state)?,
            "application/jwk-set+json",
        )),
        Route::OpenApiV2 => Err(ApiError {
            code: 404,
            reason: "NotFound",
            message: "OpenAPI v2 is not served; use /openapi/v3".into(),
            details: None,
        }),
        Route::Resource(target) => {
            let labels = metrics::RequestLabels {
                verb: route::verb_of(req.method(), &target, &query),
                group: target.r.group,
                version: target.r.version,
                resource: target.r.plural,
                subresource: sub_of(target.r, target.sub.as_deref())
                    .ok()
                    .flatten()
                    .map_or("", Sub::name),
            };
            let mut resp = match resource(state, target, query, accept, req).await {
                Ok(r) => r,
                Err(e) => error_response(&e),
            };
            resp.extensions_mut().insert(labels);
            Ok(resp)
        }
    }
}

fn doc(state: &ApiState, group: &str, version: &str, hash: Option<&str>) -> Result<Response<Body>> {
    let registry = state.objects.resources();
    let d = openapi::document(registry, group, version).ok_or_else(ApiError::no_route)?;
    let mut r = Response::new(Body::from(d));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    let etag = format!("\"{}\"", openapi::hash_of(registry, group, version));
    if let Ok(v) = HeaderValue::from_str(&etag) {
        r.headers_mut().insert(header::ETAG, v);
    }
    // A request naming the current hash may be cached for good, as the
    // Kubernetes API server allows.
    let cache = if hash.is_some_and(|h| etag.trim_matches('"') == h) {
        "public, immutable"
    } else {
        "no-cache, private"
    };
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    Ok(r)
}

#[cfg(test)]
mod tests;

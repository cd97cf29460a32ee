//! The HTTPS front of the API: TLS with client-certificate authentication,
//! path routing, content negotiation and `Status` errors.

mod discovery;
mod logs;
mod metrics;
mod openapi;
mod table;
mod watch;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::BodyExt;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::aggregator::{self, Aggregator};
use crate::authn::User;
use crate::custom::jsonpath;
use crate::error::{ApiError, Result};
use crate::gotypes;
use crate::objects::{DeleteOpts, Objects, PatchType, Propagation, WriteOpts};
use crate::resources::{Resource, Sub};
use crate::selectors::{FieldSelector, LabelSelector};
use crate::validation::FieldValidation;

pub use metrics::Metrics;
pub use openapi::KUBE_VERSION;
pub use table::{human_duration, pod_status};

/// Largest request body accepted.
const MAX_BODY: usize = 3 * 1024 * 1024;

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
}

/// The user of the certificate the TLS peer presented, which the CA signed.
#[derive(Clone)]
struct Authenticated(Option<Arc<User>>);

/// How long a client has to finish its TLS handshake: a silent one must not
/// hold a descriptor for ever.
const TLS_HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Serves the API on `listener` until the task is dropped.
pub async fn serve(mut listener: TcpListener, tls: Arc<rustls::ServerConfig>, state: ApiState) {
    let acceptor = TlsAcceptor::from(tls);
    loop {
        // An accept error (out of descriptors, say) is logged and waited
        // out for a second instead of retried at once.
        let (tcp, peer) = axum::serve::Listener::accept(&mut listener).await;
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let state = state.clone();
        tokio::spawn(async move {
            let tls = match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await
            {
                Ok(Ok(t)) => t,
                Ok(Err(e)) => {
                    tracing::debug!("TLS handshake with {peer}: {e}");
                    return;
                }
                Err(_) => {
                    tracing::debug!("TLS handshake with {peer} timed out");
                    return;
                }
            };
            let auth = Authenticated(
                tls.get_ref()
                    .1
                    .peer_certificates()
                    .and_then(|c| c.first())
                    .and_then(|c| User::from_certificate(c))
                    .map(Arc::new),
            );
            let svc = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                let (state, auth) = (state.clone(), auth.clone());
                async move { Ok::<_, std::convert::Infallible>(handle(state, auth, peer, req).await) }
            });
            let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            // The timer gives HTTP/1 its default 30 s to read a request's
            // headers, and HTTP/2 its pings.
            builder.http1().timer(TokioTimer::new());
            builder
                .http2()
                .timer(TokioTimer::new())
                .keep_alive_interval(std::time::Duration::from_secs(30));
            if let Err(e) = builder
                .serve_connection_with_upgrades(TokioIo::new(tls), svc)
                .await
            {
                tracing::debug!("connection from {peer}: {e}");
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
    status_response(
        StatusCode::from_u16(e.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        e.status_json(),
    )
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

async fn handle(
    state: ApiState,
    auth: Authenticated,
    peer: SocketAddr,
    req: Request<hyper::body::Incoming>,
) -> Response<Body> {
    let started = std::time::Instant::now();
    let (method, path) = (req.method().clone(), req.uri().path().to_string());
    let resp = match &auth.0 {
        None if !matches!(path.as_str(), "/healthz" | "/readyz" | "/livez") => {
            error_response(&ApiError::unauthorized())
        }
        user => match route(&state, user.as_deref(), req).await {
            Ok(r) => r,
            Err(e) => error_response(&e),
        },
    };
    if let Some(labels) = resp.extensions().get::<metrics::RequestLabels>() {
        state.metrics.request(*labels, resp.status().as_u16());
    }
    tracing::debug!(%peer, %method, %path, status = resp.status().as_u16(), elapsed = ?started.elapsed(), "request");
    resp
}

const PROTOBUF: &str = "application/vnd.kubernetes.protobuf";

/// Query parameters.
struct Query(Vec<(String, String)>);

impl Query {
    fn parse(q: Option<&str>) -> Self {
        Self(
            form_urlencoded::parse(q.unwrap_or_default().as_bytes())
                .into_owned()
                .collect(),
        )
    }
    fn get(&self, k: &str) -> Option<&str> {
        self.0.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str())
    }
    fn flag(&self, k: &str) -> bool {
        matches!(self.get(k), Some("true" | "1"))
    }
    /// Write options; the field manager is `fieldManager`, or else the
    /// client's User-Agent up to its first `/`, as Kubernetes derives it.
    fn write_opts(&self, headers: &HeaderMap) -> Result<WriteOpts> {
        let agent = headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .and_then(|ua| ua.split('/').next())
            .filter(|m| !m.is_empty());
        let manager = self.get("fieldManager").filter(|m| !m.is_empty()).or(agent);
        Ok(WriteOpts {
            dry_run: self.get("dryRun") == Some("All"),
            field_validation: FieldValidation::parse(self.get("fieldValidation"))?,
            manager: manager.map(|m| m.chars().take(128).collect()),
        })
    }
}

async fn read_body(req: Request<hyper::body::Incoming>) -> Result<(HeaderMap, Bytes)> {
    let (mut parts, body) = req.into_parts();
    let ct = content_type(&parts.headers);
    let protobuf = ct.starts_with(PROTOBUF);
    let yaml = ct.starts_with("application/yaml");
    let limited = http_body_util::Limited::new(body, MAX_BODY);
    let bytes = limited.collect().await.map_err(|e| {
        if e.downcast_ref::<http_body_util::LengthLimitError>()
            .is_some()
        {
            ApiError::too_large()
        } else {
            ApiError::bad_request(format!("reading the body: {e}"))
        }
    })?;
    let mut bytes = bytes.to_bytes();
    if protobuf || yaml {
        // The rest of the apiserver sees the object as JSON.
        let object = if protobuf {
            crate::protobuf::decode(&bytes).map_err(|e| {
                ApiError::bad_request(format!("the protobuf body could not be decoded: {e}"))
            })?
        } else {
            yaml_to_json(&bytes)?
        };
        bytes = serde_json::to_vec(&object)
            .map_err(ApiError::internal)?
            .into();
        parts.headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
    }
    Ok((parts.headers, bytes))
}

/// A YAML document as JSON (the form Kubernetes converts YAML bodies to).
pub fn yaml_to_json(bytes: &[u8]) -> Result<Value> {
    serde_yaml::from_slice(bytes)
        .map_err(|e| ApiError::bad_request(format!("the YAML body could not be decoded: {e}")))
}

fn content_type(headers: &HeaderMap) -> &str {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

fn parse_json(bytes: &[u8]) -> Result<Value> {
    serde_json::from_slice(bytes)
        .map_err(|e| ApiError::bad_request(format!("the body is not valid JSON: {e}")))
}

/// A request for a resource path.
struct Target {
    r: &'static Resource,
    ns: Option<String>,
    name: Option<String>,
    sub: Option<String>,
    watch: bool,
}

async fn route(
    state: &ApiState,
    user: Option<&User>,
    req: Request<hyper::body::Incoming>,
) -> Result<Response<Body>> {
    let path = req.uri().path().trim_end_matches('/').to_string();
    let query = Query::parse(req.uri().query());
    let accept = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let get = req.method() == Method::GET;
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
    // A group-version another server serves, through an APIService.
    if let ["apis", g, v, ..] = segs.as_slice()
        && let Some(api_service) = aggregator::remote(&state.objects, g, v)
    {
        let user = user.ok_or_else(ApiError::unauthorized)?;
        let resp = aggregator::forward(&state.objects, &state.aggregator, &api_service, user, req);
        return resp.await;
    }
    match segs.as_slice() {
        ["healthz"] | ["readyz"] | ["livez"] if get => return Ok(Response::new(Body::from("ok"))),
        ["metrics"] if get => {
            let mut r = Response::new(Body::from(state.metrics.render()));
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4"),
            );
            return Ok(r);
        }
        ["version"] if get => {
            return Ok(ok(&json!({
                "major": "1", "minor": "32", "gitVersion": format!("{KUBE_VERSION}-shoal.{}", env!("CARGO_PKG_VERSION")),
                "gitCommit": "", "gitTreeState": "clean", "buildDate": "", "goVersion": "", "compiler": "rustc",
                "platform": format!("{}/{}", std::env::consts::OS, if cfg!(target_arch = "x86_64") { "amd64" } else { std::env::consts::ARCH }),
            })));
        }
        ["api"] if get => {
            return if discovery::wants_aggregated(&accept) {
                aggregated(true)
            } else {
                Ok(ok(&discovery::api_versions()))
            };
        }
        ["apis"] if get => {
            return if discovery::wants_aggregated(&accept) {
                aggregated(false)
            } else {
                Ok(ok(&discovery::group_list(
                    state.objects.resources(),
                    &aggregator::remote_groups(&state.objects),
                )))
            };
        }
        ["api", "v1"] if get => {
            return Ok(ok(&discovery::resource_list(
                state.objects.resources(),
                "",
                "v1",
            )
            .unwrap_or_default()));
        }
        ["apis", g] if get => {
            return discovery::group(
                state.objects.resources(),
                &aggregator::remote_groups(&state.objects),
                g,
            )
            .map(|v| ok(&v))
            .ok_or_else(ApiError::no_route);
        }
        ["apis", g, v] if get => {
            return discovery::resource_list(state.objects.resources(), g, v)
                .map(|v| ok(&v))
                .ok_or_else(ApiError::no_route);
        }
        ["openapi", "v3"] if get => return Ok(ok(&openapi::root(state.objects.resources()))),
        ["openapi", "v3", "api", v] if get => return doc(state, "", v, query.get("hash")),
        ["openapi", "v3", "apis", g, v] if get => return doc(state, g, v, query.get("hash")),
        ["openapi", "v2"] if get => {
            return Err(ApiError {
                code: 404,
                reason: "NotFound",
                message: "OpenAPI v2 is not served; use /openapi/v3".into(),
                details: None,
            });
        }
        _ => {}
    }
    let (group, version, rest): (&str, &str, &[&str]) = match segs.as_slice() {
        ["api", v, rest @ ..] => ("", v, rest),
        ["apis", g, v, rest @ ..] => (g, v, rest),
        _ => return Err(ApiError::no_route()),
    };
    let (watch_prefix, rest) = match rest {
        ["watch", rest @ ..] => (true, rest),
        r => (false, r),
    };
    let registry = state.objects.resources();
    let namespaced_path = matches!(rest, ["namespaces", _, plural, ..] if registry.find(group, version, plural).is_some_and(|r| r.namespaced));
    let target = if namespaced_path {
        let r = registry
            .find(group, version, rest[2])
            .ok_or_else(ApiError::no_route)?;
        if rest.len() > 5 {
            return Err(ApiError::no_route());
        }
        Target {
            r,
            ns: Some(rest[1].to_string()),
            name: rest.get(3).map(|s| s.to_string()),
            sub: rest.get(4).map(|s| s.to_string()),
            watch: watch_prefix,
        }
    } else {
        let plural = rest.first().ok_or_else(ApiError::no_route)?;
        let r = registry
            .find(group, version, plural)
            .ok_or_else(ApiError::no_route)?;
        if rest.len() > 3 {
            return Err(ApiError::no_route());
        }
        Target {
            r,
            ns: None,
            name: rest.get(1).map(|s| s.to_string()),
            sub: rest.get(2).map(|s| s.to_string()),
            watch: watch_prefix,
        }
    };
    if target.r.namespaced && target.ns.is_none() && target.name.is_some() {
        return Err(ApiError::no_route());
    }
    let labels = metrics::RequestLabels {
        verb: verb_of(req.method(), &target, &query),
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

/// The Kubernetes verb of a request for a resource path.
fn verb_of(method: &Method, t: &Target, q: &Query) -> &'static str {
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

fn sub_of(r: &Resource, sub: Option<&str>) -> Result<Option<Sub>> {
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

/// The autoscaling/v1 Scale view of `obj`: a built-in kind's
/// `.spec.replicas`, or the paths a custom resource's definition names.
fn scale_of(r: &Resource, obj: &Value) -> Value {
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
            obj.pointer("/spec/selector/matchLabels")
                .or_else(|| {
                    // A ReplicationController's selector is a plain map.
                    obj.pointer("/spec/selector")
                        .filter(|_| r.builtin_kind() == "ReplicationController")
                })
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
fn replicas_patch(r: &Resource, replicas: i64) -> Value {
    let path = r
        .custom
        .and_then(|c| c.scale.as_ref())
        .map_or(".spec.replicas", |p| p.spec_replicas.as_str());
    let keys = jsonpath::keys(path).unwrap_or_else(|| vec!["spec".into(), "replicas".into()]);
    keys.iter()
        .rev()
        .fold(json!(replicas), |inner, k| json!({ k: inner }))
}

fn list_kind(r: &Resource) -> String {
    format!("{}List", r.kind)
}

async fn resource(
    state: &ApiState,
    t: Target,
    q: Query,
    accept: String,
    req: Request<hyper::body::Incoming>,
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
    match (method, t.name.as_deref(), sub) {
        (Method::POST, None, None) if r.group == "authorization.k8s.io" => {
            let opts = q.write_opts(req.headers())?;
            let (_, body) = read_body(req).await?;
            let body = parse_json(&body)?;
            crate::validation::decode(r, &body, opts.field_validation)?;
            Ok(json_response(
                StatusCode::CREATED,
                &review(r, body)?,
                "application/json",
            ))
        }
        (Method::GET, None, None) => {
            let labels = LabelSelector::parse(q.get("labelSelector").unwrap_or_default())?;
            let fields = FieldSelector::parse(q.get("fieldSelector").unwrap_or_default())?;
            if t.watch || q.flag("watch") {
                return watch::watch(objects, r, t.ns.as_deref(), labels, fields, &q, table).await;
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
            let (items, rev) = match token.as_ref().map(|t| t.revision).or(exact) {
                Some(at) => {
                    let current = objects.store().revision();
                    if at > current {
                        return Err(ApiError::too_large_resource_version(at, current));
                    }
                    (
                        objects.list_at(r, t.ns.as_deref(), &labels, &fields, at)?,
                        at,
                    )
                }
                None => objects.list(r, t.ns.as_deref(), &labels, &fields),
            };
            let first_page = token.is_none() && exact.is_none();
            let after = token.map(|t| t.start);
            let mut page: Vec<&crate::store::Stored> = items
                .iter()
                .filter(|s| after.as_ref().is_none_or(|a| list_key(&s.value) > *a))
                .collect();
            let cont = (page.len() > limit).then(|| {
                if first_page {
                    // The next pages read the objects as this one did.
                    objects.pin_list(r, t.ns.as_deref(), rev);
                }
                page.truncate(limit);
                Continue {
                    revision: rev,
                    start: list_key(&page[limit - 1].value),
                }
                .encode()
            });
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
        (Method::GET, Some(name), s) => {
            let cur = objects.get(r, &ns, name)?;
            match s {
                Some(Sub::Scale) => Ok(ok(&scale_of(r, &cur.value))),
                Some(Sub::Log) => logs::proxy(state, &cur.value, &q).await,
                Some(Sub::Binding) => Err(ApiError::method_not_allowed()),
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
            let opts = q.write_opts(req.headers())?;
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
        (Method::POST, Some(name), Some(Sub::Binding)) => {
            let (_, body) = read_body(req).await?;
            let binding = parse_json(&body)?;
            let node = binding
                .pointer("/target/name")
                .and_then(Value::as_str)
                .ok_or_else(|| ApiError::bad_request("binding.target.name is required"))?;
            crate::scheduler::bind(objects, &ns, name, node).await?;
            Ok(status_response(
                StatusCode::CREATED,
                crate::error::success_status_json(201),
            ))
        }
        (Method::PUT, Some(name), s @ (None | Some(Sub::Status))) => {
            let opts = q.write_opts(req.headers())?;
            let (_, body) = read_body(req).await?;
            let w = objects
                .update(r, &ns, name, parse_json(&body)?, s, opts)
                .await?;
            Ok(with_warnings(ok(&r.served_as(&w.object)), &w.warnings))
        }
        (Method::PUT | Method::PATCH, Some(name), Some(Sub::Scale)) => {
            let is_patch = req.method() == Method::PATCH;
            let opts = q.write_opts(req.headers())?;
            let (headers, body) = read_body(req).await?;
            let ct = content_type(&headers);
            let body = parse_json(&body)?;
            let cur = objects.get(r, &ns, name)?;
            let scale = if is_patch {
                match PatchType::from_content_type(ct)? {
                    PatchType::Json => crate::patch::json(&scale_of(r, &cur.value), &body)?,
                    PatchType::Merge => crate::patch::merge(&scale_of(r, &cur.value), &body),
                    PatchType::Strategic => {
                        crate::patch::strategic_merge(&scale_of(r, &cur.value), &body)?
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
        (Method::PATCH, Some(name), None)
            if content_type(req.headers()).starts_with("application/apply-patch") =>
        {
            let opts = q.write_opts(req.headers())?;
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
        (Method::PATCH, Some(name), s @ (None | Some(Sub::Status))) => {
            let opts = q.write_opts(req.headers())?;
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
            let (items, _) = objects.list(r, t.ns.as_deref(), &labels, &fields);
            for s in &items {
                let (n, nsp) = (
                    crate::meta::name(&s.value),
                    crate::meta::namespace(&s.value),
                );
                match objects.delete(r, nsp, n, opts.clone()).await {
                    Ok(_) => {}
                    Err(e) if e.code == 404 => {}
                    Err(e) => return Err(e),
                }
            }
            Ok(status_response(
                StatusCode::OK,
                crate::error::success_status_json(0),
            ))
        }
        _ => Err(ApiError::method_not_allowed()),
    }
}

/// The answer to a SelfSubjectAccessReview (`kubectl auth can-i`) or a
/// SelfSubjectRulesReview (`can-i --list`): shoal does not authorize, so
/// every authenticated client may do everything.
fn review(r: &Resource, mut review: Value) -> Result<Value> {
    if r.kind == "SelfSubjectAccessReview" {
        let spec = &review["spec"];
        if spec.get("resourceAttributes").is_none() == spec.get("nonResourceAttributes").is_none() {
            return Err(ApiError::invalid(
                r.group,
                r.kind,
                "",
                vec![crate::error::Cause {
                    kind: "FieldValueInvalid",
                    field: "spec.resourceAttributes".into(),
                    message: "Invalid value: exactly one of nonResourceAttributes or resourceAttributes must be specified".into(),
                }],
            ));
        }
        review["status"] =
            json!({"allowed": true, "reason": "shoal allows every authenticated client"});
    } else {
        review["status"] = json!({
            "resourceRules": [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}],
            "nonResourceRules": [{"verbs": ["*"], "nonResourceURLs": ["*"]}],
            "incomplete": false,
        });
    }
    review["apiVersion"] = json!(r.api_version());
    review["kind"] = json!(r.kind);
    Ok(review)
}

fn delete_opts(q: &Query, body: &[u8]) -> Result<DeleteOpts> {
    let b: Value = if body.is_empty() {
        json!({})
    } else {
        parse_json(body)?
    };
    let grace = q
        .get("gracePeriodSeconds")
        .and_then(|g| g.parse().ok())
        .or_else(|| b.get("gracePeriodSeconds").and_then(Value::as_i64));
    let policy = q
        .get("propagationPolicy")
        .or_else(|| b.get("propagationPolicy").and_then(Value::as_str));
    let orphan = q
        .get("orphanDependents")
        .map(|o| o == "true")
        .or_else(|| b.get("orphanDependents").and_then(Value::as_bool));
    let propagation = match (policy, orphan) {
        (Some(_), Some(_)) => {
            return Err(ApiError::bad_request(
                "orphanDependents and propagationPolicy may not both be set",
            ));
        }
        (Some(p), None) => Propagation::parse(p).ok_or_else(|| {
            ApiError::bad_request(format!(
                "propagationPolicy: Unsupported value: \"{p}\": supported values: \"Foreground\", \"Background\", \"Orphan\""
            ))
        })?,
        (None, Some(true)) => Propagation::Orphan,
        (None, _) => Propagation::Background,
    };
    Ok(DeleteOpts {
        propagation,
        grace_period: grace,
        uid: b
            .pointer("/preconditions/uid")
            .and_then(Value::as_str)
            .map(String::from),
        resource_version: b
            .pointer("/preconditions/resourceVersion")
            .and_then(Value::as_str)
            .and_then(|s| s.parse().ok()),
        dry_run: q.get("dryRun") == Some("All")
            || b.get("dryRun")
                .and_then(Value::as_array)
                .is_some_and(|a| a.contains(&json!("All"))),
    })
}

/// A list of built-in objects: its head (`kind`, `apiVersion`,
/// `metadata`), then the items as the store encoded them when they were
/// written, unless served in another form.
fn list_response(head: &Value, page: &[&crate::store::Stored], r: &Resource) -> Response<Body> {
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

fn list_key(v: &Value) -> String {
    format!("{}/{}", crate::meta::namespace(v), crate::meta::name(v))
}

/// Where a paged list goes on: the revision its first page was read at and
/// the last key returned.
#[derive(serde::Serialize, serde::Deserialize)]
struct Continue {
    #[serde(rename = "rv")]
    revision: u64,
    start: String,
}

impl Continue {
    fn encode(&self) -> String {
        use base64::Engine as _;
        let json = serde_json::to_vec(self).unwrap_or_default();
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json)
    }

    fn decode(c: &str) -> Result<Self> {
        use base64::Engine as _;
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(c)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or_else(|| ApiError::bad_request("invalid continue token"))
    }
}

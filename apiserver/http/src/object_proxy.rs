//! `pods/{name}/proxy`, `services/{name}/proxy` and `nodes/{name}/proxy`
//! (what `kubectl proxy` and `kubectl get --raw …/proxy/` use): an HTTP
//! request passed on, method, headers and body, to a pod's port, one of a
//! Service's ready endpoints, or a node's kubelet API. Pods are reached
//! through their node's kubelet API (`/podProxy`), which serves a port of
//! an HTTP component in-process and connects to any other, so a pod is
//! reachable whether or not the control plane can route to pod IPs.
//!
//! Names carry the port as Kubernetes spells it: `pod[:port]`,
//! `[scheme:]service[:port]` (a port's name or number), `node[:port]`.
//!
//! May import: `kubelet` (the calls to nodes).

use axum::body::Body;
use http::{HeaderMap, Request, Response, header};
use serde_json::Value;

use super::{ApiState, kubelet};
use shoal_machinery::error::{ApiError, Result};
use shoal_machinery::meta::str_at;
use shoal_registry::resources::{self, Resource};

/// Headers that belong to one connection, not passed on either way.
const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "authorization",
];

pub(super) async fn serve(
    state: &ApiState,
    r: &Resource,
    ns: &str,
    name: &str,
    req: Request<Body>,
) -> Result<Response<Body>> {
    // What follows `/{name}/proxy` in the request, as the client sent it.
    let raw = req.uri().path();
    let marker = format!("/{name}/proxy");
    let rest = raw
        .find(&marker)
        .map(|i| &raw[i + marker.len()..])
        .unwrap_or_default();
    let mut path = if rest.starts_with('/') {
        rest.to_string()
    } else {
        format!("/{rest}")
    };
    if let Some(q) = req.uri().query() {
        path = format!("{path}?{q}");
    }
    let (node, path) = match r.kind {
        "Node" => (name.split(':').next().unwrap_or(name).to_string(), path),
        "Pod" => {
            let (pod, port) = split_port(name);
            pod_target(state, ns, pod, port, &path)?
        }
        _ => {
            // `[scheme:]name[:port]`: only http is served.
            let parts: Vec<&str> = name.split(':').collect();
            let (svc, port) = match parts.as_slice() {
                [svc] => (*svc, None),
                ["http", svc, port] => (*svc, Some(*port)),
                ["https", ..] => {
                    return Err(ApiError::bad_request(
                        "https is not served through services/proxy",
                    ));
                }
                [svc, port] => (*svc, Some(*port)),
                _ => {
                    return Err(ApiError::bad_request(format!(
                        "invalid service name {name:?}"
                    )));
                }
            };
            let (pod, port) = service_endpoint(state, ns, svc, port)?;
            pod_target(state, ns, &pod, Some(&port), &path)?
        }
    };
    forward(state, &node, &path, req).await
}

fn split_port(name: &str) -> (&str, Option<&str>) {
    match name.split_once(':') {
        Some((n, p)) => (n, Some(p).filter(|p| !p.is_empty())),
        None => (name, None),
    }
}

/// The node of pod `pod` and the kubelet path that reaches `port` of it
/// (a number or the name of a container port; the first declared port
/// when none is named, else 80).
fn pod_target(
    state: &ApiState,
    ns: &str,
    pod: &str,
    port: Option<&str>,
    path: &str,
) -> Result<(String, String)> {
    let pods = resources::by_kind("", "Pod").expect("pods are served");
    let obj = state.objects.get(pods, ns, pod)?.value;
    let node = str_at(&obj, "/spec/nodeName").ok_or_else(|| {
        ApiError::bad_request(format!("pod {pod} is not yet scheduled to a node"))
    })?;
    let ports: Vec<&Value> = obj
        .pointer("/spec/containers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|c| c.get("ports").and_then(Value::as_array))
        .flatten()
        .collect();
    let number = |p: &Value| p.get("containerPort").and_then(Value::as_u64);
    let port = match port {
        Some(p) => match p.parse::<u16>() {
            Ok(n) => u64::from(n),
            Err(_) => ports
                .iter()
                .find(|c| c.get("name").and_then(Value::as_str) == Some(p))
                .and_then(|c| number(c))
                .ok_or_else(|| {
                    ApiError::bad_request(format!("pod {pod} has no port named {p:?}"))
                })?,
        },
        None => ports.first().and_then(|c| number(c)).unwrap_or(80),
    };
    Ok((
        node.to_string(),
        format!("/podProxy/{ns}/{pod}/{port}{path}"),
    ))
}

/// A ready endpoint of Service `svc` for its port `port` (a name or
/// number; the only port when none is named): the pod and its port.
fn service_endpoint(
    state: &ApiState,
    ns: &str,
    svc: &str,
    port: Option<&str>,
) -> Result<(String, String)> {
    let services = resources::by_kind("", "Service").expect("services are served");
    let service = state.objects.get(services, ns, svc)?.value;
    let sports: Vec<&Value> = service
        .pointer("/spec/ports")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .collect();
    let chosen = match port {
        None => sports.first().copied(),
        Some(p) => sports.iter().copied().find(|s| {
            s.get("name").and_then(Value::as_str) == Some(p)
                || s.get("port")
                    .and_then(Value::as_u64)
                    .map(|n| n.to_string())
                    .as_deref()
                    == Some(p)
        }),
    }
    .ok_or_else(|| {
        ApiError::unavailable(format!(
            "no service port {port:?} found for service \"{svc}\""
        ))
    })?;
    let port_name = chosen
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let endpoints = resources::by_kind("", "Endpoints").expect("endpoints are served");
    let eps = state
        .objects
        .get(endpoints, ns, svc)
        .map(|s| s.value)
        .map_err(|_| {
            ApiError::unavailable(format!("no endpoints available for service \"{svc}\""))
        })?;
    for subset in eps
        .get("subsets")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let Some(target) = subset
            .get("ports")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .find(|p| p.get("name").and_then(Value::as_str).unwrap_or_default() == port_name)
            .and_then(|p| p.get("port").and_then(Value::as_u64))
        else {
            continue;
        };
        let pod = subset
            .get("addresses")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter(|a| str_at(a, "/targetRef/kind") == Some("Pod"))
            .find_map(|a| str_at(a, "/targetRef/name"));
        if let Some(pod) = pod {
            return Ok((pod.to_string(), target.to_string()));
        }
    }
    Err(ApiError::unavailable(format!(
        "no endpoints available for service \"{svc}\""
    )))
}

fn pass_on(from: &HeaderMap, to: &mut HeaderMap) {
    for (k, v) in from {
        if !HOP_BY_HOP.contains(&k.as_str()) && k != header::HOST {
            to.append(k.clone(), v.clone());
        }
    }
}

/// Sends `req` to `path` of node `node`'s kubelet API; its answer back.
async fn forward(
    state: &ApiState,
    node: &str,
    path: &str,
    req: Request<Body>,
) -> Result<Response<Body>> {
    let (mut sender, addr) = kubelet::connect_node::<Body>(state, node, "proxy").await?;
    let (parts, body) = req.into_parts();
    let mut ask = Request::builder()
        .method(parts.method.clone())
        .uri(path)
        .header(header::HOST, addr.as_str());
    if let Some(h) = ask.headers_mut() {
        pass_on(&parts.headers, h);
    }
    let ask = ask.body(body).map_err(ApiError::internal)?;
    let resp = sender
        .send_request(ask)
        .await
        .map_err(|e| ApiError::unavailable(format!("proxying to node {node}: {e}")))?;
    let (parts, body) = resp.into_parts();
    let mut out = Response::new(Body::new(body));
    *out.status_mut() = parts.status;
    pass_on(&parts.headers, out.headers_mut());
    Ok(out)
}

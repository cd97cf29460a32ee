//! `pods/{name}/log`: proxied to the node agent serving the pod.

use axum::body::Body;
use http::{Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use serde_json::Value;

use super::{ApiState, Query};
use shoal_machinery::error::{ApiError, Result};
use shoal_machinery::meta::{self, str_at};
use shoal_registry::resources;

pub(super) async fn proxy(state: &ApiState, pod: &Value, q: &Query) -> Result<Response<Body>> {
    let name = meta::name(pod);
    let names = |field: &str| -> Vec<&str> {
        pod.pointer(&format!("/spec/{field}"))
            .and_then(Value::as_array)
            .map(|cs| {
                cs.iter()
                    .filter_map(|c| c.get("name").and_then(Value::as_str))
                    .collect()
            })
            .unwrap_or_default()
    };
    let (containers, inits) = (names("containers"), names("initContainers"));
    let container = match q.get("container") {
        Some(c) if containers.contains(&c) || inits.contains(&c) => c.to_string(),
        Some(c) => {
            return Err(ApiError::bad_request(format!(
                "container {c} is not valid for pod {name}"
            )));
        }
        None if containers.len() == 1 => containers[0].to_string(),
        None if inits.is_empty() => {
            return Err(ApiError::bad_request(format!(
                "a container name must be specified for pod {name}, choose one of: [{}]",
                containers.join(" ")
            )));
        }
        None => {
            return Err(ApiError::bad_request(format!(
                "a container name must be specified for pod {name}, choose one of: [{}] or one of the init containers: [{}]",
                containers.join(" "),
                inits.join(" ")
            )));
        }
    };
    let node_name = str_at(pod, "/spec/nodeName").ok_or_else(|| {
        ApiError::bad_request(format!("pod {name} is not yet scheduled to a node"))
    })?;
    let nodes = resources::by_kind("", "Node").expect("nodes are served");
    let node = state.objects.get(nodes, "", node_name)?;
    let addr = node
        .value
        .pointer("/status/addresses")
        .and_then(Value::as_array)
        .and_then(|a| {
            a.iter()
                .find(|x| x.get("type").and_then(Value::as_str) == Some("InternalIP"))
        })
        .and_then(|a| a.get("address").and_then(Value::as_str))
        .ok_or_else(|| ApiError::unavailable(format!("node {node_name} has no address")))?
        .to_string();
    let port = node
        .value
        .pointer("/status/daemonEndpoints/kubeletEndpoint/Port")
        .and_then(Value::as_i64)
        .unwrap_or(10250);
    let query = {
        let mut query = form_urlencoded::Serializer::new(String::new());
        for k in [
            "follow",
            "timestamps",
            "tailLines",
            "previous",
            "sinceSeconds",
            "limitBytes",
        ] {
            if let Some(v) = q.get(k) {
                query.append_pair(k, v);
            }
        }
        query.finish()
    };
    let path = format!(
        "/containerLogs/{}/{}/{}?{}",
        meta::namespace(pod),
        name,
        container,
        query
    );
    let unavailable = |e: &dyn std::fmt::Display| {
        ApiError::unavailable(format!("cannot reach node {node_name} for logs: {e}"))
    };
    let tcp = tokio::net::TcpStream::connect((addr.as_str(), port as u16))
        .await
        .map_err(|e| unavailable(&e))?;
    let server_name =
        rustls_pki_types::ServerName::try_from(addr.clone()).map_err(|e| unavailable(&e))?;
    let tls = tokio_rustls::TlsConnector::from(state.kubelet_client.clone())
        .connect(server_name, tcp)
        .await
        .map_err(|e| unavailable(&e))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .map_err(|e| unavailable(&e))?;
    tokio::spawn(conn);
    let req = Request::get(path)
        .header(header::HOST, addr.as_str())
        .body(Empty::<bytes::Bytes>::new())
        .map_err(ApiError::internal)?;
    let resp = sender
        .send_request(req)
        .await
        .map_err(|e| unavailable(&e))?;
    let status = resp.status();
    if status != StatusCode::OK {
        let body = resp
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        return Err(ApiError {
            code: status.as_u16(),
            reason: "BadRequest",
            message: String::from_utf8_lossy(&body).trim().to_string(),
            details: None,
        });
    }
    let mut out = Response::new(Body::new(resp.into_body()));
    out.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain"),
    );
    Ok(out)
}

//! The apiserver's calls to a node's kubelet API: which container a
//! request means, and a TLS connection to the node serving a pod (as the
//! API server's client, trusted by every node).

use http_body_util::Empty;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use serde_json::Value;

use super::{ApiState, Query};
use shoal_machinery::error::{ApiError, Result};
use shoal_machinery::meta::{self, str_at};
use shoal_registry::resources;

/// The container a request names, or the pod's only one; init containers
/// may be named too.
pub(super) fn container(pod: &Value, q: &Query) -> Result<String> {
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
    let (containers, mut inits) = (names("containers"), names("initContainers"));
    // Ephemeral containers are named like init containers, never chosen
    // by default.
    inits.extend(names("ephemeralContainers"));
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
    Ok(container)
}

/// An HTTP/1 connection (upgrades allowed) to the kubelet API of the node
/// `pod` is bound to, and the node's address; `what` names the request in
/// errors.
pub(super) async fn connect(
    state: &ApiState,
    pod: &Value,
    what: &str,
) -> Result<(SendRequest<Empty<bytes::Bytes>>, String)> {
    let name = meta::name(pod);
    let node_name = str_at(pod, "/spec/nodeName").ok_or_else(|| {
        ApiError::bad_request(format!("pod {name} is not yet scheduled to a node"))
    })?;
    connect_node(state, node_name, what).await
}

/// An HTTP/1 connection (upgrades allowed) to the kubelet API of node
/// `node_name`, and the node's address.
pub(super) async fn connect_node<B>(
    state: &ApiState,
    node_name: &str,
    what: &str,
) -> Result<(SendRequest<B>, String)>
where
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
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
    let unavailable = |e: &dyn std::fmt::Display| {
        ApiError::unavailable(format!("cannot reach node {node_name} for {what}: {e}"))
    };
    let tcp = tokio::net::TcpStream::connect((addr.as_str(), port as u16))
        .await
        .map_err(|e| unavailable(&e))?;
    // Streams (exec, port-forward) carry small writes both ways.
    let _ = tcp.set_nodelay(true);
    let server_name =
        rustls_pki_types::ServerName::try_from(addr.clone()).map_err(|e| unavailable(&e))?;
    let tls = tokio_rustls::TlsConnector::from(state.kubelet_client.clone())
        .connect(server_name, tcp)
        .await
        .map_err(|e| unavailable(&e))?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .map_err(|e| unavailable(&e))?;
    tokio::spawn(conn.with_upgrades());
    Ok((sender, addr))
}

/// `GET path` over a kubelet connection to `addr`: the answer, or why
/// there is none.
pub(super) async fn get(
    sender: &mut SendRequest<Empty<bytes::Bytes>>,
    addr: &str,
    path: &str,
) -> Result<std::result::Result<http::Response<hyper::body::Incoming>, hyper::Error>> {
    let req = http::Request::get(path)
        .header(http::header::HOST, addr)
        .body(Empty::<bytes::Bytes>::new())
        .map_err(ApiError::internal)?;
    Ok(sender.send_request(req).await)
}

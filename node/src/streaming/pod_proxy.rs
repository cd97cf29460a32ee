//! `/podProxy/{namespace}/{pod}/{port}/{path}`: one HTTP request passed
//! on to a port of a pod (what the API's `pods/proxy` and
//! `services/proxy` reach), over the same connection a port-forward makes:
//! in-process for an HTTP component's port, else TCP to the pod.

use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, combinators::BoxBody};
use hyper_util::rt::TokioIo;

use super::Refusal;
use crate::agent::Shared;

pub(crate) async fn serve(
    shared: Arc<Shared>,
    req: Request<hyper::body::Incoming>,
    ns: &str,
    pod: &str,
    port: &str,
) -> Result<Response<BoxBody<Bytes, std::io::Error>>, Refusal> {
    let port: u16 = port
        .parse()
        .ok()
        .filter(|p| *p > 0)
        .ok_or((StatusCode::BAD_REQUEST, format!("invalid port {port:?}")))?;
    let target = super::pod_target(&shared, ns, pod)?;
    // What follows the port in the request's path, and its query.
    let prefix = format!("/podProxy/{ns}/{pod}/{port}");
    let rest = req
        .uri()
        .path()
        .strip_prefix(&prefix)
        .filter(|r| r.starts_with('/'))
        .unwrap_or("/")
        .to_string();
    let path = match req.uri().query() {
        Some(q) => format!("{rest}?{q}"),
        None => rest,
    };
    let unavailable = |e: String| {
        (
            StatusCode::BAD_GATEWAY,
            format!("error trying to reach pod {ns}/{pod} on port {port}: {e}"),
        )
    };
    let conn = super::portforward::connect(&shared, &target, port)
        .await
        .map_err(unavailable)?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(conn))
        .await
        .map_err(|e| unavailable(e.to_string()))?;
    tokio::spawn(connection);
    let (mut parts, body) = req.into_parts();
    parts.uri = path
        .parse()
        .map_err(|e| (StatusCode::BAD_REQUEST, format!("invalid path: {e}")))?;
    let resp = sender
        .send_request(Request::from_parts(parts, body))
        .await
        .map_err(|e| unavailable(e.to_string()))?;
    Ok(resp.map(|b| b.map_err(std::io::Error::other).boxed()))
}

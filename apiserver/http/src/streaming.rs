//! `pods/{name}/exec`, `attach` and `portforward`: the client's upgrade
//! request (WebSocket or SPDY, whichever it speaks) goes on to the kubelet
//! API of the pod's node, which serves the protocol; once the node agrees to
//! switch protocols, the two connections are joined byte for byte.

use axum::body::Body;
use http::{HeaderName, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use serde_json::Value;

use super::{ApiState, Query, kubelet};
use shoal_machinery::error::{ApiError, Result};
use shoal_machinery::meta::{self, str_at};
use shoal_registry::resources::Sub;

/// Request headers the node needs to answer an upgrade.
const ASKED: [HeaderName; 6] = [
    header::CONNECTION,
    header::UPGRADE,
    header::SEC_WEBSOCKET_KEY,
    header::SEC_WEBSOCKET_VERSION,
    header::SEC_WEBSOCKET_PROTOCOL,
    HeaderName::from_static("x-stream-protocol-version"),
];

/// Response headers that tell the client what was agreed.
const AGREED: [HeaderName; 5] = [
    header::CONNECTION,
    header::UPGRADE,
    header::SEC_WEBSOCKET_ACCEPT,
    header::SEC_WEBSOCKET_PROTOCOL,
    HeaderName::from_static("x-stream-protocol-version"),
];

pub(super) async fn proxy(
    state: &ApiState,
    pod: &Value,
    sub: Sub,
    q: &Query,
    mut req: Request<Body>,
) -> Result<Response<Body>> {
    let (ns, name) = (meta::namespace(pod), meta::name(pod));
    if let Some(phase @ ("Succeeded" | "Failed")) = str_at(pod, "/status/phase") {
        let what = match sub {
            Sub::Attach => "attach to",
            Sub::PortForward => "forward ports to",
            _ => "exec into",
        };
        return Err(ApiError::bad_request(format!(
            "cannot {what} a container in a completed pod; current phase is {phase}"
        )));
    }
    if !req.headers().contains_key(header::UPGRADE) {
        return Err(ApiError::bad_request("Upgrade request required"));
    }
    let query = {
        let mut query = form_urlencoded::Serializer::new(String::new());
        for (k, v) in form_urlencoded::parse(req.uri().query().unwrap_or_default().as_bytes()) {
            if k != "container" {
                query.append_pair(&k, &v);
            }
        }
        query.finish()
    };
    let path = match sub {
        Sub::PortForward => format!("/portForward/{ns}/{name}?{query}"),
        _ => {
            let container = kubelet::container(pod, q)?;
            format!("/{}/{ns}/{name}/{container}?{query}", sub.name())
        }
    };
    let client_side = hyper::upgrade::on(&mut req);
    let (mut sender, addr) = kubelet::connect(state, pod, sub.name()).await?;
    let method = if req.method() == Method::POST {
        Method::POST
    } else {
        Method::GET
    };
    let mut ask = Request::builder()
        .method(method)
        .uri(path)
        .header(header::HOST, addr.as_str());
    for h in &ASKED {
        for v in req.headers().get_all(h) {
            ask = ask.header(h, v);
        }
    }
    let ask = ask.body(Empty::new()).map_err(ApiError::internal)?;
    let answer = sender
        .send_request(ask)
        .await
        .map_err(|e| ApiError::unavailable(format!("cannot reach the node of pod {name}: {e}")))?;
    if answer.status() != StatusCode::SWITCHING_PROTOCOLS {
        let code = answer.status().as_u16();
        let body = answer
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        return Err(ApiError {
            code,
            reason: match code {
                404 => "NotFound",
                400 => "BadRequest",
                403 => "Forbidden",
                _ => "InternalError",
            },
            message: String::from_utf8_lossy(&body).trim().to_string(),
            details: None,
        });
    }
    let mut switched = Response::new(Body::empty());
    *switched.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    for h in &AGREED {
        for v in answer.headers().get_all(h) {
            switched.headers_mut().append(h, v.clone());
        }
    }
    let node_side = hyper::upgrade::on(answer);
    tokio::spawn(async move {
        let (client, node) = match tokio::join!(client_side, node_side) {
            (Ok(c), Ok(n)) => (c, n),
            (Err(e), _) | (_, Err(e)) => {
                tracing::debug!("a streaming upgrade failed: {e}");
                return;
            }
        };
        let _ =
            tokio::io::copy_bidirectional(&mut TokioIo::new(client), &mut TokioIo::new(node)).await;
    });
    Ok(switched)
}

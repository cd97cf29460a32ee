//! A request's way to an aggregated API server and back: the client's
//! request with its credentials and hop-by-hop headers removed and the
//! requester named in the front-proxy headers, the answer streamed back as
//! it comes (watches included).

use axum::body::Body;
use http::header::{self, HeaderName, HeaderValue};
use http::{Request, Response};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use rustls_pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use super::{Aggregator, Backend};
use crate::authn::User;
use shoal_machinery::error::{ApiError, Result};
use shoal_registry::objects::Objects;

/// The header naming the requesting user.
pub const REMOTE_USER: &str = "X-Remote-User";
/// The header naming one of its groups (repeated).
pub const REMOTE_GROUP: &str = "X-Remote-Group";
/// The prefix of headers carrying its extra attributes.
pub const REMOTE_EXTRA: &str = "X-Remote-Extra-";

/// How long connecting to a backend may take.
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Headers of one connection, not of the request.
const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Whether a client's header stays on the proxied request: not its
/// credentials, not a claim of identity (only the proxy names the user),
/// not its connection's headers.
fn kept(name: &HeaderName) -> bool {
    let n = name.as_str();
    !(HOP_BY_HOP.contains(&n)
        || n == "host"
        || n == "authorization"
        || n.starts_with("impersonate-")
        || n.starts_with("x-remote-"))
}

/// Proxies `req` for `user` to the backend of `api_service`.
pub async fn forward(
    objects: &Objects,
    aggregator: &Aggregator,
    api_service: &serde_json::Value,
    user: &User,
    req: Request<Body>,
) -> Result<Response<Body>> {
    let unavailable = |why: String| {
        ApiError::unavailable(format!(
            "the server is currently unable to handle the request: {why}"
        ))
    };
    let backend = super::resolve(objects, api_service).map_err(unavailable)?;
    let (parts, body) = req.into_parts();
    let path = parts
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_string();
    let mut out = Request::builder().method(parts.method).uri(path);
    let headers = out.headers_mut().expect("a fresh builder has headers");
    for (name, value) in parts.headers.iter().filter(|(n, _)| kept(n)) {
        headers.append(name, value.clone());
    }
    let value = |s: &str| {
        HeaderValue::from_str(s).map_err(|_| unavailable(format!("{s:?} is not a header value")))
    };
    headers.insert(header::HOST, value(&backend.host)?);
    headers.insert(REMOTE_USER, value(&user.name)?);
    for g in &user.groups {
        headers.append(REMOTE_GROUP, value(g)?);
    }
    let out = out.body(body).map_err(ApiError::internal)?;
    let resp = send(aggregator, &backend, out).await.map_err(|e| {
        unavailable(format!(
            "error trying to reach service {}: {e}",
            backend.addr
        ))
    })?;
    let (mut parts, body) = resp.into_parts();
    for h in HOP_BY_HOP {
        parts.headers.remove(h);
    }
    Ok(Response::from_parts(parts, Body::new(body)))
}

/// Sends `req` to `backend` over TLS as the front proxy, on a connection
/// of its own that lives as long as the response's body.
pub(super) async fn send<B>(
    aggregator: &Aggregator,
    backend: &Backend,
    req: Request<B>,
) -> std::result::Result<Response<Incoming>, String>
where
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let tls = aggregator.tls(backend)?;
    let name = ServerName::try_from(backend.host.clone()).map_err(|e| e.to_string())?;
    let tcp = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(backend.addr))
        .await
        .map_err(|_| "connecting timed out".to_string())?
        .map_err(|e| e.to_string())?;
    let _ = tcp.set_nodelay(true);
    let stream = tokio::time::timeout(CONNECT_TIMEOUT, TlsConnector::from(tls).connect(name, tcp))
        .await
        .map_err(|_| "the TLS handshake timed out".to_string())?
        .map_err(|e| format!("TLS: {e}"))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!("aggregated API connection: {e}");
        }
    });
    sender.send_request(req).await.map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_identities_and_connection_headers_stay_behind() {
        for h in [
            "authorization",
            "x-remote-user",
            "x-remote-group",
            "x-remote-extra-scopes",
            "impersonate-user",
            "connection",
            "host",
        ] {
            assert!(!kept(&HeaderName::from_static(h)), "{h}");
        }
        for h in ["accept", "content-type", "user-agent", "x-request-id"] {
            assert!(kept(&HeaderName::from_static(h)), "{h}");
        }
    }
}

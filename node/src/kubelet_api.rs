//! The kubelet API the control plane calls: container logs, exec and
//! port-forward, resource figures (`/stats/summary`), health.
//!
//! Callers present a client certificate the cluster CA signed; the API
//! server's (in `system:masters`) is let through, anyone else only when a
//! SubjectAccessReview says they may `get` this node's `nodes/proxy`, as the
//! kubelet's webhook authorization asks.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::body::Frame;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncBufReadExt, AsyncSeekExt};

use crate::agent::Shared;
use crate::logs::{log_path, split_line};

type Body = BoxBody<Bytes, std::io::Error>;

fn text(code: StatusCode, s: impl Into<String>) -> Response<Body> {
    let mut r = Response::new(
        Full::new(Bytes::from(s.into()))
            .map_err(|never: Infallible| match never {})
            .boxed(),
    );
    *r.status_mut() = code;
    r
}

pub(crate) async fn serve(shared: Arc<Shared>, mut listener: tokio::net::TcpListener) {
    let acceptor = tokio_rustls::TlsAcceptor::from(shared.config.kubelet_tls.clone());
    loop {
        // Within the process's budget of connections; accept errors are
        // waited out, never spun on.
        let (tcp, peer, slot) = shoal_listen::accept(&mut listener).await;
        let (acceptor, shared) = (acceptor.clone(), shared.clone());
        tokio::spawn(async move {
            let _slot = slot;
            let Some(tls) = shoal_listen::handshake(&acceptor, tcp, peer).await else {
                return;
            };
            let caller = tls
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|c| c.first())
                .and_then(|c| caller(c.as_ref()));
            let svc = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                let (shared, caller) = (shared.clone(), caller.clone());
                async move {
                    let Some((user, groups)) = caller else {
                        return Ok::<_, Infallible>(text(StatusCode::UNAUTHORIZED, "Unauthorized"));
                    };
                    if !groups.iter().any(|g| g == "system:masters")
                        && !may_proxy(&shared, &user, &groups).await
                    {
                        return Ok(text(
                            StatusCode::FORBIDDEN,
                            format!(
                                "Forbidden (user={user}, verb=get, resource=nodes, subresource=proxy)"
                            ),
                        ));
                    }
                    Ok(handle(shared, req).await)
                }
            });
            let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            // The timer gives HTTP/1 its default 30 s to read a request's headers.
            builder.http1().timer(TokioTimer::new());
            let _ = builder
                .serve_connection_with_upgrades(TokioIo::new(tls), svc)
                .await;
        });
    }
}

/// The user (CN) and groups (O) of a client certificate.
fn caller(der: &[u8]) -> Option<(String, Vec<String>)> {
    use x509_parser::prelude::{FromDer, X509Certificate};
    let (_, cert) = X509Certificate::from_der(der).ok()?;
    let subject = cert.subject();
    let name = subject
        .iter_common_name()
        .next()?
        .as_str()
        .ok()?
        .to_string();
    let groups = subject
        .iter_organization()
        .filter_map(|o| o.as_str().ok())
        .map(str::to_string)
        .collect();
    Some((name, groups))
}

/// Whether the API's authorizer lets `user` get this node's `nodes/proxy`.
async fn may_proxy(shared: &Shared, user: &str, groups: &[String]) -> bool {
    let review = serde_json::json!({
        "apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
        "spec": {"user": user, "groups": groups, "resourceAttributes": {
            "verb": "get", "resource": "nodes", "subresource": "proxy",
            "name": shared.config.node_name}},
    });
    let Ok(body) = serde_json::to_vec(&review) else {
        return false;
    };
    let req = http::Request::post("/apis/authorization.k8s.io/v1/subjectaccessreviews")
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(body);
    let Ok(req) = req else { return false };
    match shared.client.request::<serde_json::Value>(req).await {
        Ok(answer) => answer.pointer("/status/allowed") == Some(&serde_json::Value::Bool(true)),
        Err(e) => {
            tracing::warn!("asking the API whether {user} may use the kubelet API: {e}");
            false
        }
    }
}

async fn handle(shared: Arc<Shared>, mut req: Request<hyper::body::Incoming>) -> Response<Body> {
    let path = req.uri().path().to_string();
    let query: Vec<(String, String)> =
        form_urlencoded::parse(req.uri().query().unwrap_or_default().as_bytes())
            .into_owned()
            .collect();
    let q = |k: &str| query.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    match segs.as_slice() {
        ["healthz"] => text(StatusCode::OK, "ok"),
        ["stats", "summary"] => {
            let mut r = text(StatusCode::OK, crate::stats::summary(&shared).to_string());
            r.headers_mut().insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static("application/json"),
            );
            r
        }
        ["exec", ns, pod, container] => {
            crate::streaming::exec(shared, &mut req, &query, ns, pod, container, false)
                .unwrap_or_else(|(code, msg)| text(code, msg))
        }
        ["attach", ns, pod, container] => {
            crate::streaming::exec(shared, &mut req, &query, ns, pod, container, true)
                .unwrap_or_else(|(code, msg)| text(code, msg))
        }
        ["podProxy", ns, pod, port, ..] => {
            let (ns, pod, port) = (ns.to_string(), pod.to_string(), port.to_string());
            crate::streaming::pod_proxy::serve(shared, req, &ns, &pod, &port)
                .await
                .unwrap_or_else(|(code, msg)| text(code, msg))
        }
        ["portForward", ns, pod] => {
            crate::streaming::port_forward(shared, &mut req, &query, ns, pod)
                .unwrap_or_else(|(code, msg)| text(code, msg))
        }
        ["containerLogs", ns, pod, container] => {
            let uid = shared
                .by_name
                .lock()
                .expect("names lock")
                .get(&(ns.to_string(), pod.to_string()))
                .cloned();
            let Some(uid) = uid else {
                return text(
                    StatusCode::NOT_FOUND,
                    format!("pod {ns}/{pod} is not running on this node"),
                );
            };
            let previous = matches!(q("previous"), Some("true" | "1"));
            let file = log_path(&shared.config.data_dir, &uid, container, previous);
            let follow = matches!(q("follow"), Some("true" | "1")) && !previous;
            let timestamps = matches!(q("timestamps"), Some("true" | "1"));
            let tail: Option<usize> = q("tailLines").and_then(|t| t.parse().ok());
            match tokio::fs::File::open(&file).await {
                Ok(f) => stream_log(shared, uid, file, f, follow, timestamps, tail).await,
                Err(_) if previous => text(
                    StatusCode::BAD_REQUEST,
                    format!(
                        "previous terminated container \"{container}\" in pod \"{pod}\" not found"
                    ),
                ),
                Err(_) => text(
                    StatusCode::BAD_REQUEST,
                    format!("container \"{container}\" in pod \"{pod}\" is waiting to start"),
                ),
            }
        }
        _ => text(StatusCode::NOT_FOUND, "not found"),
    }
}

async fn stream_log(
    shared: Arc<Shared>,
    uid: String,
    path: std::path::PathBuf,
    mut file: tokio::fs::File,
    follow: bool,
    timestamps: bool,
    tail: Option<usize>,
) -> Response<Body> {
    let mut start = 0u64;
    if let Some(n) = tail {
        let mut content = String::new();
        let _ = tokio::io::AsyncReadExt::read_to_string(&mut file, &mut content).await;
        let lines: Vec<&str> = content.split_inclusive('\n').collect();
        let skip = lines.len().saturating_sub(n);
        start = lines[..skip].iter().map(|l| l.len() as u64).sum();
    }
    let _ = file.seek(std::io::SeekFrom::Start(start)).await;
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, std::io::Error>>(64);
    tokio::spawn(async move {
        let mut reader = tokio::io::BufReader::new(file);
        let mut line = String::new();
        loop {
            line.clear();
            match reader.read_line(&mut line).await {
                Ok(0) => {
                    let alive = shared.pods.lock().expect("pods lock").contains_key(&uid);
                    if !follow || !alive {
                        return;
                    }
                    if tx.is_closed() {
                        return;
                    }
                    if rotated(&path, reader.get_ref()).await {
                        // The writer moved on to a new file: finish the old
                        // one, then follow the new one from its start.
                        loop {
                            line.clear();
                            match reader.read_line(&mut line).await {
                                Ok(n) if n > 0 => {
                                    if emit(&tx, &line, timestamps).await.is_err() {
                                        return;
                                    }
                                }
                                _ => break,
                            }
                        }
                        match tokio::fs::File::open(&path).await {
                            Ok(f) => reader = tokio::io::BufReader::new(f),
                            Err(_) => return,
                        }
                        continue;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Ok(_) if !line.ends_with('\n') => {
                    // A line still being written: wait for its end.
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    let mut rest = String::new();
                    let _ = reader.read_line(&mut rest).await;
                    line.push_str(&rest);
                    if emit(&tx, &line, timestamps).await.is_err() {
                        return;
                    }
                }
                Ok(_) => {
                    if emit(&tx, &line, timestamps).await.is_err() {
                        return;
                    }
                }
                Err(_) => return,
            }
        }
    });
    let stream =
        futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|x| (x, rx)) });
    Response::new(BodyExt::boxed(StreamBody::new(stream)))
}

/// Whether `path` now names another file than the open `file`.
async fn rotated(path: &std::path::Path, file: &tokio::fs::File) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (tokio::fs::metadata(path).await, file.metadata().await) {
        (Ok(now), Ok(open)) => now.ino() != open.ino() || now.dev() != open.dev(),
        _ => false,
    }
}

async fn emit(
    tx: &tokio::sync::mpsc::Sender<Result<Frame<Bytes>, std::io::Error>>,
    line: &str,
    timestamps: bool,
) -> Result<(), ()> {
    let (ts, text) = split_line(line);
    let out = if timestamps {
        format!("{ts} {text}")
    } else {
        text.to_string()
    };
    tx.send(Ok(Frame::data(Bytes::from(out))))
        .await
        .map_err(|_| ())
}

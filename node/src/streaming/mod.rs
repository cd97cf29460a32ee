//! The kubelet's streaming endpoints — `/exec`, `/attach`, `/portForward` and the
//! pods' HTTP proxy `/podProxy` (`pod_proxy.rs`) — over
//! the protocols Kubernetes clients speak: the WebSocket channel protocols
//! (`ws.rs`) and SPDY/3.1 (framing in `spdy.rs`, exec in `spdy_exec.rs`;
//! kubectl also tunnels SPDY through a WebSocket for port-forward,
//! `portforward.rs`). A protocol turns its frames into
//! the exec module's [`Input`](crate::exec::Input) and
//! [`Output`](crate::exec::Output) and reports the end as Kubernetes does.
//!
//! May import: the agent's shared state, exec and the HTTP proxy (a
//! forwarded port served in-process).

pub(crate) mod pod_proxy;
pub(crate) mod portforward;
pub(crate) mod spdy;
mod spdy_exec;
pub(crate) mod ws;

use std::sync::Arc;

use http::{HeaderValue, Request, Response, StatusCode, header};
use serde_json::{Value, json};

use crate::agent::Shared;
use crate::exec::{Command, Outcome};

/// A refusal: the status and message the client gets.
pub(crate) type Refusal = (StatusCode, String);

/// The version of `X-Stream-Protocol-Version` both sides speak, among
/// `offered` by the node.
fn spdy_protocol<B, T: Copy>(
    req: &Request<B>,
    offered: &[(&'static str, T)],
) -> Option<(&'static str, T)> {
    let asked: Vec<String> = req
        .headers()
        .get_all("x-stream-protocol-version")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|p| p.trim().to_string())
        .collect();
    offered
        .iter()
        .copied()
        .find(|(name, _)| asked.iter().any(|a| a == name))
}

/// Whether `req` asks to become a SPDY/3.1 connection.
fn is_spdy<B>(req: &Request<B>) -> bool {
    req.headers()
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("SPDY/3.1"))
}

/// The `101 Switching Protocols` answer to a SPDY request.
fn spdy_accept<R: Default>(protocol: &'static str) -> Response<R> {
    let mut r = Response::new(R::default());
    *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = r.headers_mut();
    h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    h.insert(header::UPGRADE, HeaderValue::from_static("SPDY/3.1"));
    h.insert(
        "x-stream-protocol-version",
        HeaderValue::from_static(protocol),
    );
    r
}

/// Serves the SPDY connection an upgrade becomes, handing its streams to
/// `handle`.
fn spawn_spdy<F, Fut>(upgrade: hyper::upgrade::OnUpgrade, handle: F)
where
    F: FnOnce(tokio::sync::mpsc::Receiver<spdy::Stream>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    tokio::spawn(async move {
        let Ok(upgraded) = upgrade.await else { return };
        let (tx, rx) = tokio::sync::mpsc::channel(16);
        tokio::spawn(handle(rx));
        spdy::serve(hyper_util::rt::TokioIo::new(upgraded), tx).await;
    });
}

/// `/exec/{namespace}/{pod}/{container}`: a command in a running
/// container, over a WebSocket or SPDY; with `attach`,
/// `/attach/{namespace}/{pod}/{container}`: the container's own streams.
pub(crate) fn exec<B, R: Default>(
    shared: Arc<Shared>,
    req: &mut Request<B>,
    query: &[(String, String)],
    ns: &str,
    pod: &str,
    container: &str,
    attach: bool,
) -> Result<Response<R>, Refusal> {
    let mut cmd = Command::from_query(query);
    cmd.attach = attach;
    check(&cmd).map_err(|e| (StatusCode::BAD_REQUEST, e))?;
    let target =
        exec_target(&shared, ns, pod, container).map_err(|e| (StatusCode::NOT_FOUND, e))?;
    if ws::is_websocket(req) {
        let protocol = ws::negotiate(req).ok_or((
            StatusCode::BAD_REQUEST,
            "none of the requested WebSocket protocols is supported; v5.channel.k8s.io, v4.channel.k8s.io and older channel.k8s.io versions are".to_string(),
        ))?;
        let response = ws::accept(req, protocol.name).map_err(|e| (StatusCode::BAD_REQUEST, e))?;
        let upgrade = hyper::upgrade::on(req);
        tokio::spawn(ws::exec(shared, upgrade, protocol, target, cmd));
        return Ok(response);
    }
    if !is_spdy(req) {
        return Err((StatusCode::BAD_REQUEST, "Upgrade request required".into()));
    }
    let (name, version) = spdy_protocol(req, &spdy_exec::PROTOCOLS).ok_or((
        StatusCode::FORBIDDEN,
        "unable to upgrade: no supported stream protocol; v4.channel.k8s.io and older are"
            .to_string(),
    ))?;
    let upgrade = hyper::upgrade::on(req);
    spawn_spdy(upgrade, move |streams| {
        spdy_exec::serve(shared, target, cmd, version, streams)
    });
    Ok(spdy_accept(name))
}

/// `/portForward/{namespace}/{pod}`: connections to the pod's ports, over
/// SPDY, SPDY inside a WebSocket (kubectl), or WebSocket channels (the
/// Python client, with `?ports=`).
pub(crate) fn port_forward<B, R: Default>(
    shared: Arc<Shared>,
    req: &mut Request<B>,
    query: &[(String, String)],
    ns: &str,
    pod: &str,
) -> Result<Response<R>, Refusal> {
    let target = pod_target(&shared, ns, pod)?;
    let pod = format!("{ns}/{pod}");
    if ws::is_websocket(req) {
        let offered: Vec<String> = req
            .headers()
            .get_all(header::SEC_WEBSOCKET_PROTOCOL)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(',').map(|p| p.trim().to_string()))
            .collect();
        const TUNNEL: &str = "SPDY/3.1+portforward.k8s.io";
        let channels = ["v4.channel.k8s.io", "portforward.k8s.io", "channel.k8s.io"];
        let protocol = if offered.iter().any(|p| p == TUNNEL) {
            TUNNEL
        } else if let Some(p) = channels.iter().find(|c| offered.iter().any(|o| o == *c)) {
            p
        } else if offered.is_empty() {
            ""
        } else {
            return Err((
                StatusCode::BAD_REQUEST,
                format!(
                    "none of the WebSocket protocols {offered:?} is supported; {TUNNEL} and v4.channel.k8s.io are"
                ),
            ));
        };
        let ports: Vec<u16> = query
            .iter()
            .filter(|(k, _)| k == "ports")
            .flat_map(|(_, v)| v.split(','))
            .map(|p| p.trim().parse::<u16>())
            .collect::<Result<_, _>>()
            .map_err(|_| {
                (
                    StatusCode::BAD_REQUEST,
                    "ports must be numbers from 1 to 65535".to_string(),
                )
            })?;
        if ports.len() > MAX_PORTS {
            return Err((
                StatusCode::BAD_REQUEST,
                format!("at most {MAX_PORTS} ports may be forwarded at once"),
            ));
        }
        if protocol != TUNNEL && ports.is_empty() {
            return Err((
                StatusCode::BAD_REQUEST,
                "query parameter \"port\" is required".into(),
            ));
        }
        let response = ws::accept(req, protocol).map_err(|e| (StatusCode::BAD_REQUEST, e))?;
        let upgrade = hyper::upgrade::on(req);
        tokio::spawn(async move {
            let Ok(upgraded) = upgrade.await else { return };
            let ws = tokio_tungstenite::WebSocketStream::from_raw_socket(
                hyper_util::rt::TokioIo::new(upgraded),
                tokio_tungstenite::tungstenite::protocol::Role::Server,
                None,
            )
            .await;
            if protocol == TUNNEL {
                let (tx, rx) = tokio::sync::mpsc::channel(16);
                tokio::spawn(portforward::serve_spdy(shared, target, pod, rx));
                spdy::serve(portforward::over_websocket(ws), tx).await;
            } else {
                portforward::serve_channels(shared, target, pod, ports, ws).await;
            }
        });
        return Ok(response);
    }
    if !is_spdy(req) {
        return Err((StatusCode::BAD_REQUEST, "Upgrade request required".into()));
    }
    let (name, ()) = spdy_protocol(req, &[("portforward.k8s.io", ())]).ok_or((
        StatusCode::FORBIDDEN,
        "unable to upgrade: no supported stream protocol; portforward.k8s.io is".to_string(),
    ))?;
    let upgrade = hyper::upgrade::on(req);
    spawn_spdy(upgrade, move |streams| {
        portforward::serve_spdy(shared, target, pod, streams)
    });
    Ok(spdy_accept(name))
}

/// The most ports one port-forward request may name (each is a pair of
/// channels numbered from 0 in one byte).
const MAX_PORTS: usize = 64;

/// A running container of pod `ns/pod`: where its ports are reached.
fn pod_target(shared: &Shared, ns: &str, pod: &str) -> Result<Arc<crate::exec::Target>, Refusal> {
    let uid = shared
        .by_name
        .lock()
        .expect("names lock")
        .get(&(ns.to_string(), pod.to_string()))
        .cloned()
        .ok_or((
            StatusCode::NOT_FOUND,
            format!("pod {ns}/{pod} is not running on this node"),
        ))?;
    shared.exec.any_of(&uid).ok_or((
        StatusCode::NOT_FOUND,
        format!("pod {ns}/{pod} has no running container"),
    ))
}

/// The error channel's last word (protocol versions 4 and 5): a `Status`.
pub(crate) fn status(outcome: &Outcome) -> Value {
    match outcome {
        Outcome::Exited(0) => json!({"metadata": {}, "status": "Success"}),
        Outcome::Exited(code) => json!({
            "metadata": {}, "status": "Failure",
            "message": format!("command terminated with non-zero exit code: error executing command, exit code {code}"),
            "reason": "NonZeroExitCode",
            "details": {"causes": [{"reason": "ExitCode", "message": code.to_string()}]},
        }),
        Outcome::Failed(message) => json!({
            "metadata": {}, "status": "Failure", "message": message,
            "reason": "InternalError",
            "details": {"causes": [{"message": message}]},
            "code": 500,
        }),
    }
}

/// The error channel's text in protocol versions 1 to 3 (nothing on
/// success).
pub(crate) fn error_text(outcome: &Outcome) -> Option<String> {
    match outcome {
        Outcome::Exited(0) => None,
        Outcome::Exited(code) => Some(format!(
            "command terminated with non-zero exit code: error executing command, exit code {code}"
        )),
        Outcome::Failed(m) => Some(m.clone()),
    }
}

/// What an exec request needs to start: the running container.
pub(crate) fn exec_target(
    shared: &Shared,
    ns: &str,
    pod: &str,
    container: &str,
) -> Result<Arc<crate::exec::Target>, String> {
    let uid = shared
        .by_name
        .lock()
        .expect("names lock")
        .get(&(ns.to_string(), pod.to_string()))
        .cloned()
        .ok_or_else(|| format!("pod {ns}/{pod} is not running on this node"))?;
    shared
        .exec
        .get(&uid, container)
        .ok_or_else(|| format!("container not found (\"{container}\")"))
}

/// Checks an exec request's options as the kubelet does.
pub(crate) fn check(cmd: &Command) -> Result<(), String> {
    if cmd.argv.is_empty() && !cmd.attach {
        return Err("you must specify at least one command for the container".into());
    }
    if !(cmd.stdin || cmd.stdout || cmd.stderr) {
        return Err("you must specify at least 1 of stdin, stdout, stderr".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_are_reported_as_kubernetes_does() {
        assert_eq!(status(&Outcome::Exited(0))["status"], "Success");
        let s = status(&Outcome::Exited(3));
        assert_eq!(s["reason"], "NonZeroExitCode");
        assert_eq!(s["details"]["causes"][0]["message"], "3");
        assert_eq!(error_text(&Outcome::Exited(0)), None);
    }
}

//! The WebSocket channel protocols of `exec`: every binary message starts
//! with its channel (0 stdin, 1 stdout, 2 stderr, 3 error, 4 resize); in the
//! `base64.` variants the channel is a digit and the rest base64. Version 4
//! ends with a `Status` on the error channel; version 5 adds the client's
//! "close stdin" message (`[255, 0]`), the one kubectl 1.32 offers.

use std::sync::Arc;

use base64::Engine;
use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use http::{HeaderValue, Request, Response, StatusCode, header};
use hyper_util::rt::TokioIo;
use tokio::sync::mpsc;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role};

use crate::agent::Shared;
use crate::exec::{Command, Input, Outcome, Output, Target};

/// A channel subprotocol: its version and whether it is base64.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Protocol {
    pub name: &'static str,
    pub version: u8,
    pub base64: bool,
}

/// What the node speaks for exec and attach, best first.
const EXEC: [Protocol; 8] = [
    Protocol {
        name: "v5.channel.k8s.io",
        version: 5,
        base64: false,
    },
    Protocol {
        name: "v4.channel.k8s.io",
        version: 4,
        base64: false,
    },
    Protocol {
        name: "v4.base64.channel.k8s.io",
        version: 4,
        base64: true,
    },
    Protocol {
        name: "v3.channel.k8s.io",
        version: 3,
        base64: false,
    },
    Protocol {
        name: "v2.channel.k8s.io",
        version: 2,
        base64: false,
    },
    Protocol {
        name: "channel.k8s.io",
        version: 1,
        base64: false,
    },
    Protocol {
        name: "base64.channel.k8s.io",
        version: 1,
        base64: true,
    },
    // No subprotocol asked for: the binary channels.
    Protocol {
        name: "",
        version: 1,
        base64: false,
    },
];

/// Whether `req` asks to become a WebSocket.
pub(crate) fn is_websocket<B>(req: &Request<B>) -> bool {
    req.headers()
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
}

/// The exec protocol both sides speak: the client's first that the node
/// has.
pub(crate) fn negotiate<B>(req: &Request<B>) -> Option<Protocol> {
    let offered: Vec<String> = req
        .headers()
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|p| p.trim().to_string())
        .filter(|p| !p.is_empty())
        .collect();
    if offered.is_empty() {
        return EXEC.iter().copied().find(|p| p.name.is_empty());
    }
    offered
        .iter()
        .find_map(|o| EXEC.iter().copied().find(|p| p.name == o))
}

/// The `101 Switching Protocols` answer to a WebSocket request.
pub(crate) fn accept<B, R: Default>(
    req: &Request<B>,
    protocol: &str,
) -> Result<Response<R>, String> {
    let key = req
        .headers()
        .get(header::SEC_WEBSOCKET_KEY)
        .ok_or("a WebSocket request needs Sec-WebSocket-Key")?;
    let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
    let mut r = Response::new(R::default());
    *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = r.headers_mut();
    h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(
        header::SEC_WEBSOCKET_ACCEPT,
        HeaderValue::from_str(&accept).map_err(|e| e.to_string())?,
    );
    if !protocol.is_empty() {
        h.insert(
            header::SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_str(protocol).map_err(|e| e.to_string())?,
        );
    }
    Ok(r)
}

/// Serves one exec over the upgraded connection.
pub(crate) async fn exec(
    shared: Arc<Shared>,
    upgrade: hyper::upgrade::OnUpgrade,
    protocol: Protocol,
    target: Arc<Target>,
    cmd: Command,
) {
    let upgraded = match upgrade.await {
        Ok(u) => u,
        Err(e) => {
            tracing::debug!("exec: the upgrade failed: {e}");
            return;
        }
    };
    let ws = WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None).await;
    let (mut sink, mut stream) = ws.split();
    let (in_tx, in_rx) = mpsc::channel::<Input>(16);
    let (out_tx, mut out_rx) = mpsc::channel::<Output>(16);
    // The client's messages, read on their own so that a guest not
    // reading its stdin never holds up its output.
    let (gone_tx, mut gone) = tokio::sync::oneshot::channel::<()>();
    let reader = tokio::spawn(async move {
        while let Some(msg) = stream.next().await {
            let data: Bytes = match msg {
                Ok(Message::Binary(b)) => b,
                Ok(Message::Text(t)) => Bytes::copy_from_slice(t.as_bytes()),
                Ok(Message::Close(_)) | Err(_) => break,
                Ok(_) => continue,
            };
            let Some(input) = decode(protocol, &data) else {
                continue;
            };
            if in_tx.send(input).await.is_err() {
                // The command has ended; the client may still close.
                continue;
            }
        }
        drop(gone_tx);
    });
    let frame = |channel: u8, data: &[u8]| -> Message {
        if protocol.base64 {
            let mut s = String::from(char::from(b'0' + channel));
            s.push_str(&base64::engine::general_purpose::STANDARD.encode(data));
            Message::text(s)
        } else {
            let mut b = Vec::with_capacity(data.len() + 1);
            b.push(channel);
            b.extend_from_slice(data);
            Message::binary(b)
        }
    };
    let run = crate::exec::run(&shared, &target, cmd, in_rx, out_tx);
    tokio::pin!(run);
    let outcome = loop {
        tokio::select! {
            outcome = &mut run => break outcome,
            Some(out) = out_rx.recv() => {
                let (ch, data) = match &out {
                    Output::Stdout(d) => (1, d),
                    Output::Stderr(d) => (2, d),
                };
                if sink.send(frame(ch, data)).await.is_err() {
                    reader.abort();
                    return;
                }
            }
            _ = &mut gone => {
                // The client went away: the command is stopped.
                return;
            }
        }
    };
    while let Some(out) = out_rx.recv().await {
        let (ch, data) = match &out {
            Output::Stdout(d) => (1, d),
            Output::Stderr(d) => (2, d),
        };
        if sink.send(frame(ch, data)).await.is_err() {
            reader.abort();
            return;
        }
    }
    let last = if protocol.version >= 4 {
        Some(super::status(&outcome).to_string())
    } else {
        super::error_text(&outcome)
    };
    if let Some(text) = last {
        let _ = sink.send(frame(3, text.as_bytes())).await;
    }
    if let Outcome::Failed(m) = &outcome {
        tracing::debug!("exec in {}: {m}", target.pod_dir.display());
    }
    // A normal closure is the end of every stream to the client.
    let _ = sink
        .send(Message::Close(Some(CloseFrame {
            code: CloseCode::Normal,
            reason: "".into(),
        })))
        .await;
    let _ = sink.close().await;
    reader.abort();
}

/// A client message as input, if it is one.
fn decode(protocol: Protocol, data: &[u8]) -> Option<Input> {
    let (&first, rest) = data.split_first()?;
    let (channel, payload): (u8, Bytes) = if protocol.base64 {
        let ch = first.checked_sub(b'0')?;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(rest)
            .ok()?;
        (ch, Bytes::from(bytes))
    } else {
        (first, Bytes::copy_from_slice(rest))
    };
    match channel {
        0 => Some(Input::Stdin(payload)),
        4 if protocol.version >= 3 => {
            let size: serde_json::Value = serde_json::from_slice(&payload).ok()?;
            Some(Input::Resize {
                width: size.get("Width")?.as_u64()?.min(u16::MAX.into()) as u16,
                height: size.get("Height")?.as_u64()?.min(u16::MAX.into()) as u16,
            })
        }
        255 if protocol.version >= 5 && payload.first() == Some(&0) => Some(Input::StdinEnd),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(protocols: &[&str]) -> Request<()> {
        let mut b = Request::get("/exec/ns/p/c")
            .header(header::UPGRADE, "websocket")
            .header(header::SEC_WEBSOCKET_KEY, "dGhlIHNhbXBsZSBub25jZQ==");
        for p in protocols {
            b = b.header(header::SEC_WEBSOCKET_PROTOCOL, *p);
        }
        b.body(()).unwrap()
    }

    #[test]
    fn the_clients_first_known_protocol_is_chosen() {
        let p = negotiate(&request(&["v5.channel.k8s.io"])).unwrap();
        assert_eq!(p.version, 5);
        let p = negotiate(&request(&["v9.channel.k8s.io, v4.channel.k8s.io"])).unwrap();
        assert_eq!(p.name, "v4.channel.k8s.io");
        assert!(negotiate(&request(&["nothing.k8s.io"])).is_none());
        assert_eq!(negotiate(&request(&[])).unwrap().version, 1);
        let r: Response<()> = accept(&request(&[]), "v5.channel.k8s.io").unwrap();
        assert_eq!(
            r.headers()[header::SEC_WEBSOCKET_ACCEPT],
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn messages_become_input_by_channel_and_version() {
        let v5 = EXEC[0];
        assert!(matches!(decode(v5, b"\x00hi"), Some(Input::Stdin(b)) if b == "hi"));
        assert!(matches!(decode(v5, b"\xff\x00"), Some(Input::StdinEnd)));
        assert!(matches!(
            decode(v5, b"\x04{\"Width\":80,\"Height\":24}"),
            Some(Input::Resize {
                width: 80,
                height: 24
            })
        ));
        let v1 = EXEC[5];
        assert!(decode(v1, b"\xff\x00").is_none());
        let b64 = EXEC[6];
        assert!(matches!(decode(b64, b"0aGk="), Some(Input::Stdin(b)) if b == "hi"));
    }
}

//! `kubectl exec` over SPDY/3.1: the client opens one stream per channel
//! and the command starts once those it asked for are open.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use serde_json::Value;
use tokio::sync::mpsc;

use super::{error_text, spdy, status};
use crate::agent::Shared;
use crate::exec::{Command, Input, Output};

/// The SPDY exec protocols (`X-Stream-Protocol-Version`), best first, and
/// their versions.
pub(super) const PROTOCOLS: [(&str, u8); 4] = [
    ("v4.channel.k8s.io", 4),
    ("v3.channel.k8s.io", 3),
    ("v2.channel.k8s.io", 2),
    ("channel.k8s.io", 1),
];

/// Serves one exec over SPDY: the client opens a stream per channel
/// (`streamType` error, stdin, stdout, stderr, resize); the command starts
/// once those it asked for are open.
pub(super) async fn serve(
    shared: Arc<Shared>,
    target: Arc<crate::exec::Target>,
    cmd: Command,
    version: u8,
    mut streams: tokio::sync::mpsc::Receiver<spdy::Stream>,
) {
    let mut by_type: HashMap<String, spdy::Stream> = Default::default();
    let wanted = |by_type: &HashMap<String, spdy::Stream>| {
        by_type.contains_key("error")
            && (!cmd.stdin || by_type.contains_key("stdin"))
            && (!cmd.stdout || by_type.contains_key("stdout"))
            && (!cmd.stderr || by_type.contains_key("stderr"))
            && (!cmd.tty || version < 3 || by_type.contains_key("resize"))
    };
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    while !wanted(&by_type) {
        match tokio::time::timeout_at(deadline, streams.recv()).await {
            Ok(Some(s)) => {
                if let Some(kind) = s.header("streamtype") {
                    by_type.insert(kind.to_string(), s);
                }
            }
            _ => {
                tracing::debug!("exec over SPDY: the client did not open its streams");
                return;
            }
        }
    }
    let (in_tx, in_rx) = mpsc::channel::<Input>(16);
    let (out_tx, mut out_rx) = mpsc::channel::<Output>(16);
    if let Some(mut s) = by_type.remove("stdin") {
        let tx = in_tx.clone();
        tokio::spawn(async move {
            while let Some(d) = s.data.recv().await {
                if tx.send(Input::Stdin(d)).await.is_err() {
                    return;
                }
            }
            let _ = tx.send(Input::StdinEnd).await;
        });
    }
    if let Some(mut s) = by_type.remove("resize") {
        let tx = in_tx.clone();
        tokio::spawn(async move {
            let mut pending = Vec::new();
            while let Some(d) = s.data.recv().await {
                pending.extend_from_slice(&d);
                // One JSON object after another.
                let mut de = serde_json::Deserializer::from_slice(&pending).into_iter::<Value>();
                let mut used = 0;
                while let Some(Ok(v)) = de.next() {
                    used = de.byte_offset();
                    let size = |k: &str| {
                        v.get(k)
                            .and_then(Value::as_u64)
                            .unwrap_or(0)
                            .min(u16::MAX.into()) as u16
                    };
                    let _ = tx
                        .send(Input::Resize {
                            width: size("Width"),
                            height: size("Height"),
                        })
                        .await;
                }
                pending.drain(..used);
                // What cannot become an object is dropped, not kept.
                if pending.len() > 4096 {
                    pending.clear();
                }
            }
        });
    }
    drop(in_tx);
    let error = by_type.remove("error");
    let stdout = by_type.remove("stdout");
    let stderr = by_type.remove("stderr");
    let forward = async {
        while let Some(out) = out_rx.recv().await {
            let (stream, data): (&Option<spdy::Stream>, Bytes) = match out {
                Output::Stdout(d) => (&stdout, d),
                Output::Stderr(d) => (&stderr, d),
            };
            if let Some(s) = stream {
                s.writer.send(data).await;
            }
        }
    };
    let run = crate::exec::run(&shared, &target, cmd, in_rx, out_tx);
    let (outcome, ()) = tokio::join!(run, forward);
    for s in [&stdout, &stderr].into_iter().flatten() {
        s.writer.finish().await;
    }
    if let Some(e) = error {
        let last = if version >= 4 {
            Some(status(&outcome).to_string())
        } else {
            error_text(&outcome)
        };
        if let Some(text) = last {
            e.writer.send(Bytes::from(text)).await;
        }
        e.writer.finish().await;
    }
}

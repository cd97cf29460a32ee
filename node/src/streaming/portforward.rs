//! `/portForward/{namespace}/{pod}`: connections to a pod's ports. Over
//! SPDY (plain, or inside WebSocket messages as kubectl 1.32 sends it) each
//! local connection of the client is a pair of streams with one
//! `requestID`: `error` (the node's message if it cannot connect) and `data`
//! (the connection's bytes both ways).
//!
//! A port served in-process by the pod's HTTP component is served over the
//! stream itself, with no socket; any other port is a TCP connection to the
//! pod's address (a `wasi:sockets` listener of the guest).

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, DuplexStream};
use tokio::sync::mpsc;

use super::spdy::Stream;
use crate::agent::Shared;
use crate::exec::Target;

/// A byte stream to `port` of the pod.
pub(crate) async fn connect(
    shared: &Arc<Shared>,
    target: &Target,
    port: u16,
) -> Result<DuplexStream, String> {
    let (ours, theirs) = tokio::io::duplex(64 * 1024);
    if shared.http.serves(&target.pod_ip, port) {
        tokio::spawn(crate::proxy::serve_connection(
            shared.clone(),
            target.pod_ip.clone(),
            port,
            theirs,
        ));
        return Ok(ours);
    }
    let host: std::net::IpAddr = target
        .pod_ip
        .parse()
        .ok()
        .filter(|_| shared.pod_ips_live)
        .unwrap_or(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST));
    let tcp = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        tokio::net::TcpStream::connect((host, port)),
    )
    .await
    .map_err(|_| format!("dial tcp {host}:{port}: i/o timeout"))?
    .map_err(|e| format!("dial tcp {host}:{port}: {e}"))?;
    let _ = tcp.set_nodelay(true);
    tokio::spawn(async move {
        let (mut tcp, mut theirs) = (tcp, theirs);
        let _ = tokio::io::copy_bidirectional(&mut tcp, &mut theirs).await;
    });
    Ok(ours)
}

/// Pairs the client's streams and forwards each pair.
pub(crate) async fn serve_spdy(
    shared: Arc<Shared>,
    target: Arc<Target>,
    pod: String,
    mut streams: mpsc::Receiver<Stream>,
) {
    let mut pending: HashMap<String, (Option<Stream>, Option<Stream>)> = HashMap::new();
    while let Some(s) = streams.recv().await {
        let (Some(kind), Some(port)) = (s.header("streamtype"), s.header("port")) else {
            s.writer.finish().await;
            continue;
        };
        let (kind, port) = (kind.to_string(), port.to_string());
        // Clients before requestID used one pair per port.
        let id = s.header("requestid").unwrap_or(&port).to_string();
        let entry = pending.entry(id.clone()).or_default();
        match kind.as_str() {
            "error" => entry.0 = Some(s),
            "data" => entry.1 = Some(s),
            _ => {
                s.writer.finish().await;
                continue;
            }
        }
        if entry.0.is_some() && entry.1.is_some() {
            let Some((Some(error), Some(data))) = pending.remove(&id) else {
                continue;
            };
            let (shared, target, pod) = (shared.clone(), target.clone(), pod.clone());
            tokio::spawn(async move {
                forward(&shared, &target, &pod, &port, error, data).await;
            });
        }
    }
}

async fn forward(
    shared: &Arc<Shared>,
    target: &Target,
    pod: &str,
    port: &str,
    error: Stream,
    data: Stream,
) {
    let conn = match port.parse::<u16>() {
        Ok(p) if p > 0 => connect(shared, target, p).await,
        _ => Err(format!("invalid port {port:?}")),
    };
    let conn = match conn {
        Ok(c) => c,
        Err(e) => {
            let msg = format!("error forwarding port {port} to pod {pod}: {e}");
            error.writer.send(Bytes::from(msg)).await;
            error.writer.finish().await;
            data.writer.finish().await;
            return;
        }
    };
    let Stream {
        data: mut from_client,
        writer,
        ..
    } = data;
    let (mut rd, mut wr) = tokio::io::split(conn);
    let up = async {
        while let Some(chunk) = from_client.recv().await {
            if wr.write_all(&chunk).await.is_err() {
                break;
            }
        }
        let _ = wr.shutdown().await;
    };
    let down = async {
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            match rd.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if !writer.send(Bytes::copy_from_slice(&buf[..n])).await {
                        return;
                    }
                }
            }
        }
        writer.finish().await;
    };
    tokio::join!(up, down);
    error.writer.finish().await;
}

/// Runs a byte stream over WebSocket binary messages (kubectl's
/// `SPDY/3.1+portforward.k8s.io`): what arrives in messages is read from
/// the returned stream, what is written to it leaves in messages.
pub(crate) fn over_websocket<S>(ws: tokio_tungstenite::WebSocketStream<S>) -> DuplexStream
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    use futures::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let (ours, theirs) = tokio::io::duplex(64 * 1024);
    let (mut sink, mut stream) = ws.split();
    let (mut rd, mut wr) = tokio::io::split(theirs);
    tokio::spawn(async move {
        while let Some(Ok(msg)) = stream.next().await {
            let data = match msg {
                Message::Binary(b) => b,
                Message::Close(_) => break,
                _ => continue,
            };
            if wr.write_all(&data).await.is_err() {
                break;
            }
        }
        let _ = wr.shutdown().await;
    });
    tokio::spawn(async move {
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            match rd.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if sink.send(Message::binary(buf[..n].to_vec())).await.is_err() {
                        return;
                    }
                }
            }
        }
        let _ = sink.close().await;
    });
    ours
}

/// The Python client's port-forward: a WebSocket whose channels are, for
/// the i-th port of `ports`, 2i (data) and 2i+1 (error); each begins with
/// the port number (two bytes, little-endian) from the node. One connection
/// per port; the WebSocket closes once every connection has ended.
pub(crate) async fn serve_channels<S>(
    shared: Arc<Shared>,
    target: Arc<Target>,
    pod: String,
    ports: Vec<u16>,
    ws: tokio_tungstenite::WebSocketStream<S>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    use futures::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let (mut sink, mut stream) = ws.split();
    let (out_tx, mut out_rx) = mpsc::channel::<(u8, Bytes)>(64);
    let mut writers = Vec::new();
    for (i, port) in ports.iter().enumerate() {
        let (data_ch, err_ch) = ((2 * i) as u8, (2 * i + 1) as u8);
        for ch in [data_ch, err_ch] {
            let _ = out_tx
                .send((ch, Bytes::copy_from_slice(&port.to_le_bytes())))
                .await;
        }
        match connect(&shared, &target, *port).await {
            Ok(conn) => {
                let (mut rd, wr) = tokio::io::split(conn);
                writers.push(Some(wr));
                let out = out_tx.clone();
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 32 * 1024];
                    while let Ok(n) = rd.read(&mut buf).await {
                        if n == 0
                            || out
                                .send((data_ch, Bytes::copy_from_slice(&buf[..n])))
                                .await
                                .is_err()
                        {
                            break;
                        }
                    }
                });
            }
            Err(e) => {
                let msg = format!("error forwarding port {port} to pod {pod}: {e}");
                let _ = out_tx.send((err_ch, Bytes::from(msg))).await;
                writers.push(None);
            }
        }
    }
    drop(out_tx);
    let sender = tokio::spawn(async move {
        while let Some((ch, data)) = out_rx.recv().await {
            let mut m = Vec::with_capacity(data.len() + 1);
            m.push(ch);
            m.extend_from_slice(&data);
            if sink.send(Message::binary(m)).await.is_err() {
                return;
            }
        }
        // Every connection ended (as the kubelet does): the WebSocket
        // closes, and the client sees its sockets end.
        let _ = sink.close().await;
    });
    while let Some(Ok(msg)) = stream.next().await {
        let Message::Binary(b) = msg else {
            if matches!(msg, Message::Close(_)) {
                break;
            }
            continue;
        };
        let Some((&ch, rest)) = b.split_first() else {
            continue;
        };
        if ch % 2 == 1 {
            continue;
        }
        if let Some(Some(w)) = writers.get_mut(usize::from(ch / 2))
            && w.write_all(rest).await.is_err()
        {
            writers[usize::from(ch / 2)] = None;
        }
    }
    sender.abort();
}

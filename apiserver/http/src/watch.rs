//! WATCH: newline-delimited JSON events, from a resourceVersion or from the
//! current state, filtered by namespace and selectors.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use bytes::Bytes;
use http::{Response, header};
use serde_json::{Value, json};
use tokio::sync::broadcast::error::{RecvError, TryRecvError};

use super::{Query, table};
use shoal_machinery::error::{ApiError, Result};
use shoal_machinery::selectors::{FieldSelector, LabelSelector};
use shoal_registry::objects::Objects;
use shoal_registry::resources::Resource;
use shoal_store::{Event, EventKind};
use shoal_wire::gotypes;

pub(super) async fn watch(
    objects: &Objects,
    r: &'static Resource,
    ns: Option<&str>,
    (labels, fields): (LabelSelector, FieldSelector),
    q: &Query,
    as_table: bool,
    closer: Option<crate::Closer>,
) -> Result<Response<Body>> {
    let prefix = r.prefix(ns);
    let store = objects.store().clone();
    let from: Option<u64> = q
        .get("resourceVersion")
        .filter(|v| !v.is_empty() && *v != "0")
        .map(|v| {
            v.parse()
                .map_err(|_| ApiError::bad_request(format!("invalid resourceVersion {v:?}")))
        })
        .transpose()?;
    let (initial, start) = match from {
        Some(rv) => (Vec::new(), rv),
        None => {
            let (items, rev) = store.list(&prefix);
            (items.into_iter().map(|s| s.value).collect::<Vec<_>>(), rev)
        }
    };
    let (backlog, mut rx) = store.watch(Some(start)).map_err(|too_old| {
        ApiError::expired(format!(
            "too old resource version: {start} ({})",
            too_old.oldest
        ))
    })?;
    let timeout = q
        .get("timeoutSeconds")
        .and_then(|t| t.parse::<u64>().ok())
        .unwrap_or(1800);
    let bookmarks = q.flag("allowWatchBookmarks");
    let (tx, body_rx) = tokio::sync::mpsc::channel::<Queued>(64);
    let queue = Arc::new(tokio::sync::Semaphore::new(QUEUED_BYTES));
    let (stalled, abort) = tokio::sync::oneshot::channel::<()>();
    let matches = move |v: &Value| labels.matches_object(v) && fields.matches(v);
    tokio::spawn(async move {
        // A chunk the client does not take within `STALL` ends the watch
        // and its connection's stream, freeing what was queued for it.
        let mut stalled = Some(stalled);
        let mut put = async |chunk: Vec<u8>| -> bool {
            let bytes = chunk.len().clamp(1, QUEUED_BYTES) as u32;
            let queued = async {
                let room = queue.clone().acquire_many_owned(bytes).await.ok()?;
                tx.send((Bytes::from(chunk), room)).await.ok()
            };
            match tokio::time::timeout(STALL, queued).await {
                Ok(sent) => sent.is_some(),
                Err(_) => {
                    tracing::info!(
                        "a watch of {} ended: its client took nothing for {} s (closing: {})",
                        r.plural,
                        STALL.as_secs(),
                        closer.is_some()
                    );
                    if let Some(s) = stalled.take() {
                        let _ = s.send(());
                    }
                    if let Some(c) = &closer {
                        c.close();
                    }
                    false
                }
            }
        };
        let mut first = true;
        let mut send = |ty: &str, obj: &Value| {
            let object = if as_table && ty != "BOOKMARK" {
                let rv = obj
                    .pointer("/metadata/resourceVersion")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                let t = table::table(r, &[obj], rv, None, false, first);
                first = false;
                t
            } else {
                r.served_as(obj).into_owned()
            };
            watch_event(ty, &gotypes::json::to_vec(&object))
        };
        let mut chunk = Vec::new();
        for obj in initial.iter().filter(|o| matches(o)) {
            chunk.extend_from_slice(&send("ADDED", obj));
            if chunk.len() >= CHUNK_BYTES / 4 && !put(std::mem::take(&mut chunk)).await {
                return;
            }
        }
        if !chunk.is_empty() && !put(chunk).await {
            return;
        }
        let deadline = tokio::time::sleep(Duration::from_secs(timeout));
        tokio::pin!(deadline);
        let mut bookmark = tokio::time::interval(Duration::from_secs(30));
        bookmark.tick().await;
        let mut last_rev = start;
        let mut pending = backlog.into_iter();
        loop {
            let event: std::sync::Arc<Event> = match pending.next() {
                Some(e) => e,
                None => tokio::select! {
                    _ = &mut deadline => return,
                    _ = bookmark.tick(), if bookmarks => {
                        let b = json!({"kind": r.kind, "apiVersion": r.api_version(), "metadata": {"resourceVersion": last_rev.to_string()}});
                        if !put(send("BOOKMARK", &b)).await { return; }
                        continue;
                    }
                    e = rx.recv() => match e {
                        Ok(e) => e,
                        Err(RecvError::Lagged(_)) | Err(RecvError::Closed) => return,
                    },
                    _ = tx.closed() => return,
                },
            };
            // Events already waiting go out in the same write, so a busy
            // watch costs one chunk (and TLS record) per batch, not per event.
            let mut batch = Vec::new();
            let mut next = Some(event);
            while let Some(event) = next.take() {
                // A server behind the revision the watch starts from (a
                // watch resumed on a member still catching up) applies
                // changes the client has already seen: they are not sent
                // again.
                if event.revision > start {
                    last_rev = event.revision;
                    event_line(
                        r, &event, &prefix, &matches, as_table, &mut send, &mut batch,
                    );
                }
                if batch.len() < CHUNK_BYTES {
                    next = match pending.next() {
                        Some(e) => Some(e),
                        None => match rx.try_recv() {
                            Ok(e) => Some(e),
                            Err(TryRecvError::Empty) => None,
                            // Events were lost: end the watch, as a lagging
                            // receive above does, so the client lists again.
                            Err(TryRecvError::Lagged(_) | TryRecvError::Closed) => return,
                        },
                    };
                }
            }
            if !batch.is_empty() && !put(batch).await {
                return;
            }
        }
    });
    let stream = body_stream(body_rx, abort);
    let mut resp = Response::new(Body::from_stream(stream));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    resp.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-cache, private"),
    );
    Ok(resp)
}

/// Appends the watch line of an event to `out`, if the event passes this
/// watch's prefix and selectors.
fn event_line(
    r: &Resource,
    event: &Event,
    prefix: &str,
    matches: &impl Fn(&Value) -> bool,
    as_table: bool,
    send: &mut impl FnMut(&str, &Value) -> Vec<u8>,
    out: &mut Vec<u8>,
) {
    if !event.key.starts_with(prefix) {
        return;
    }
    let now = event.kind != EventKind::Deleted && matches(&event.object);
    let before = event.prev.as_deref().is_some_and(matches);
    let ty = match (event.kind, before, now) {
        (EventKind::Deleted, true, _) => "DELETED",
        (EventKind::Deleted, false, _) => return,
        (_, false, true) => "ADDED",
        (_, true, true) => "MODIFIED",
        (_, true, false) => "DELETED",
        (_, false, false) => return,
    };
    if as_table || matches!(r.served_as(&event.object), std::borrow::Cow::Owned(_)) {
        out.extend_from_slice(&send(ty, &event.object));
        return;
    }
    // The object's JSON is shared by every watch of the event.
    out.extend_from_slice(&watch_event(ty, event.object_json()));
}

/// Bytes queued for a watch's client at most (a larger event alone): what
/// one watch holds is bounded however slowly its client reads.
const QUEUED_BYTES: usize = 2 << 20;

/// A chunk queued for a watch's client, with its room in the queue.
type Queued = (Bytes, tokio::sync::OwnedSemaphorePermit);

/// Events already waiting go out together up to this size.
const CHUNK_BYTES: usize = 256 * 1024;

/// How long a watch waits for its client to take a chunk before it ends:
/// the client lists and watches again, as with kube-apiserver's watch
/// cache dropping a watcher that does not keep up.
const STALL: Duration = Duration::from_secs(30);

/// A watch event as Go writes `metav1.WatchEvent`, `type` first.
fn watch_event(ty: &str, object: &[u8]) -> Vec<u8> {
    let mut line = Vec::with_capacity(object.len() + ty.len() + 24);
    line.extend_from_slice(b"{\"type\":\"");
    line.extend_from_slice(ty.as_bytes());
    line.extend_from_slice(b"\",\"object\":");
    line.extend_from_slice(object);
    line.extend_from_slice(b"}\n");
    line
}

/// The chunks of a watch, ended by an error (a reset stream or closed
/// connection, so nothing queued stays) when the watch gives up on a
/// client that does not read.
fn body_stream(
    mut rx: tokio::sync::mpsc::Receiver<Queued>,
    mut abort: tokio::sync::oneshot::Receiver<()>,
) -> impl futures::Stream<Item = Result<Bytes, std::io::Error>> {
    use std::future::Future as _;
    use std::task::Poll;
    let mut watching = true;
    futures::stream::poll_fn(move |cx| {
        if watching {
            match std::pin::Pin::new(&mut abort).poll(cx) {
                Poll::Ready(Ok(())) => {
                    rx.close();
                    watching = false;
                    return Poll::Ready(Some(Err(std::io::Error::other(
                        "the watcher did not keep up",
                    ))));
                }
                Poll::Ready(Err(_)) => watching = false,
                Poll::Pending => {}
            }
        }
        // The chunk's room is given back as the connection takes it.
        rx.poll_recv(cx)
            .map(|chunk| chunk.map(|(bytes, _room)| Ok(bytes)))
    })
}

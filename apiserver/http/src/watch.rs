//! WATCH: newline-delimited JSON events, from a resourceVersion or from the
//! current state, filtered by namespace and selectors.

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
    labels: LabelSelector,
    fields: FieldSelector,
    q: &Query,
    as_table: bool,
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
    let (tx, body_rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(256);
    let matches = move |v: &Value| labels.matches_object(v) && fields.matches(v);
    tokio::spawn(async move {
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
            Bytes::from(watch_event(ty, &gotypes::json::to_vec(&object)))
        };
        for obj in initial.iter().filter(|o| matches(o)) {
            if tx.send(Ok(send("ADDED", obj))).await.is_err() {
                return;
            }
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
                        if tx.send(Ok(send("BOOKMARK", &b))).await.is_err() { return; }
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
                last_rev = event.revision;
                event_line(
                    r, &event, &prefix, &matches, as_table, &mut send, &mut batch,
                );
                if batch.len() < 256 * 1024 {
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
            if !batch.is_empty() && tx.send(Ok(Bytes::from(batch))).await.is_err() {
                return;
            }
        }
    });
    let stream = tokio_stream_from(body_rx);
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
    send: &mut impl FnMut(&str, &Value) -> Bytes,
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

fn tokio_stream_from(
    mut rx: tokio::sync::mpsc::Receiver<Result<Bytes, std::io::Error>>,
) -> impl futures::Stream<Item = Result<Bytes, std::io::Error>> {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

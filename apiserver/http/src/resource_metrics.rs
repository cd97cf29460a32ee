//! The resource metrics API (`metrics.k8s.io/v1beta1`, what `kubectl top`
//! and autoscalers read), served by the control plane as metrics-server
//! serves it: NodeMetrics and PodMetrics made, when asked, from the
//! `/stats/summary` of the nodes concerned (read at once, each within a
//! few seconds; a node that does not answer is left out, as metrics-server
//! leaves out a node it could not scrape).
//!
//! May import: `kubelet` (the calls to nodes).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use axum::body::Body;
use http::Response;
use http_body_util::{BodyExt, Limited};
use serde_json::{Value, json};

use super::route::Target;
use super::{ApiState, Query, kubelet};
use shoal_machinery::error::{ApiError, Result};
use shoal_machinery::meta::{self, str_at};
use shoal_machinery::selectors::{FieldSelector, LabelSelector};
use shoal_registry::resources;

/// How long a node has to answer.
const NODE_TIMEOUT: Duration = Duration::from_secs(5);
/// The most of a node's summary read.
const MAX_SUMMARY: usize = 64 << 20;
/// The window the nodes' rates are measured over.
const WINDOW: &str = "10s";

/// `GET` of NodeMetrics or PodMetrics, one or a list.
pub(super) async fn serve(state: &ApiState, t: &Target, q: &Query) -> Result<Response<Body>> {
    let labels = LabelSelector::parse(q.get("labelSelector").unwrap_or_default())?;
    let fields = FieldSelector::parse(q.get("fieldSelector").unwrap_or_default())?;
    let r = t.r;
    let items = if r.namespaced {
        pod_metrics(state, t, &labels, &fields).await?
    } else {
        node_metrics(state, t, &labels, &fields).await?
    };
    if let Some(name) = &t.name {
        let one = items
            .into_iter()
            .next()
            .ok_or_else(|| ApiError::not_found(r.group, r.plural, name))?;
        return Ok(super::ok(&one));
    }
    Ok(super::ok(&json!({
        "kind": format!("{}List", r.kind),
        "apiVersion": r.api_version(),
        "metadata": {},
        "items": items,
    })))
}

/// The objects of `kind` a request names: the one named, or those the
/// selectors choose.
fn chosen(
    state: &ApiState,
    kind: &str,
    t: &Target,
    labels: &LabelSelector,
    fields: &FieldSelector,
) -> Vec<Value> {
    let r = resources::by_kind("", kind).expect("served");
    match &t.name {
        Some(name) => state
            .objects
            .get(r, t.ns.as_deref().unwrap_or_default(), name)
            .map(|s| vec![(*s.value).clone()])
            .unwrap_or_default(),
        None => {
            let (items, _) = state.objects.list(r, t.ns.as_deref(), labels, fields);
            items.into_iter().map(|s| (*s.value).clone()).collect()
        }
    }
}

/// The summaries of `nodes`, read at once; those that answered.
async fn summaries(state: &ApiState, nodes: BTreeSet<String>) -> BTreeMap<String, Value> {
    let reads = nodes.into_iter().map(|node| async move {
        let read = tokio::time::timeout(NODE_TIMEOUT, summary(state, &node)).await;
        match read {
            Ok(Ok(s)) => Some((node, s)),
            Ok(Err(e)) => {
                tracing::debug!("resource metrics: node {node}: {}", e.message);
                None
            }
            Err(_) => {
                tracing::debug!("resource metrics: node {node} did not answer in time");
                None
            }
        }
    });
    futures::future::join_all(reads)
        .await
        .into_iter()
        .flatten()
        .collect()
}

/// `/stats/summary` of one node.
async fn summary(state: &ApiState, node: &str) -> Result<Value> {
    let (mut sender, addr) = kubelet::connect_node(state, node, "metrics").await?;
    let resp = kubelet::get(&mut sender, &addr, "/stats/summary")
        .await?
        .map_err(|e| ApiError::unavailable(format!("node {node}: {e}")))?;
    if !resp.status().is_success() {
        return Err(ApiError::unavailable(format!(
            "node {node} answered {}",
            resp.status()
        )));
    }
    let body = Limited::new(resp.into_body(), MAX_SUMMARY)
        .collect()
        .await
        .map_err(|e| ApiError::unavailable(format!("node {node}: {e}")))?
        .to_bytes();
    serde_json::from_slice(&body).map_err(|e| ApiError::unavailable(format!("node {node}: {e}")))
}

/// A usage in the API's quantities: CPU in nanocores, memory in KiB.
fn usage(stats: &Value) -> Value {
    let cpu = stats
        .pointer("/cpu/usageNanoCores")
        .and_then(Value::as_u64)
        .unwrap_or(0);
    let memory = stats
        .pointer("/memory/workingSetBytes")
        .and_then(Value::as_u64)
        .unwrap_or(0);
    json!({"cpu": format!("{cpu}n"), "memory": format!("{}Ki", memory / 1024)})
}

fn metadata(obj: &Value) -> Value {
    let mut m = json!({
        "name": meta::name(obj),
        "creationTimestamp": jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
    });
    if let Some(ns) = obj.pointer("/metadata/namespace") {
        m["namespace"] = ns.clone();
    }
    if let Some(l) = obj.pointer("/metadata/labels") {
        m["labels"] = l.clone();
    }
    m
}

async fn node_metrics(
    state: &ApiState,
    t: &Target,
    labels: &LabelSelector,
    fields: &FieldSelector,
) -> Result<Vec<Value>> {
    let nodes = chosen(state, "Node", t, labels, fields);
    let names = nodes.iter().map(|n| meta::name(n).to_string()).collect();
    let found = summaries(state, names).await;
    Ok(nodes
        .iter()
        .filter_map(|n| {
            let s = found.get(meta::name(n))?.get("node")?;
            Some(json!({
                "kind": "NodeMetrics",
                "apiVersion": "metrics.k8s.io/v1beta1",
                "metadata": metadata(n),
                "timestamp": s.pointer("/cpu/time").cloned().unwrap_or_default(),
                "window": WINDOW,
                "usage": usage(s),
            }))
        })
        .collect())
}

async fn pod_metrics(
    state: &ApiState,
    t: &Target,
    labels: &LabelSelector,
    fields: &FieldSelector,
) -> Result<Vec<Value>> {
    let pods: Vec<Value> = chosen(state, "Pod", t, labels, fields)
        .into_iter()
        .filter(|p| str_at(p, "/status/phase") == Some("Running"))
        .collect();
    let nodes = pods
        .iter()
        .filter_map(|p| str_at(p, "/spec/nodeName").map(String::from))
        .collect();
    let found = summaries(state, nodes).await;
    // The nodes' pods by UID.
    let by_uid: BTreeMap<&str, &Value> = found
        .values()
        .filter_map(|s| s.get("pods").and_then(Value::as_array))
        .flatten()
        .filter_map(|p| Some((p.pointer("/podRef/uid")?.as_str()?, p)))
        .collect();
    Ok(pods
        .iter()
        .filter_map(|p| {
            let s = by_uid.get(meta::uid(p))?;
            let containers: Vec<Value> = s
                .get("containers")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .map(|c| json!({"name": c.get("name").cloned().unwrap_or_default(), "usage": usage(c)}))
                .collect();
            Some(json!({
                "kind": "PodMetrics",
                "apiVersion": "metrics.k8s.io/v1beta1",
                "metadata": metadata(p),
                "timestamp": s.pointer("/cpu/time").cloned().unwrap_or_default(),
                "window": WINDOW,
                "containers": containers,
            }))
        })
        .collect())
}

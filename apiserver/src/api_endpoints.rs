//! The `kubernetes` Service's endpoints: the API servers' addresses.
//!
//! A server alone writes its own address at start. Among several, each
//! server renews a Lease `kube-system/shoal-server-<id>` holding its
//! address (labelled `apiserver.kubernetes.io/identity=kube-apiserver`,
//! as kube-apiserver's identity leases are), and the leading server writes
//! the Endpoints and EndpointSlice from the leases still alive, as
//! kube-apiserver's lease endpoint reconciler does: a server that dies
//! leaves them once its lease runs out.

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::{Value, json};

use shoal_machinery::error::ApiError;
use shoal_machinery::meta;
use shoal_machinery::selectors::{FieldSelector, LabelSelector};
use shoal_registry::objects::{Objects, PatchType, WriteOpts};
use shoal_registry::resources;

/// How long a server's lease holds without renewal.
const LEASE_SECONDS: i64 = 15;
/// How often a server renews its lease, and the leader rewrites the
/// endpoints.
const PERIOD: Duration = Duration::from_secs(5);
const IDENTITY: &str = "apiserver.kubernetes.io/identity";

/// Points the `kubernetes` Service at the API servers at `servers`
/// (sorted; the first's port is the Service's `targetPort`), as its
/// Endpoints (one subset a port) and EndpointSlice (the servers on that
/// port), rewritten when they change.
pub(crate) async fn write(objects: &Objects, servers: &[SocketAddr]) -> Result<(), ApiError> {
    let Some(first) = servers.first() else {
        return Ok(());
    };
    let port = first.port();
    let svc = resources::by_kind("", "Service").expect("services are served");
    if let Ok(current) = objects.get(svc, "default", "kubernetes")
        && current.value.pointer("/spec/ports/0/targetPort") != Some(&json!(port))
    {
        let ports = json!({"spec": {"ports": [
            {"name": "https", "port": 443, "protocol": "TCP", "targetPort": port}]}});
        objects
            .patch(
                svc,
                "default",
                "kubernetes",
                PatchType::Merge,
                &ports,
                None,
                WriteOpts::default(),
            )
            .await?;
    }
    let mut ports: Vec<u16> = servers.iter().map(SocketAddr::port).collect();
    ports.dedup();
    let subsets: Vec<Value> = ports
        .iter()
        .map(|p| {
            let addresses: Vec<Value> = servers
                .iter()
                .filter(|s| s.port() == *p)
                .map(|s| json!({"ip": s.ip().to_string()}))
                .collect();
            json!({"addresses": addresses, "ports": [{"name": "https", "port": p, "protocol": "TCP"}]})
        })
        .collect();
    let family = if first.is_ipv4() { "IPv4" } else { "IPv6" };
    let on_port: Vec<String> = servers
        .iter()
        .filter(|s| s.port() == port)
        .map(|s| s.ip().to_string())
        .collect();
    let labels = json!({"endpointslice.kubernetes.io/skip-mirror": "true"});
    let endpoints =
        json!({"metadata": {"name": "kubernetes", "labels": labels}, "subsets": subsets});
    let slice = json!({"metadata": {"name": "kubernetes", "labels": {"kubernetes.io/service-name": "kubernetes"}},
        "addressType": family,
        "endpoints": on_port.iter().map(|ip| json!({"addresses": [ip], "conditions": {"ready": true, "serving": true, "terminating": false}})).collect::<Vec<_>>(),
        "ports": [{"name": "https", "port": port, "protocol": "TCP"}]});
    let ep_r = resources::by_kind("", "Endpoints").expect("endpoints are served");
    let slice_r =
        resources::by_kind("discovery.k8s.io", "EndpointSlice").expect("slices are served");
    for (r, mut obj, field) in [(ep_r, endpoints, "subsets"), (slice_r, slice, "endpoints")] {
        match objects.get(r, "default", "kubernetes") {
            Err(_) => {
                objects
                    .create(r, "default", obj, WriteOpts::default())
                    .await?;
            }
            Ok(old)
                if old.value.get(field) != obj.get(field)
                    || old.value.get("ports") != obj.get("ports") =>
            {
                obj["metadata"]["resourceVersion"] = old
                    .value
                    .pointer("/metadata/resourceVersion")
                    .cloned()
                    .unwrap_or_default();
                objects
                    .update(r, "default", "kubernetes", obj, None, WriteOpts::default())
                    .await?;
            }
            Ok(_) => {}
        }
    }
    Ok(())
}

pub(crate) fn micro_now() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%S.%6fZ")
        .to_string()
}

/// Renews this server's lease (member `id`, API at `addr`) until the
/// task is dropped.
pub(crate) async fn keep_lease(objects: Objects, id: u64, addr: SocketAddr) {
    let lease_r = resources::by_kind("coordination.k8s.io", "Lease").expect("leases are served");
    let name = format!("shoal-server-{id}");
    loop {
        let spec = json!({"holderIdentity": addr.to_string(),
            "leaseDurationSeconds": LEASE_SECONDS, "renewTime": micro_now()});
        let renewed = match objects.get(lease_r, "kube-system", &name) {
            Ok(_) => objects
                .patch(
                    lease_r,
                    "kube-system",
                    &name,
                    PatchType::Merge,
                    &json!({ "spec": spec }),
                    None,
                    WriteOpts::default(),
                )
                .await
                .map(|_| ()),
            Err(_) => {
                let lease = json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                    "metadata": {"name": name, "namespace": "kube-system",
                        "labels": {IDENTITY: "kube-apiserver"}},
                    "spec": spec});
                objects
                    .create(lease_r, "kube-system", lease, WriteOpts::default())
                    .await
                    .map(|_| ())
            }
        };
        if let Err(e) = renewed {
            tracing::debug!("renewing kube-system/{name}: {}", e.message);
        }
        tokio::time::sleep(PERIOD).await;
    }
}

/// The addresses of the servers whose leases in `leases` are alive at
/// `now`, sorted.
fn alive(leases: &[&Value], now: jiff::Timestamp) -> Vec<SocketAddr> {
    let mut out: Vec<SocketAddr> = leases
        .iter()
        .filter(|l| {
            let renewed = meta::str_at(l, "/spec/renewTime").and_then(meta::parse_time);
            let secs = l
                .pointer("/spec/leaseDurationSeconds")
                .and_then(Value::as_i64)
                .unwrap_or(LEASE_SECONDS);
            renewed.is_some_and(|t| now.duration_since(t).as_secs() < secs)
        })
        .filter_map(|l| meta::str_at(l, "/spec/holderIdentity")?.parse().ok())
        .collect();
    out.sort();
    out.dedup();
    out
}

/// Writes the endpoints from the servers' live leases until the task is
/// dropped (run by the leading server).
pub(crate) async fn reconcile(objects: Objects) {
    let lease_r = resources::by_kind("coordination.k8s.io", "Lease").expect("leases are served");
    let selector =
        LabelSelector::parse(&format!("{IDENTITY}=kube-apiserver")).expect("a valid selector");
    loop {
        let (leases, _) = objects.list(
            lease_r,
            Some("kube-system"),
            &selector,
            &FieldSelector::default(),
        );
        let leases: Vec<&Value> = leases.iter().map(|s| &*s.value).collect();
        let servers = alive(&leases, jiff::Timestamp::now());
        if let Err(e) = write(&objects, &servers).await {
            tracing::warn!("writing the kubernetes Service's endpoints: {}", e.message);
        }
        tokio::time::sleep(PERIOD).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_leases_renewed_within_their_duration_count() {
        let lease = |addr: &str, renewed: &str| json!({"spec": {"holderIdentity": addr, "leaseDurationSeconds": 15, "renewTime": renewed}});
        let leases = [
            lease("10.0.0.2:6443", "2026-01-01T00:00:50.000000Z"),
            lease("10.0.0.1:6443", "2026-01-01T00:00:55.000000Z"),
            lease("10.0.0.3:6443", "2026-01-01T00:00:40.000000Z"),
            lease("not an address", "2026-01-01T00:00:55.000000Z"),
        ];
        let now: jiff::Timestamp = "2026-01-01T00:01:00Z".parse().unwrap();
        let got = alive(&leases.iter().collect::<Vec<_>>(), now);
        assert_eq!(
            got,
            ["10.0.0.1:6443", "10.0.0.2:6443"].map(|a| a.parse::<SocketAddr>().unwrap())
        );
    }
}

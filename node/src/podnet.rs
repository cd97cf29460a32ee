//! The node's part of the pod network: its own pod CIDR made local, every
//! other node's routed through that node's address (`shoal_cni::routes`),
//! kept in step with the Node objects; removed when the agent stops.

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Node;
use shoal_cni::{Ipv4Cidr, PodRoute, RouteTable};

use crate::agent::Shared;

/// How the node makes pod IPs reachable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PodNetwork {
    /// Routes in the node's kernel: its pod CIDR local, other nodes' pod
    /// CIDRs through their addresses (nodes share a link).
    HostGw,
    /// Nothing: pod IPs are labels (a node without CAP_NET_ADMIN, or one
    /// sharing its network with another cluster).
    None,
}

/// The routes this node wants: its CIDR and `locals` (the cluster DNS
/// address), and each other node's CIDR through its InternalIP.
pub(crate) fn wanted(
    own: Ipv4Cidr,
    locals: &[Ipv4Cidr],
    own_name: &str,
    nodes: &[Arc<Node>],
) -> Vec<PodRoute> {
    let mut routes = vec![PodRoute::Local(own)];
    routes.extend(locals.iter().map(|l| PodRoute::Local(*l)));
    for n in nodes {
        if n.metadata.name.as_deref() == Some(own_name) {
            continue;
        }
        let Some(cidr) = n
            .spec
            .as_ref()
            .and_then(|s| s.pod_cidr.as_deref())
            .and_then(|c| c.parse::<Ipv4Cidr>().ok())
        else {
            continue;
        };
        let ip = n
            .status
            .as_ref()
            .and_then(|s| s.addresses.as_ref())
            .and_then(|a| a.iter().find(|a| a.type_ == "InternalIP"))
            .and_then(|a| a.address.parse::<Ipv4Addr>().ok());
        if let Some(ip) = ip
            && cidr != own
        {
            routes.push(PodRoute::Via(cidr, ip));
        }
    }
    routes.sort_by_key(|r| match r {
        PodRoute::Local(c) | PodRoute::Via(c, _) => *c,
    });
    routes
}

/// Keeps the node's routes in step with the cluster's nodes until the task
/// is dropped.
pub(crate) async fn run(
    shared: Arc<Shared>,
    own: Ipv4Cidr,
    locals: Vec<Ipv4Cidr>,
    table: RouteTable,
) {
    let (nodes, mut changes) = crate::watch::reflect::<Node>(&shared.client);
    let name = shared.config.node_name.clone();
    let mut last: Option<Vec<PodRoute>> = None;
    loop {
        let want = wanted(own, &locals, &name, &nodes.state());
        *shared.pod_cidrs.write().unwrap_or_else(|e| e.into_inner()) = want
            .iter()
            .filter_map(|r| match r {
                PodRoute::Local(c) if locals.contains(c) => None,
                PodRoute::Local(c) | PodRoute::Via(c, _) => Some(*c),
            })
            .collect();
        if last.as_ref() != Some(&want) {
            match table.sync(&want).await {
                Ok(c) => {
                    if !c.add.is_empty() || !c.remove.is_empty() {
                        tracing::info!(
                            "pod routes: {} added, {} removed",
                            c.add.len(),
                            c.remove.len()
                        );
                    }
                    last = Some(want);
                }
                Err(e) => tracing::warn!("syncing pod routes: {e}"),
            }
        }
        // A node change, or a minute (to repair routes removed by hand).
        tokio::select! {
            _ = changes.next() => {}
            () = tokio::time::sleep(Duration::from_secs(60)) => { last = None; }
        }
    }
}

/// Opens the route table and makes the node's CIDR and `locals` local, if
/// the node's pod network is `HostGw`; `None` when it is not or the kernel
/// refuses (then pod IPs stay labels and the reason is logged).
pub(crate) async fn open(
    network: PodNetwork,
    own: Ipv4Cidr,
    locals: &[Ipv4Cidr],
) -> Option<RouteTable> {
    if network == PodNetwork::None {
        return None;
    }
    let table = match RouteTable::open().await {
        Ok(t) => t,
        Err(e) => {
            tracing::warn!("pod network unavailable ({e}); pod IPs will not be routable");
            return None;
        }
    };
    let mut routes = vec![PodRoute::Local(own)];
    routes.extend(locals.iter().map(|l| PodRoute::Local(*l)));
    match table.sync(&routes).await {
        Ok(_) => Some(table),
        Err(e) => {
            tracing::warn!(
                "pod network unavailable: routing {own} to this node: {e}; pod IPs will not be routable"
            );
            None
        }
    }
}

/// Removes the node's routes (the agent is stopping).
pub(crate) async fn close(table: &RouteTable) {
    if let Err(e) = table.sync(&[]).await {
        tracing::warn!("removing pod routes: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn node(name: &str, cidr: Option<&str>, ip: Option<&str>) -> Arc<Node> {
        let mut n = json!({"metadata": {"name": name}, "spec": {}, "status": {}});
        if let Some(c) = cidr {
            n["spec"]["podCIDR"] = json!(c);
        }
        if let Some(ip) = ip {
            n["status"]["addresses"] = json!([{"type": "InternalIP", "address": ip}, {"type": "Hostname", "address": name}]);
        }
        Arc::new(serde_json::from_value(n).unwrap())
    }

    #[test]
    fn routes_follow_the_other_nodes_cidrs_and_addresses() {
        let own: Ipv4Cidr = "10.244.0.0/18".parse().unwrap();
        let dns: Ipv4Cidr = "10.96.0.10/32".parse().unwrap();
        let nodes = [
            node("a", Some("10.244.0.0/18"), Some("10.0.0.1")),
            node("b", Some("10.244.64.0/18"), Some("10.0.0.2")),
            node("c", None, Some("10.0.0.3")),
            node("d", Some("10.244.128.0/18"), None),
        ];
        assert_eq!(
            wanted(own, &[dns], "a", &nodes),
            [
                PodRoute::Local(dns),
                PodRoute::Local(own),
                PodRoute::Via(
                    "10.244.64.0/18".parse().unwrap(),
                    Ipv4Addr::new(10, 0, 0, 2)
                ),
            ]
        );
    }
}

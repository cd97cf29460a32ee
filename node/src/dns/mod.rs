//! Cluster DNS, served by every agent: the Kubernetes DNS specification's
//! names (`zone`), answered at the cluster DNS address (`--cluster-dns`,
//! made local to the node like its pod CIDR) on port 53, over UDP by a loop
//! of shoal's own (`udp`) and over TCP by hickory-server, other names
//! forwarded to the node's resolvers (`server`).
//! Wasm guests' lookups do not go through a socket: [`PodResolver`] asks the
//! same zone in-process, with the pod's search path.

mod server;
mod udp;
mod zone;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use serde_json::Value;

use crate::agent::Shared;
pub(crate) use zone::Lookup;
use zone::{Rr, Zone};

/// The zone as it is now, shared by the server and the pods' resolvers.
#[derive(Clone)]
pub(crate) struct Names(Arc<RwLock<Arc<Zone>>>);

impl Names {
    /// The names of an empty cluster under `domain`.
    pub(crate) fn new(domain: &str) -> Self {
        Self(Arc::new(RwLock::new(Arc::new(Zone::build(
            domain,
            &[],
            &[],
        )))))
    }

    fn zone(&self) -> Arc<Zone> {
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn set(&self, zone: Zone) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(zone);
    }

    /// What the zone holds for `name`.
    pub(crate) fn lookup(&self, name: &str) -> Lookup {
        self.zone().lookup(name)
    }

    /// The cluster domain.
    pub(crate) fn domain(&self) -> String {
        self.zone().domain().to_string()
    }
}

/// How the cluster DNS is set up on a node.
#[derive(Debug, Clone)]
pub struct DnsConfig {
    /// The address it listens on (the `kube-dns` Service's ClusterIP).
    pub address: Ipv4Addr,
    /// The cluster domain (`cluster.local`).
    pub domain: String,
}

/// Keeps the zone in step with Services and EndpointSlices, and serves it
/// at `config.address` until the task is dropped.
pub(crate) async fn run(shared: Arc<Shared>, names: Names, config: DnsConfig) {
    let resolv = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let upstreams = server::upstreams(&resolv, IpAddr::V4(config.address));
    let handler = server::Handler {
        names: names.clone(),
        upstreams: upstreams.clone(),
    };
    let mut dns = hickory_server::Server::new(handler);
    let at = SocketAddr::from((config.address, 53));
    // Served while this task runs (its workers end with it).
    let udp = match tokio::net::UdpSocket::bind(at).await {
        Ok(s) => futures::future::Either::Left(udp::serve(s, names.clone(), upstreams)),
        Err(e) => {
            tracing::warn!("cluster DNS: binding UDP {at}: {e}");
            futures::future::Either::Right(std::future::pending())
        }
    };
    match tokio::net::TcpListener::bind(at).await {
        Ok(l) => dns.register_listener(l, Duration::from_secs(5), 64),
        Err(e) => tracing::warn!("cluster DNS: binding TCP {at}: {e}"),
    }
    let (services, svc_changes) = crate::watch::reflect::<Service>(&shared.client);
    let (slices, slice_changes) = crate::watch::reflect::<EndpointSlice>(&shared.client);
    let mut changes = futures::stream::select(svc_changes, slice_changes);
    let zone = async {
        while changes.next().await.is_some() {
            // One rebuild for a burst of changes.
            crate::watch::settle(&mut changes, Duration::from_millis(5)).await;
            names.set(Zone::build(
                &config.domain,
                &services.state(),
                &slices.state(),
            ));
        }
    };
    tokio::select! {
        () = zone => {}
        () = udp => {}
    }
    drop(dns);
}

/// Name lookups of one pod's guests: the pod's search path and `ndots`
/// (from its `dnsPolicy` and `dnsConfig`), the cluster's names answered
/// in-process, other names by the node's resolver.
pub(crate) struct PodResolver {
    names: Names,
    search: Vec<String>,
    ndots: usize,
    cluster_first: bool,
}

impl PodResolver {
    /// The resolver of `pod` (its JSON) in a cluster whose names are
    /// `names`.
    pub(crate) fn for_pod(names: Names, pod: &Value) -> Self {
        let ns = pod
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or("default");
        let policy = pod
            .pointer("/spec/dnsPolicy")
            .and_then(Value::as_str)
            .unwrap_or("ClusterFirst");
        let host_network = pod.pointer("/spec/hostNetwork") == Some(&Value::Bool(true));
        let cluster_first = match policy {
            "ClusterFirst" => !host_network,
            "ClusterFirstWithHostNet" => true,
            _ => false,
        };
        let domain = names.domain();
        let mut search = if cluster_first {
            vec![
                format!("{ns}.svc.{domain}"),
                format!("svc.{domain}"),
                domain.clone(),
            ]
        } else {
            Vec::new()
        };
        let mut ndots = 5;
        if let Some(cfg) = pod.pointer("/spec/dnsConfig") {
            let strings = cfg.get("searches").and_then(Value::as_array);
            search.extend(
                strings
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .map(String::from),
            );
            for o in cfg
                .get("options")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if o.get("name").and_then(Value::as_str) == Some("ndots")
                    && let Some(n) = o
                        .get("value")
                        .and_then(Value::as_str)
                        .and_then(|v| v.parse().ok())
                {
                    ndots = n;
                }
            }
        }
        Self {
            names,
            search,
            ndots,
            cluster_first: cluster_first || policy == "None",
        }
    }
}

impl shoal_runtime_wasm::NameResolver for PodResolver {
    fn resolve(
        &self,
        name: &str,
    ) -> std::pin::Pin<Box<dyn Future<Output = Result<Vec<IpAddr>, String>> + Send>> {
        let candidates = if self.cluster_first {
            zone::candidates(name, &self.search, self.ndots)
        } else {
            vec![name.trim_end_matches('.').to_string()]
        };
        let names = self.names.clone();
        let cluster_first = self.cluster_first;
        let name = name.to_string();
        Box::pin(async move {
            for candidate in candidates {
                let mut at = candidate;
                // Follow CNAMEs inside the zone; a name out of it goes to
                // the node's resolver.
                for _ in 0..8 {
                    let lookup = if cluster_first {
                        names.lookup(&at)
                    } else {
                        Lookup::NotOurs
                    };
                    match lookup {
                        Lookup::Found(rrs) => {
                            if let Some(Rr::Cname(t)) = rrs.first() {
                                at = t.clone();
                                continue;
                            }
                            let ips: Vec<IpAddr> = rrs
                                .iter()
                                .filter_map(|r| match r {
                                    Rr::A(ip) => Some(IpAddr::V4(*ip)),
                                    _ => None,
                                })
                                .collect();
                            if !ips.is_empty() {
                                return Ok(ips);
                            }
                            break;
                        }
                        Lookup::NxDomain => break,
                        Lookup::NotOurs => {
                            if let Ok(addrs) = tokio::net::lookup_host((at.as_str(), 0)).await {
                                let ips: Vec<IpAddr> = addrs.map(|a| a.ip()).collect();
                                if !ips.is_empty() {
                                    return Ok(ips);
                                }
                            }
                            break;
                        }
                    }
                }
            }
            Err(format!("{name}: no such host"))
        })
    }
}

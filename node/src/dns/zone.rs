//! The cluster's names, as the Kubernetes DNS specification gives them,
//! built from Services and EndpointSlices (pure: objects in, records out).
//!
//! - `<svc>.<ns>.svc.<domain>`: the ClusterIP; for a headless Service an A
//!   record per ready endpoint (none: the name does not exist); for an
//!   ExternalName Service a CNAME.
//! - `<hostname>.<svc>.<ns>.svc.<domain>`: a headless Service's endpoint by
//!   its hostname (a StatefulSet's pods, `hostname` + `subdomain`), or by
//!   its address written `a-b-c-d`.
//! - `_<port>._<proto>.<svc>.<ns>.svc.<domain>`: SRV for each named port.
//! - `<a-b-c-d>.<ns>.pod.<domain>`: any address so written.
//! - `dns-version.<domain>`: TXT `1.1.0`; PTR records for ClusterIPs and
//!   headless endpoints.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;

/// The version of the Kubernetes DNS specification served.
const SPEC_VERSION: &str = "1.1.0";

/// One record's data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Rr {
    A(Ipv4Addr),
    Cname(String),
    Srv { port: u16, target: String },
    Txt(String),
    Ptr(String),
}

/// What the zone says of a name.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Lookup {
    /// The name exists with these records (possibly none of the asked type).
    Found(Vec<Rr>),
    /// The name is in the cluster's domain and does not exist.
    NxDomain,
    /// The name is not the cluster's: ask the node's resolvers.
    NotOurs,
}

/// The cluster's names.
#[derive(Debug, Default)]
pub(crate) struct Zone {
    /// The cluster domain, lower case, without a trailing dot.
    domain: String,
    names: HashMap<String, Vec<Rr>>,
}

/// `10.1.2.3` as `10-1-2-3`.
fn dashed(ip: Ipv4Addr) -> String {
    ip.to_string().replace('.', "-")
}

/// `10-1-2-3` as `10.1.2.3`.
fn undashed(label: &str) -> Option<Ipv4Addr> {
    let parts: Vec<&str> = label.split('-').collect();
    if parts.len() != 4 {
        return None;
    }
    parts.join(".").parse().ok()
}

fn reverse(ip: Ipv4Addr) -> String {
    let [a, b, c, d] = ip.octets();
    format!("{d}.{c}.{b}.{a}.in-addr.arpa")
}

/// A Service's ready endpoints: address, hostname, and the slice's ports
/// by name and protocol.
struct Endpoint<'a> {
    ip: Ipv4Addr,
    hostname: Option<&'a str>,
}

impl Zone {
    /// The zone of `services` and their `slices`, under `domain`.
    pub(crate) fn build(
        domain: &str,
        services: &[Arc<Service>],
        slices: &[Arc<EndpointSlice>],
    ) -> Self {
        let domain = domain.trim_end_matches('.').to_ascii_lowercase();
        let mut z = Zone {
            domain: domain.clone(),
            names: HashMap::new(),
        };
        z.add(&domain, None);
        z.add(
            &format!("dns-version.{domain}"),
            Some(Rr::Txt(SPEC_VERSION.into())),
        );
        let by_service = crate::watch::slices_by_service(slices);
        for svc in services {
            let (Some(name), Some(ns), Some(spec)) = (
                svc.metadata.name.as_deref(),
                svc.metadata.namespace.as_deref(),
                svc.spec.as_ref(),
            ) else {
                continue;
            };
            let fqdn = format!("{name}.{ns}.svc.{domain}").to_ascii_lowercase();
            if spec.type_.as_deref() == Some("ExternalName") {
                if let Some(target) = &spec.external_name {
                    let target = target.trim_end_matches('.').to_ascii_lowercase();
                    z.add(&fqdn, Some(Rr::Cname(target)));
                }
                continue;
            }
            let own = by_service.get(&(ns, name)).cloned().unwrap_or_default();
            let publish_all = spec.publish_not_ready_addresses == Some(true);
            let headless = spec.cluster_ip.as_deref() == Some("None");
            if headless {
                let mut endpoints = Vec::new();
                for slice in &own {
                    for e in &slice.endpoints {
                        let ready = e.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true);
                        if !ready && !publish_all {
                            continue;
                        }
                        for a in &e.addresses {
                            if let Ok(ip) = a.parse::<Ipv4Addr>() {
                                endpoints.push(Endpoint {
                                    ip,
                                    hostname: e.hostname.as_deref(),
                                });
                            }
                        }
                    }
                }
                endpoints.sort_by_key(|e| e.ip);
                endpoints.dedup_by_key(|e| e.ip);
                for e in &endpoints {
                    let host = e
                        .hostname
                        .map_or_else(|| dashed(e.ip), str::to_ascii_lowercase);
                    let host_fqdn = format!("{host}.{fqdn}");
                    z.add(&fqdn, Some(Rr::A(e.ip)));
                    z.add(&host_fqdn, Some(Rr::A(e.ip)));
                    z.add(&reverse(e.ip), Some(Rr::Ptr(host_fqdn.clone())));
                }
                for (port_name, proto, port) in own.iter().flat_map(|s| named_ports(s)) {
                    let srv = format!("_{port_name}._{proto}.{fqdn}");
                    for e in &endpoints {
                        let host = e
                            .hostname
                            .map_or_else(|| dashed(e.ip), str::to_ascii_lowercase);
                        z.add(
                            &srv,
                            Some(Rr::Srv {
                                port,
                                target: format!("{host}.{fqdn}"),
                            }),
                        );
                    }
                }
                continue;
            }
            let ips: Vec<Ipv4Addr> = spec
                .cluster_ips
                .clone()
                .or_else(|| spec.cluster_ip.clone().map(|ip| vec![ip]))
                .unwrap_or_default()
                .iter()
                .filter_map(|ip| ip.parse().ok())
                .collect();
            if ips.is_empty() {
                continue;
            }
            for ip in &ips {
                z.add(&fqdn, Some(Rr::A(*ip)));
                z.add(&reverse(*ip), Some(Rr::Ptr(fqdn.clone())));
            }
            for p in spec.ports.iter().flatten() {
                let (Some(port_name), Ok(port)) = (p.name.as_deref(), u16::try_from(p.port)) else {
                    continue;
                };
                if port_name.is_empty() {
                    continue;
                }
                let proto = p.protocol.as_deref().unwrap_or("TCP").to_ascii_lowercase();
                z.add(
                    &format!("_{}._{proto}.{fqdn}", port_name.to_ascii_lowercase()),
                    Some(Rr::Srv {
                        port,
                        target: fqdn.clone(),
                    }),
                );
            }
        }
        for rrs in z.names.values_mut() {
            rrs.dedup();
        }
        z
    }

    fn add(&mut self, name: &str, rr: Option<Rr>) {
        let rrs = self.names.entry(name.to_string()).or_default();
        if let Some(rr) = rr
            && !rrs.contains(&rr)
        {
            rrs.push(rr);
        }
    }

    /// The cluster domain.
    pub(crate) fn domain(&self) -> &str {
        &self.domain
    }

    /// What the zone holds for `name` (any case, with or without the
    /// trailing dot).
    pub(crate) fn lookup(&self, name: &str) -> Lookup {
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        if let Some(rrs) = self.names.get(&name) {
            return Lookup::Found(rrs.clone());
        }
        if name.ends_with(".in-addr.arpa") {
            return Lookup::NotOurs;
        }
        let Some(rest) = name
            .strip_suffix(&self.domain)
            .and_then(|r| r.strip_suffix('.'))
        else {
            return Lookup::NotOurs;
        };
        // `<a-b-c-d>.<ns>.pod`
        let labels: Vec<&str> = rest.split('.').collect();
        if let [ip, _ns, "pod"] = labels.as_slice()
            && let Some(ip) = undashed(ip)
        {
            return Lookup::Found(vec![Rr::A(ip)]);
        }
        Lookup::NxDomain
    }
}

/// The named ports of a slice: (name, protocol, port).
fn named_ports(slice: &EndpointSlice) -> Vec<(String, String, u16)> {
    slice
        .ports
        .iter()
        .flatten()
        .filter_map(|p| {
            let name = p.name.as_deref().filter(|n| !n.is_empty())?;
            let port = u16::try_from(p.port?).ok()?;
            let proto = p.protocol.as_deref().unwrap_or("TCP").to_ascii_lowercase();
            Some((name.to_ascii_lowercase(), proto, port))
        })
        .collect()
}

/// The names a pod's lookup of `name` tries, in order, as a resolver with
/// `search` domains and `ndots` does: a name with fewer dots than `ndots`
/// goes through the search list first; a name ending in a dot is tried as
/// it is and only so.
pub(crate) fn candidates(name: &str, search: &[String], ndots: usize) -> Vec<String> {
    if let Some(absolute) = name.strip_suffix('.') {
        return vec![absolute.to_string()];
    }
    let searched = search.iter().map(|s| format!("{name}.{s}"));
    if name.matches('.').count() >= ndots {
        std::iter::once(name.to_string()).chain(searched).collect()
    } else {
        searched.chain(std::iter::once(name.to_string())).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn svc(v: serde_json::Value) -> Arc<Service> {
        Arc::new(serde_json::from_value(v).unwrap())
    }

    fn slice(v: serde_json::Value) -> Arc<EndpointSlice> {
        Arc::new(serde_json::from_value(v).unwrap())
    }

    fn zone() -> Zone {
        let services = [
            svc(
                json!({"metadata": {"name": "Backend", "namespace": "default"},
                "spec": {"clusterIP": "10.96.0.20", "clusterIPs": ["10.96.0.20"],
                    "ports": [{"name": "http", "port": 80, "protocol": "TCP"}, {"port": 81}]}}),
            ),
            svc(json!({"metadata": {"name": "db", "namespace": "data"},
                "spec": {"clusterIP": "None", "ports": [{"name": "pg", "port": 5432}]}})),
            svc(json!({"metadata": {"name": "empty", "namespace": "data"},
                "spec": {"clusterIP": "None"}})),
            svc(json!({"metadata": {"name": "ext", "namespace": "default"},
                "spec": {"type": "ExternalName", "externalName": "example.org."}})),
        ];
        let slices = [slice(json!({
            "metadata": {"name": "db-1", "namespace": "data", "labels": {"kubernetes.io/service-name": "db"}},
            "addressType": "IPv4",
            "ports": [{"name": "pg", "port": 5432, "protocol": "TCP"}],
            "endpoints": [
                {"addresses": ["10.244.0.5"], "hostname": "db-0", "conditions": {"ready": true}},
                {"addresses": ["10.244.64.6"], "conditions": {"ready": true}},
                {"addresses": ["10.244.64.7"], "hostname": "db-2", "conditions": {"ready": false}}]}))];
        Zone::build("cluster.local", &services, &slices)
    }

    #[test]
    fn services_by_name_with_their_cluster_ip_and_named_ports() {
        let z = zone();
        let a = Rr::A("10.96.0.20".parse().unwrap());
        assert_eq!(
            z.lookup("backend.default.svc.cluster.local"),
            Lookup::Found(vec![a.clone()])
        );
        assert_eq!(
            z.lookup("BACKEND.default.svc.cluster.local."),
            Lookup::Found(vec![a]),
            "names are case-insensitive"
        );
        assert_eq!(
            z.lookup("_http._tcp.backend.default.svc.cluster.local"),
            Lookup::Found(vec![Rr::Srv {
                port: 80,
                target: "backend.default.svc.cluster.local".into()
            }])
        );
        assert_eq!(
            z.lookup("20.0.96.10.in-addr.arpa"),
            Lookup::Found(vec![Rr::Ptr("backend.default.svc.cluster.local".into())])
        );
        assert_eq!(z.lookup("nope.default.svc.cluster.local"), Lookup::NxDomain);
        assert_eq!(z.lookup("example.org"), Lookup::NotOurs);
        assert_eq!(z.lookup("1.2.3.4.in-addr.arpa"), Lookup::NotOurs);
        assert_eq!(
            z.lookup("dns-version.cluster.local"),
            Lookup::Found(vec![Rr::Txt("1.1.0".into())])
        );
    }

    #[test]
    fn headless_services_answer_with_their_ready_endpoints() {
        let z = zone();
        let Lookup::Found(rrs) = z.lookup("db.data.svc.cluster.local") else {
            panic!()
        };
        assert_eq!(
            rrs,
            [
                Rr::A("10.244.0.5".parse().unwrap()),
                Rr::A("10.244.64.6".parse().unwrap())
            ],
            "not the unready one"
        );
        assert_eq!(
            z.lookup("db-0.db.data.svc.cluster.local"),
            Lookup::Found(vec![Rr::A("10.244.0.5".parse().unwrap())])
        );
        assert_eq!(
            z.lookup("10-244-64-6.db.data.svc.cluster.local"),
            Lookup::Found(vec![Rr::A("10.244.64.6".parse().unwrap())])
        );
        assert_eq!(z.lookup("db-2.db.data.svc.cluster.local"), Lookup::NxDomain);
        let Lookup::Found(srv) = z.lookup("_pg._tcp.db.data.svc.cluster.local") else {
            panic!()
        };
        assert_eq!(srv.len(), 2);
        assert_eq!(
            z.lookup("empty.data.svc.cluster.local"),
            Lookup::NxDomain,
            "a headless Service without ready endpoints"
        );
    }

    #[test]
    fn external_names_and_pod_names() {
        let z = zone();
        assert_eq!(
            z.lookup("ext.default.svc.cluster.local"),
            Lookup::Found(vec![Rr::Cname("example.org".into())])
        );
        assert_eq!(
            z.lookup("10-244-0-9.default.pod.cluster.local"),
            Lookup::Found(vec![Rr::A("10.244.0.9".parse().unwrap())])
        );
        assert_eq!(
            z.lookup("10-244-0.default.pod.cluster.local"),
            Lookup::NxDomain
        );
        assert_eq!(
            z.lookup("300-1-1-1.default.pod.cluster.local"),
            Lookup::NxDomain
        );
    }

    #[test]
    fn search_paths_follow_ndots() {
        let search = vec![
            "default.svc.cluster.local".to_string(),
            "svc.cluster.local".to_string(),
            "cluster.local".to_string(),
        ];
        assert_eq!(
            candidates("backend", &search, 5),
            [
                "backend.default.svc.cluster.local",
                "backend.svc.cluster.local",
                "backend.cluster.local",
                "backend"
            ]
        );
        assert_eq!(candidates("example.org.", &search, 5), ["example.org"]);
        assert_eq!(
            candidates("a.b.c.d.e.f", &search, 5)[0],
            "a.b.c.d.e.f",
            "enough dots: tried as it is first"
        );
    }
}

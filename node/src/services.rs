//! Services, implemented by the node's kernel as kube-proxy's nftables mode
//! does: the agent turns Services and EndpointSlices into one nftables
//! table (`ip shoal`) and replaces it, in one transaction, whenever they
//! change. Connections to a ClusterIP or to a NodePort of the node are
//! DNATed to a ready endpoint chosen at random: processes of the node and
//! Wasm guests (whose sockets are the agent's) alike, and traffic from
//! other hosts. NodePort traffic and hairpin connections are masqueraded,
//! so replies come back the way they went; a Service without ready
//! endpoints is refused at once.
//!
//! [`ruleset_of`] is pure (Services' ports and endpoints in, the table
//! out; the parts of unchanged Services kept from the last table);
//! [`run`] reflects the objects and runs `nft -f -`.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fmt::Write;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use shoal_cni::Ipv4Cidr;

use crate::agent::Shared;

/// The nftables table shoal owns.
const TABLE: &str = "shoal";

/// The mark of connections to masquerade.
const MASQ: u32 = 0x4000;

/// What the rules need to know of the node.
pub(crate) struct NodeView<'a> {
    /// The node's name (endpoints there are local).
    pub name: &'a str,
    /// The node's pod CIDR, whose addresses are local but never NodePorts.
    pub pod_cidr: Ipv4Cidr,
    /// The cluster DNS address, which the node serves itself.
    pub cluster_dns: Ipv4Addr,
}

/// One port of a Service, with where its connections go.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Frontend {
    /// `tcp` or `udp`.
    proto: &'static str,
    cluster_ips: Vec<Ipv4Addr>,
    port: u16,
    node_port: Option<u16>,
    /// Load-balancer addresses (`status.loadBalancer.ingress`), served on
    /// `port` like a NodePort.
    lb_ips: Vec<Ipv4Addr>,
    /// Ready endpoints for connections to the ClusterIP.
    internal: Vec<(Ipv4Addr, u16)>,
    /// Ready endpoints for connections to the NodePort.
    external: Vec<(Ipv4Addr, u16)>,
    /// External traffic stays on the node: not masqueraded.
    external_local: bool,
    /// `sessionAffinity: ClientIP`: a client keeps its endpoint for this
    /// many seconds after its last connection.
    affinity: Option<u32>,
    /// The `kubernetes` Service: pods may reach the API through it even
    /// where its endpoint is the node itself.
    api: bool,
}

fn protocol(p: Option<&str>) -> Option<&'static str> {
    match p.unwrap_or("TCP") {
        "TCP" => Some("tcp"),
        "UDP" => Some("udp"),
        _ => None,
    }
}

/// Every port of every Service, paired with the ready endpoints of its
/// slices (a named `targetPort` resolved through the slice's port names).
pub(crate) fn frontends(
    services: &[Arc<Service>],
    slices: &[Arc<EndpointSlice>],
    node: &NodeView,
) -> Vec<Frontend> {
    let by_service = crate::watch::slices_by_service(slices);
    let mut out = Vec::new();
    for svc in services {
        let Some(spec) = &svc.spec else { continue };
        if spec.type_.as_deref() == Some("ExternalName") {
            continue;
        }
        let cluster_ips: Vec<Ipv4Addr> = spec
            .cluster_ips
            .clone()
            .or_else(|| spec.cluster_ip.clone().map(|ip| vec![ip]))
            .unwrap_or_default()
            .iter()
            .filter_map(|ip| ip.parse().ok())
            .filter(|ip| *ip != node.cluster_dns)
            .collect();
        // Headless Services (and the cluster DNS, served by the node) get
        // no rules.
        if cluster_ips.is_empty() {
            continue;
        }
        let ns = svc.metadata.namespace.as_deref().unwrap_or_default();
        let name = svc.metadata.name.as_deref().unwrap_or_default();
        let own_slices = by_service.get(&(ns, name)).cloned().unwrap_or_default();
        // A Service with a selector whose slices the control plane has not
        // published yet (it publishes one, empty if need be, within
        // milliseconds) is left out until they come: programming it without
        // endpoints first would cost a write, and the next one a removal.
        if own_slices.is_empty() && spec.selector.as_ref().is_some_and(|s| !s.is_empty()) {
            continue;
        }
        let internal_local = spec.internal_traffic_policy.as_deref() == Some("Local");
        let external_local = spec.external_traffic_policy.as_deref() == Some("Local");
        let lb_ips: Vec<Ipv4Addr> = svc
            .status
            .as_ref()
            .and_then(|s| s.load_balancer.as_ref())
            .and_then(|l| l.ingress.as_ref())
            .into_iter()
            .flatten()
            .filter_map(|i| i.ip.as_deref()?.parse().ok())
            .collect();
        let affinity = (spec.session_affinity.as_deref() == Some("ClientIP")).then(|| {
            spec.session_affinity_config
                .as_ref()
                .and_then(|c| c.client_ip.as_ref())
                .and_then(|c| c.timeout_seconds)
                .and_then(|t| u32::try_from(t).ok())
                .filter(|t| *t > 0)
                .unwrap_or(10_800)
        });
        for p in spec.ports.iter().flatten() {
            let Some(proto) = protocol(p.protocol.as_deref()) else {
                continue;
            };
            let mut ready: Vec<(Ipv4Addr, u16, bool)> = Vec::new();
            for slice in &own_slices {
                let Some(target) = slice.ports.iter().flatten().find_map(|sp| {
                    (sp.name == p.name && protocol(sp.protocol.as_deref()) == Some(proto))
                        .then_some(sp.port)
                        .flatten()
                }) else {
                    continue;
                };
                let Ok(target) = u16::try_from(target) else {
                    continue;
                };
                for e in &slice.endpoints {
                    let conditions = e.conditions.as_ref();
                    let ready_now = conditions.and_then(|c| c.ready).unwrap_or(true);
                    let terminating = conditions.and_then(|c| c.terminating).unwrap_or(false);
                    if !ready_now || terminating {
                        continue;
                    }
                    let local = e.node_name.as_deref() == Some(node.name);
                    for a in &e.addresses {
                        if let Ok(ip) = a.parse::<Ipv4Addr>() {
                            ready.push((ip, target, local));
                        }
                    }
                }
            }
            ready.sort();
            ready.dedup();
            let pick = |local_only: bool| {
                ready
                    .iter()
                    .filter(|(_, _, local)| !local_only || *local)
                    .map(|(ip, port, _)| (*ip, *port))
                    .collect::<Vec<_>>()
            };
            out.push(Frontend {
                proto,
                cluster_ips: cluster_ips.clone(),
                port: u16::try_from(p.port).unwrap_or(0),
                node_port: p.node_port.and_then(|n| u16::try_from(n).ok()),
                lb_ips: lb_ips.clone(),
                api: ns == "default" && name == "kubernetes",
                internal: pick(internal_local),
                external: pick(external_local),
                external_local,
                affinity,
            });
        }
    }
    out
}

/// The Service ports (ClusterIP, port, UDP) whose endpoints are the node
/// itself, which pods may not reach through them any more than at the
/// node's own address.
/// It also knows each Service port's endpoints, for decisions about the
/// connections a ClusterIP stands for.
#[derive(Default)]
pub(crate) struct ServiceGuard(std::sync::RwLock<ServiceView>);

/// Service ports that lead to the node, and every Service port's
/// endpoints, by (ClusterIP, port, UDP).
#[derive(Default)]
pub(crate) struct ServiceView {
    to_node: HashSet<(Ipv4Addr, u16, bool)>,
    endpoints: std::collections::HashMap<(Ipv4Addr, u16, bool), Vec<(Ipv4Addr, u16)>>,
}

impl ServiceGuard {
    fn set(&self, view: ServiceView) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = view;
    }

    /// The endpoints a connection to `addr` may go to, if it is a
    /// Service's address.
    pub(crate) fn endpoints(
        &self,
        addr: std::net::SocketAddr,
        udp: bool,
    ) -> Option<Vec<std::net::SocketAddr>> {
        let std::net::IpAddr::V4(ip) = addr.ip() else {
            return None;
        };
        let view = self.0.read().unwrap_or_else(|e| e.into_inner());
        view.endpoints.get(&(ip, addr.port(), udp)).map(|eps| {
            eps.iter()
                .map(|(ip, port)| std::net::SocketAddr::from((*ip, *port)))
                .collect()
        })
    }
}

impl shoal_runtime_wasm::ConnectPolicy for ServiceGuard {
    fn may_reach(&self, addr: std::net::SocketAddr, udp: bool) -> bool {
        let std::net::IpAddr::V4(ip) = addr.ip() else {
            return true;
        };
        !self
            .0
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .to_node
            .contains(&(ip, addr.port(), udp))
    }
}

/// The Service ports that lead to one of `node_addrs` (or loopback), and
/// every Service port's endpoints.
fn service_view(frontends: &[Frontend], node_addrs: &[std::net::IpAddr]) -> ServiceView {
    let is_node =
        |ip: &Ipv4Addr| ip.is_loopback() || node_addrs.contains(&std::net::IpAddr::V4(*ip));
    let mut out = ServiceView::default();
    for f in frontends {
        let udp = f.proto == "udp";
        for ip in &f.cluster_ips {
            out.endpoints.insert((*ip, f.port, udp), f.internal.clone());
        }
        if f.api || !f.internal.iter().any(|(ip, _)| is_node(ip)) {
            continue;
        }
        for ip in &f.cluster_ips {
            out.to_node.insert((*ip, f.port, udp));
        }
    }
    out
}

/// A short stable name for `key` (FNV-1a, 48 bits).
fn short_hash(key: &str) -> String {
    let h = key.bytes().fold(0xcbf29ce484222325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100000001b3)
    });
    format!("{:012x}", h & 0xffff_ffff_ffff)
}

/// A short stable name for a frontend's chains.
fn chain_id(f: &Frontend) -> String {
    short_hash(&format!("{:?}{}{}", f.cluster_ips, f.proto, f.port))
}

/// One table as this agent writes it: its fixed part, the chains of its
/// Service ports, affinity sets, and the elements of its fixed maps and
/// sets. [`script`] compares two of them.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Table {
    /// The fixed maps and sets (without elements) and the base chains,
    /// the same for every table of the node.
    head: String,
    /// Chains of Service ports and endpoints: name → rules.
    chains: BTreeMap<String, Vec<String>>,
    /// Affinity sets: name → definition.
    sets: BTreeMap<String, String>,
    /// The fixed maps' and sets' elements, by name.
    elements: BTreeMap<&'static str, BTreeSet<String>>,
}

/// The maps and sets every table has, and their types.
const FIXED_SETS: [(&str, &str, &str); 4] = [
    (
        "map",
        "service-ips",
        "type ipv4_addr . inet_proto . inet_service : verdict",
    ),
    (
        "map",
        "service-nodeports",
        "type inet_proto . inet_service : verdict",
    ),
    (
        "set",
        "no-endpoints",
        "type ipv4_addr . inet_proto . inet_service",
    ),
    (
        "set",
        "no-endpoint-nodeports",
        "type inet_proto . inet_service",
    ),
];

/// The chain that picks one of `endpoints` at random and DNATs to it;
/// with `affinity`, a client that used an endpoint within that many
/// seconds gets it again. An endpoint's chain and affinity set are named
/// after its address, so they outlive changes to the other endpoints.
fn balance(
    table: &mut Table,
    chain: &str,
    proto: &str,
    endpoints: &[(Ipv4Addr, u16)],
    affinity: Option<u32>,
) {
    let names: Vec<String> = endpoints
        .iter()
        .map(|(ip, port)| format!("{chain}-{}", &short_hash(&format!("{ip}:{port}"))[..8]))
        .collect();
    let mut rules = Vec::new();
    if let Some(timeout) = affinity {
        for n in &names {
            table.sets.insert(
                format!("{n}-affinity"),
                format!("type ipv4_addr; flags dynamic,timeout; timeout {timeout}s;"),
            );
            rules.push(format!("ip saddr @{n}-affinity goto {n}"));
        }
    }
    let jumps: Vec<String> = names
        .iter()
        .enumerate()
        .map(|(i, n)| format!("{i} : goto {n}"))
        .collect();
    rules.push(format!(
        "numgen random mod {} vmap {{ {} }}",
        endpoints.len(),
        jumps.join(", ")
    ));
    table.chains.insert(chain.to_string(), rules);
    for (n, (ip, port)) in names.iter().zip(endpoints) {
        // A pod that reaches itself through the Service is masqueraded, or
        // its reply would not go back through the DNAT.
        let mut rules = vec![format!("ip saddr {ip} meta mark set meta mark | {MASQ:#x}")];
        if affinity.is_some() {
            rules.push(format!("update @{n}-affinity {{ ip saddr }}"));
        }
        rules.push(format!("meta l4proto {proto} dnat to {ip}:{port}"));
        table.chains.insert(n.clone(), rules);
    }
}

/// The table of rules for `services`.
#[cfg(test)]
pub(crate) fn ruleset(
    services: &[Arc<Service>],
    slices: &[Arc<EndpointSlice>],
    node: &NodeView,
) -> Table {
    ruleset_of(
        &frontends(services, slices, node),
        node,
        &mut Parts::default(),
    )
}

/// Each frontend's own chains, sets and elements, kept from one table to
/// the next: a table of 10,000 Services is made anew from the parts of the
/// Services that did not change, and only a changed one is formatted.
#[derive(Default)]
pub(crate) struct Parts(std::collections::HashMap<Frontend, Arc<Table>>);

/// The table of rules for `frontends`, with the unchanged parts of
/// `parts` (which then holds this table's).
pub(crate) fn ruleset_of(frontends: &[Frontend], node: &NodeView, parts: &mut Parts) -> Table {
    let mut t = Table::default();
    let mut next = std::collections::HashMap::with_capacity(frontends.len());
    for f in frontends {
        let part = match parts.0.remove(f) {
            Some(p) => p,
            None => Arc::new(part(f)),
        };
        for (name, rules) in &part.chains {
            t.chains.insert(name.clone(), rules.clone());
        }
        for (name, def) in &part.sets {
            t.sets.insert(name.clone(), def.clone());
        }
        for (set, elements) in &part.elements {
            t.elements
                .entry(set)
                .or_default()
                .extend(elements.iter().cloned());
        }
        next.insert(f.clone(), part);
    }
    parts.0 = next;
    t.head = head(node);
    t
}

/// One frontend's chains, sets and elements.
fn part(f: &Frontend) -> Table {
    let mut t = Table::default();
    let add = |t: &mut Table, set: &'static str, element: String| {
        t.elements.entry(set).or_default().insert(element);
    };
    let id = chain_id(f);
    if f.internal.is_empty() {
        for ip in &f.cluster_ips {
            add(
                &mut t,
                "no-endpoints",
                format!("{ip} . {} . {}", f.proto, f.port),
            );
        }
    } else {
        balance(
            &mut t,
            &format!("svc-{id}"),
            f.proto,
            &f.internal,
            f.affinity,
        );
        for ip in &f.cluster_ips {
            add(
                &mut t,
                "service-ips",
                format!("{ip} . {} . {} : goto svc-{id}", f.proto, f.port),
            );
        }
    }
    if f.node_port.is_none() && f.lb_ips.is_empty() {
        return t;
    }
    if f.external.is_empty() {
        if let Some(np) = f.node_port {
            add(
                &mut t,
                "no-endpoint-nodeports",
                format!("{} . {np}", f.proto),
            );
        }
        for ip in &f.lb_ips {
            add(
                &mut t,
                "no-endpoints",
                format!("{ip} . {} . {}", f.proto, f.port),
            );
        }
        return t;
    }
    balance(
        &mut t,
        &format!("ext-{id}"),
        f.proto,
        &f.external,
        f.affinity,
    );
    let mut rules = Vec::new();
    if !f.external_local {
        rules.push(format!("meta mark set meta mark | {MASQ:#x}"));
    }
    rules.push(format!("goto ext-{id}"));
    t.chains.insert(format!("external-{id}"), rules);
    if let Some(np) = f.node_port {
        add(
            &mut t,
            "service-nodeports",
            format!("{} . {np} : goto external-{id}", f.proto),
        );
    }
    for ip in &f.lb_ips {
        add(
            &mut t,
            "service-ips",
            format!("{ip} . {} . {} : goto external-{id}", f.proto, f.port),
        );
    }
    t
}

/// The table's fixed part: its maps and sets and base chains.
fn head(node: &NodeView) -> String {
    let cidr = node.pod_cidr;
    let mut head = String::new();
    for (kind, name, ty) in FIXED_SETS {
        let _ = writeln!(head, "  {kind} {name} {{ {ty}; }}");
    }
    let _ = writeln!(
        head,
        "  chain services {{\n    ip daddr . meta l4proto . th dport vmap @service-ips\n    ip daddr != {cidr} fib daddr type local meta l4proto . th dport vmap @service-nodeports\n  }}"
    );
    head.push_str("  chain nat-prerouting {\n    type nat hook prerouting priority dstnat; policy accept;\n    jump services\n  }\n");
    head.push_str("  chain nat-output {\n    type nat hook output priority -100; policy accept;\n    jump services\n  }\n");
    let _ = writeln!(
        head,
        "  chain nat-postrouting {{\n    type nat hook postrouting priority srcnat; policy accept;\n    meta mark & {MASQ:#x} == {MASQ:#x} masquerade fully-random\n  }}"
    );
    let refuse = format!(
        "    ip daddr . meta l4proto . th dport @no-endpoints reject\n    ip daddr != {cidr} fib daddr type local meta l4proto . th dport @no-endpoint-nodeports reject\n"
    );
    for (chain, hook) in [
        ("filter-output", "output"),
        ("filter-input", "input"),
        ("filter-forward", "forward"),
    ] {
        let _ = writeln!(
            head,
            "  chain {chain} {{\n    type filter hook {hook} priority -110; policy accept;\n{refuse}  }}"
        );
    }
    head
}

/// `add element`/`delete element` commands for `elements` of `set`.
fn element_command(out: &mut String, verb: &str, set: &str, elements: &[&String]) {
    for chunk in elements.chunks(500) {
        let items: Vec<&str> = chunk
            .iter()
            .map(|e| match verb {
                // A map's element is deleted by its key.
                "delete" => e.split(" : ").next().unwrap_or(e),
                _ => e.as_str(),
            })
            .collect();
        let _ = writeln!(
            out,
            "{verb} element ip {TABLE} {set} {{ {} }}",
            items.join(", ")
        );
    }
}

/// The nftables script that turns the kernel's table from `prev` (what
/// this agent last wrote, if anything) into `next`, in one transaction:
/// from nothing the table is written whole; from `prev` only what
/// changed (chains added, rewritten or deleted, map elements added or
/// deleted), so a change costs the same at 10 Services as at 10,000, and
/// the affinity sets of endpoints that remain keep their clients. Empty
/// when nothing changed.
pub(crate) fn script(prev: Option<&Table>, next: &Table) -> String {
    let mut out = String::new();
    let Some(prev) = prev.filter(|p| p.head == next.head) else {
        let _ = writeln!(out, "add table ip {TABLE}\ndelete table ip {TABLE}");
        let _ = writeln!(out, "table ip {TABLE} {{");
        out.push_str(&next.head);
        for (name, def) in &next.sets {
            let _ = writeln!(out, "  set {name} {{ {def} }}");
        }
        for (name, rules) in &next.chains {
            let _ = writeln!(out, "  chain {name} {{");
            for r in rules {
                let _ = writeln!(out, "    {r}");
            }
            out.push_str("  }\n");
        }
        out.push_str("}\n");
        for (set, elements) in &next.elements {
            element_command(&mut out, "add", set, &elements.iter().collect::<Vec<_>>());
        }
        return out;
    };
    for (name, def) in &next.sets {
        if !prev.sets.contains_key(name) {
            let _ = writeln!(out, "add set ip {TABLE} {name} {{ {def} }}");
        }
    }
    for name in next.chains.keys() {
        if !prev.chains.contains_key(name) {
            let _ = writeln!(out, "add chain ip {TABLE} {name}");
        }
    }
    for (name, rules) in &next.chains {
        match prev.chains.get(name) {
            Some(old) if old == rules => continue,
            Some(_) => {
                let _ = writeln!(out, "flush chain ip {TABLE} {name}");
            }
            None => {}
        }
        for r in rules {
            let _ = writeln!(out, "add rule ip {TABLE} {name} {r}");
        }
    }
    let empty = BTreeSet::new();
    for (_, set, _) in FIXED_SETS {
        let (old, new) = (
            prev.elements.get(set).unwrap_or(&empty),
            next.elements.get(set).unwrap_or(&empty),
        );
        let gone: Vec<&String> = old.difference(new).collect();
        element_command(&mut out, "delete", set, &gone);
    }
    for (_, set, _) in FIXED_SETS {
        let (old, new) = (
            prev.elements.get(set).unwrap_or(&empty),
            next.elements.get(set).unwrap_or(&empty),
        );
        let added: Vec<&String> = new.difference(old).collect();
        element_command(&mut out, "add", set, &added);
    }
    let gone: Vec<&String> = prev
        .chains
        .keys()
        .filter(|c| !next.chains.contains_key(*c))
        .collect();
    for c in &gone {
        let _ = writeln!(out, "flush chain ip {TABLE} {c}");
    }
    for c in &gone {
        let _ = writeln!(out, "delete chain ip {TABLE} {c}");
    }
    for set in prev.sets.keys() {
        if !next.sets.contains_key(set) {
            let _ = writeln!(out, "delete set ip {TABLE} {set}");
        }
    }
    out
}

/// Whether shoal's table is in the kernel.
async fn present() -> bool {
    tokio::process::Command::new("nft")
        .args(["list", "chain", "ip", TABLE, "services"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .await
        .is_ok_and(|s| s.success())
}

/// Runs `nft -f -` with `script`.
async fn apply(script: &str) -> Result<(), String> {
    use tokio::io::AsyncWriteExt;
    let mut child = tokio::process::Command::new("nft")
        .args(["-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| format!("running nft: {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(script.as_bytes())
            .await
            .map_err(|e| format!("writing to nft: {e}"))?;
    }
    let out = child
        .wait_with_output()
        .await
        .map_err(|e| format!("nft: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
    }
}

/// Checks that nftables can be programmed here (the `nft` binary, and
/// CAP_NET_ADMIN), by writing an empty table; and lets the node forward
/// NodePort traffic to pods on other nodes.
pub(crate) async fn available(pod_cidr: Ipv4Cidr, cluster_dns: Ipv4Addr) -> Result<(), String> {
    let node = NodeView {
        name: "",
        pod_cidr,
        cluster_dns,
    };
    apply(&script(
        None,
        &ruleset_of(&[], &node, &mut Parts::default()),
    ))
    .await?;
    if let Err(e) = std::fs::write("/proc/sys/net/ipv4/ip_forward", "1") {
        tracing::warn!("enabling IPv4 forwarding (NodePorts to pods on other nodes): {e}");
    }
    Ok(())
}

/// Removes shoal's table (the agent is stopping).
pub(crate) async fn remove() {
    if let Err(e) = apply(&format!("add table ip {TABLE}\ndelete table ip {TABLE}\n")).await {
        tracing::warn!("removing the service rules: {e}");
    }
}

/// Keeps the node's service rules in step with the cluster's Services and
/// EndpointSlices until the task is dropped.
pub(crate) async fn run(shared: Arc<Shared>, pod_cidr: Ipv4Cidr, cluster_dns: Ipv4Addr) {
    let (services, svc_changes) = crate::watch::reflect::<Service>(&shared.client);
    let (slices, slice_changes) = crate::watch::reflect::<EndpointSlice>(&shared.client);
    let mut changes = futures::stream::select(svc_changes, slice_changes);
    let node = NodeView {
        name: &shared.config.node_name,
        pod_cidr,
        cluster_dns,
    };
    // What the kernel has (as this agent wrote it).
    let mut last: Option<Table> = None;
    let mut parts = Parts::default();
    let mut nft = crate::nft::Nft::default();
    // The next table is not written before the last one's time has passed
    // a few times over (a fill of thousands of pods rewrites it often).
    let mut next_at = tokio::time::Instant::now();
    loop {
        // A change, then whatever else arrives within a few milliseconds:
        // one write for a burst of changes. Once a minute the agent checks
        // that its table is still there, and writes it whole if it is not.
        tokio::select! {
            _ = changes.next() => {}
            () = tokio::time::sleep(Duration::from_secs(60)) => {
                if !present().await {
                    last = None;
                }
            }
        }
        crate::watch::settle(&mut changes, Duration::from_millis(2)).await;
        tokio::time::sleep_until(next_at).await;
        let (svcs, slcs) = (services.state(), slices.state());
        let fronts = frontends(&svcs, &slcs, &node);
        shared
            .service_guard
            .set(service_view(&fronts, &shared.node_addrs));
        let next = ruleset_of(&fronts, &node, &mut parts);
        let text = script(last.as_ref(), &next);
        if text.is_empty() {
            continue;
        }
        let started = tokio::time::Instant::now();
        let mut written = nft.apply(&text).await;
        if written.is_err() && last.is_some() {
            // The table is not what this agent left: replace it whole.
            written = nft.apply(&script(None, &next)).await;
        }
        match written {
            Ok(()) => last = Some(next),
            Err(e) => {
                tracing::warn!("programming the service rules: {e}");
                last = None;
            }
        }
        let took = started.elapsed();
        next_at = started + (took * 3).clamp(Duration::from_millis(5), Duration::from_secs(1));
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

    fn node() -> NodeView<'static> {
        NodeView {
            name: "n1",
            pod_cidr: "10.244.0.0/18".parse().unwrap(),
            cluster_dns: Ipv4Addr::new(10, 96, 0, 10),
        }
    }

    fn web() -> Arc<Service> {
        svc(json!({"metadata": {"name": "web", "namespace": "default"},
            "spec": {"type": "NodePort", "clusterIP": "10.96.0.5", "clusterIPs": ["10.96.0.5"],
                "ports": [{"name": "http", "port": 80, "targetPort": "http", "nodePort": 30080, "protocol": "TCP"},
                          {"name": "dns", "port": 53, "protocol": "UDP"}]}}))
    }

    fn web_slice() -> Arc<EndpointSlice> {
        slice(
            json!({"metadata": {"name": "web-x", "namespace": "default", "labels": {"kubernetes.io/service-name": "web"}},
            "addressType": "IPv4",
            "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}, {"name": "dns", "port": 5353, "protocol": "UDP"}],
            "endpoints": [
                {"addresses": ["10.244.0.7"], "conditions": {"ready": true}, "nodeName": "n1"},
                {"addresses": ["10.244.64.9"], "conditions": {"ready": true}, "nodeName": "n2"},
                {"addresses": ["10.244.64.10"], "conditions": {"ready": false}, "nodeName": "n2"},
                {"addresses": ["10.244.64.11"], "conditions": {"ready": true, "terminating": true}, "nodeName": "n2"}]}),
        )
    }

    #[test]
    fn ports_resolve_named_targets_to_ready_endpoints() {
        let f = frontends(&[web()], &[web_slice()], &node());
        assert_eq!(f.len(), 2);
        assert_eq!(f[0].proto, "tcp");
        assert_eq!(
            f[0].internal,
            [
                (Ipv4Addr::new(10, 244, 0, 7), 8080),
                (Ipv4Addr::new(10, 244, 64, 9), 8080)
            ],
            "neither the unready nor the terminating endpoint"
        );
        assert_eq!(f[0].node_port, Some(30080));
        assert_eq!(f[1].proto, "udp");
        assert_eq!(f[1].internal[0].1, 5353);
    }

    #[test]
    fn local_traffic_policies_keep_to_the_node() {
        let mut s = (*web()).clone();
        let spec = s.spec.as_mut().unwrap();
        spec.external_traffic_policy = Some("Local".into());
        spec.internal_traffic_policy = Some("Local".into());
        let f = frontends(&[Arc::new(s)], &[web_slice()], &node());
        assert_eq!(f[0].internal, [(Ipv4Addr::new(10, 244, 0, 7), 8080)]);
        assert_eq!(f[0].external, [(Ipv4Addr::new(10, 244, 0, 7), 8080)]);
        assert!(f[0].external_local);
    }

    #[test]
    fn client_ip_affinity_remembers_each_clients_endpoint() {
        let mut s = (*web()).clone();
        let spec = s.spec.as_mut().unwrap();
        spec.session_affinity = Some("ClientIP".into());
        spec.session_affinity_config =
            Some(serde_json::from_value(json!({"clientIP": {"timeoutSeconds": 60}})).unwrap());
        let text = script(None, &ruleset(&[Arc::new(s)], &[web_slice()], &node()));
        if let Ok(path) = std::env::var("SHOAL_DUMP_RULESET") {
            std::fs::write(format!("{path}.affinity"), &text).unwrap();
        }
        assert!(
            text.contains("flags dynamic,timeout; timeout 60s;"),
            "{text}"
        );
        assert!(text.contains("-affinity { ip saddr }"), "{text}");
        assert!(text.contains("ip saddr @svc-"), "{text}");
        let plain = script(None, &ruleset(&[web()], &[web_slice()], &node()));
        assert!(!plain.contains("affinity"), "{plain}");
    }

    #[test]
    fn the_table_maps_cluster_ips_and_node_ports_and_refuses_empty_services() {
        let empty = svc(
            json!({"metadata": {"name": "empty", "namespace": "default"},
            "spec": {"clusterIP": "10.96.0.9", "ports": [{"port": 80}]}}),
        );
        let table = ruleset(&[web(), empty], &[web_slice()], &node());
        let text = script(None, &table);
        assert!(text.starts_with("add table ip shoal\ndelete table ip shoal\n"));
        assert!(text.contains("10.96.0.5 . tcp . 80 : goto svc-"), "{text}");
        assert!(text.contains("10.96.0.5 . udp . 53 : goto svc-"), "{text}");
        assert!(text.contains("tcp . 30080 : goto external-"), "{text}");
        assert!(text.contains("dnat to 10.244.64.9:8080"), "{text}");
        assert!(text.contains("numgen random mod 2"), "{text}");
        assert!(
            text.contains("add element ip shoal no-endpoints { 10.96.0.9 . tcp . 80 }"),
            "{text}"
        );
        assert!(
            !text.contains("10.244.64.10"),
            "unready endpoints get nothing"
        );
        if let Ok(path) = std::env::var("SHOAL_DUMP_RULESET") {
            std::fs::write(path, &text).unwrap();
        }
        let none = script(None, &ruleset(&[], &[], &node()));
        assert!(!none.contains("element"), "{none}");
    }

    #[test]
    fn load_balancer_addresses_are_served_like_node_ports() {
        let mut s = (*web()).clone();
        s.spec.as_mut().unwrap().type_ = Some("LoadBalancer".into());
        s.status = Some(
            serde_json::from_value(json!({"loadBalancer": {"ingress": [{"ip": "192.0.2.10"}]}}))
                .unwrap(),
        );
        let text = script(None, &ruleset(&[Arc::new(s)], &[web_slice()], &node()));
        assert!(
            text.contains("192.0.2.10 . tcp . 80 : goto external-"),
            "{text}"
        );
        assert!(text.contains("tcp . 30080 : goto external-"), "{text}");
    }

    #[test]
    fn services_that_lead_to_the_node_are_known() {
        let to_node = slice(
            json!({"metadata": {"name": "web-x", "namespace": "default", "labels": {"kubernetes.io/service-name": "web"}},
            "addressType": "IPv4",
            "ports": [{"name": "http", "port": 22, "protocol": "TCP"}],
            "endpoints": [{"addresses": ["192.0.2.1"], "conditions": {"ready": true}}]}),
        );
        let api = svc(
            json!({"metadata": {"name": "kubernetes", "namespace": "default"},
            "spec": {"clusterIP": "10.96.0.1", "ports": [{"name": "https", "port": 443}]}}),
        );
        let api_slice = slice(
            json!({"metadata": {"name": "kubernetes", "namespace": "default", "labels": {"kubernetes.io/service-name": "kubernetes"}},
            "addressType": "IPv4",
            "ports": [{"name": "https", "port": 6443, "protocol": "TCP"}],
            "endpoints": [{"addresses": ["192.0.2.1"], "conditions": {"ready": true}}]}),
        );
        let node_addrs = ["192.0.2.1".parse().unwrap()];
        let view = service_view(
            &frontends(&[web(), api], &[to_node, api_slice], &node()),
            &node_addrs,
        );
        assert_eq!(
            view.to_node,
            HashSet::from([(Ipv4Addr::new(10, 96, 0, 5), 80, false)])
        );
        let guard = ServiceGuard::default();
        guard.set(view);
        assert_eq!(
            guard.endpoints("10.96.0.1:443".parse().unwrap(), false),
            Some(vec!["192.0.2.1:6443".parse().unwrap()])
        );
        use shoal_runtime_wasm::ConnectPolicy;
        assert!(!guard.may_reach("10.96.0.5:80".parse().unwrap(), false));
        assert!(guard.may_reach("10.96.0.1:443".parse().unwrap(), false));
        let elsewhere = service_view(&frontends(&[web()], &[web_slice()], &node()), &node_addrs);
        assert!(elsewhere.to_node.is_empty());
    }

    #[test]
    fn a_later_table_deletes_only_what_it_lacks() {
        let mut s = (*web()).clone();
        s.spec.as_mut().unwrap().session_affinity = Some("ClientIP".into());
        let s = Arc::new(s);
        let before = ruleset(std::slice::from_ref(&s), &[web_slice()], &node());
        let mut fewer = (*web_slice()).clone();
        fewer.endpoints.remove(1);
        let after = ruleset(&[s], &[Arc::new(fewer)], &node());
        let text = script(Some(&before), &after);
        assert!(!text.contains("table"), "only what changed: {text}");
        let deleted: Vec<&str> = text.lines().filter(|l| l.starts_with("delete ")).collect();
        // The gone endpoint's chains and affinity sets (ClusterIP and
        // NodePort for TCP, ClusterIP for UDP), nothing else.
        assert_eq!(deleted.len(), 6, "{deleted:?}");
        assert!(deleted.iter().all(
            |l| !after.chains.contains_key(l.rsplit(' ').next().unwrap())
                && !after.sets.contains_key(l.rsplit(' ').next().unwrap())
        ));
        // The Service chains that chose among them are rewritten; the
        // remaining endpoint's chains are not touched.
        assert_eq!(text.matches("flush chain").count(), 3 + 3, "{text}");
        assert_eq!(script(Some(&after), &after), "");
        let mut other = (*web()).clone();
        other.metadata.name = Some("other".into());
        let spec = other.spec.as_mut().unwrap();
        spec.cluster_ip = Some("10.96.0.6".into());
        spec.cluster_ips = Some(vec!["10.96.0.6".into()]);
        spec.ports.as_mut().unwrap().truncate(1);
        spec.ports.as_mut().unwrap()[0].node_port = None;
        spec.type_ = None;
        let more = ruleset(&[web(), Arc::new(other)], &[web_slice()], &node());
        let added = script(Some(&ruleset(&[web()], &[web_slice()], &node())), &more);
        assert!(
            added.contains("add element ip shoal no-endpoints { 10.96.0.6 . tcp . 80 }"),
            "{added}"
        );
        assert_eq!(added.lines().count(), 1, "{added}");
        if let Ok(path) = std::env::var("SHOAL_DUMP_RULESET") {
            std::fs::write(format!("{path}.1"), script(None, &before)).unwrap();
            std::fs::write(format!("{path}.2"), &text).unwrap();
        }
    }

    #[test]
    fn parts_of_unchanged_services_are_kept_from_one_table_to_the_next() {
        let n = node();
        let mut parts = Parts::default();
        let fronts = frontends(&[web()], &[web_slice()], &n);
        let first = ruleset_of(&fronts, &n, &mut parts);
        let kept: Vec<*const Table> = parts.0.values().map(Arc::as_ptr).collect();
        assert_eq!(kept.len(), fronts.len());
        let again = ruleset_of(&fronts, &n, &mut parts);
        assert_eq!(first, again);
        assert!(parts.0.values().all(|p| kept.contains(&Arc::as_ptr(p))));
        assert_eq!(again, ruleset(&[web()], &[web_slice()], &n));
        assert!(script(Some(&first), &again).is_empty());
        // A Service gone takes its parts with it.
        let empty = ruleset_of(&[], &n, &mut parts);
        assert!(parts.0.is_empty());
        assert!(empty.chains.is_empty());
    }
}

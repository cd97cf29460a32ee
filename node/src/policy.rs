//! NetworkPolicy for Wasm pods, decided per connection in the agent: the
//! runtime asks before a guest connects or sends (egress), before a
//! guest's listener hands it a connection, and the agent before it serves
//! an HTTP pod's request (ingress). No CNI plugin is involved: a guest's
//! sockets are the agent's.
//!
//! [`Index`] (pure) holds the policies, every pod's address, namespace,
//! labels and named ports, and the namespaces' labels; `allows` is the
//! decision. [`run`] keeps the index in step with the cluster: it watches
//! NetworkPolicies always, and pods and namespaces only once a policy
//! exists, so a cluster without policies pays nothing.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use k8s_openapi::api::networking::v1::{NetworkPolicy, NetworkPolicyPeer, NetworkPolicyPort};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::runtime::reflector::Store;
use serde_json::Value;

use crate::agent::Shared;

/// A pod as policies see it.
#[derive(Debug, Clone, Default)]
pub(crate) struct PodView {
    pub namespace: String,
    pub labels: BTreeMap<String, String>,
    /// Named container ports: (name, port, protocol).
    pub ports: Vec<(String, u16, String)>,
}

impl PodView {
    /// The view of a pod's JSON.
    pub(crate) fn of(pod: &Value) -> Self {
        let labels = pod
            .pointer("/metadata/labels")
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                    .collect()
            })
            .unwrap_or_default();
        let mut ports = Vec::new();
        for c in pod
            .pointer("/spec/containers")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            for p in c
                .get("ports")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let (Some(name), Some(port)) = (
                    p.get("name").and_then(Value::as_str),
                    p.get("containerPort").and_then(Value::as_u64),
                ) else {
                    continue;
                };
                let proto = p.get("protocol").and_then(Value::as_str).unwrap_or("TCP");
                if let Ok(port) = u16::try_from(port) {
                    ports.push((name.to_string(), port, proto.to_string()));
                }
            }
        }
        Self {
            namespace: pod
                .pointer("/metadata/namespace")
                .and_then(Value::as_str)
                .unwrap_or("default")
                .to_string(),
            labels,
            ports,
        }
    }
}

/// Which way a connection goes, seen from the pod a policy selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Direction {
    Ingress,
    Egress,
}

/// What the policies decide from.
#[derive(Default)]
pub(crate) struct Index {
    policies: Vec<Arc<NetworkPolicy>>,
    pods: HashMap<IpAddr, PodView>,
    namespaces: HashMap<String, BTreeMap<String, String>>,
}

/// Whether `selector` selects `labels` (an empty selector selects all).
fn selects(selector: &LabelSelector, labels: &BTreeMap<String, String>) -> bool {
    let exact = selector
        .match_labels
        .iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v));
    exact
        && selector.match_expressions.iter().flatten().all(|e| {
            let values = e.values.as_deref().unwrap_or_default();
            let value = labels.get(&e.key);
            match e.operator.as_str() {
                "In" => value.is_some_and(|v| values.contains(v)),
                "NotIn" => value.is_none_or(|v| !values.contains(v)),
                "Exists" => value.is_some(),
                "DoesNotExist" => value.is_none(),
                _ => false,
            }
        })
}

/// Whether `cidr` (IPv4 `a.b.c.d/n`) holds `ip`.
fn cidr_holds(cidr: &str, ip: IpAddr) -> bool {
    let (IpAddr::V4(ip), Some((net, len))) = (ip, cidr.split_once('/')) else {
        return false;
    };
    let (Ok(net), Ok(len)) = (net.parse::<Ipv4Addr>(), len.parse::<u32>()) else {
        return false;
    };
    if len > 32 {
        return false;
    }
    let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
    u32::from(ip) & mask == u32::from(net) & mask
}

impl Index {
    /// The index of `policies` over `pods` and `namespaces`.
    pub(crate) fn build(
        policies: Vec<Arc<NetworkPolicy>>,
        pods: &[Arc<Pod>],
        namespaces: &[Arc<Namespace>],
    ) -> Self {
        let mut by_ip = HashMap::new();
        for p in pods {
            let Ok(json) = serde_json::to_value(&**p) else {
                continue;
            };
            let Some(ip) = json
                .pointer("/status/podIP")
                .and_then(Value::as_str)
                .and_then(|ip| ip.parse().ok())
            else {
                continue;
            };
            // A host-network pod's address is its node's, not its own.
            if json.pointer("/spec/hostNetwork") == Some(&Value::Bool(true)) {
                continue;
            }
            by_ip.insert(ip, PodView::of(&json));
        }
        let namespaces = namespaces
            .iter()
            .filter_map(|n| {
                Some((
                    n.metadata.name.clone()?,
                    n.metadata.labels.clone().unwrap_or_default(),
                ))
            })
            .collect();
        Self {
            policies,
            pods: by_ip,
            namespaces,
        }
    }

    /// Whether `subject` may have a connection in `dir` with the peer at
    /// `peer` on `port` (the subject's own port for ingress, the peer's for
    /// egress) over `protocol` (`TCP`, `UDP`).
    pub(crate) fn allows(
        &self,
        subject: &PodView,
        dir: Direction,
        peer: IpAddr,
        port: u16,
        protocol: &str,
    ) -> bool {
        let mut isolated = false;
        for policy in &self.policies {
            let Some(spec) = &policy.spec else { continue };
            if policy.metadata.namespace.as_deref() != Some(subject.namespace.as_str())
                || !selects(&spec.pod_selector, &subject.labels)
            {
                continue;
            }
            let types = spec.policy_types.clone().unwrap_or_else(|| {
                let mut t = vec!["Ingress".to_string()];
                if spec.egress.is_some() {
                    t.push("Egress".into());
                }
                t
            });
            let wanted = match dir {
                Direction::Ingress => "Ingress",
                Direction::Egress => "Egress",
            };
            if !types.iter().any(|t| t == wanted) {
                continue;
            }
            isolated = true;
            let policy_ns = subject.namespace.as_str();
            // Named ports are the receiving pod's.
            let named = match dir {
                Direction::Ingress => Some(subject),
                Direction::Egress => self.pods.get(&peer),
            };
            let allowed = match dir {
                Direction::Ingress => spec.ingress.iter().flatten().any(|r| {
                    self.peers_match(r.from.as_deref(), policy_ns, peer)
                        && ports_match(r.ports.as_deref(), port, protocol, named)
                }),
                Direction::Egress => spec.egress.iter().flatten().any(|r| {
                    self.peers_match(r.to.as_deref(), policy_ns, peer)
                        && ports_match(r.ports.as_deref(), port, protocol, named)
                }),
            };
            if allowed {
                return true;
            }
        }
        !isolated
    }

    fn peers_match(
        &self,
        peers: Option<&[NetworkPolicyPeer]>,
        policy_ns: &str,
        ip: IpAddr,
    ) -> bool {
        let Some(peers) = peers.filter(|p| !p.is_empty()) else {
            return true;
        };
        peers.iter().any(|p| {
            if let Some(block) = &p.ip_block {
                return cidr_holds(&block.cidr, ip)
                    && !block.except.iter().flatten().any(|e| cidr_holds(e, ip));
            }
            let Some(pod) = self.pods.get(&ip) else {
                return false;
            };
            let ns_ok = match &p.namespace_selector {
                None => pod.namespace == policy_ns,
                Some(sel) => self
                    .namespaces
                    .get(&pod.namespace)
                    .is_some_and(|labels| selects(sel, labels)),
            };
            ns_ok
                && p.pod_selector
                    .as_ref()
                    .is_none_or(|sel| selects(sel, &pod.labels))
        })
    }
}

fn ports_match(
    ports: Option<&[NetworkPolicyPort]>,
    port: u16,
    protocol: &str,
    named: Option<&PodView>,
) -> bool {
    let Some(ports) = ports.filter(|p| !p.is_empty()) else {
        return true;
    };
    ports.iter().any(|p| {
        if p.protocol.as_deref().unwrap_or("TCP") != protocol {
            return false;
        }
        match &p.port {
            None => true,
            Some(IntOrString::Int(n)) => {
                let end = p.end_port.unwrap_or(*n);
                i32::from(port) >= *n && i32::from(port) <= end
            }
            Some(IntOrString::String(name)) => named.is_some_and(|pod| {
                pod.ports
                    .iter()
                    .any(|(n, p, proto)| n == name && *p == port && proto == protocol)
            }),
        }
    })
}

/// The policies as they are now; `None` while the cluster has none.
#[derive(Default)]
pub(crate) struct Policies(RwLock<Option<Arc<Index>>>);

impl Policies {
    fn set(&self, index: Option<Index>) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = index.map(Arc::new);
    }

    /// The current index, if any policy exists.
    pub(crate) fn current(&self) -> Option<Arc<Index>> {
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// A pod's say on its guests' connections: the Services that lead to the
/// node, then the NetworkPolicies that select the pod.
pub(crate) struct PodGuard {
    pub shared: Arc<Shared>,
    pub subject: PodView,
    /// The pod's address, where the node routes pod IPs.
    pub pod_ip: Option<IpAddr>,
    /// Ports the guest listens on (TCP), for ingress decisions on accept.
    pub listening: Mutex<Vec<u16>>,
}

impl PodGuard {
    /// Whether an incoming connection from `from` to the pod's `port` is
    /// allowed.
    pub(crate) fn admits(&self, from: SocketAddr, port: u16, protocol: &str) -> bool {
        self.shared.policies.current().is_none_or(|index| {
            index.allows(&self.subject, Direction::Ingress, from.ip(), port, protocol)
        })
    }
}

impl shoal_runtime_wasm::ConnectPolicy for PodGuard {
    fn may_reach(&self, addr: SocketAddr, udp: bool) -> bool {
        if !self.shared.service_guard.may_reach(addr, udp) {
            return false;
        }
        let Some(index) = self.shared.policies.current() else {
            return true;
        };
        let protocol = if udp { "UDP" } else { "TCP" };
        // A Service's address stands for its endpoints: every one must be
        // allowed, as the kernel picks among them later.
        let targets = self
            .shared
            .service_guard
            .endpoints(addr, udp)
            .unwrap_or_else(|| vec![addr]);
        targets
            .iter()
            .all(|t| index.allows(&self.subject, Direction::Egress, t.ip(), t.port(), protocol))
    }

    fn listening(&self, at: SocketAddr) {
        let mut ports = self.listening.lock().unwrap_or_else(|e| e.into_inner());
        if !ports.contains(&at.port()) {
            ports.push(at.port());
        }
    }

    fn source_for(&self, remote: SocketAddr) -> Option<IpAddr> {
        let IpAddr::V4(v4) = remote.ip() else {
            return None;
        };
        let inside = self
            .shared
            .pod_cidrs
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .any(|c| c.contains(v4))
            || self.shared.service_guard.endpoints(remote, false).is_some();
        self.pod_ip.filter(|_| inside)
    }

    fn may_accept(&self, from: SocketAddr) -> bool {
        let ports = self
            .listening
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        // The runtime does not say which listener accepted: any of the
        // guest's ports the peer may reach will do.
        ports.iter().any(|p| self.admits(from, *p, "TCP"))
    }
}

/// Keeps `shared.policies` in step with the cluster until the task is
/// dropped; policy changes reach new connections within moments.
pub(crate) async fn run(shared: Arc<Shared>) {
    let (policies, mut policy_changes) = crate::watch::reflect::<NetworkPolicy>(&shared.client);
    // Pods and namespaces, watched from the first policy on, and a wake-up
    // for their changes.
    let mut others: Option<(Store<Pod>, Store<Namespace>)> = None;
    let woken = Arc::new(tokio::sync::Notify::new());
    let mut _watching: Option<tokio_util::task::AbortOnDropHandle<()>> = None;
    loop {
        tokio::select! {
            Some(()) = policy_changes.next() => {}
            () = woken.notified() => {}
            else => return,
        }
        let settle = tokio::time::sleep(Duration::from_millis(20));
        tokio::pin!(settle);
        loop {
            tokio::select! {
                _ = policy_changes.next() => {}
                () = woken.notified() => {}
                () = &mut settle => break,
            }
        }
        let current = policies.state();
        if current.is_empty() {
            shared.policies.set(None);
            continue;
        }
        let (pods, namespaces) = match &others {
            Some(stores) => stores,
            None => {
                let (pods, pod_changes) = crate::watch::reflect::<Pod>(&shared.client);
                let (namespaces, ns_changes) = crate::watch::reflect::<Namespace>(&shared.client);
                let notify = woken.clone();
                _watching = Some(tokio_util::task::AbortOnDropHandle::new(tokio::spawn(
                    async move {
                        let mut s = futures::stream::select(pod_changes, ns_changes);
                        while s.next().await.is_some() {
                            notify.notify_one();
                        }
                    },
                )));
                // Until they are listed, decide from the policies alone.
                let _ = tokio::time::timeout(Duration::from_secs(5), async {
                    let _ = pods.wait_until_ready().await;
                    let _ = namespaces.wait_until_ready().await;
                })
                .await;
                others.insert((pods, namespaces))
            }
        };
        shared.policies.set(Some(Index::build(
            current,
            &pods.state(),
            &namespaces.state(),
        )));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn policy(v: serde_json::Value) -> Arc<NetworkPolicy> {
        Arc::new(serde_json::from_value(v).unwrap())
    }

    fn pod(name: &str, ns: &str, ip: &str, labels: serde_json::Value) -> Arc<Pod> {
        Arc::new(
            serde_json::from_value(json!({"metadata": {"name": name, "namespace": ns, "labels": labels},
                "spec": {"containers": [{"name": "c", "ports": [{"name": "http", "containerPort": 8080}]}]},
                "status": {"podIP": ip}}))
            .unwrap(),
        )
    }

    fn ns(name: &str, labels: serde_json::Value) -> Arc<Namespace> {
        Arc::new(
            serde_json::from_value(json!({"metadata": {"name": name, "labels": labels}})).unwrap(),
        )
    }

    fn view(ns: &str, labels: serde_json::Value) -> PodView {
        PodView::of(&json!({"metadata": {"namespace": ns, "labels": labels},
            "spec": {"containers": [{"name": "c", "ports": [{"name": "http", "containerPort": 8080}]}]}}))
    }

    fn index(policies: Vec<Arc<NetworkPolicy>>) -> Index {
        Index::build(
            policies,
            &[
                pod("web", "shop", "10.244.0.2", json!({"app": "web"})),
                pod("client", "shop", "10.244.1.3", json!({"app": "client"})),
                pod("other", "shop", "10.244.1.4", json!({"app": "other"})),
                pod("mon", "monitoring", "10.244.2.5", json!({"app": "prom"})),
            ],
            &[
                ns("shop", json!({})),
                ns("monitoring", json!({"team": "ops"})),
            ],
        )
    }

    const IN: Direction = Direction::Ingress;
    const OUT: Direction = Direction::Egress;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn without_policies_everything_is_allowed() {
        let i = index(vec![]);
        assert!(i.allows(
            &view("shop", json!({"app": "web"})),
            IN,
            ip("1.2.3.4"),
            80,
            "TCP"
        ));
    }

    #[test]
    fn ingress_by_pod_namespace_and_port() {
        let i = index(vec![policy(
            json!({"metadata": {"name": "p", "namespace": "shop"},
            "spec": {"podSelector": {"matchLabels": {"app": "web"}},
                "ingress": [
                    {"from": [{"podSelector": {"matchLabels": {"app": "client"}}}], "ports": [{"port": "http"}]},
                    {"from": [{"namespaceSelector": {"matchLabels": {"team": "ops"}}}]}]}}),
        )]);
        let web = view("shop", json!({"app": "web"}));
        assert!(
            i.allows(&web, IN, ip("10.244.1.3"), 8080, "TCP"),
            "client, named port"
        );
        assert!(
            !i.allows(&web, IN, ip("10.244.1.3"), 9090, "TCP"),
            "client, another port"
        );
        assert!(
            !i.allows(&web, IN, ip("10.244.1.3"), 8080, "UDP"),
            "client, UDP"
        );
        assert!(
            !i.allows(&web, IN, ip("10.244.1.4"), 8080, "TCP"),
            "another pod"
        );
        assert!(
            i.allows(&web, IN, ip("10.244.2.5"), 9090, "TCP"),
            "the ops namespace"
        );
        assert!(
            !i.allows(&web, IN, ip("192.0.2.1"), 8080, "TCP"),
            "not a pod"
        );
        assert!(
            i.allows(&web, OUT, ip("192.0.2.1"), 443, "TCP"),
            "egress is not isolated"
        );
        let other = view("shop", json!({"app": "other"}));
        assert!(
            i.allows(&other, IN, ip("192.0.2.1"), 8080, "TCP"),
            "not selected"
        );
    }

    #[test]
    fn egress_by_ip_block_with_exceptions() {
        let i = index(vec![policy(
            json!({"metadata": {"name": "p", "namespace": "shop"},
            "spec": {"podSelector": {}, "policyTypes": ["Egress"],
                "egress": [{"to": [{"ipBlock": {"cidr": "10.244.0.0/16", "except": ["10.244.2.0/24"]}}],
                    "ports": [{"port": 8000, "endPort": 8100, "protocol": "TCP"}]}]}}),
        )]);
        let client = view("shop", json!({"app": "client"}));
        assert!(i.allows(&client, OUT, ip("10.244.0.2"), 8080, "TCP"));
        assert!(
            !i.allows(&client, OUT, ip("10.244.0.2"), 8200, "TCP"),
            "past endPort"
        );
        assert!(
            !i.allows(&client, OUT, ip("10.244.2.5"), 8080, "TCP"),
            "an exception"
        );
        assert!(
            !i.allows(&client, OUT, ip("8.8.8.8"), 8080, "TCP"),
            "outside the block"
        );
        assert!(
            i.allows(&client, IN, ip("8.8.8.8"), 8080, "TCP"),
            "ingress is not isolated"
        );
    }

    #[test]
    fn a_deny_all_policy_isolates_without_rules() {
        let i = index(vec![policy(
            json!({"metadata": {"name": "deny", "namespace": "shop"},
            "spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}}),
        )]);
        let web = view("shop", json!({"app": "web"}));
        assert!(!i.allows(&web, IN, ip("10.244.1.3"), 8080, "TCP"));
        assert!(!i.allows(&web, OUT, ip("10.244.1.3"), 8080, "TCP"));
        let mon = view("monitoring", json!({"app": "prom"}));
        assert!(
            i.allows(&mon, OUT, ip("10.244.1.3"), 8080, "TCP"),
            "another namespace"
        );
    }

    #[test]
    fn selectors_with_expressions() {
        let sel: LabelSelector = serde_json::from_value(json!({"matchExpressions": [
            {"key": "app", "operator": "In", "values": ["web", "api"]},
            {"key": "canary", "operator": "DoesNotExist"}]}))
        .unwrap();
        let labels =
            |v: serde_json::Value| serde_json::from_value::<BTreeMap<String, String>>(v).unwrap();
        assert!(selects(&sel, &labels(json!({"app": "api"}))));
        assert!(!selects(
            &sel,
            &labels(json!({"app": "api", "canary": "1"}))
        ));
        assert!(!selects(&sel, &labels(json!({"app": "db"}))));
        assert!(cidr_holds("0.0.0.0/0", ip("8.8.8.8")));
        assert!(!cidr_holds("10.0.0.0/8", ip("11.0.0.1")));
        assert!(!cidr_holds("bad", ip("11.0.0.1")));
    }
}

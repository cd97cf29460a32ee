//! What network a guest may reach, enforced on every `wasi:sockets` address
//! and every outgoing `wasi:http` request.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use wasmtime_wasi::sockets::SocketAddrUse;
use wasmtime_wasi_http::{Error as HttpError, RequestOptions, WasiBody, WasiHttpHooks};

/// Resolves host names for a pod's guests: the cluster's names with the
/// pod's search path, and the node's resolver for the rest.
pub trait NameResolver: Send + Sync {
    /// The addresses of `name`, or why there are none.
    fn resolve(
        &self,
        name: &str,
    ) -> std::pin::Pin<Box<dyn Future<Output = Result<Vec<IpAddr>, String>> + Send>>;
}

/// A guest's resolver; without one, names go to the node's resolver.
#[derive(Clone)]
pub struct Resolver(pub Arc<dyn NameResolver>);

impl std::fmt::Debug for Resolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Resolver")
    }
}

/// The node's further say on where a guest may connect: a Service whose
/// endpoints are the node itself is the node, though its address is not.
pub trait ConnectPolicy: Send + Sync {
    /// Whether a guest may connect (TCP) or send (UDP) to `addr`.
    fn may_reach(&self, addr: SocketAddr, udp: bool) -> bool;

    /// The guest listens (TCP) at `at`.
    fn listening(&self, _at: SocketAddr) {}

    /// Whether a guest's listener may hand it a connection from `from`.
    fn may_accept(&self, _from: SocketAddr) -> bool {
        true
    }

    /// The address a guest's connection to `remote` should come from
    /// (the pod's own, inside the cluster), if not the node's.
    fn source_for(&self, _remote: SocketAddr) -> Option<IpAddr> {
        None
    }
}

/// A guest's [`ConnectPolicy`].
#[derive(Clone)]
pub struct Policy(pub Arc<dyn ConnectPolicy>);

impl std::fmt::Debug for Policy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Policy")
    }
}

/// The network a container is granted.
#[derive(Debug, Clone, Default)]
pub enum NetworkAccess {
    /// No sockets and no outgoing HTTP.
    #[default]
    None,
    /// Outgoing connections to anything but the node itself: loopback,
    /// link-local and the node's own addresses are refused. The guest may
    /// listen on its pod's IP (where the node routes pod IPs; a bind to a
    /// port of any address is one of the pod's IP), never on an address
    /// of the node.
    Outbound {
        /// The node's own addresses.
        node_addrs: Arc<[IpAddr]>,
        /// The pod's own address, which the guest may bind and listen on.
        pod_ip: Option<IpAddr>,
        /// How the guest's host names resolve.
        resolver: Option<Resolver>,
        /// The node's further say on connections.
        policy: Option<Policy>,
    },
    /// The node's network as the agent has it (`hostNetwork: true`).
    Host,
}

impl NetworkAccess {
    /// Whether the guest may use the network at all (sockets, name lookups).
    pub(crate) fn any(&self) -> bool {
        !matches!(self, NetworkAccess::None)
    }

    /// Whether the guest may use `addr` for `usage`.
    pub fn allows(&self, addr: SocketAddr, usage: SocketAddrUse) -> bool {
        let (node_addrs, pod_ip, policy) = match self {
            NetworkAccess::None => return false,
            NetworkAccess::Host => return true,
            NetworkAccess::Outbound {
                node_addrs,
                pod_ip,
                policy,
                ..
            } => (node_addrs, *pod_ip, policy),
        };
        let policy_allows = |udp| policy.as_ref().is_none_or(|p| p.0.may_reach(addr, udp));
        let ip = canonical(addr.ip());
        let own = pod_ip.is_some_and(|p| canonical(p) == ip);
        match usage {
            // The implicit bind of an outgoing socket (any address, a port
            // the kernel picks), or any port of the pod's own address.
            SocketAddrUse::TcpBind | SocketAddrUse::UdpBind => {
                (ip.is_unspecified() && addr.port() == 0) || own
            }
            // Listening is on the pod's address; the node decides who may
            // connect to it.
            SocketAddrUse::TcpListen => {
                if own && let Some(p) = policy {
                    p.0.listening(addr);
                }
                own
            }
            SocketAddrUse::TcpAccept => {
                pod_ip.is_some() && policy.as_ref().is_none_or(|p| p.0.may_accept(addr))
            }
            SocketAddrUse::TcpConnect => remote_allowed(ip, node_addrs) && policy_allows(false),
            SocketAddrUse::UdpSend => remote_allowed(ip, node_addrs) && policy_allows(true),
            SocketAddrUse::UdpReceive => remote_allowed(ip, node_addrs),
        }
    }
}

/// An IPv4-mapped IPv6 address as the IPv4 address it is.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

fn remote_allowed(ip: IpAddr, node_addrs: &[IpAddr]) -> bool {
    let special = match ip {
        IpAddr::V4(v4) => {
            v4.is_loopback() || v4.is_link_local() || v4.is_unspecified() || v4.is_broadcast()
        }
        IpAddr::V6(v6) => v6.is_loopback() || v6.is_unspecified() || v6.is_unicast_link_local(),
    };
    !special && !node_addrs.iter().any(|n| canonical(*n) == ip)
}

/// `wasi:http` hooks that check an outgoing request's destination against
/// the container's [`NetworkAccess`] before it is sent.
pub(crate) struct HttpHooks {
    pub network: NetworkAccess,
}

type SendResult = wasmtime_wasi_http::Result<(
    http::Response<WasiBody>,
    Box<dyn Future<Output = Result<(), HttpError>> + Send>,
)>;

impl WasiHttpHooks for HttpHooks {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        fut: Box<dyn Future<Output = Result<(), HttpError>> + Send>,
    ) -> Box<dyn Future<Output = SendResult> + Send> {
        drop(fut);
        let network = self.network.clone();
        Box::new(async move {
            use http_body_util::BodyExt;
            let checked = check_destination(&network, request.uri()).await?;
            // Plain HTTP goes to the address that was checked, not to a
            // second lookup that could answer differently (DNS rebinding),
            // from the pod's address inside the cluster; the Host header
            // keeps the name. HTTPS keeps the name for
            // certificate verification, which a rebound address fails.
            if let Some(addr) = checked
                && request.uri().scheme() == Some(&http::uri::Scheme::HTTP)
            {
                let source = match &network {
                    NetworkAccess::Outbound {
                        policy: Some(p), ..
                    } => p.0.source_for(addr),
                    _ => None,
                };
                return crate::sender::send_plain(request, options, addr, source).await;
            }
            let (res, io) = wasmtime_wasi_http::default_send_request(request, options).await?;
            Ok((
                res.map(BodyExt::boxed_unsync),
                Box::new(io) as Box<dyn Future<Output = _> + Send>,
            ))
        })
    }
}

/// Refuses a request whose host resolves to an address the container may
/// not reach. Every resolved address must be allowed, so a name cannot
/// smuggle a forbidden address in among permitted ones. Returns the address
/// to connect to when the access is checked per address.
async fn check_destination(
    network: &NetworkAccess,
    uri: &http::Uri,
) -> Result<Option<SocketAddr>, HttpError> {
    let resolver = match network {
        NetworkAccess::None => return Err(HttpError::HttpRequestDenied),
        NetworkAccess::Host => return Ok(None),
        NetworkAccess::Outbound { resolver, .. } => resolver,
    };
    let host = uri.host().ok_or(HttpError::HttpRequestUriInvalid)?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let tls = uri.scheme() == Some(&http::uri::Scheme::HTTPS);
    let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
    let dns_error = |e: String| HttpError::DnsError {
        rcode: Some(e),
        info_code: None,
    };
    let addrs: Vec<SocketAddr> = match (host.parse::<IpAddr>(), resolver) {
        (Ok(ip), _) => vec![SocketAddr::new(ip, port)],
        (Err(_), Some(r)) => {
            r.0.resolve(host)
                .await
                .map_err(dns_error)?
                .into_iter()
                .map(|ip| SocketAddr::new(ip, port))
                .collect()
        }
        (Err(_), None) => tokio::net::lookup_host((host, port))
            .await
            .map_err(|e| dns_error(e.to_string()))?
            .collect(),
    };
    if addrs.is_empty() {
        return Err(HttpError::DestinationNotFound);
    }
    if addrs
        .iter()
        .all(|a| network.allows(*a, SocketAddrUse::TcpConnect))
    {
        Ok(addrs.first().copied())
    } else {
        Err(HttpError::DestinationIpProhibited)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outbound() -> NetworkAccess {
        NetworkAccess::Outbound {
            pod_ip: None,
            resolver: None,
            policy: None,
            node_addrs: vec!["192.168.1.10".parse().unwrap()].into(),
        }
    }

    #[test]
    fn outbound_refuses_the_node_itself() {
        let n = outbound();
        let connect = |a: &str| n.allows(a.parse().unwrap(), SocketAddrUse::TcpConnect);
        assert!(connect("93.184.216.34:80"));
        assert!(connect("10.96.0.1:443"));
        assert!(!connect("127.0.0.1:6443"));
        assert!(!connect("[::1]:6443"));
        assert!(!connect("[::ffff:127.0.0.1]:6443"));
        assert!(!connect("192.168.1.10:10250"));
        assert!(!connect("[::ffff:192.168.1.10]:10250"));
        assert!(!connect("169.254.169.254:80"));
        assert!(!connect("0.0.0.0:22"));
        assert!(n.allows("0.0.0.0:0".parse().unwrap(), SocketAddrUse::TcpBind));
        assert!(!n.allows("0.0.0.0:8080".parse().unwrap(), SocketAddrUse::TcpBind));
        assert!(!n.allows("0.0.0.0:0".parse().unwrap(), SocketAddrUse::TcpListen));
    }

    #[test]
    fn a_pod_listens_on_its_own_address_only() {
        let n = NetworkAccess::Outbound {
            resolver: None,
            policy: None,
            node_addrs: vec!["192.168.1.10".parse().unwrap()].into(),
            pod_ip: Some("10.244.0.7".parse().unwrap()),
        };
        let may = |a: &str, u| n.allows(a.parse().unwrap(), u);
        assert!(may("10.244.0.7:8080", SocketAddrUse::TcpBind));
        assert!(may("10.244.0.7:8080", SocketAddrUse::TcpListen));
        assert!(may("10.244.0.7:5353", SocketAddrUse::UdpBind));
        assert!(may("10.244.1.9:40000", SocketAddrUse::TcpAccept));
        assert!(
            !may("10.244.0.8:8080", SocketAddrUse::TcpBind),
            "another pod's address"
        );
        assert!(
            !may("192.168.1.10:8080", SocketAddrUse::TcpBind),
            "the node's address"
        );
        assert!(!may("0.0.0.0:8080", SocketAddrUse::TcpBind));
        assert!(
            may("10.244.1.9:80", SocketAddrUse::TcpConnect),
            "another pod"
        );
    }

    struct NoSsh;

    impl ConnectPolicy for NoSsh {
        fn may_reach(&self, addr: SocketAddr, _udp: bool) -> bool {
            addr.port() != 22
        }
    }

    #[test]
    fn the_node_has_a_further_say() {
        let n = NetworkAccess::Outbound {
            node_addrs: Arc::new([]),
            pod_ip: None,
            resolver: None,
            policy: Some(Policy(Arc::new(NoSsh))),
        };
        assert!(n.allows("10.96.0.5:80".parse().unwrap(), SocketAddrUse::TcpConnect));
        assert!(!n.allows("10.96.0.5:22".parse().unwrap(), SocketAddrUse::TcpConnect));
        assert!(!n.allows("10.96.0.5:22".parse().unwrap(), SocketAddrUse::UdpSend));
    }

    #[test]
    fn none_and_host() {
        let a = "127.0.0.1:80".parse().unwrap();
        assert!(!NetworkAccess::None.allows(a, SocketAddrUse::TcpConnect));
        assert!(NetworkAccess::Host.allows(a, SocketAddrUse::TcpConnect));
    }
}

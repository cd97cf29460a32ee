//! `wasi:sockets` as a pod has them, where wasmtime-wasi's own calls would
//! use the node's addresses. These replace items in the component linker
//! and then run wasmtime-wasi's own:
//!
//! - `tcp-socket.start-connect`: an unbound socket would leave from
//!   whichever node address the route picks, so the peer (and its
//!   NetworkPolicy) would see the node, not the pod. When the node names a
//!   source for the remote ([`crate::ConnectPolicy::source_for`], the pod's
//!   IP inside the cluster), the socket is bound to it first.
//! - `tcp-socket.start-bind` and `udp-socket.start-bind`: a server binding
//!   a port of the unspecified address (`0.0.0.0:8080`, as most do) gets
//!   that port of the pod's IP, as a container's would be reached there;
//!   a bind to port 0 (an outgoing socket) is left alone.

use std::net::{IpAddr, SocketAddr};

use wasmtime::component::{Linker, Resource};
use wasmtime_wasi::p2::bindings::sockets::network::{ErrorCode, IpSocketAddress};
use wasmtime_wasi::p2::bindings::sockets::tcp::HostTcpSocket;
use wasmtime_wasi::p2::bindings::sockets::udp::HostUdpSocket;
use wasmtime_wasi::p2::{Network, SocketError, TcpSocket, UdpSocket};
use wasmtime_wasi::sockets::WasiSocketsView;

use crate::host::ComponentHost;
use crate::network::NetworkAccess;

/// The interfaces as the linker names them (wasmtime-wasi's version;
/// guests importing an older 0.2 version are matched to it).
const TCP: &str = "wasi:sockets/tcp@0.2.12";
const UDP: &str = "wasi:sockets/udp@0.2.12";

/// Where a bind of `local` lands: a port of the unspecified address is
/// that port of the pod's IP (of the same family).
fn bind_address(network: &NetworkAccess, local: SocketAddr) -> SocketAddr {
    let NetworkAccess::Outbound {
        pod_ip: Some(pod), ..
    } = network
    else {
        return local;
    };
    if local.ip().is_unspecified() && local.port() != 0 && pod.is_ipv4() == local.is_ipv4() {
        SocketAddr::new(*pod, local.port())
    } else {
        local
    }
}

/// The address a connection to `remote` should leave from, if the node
/// names one.
fn source(network: &NetworkAccess, remote: SocketAddr) -> Option<IpAddr> {
    match network {
        NetworkAccess::Outbound {
            policy: Some(p), ..
        } => p.0.source_for(remote),
        _ => None,
    }
}

/// An error for the guest, or the trap it stands for.
fn for_guest(e: SocketError) -> wasmtime::Result<ErrorCode> {
    e.downcast()
}

/// Binds the unbound socket `this` to `(src, 0)`. A failure leaves the
/// socket as it was: the connection then leaves from the node's address.
async fn bind_source(host: &mut ComponentHost, this: u32, network: u32, src: IpAddr) {
    let mut view = host.sockets();
    if HostTcpSocket::local_address(&mut view, Resource::new_borrow(this)).is_ok() {
        return;
    }
    let local: IpSocketAddress = SocketAddr::new(src, 0).into();
    let bound = HostTcpSocket::start_bind(
        &mut view,
        Resource::new_borrow(this),
        Resource::new_borrow(network),
        local,
    )
    .await;
    if bound.is_ok() {
        let _ = HostTcpSocket::finish_bind(&mut view, Resource::new_borrow(this));
    }
}

/// Replaces wasmtime-wasi's `start-connect` and `start-bind` in `linker`
/// with the pod's.
pub(crate) fn add_to_linker(linker: &mut Linker<ComponentHost>) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    let mut i = linker.instance(UDP)?;
    i.func_wrap_async(
        "[method]udp-socket.start-bind",
        |mut store,
         (this, network, local): (Resource<UdpSocket>, Resource<Network>, IpSocketAddress)| {
            Box::new(async move {
                let host = store.data_mut();
                let local = bind_address(&host.hooks.network, local.into()).into();
                let mut view = host.sockets();
                let r = match HostUdpSocket::start_bind(&mut view, this, network, local).await {
                    Ok(()) => Ok(()),
                    Err(e) => Err(for_guest(e)?),
                };
                Ok((r,))
            })
        },
    )?;
    let mut i = linker.instance(TCP)?;
    i.func_wrap_async(
        "[method]tcp-socket.start-bind",
        |mut store,
         (this, network, local): (Resource<TcpSocket>, Resource<Network>, IpSocketAddress)| {
            Box::new(async move {
                let host = store.data_mut();
                let local = bind_address(&host.hooks.network, local.into()).into();
                let mut view = host.sockets();
                let r = match HostTcpSocket::start_bind(&mut view, this, network, local).await {
                    Ok(()) => Ok(()),
                    Err(e) => Err(for_guest(e)?),
                };
                Ok((r,))
            })
        },
    )?;
    i.func_wrap_async(
        "[method]tcp-socket.start-connect",
        |mut store,
         (this, network, remote): (Resource<TcpSocket>, Resource<Network>, IpSocketAddress)| {
            Box::new(async move {
                let host = store.data_mut();
                let to: SocketAddr = remote.into();
                if let Some(src) = source(&host.hooks.network, to)
                    && src.is_ipv4() == to.is_ipv4()
                {
                    bind_source(host, this.rep(), network.rep(), src).await;
                }
                let mut view = host.sockets();
                let r = match HostTcpSocket::start_connect(&mut view, this, network, remote) {
                    Ok(()) => Ok(()),
                    Err(e) => Err(for_guest(e)?),
                };
                Ok((r,))
            })
        },
    )?;
    linker.allow_shadowing(false);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn servers_binding_any_address_get_the_pods() {
        let pod: std::net::IpAddr = "10.244.0.7".parse().unwrap();
        let network = NetworkAccess::Outbound {
            node_addrs: Vec::new().into(),
            pod_ip: Some(pod),
            resolver: None,
            policy: None,
        };
        let at = |s: &str| s.parse::<SocketAddr>().unwrap();
        assert_eq!(
            bind_address(&network, at("0.0.0.0:8080")),
            at("10.244.0.7:8080")
        );
        // Outgoing sockets, other families and explicit addresses stay.
        assert_eq!(bind_address(&network, at("0.0.0.0:0")), at("0.0.0.0:0"));
        assert_eq!(bind_address(&network, at("[::]:8080")), at("[::]:8080"));
        assert_eq!(
            bind_address(&network, at("10.244.0.7:53")),
            at("10.244.0.7:53")
        );
        assert_eq!(
            bind_address(&NetworkAccess::Host, at("0.0.0.0:80")),
            at("0.0.0.0:80")
        );
    }
}

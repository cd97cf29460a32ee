//! `wasi:sockets/tcp` connections from the pod's own address: an unbound
//! socket would leave from whichever node address the route picks, so the
//! peer (and its NetworkPolicy) would see the node, not the pod. This
//! replaces `start-connect` in the component linker: when the node names a
//! source for the remote ([`crate::ConnectPolicy::source_for`], the pod's IP
//! inside the cluster), an unbound socket is bound to it first, then
//! wasmtime-wasi's own connect runs.

use std::net::{IpAddr, SocketAddr};

use wasmtime::component::{Linker, Resource};
use wasmtime_wasi::p2::bindings::sockets::network::{ErrorCode, IpSocketAddress};
use wasmtime_wasi::p2::bindings::sockets::tcp::HostTcpSocket;
use wasmtime_wasi::p2::{Network, SocketError, TcpSocket};
use wasmtime_wasi::sockets::WasiSocketsView;

use crate::host::ComponentHost;
use crate::network::NetworkAccess;

/// The interface as the linker names it (wasmtime-wasi's version; guests
/// importing an older 0.2 version are matched to it).
const INTERFACE: &str = "wasi:sockets/tcp@0.2.12";

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

/// Replaces wasmtime-wasi's `tcp-socket.start-connect` in `linker` with one
/// that binds the pod's source address first.
pub(crate) fn add_to_linker(linker: &mut Linker<ComponentHost>) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    let mut i = linker.instance(INTERFACE)?;
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

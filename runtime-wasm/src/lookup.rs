//! `wasi:sockets/ip-name-lookup` through the pod's resolver: wasmtime-wasi's
//! own implementation asks the node's resolver, which knows neither the
//! cluster's names nor the pod's search path. This one replaces it in the
//! component linker and asks the [`crate::NameResolver`] the pod was given
//! (the node's resolver when it has none), as `wasi:http` requests do.

use std::net::IpAddr;

use futures::FutureExt;
use wasmtime::component::{Linker, Resource, ResourceType};
use wasmtime_wasi::p2::bindings::sockets::network::{ErrorCode, IpAddress};
use wasmtime_wasi::p2::{Network, Pollable};

use crate::host::ComponentHost;
use crate::network::NetworkAccess;

/// The interface as the linker names it (wasmtime-wasi's version; guests
/// importing an older 0.2 version are matched to it).
const INTERFACE: &str = "wasi:sockets/ip-name-lookup@0.2.12";

/// One lookup: the resolution running, then its addresses.
pub(crate) struct Lookup {
    pending: Option<tokio::task::JoinHandle<Result<Vec<IpAddr>, ErrorCode>>>,
    result: Option<Result<std::vec::IntoIter<IpAddr>, ErrorCode>>,
}

impl Lookup {
    /// Takes the result if the resolution has finished.
    fn poll_done(&mut self) {
        if let Some(handle) = &mut self.pending
            && handle.is_finished()
        {
            let done = handle.now_or_never().map(|r| {
                r.unwrap_or(Err(ErrorCode::PermanentResolverFailure))
                    .map(Vec::into_iter)
            });
            self.result = done;
            self.pending = None;
        }
    }
}

#[async_trait::async_trait]
impl Pollable for Lookup {
    async fn ready(&mut self) {
        if let Some(handle) = self.pending.take() {
            let r = handle
                .await
                .unwrap_or(Err(ErrorCode::PermanentResolverFailure));
            self.result = Some(r.map(Vec::into_iter));
        }
    }
}

/// The addresses of `name` for a guest with `network`.
async fn resolve(network: NetworkAccess, name: String) -> Result<Vec<IpAddr>, ErrorCode> {
    if let Ok(ip) = name
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>()
    {
        return Ok(vec![ip]);
    }
    if name.is_empty() || name.len() > 253 || name.contains(['/', ' ', '\0']) {
        return Err(ErrorCode::InvalidArgument);
    }
    let found = match &network {
        NetworkAccess::None => return Err(ErrorCode::PermanentResolverFailure),
        NetworkAccess::Outbound {
            resolver: Some(r), ..
        } => r.0.resolve(&name).await.unwrap_or_default(),
        _ => tokio::net::lookup_host((name.as_str(), 0))
            .await
            .map(|a| a.map(|a| a.ip()).collect())
            .unwrap_or_default(),
    };
    if found.is_empty() {
        Err(ErrorCode::NameUnresolvable)
    } else {
        Ok(found)
    }
}

fn address(ip: IpAddr) -> IpAddress {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, d] = v4.octets();
            IpAddress::Ipv4((a, b, c, d))
        }
        IpAddr::V6(v6) => {
            let s = v6.segments();
            IpAddress::Ipv6((s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7]))
        }
    }
}

/// Replaces wasmtime-wasi's `ip-name-lookup` in `linker` with lookups
/// through each instance's [`NetworkAccess`].
pub(crate) fn add_to_linker(linker: &mut Linker<ComponentHost>) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    let mut i = linker.instance(INTERFACE)?;
    i.resource(
        "resolve-address-stream",
        ResourceType::host::<Lookup>(),
        |mut store, rep| {
            store
                .data_mut()
                .table
                .delete(Resource::<Lookup>::new_own(rep))?;
            Ok(())
        },
    )?;
    i.func_wrap(
        "resolve-addresses",
        |mut store, (network, name): (Resource<Network>, String)| {
            let host = store.data_mut();
            host.table.get(&network)?;
            let access = host.hooks.network.clone();
            let lookup = Lookup {
                pending: Some(tokio::spawn(resolve(access, name))),
                result: None,
            };
            let r: Result<Resource<Lookup>, ErrorCode> = Ok(host.table.push(lookup)?);
            Ok((r,))
        },
    )?;
    i.func_wrap(
        "[method]resolve-address-stream.resolve-next-address",
        |mut store, (this,): (Resource<Lookup>,)| {
            let lookup = store.data_mut().table.get_mut(&this)?;
            lookup.poll_done();
            let r: Result<Option<IpAddress>, ErrorCode> = match &mut lookup.result {
                None => Err(ErrorCode::WouldBlock),
                Some(Ok(addrs)) => Ok(addrs.next().map(address)),
                Some(Err(e)) => Err(*e),
            };
            Ok((r,))
        },
    )?;
    i.func_wrap(
        "[method]resolve-address-stream.subscribe",
        |mut store, (this,): (Resource<Lookup>,)| {
            let pollable = wasmtime_wasi::p2::subscribe(&mut store.data_mut().table, this)?;
            Ok((pollable,))
        },
    )?;
    linker.allow_shadowing(false);
    Ok(())
}

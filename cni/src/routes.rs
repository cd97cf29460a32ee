//! The data path between pods: routes in the node's kernel, kept with
//! rtnetlink (host-gw, as flannel's backend of that name).
//!
//! - The node's own pod CIDR is a `local` route on `lo`: every address of
//!   it is the node's, so the agent binds a pod's listeners on the pod's
//!   IP without an address, interface or veth per pod (10,000 pods cost one
//!   route).
//! - Every other node's pod CIDR is routed through that node's address,
//!   which must be on the same link (the nodes' network, as host-gw needs).
//!
//! Routes carry shoal's protocol number, so a restarted agent finds and
//! replaces its own and leaves everyone else's alone. The decision is
//! [`plan`] (pure); [`RouteTable`] only talks to the kernel.

use std::collections::HashSet;
use std::net::Ipv4Addr;

use futures::TryStreamExt;
use rtnetlink::packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use rtnetlink::{Handle, RouteMessageBuilder};

use crate::Ipv4Cidr;

/// The protocol number on shoal's routes (`ip route` shows `proto 83`).
const PROTOCOL: u8 = 83;

/// The kernel's table of local addresses.
const TABLE_LOCAL: u8 = 255;

/// A route shoal keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PodRoute {
    /// This node's pod CIDR: every address of it is local.
    Local(Ipv4Cidr),
    /// Another node's pod CIDR, through that node's address.
    Via(Ipv4Cidr, Ipv4Addr),
}

/// What to change in the kernel to go from the routes there to those wanted.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Changes {
    /// Routes to add (or replace).
    pub add: Vec<PodRoute>,
    /// Routes of shoal's to remove.
    pub remove: Vec<PodRoute>,
}

/// The changes that turn `current` (shoal's routes in the kernel) into
/// `wanted`.
pub fn plan(current: &[PodRoute], wanted: &[PodRoute]) -> Changes {
    let have: HashSet<&PodRoute> = current.iter().collect();
    let want: HashSet<&PodRoute> = wanted.iter().collect();
    let mut add: Vec<PodRoute> = wanted
        .iter()
        .filter(|r| !have.contains(r))
        .copied()
        .collect();
    let mut remove: Vec<PodRoute> = current
        .iter()
        .filter(|r| !want.contains(r))
        .copied()
        .collect();
    add.dedup();
    remove.dedup();
    Changes { add, remove }
}

/// Errors talking to the kernel's routing tables.
#[derive(Debug, thiserror::Error)]
pub enum RouteError {
    /// The netlink socket could not be opened.
    #[error("opening a netlink socket: {0}")]
    Open(std::io::Error),
    /// The kernel refused a request (no CAP_NET_ADMIN, say).
    #[error("{0}")]
    Netlink(#[from] rtnetlink::Error),
    /// The loopback interface is missing.
    #[error("no loopback interface")]
    NoLoopback,
}

/// The node's routing tables, through rtnetlink.
#[derive(Clone)]
pub struct RouteTable {
    handle: Handle,
    loopback: u32,
}

impl RouteTable {
    /// Opens a netlink connection (its task runs on the current runtime).
    pub async fn open() -> Result<Self, RouteError> {
        let (connection, handle, _) = rtnetlink::new_connection().map_err(RouteError::Open)?;
        tokio::spawn(connection);
        let loopback = handle
            .link()
            .get()
            .match_name("lo".into())
            .execute()
            .try_next()
            .await?
            .map(|l| l.header.index)
            .ok_or(RouteError::NoLoopback)?;
        Ok(Self { handle, loopback })
    }

    /// shoal's routes in the kernel now.
    pub async fn current(&self) -> Result<Vec<PodRoute>, RouteError> {
        let mut routes = self
            .handle
            .route()
            .get(RouteMessageBuilder::<Ipv4Addr>::new().build())
            .execute();
        let mut out = Vec::new();
        while let Some(m) = routes.try_next().await? {
            if m.header.protocol == RouteProtocol::Other(PROTOCOL)
                && let Some(r) = parse(&m)
            {
                out.push(r);
            }
        }
        Ok(out)
    }

    /// Makes shoal's routes in the kernel `wanted`, and no others.
    pub async fn sync(&self, wanted: &[PodRoute]) -> Result<Changes, RouteError> {
        let changes = plan(&self.current().await?, wanted);
        for r in &changes.remove {
            self.handle.route().del(self.message(r)).execute().await?;
        }
        for r in &changes.add {
            self.handle
                .route()
                .add(self.message(r))
                .replace()
                .execute()
                .await?;
        }
        Ok(changes)
    }

    fn message(&self, route: &PodRoute) -> RouteMessage {
        let builder =
            RouteMessageBuilder::<Ipv4Addr>::new().protocol(RouteProtocol::Other(PROTOCOL));
        match route {
            PodRoute::Local(cidr) => builder
                .destination_prefix(cidr.network(), cidr.prefix())
                .table_id(u32::from(TABLE_LOCAL))
                .kind(RouteType::Local)
                .scope(RouteScope::Host)
                .output_interface(self.loopback)
                .build(),
            PodRoute::Via(cidr, gateway) => builder
                .destination_prefix(cidr.network(), cidr.prefix())
                .gateway(*gateway)
                .build(),
        }
    }
}

/// The route a kernel message describes, if it is one shoal makes.
fn parse(m: &RouteMessage) -> Option<PodRoute> {
    let dest = m.attributes.iter().find_map(|a| match a {
        RouteAttribute::Destination(RouteAddress::Inet(ip)) => Some(*ip),
        _ => None,
    })?;
    let cidr = Ipv4Cidr::new(dest, m.header.destination_prefix_length).ok()?;
    let gateway = m.attributes.iter().find_map(|a| match a {
        RouteAttribute::Gateway(RouteAddress::Inet(ip)) => Some(*ip),
        _ => None,
    });
    match (m.header.kind, gateway) {
        (RouteType::Local, _) if m.header.table == TABLE_LOCAL => Some(PodRoute::Local(cidr)),
        (RouteType::Unicast, Some(g)) if m.header.table == RouteHeader::RT_TABLE_MAIN => {
            Some(PodRoute::Via(cidr, g))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cidr(s: &str) -> Ipv4Cidr {
        s.parse().unwrap()
    }

    #[test]
    fn a_plan_adds_what_is_missing_and_removes_what_is_stale() {
        let local = PodRoute::Local(cidr("10.244.0.0/18"));
        let b = PodRoute::Via(cidr("10.244.64.0/18"), Ipv4Addr::new(10, 0, 0, 2));
        let c = PodRoute::Via(cidr("10.244.128.0/18"), Ipv4Addr::new(10, 0, 0, 3));
        let c_moved = PodRoute::Via(cidr("10.244.128.0/18"), Ipv4Addr::new(10, 0, 0, 9));
        let p = plan(&[local, b, c], &[local, b, c_moved]);
        assert_eq!(p.add, [c_moved]);
        assert_eq!(p.remove, [c]);
        assert_eq!(plan(&[local, b], &[local, b]), Changes::default());
        assert_eq!(plan(&[local, b], &[]).remove, [local, b]);
    }
}

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use crate::{Error, Ipv4Cidr, Result};

/// Hands out one pod CIDR per node from the cluster CIDR.
#[derive(Debug, Clone)]
pub struct NodeCidrAllocator {
    cluster: Ipv4Cidr,
    node_prefix: u8,
    used: BTreeSet<u64>,
}

impl NodeCidrAllocator {
    /// An allocator of `/node_prefix` subnets of `cluster`.
    pub fn new(cluster: Ipv4Cidr, node_prefix: u8) -> Result<Self> {
        if node_prefix < cluster.prefix() || node_prefix > 30 {
            return Err(Error::InvalidCidr(format!(
                "{cluster} split into /{node_prefix}"
            )));
        }
        Ok(Self {
            cluster,
            node_prefix,
            used: BTreeSet::new(),
        })
    }

    /// Marks a subnet as taken (one recorded on an existing node).
    pub fn reserve(&mut self, cidr: Ipv4Cidr) {
        if cidr.prefix() == self.node_prefix
            && let Some(off) = self.cluster.offset_of(cidr.network())
        {
            self.used.insert(off >> (32 - u32::from(self.node_prefix)));
        }
    }

    /// The lowest free subnet.
    pub fn allocate(&mut self) -> Result<Ipv4Cidr> {
        let count = 1u64 << (self.node_prefix - self.cluster.prefix());
        let index = (0..count)
            .find(|i| !self.used.contains(i))
            .ok_or_else(|| Error::Exhausted(self.cluster.to_string()))?;
        self.used.insert(index);
        Ok(self
            .cluster
            .subnet(self.node_prefix, index)
            .expect("index below count"))
    }
}

/// Address management for the pods of one node.
///
/// The network address, the first host address (the node's gateway) and the
/// broadcast address are never handed out.
#[derive(Debug, Clone)]
pub struct PodIpam {
    cidr: Ipv4Cidr,
    used: BTreeSet<u64>,
    next: u64,
}

impl PodIpam {
    /// Address management over `cidr`.
    pub fn new(cidr: Ipv4Cidr) -> Self {
        Self {
            cidr,
            used: BTreeSet::new(),
            next: 2,
        }
    }

    /// The node's pod CIDR.
    pub fn cidr(&self) -> Ipv4Cidr {
        self.cidr
    }

    /// The gateway address of the node's pod network.
    pub fn gateway(&self) -> Ipv4Addr {
        self.cidr.nth(1).unwrap_or(self.cidr.network())
    }

    /// Marks an address as in use, e.g. one recorded on a pod that survived
    /// an agent restart. Returns false when the address is outside the CIDR.
    pub fn reserve(&mut self, ip: Ipv4Addr) -> bool {
        match self.cidr.offset_of(ip) {
            Some(off) => {
                self.used.insert(off);
                true
            }
            None => false,
        }
    }

    /// A free address, handed out round-robin so a released address is not
    /// reused at once.
    pub fn allocate(&mut self) -> Result<Ipv4Addr> {
        let size = self.cidr.size();
        if size < 4 {
            return Err(Error::Exhausted(self.cidr.to_string()));
        }
        let hosts = size - 3;
        for step in 0..hosts {
            let off = 2 + (self.next - 2 + step) % hosts;
            if !self.used.contains(&off) {
                self.used.insert(off);
                self.next = off + 1;
                return Ok(self.cidr.nth(off).expect("offset inside cidr"));
            }
        }
        Err(Error::Exhausted(self.cidr.to_string()))
    }

    /// Returns an address to the pool.
    pub fn release(&mut self, ip: Ipv4Addr) {
        if let Some(off) = self.cidr.offset_of(ip) {
            self.used.remove(&off);
        }
    }

    /// How many addresses are in use.
    pub fn in_use(&self) -> usize {
        self.used.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_cidrs_are_distinct_and_reservable() {
        let mut a = NodeCidrAllocator::new("10.244.0.0/16".parse().unwrap(), 24).unwrap();
        a.reserve("10.244.0.0/24".parse().unwrap());
        assert_eq!(a.allocate().unwrap().to_string(), "10.244.1.0/24");
        assert_eq!(a.allocate().unwrap().to_string(), "10.244.2.0/24");
        let mut tiny = NodeCidrAllocator::new("10.0.0.0/24".parse().unwrap(), 24).unwrap();
        tiny.allocate().unwrap();
        assert!(matches!(tiny.allocate(), Err(Error::Exhausted(_))));
    }

    #[test]
    fn pod_ips_skip_reserved_and_exhaust() {
        let mut ipam = PodIpam::new("10.0.0.0/29".parse().unwrap());
        assert!(ipam.reserve("10.0.0.3".parse().unwrap()));
        assert!(!ipam.reserve("10.0.1.3".parse().unwrap()));
        let got: Vec<String> = (0..4)
            .map(|_| ipam.allocate().unwrap().to_string())
            .collect();
        assert_eq!(got, ["10.0.0.2", "10.0.0.4", "10.0.0.5", "10.0.0.6"]);
        assert!(ipam.allocate().is_err());
        ipam.release("10.0.0.4".parse().unwrap());
        assert_eq!(ipam.allocate().unwrap().to_string(), "10.0.0.4");
        assert_eq!(ipam.in_use(), 5);
    }
}

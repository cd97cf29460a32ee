//! Pod networking for shoal.
//!
//! Every node owns one pod CIDR carved out of the cluster CIDR, and every pod
//! on the node gets one address out of its node's CIDR. [`routes`] makes
//! those addresses real: the node's CIDR is local to it, and the other
//! nodes' CIDRs are routed through their addresses.
//!
//! ```
//! use shoal_cni::{Ipv4Cidr, PodIpam, NodeCidrAllocator};
//! let mut nodes = NodeCidrAllocator::new("10.244.0.0/16".parse().unwrap(), 24).unwrap();
//! let cidr = nodes.allocate().unwrap();
//! assert_eq!(cidr.to_string(), "10.244.0.0/24");
//! let mut ipam = PodIpam::new(cidr);
//! assert_eq!(ipam.allocate().unwrap().to_string(), "10.244.0.2");
//! ```

mod cidr;
mod ipam;
pub mod routes;

pub use cidr::Ipv4Cidr;
pub use ipam::{NodeCidrAllocator, PodIpam};
pub use routes::{PodRoute, RouteTable};

/// Errors of address management.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    /// The text is not an IPv4 CIDR such as `10.244.0.0/16`.
    #[error("invalid CIDR {0:?}")]
    InvalidCidr(String),
    /// Every address (or subnet) of the range is in use.
    #[error("no free address left in {0}")]
    Exhausted(String),
}

/// Result with this crate's error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

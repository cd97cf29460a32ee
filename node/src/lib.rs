//! shoal's node agent: registers a Node, runs the pods bound to it as Wasm
//! instances, reports their status, serves their logs and proxies Services.
//!
//! The agent speaks to the control plane only through the Kubernetes API
//! (kube-rs), so it can join any conformant apiserver.

mod admit;
mod agent;
mod attach;
pub mod bootstrap;
pub mod client;
mod containers;
mod dns;
mod env;
mod events;
mod exec;
mod hooks;
mod images;
mod kubelet_api;
pub mod logs;
mod nft;
mod node_conditions;
mod pod_status;
mod podnet;
mod pods;
mod policy;
pub mod pressure;
mod probes;
mod proxy;
mod ratelimit;
mod runtime_class;
pub mod servers;
mod services;
mod stats;
mod status;
mod streaming;
pub mod toolbox;
mod tty;
mod volumes;
mod watch;

pub use agent::{Agent, AgentConfig, allocatable_memory};
pub use dns::DnsConfig;
pub use podnet::PodNetwork;
pub use shoal_cni::Ipv4Cidr;

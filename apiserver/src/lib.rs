//! shoal's control plane: the Kubernetes API over a Raft-replicated store,
//! with the scheduler and controllers.
//!
//! ```no_run
//! # async fn f() -> Result<(), Box<dyn std::error::Error>> {
//! use shoal_apiserver::server::{Authorization, Membership, Server, ServerConfig};
//! let server = Server::start(ServerConfig {
//!     data_dir: "/tmp/shoal".into(),
//!     listen: "127.0.0.1:6443".parse()?,
//!     hosts: vec![],
//!     cluster_cidr: "10.244.0.0/14".into(),
//!     node_cidr_mask: 18,
//!     allocate_node_cidrs: true,
//!     event_ttl: std::time::Duration::from_secs(3600),
//!     node_grace: std::time::Duration::from_secs(40),
//!     tolerations: Default::default(),
//!     cluster_dns: "10.96.0.10".parse()?,
//!     authorization: Authorization::Rbac,
//!     audit: None,
//!     encryption_config: None,
//!     membership: Membership::Alone,
//! }).await?;
//! println!("API at https://{}", server.addr);
//! # Ok(()) }
//! ```
//!
//! The crates beside this one, lowest first: `shoal-wire` (wire formats),
//! `shoal-pki` (certificates), `shoal-store` (openraft on redb),
//! `shoal-machinery` (what every object has), `shoal-rbac` (access
//! decisions), `shoal-registry` (kinds and the object service), `shoal-scheduler`, `shoal-controllers` and
//! `shoal-http` (the API front). This crate wires them into a [`server`].

mod api_endpoints;
pub mod backup;
pub mod encryption;
mod leader_election;
pub mod peers;
pub mod server;

pub use shoal_http::KUBE_VERSION;
pub use shoal_http::audit;
pub use shoal_rbac as rbac;

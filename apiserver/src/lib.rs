//! shoal's control plane: the Kubernetes API over a Raft-replicated store,
//! with the scheduler and controllers.
//!
//! ```no_run
//! # async fn f() -> Result<(), Box<dyn std::error::Error>> {
//! use shoal_apiserver::server::{Server, ServerConfig};
//! let server = Server::start(ServerConfig {
//!     data_dir: "/tmp/shoal".into(),
//!     listen: "127.0.0.1:6443".parse()?,
//!     hosts: vec![],
//!     cluster_cidr: "10.244.0.0/14".into(),
//!     node_cidr_mask: 18,
//!     event_ttl: std::time::Duration::from_secs(3600),
//!     node_grace: std::time::Duration::from_secs(40),
//!     cluster_dns: "10.96.0.10".parse()?,
//! }).await?;
//! println!("API at https://{}", server.addr);
//! # Ok(()) }
//! ```
pub mod aggregator;
pub mod apply;
pub mod authn;
pub mod controllers;
pub mod cron;
pub mod custom;
pub mod defaults;
pub mod error;
pub mod gotypes;
pub mod http;
pub mod merge_keys;
pub mod meta;
pub mod names;
pub mod objects;
pub mod patch;
pub mod pki;
pub mod protobuf;
pub mod resources;
pub mod scheduler;
pub mod selectors;
pub mod server;
pub mod store;
pub mod validation;

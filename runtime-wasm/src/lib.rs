//! shoal's WebAssembly runtime: wasmtime engines in the node's process (one
//! for commands, one for HTTP instances), running pods' containers as
//! in-process instances.
//!
//! A container's image resolves to a module in the [`ImageStore`]; the
//! runtime compiles it once per digest into a [`Workload`], recognising from
//! the binary itself whether it is a `wasi:http/proxy` component (served one
//! instance per request), a WASI preview 2 command component or a WASI
//! preview 1 command module (both long-running, with captured output).
//!
//! With the feature `shim`, [`shim`] puts the same runtime behind
//! containerd's shim v2 task API (`containerd-shim-shoal-v1`).
//!
//! ```no_run
//! # async fn f() -> Result<(), shoal_runtime_wasm::Error> {
//! use shoal_runtime_wasm::{Runtime, RuntimeConfig};
//! let rt = Runtime::new(RuntimeConfig::new("/tmp/shoal"))?;
//! let workload = rt.load("hello-http:v1").await?;
//! assert!(workload.is_http());
//! # Ok(()) }
//! ```

mod command;
mod cpu;
mod engine;
mod error;
mod gc;
mod host;
mod http;
mod images;
mod lookup;
mod memory;
mod network;
mod output;
mod pools;
mod registry;
mod sender;
#[cfg(feature = "shim")]
pub mod shim;
mod sockets;
mod stdio;
mod usage;
mod workload;

pub use command::{CommandSpec, Exit, Preopen};
pub use engine::{Runtime, RuntimeConfig};
pub use error::{Error, Result};
pub use gc::GcReport;
pub use http::{HttpBody, HttpResponse};
pub use images::{ImageConfig, ImageRef, ImageStore};
pub use network::{ConnectPolicy, NameResolver, NetworkAccess, Policy, Resolver};
pub use output::OutputSink;
pub use pools::ensure_map_count;
pub use registry::{Credentials, registry_host};
pub use stdio::Stdio;
pub use usage::Usage;
pub use workload::{Workload, WorkloadKind};

/// Entry points for the fuzz targets: the parsers of untrusted registry
/// content. Not part of the API.
#[doc(hidden)]
pub mod fuzzing {
    /// Parses an image config and derives the entrypoint's path from it.
    pub fn image_config(config: &str) -> Option<String> {
        crate::registry::fuzz_config(config)
    }

    /// Looks for `path` in a (gzip) tar layer.
    pub fn layer(bytes: &[u8], gzip: bool, path: &str) -> Result<bool, String> {
        crate::registry::fuzz_layer(bytes, gzip, path)
    }
}

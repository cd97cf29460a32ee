//! The toolbox shoal ships (`node/toolbox/`): the commands `kubectl exec`,
//! `cp` and `debug` find in a Wasm pod whose image carries none — `sh`,
//! `ls`, `cat`, `tar`, `wget`, … — one WASI command embedded in the agent
//! and kept in the image store under [`IMAGE`].

use std::sync::Arc;

use shoal_runtime_wasm::{Error as RtError, Runtime, Workload};

/// The toolbox's name in the node's image store (also the image of a
/// `kubectl debug` container that names it).
pub(crate) const IMAGE: &str = concat!("shoal.dev/toolbox:", env!("CARGO_PKG_VERSION"));

/// The toolbox's module.
pub static WASM: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/toolbox.wasm"));

static APPLETS: &str = include_str!("../toolbox/applets.txt");

/// Where the toolbox writes its exit code, when offered (WASI preview 2
/// commands end only with success or failure).
pub const STATUS_DIR: &str = "/run/shoal/exec";

/// Whether the toolbox has a command called `name` (a path's last part).
pub fn has(name: &str) -> bool {
    let name = name.rsplit('/').next().unwrap_or(name);
    APPLETS.lines().any(|a| a.trim() == name)
}

/// Puts the toolbox in the image store, for a first exec without a wait.
pub(crate) fn install(rt: &Runtime) -> Result<(), String> {
    rt.images()
        .import(IMAGE, WASM)
        .map(drop)
        .map_err(|e| format!("storing the toolbox: {e}"))
}

/// The compiled toolbox (stored again if the image store lost it).
pub(crate) async fn workload(rt: &Runtime) -> Result<Arc<Workload>, String> {
    match rt.load(IMAGE).await {
        Err(RtError::ImageNotFound(_)) => {
            install(rt)?;
            rt.load(IMAGE).await.map_err(|e| e.to_string())
        }
        other => other.map_err(|e| e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn applets_are_known_by_name_or_path() {
        assert!(super::has("sh"));
        assert!(super::has("/bin/tar"));
        assert!(!super::has("bash"));
        assert!(!super::has(""));
    }
}

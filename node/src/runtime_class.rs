//! The runtime a pod asks for by `runtimeClassName`, as a kubelet finds
//! it: the RuntimeClass names a handler, and this node's only handler is
//! its Wasm runtime, [`HANDLER`]. A pod whose class names another handler
//! (an OCI runtime such as `runc`) or no class that exists does not start
//! here: its sandbox fails (`FailedCreatePodSandBox`) and is tried again,
//! as on a node whose container runtime has no such handler.
//!
//! May import: nothing of the agent.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::node::v1::RuntimeClass;
use kube::Api;

/// The handler of shoal's Wasm runtime (the containerd shim's too).
pub(crate) const HANDLER: &str = "shoal";

/// How long a class's handler is taken as read (a fill of many pods of
/// one class reads it once).
const FRESH: Duration = Duration::from_secs(10);

/// The handlers of the classes read lately: `None` for a class that does
/// not exist.
#[derive(Default)]
pub(crate) struct Handlers(Mutex<HashMap<String, (Option<String>, Instant)>>);

impl Handlers {
    /// Whether this node runs `pod`: an error says why not, in the words
    /// of a failed sandbox.
    pub async fn check(&self, client: &kube::Client, pod: &Pod) -> Result<(), String> {
        let Some(class) = pod
            .spec
            .as_ref()
            .and_then(|s| s.runtime_class_name.as_deref())
        else {
            return Ok(());
        };
        let cached = self
            .0
            .lock()
            .expect("handlers lock")
            .get(class)
            .filter(|(_, at)| at.elapsed() < FRESH)
            .map(|(h, _)| h.clone());
        let handler = match cached {
            Some(h) => h,
            None => {
                let api: Api<RuntimeClass> = Api::all(client.clone());
                let h = api
                    .get_opt(class)
                    .await
                    .map_err(|e| format!("reading RuntimeClass {class:?}: {e}"))?
                    .map(|rc| rc.handler);
                self.0
                    .lock()
                    .expect("handlers lock")
                    .insert(class.to_string(), (h.clone(), Instant::now()));
                h
            }
        };
        verdict(class, handler.as_deref())
    }
}

/// Whether a class with `handler` (`None`: no such class) runs here.
fn verdict(class: &str, handler: Option<&str>) -> Result<(), String> {
    match handler {
        Some(HANDLER) => Ok(()),
        Some(other) => Err(format!(
            "Failed to create pod sandbox: no runtime for {other:?} is configured \
             (RuntimeClass {class:?}; this node runs Wasm with handler {HANDLER:?})"
        )),
        None => Err(format!(
            "Failed to create pod sandbox: RuntimeClass {class:?} not found"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_wasm_handler_runs_here() {
        assert!(verdict("shoal", Some("shoal")).is_ok());
        let e = verdict("oci", Some("runc")).unwrap_err();
        assert!(e.contains(r#"no runtime for "runc""#), "{e}");
        let e = verdict("gone", None).unwrap_err();
        assert!(e.contains(r#"RuntimeClass "gone" not found"#), "{e}");
    }
}

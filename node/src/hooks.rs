//! Lifecycle hooks, as the kubelet runs them: `postStart` right after a
//! container starts (a failure restarts it), `preStop` before it is asked
//! to stop (within the grace period). An `httpGet` goes where a probe's
//! would (in-process for an HTTP component), `exec` runs its command in
//! the container as a probe's does, `sleep` waits.
//!
//! And the stop request a command guest may follow, as a process follows
//! SIGTERM: WASI has no signals, so in a pod annotated
//! [`STOP_FILE_ANNOTATION`]`: "true"` every command sees a read-only
//! directory at [`RUN_DIR`] where the node creates the file [`STOP_FILE`]
//! when the guest should finish its work and exit; the node waits for it
//! until the grace period ends, then cancels it. Other commands are
//! cancelled at once: they could not be asked, and the directory would
//! cost each running instance an open descriptor.
//!
//! May import: `probes` (the handlers' requests).

use std::time::Duration;

use serde_json::Value;

use crate::probes::{Check, Runner};

/// Where a command guest sees its node-made directory.
pub(crate) const RUN_DIR: &str = "/run/shoal";
/// The file that appears there when the guest is asked to stop.
pub(crate) const STOP_FILE: &str = "stop";
/// The pod annotation by which its commands say they follow the stop
/// request.
pub(crate) const STOP_FILE_ANNOTATION: &str = "shoal.dev/stop-file";

/// Which hook.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum When {
    PostStart,
    PreStop,
}

impl When {
    fn field(self) -> &'static str {
        match self {
            When::PostStart => "postStart",
            When::PreStop => "preStop",
        }
    }
}

/// What a hook does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Hook {
    /// An HTTP GET or a connection, as a probe's.
    Check(Check),
    /// `sleep: {seconds}`.
    Sleep(Duration),
}

/// The hook `when` of a container's spec.
pub(crate) fn of(container: &Value, when: When) -> Option<Hook> {
    let handler = container.pointer(&format!("/lifecycle/{}", when.field()))?;
    if !handler.is_object() {
        return None;
    }
    if let Some(seconds) = handler.pointer("/sleep/seconds") {
        return Some(Hook::Sleep(Duration::from_secs(
            seconds.as_u64().unwrap_or(0),
        )));
    }
    Some(Hook::Check(crate::probes::check(container, handler)))
}

/// Runs a hook within `limit`: `Err` with why it failed.
pub(crate) async fn run(hook: &Hook, runner: &Runner<'_>, limit: Duration) -> Result<(), String> {
    match hook {
        Hook::Sleep(d) => {
            tokio::time::sleep((*d).min(limit)).await;
            Ok(())
        }
        Hook::Check(check) => runner.run(check, limit.max(Duration::from_secs(1))).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn hooks_are_read_from_the_container_lifecycle() {
        let c = json!({"name": "web", "ports": [{"name": "http", "containerPort": 8080}],
            "lifecycle": {
                "postStart": {"httpGet": {"path": "/warm", "port": "http"}},
                "preStop": {"sleep": {"seconds": 5}}}});
        assert_eq!(
            of(&c, When::PostStart),
            Some(Hook::Check(Check::Http {
                https: false,
                host: None,
                port: 8080,
                path: "/warm".into(),
                headers: vec![]
            }))
        );
        assert_eq!(
            of(&c, When::PreStop),
            Some(Hook::Sleep(Duration::from_secs(5)))
        );
        let exec = json!({"lifecycle": {"preStop": {"exec": {"command": ["drain"]}}}});
        assert_eq!(
            of(&exec, When::PreStop),
            Some(Hook::Check(Check::Exec(vec!["drain".into()])))
        );
        assert_eq!(of(&json!({}), When::PreStop), None);
    }
}

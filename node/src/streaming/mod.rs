//! The kubelet's streaming endpoints — `/exec` (and later `/attach`,
//! `/portForward`) — over the protocols Kubernetes clients speak: the
//! WebSocket channel protocols (`ws.rs`). A protocol turns its frames into
//! the exec module's [`Input`](crate::exec::Input) and
//! [`Output`](crate::exec::Output) and reports the end as Kubernetes does.
//!
//! May import: the agent's shared state and exec.

pub(crate) mod ws;

use std::sync::Arc;

use serde_json::{Value, json};

use crate::agent::Shared;
use crate::exec::{Command, Outcome};

/// The error channel's last word (protocol versions 4 and 5): a `Status`.
pub(crate) fn status(outcome: &Outcome) -> Value {
    match outcome {
        Outcome::Exited(0) => json!({"metadata": {}, "status": "Success"}),
        Outcome::Exited(code) => json!({
            "metadata": {}, "status": "Failure",
            "message": format!("command terminated with non-zero exit code: error executing command, exit code {code}"),
            "reason": "NonZeroExitCode",
            "details": {"causes": [{"reason": "ExitCode", "message": code.to_string()}]},
        }),
        Outcome::Failed(message) => json!({
            "metadata": {}, "status": "Failure", "message": message,
            "reason": "InternalError",
            "details": {"causes": [{"message": message}]},
            "code": 500,
        }),
    }
}

/// The error channel's text in protocol versions 1 to 3 (nothing on
/// success).
pub(crate) fn error_text(outcome: &Outcome) -> Option<String> {
    match outcome {
        Outcome::Exited(0) => None,
        Outcome::Exited(code) => Some(format!(
            "command terminated with non-zero exit code: error executing command, exit code {code}"
        )),
        Outcome::Failed(m) => Some(m.clone()),
    }
}

/// What an exec request needs to start: the running container.
pub(crate) fn exec_target(
    shared: &Shared,
    ns: &str,
    pod: &str,
    container: &str,
) -> Result<Arc<crate::exec::Target>, String> {
    let uid = shared
        .by_name
        .lock()
        .expect("names lock")
        .get(&(ns.to_string(), pod.to_string()))
        .cloned()
        .ok_or_else(|| format!("pod {ns}/{pod} is not running on this node"))?;
    shared
        .exec
        .get(&uid, container)
        .ok_or_else(|| format!("container not found (\"{container}\")"))
}

/// Checks an exec request's options as the kubelet does.
pub(crate) fn check(cmd: &Command) -> Result<(), String> {
    if cmd.argv.is_empty() {
        return Err("you must specify at least one command for the container".into());
    }
    if !(cmd.stdin || cmd.stdout || cmd.stderr) {
        return Err("you must specify at least 1 of stdin, stdout, stderr".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_are_reported_as_kubernetes_does() {
        assert_eq!(status(&Outcome::Exited(0))["status"], "Success");
        let s = status(&Outcome::Exited(3));
        assert_eq!(s["reason"], "NonZeroExitCode");
        assert_eq!(s["details"]["causes"][0]["message"], "3");
        assert_eq!(error_text(&Outcome::Exited(0)), None);
    }
}

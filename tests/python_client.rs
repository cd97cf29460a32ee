//! The official Python `kubernetes` client against shoal.

mod common;

use common::{Cluster, repo};

/// Runs `tests/support/<script>` against a fresh cluster and checks it
/// ended with `done`.
fn run_script(test: &str, script: &str, done: &str) {
    let c = Cluster::start(test);
    let out = std::process::Command::new("python3")
        .arg(repo().join("tests/support").join(script))
        .arg(&c.kubeconfig)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success() && text.contains(done), "{text}");
}

#[test]
fn python_kubernetes_client() {
    run_script("python", "python_client.py", "python client: ok");
}

/// Every built-in kind through the Python client's typed API classes,
/// whose models refuse objects that lack a required field.
#[test]
fn python_typed_api_classes_accept_every_kind() {
    run_script("python-kinds", "python_kinds.py", "python kinds: ok");
}

//! The official Python `kubernetes` client against shoal.

mod common;

use common::{Cluster, repo};

#[test]
fn python_kubernetes_client() {
    let c = Cluster::start("python");
    let out = std::process::Command::new("python3")
        .arg(repo().join("tests/support/python_client.py"))
        .arg(&c.kubeconfig)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && text.contains("python client: ok"),
        "{text}"
    );
}

/// Every built-in kind through the Python client's typed API classes,
/// whose models refuse objects that lack a required field.
#[test]
fn python_typed_api_classes_accept_every_kind() {
    let c = Cluster::start("python-kinds");
    let out = std::process::Command::new("python3")
        .arg(repo().join("tests/support/python_kinds.py"))
        .arg(&c.kubeconfig)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && text.contains("python kinds: ok"),
        "{text}"
    );
}

//! The CertificateSigningRequest signer: an approved request for a signer
//! this cluster handles gets its certificate from the cluster CA, as
//! kube-controller-manager's `csrsigning` controller does; a request the
//! signer refuses gets a `Failed` condition with the reason.

use std::sync::Arc;

use base64::Engine as _;
use serde_json::{Value, json};

use super::{Action, Snapshot, res};
use shoal_machinery::meta::{self, condition_true};

/// Signs a PEM request for a signer, valid for the seconds given; the
/// certificate in PEM, or why not.
pub type Signer = Arc<dyn Fn(&str, &str, u64) -> Result<String, String> + Send + Sync>;

/// Decides whether a pending request is approved without a person: the
/// approval's message when it is (kube-controller-manager's `csrapproving`
/// approves nodes' client certificates this way), `None` to leave it.
pub type Approver = Arc<dyn Fn(&Value) -> Option<String> + Send + Sync>;

/// The signers handled here.
const SIGNERS: &[&str] = &[
    "kubernetes.io/kube-apiserver-client",
    "kubernetes.io/kube-apiserver-client-kubelet",
    "kubernetes.io/kubelet-serving",
];

/// A year: what a request without `expirationSeconds` gets.
const DEFAULT_VALIDITY: u64 = 365 * 24 * 3600;

/// Approves the pending requests `approver` approves.
pub fn approve_certificates(s: &Snapshot, approver: Option<&Approver>) -> Vec<Action> {
    let Some(approver) = approver else {
        return Vec::new();
    };
    let r = res("CertificateSigningRequest", "certificates.k8s.io");
    let mut actions = Vec::new();
    for csr in s.of("certificatesigningrequests") {
        if ["Approved", "Denied", "Failed"]
            .iter()
            .any(|c| condition_true(csr, c))
        {
            continue;
        }
        let Some(message) = approver(csr) else {
            continue;
        };
        let now = meta::now();
        let mut conditions = csr
            .pointer("/status/conditions")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        conditions.push(json!({"type": "Approved", "status": "True",
            "reason": "AutoApproved", "message": message,
            "lastUpdateTime": now, "lastTransitionTime": now}));
        actions.push(Action::Patch {
            resource: r,
            namespace: String::new(),
            name: meta::name(csr).to_string(),
            patch: json!({"status": {"conditions": conditions}}),
            status: true,
        });
    }
    actions
}

/// Signs the approved, unsigned requests.
pub fn reconcile_certificates(s: &Snapshot, signer: Option<&Signer>) -> Vec<Action> {
    let Some(signer) = signer else {
        return Vec::new();
    };
    let r = res("CertificateSigningRequest", "certificates.k8s.io");
    let mut actions = Vec::new();
    for csr in s.of("certificatesigningrequests") {
        let signer_name = meta::str_at(csr, "/spec/signerName").unwrap_or_default();
        if !condition_true(csr, "Approved")
            || condition_true(csr, "Denied")
            || condition_true(csr, "Failed")
            || csr
                .pointer("/status/certificate")
                .is_some_and(|c| !c.is_null())
            || !SIGNERS.contains(&signer_name)
        {
            continue;
        }
        let request = meta::str_at(csr, "/spec/request")
            .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
            .and_then(|b| String::from_utf8(b).ok())
            .unwrap_or_default();
        let validity = csr
            .pointer("/spec/expirationSeconds")
            .and_then(Value::as_u64)
            .unwrap_or(DEFAULT_VALIDITY);
        let mut status = csr.get("status").cloned().unwrap_or_else(|| json!({}));
        match signer(&request, signer_name, validity) {
            Ok(pem) => {
                status["certificate"] =
                    json!(base64::engine::general_purpose::STANDARD.encode(pem.as_bytes()));
            }
            Err(why) => {
                let now = meta::now();
                let mut conditions = status
                    .get("conditions")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                conditions.push(json!({"type": "Failed", "status": "True",
                    "reason": "SignerValidationFailure", "message": why,
                    "lastUpdateTime": now, "lastTransitionTime": now}));
                status["conditions"] = json!(conditions);
            }
        }
        actions.push(Action::Patch {
            resource: r,
            namespace: String::new(),
            name: meta::name(csr).to_string(),
            patch: json!({"status": status}),
            status: true,
        });
    }
    actions
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::snap;

    fn csr(name: &str, signer: &str, conditions: Value) -> Value {
        json!({"metadata": {"name": name}, "spec": {"signerName": signer,
            "request": base64::engine::general_purpose::STANDARD.encode(format!("req-{name}"))},
            "status": {"conditions": conditions}})
    }

    #[test]
    fn approved_requests_are_signed_or_failed() {
        let approved = json!([{"type": "Approved", "status": "True"}]);
        let s = snap(&[
            (
                "certificatesigningrequests",
                csr("ok", SIGNERS[0], approved.clone()),
            ),
            (
                "certificatesigningrequests",
                csr("bad", SIGNERS[1], approved.clone()),
            ),
            (
                "certificatesigningrequests",
                csr("pending", SIGNERS[0], json!([])),
            ),
            (
                "certificatesigningrequests",
                csr("other", "example.com/x", approved),
            ),
        ]);
        let signer: Signer = Arc::new(|req: &str, _: &str, secs: u64| {
            if req == "req-ok" {
                Ok(format!("CERT {secs}"))
            } else {
                Err("refused".into())
            }
        });
        let actions = reconcile_certificates(&s, Some(&signer));
        assert_eq!(actions.len(), 2);
        for a in actions {
            let Action::Patch {
                name,
                patch,
                status: true,
                ..
            } = a
            else {
                panic!()
            };
            match name.as_str() {
                "ok" => assert_eq!(
                    patch["status"]["certificate"],
                    json!(base64::engine::general_purpose::STANDARD.encode("CERT 31536000"))
                ),
                "bad" => assert_eq!(patch["status"]["conditions"][1]["type"], "Failed"),
                other => panic!("{other}"),
            }
        }
        assert!(reconcile_certificates(&s, None).is_empty());
    }

    #[test]
    fn pending_requests_the_approver_takes_are_approved_once() {
        let s = snap(&[
            (
                "certificatesigningrequests",
                csr("node", SIGNERS[1], json!([])),
            ),
            (
                "certificatesigningrequests",
                csr("person", SIGNERS[0], json!([])),
            ),
            (
                "certificatesigningrequests",
                csr(
                    "done",
                    SIGNERS[1],
                    json!([{"type": "Approved", "status": "True"}]),
                ),
            ),
            (
                "certificatesigningrequests",
                csr(
                    "denied",
                    SIGNERS[1],
                    json!([{"type": "Denied", "status": "True"}]),
                ),
            ),
        ]);
        let approver: Approver = Arc::new(|csr: &Value| {
            (csr["spec"]["signerName"] == SIGNERS[1]).then(|| "auto".to_string())
        });
        let actions = approve_certificates(&s, Some(&approver));
        assert_eq!(actions.len(), 1);
        let Action::Patch { name, patch, .. } = &actions[0] else {
            panic!()
        };
        assert_eq!(name, "node");
        assert_eq!(patch["status"]["conditions"][0]["type"], "Approved");
        assert_eq!(patch["status"]["conditions"][0]["reason"], "AutoApproved");
        assert!(approve_certificates(&s, None).is_empty());
    }
}

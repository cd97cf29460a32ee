//! CertificateSigningRequests (`certificates.k8s.io/v1`): a request for a
//! certificate from a named signer, approved or denied in its status.
//! Stored and checked as Kubernetes does; the signers and the `approval`
//! subresource are not served yet.

use base64::Engine as _;
use serde_json::{Value, json};

use super::print::{age_column, col, human_duration, name_column, text};
use super::{Printer, Strategy};
use shoal_machinery::error::{Cause, Causes};
use shoal_machinery::meta::str_at;
use shoal_machinery::names::is_dns_subdomain;

/// The key usages a request may ask for, as Kubernetes names them.
const USAGES: &[&str] = &[
    "signing",
    "digital signature",
    "content commitment",
    "key encipherment",
    "key agreement",
    "data encipherment",
    "cert sign",
    "crl sign",
    "encipher only",
    "decipher only",
    "any",
    "server auth",
    "client auth",
    "code signing",
    "email protection",
    "s/mime",
    "ipsec end system",
    "ipsec tunnel",
    "ipsec user",
    "timestamping",
    "ocsp signing",
    "microsoft sgc",
    "netscape sgc",
];

/// The checks of a request: a PEM `CERTIFICATE REQUEST`, a signer named
/// `<domain>/<path>`, known usages without repeats, and a requested
/// lifetime of at least ten minutes.
fn validate(obj: &Value, c: &mut Causes) {
    let spec = obj.get("spec").unwrap_or(&Value::Null);
    match spec.get("request").and_then(Value::as_str) {
        None | Some("") => c.required("spec.request", ""),
        Some(b64) => {
            let pem = base64::engine::general_purpose::STANDARD
                .decode(b64)
                .unwrap_or_default();
            let pem = String::from_utf8_lossy(&pem);
            let block = pem
                .trim_start()
                .strip_prefix("-----BEGIN CERTIFICATE REQUEST-----")
                .is_some_and(|rest| rest.contains("-----END CERTIFICATE REQUEST-----"));
            if !block {
                c.invalid(
                    "spec.request",
                    &json!(b64),
                    "PEM block type must be CERTIFICATE REQUEST",
                );
            }
        }
    }
    match spec.get("signerName").and_then(Value::as_str) {
        None | Some("") => c.required("spec.signerName", ""),
        Some(signer) => {
            let qualified = signer.split_once('/').is_some_and(|(domain, path)| {
                is_dns_subdomain(domain) && domain.contains('.') && !path.is_empty()
            });
            if !qualified {
                c.invalid(
                    "spec.signerName",
                    &json!(signer),
                    "must be a fully qualified domain and path of the form 'example.com/signer-name'",
                );
            }
        }
    }
    let usages = spec.get("usages").and_then(Value::as_array);
    if usages.is_none_or(Vec::is_empty) {
        c.required("spec.usages", "");
    }
    let mut seen = Vec::new();
    for (i, u) in usages.into_iter().flatten().enumerate() {
        let usage = u.as_str().unwrap_or_default();
        if !USAGES.contains(&usage) {
            c.0.push(Cause {
                kind: "FieldValueNotSupported",
                field: format!("spec.usages[{i}]"),
                message: format!("Unsupported value: {u}"),
            });
        } else if seen.contains(&usage) {
            c.0.push(Cause {
                kind: "FieldValueDuplicate",
                field: format!("spec.usages[{i}]"),
                message: format!("Duplicate value: {u}"),
            });
        }
        seen.push(usage);
    }
    if let Some(secs) = spec.get("expirationSeconds")
        && secs.as_i64().is_some_and(|s| s < 600)
    {
        c.invalid(
            "spec.expirationSeconds",
            secs,
            "may not specify a duration less than 600 seconds (10 minutes)",
        );
    }
}

/// The columns `kubectl get csr` shows.
fn columns() -> Vec<Value> {
    vec![
        name_column(),
        age_column(),
        col("SignerName", "string", 0, "The signer the request is for."),
        col("Requestor", "string", 0, "The user who made the request."),
        col(
            "RequestedDuration",
            "string",
            0,
            "The lifetime the request asks the certificate to have.",
        ),
        col(
            "Condition",
            "string",
            0,
            "Approved or Denied, Failed, and Issued once a certificate is there.",
        ),
    ]
}

/// A row of [`columns`].
fn cells(o: &Value) -> Vec<Value> {
    let has = |ty: &str| shoal_machinery::meta::condition_true(o, ty);
    let mut condition = if has("Denied") {
        "Denied"
    } else if has("Approved") {
        "Approved"
    } else {
        "Pending"
    }
    .to_string();
    if has("Failed") {
        condition.push_str(",Failed");
    }
    if str_at(o, "/status/certificate").is_some_and(|c| !c.is_empty()) {
        condition.push_str(",Issued");
    }
    let duration = o
        .pointer("/spec/expirationSeconds")
        .and_then(Value::as_i64)
        .map_or_else(|| "<none>".to_string(), human_duration);
    vec![
        super::print::name_cell(o),
        super::print::age_cell(o),
        text(str_at(o, "/spec/signerName").unwrap_or_default().into()),
        text(str_at(o, "/spec/username").unwrap_or_default().into()),
        text(duration),
        text(condition),
    ]
}

/// CertificateSigningRequests: the spec is the request and never changes
/// after it is made; the status holds the decision and the certificate.
static CERTIFICATE_SIGNING_REQUEST: Strategy = Strategy {
    prepare: super::empty_status,
    validate,
    kept_on_update: &["spec"],
    printer: Printer { columns, cells },
    field_labels: &["spec.signerName"],
    records_requester: true,
    ..Strategy::GENERIC
};

/// The kinds this file holds, by name.
pub(super) static KINDS: &[(&str, &Strategy)] =
    &[("CertificateSigningRequest", &CERTIFICATE_SIGNING_REQUEST)];

#[cfg(test)]
mod tests {
    use super::*;

    fn request(spec: Value) -> Causes {
        let mut c = Causes::default();
        validate(&json!({"spec": spec}), &mut c);
        c
    }

    #[test]
    fn requests_are_checked_as_kubernetes_does() {
        let pem = base64::engine::general_purpose::STANDARD.encode(
            "-----BEGIN CERTIFICATE REQUEST-----\nMIIB\n-----END CERTIFICATE REQUEST-----\n",
        );
        let good = request(
            json!({"request": pem, "signerName": "kubernetes.io/kube-apiserver-client",
            "usages": ["client auth", "digital signature"], "expirationSeconds": 3600}),
        );
        assert!(good.0.is_empty(), "{:?}", good.0);

        let bad = request(
            json!({"request": base64::engine::general_purpose::STANDARD.encode("hello"),
            "signerName": "nodomain", "usages": ["client auth", "client auth", "flying"],
            "expirationSeconds": 60}),
        );
        let fields: Vec<_> = bad.0.iter().map(|c| (c.field.as_str(), c.kind)).collect();
        assert_eq!(
            fields,
            [
                ("spec.request", "FieldValueInvalid"),
                ("spec.signerName", "FieldValueInvalid"),
                ("spec.usages[1]", "FieldValueDuplicate"),
                ("spec.usages[2]", "FieldValueNotSupported"),
                ("spec.expirationSeconds", "FieldValueInvalid"),
            ]
        );
        let missing = request(json!({}));
        assert_eq!(missing.0.len(), 3, "{:?}", missing.0);
    }

    #[test]
    fn the_condition_column_reads_as_kubectls() {
        let csr = |conds: Value, cert: &str| {
            json!({"metadata": {"name": "c"}, "spec": {"signerName": "example.com/s", "username": "alice"},
                "status": {"conditions": conds, "certificate": cert}})
        };
        let condition = |o: &Value| cells(o)[5].clone();
        assert_eq!(condition(&csr(json!([]), "")), "Pending");
        assert_eq!(
            condition(&csr(
                json!([{"type": "Approved", "status": "True"}]),
                "MII="
            )),
            "Approved,Issued"
        );
        assert_eq!(
            condition(&csr(
                json!([{"type": "Approved", "status": "True"}, {"type": "Failed", "status": "True"}]),
                ""
            )),
            "Approved,Failed"
        );
        assert_eq!(cells(&csr(json!([]), ""))[3], "alice");
        assert_eq!(columns().len(), cells(&csr(json!([]), "")).len());
    }
}

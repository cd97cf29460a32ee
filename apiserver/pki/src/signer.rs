//! Signing CertificateSigningRequests with the cluster CA, for the
//! Kubernetes signers whose certificates the API server trusts as client
//! identities: `kubernetes.io/kube-apiserver-client` (any user) and
//! `kubernetes.io/kube-apiserver-client-kubelet` (a node: `system:node:NAME`
//! in exactly `system:nodes`); and `kubernetes.io/kubelet-serving` (a
//! node's kubelet API, for the DNS names and addresses it asks for).
//!
//! Only the request's common name and organizations are kept: the CA
//! decides the usages (client authentication), the validity and that it is
//! not a CA, whatever the request asked for.

use rcgen::{
    CertificateParams, CertificateSigningRequestParams, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use x509_parser::prelude::{FromDer, X509CertificationRequest};

/// The signer for any client of the API.
pub const CLIENT_SIGNER: &str = "kubernetes.io/kube-apiserver-client";
/// The signer for node agents' client certificates.
pub const KUBELET_CLIENT_SIGNER: &str = "kubernetes.io/kube-apiserver-client-kubelet";

/// The signer for node agents' serving certificates (the kubelet API).
pub const KUBELET_SERVING_SIGNER: &str = "kubernetes.io/kubelet-serving";

/// The longest validity a signed certificate gets (a year, as Kubernetes'
/// default cluster signing duration).
pub const MAX_VALIDITY_SECS: u64 = 365 * 24 * 3600;

/// The subject a request asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subject {
    /// Common name: the user.
    pub common_name: String,
    /// Organizations: the groups.
    pub organizations: Vec<String>,
}

/// The subject of a PEM certificate request, with its signature checked.
pub fn request_subject(csr_pem: &str) -> Result<Subject, String> {
    let der = rustls_pki_types::pem::PemObject::from_pem_slice(csr_pem.as_bytes())
        .map(|d: rustls_pki_types::CertificateSigningRequestDer<'_>| d.as_ref().to_vec())
        .map_err(|e| format!("the request is not a PEM certificate request: {e:?}"))?;
    let (_, csr) = X509CertificationRequest::from_der(&der)
        .map_err(|e| format!("the certificate request cannot be read: {e}"))?;
    csr.verify_signature()
        .map_err(|e| format!("the certificate request's signature is invalid: {e}"))?;
    let subject = &csr.certification_request_info.subject;
    let text =
        |a: &x509_parser::x509::AttributeTypeAndValue<'_>| a.as_str().ok().map(str::to_string);
    Ok(Subject {
        common_name: subject
            .iter_common_name()
            .next()
            .and_then(text)
            .unwrap_or_default(),
        organizations: subject.iter_organization().filter_map(text).collect(),
    })
}

/// A subject alternative name a request asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Name {
    /// A DNS name.
    Dns(String),
    /// An IP address.
    Ip(std::net::IpAddr),
}

/// The DNS names and IP addresses a PEM certificate request asks for; any
/// other kind of name (e-mail, URI) is refused.
pub fn request_names(csr_pem: &str) -> Result<Vec<Name>, String> {
    let der = rustls_pki_types::pem::PemObject::from_pem_slice(csr_pem.as_bytes())
        .map(|d: rustls_pki_types::CertificateSigningRequestDer<'_>| d.as_ref().to_vec())
        .map_err(|e| format!("the request is not a PEM certificate request: {e:?}"))?;
    let (_, csr) = X509CertificationRequest::from_der(&der)
        .map_err(|e| format!("the certificate request cannot be read: {e}"))?;
    let mut names = Vec::new();
    for ext in csr.requested_extensions().into_iter().flatten() {
        if let x509_parser::extensions::ParsedExtension::SubjectAlternativeName(san) = ext {
            for n in &san.general_names {
                use x509_parser::extensions::GeneralName;
                match n {
                    GeneralName::DNSName(d) => names.push(Name::Dns(d.to_string())),
                    GeneralName::IPAddress(b) => match b.len() {
                        4 => names.push(Name::Ip(std::net::IpAddr::from(
                            <[u8; 4]>::try_from(*b).expect("four bytes"),
                        ))),
                        16 => names.push(Name::Ip(std::net::IpAddr::from(
                            <[u8; 16]>::try_from(*b).expect("sixteen bytes"),
                        ))),
                        _ => return Err("an IP address of the request is malformed".into()),
                    },
                    other => {
                        return Err(format!(
                            "the request asks for a name of another kind: {other}"
                        ));
                    }
                }
            }
        }
    }
    Ok(names)
}

/// What a node agent's request is, as kube-controller-manager's approver
/// recognizes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeRequest {
    /// A client certificate for node `0`, asked by someone else (a
    /// bootstrap token's user): approved for those who may create
    /// `certificatesigningrequests/nodeclient`.
    Client(String),
    /// A node renewing its own client certificate: approved for those who
    /// may create `certificatesigningrequests/selfnodeclient`.
    SelfClient(String),
    /// A node's serving certificate for these names, asked by the node.
    Serving(String, Vec<Name>),
}

/// Recognizes a node's certificate request: `signer` and `usages` are the
/// CertificateSigningRequest's, `requester` the user who created it.
/// `None` for any other request (left to a person to approve).
pub fn node_request(
    csr_pem: &str,
    signer: &str,
    usages: &[&str],
    requester: &str,
) -> Option<NodeRequest> {
    let subject = request_subject(csr_pem).ok()?;
    check_subject(signer, &subject).ok()?;
    let node = subject
        .common_name
        .strip_prefix("system:node:")?
        .to_string();
    let names = request_names(csr_pem).ok()?;
    let allowed = |extra: &str| {
        usages
            .iter()
            .all(|u| ["digital signature", "key encipherment", extra].contains(u))
            && usages.contains(&extra)
    };
    match signer {
        KUBELET_CLIENT_SIGNER if names.is_empty() && allowed("client auth") => {
            Some(if requester == subject.common_name {
                NodeRequest::SelfClient(node)
            } else {
                NodeRequest::Client(node)
            })
        }
        KUBELET_SERVING_SIGNER
            if requester == subject.common_name && !names.is_empty() && allowed("server auth") =>
        {
            Some(NodeRequest::Serving(node, names))
        }
        _ => None,
    }
}

/// Whether `signer` may sign a request for `subject`, in Kubernetes' words.
pub fn check_subject(signer: &str, subject: &Subject) -> Result<(), String> {
    if subject.common_name.is_empty() {
        return Err("the request has no common name".into());
    }
    match signer {
        CLIENT_SIGNER => Ok(()),
        KUBELET_CLIENT_SIGNER | KUBELET_SERVING_SIGNER => {
            if !subject.common_name.starts_with("system:node:") {
                return Err("subject common name does not begin with system:node:".into());
            }
            if subject.organizations != ["system:nodes"] {
                return Err("subject organization is not system:nodes".into());
            }
            Ok(())
        }
        other => Err(format!("signer {other:?} is not handled by this cluster")),
    }
}

/// Signs a PEM certificate request with the CA (`ca_cert_pem`,
/// `ca_key_pem`) for `signer`, valid `validity_secs` (at most a year) from
/// five minutes ago; the signed certificate in PEM.
pub fn sign_request(
    ca_key_pem: &str,
    csr_pem: &str,
    signer: &str,
    validity_secs: u64,
) -> Result<String, String> {
    let subject = request_subject(csr_pem)?;
    check_subject(signer, &subject)?;
    let request = CertificateSigningRequestParams::from_pem(csr_pem)
        .map_err(|e| format!("the certificate request cannot be read: {e}"))?;
    let mut params = CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, subject.common_name.as_str());
    for o in &subject.organizations {
        params
            .distinguished_name
            .push(DnType::OrganizationName, o.as_str());
    }
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    if signer == KUBELET_SERVING_SIGNER {
        let names = request_names(csr_pem)?;
        if names.is_empty() {
            return Err("a serving certificate needs a DNS name or an IP address".into());
        }
        params.subject_alt_names = names
            .into_iter()
            .map(|n| match n {
                Name::Dns(d) => rcgen::string::Ia5String::try_from(d)
                    .map(rcgen::SanType::DnsName)
                    .map_err(|e| e.to_string()),
                Name::Ip(ip) => Ok(rcgen::SanType::IpAddress(ip)),
            })
            .collect::<Result<_, _>>()?;
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    } else {
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    }
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::minutes(5);
    params.not_after = now + time::Duration::seconds(validity_secs.min(MAX_VALIDITY_SECS) as i64);
    let ca_key = KeyPair::from_pem(ca_key_pem).map_err(|e| format!("the CA key: {e}"))?;
    let issuer = Issuer::new(super::ca_params().map_err(|e| e.to_string())?, ca_key);
    let cert = params
        .signed_by(&request.public_key, &issuer)
        .map_err(|e| format!("signing: {e}"))?;
    Ok(cert.pem())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(cn: &str, orgs: &[&str]) -> String {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(vec!["evil.example.com".to_string()]).unwrap();
        p.distinguished_name = rcgen::DistinguishedName::new();
        p.distinguished_name.push(DnType::CommonName, cn);
        for o in orgs {
            p.distinguished_name.push(DnType::OrganizationName, *o);
        }
        p.is_ca = IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        p.serialize_request(&key).unwrap().pem().unwrap()
    }

    #[test]
    fn signs_client_certificates_and_nothing_more() {
        let ca_key = KeyPair::generate().unwrap();
        let pem = sign_request(
            &ca_key.serialize_pem(),
            &request("alice", &["devs"]),
            CLIENT_SIGNER,
            3600,
        )
        .unwrap();
        let der: rustls_pki_types::CertificateDer<'_> =
            rustls_pki_types::pem::PemObject::from_pem_slice(pem.as_bytes()).unwrap();
        let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref()).unwrap();
        assert_eq!(cert.subject().to_string(), "CN=alice, O=devs");
        assert!(!cert.is_ca(), "a request cannot ask to be a CA");
        assert!(cert.subject_alternative_name().unwrap().is_none());
        let eku = cert.extended_key_usage().unwrap().unwrap().value;
        assert!(eku.client_auth && !eku.server_auth);
        let lifetime =
            cert.validity().not_after.timestamp() - cert.validity().not_before.timestamp();
        assert_eq!(lifetime, 3600 + 300);
    }

    fn node_req(cn: &str, sans: &[&str]) -> String {
        let key = KeyPair::generate().unwrap();
        let mut p =
            CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
        p.distinguished_name = rcgen::DistinguishedName::new();
        p.distinguished_name.push(DnType::CommonName, cn);
        p.distinguished_name
            .push(DnType::OrganizationName, "system:nodes");
        p.serialize_request(&key).unwrap().pem().unwrap()
    }

    #[test]
    fn node_requests_are_recognized_as_the_approver_does() {
        let client = node_req("system:node:a", &[]);
        let usages = ["digital signature", "client auth"];
        assert_eq!(
            node_request(
                &client,
                KUBELET_CLIENT_SIGNER,
                &usages,
                "system:bootstrap:abcdef"
            ),
            Some(NodeRequest::Client("a".into()))
        );
        assert_eq!(
            node_request(&client, KUBELET_CLIENT_SIGNER, &usages, "system:node:a"),
            Some(NodeRequest::SelfClient("a".into()))
        );
        // Usages beyond a client's, names in a client certificate, or
        // another signer are for a person to look at.
        let server = ["digital signature", "client auth", "server auth"];
        assert_eq!(
            node_request(&client, KUBELET_CLIENT_SIGNER, &server, "x"),
            None
        );
        let named = node_req("system:node:a", &["a.example"]);
        assert_eq!(
            node_request(&named, KUBELET_CLIENT_SIGNER, &usages, "x"),
            None
        );
        assert_eq!(node_request(&client, CLIENT_SIGNER, &usages, "x"), None);

        let serving = node_req("system:node:a", &["a", "10.0.0.5"]);
        let usages = ["digital signature", "server auth"];
        assert_eq!(
            node_request(&serving, KUBELET_SERVING_SIGNER, &usages, "system:node:a"),
            Some(NodeRequest::Serving(
                "a".into(),
                vec![Name::Dns("a".into()), Name::Ip([10, 0, 0, 5].into())]
            ))
        );
        // Only the node itself asks for its serving certificate.
        assert_eq!(
            node_request(&serving, KUBELET_SERVING_SIGNER, &usages, "system:node:b"),
            None
        );
    }

    #[test]
    fn serving_certificates_name_what_was_asked() {
        let ca_key = KeyPair::generate().unwrap();
        let pem = sign_request(
            &ca_key.serialize_pem(),
            &node_req("system:node:a", &["a", "10.0.0.5"]),
            KUBELET_SERVING_SIGNER,
            3600,
        )
        .unwrap();
        let der: rustls_pki_types::CertificateDer<'_> =
            rustls_pki_types::pem::PemObject::from_pem_slice(pem.as_bytes()).unwrap();
        let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref()).unwrap();
        let eku = cert.extended_key_usage().unwrap().unwrap().value;
        assert!(eku.server_auth && !eku.client_auth);
        let sans = &cert
            .subject_alternative_name()
            .unwrap()
            .unwrap()
            .value
            .general_names;
        assert_eq!(sans.len(), 2);
        assert!(
            sign_request(
                &ca_key.serialize_pem(),
                &node_req("system:node:a", &[]),
                KUBELET_SERVING_SIGNER,
                3600
            )
            .is_err()
        );
    }

    #[test]
    fn kubelet_signer_takes_only_nodes() {
        let key = KeyPair::generate().unwrap().serialize_pem();
        assert!(
            sign_request(
                &key,
                &request("system:node:a", &["system:nodes"]),
                KUBELET_CLIENT_SIGNER,
                60
            )
            .is_ok()
        );
        for (cn, orgs) in [
            ("alice", &["system:nodes"][..]),
            ("system:node:a", &["system:masters"][..]),
            ("system:node:a", &[][..]),
        ] {
            assert!(
                sign_request(&key, &request(cn, orgs), KUBELET_CLIENT_SIGNER, 60).is_err(),
                "{cn} {orgs:?}"
            );
        }
        assert!(sign_request(&key, &request("a", &[]), "example.com/other", 60).is_err());
        assert!(sign_request(&key, "not a request", CLIENT_SIGNER, 60).is_err());
    }
}

//! Who a request comes from. A client certificate the cluster CA signed
//! names its user in the subject's common name and its groups in the
//! organizations, as Kubernetes reads them; every such user is also in
//! `system:authenticated`.
//!
//! May import: nothing of the crate.

use x509_parser::prelude::{FromDer, X509Certificate};

use std::sync::Arc;

pub use shoal_machinery::user::{ANONYMOUS, AUTHENTICATED, UNAUTHENTICATED, User};

/// The user a request's credentials name, set by the connection from its
/// TLS client certificate; `None` for an anonymous client.
#[derive(Clone)]
pub struct Authenticated(pub Option<Arc<User>>);

/// The user a client certificate (DER) names, if it names one.
pub fn from_certificate(der: &[u8]) -> Option<User> {
    let (_, cert) = X509Certificate::from_der(der).ok()?;
    let subject = cert.subject();
    let name = subject
        .iter_common_name()
        .next()?
        .as_str()
        .ok()
        .filter(|n| !n.is_empty())?
        .to_string();
    let mut groups: Vec<String> = subject
        .iter_organization()
        .filter_map(|o| o.as_str().ok())
        .map(str::to_string)
        .collect();
    groups.push(AUTHENTICATED.to_string());
    Some(User { name, groups })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{CertificateParams, DnType, KeyPair};

    fn cert(cn: Option<&str>, orgs: &[&str]) -> Vec<u8> {
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.distinguished_name = rcgen::DistinguishedName::new();
        if let Some(cn) = cn {
            p.distinguished_name.push(DnType::CommonName, cn);
        }
        for o in orgs {
            p.distinguished_name.push(DnType::OrganizationName, *o);
        }
        let key = KeyPair::generate().unwrap();
        p.self_signed(&key).unwrap().der().to_vec()
    }

    #[test]
    fn common_name_is_the_user_and_organizations_the_groups() {
        assert_eq!(
            from_certificate(&cert(Some("system:node:a"), &["system:nodes"])),
            Some(User {
                name: "system:node:a".into(),
                groups: vec!["system:nodes".into(), AUTHENTICATED.into()],
            })
        );
        assert_eq!(from_certificate(&cert(None, &["x"])), None);
        assert_eq!(from_certificate(b"not a certificate"), None);
    }
}

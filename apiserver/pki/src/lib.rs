//! The cluster's certificate authority and the certificates made from it at
//! first start: the API server's serving certificate, the admin client
//! certificate of the kubeconfig, and the node agent's serving and client
//! certificates.

pub mod signer;
pub mod tokens;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::Engine as _;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
};
use rustls::RootCertStore;
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// Errors making or loading certificates.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// Certificate generation failed.
    #[error("generating certificates: {0}")]
    Gen(#[from] rcgen::Error),
    /// A file could not be read or written.
    #[error("certificate files: {0}")]
    Io(#[from] std::io::Error),
    /// A PEM file is malformed.
    #[error("malformed PEM in {0}")]
    Pem(String),
    /// rustls refused the material.
    #[error("TLS configuration: {0}")]
    Tls(String),
    /// A signing key could not be made or read.
    #[error("signing key: {0}")]
    Key(String),
}

/// A certificate and key in PEM.
#[derive(Debug, Clone)]
pub struct Pair {
    /// The certificate.
    pub cert: String,
    /// The private key.
    pub key: String,
}

/// The PKI of a cluster, under `<data-dir>/pki`.
#[derive(Debug, Clone)]
pub struct Pki {
    /// The CA certificate in PEM.
    pub ca: String,
    /// The API server's serving pair.
    pub apiserver: Pair,
    /// The administrator's client pair (kubeconfig).
    pub admin: Pair,
    /// The node agent's serving pair (kubelet API).
    pub node_serving: Pair,
    /// The node agent's client pair for the API.
    pub node_client: Pair,
    /// The API server's client pair towards node agents.
    pub apiserver_kubelet_client: Pair,
    /// The CA of the aggregation layer's client certificate, apart from the
    /// cluster CA: only this CA's certificate may say who a proxied request
    /// comes from.
    pub front_proxy_ca: String,
    /// The pair the API server presents to aggregated API servers.
    pub front_proxy_client: Pair,
    /// The cluster CA's private key, for signing approved requests.
    ca_key: String,
    /// The service-account token key (P-256, PKCS#8 PEM).
    pub service_account_key: String,
    /// This server's client pair towards the other servers (in
    /// [`PEER_GROUP`]).
    pub peer: Pair,
}

/// The user of a server's peer certificate.
pub const PEER_USER: &str = "system:shoal-server";
/// The group of servers' peer certificates: who may call `/peers/`.
pub const PEER_GROUP: &str = "system:shoal-servers";

/// The files of `<data-dir>/pki` every server of a cluster shares: the
/// CAs, the service-account key and the key sealing data at rest. A
/// joining server is given these and issues its own pairs from the CA.
pub const SHARED_FILES: [&str; 7] = [
    "ca.crt",
    "ca.key",
    "sa.key",
    "front-proxy-ca.crt",
    "front-proxy-client.crt",
    "front-proxy-client.key",
    "encryption.key",
];

/// The shared files of the PKI in `dir`, by name (those present).
pub fn shared_files(dir: &Path) -> std::io::Result<std::collections::BTreeMap<String, String>> {
    let mut out = std::collections::BTreeMap::new();
    for name in SHARED_FILES {
        match std::fs::read_to_string(dir.join(name)) {
            Ok(text) => {
                out.insert(name.to_string(), text);
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

/// Writes the shared files `files` into `dir` (owner-only), refusing any
/// name that is not one of [`SHARED_FILES`].
pub fn write_shared(
    dir: &Path,
    files: &std::collections::BTreeMap<String, String>,
) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    for name in files.keys() {
        if !SHARED_FILES.contains(&name.as_str()) {
            return Err(std::io::Error::other(format!(
                "{name} is not a file servers share"
            )));
        }
    }
    // The CA last: its presence says the rest is there.
    for (name, text) in files.iter().filter(|(n, _)| *n != "ca.crt") {
        write_private(&dir.join(name), text)?;
    }
    if let Some(ca) = files.get("ca.crt") {
        std::fs::write(dir.join("ca.crt"), ca)?;
    }
    Ok(())
}

/// The common name of the aggregation layer's client certificate, the one
/// name extension API servers accept request headers from.
pub const FRONT_PROXY_CLIENT: &str = "front-proxy-client";

/// The CA certificate's parameters: issued certificates name their issuer
/// from these.
fn ca_params() -> Result<CertificateParams, rcgen::Error> {
    ca_named("shoal-ca")
}

fn ca_named(cn: &str) -> Result<CertificateParams, rcgen::Error> {
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name.push(DnType::CommonName, cn);
    ca.not_after = rcgen::date_time_ymd(2046, 1, 1);
    Ok(ca)
}

/// What a node agent needs to join the cluster: its client pair
/// (`system:node:NAME` in `system:nodes`) and the kubelet API's serving pair.
#[derive(Debug, Clone)]
pub struct NodeCredentials {
    /// Client pair towards the API.
    pub client: Pair,
    /// Serving pair of the kubelet API, valid for the node's name and address.
    pub serving: Pair,
}

/// Issues credentials for node `name` reachable at `addr`, signed by the CA
/// under `dir` (the `pki` directory of the control plane's data dir).
pub fn issue_node_credentials(
    dir: &Path,
    name: &str,
    addr: &str,
) -> Result<NodeCredentials, PkiError> {
    let key_path = dir.join("ca.key");
    let key_pem = std::fs::read_to_string(&key_path).map_err(|e| {
        std::io::Error::new(
            e.kind(),
            format!(
                "{}: {e} (the CA key is kept by control planes first started with this version)",
                key_path.display()
            ),
        )
    })?;
    let issuer = Issuer::new(ca_params()?, KeyPair::from_pem(&key_pem)?);
    use ExtendedKeyUsagePurpose::{ClientAuth, ServerAuth};
    Ok(NodeCredentials {
        client: leaf(
            &issuer,
            &format!("system:node:{name}"),
            Some("system:nodes"),
            vec![],
            vec![ClientAuth],
        )?,
        serving: leaf(
            &issuer,
            name,
            None,
            vec![name.to_string(), addr.to_string()],
            vec![ServerAuth],
        )?,
    })
}

fn leaf(
    issuer: &Issuer<'_, KeyPair>,
    cn: &str,
    org: Option<&str>,
    sans: Vec<String>,
    usages: Vec<ExtendedKeyUsagePurpose>,
) -> Result<Pair, rcgen::Error> {
    let key = KeyPair::generate()?;
    let mut p = CertificateParams::new(sans)?;
    p.distinguished_name.push(DnType::CommonName, cn);
    if let Some(o) = org {
        p.distinguished_name.push(DnType::OrganizationName, o);
    }
    p.extended_key_usages = usages;
    p.not_after = rcgen::date_time_ymd(2046, 1, 1);
    let cert = p.signed_by(&key, issuer)?;
    Ok(Pair {
        cert: cert.pem(),
        key: key.serialize_pem(),
    })
}

/// A pair a server issues itself from the CA: its file's name, common
/// name, organization, names and usage.
struct LeafSpec<'a> {
    file: &'a str,
    cn: &'a str,
    org: Option<&'a str>,
    sans: Vec<String>,
    usage: ExtendedKeyUsagePurpose,
}

impl Pki {
    /// Loads the PKI from `dir`, creating it on first start. `hosts` are the
    /// names and addresses the API server and node are reached at.
    pub fn load_or_create(dir: &Path, hosts: &[String]) -> Result<Self, PkiError> {
        let path = |n: &str, ext: &str| -> PathBuf { dir.join(format!("{n}.{ext}")) };
        if !path("ca", "crt").exists() {
            std::fs::create_dir_all(dir)?;
            let ca_key = KeyPair::generate()?;
            let ca_cert = ca_params()?.self_signed(&ca_key)?;
            // Kept (owner-only) so certificates for more nodes can be issued.
            write_private(&path("ca", "key"), &ca_key.serialize_pem())?;
            std::fs::write(path("ca", "crt"), ca_cert.pem())?;
        }
        // This server's own pairs, from the CA made here or the one a
        // joining server was given.
        let ca_key = KeyPair::from_pem(&std::fs::read_to_string(path("ca", "key"))?)?;
        let issuer = Issuer::new(ca_params()?, ca_key);
        use ExtendedKeyUsagePurpose::{ClientAuth, ServerAuth};
        let mut sans: Vec<String> = vec![
            "localhost".into(),
            "127.0.0.1".into(),
            "kubernetes".into(),
            "kubernetes.default".into(),
        ];
        sans.extend(hosts.iter().cloned());
        sans.dedup();
        let leaf_of = |file, cn, org, sans, usage| LeafSpec {
            file,
            cn,
            org,
            sans,
            usage,
        };
        let masters = Some("system:masters");
        let leaves = [
            leaf_of(
                "apiserver",
                "kube-apiserver",
                None,
                sans.clone(),
                ServerAuth,
            ),
            leaf_of("admin", "shoal-admin", masters, vec![], ClientAuth),
            leaf_of("node-serving", "shoal-node", None, sans, ServerAuth),
            leaf_of(
                "node-client",
                "system:node:shoal",
                Some("system:nodes"),
                vec![],
                ClientAuth,
            ),
            leaf_of(
                "apiserver-kubelet-client",
                "kube-apiserver-kubelet-client",
                masters,
                vec![],
                ClientAuth,
            ),
            leaf_of("peer", PEER_USER, Some(PEER_GROUP), vec![], ClientAuth),
        ];
        for l in leaves {
            // A serving pair is issued again when the names it must be
            // reached at change (`--tls-san`, a new address); the names
            // it was issued for are kept beside it.
            let names = l.sans.join("\n");
            let stale = !l.sans.is_empty()
                && std::fs::read_to_string(path(l.file, "sans"))
                    .ok()
                    .as_deref()
                    != Some(&names);
            if !path(l.file, "crt").exists() || stale {
                let pair = leaf(&issuer, l.cn, l.org, l.sans, vec![l.usage])?;
                write_private(&path(l.file, "key"), &pair.key)?;
                std::fs::write(path(l.file, "crt"), &pair.cert)?;
                if !names.is_empty() {
                    std::fs::write(path(l.file, "sans"), &names)?;
                }
            }
        }
        if !path("front-proxy-ca", "crt").exists() {
            // Its own CA, made also for data dirs from before aggregation.
            let key = KeyPair::generate()?;
            let ca = ca_named("shoal-front-proxy-ca")?;
            let cert = ca.self_signed(&key)?;
            let issuer = Issuer::new(ca, key);
            let client = leaf(
                &issuer,
                FRONT_PROXY_CLIENT,
                None,
                vec![],
                vec![ExtendedKeyUsagePurpose::ClientAuth],
            )?;
            std::fs::write(path("front-proxy-client", "crt"), &client.cert)?;
            write_private(&path("front-proxy-client", "key"), &client.key)?;
            std::fs::write(path("front-proxy-ca", "crt"), cert.pem())?;
        }
        if !path("sa", "key").exists() {
            // Made also for data dirs from before service-account tokens.
            let key = tokens::Tokens::generate_key().map_err(PkiError::Key)?;
            write_private(&path("sa", "key"), &key)?;
        }
        let read = |n: &str| -> Result<Pair, PkiError> {
            Ok(Pair {
                cert: std::fs::read_to_string(path(n, "crt"))?,
                key: std::fs::read_to_string(path(n, "key"))?,
            })
        };
        Ok(Self {
            ca: std::fs::read_to_string(path("ca", "crt"))?,
            apiserver: read("apiserver")?,
            admin: read("admin")?,
            node_serving: read("node-serving")?,
            node_client: read("node-client")?,
            apiserver_kubelet_client: read("apiserver-kubelet-client")?,
            front_proxy_ca: std::fs::read_to_string(path("front-proxy-ca", "crt"))?,
            front_proxy_client: read("front-proxy-client")?,
            peer: read("peer")?,
            ca_key: std::fs::read_to_string(path("ca", "key"))?,
            service_account_key: std::fs::read_to_string(path("sa", "key"))?,
        })
    }

    /// Signs a PEM certificate request for `signer` (see [`signer`]).
    pub fn sign_request(
        &self,
        csr_pem: &str,
        signer: &str,
        validity_secs: u64,
    ) -> Result<String, String> {
        signer::sign_request(&self.ca_key, csr_pem, signer, validity_secs)
    }

    /// A kubeconfig for `server` authenticating with `pair`.
    pub fn kubeconfig(&self, server: &str, user: &str, pair: &Pair) -> String {
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s.as_bytes());
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: shoal\n  cluster:\n    server: {server}\n    certificate-authority-data: {}\nusers:\n- name: {user}\n  user:\n    client-certificate-data: {}\n    client-key-data: {}\ncontexts:\n- name: shoal\n  context:\n    cluster: shoal\n    user: {user}\n    namespace: default\ncurrent-context: shoal\n",
            b64(&self.ca),
            b64(&pair.cert),
            b64(&pair.key)
        )
    }

    /// Root store holding the cluster CA.
    pub fn roots(&self) -> Result<RootCertStore, PkiError> {
        roots(&self.ca)
    }

    /// A server config presenting `pair` that asks for (but does not
    /// require) a client certificate signed by the CA, so requests without
    /// one can be answered with 401.
    pub fn server_config(
        &self,
        pair: &Pair,
        alpn: &[&[u8]],
    ) -> Result<Arc<rustls::ServerConfig>, PkiError> {
        server_config(&self.ca, pair, alpn)
    }

    /// A client config trusting the CA and presenting `pair`.
    pub fn client_config(&self, pair: &Pair) -> Result<Arc<rustls::ClientConfig>, PkiError> {
        let (certs, key) = parse_pair(pair)?;
        let cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| PkiError::Tls(e.to_string()))?
        .with_root_certificates(self.roots()?)
        .with_client_auth_cert(certs, key)
        .map_err(|e| PkiError::Tls(e.to_string()))?;
        Ok(Arc::new(cfg))
    }
}

/// A client config trusting `roots` and presenting no certificate.
pub fn trusting(roots: RootCertStore) -> Result<rustls::ClientConfig, PkiError> {
    Ok(rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| PkiError::Tls(e.to_string()))?
    .with_root_certificates(roots)
    .with_no_client_auth())
}

/// A root store holding the CA certificates in `ca_pem`.
pub fn roots(ca_pem: &str) -> Result<RootCertStore, PkiError> {
    let mut roots = RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots
            .add(c.map_err(|_| PkiError::Pem("ca.crt".into()))?)
            .map_err(|e| PkiError::Tls(e.to_string()))?;
    }
    Ok(roots)
}

/// A server config presenting `pair` that asks for (but does not require) a
/// client certificate signed by a CA of `ca_pem`, so requests without one
/// can be answered with 401.
pub fn server_config(
    ca_pem: &str,
    pair: &Pair,
    alpn: &[&[u8]],
) -> Result<Arc<rustls::ServerConfig>, PkiError> {
    let verifier = WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots(ca_pem)?),
        Arc::new(rustls::crypto::ring::default_provider()),
    )
    .allow_unauthenticated()
    .build()
    .map_err(|e| PkiError::Tls(e.to_string()))?;
    let (certs, key) = parse_pair(pair)?;
    let mut cfg = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| PkiError::Tls(e.to_string()))?
    .with_client_cert_verifier(verifier)
    .with_single_cert(certs, key)
    .map_err(|e| PkiError::Tls(e.to_string()))?;
    cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(cfg))
}

/// A client config presenting `pair` that trusts the CAs in `ca_pem`,
/// or with `None` any server certificate (an APIService's
/// `insecureSkipTLSVerify`).
pub fn proxy_client_config(
    pair: &Pair,
    ca_pem: Option<&str>,
) -> Result<Arc<rustls::ClientConfig>, PkiError> {
    let (certs, key) = parse_pair(pair)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| PkiError::Tls(e.to_string()))?;
    let builder = match ca_pem {
        // An empty bundle trusts nothing, so the handshake says why.
        Some(pem) => builder.with_root_certificates(if pem.trim().is_empty() {
            RootCertStore::empty()
        } else {
            roots(pem)?
        }),
        None => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Unchecked(provider))),
    };
    let cfg = builder
        .with_client_auth_cert(certs, key)
        .map_err(|e| PkiError::Tls(e.to_string()))?;
    Ok(Arc::new(cfg))
}

/// Accepts any server certificate; signatures are still checked, so the
/// server holds the key of the certificate it shows.
#[derive(Debug)]
struct Unchecked(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for Unchecked {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &rustls_pki_types::ServerName<'_>,
        _: &[u8],
        _: rustls_pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

fn parse_pair(
    pair: &Pair,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), PkiError> {
    let certs = CertificateDer::pem_slice_iter(pair.cert.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .ok()
        .filter(|c| !c.is_empty())
        .ok_or_else(|| PkiError::Pem("certificate".into()))?;
    let key = PrivateKeyDer::from_pem_slice(pair.key.as_bytes())
        .map_err(|_| PkiError::Pem("private key".into()))?;
    Ok((certs, key))
}

/// Writes a file only its owner may read (keys, kubeconfigs).
pub fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(text.as_bytes())
}

//! Joining a cluster with a bootstrap token, as a kubelet's TLS bootstrap
//! does, and keeping the node's certificates fresh.
//!
//! 1. The cluster's CA is read from `kube-public/cluster-info` before the
//!    server can be trusted, and trusted only if the ConfigMap carries the
//!    token's signature of it (a detached JWS keyed by the whole token,
//!    which only the cluster knows besides the node).
//! 2. With the token, the node asks for its client certificate
//!    (`kubernetes.io/kube-apiserver-client-kubelet`, approved for valid
//!    tokens), then, as itself, for the kubelet API's serving certificate
//!    (`kubernetes.io/kubelet-serving`).
//! 3. Both are kept under the data directory, so a restart needs no token
//!    while the client certificate is valid, and each is renewed through
//!    the same API at 80% of its lifetime, swapped in without a restart.
//!
//! May import: `client` (the API client).

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use base64::Engine as _;
use k8s_openapi::api::certificates::v1::{
    CertificateSigningRequest, CertificateSigningRequestSpec,
};
use kube::api::{Api, PostParams};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;

use crate::client::{ClientLimits, connect, connect_tls};

/// Where and as whom a node joins.
#[derive(Clone)]
pub struct JoinConfig {
    /// The API server's URL.
    pub server: String,
    /// The bootstrap token (`ID.SECRET`); needed only while the node has
    /// no valid client certificate.
    pub token: Option<String>,
    /// The node's name.
    pub node_name: String,
    /// The node's addresses, named in its serving certificate.
    pub addresses: Vec<IpAddr>,
    /// Where the credentials are kept.
    pub dir: PathBuf,
    /// The client's request rate.
    pub limits: ClientLimits,
}

/// Why a join failed, in words for the person starting the node.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct JoinError(String);

impl JoinError {
    fn new(what: impl Into<String>) -> Self {
        Self(what.into())
    }
}

/// A joined node's API client and kubelet API TLS settings, whose
/// certificates [`Joined::renew`] keeps fresh.
pub struct Joined {
    /// The node's API client, presenting its client certificate.
    pub client: kube::Client,
    /// The kubelet API's TLS settings, presenting its serving certificate.
    pub kubelet_tls: Arc<rustls::ServerConfig>,
    config: JoinConfig,
    client_key: Arc<Current>,
    serving_key: Arc<Current>,
}

/// A PEM certificate and its key.
#[derive(Clone)]
struct Pair {
    cert: String,
    key: String,
}

/// The certificate presented now; replaced when renewed.
#[derive(Debug)]
struct Current(RwLock<Arc<CertifiedKey>>);

impl Current {
    fn new(pair: &Pair) -> Result<Self, JoinError> {
        Ok(Self(RwLock::new(certified(pair)?)))
    }

    fn get(&self) -> Arc<CertifiedKey> {
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn set(&self, pair: &Pair) -> Result<(), JoinError> {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = certified(pair)?;
        Ok(())
    }
}

impl rustls::client::ResolvesClientCert for Current {
    fn resolve(&self, _: &[&[u8]], _: &[rustls::SignatureScheme]) -> Option<Arc<CertifiedKey>> {
        Some(self.get())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

impl rustls::server::ResolvesServerCert for Current {
    fn resolve(&self, _: rustls::server::ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.get())
    }
}

fn certified(pair: &Pair) -> Result<Arc<CertifiedKey>, JoinError> {
    let certs = CertificateDer::pem_slice_iter(pair.cert.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| JoinError::new(format!("a certificate the cluster signed: {e:?}")))?;
    let key = PrivateKeyDer::from_pem_slice(pair.key.as_bytes())
        .map_err(|e| JoinError::new(format!("the node's key: {e:?}")))?;
    let key = rustls::crypto::ring::sign::any_supported_type(&key)
        .map_err(|e| JoinError::new(format!("the node's key: {e}")))?;
    Ok(Arc::new(CertifiedKey::new(certs, key)))
}

/// The file names of what is kept.
const CA: &str = "ca.crt";
const CLIENT: (&str, &str) = ("client.crt", "client.key");
const SERVING: (&str, &str) = ("kubelet.crt", "kubelet.key");

/// Joins (or, with credentials kept from an earlier join, rejoins) the
/// cluster at `config.server`.
pub async fn join(config: JoinConfig) -> Result<Joined, JoinError> {
    private_dir(&config.dir)?;
    let kept = |name: (&str, &str)| -> Option<Pair> {
        let pair = Pair {
            cert: std::fs::read_to_string(config.dir.join(name.0)).ok()?,
            key: std::fs::read_to_string(config.dir.join(name.1)).ok()?,
        };
        let (_, not_after) = validity(&pair.cert)?;
        (not_after > now_secs()).then_some(pair)
    };
    let ca_kept = std::fs::read_to_string(config.dir.join(CA)).ok();
    let (ca, client_pair) = match (ca_kept, kept(CLIENT)) {
        (Some(ca), Some(pair)) => (ca, pair),
        _ => {
            let token = config.token.as_deref().ok_or_else(|| {
                JoinError::new(format!(
                    "node {} has no valid credentials in {}: pass --token to join",
                    config.node_name,
                    config.dir.display()
                ))
            })?;
            let ca = discover(&config.server, token, config.limits).await?;
            write(&config.dir.join(CA), &ca, false)?;
            let with_token = bootstrap_client(&config.server, &ca, token, config.limits)?;
            let pair = request(&with_token, &config, Kind::Client).await?;
            save(&config.dir, CLIENT, &pair)?;
            (ca, pair)
        }
    };
    let client_key = Arc::new(Current::new(&client_pair)?);
    let roots = roots(&ca)?;
    let client = node_client(&config, roots.clone(), client_key.clone())?;
    let serving_pair = match kept(SERVING) {
        Some(pair) => pair,
        None => {
            let pair = request(&client, &config, Kind::Serving).await?;
            save(&config.dir, SERVING, &pair)?;
            pair
        }
    };
    let serving_key = Arc::new(Current::new(&serving_pair)?);
    write(
        &config.dir.join("kubeconfig"),
        &kubeconfig(&config, &ca, &client_pair),
        true,
    )?;
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        Arc::new(rustls::crypto::ring::default_provider()),
    )
    .allow_unauthenticated()
    .build()
    .map_err(|e| JoinError::new(format!("the cluster's CA: {e}")))?;
    let mut tls = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| JoinError::new(e.to_string()))?
    .with_client_cert_verifier(verifier)
    .with_cert_resolver(serving_key.clone());
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Joined {
        client,
        kubelet_tls: Arc::new(tls),
        config,
        client_key,
        serving_key,
    })
}

impl Joined {
    /// Renews each certificate at 80% of its lifetime, for as long as the
    /// task runs; a failed renewal is tried again, sooner each time the
    /// expiry comes closer.
    pub fn renew(&self) -> tokio::task::JoinHandle<()> {
        let (client, config) = (self.client.clone(), self.config.clone());
        let keys = [
            (Kind::Client, self.client_key.clone()),
            (Kind::Serving, self.serving_key.clone()),
        ];
        tokio::spawn(async move {
            loop {
                let now = now_secs();
                let due = keys
                    .iter()
                    .map(|(kind, key)| (*kind, renewal_due(&key.get(), now)))
                    .min_by_key(|(_, at)| *at);
                let Some((kind, at)) = due else { return };
                let wait = (at - now).max(0) as u64;
                tokio::time::sleep(Duration::from_secs(wait)).await;
                let key = &keys.iter().find(|(k, _)| *k == kind).expect("listed").1;
                match request(&client, &config, kind).await {
                    Ok(pair) => {
                        let saved =
                            save(&config.dir, kind.files(), &pair).and_then(|()| key.set(&pair));
                        match saved {
                            Ok(()) => tracing::info!("renewed the node's {}", kind.what()),
                            Err(e) => tracing::warn!("renewing the node's {}: {e}", kind.what()),
                        }
                    }
                    Err(e) => {
                        tracing::warn!("renewing the node's {}: {e}", kind.what());
                        tokio::time::sleep(Duration::from_secs(30)).await;
                    }
                }
            }
        })
    }
}

/// When a certificate should be renewed: at 80% of its lifetime, or now
/// when it cannot be read (seconds since the epoch).
fn renewal_due(key: &CertifiedKey, now: i64) -> i64 {
    let Some(cert) = key.cert.first() else {
        return now;
    };
    let Ok((_, c)) = x509_parser::parse_x509_certificate(cert.as_ref()) else {
        return now;
    };
    let (from, to) = (
        c.validity().not_before.timestamp(),
        c.validity().not_after.timestamp(),
    );
    from + (to - from) * 4 / 5
}

/// The validity (not before, not after) of a PEM certificate.
fn validity(pem: &str) -> Option<(i64, i64)> {
    let der = CertificateDer::from_pem_slice(pem.as_bytes()).ok()?;
    let (_, c) = x509_parser::parse_x509_certificate(der.as_ref()).ok()?;
    Some((
        c.validity().not_before.timestamp(),
        c.validity().not_after.timestamp(),
    ))
}

/// Which of the node's certificates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Client,
    Serving,
}

impl Kind {
    fn signer(self) -> &'static str {
        match self {
            Kind::Client => "kubernetes.io/kube-apiserver-client-kubelet",
            Kind::Serving => "kubernetes.io/kubelet-serving",
        }
    }

    fn usages(self) -> Vec<String> {
        let last = match self {
            Kind::Client => "client auth",
            Kind::Serving => "server auth",
        };
        vec!["digital signature".into(), last.into()]
    }

    fn files(self) -> (&'static str, &'static str) {
        match self {
            Kind::Client => CLIENT,
            Kind::Serving => SERVING,
        }
    }

    fn what(self) -> &'static str {
        match self {
            Kind::Client => "client certificate",
            Kind::Serving => "serving certificate",
        }
    }
}

/// The token's ID and secret, if it has a bootstrap token's form.
fn split_token(token: &str) -> Option<(&str, &str)> {
    let (id, secret) = token.split_once('.')?;
    let ok = |s: &str, n: usize| {
        s.len() == n
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    };
    (ok(id, 6) && ok(secret, 16)).then_some((id, secret))
}

/// Reads the cluster's CA from `cluster-info`, trusting it only when the
/// token signed the kubeconfig holding it.
pub async fn discover(
    server: &str,
    token: &str,
    limits: ClientLimits,
) -> Result<String, JoinError> {
    let (id, _) = split_token(token).ok_or_else(|| {
        JoinError::new(
            "the token is not a bootstrap token: it has the form [a-z0-9]{6}.[a-z0-9]{16}",
        )
    })?;
    let mut cfg = kube::Config::new(
        server
            .parse()
            .map_err(|e| JoinError::new(format!("the server URL {server:?}: {e}")))?,
    );
    // Nothing can be checked before the CA is known; what is read is
    // checked against the token's signature instead.
    cfg.accept_invalid_certs = true;
    let client = connect(&cfg, limits).map_err(|e| JoinError::new(e.to_string()))?;
    let api: Api<k8s_openapi::api::core::v1::ConfigMap> = Api::namespaced(client, "kube-public");
    let info = api.get("cluster-info").await.map_err(|e| {
        JoinError::new(format!(
            "reading kube-public/cluster-info from {server}: {e}"
        ))
    })?;
    let data = info.data.unwrap_or_default();
    let kubeconfig = data
        .get("kubeconfig")
        .ok_or_else(|| JoinError::new("kube-public/cluster-info holds no kubeconfig"))?;
    let signature = data.get(&format!("jws-kubeconfig-{id}")).ok_or_else(|| {
        JoinError::new(format!(
            "the cluster knows no signing token with ID {id}: it was deleted, has expired, or belongs to another cluster"
        ))
    })?;
    if !signed_by(signature, kubeconfig, token) {
        return Err(JoinError::new(format!(
            "the cluster's signature with token {id} does not match the token given: the server is not the one the token is for"
        )));
    }
    let parsed = kube::config::Kubeconfig::from_yaml(kubeconfig)
        .map_err(|e| JoinError::new(format!("cluster-info's kubeconfig: {e}")))?;
    let ca = parsed
        .clusters
        .first()
        .and_then(|c| c.cluster.as_ref())
        .and_then(|c| c.certificate_authority_data.as_deref())
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(|| JoinError::new("cluster-info's kubeconfig names no CA"))?;
    Ok(ca)
}

/// Whether `jws` (`HEADER..SIGNATURE`, HS256) signs `payload` with `token`.
fn signed_by(jws: &str, payload: &str, token: &str) -> bool {
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let Some((header, signature)) = jws.split_once("..") else {
        return false;
    };
    let alg_ok = b64
        .decode(header)
        .ok()
        .and_then(|h| serde_json::from_slice::<serde_json::Value>(&h).ok())
        .is_some_and(|h| h["alg"] == "HS256");
    let Ok(signature) = b64.decode(signature) else {
        return false;
    };
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, token.as_bytes());
    let signed = format!("{header}.{}", b64.encode(payload));
    alg_ok && ring::hmac::verify(&key, signed.as_bytes(), &signature).is_ok()
}

fn roots(ca: &str) -> Result<rustls::RootCertStore, JoinError> {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(ca.as_bytes()) {
        let c = c.map_err(|e| JoinError::new(format!("the cluster's CA: {e:?}")))?;
        roots
            .add(c)
            .map_err(|e| JoinError::new(format!("the cluster's CA: {e}")))?;
    }
    Ok(roots)
}

fn server_config(server: &str) -> Result<kube::Config, JoinError> {
    Ok(kube::Config::new(server.parse().map_err(|e| {
        JoinError::new(format!("the server URL {server:?}: {e}"))
    })?))
}

/// A client trusting the CA and presenting the bootstrap token.
fn bootstrap_client(
    server: &str,
    ca: &str,
    token: &str,
    limits: ClientLimits,
) -> Result<kube::Client, JoinError> {
    let mut cfg = server_config(server)?;
    cfg.root_cert = Some(
        CertificateDer::pem_slice_iter(ca.as_bytes())
            .filter_map(Result::ok)
            .map(|c| c.to_vec())
            .collect(),
    );
    cfg.headers.push((
        http::header::AUTHORIZATION,
        format!("Bearer {token}")
            .parse()
            .map_err(|_| JoinError::new("the token is not a valid header value"))?,
    ));
    connect(&cfg, limits).map_err(|e| JoinError::new(e.to_string()))
}

/// The node's own client: the CA trusted, the current client certificate
/// presented on each new connection.
fn node_client(
    config: &JoinConfig,
    roots: rustls::RootCertStore,
    key: Arc<Current>,
) -> Result<kube::Client, JoinError> {
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| JoinError::new(e.to_string()))?
    .with_root_certificates(roots)
    .with_client_cert_resolver(key);
    connect_tls(&server_config(&config.server)?, tls, config.limits)
        .map_err(|e| JoinError::new(e.to_string()))
}

/// Asks the cluster for a certificate of `kind` for a new key and waits
/// until it is issued (at most five minutes).
async fn request(
    client: &kube::Client,
    config: &JoinConfig,
    kind: Kind,
) -> Result<Pair, JoinError> {
    let node = &config.node_name;
    let key = rcgen::KeyPair::generate().map_err(|e| JoinError::new(e.to_string()))?;
    let mut params = rcgen::CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, format!("system:node:{node}"));
    params
        .distinguished_name
        .push(rcgen::DnType::OrganizationName, "system:nodes");
    if kind == Kind::Serving {
        let dns = rcgen::string::Ia5String::try_from(node.as_str())
            .map_err(|e| JoinError::new(format!("node name {node:?}: {e}")))?;
        params.subject_alt_names = std::iter::once(rcgen::SanType::DnsName(dns))
            .chain(
                config
                    .addresses
                    .iter()
                    .map(|ip| rcgen::SanType::IpAddress(*ip)),
            )
            .collect();
    }
    let csr = params
        .serialize_request(&key)
        .and_then(|r| r.pem())
        .map_err(|e| JoinError::new(e.to_string()))?;
    let api: Api<CertificateSigningRequest> = Api::all(client.clone());
    let object = CertificateSigningRequest {
        metadata: kube::api::ObjectMeta {
            generate_name: Some(match kind {
                Kind::Client => "node-csr-".into(),
                Kind::Serving => "node-serving-csr-".into(),
            }),
            ..Default::default()
        },
        spec: CertificateSigningRequestSpec {
            request: k8s_openapi::ByteString(csr.into_bytes()),
            signer_name: kind.signer().into(),
            usages: Some(kind.usages()),
            ..Default::default()
        },
        status: None,
    };
    let created = api
        .create(&PostParams::default(), &object)
        .await
        .map_err(|e| JoinError::new(format!("asking for the node's {}: {e}", kind.what())))?;
    let name = created.metadata.name.unwrap_or_default();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(300);
    loop {
        let got = api.get(&name).await;
        if let Ok(csr) = &got {
            let status = csr.status.as_ref();
            if let Some(cert) = status.and_then(|s| s.certificate.as_ref()) {
                let cert = String::from_utf8(cert.0.clone())
                    .map_err(|_| JoinError::new("the issued certificate is not PEM"))?;
                return Ok(Pair {
                    cert,
                    key: key.serialize_pem(),
                });
            }
            let refused = status
                .and_then(|s| s.conditions.as_ref())
                .into_iter()
                .flatten()
                .find(|c| (c.type_ == "Denied" || c.type_ == "Failed") && c.status == "True");
            if let Some(c) = refused {
                return Err(JoinError::new(format!(
                    "the node's {} request {name} was {}: {}",
                    kind.what(),
                    c.type_.to_lowercase(),
                    c.message.clone().unwrap_or_default()
                )));
            }
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(JoinError::new(format!(
                "the node's {} request {name} was not issued within five minutes; approve it with: kubectl certificate approve {name}",
                kind.what()
            )));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// A kubeconfig with the node's credentials, for people and tools on the
/// node (the agent itself reads the files).
fn kubeconfig(config: &JoinConfig, ca: &str, pair: &Pair) -> String {
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let user = format!("system:node:{}", config.node_name);
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: shoal\n  cluster:\n    server: {server}\n    certificate-authority-data: {ca}\nusers:\n- name: {user}\n  user:\n    client-certificate-data: {cert}\n    client-key-data: {key}\ncontexts:\n- name: {user}\n  context:\n    cluster: shoal\n    user: {user}\ncurrent-context: {user}\n",
        server = config.server,
        ca = b64(ca),
        cert = b64(&pair.cert),
        key = b64(&pair.key),
    )
}

fn save(dir: &Path, files: (&str, &str), pair: &Pair) -> Result<(), JoinError> {
    write(&dir.join(files.1), &pair.key, true)?;
    write(&dir.join(files.0), &pair.cert, false)
}

/// Writes `text` through a temporary file, owner-only when `private`.
fn write(path: &Path, text: &str, private: bool) -> Result<(), JoinError> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let tmp = path.with_extension("tmp");
    let result = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(if private { 0o600 } else { 0o644 })
        .open(&tmp)
        .and_then(|mut f| f.write_all(text.as_bytes()).and_then(|()| f.sync_all()))
        .and_then(|()| std::fs::rename(&tmp, path));
    result.map_err(|e| JoinError::new(format!("writing {}: {e}", path.display())))
}

fn private_dir(dir: &Path) -> Result<(), JoinError> {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::create_dir_all(dir)
        .and_then(|()| std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)))
        .map_err(|e| JoinError::new(format!("creating {}: {e}", dir.display())))
}

fn now_secs() -> i64 {
    jiff::Timestamp::now().as_second()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_made_with_the_token_is_accepted_and_no_other() {
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let token = "abcdef.0123456789abcdef";
        let header = b64.encode(r#"{"alg":"HS256","kid":"abcdef"}"#);
        let sign = |key: &str, payload: &str| {
            let k = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key.as_bytes());
            let tag = ring::hmac::sign(&k, format!("{header}.{}", b64.encode(payload)).as_bytes());
            format!("{header}..{}", b64.encode(tag.as_ref()))
        };
        assert!(signed_by(&sign(token, "kc"), "kc", token));
        assert!(!signed_by(&sign(token, "kc"), "kc2", token));
        assert!(!signed_by(
            &sign("abcdef.0123456789abcdee", "kc"),
            "kc",
            token
        ));
        assert!(!signed_by("garbage", "kc", token));
        let none = b64.encode(r#"{"alg":"none"}"#);
        assert!(!signed_by(&format!("{none}.."), "kc", token));
    }

    #[test]
    fn certificates_are_renewed_at_four_fifths_of_their_lifetime() {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut p = rcgen::CertificateParams::new(vec!["a".to_string()]).unwrap();
        p.not_before = time::OffsetDateTime::from_unix_timestamp(1_000).unwrap();
        p.not_after = time::OffsetDateTime::from_unix_timestamp(11_000).unwrap();
        let cert = p.self_signed(&key).unwrap();
        let pair = Pair {
            cert: cert.pem(),
            key: key.serialize_pem(),
        };
        assert_eq!(renewal_due(&certified(&pair).unwrap(), 0), 9_000);
        assert_eq!(validity(&pair.cert), Some((1_000, 11_000)));
        assert_eq!(
            split_token("abcdef.0123456789abcdef"),
            Some(("abcdef", "0123456789abcdef"))
        );
        assert_eq!(split_token("abcdef-0123456789abcdef"), None);
    }
}

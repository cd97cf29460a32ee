//! Encryption at rest, as kube-apiserver's EncryptionConfiguration: the
//! values of keys under a rule's prefixes are written with the rule's first
//! provider wherever the store persists them (the Raft log, the applied
//! state, snapshots) and read with whichever of its providers wrote them;
//! in memory they stay plain. Sealed bytes start with
//! `k8s:enc:<provider>:v1:<key name>:`, as kube-apiserver's, and
//! authenticate the store key too (AES-GCM's additional data; sealed in
//! front of the value for secretbox), so a ciphertext cannot be moved to
//! another key. Data without the mark is read only where the rule lists `identity`.

use std::borrow::Cow;

use base64::Engine as _;
use crypto_secretbox::XSalsa20Poly1305;
use crypto_secretbox::aead::{Aead, KeyInit};
use ring::aead::{AES_128_GCM, AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};
use serde_json::Value;

use crate::types::{Command, Proposal};

/// What every sealed value starts with.
const ENC: &str = "k8s:enc:";

/// Length of a secretbox nonce.
const SECRETBOX_NONCE: usize = 24;

/// Why sealed data cannot be read, or a provider not made.
#[derive(Debug, thiserror::Error)]
#[error("sealed data: {0}")]
pub struct SealError(String);

/// One way of writing a value: in the clear, or with a named key.
pub enum Provider {
    /// Written as is.
    Identity,
    /// AES-GCM with a 16- or 32-byte key and a random 12-byte nonce.
    AesGcm {
        /// The key's name in the mark.
        name: String,
        /// The key.
        key: Box<LessSafeKey>,
    },
    /// XSalsa20-Poly1305 with a 32-byte key and a random 24-byte nonce.
    SecretBox {
        /// The key's name in the mark.
        name: String,
        /// The key.
        key: Box<XSalsa20Poly1305>,
    },
}

impl std::fmt::Debug for Provider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

fn key_name(name: &str) -> Result<String, SealError> {
    if name.is_empty() || name.contains(':') {
        return Err(SealError(format!("invalid key name {name:?}")));
    }
    Ok(name.to_string())
}

impl Provider {
    /// An `aesgcm` key.
    pub fn aesgcm(name: &str, secret: &[u8]) -> Result<Self, SealError> {
        let algorithm = match secret.len() {
            16 => &AES_128_GCM,
            32 => &AES_256_GCM,
            n => {
                return Err(SealError(format!(
                    "aesgcm key {name:?} has {n} bytes; shoal takes 16 or 32"
                )));
            }
        };
        let key = UnboundKey::new(algorithm, secret)
            .map_err(|_| SealError(format!("aesgcm key {name:?} is not a key")))?;
        Ok(Self::AesGcm {
            name: key_name(name)?,
            key: Box::new(LessSafeKey::new(key)),
        })
    }

    /// A `secretbox` key.
    pub fn secretbox(name: &str, secret: &[u8]) -> Result<Self, SealError> {
        let key = XSalsa20Poly1305::new_from_slice(secret).map_err(|_| {
            SealError(format!(
                "secretbox key {name:?} has {} bytes, not 32",
                secret.len()
            ))
        })?;
        Ok(Self::SecretBox {
            name: key_name(name)?,
            key: Box::new(key),
        })
    }

    /// The mark sealed bytes start with, `None` for identity.
    fn mark(&self) -> Option<String> {
        match self {
            Self::Identity => None,
            Self::AesGcm { name, .. } => Some(format!("{ENC}aesgcm:v1:{name}:")),
            Self::SecretBox { name, .. } => Some(format!("{ENC}secretbox:v1:{name}:")),
        }
    }

    fn describe(&self) -> String {
        match self {
            Self::Identity => "identity".into(),
            Self::AesGcm { name, .. } => format!("aesgcm key {name:?}"),
            Self::SecretBox { name, .. } => format!("secretbox key {name:?}"),
        }
    }

    /// `plain` sealed for `key`, mark included (as it is for identity).
    fn seal<'a>(&self, rng: &SystemRandom, key: &str, plain: &'a [u8]) -> Cow<'a, [u8]> {
        let mark = match self.mark() {
            None => return Cow::Borrowed(plain),
            Some(m) => m,
        };
        let mut out = mark.into_bytes();
        match self {
            Self::Identity => unreachable!("identity has no mark"),
            Self::AesGcm { key: k, .. } => {
                let mut nonce = [0u8; NONCE_LEN];
                rng.fill(&mut nonce).expect("the system's random source");
                let mut data = plain.to_vec();
                k.seal_in_place_append_tag(
                    Nonce::assume_unique_for_key(nonce),
                    Aad::from(key.as_bytes()),
                    &mut data,
                )
                .expect("sealing fits in memory");
                out.extend_from_slice(&nonce);
                out.extend_from_slice(&data);
            }
            Self::SecretBox { key: k, .. } => {
                let mut nonce = [0u8; SECRETBOX_NONCE];
                rng.fill(&mut nonce).expect("the system's random source");
                // secretbox authenticates no additional data: the store key
                // is sealed in front of the value instead.
                let mut msg = Vec::with_capacity(key.len() + 1 + plain.len());
                msg.extend_from_slice(key.as_bytes());
                msg.push(0);
                msg.extend_from_slice(plain);
                let data = k
                    .encrypt((&nonce).into(), msg.as_slice())
                    .expect("sealing fits in memory");
                out.extend_from_slice(&nonce);
                out.extend_from_slice(&data);
            }
        }
        Cow::Owned(out)
    }

    /// The plain bytes of `body`, what follows this provider's mark.
    fn open(&self, key: &str, body: &[u8]) -> Result<Vec<u8>, SealError> {
        let fail = || {
            SealError(format!(
                "{key}: the data does not open with {}",
                self.describe()
            ))
        };
        match self {
            Self::Identity => Ok(body.to_vec()),
            Self::AesGcm { key: k, .. } => {
                if body.len() < NONCE_LEN {
                    return Err(SealError(format!("{key}: truncated")));
                }
                let (nonce, sealed) = body.split_at(NONCE_LEN);
                let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| fail())?;
                let mut data = sealed.to_vec();
                let plain = k
                    .open_in_place(nonce, Aad::from(key.as_bytes()), &mut data)
                    .map_err(|_| fail())?;
                Ok(plain.to_vec())
            }
            Self::SecretBox { key: k, .. } => {
                if body.len() < SECRETBOX_NONCE {
                    return Err(SealError(format!("{key}: truncated")));
                }
                let (nonce, sealed) = body.split_at(SECRETBOX_NONCE);
                let msg = k.decrypt(nonce.into(), sealed).map_err(|_| fail())?;
                msg.strip_prefix(key.as_bytes())
                    .and_then(|rest| rest.strip_prefix(&[0]))
                    .map(<[u8]>::to_vec)
                    .ok_or_else(|| SealError(format!("{key}: sealed for another key")))
            }
        }
    }
}

/// Which keys a rule covers.
type Covers = Box<dyn Fn(&str) -> bool + Send + Sync>;

/// The providers of some keys: the first writes, any of them reads.
pub struct Rule {
    what: String,
    covers: Covers,
    providers: Vec<Provider>,
}

impl std::fmt::Debug for Rule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rule")
            .field("what", &self.what)
            .field("providers", &self.providers)
            .finish()
    }
}

impl Rule {
    /// A rule for the keys `covers` accepts, which `what` names (it is part
    /// of the [`Sealer::fingerprint`]).
    pub fn new(
        what: impl Into<String>,
        covers: impl Fn(&str) -> bool + Send + Sync + 'static,
        providers: Vec<Provider>,
    ) -> Result<Self, SealError> {
        let what = what.into();
        if providers.is_empty() {
            return Err(SealError(format!("no providers for {what}")));
        }
        Ok(Self {
            what,
            covers: Box::new(covers),
            providers,
        })
    }

    /// A rule for keys starting with any of `prefixes`.
    pub fn for_prefixes(
        prefixes: Vec<String>,
        providers: Vec<Provider>,
    ) -> Result<Self, SealError> {
        let what = prefixes.join(",");
        Self::new(
            what,
            move |key| prefixes.iter().any(|p| key.starts_with(p.as_str())),
            providers,
        )
    }
}

/// Seals the values of the keys its rules cover (the first rule covering a
/// key decides).
pub struct Sealer {
    rules: Vec<Rule>,
    rng: SystemRandom,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sealer")
            .field("rules", &self.rules)
            .finish()
    }
}

impl Sealer {
    /// A sealer with `rules`.
    pub fn new(rules: Vec<Rule>) -> Self {
        Self {
            rules,
            rng: SystemRandom::new(),
        }
    }

    /// A new random 32-byte key.
    pub fn generate_key() -> Vec<u8> {
        let mut key = vec![0u8; 32];
        SystemRandom::new()
            .fill(&mut key)
            .expect("the system's random source");
        key
    }

    fn rule(&self, key: &str) -> Option<&Rule> {
        self.rules.iter().find(|r| (r.covers)(key))
    }

    /// Whether a rule covers `key`'s value.
    pub fn applies(&self, key: &str) -> bool {
        self.rule(key).is_some()
    }

    /// What decides how values are written: the write provider of each rule
    /// and its prefixes. Data persisted under another fingerprint is
    /// written again when the store opens.
    pub fn fingerprint(&self) -> String {
        self.rules
            .iter()
            .map(|r| {
                format!(
                    "{}={}",
                    r.what,
                    r.providers[0].mark().unwrap_or_else(|| "identity".into())
                )
            })
            .collect::<Vec<_>>()
            .join(";")
    }

    /// `plain` as it is persisted for `key`.
    pub fn seal<'a>(&self, key: &str, plain: &'a [u8]) -> Cow<'a, [u8]> {
        match self.rule(key) {
            Some(rule) => rule.providers[0].seal(&self.rng, key, plain),
            None => Cow::Borrowed(plain),
        }
    }

    /// The plain bytes of what was persisted for `key`.
    pub fn open<'a>(&self, key: &str, stored: &'a [u8]) -> Result<Cow<'a, [u8]>, SealError> {
        let rule = self.rule(key);
        if !stored.starts_with(ENC.as_bytes()) {
            return match rule {
                Some(r) if !r.providers.iter().any(|p| matches!(p, Provider::Identity)) => {
                    Err(SealError(format!(
                        "{key} is stored in the clear and the encryption configuration \
                         lists no identity provider for it"
                    )))
                }
                _ => Ok(Cow::Borrowed(stored)),
            };
        }
        let unknown = || {
            let end = stored
                .iter()
                .enumerate()
                .filter(|(_, b)| **b == b':')
                .nth(4)
                .map_or(stored.len().min(64), |(i, _)| i);
            SealError(format!(
                "{key} was sealed as {:?}, which the encryption configuration does not list \
                 for it",
                String::from_utf8_lossy(&stored[..end])
            ))
        };
        let rule = rule.ok_or_else(unknown)?;
        for p in &rule.providers {
            if let Some(mark) = p.mark()
                && let Some(body) = stored.strip_prefix(mark.as_bytes())
            {
                return p.open(key, body).map(Cow::Owned);
            }
        }
        Err(unknown())
    }

    /// A value as a log entry or snapshot carries it: sealed into a string.
    /// `None` where the value is written as it is.
    fn seal_value(&self, key: &str, value: &Value) -> Option<Value> {
        let rule = self.rule(key)?;
        let plain = serde_json::to_vec(value).unwrap_or_default();
        match rule.providers[0].seal(&self.rng, key, &plain) {
            Cow::Borrowed(_) => None,
            Cow::Owned(sealed) => Some(Value::String(
                base64::engine::general_purpose::STANDARD.encode(sealed),
            )),
        }
    }

    /// The value a log entry or snapshot carried for `key`: sealed ones
    /// are strings, plain ones objects.
    pub fn open_value(&self, key: &str, value: Value) -> Result<Value, SealError> {
        if !self.applies(key) && !value.is_string() {
            return Ok(value);
        }
        let sealed = match &value {
            Value::String(text) => base64::engine::general_purpose::STANDARD
                .decode(text)
                .ok()
                .filter(|b| b.starts_with(ENC.as_bytes())),
            _ => None,
        };
        match sealed {
            Some(bytes) => {
                let plain = self.open(key, &bytes)?;
                crate::decode(&plain).map_err(|e| SealError(format!("{key}: {e}")))
            }
            None => {
                // In the clear: allowed where the rule lists identity.
                self.open(key, b"{}")?;
                Ok(value)
            }
        }
    }

    /// A value as a snapshot writes it.
    pub fn seal_for_snapshot(&self, key: &str, value: &Value) -> Option<Value> {
        self.seal_value(key, value)
    }

    /// A proposal as the log writes it (sealed values), when it holds any.
    pub fn seal_proposal(&self, p: &Proposal) -> Option<Proposal> {
        let seal = |c: &Command| match c {
            Command::Put { key, value, cond } => {
                self.seal_value(key, value).map(|value| Command::Put {
                    key: key.clone(),
                    value,
                    cond: *cond,
                })
            }
            _ => None,
        };
        match p {
            Proposal::One(c) => seal(c).map(Proposal::One),
            Proposal::Batch(cs) => cs.iter().any(|c| seal(c).is_some()).then(|| {
                Proposal::Batch(
                    cs.iter()
                        .map(|c| seal(c).unwrap_or_else(|| c.clone()))
                        .collect(),
                )
            }),
        }
    }

    /// A proposal as the log read it back, its values opened.
    pub fn open_proposal(&self, p: Proposal) -> Result<Proposal, SealError> {
        let open = |c: Command| -> Result<Command, SealError> {
            match c {
                Command::Put { key, value, cond } => {
                    let value = self.open_value(&key, value)?;
                    Ok(Command::Put { key, value, cond })
                }
                other => Ok(other),
            }
        };
        Ok(match p {
            Proposal::One(c) => Proposal::One(open(c)?),
            Proposal::Batch(cs) => {
                Proposal::Batch(cs.into_iter().map(open).collect::<Result<_, _>>()?)
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::Cond;
    use serde_json::json;

    fn sealer(name: &str) -> Sealer {
        with(vec![
            Provider::aesgcm(name, &Sealer::generate_key()).unwrap(),
        ])
    }

    fn with(providers: Vec<Provider>) -> Sealer {
        Sealer::new(vec![
            Rule::for_prefixes(vec!["/registry/secrets/".into()], providers).unwrap(),
        ])
    }

    const KEY: &str = "/registry/secrets/a/x";

    #[test]
    fn the_first_provider_writes_and_any_listed_one_reads() {
        let (k1, k2) = (Sealer::generate_key(), Sealer::generate_key());
        let old = with(vec![Provider::aesgcm("key1", &k1).unwrap()]);
        let sealed_old = old.seal(KEY, b"password").into_owned();
        let rotated = with(vec![
            Provider::secretbox("key2", &k2).unwrap(),
            Provider::aesgcm("key1", &k1).unwrap(),
            Provider::Identity,
        ]);
        let sealed_new = rotated.seal(KEY, b"password").into_owned();
        assert!(sealed_new.starts_with(b"k8s:enc:secretbox:v1:key2:"));
        assert!(!sealed_new.windows(8).any(|w| w == b"password"));
        for sealed in [&sealed_old, &sealed_new] {
            assert_eq!(&*rotated.open(KEY, sealed).unwrap(), b"password");
        }
        assert_eq!(&*rotated.open(KEY, b"{}").unwrap(), b"{}", "identity reads");
        let err = old.open(KEY, &sealed_new).unwrap_err().to_string();
        assert!(err.contains("k8s:enc:secretbox:v1:key2"), "{err}");
        let err = old.open(KEY, b"{}").unwrap_err().to_string();
        assert!(err.contains("no identity provider"), "{err}");
        assert!(
            old.open("/registry/secrets/a/y", &sealed_old).is_err(),
            "moved to another key"
        );
        assert!(
            rotated.open("/registry/secrets/a/y", &sealed_new).is_err(),
            "moved to another key"
        );
        assert_ne!(old.fingerprint(), rotated.fingerprint());
        let plain = with(vec![
            Provider::Identity,
            Provider::aesgcm("key1", &k1).unwrap(),
        ]);
        assert_eq!(&*plain.seal(KEY, b"password"), b"password");
        assert_eq!(&*plain.open(KEY, &sealed_old).unwrap(), b"password");
        assert_eq!(&*plain.seal("/registry/configmaps/a", b"x"), b"x");
    }

    #[test]
    fn keys_of_the_wrong_size_or_name_are_refused() {
        assert!(Provider::aesgcm("k", &[7; 16]).is_ok());
        for (name, len) in [("k", 24), ("k", 31), ("a:b", 32), ("", 32)] {
            assert!(
                Provider::aesgcm(name, &vec![7; len]).is_err(),
                "{name} {len}"
            );
        }
        assert!(Provider::secretbox("k", &[7; 16]).is_err());
        assert!(Rule::for_prefixes(vec!["/x/".into()], vec![]).is_err());
    }

    #[test]
    fn sealed_bytes_open_only_for_their_key_and_name() {
        let s = sealer("key1");
        let sealed = s.seal("/registry/secrets/a/x", b"password");
        assert!(sealed.starts_with(b"k8s:enc:aesgcm:v1:key1:"));
        assert!(!sealed.windows(8).any(|w| w == b"password"));
        assert_eq!(
            &*s.open("/registry/secrets/a/x", &sealed).unwrap(),
            b"password"
        );
        assert!(
            s.open("/registry/secrets/a/y", &sealed).is_err(),
            "moved to another key"
        );
        assert!(
            sealer("key1")
                .open("/registry/secrets/a/x", &sealed)
                .is_err(),
            "another key"
        );
        assert_eq!(&*s.open("k", b"{\"plain\":1}").unwrap(), b"{\"plain\":1}");
    }

    #[test]
    fn proposals_seal_only_their_secrets() {
        let s = sealer("key1");
        let p = Proposal::Batch(vec![
            Command::Put {
                key: "/registry/secrets/a/x".into(),
                value: json!({"data": {"k": "c2VjcmV0"}}),
                cond: Cond::Any,
            },
            Command::Put {
                key: "/registry/configmaps/a/y".into(),
                value: json!({"data": {"k": "v"}}),
                cond: Cond::Any,
            },
        ]);
        let sealed = s.seal_proposal(&p).unwrap();
        let text = serde_json::to_string(&sealed).unwrap();
        assert!(
            !text.contains("c2VjcmV0") && text.contains("\"v\""),
            "{text}"
        );
        let opened = s
            .open_proposal(serde_json::from_str(&text).unwrap())
            .unwrap();
        assert_eq!(
            serde_json::to_value(&opened).unwrap(),
            serde_json::to_value(&p).unwrap()
        );
        assert!(
            s.seal_proposal(&Proposal::One(Command::Delete {
                key: "/registry/secrets/a/x".into(),
                cond: Cond::Any
            }))
            .is_none()
        );
    }
}

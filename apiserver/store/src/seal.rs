//! Encryption at rest: the values of keys under the sealed prefixes are
//! written AES-256-GCM encrypted wherever the store persists them (the Raft
//! log, the applied state, snapshots), with the key as additional data so a
//! ciphertext cannot be moved to another key; in memory they stay plain.
//! Sealed bytes start with `k8s:enc:aesgcm:v1:<key name>:`, as
//! kube-apiserver's; anything without the mark is read as plain, so a store
//! written before sealing still opens.

use base64::Engine as _;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};
use serde_json::Value;

use crate::types::{Command, Proposal};

const MARK: &str = "k8s:enc:aesgcm:v1:";

/// Seals the values of some keys.
pub struct Sealer {
    key: LessSafeKey,
    name: String,
    prefixes: Vec<String>,
    rng: SystemRandom,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sealer")
            .field("name", &self.name)
            .field("prefixes", &self.prefixes)
            .finish()
    }
}

/// Why sealed data cannot be read.
#[derive(Debug, thiserror::Error)]
#[error("sealed data: {0}")]
pub struct SealError(String);

impl Sealer {
    /// A sealer with a 32-byte key named `name`, for keys starting with any
    /// of `prefixes`.
    pub fn new(name: &str, key: &[u8], prefixes: Vec<String>) -> Result<Self, SealError> {
        if name.is_empty() || name.contains(':') {
            return Err(SealError(format!("invalid key name {name:?}")));
        }
        let key = UnboundKey::new(&AES_256_GCM, key)
            .map_err(|_| SealError("the key must be 32 bytes".into()))?;
        Ok(Self {
            key: LessSafeKey::new(key),
            name: name.to_string(),
            prefixes,
            rng: SystemRandom::new(),
        })
    }

    /// A new random 32-byte key.
    pub fn generate_key() -> Vec<u8> {
        let mut key = vec![0u8; 32];
        SystemRandom::new()
            .fill(&mut key)
            .expect("the system's random source");
        key
    }

    /// Whether `key`'s value is sealed.
    pub fn applies(&self, key: &str) -> bool {
        self.prefixes.iter().any(|p| key.starts_with(p.as_str()))
    }

    /// `plain` sealed for `key`.
    pub fn seal(&self, key: &str, plain: &[u8]) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_LEN];
        self.rng
            .fill(&mut nonce)
            .expect("the system's random source");
        let mut data = plain.to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(key.as_bytes()),
                &mut data,
            )
            .expect("sealing fits in memory");
        let mut out = format!("{MARK}{}:", self.name).into_bytes();
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&data);
        out
    }

    /// The plain bytes of what was stored for `key`: opened when sealed,
    /// as they are otherwise.
    pub fn open<'a>(
        &self,
        key: &str,
        stored: &'a [u8],
    ) -> Result<std::borrow::Cow<'a, [u8]>, SealError> {
        let Some(rest) = stored.strip_prefix(MARK.as_bytes()) else {
            return Ok(std::borrow::Cow::Borrowed(stored));
        };
        let colon = rest
            .iter()
            .position(|b| *b == b':')
            .ok_or_else(|| SealError("no key name".into()))?;
        let (name, rest) = (&rest[..colon], &rest[colon + 1..]);
        if name != self.name.as_bytes() {
            return Err(SealError(format!(
                "{key} was sealed with key {:?}, not {:?}",
                String::from_utf8_lossy(name),
                self.name
            )));
        }
        if rest.len() < NONCE_LEN {
            return Err(SealError(format!("{key}: truncated")));
        }
        let (nonce, sealed) = rest.split_at(NONCE_LEN);
        let mut data = sealed.to_vec();
        let nonce =
            Nonce::try_assume_unique_for_key(nonce).map_err(|_| SealError("bad nonce".into()))?;
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(key.as_bytes()), &mut data)
            .map_err(|_| {
                SealError(format!(
                    "{key}: the data does not open with key {:?}",
                    self.name
                ))
            })?;
        Ok(std::borrow::Cow::Owned(plain.to_vec()))
    }

    /// A value as a log entry or snapshot carries it: sealed into a string.
    fn seal_value(&self, key: &str, value: &Value) -> Value {
        let plain = serde_json::to_vec(value).unwrap_or_default();
        Value::String(base64::engine::general_purpose::STANDARD.encode(self.seal(key, &plain)))
    }

    /// The value a log entry or snapshot carried for `key`.
    pub fn open_value(&self, key: &str, value: Value) -> Result<Value, SealError> {
        if !self.applies(key) {
            return Ok(value);
        }
        let Value::String(text) = &value else {
            return Ok(value);
        };
        let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(text) else {
            return Ok(value);
        };
        if !bytes.starts_with(MARK.as_bytes()) {
            return Ok(value);
        }
        let plain = self.open(key, &bytes)?;
        crate::decode(&plain).map_err(|e| SealError(format!("{key}: {e}")))
    }

    /// A value as a snapshot writes it.
    pub fn seal_for_snapshot(&self, key: &str, value: &Value) -> Option<Value> {
        self.applies(key).then(|| self.seal_value(key, value))
    }

    /// A proposal as the log writes it (sealed values), when it holds any.
    pub fn seal_proposal(&self, p: &Proposal) -> Option<Proposal> {
        let seal = |c: &Command| match c {
            Command::Put { key, value, cond } if self.applies(key) => Some(Command::Put {
                key: key.clone(),
                value: self.seal_value(key, value),
                cond: *cond,
            }),
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
        Sealer::new(
            name,
            &Sealer::generate_key(),
            vec!["/registry/secrets/".into()],
        )
        .unwrap()
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

//! Service-account tokens: JWTs signed with the cluster's service-account
//! key (ES256), with the claims Kubernetes writes (`kubernetes.io`:
//! namespace, service account, and the pod a token is bound to), and the
//! public key as a JWKS so other systems can verify them.

use base64::Engine as _;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::Digest as _;

/// The issuer (and default audience) of the cluster's tokens, as
/// kube-apiserver's `--service-account-issuer` is usually set.
pub const ISSUER: &str = "https://kubernetes.default.svc.cluster.local";

/// A name and uid an object is referred to by.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectRef {
    /// The object's name.
    pub name: String,
    /// The object's uid.
    pub uid: String,
}

/// The `kubernetes.io` claim.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KubernetesClaims {
    /// The service account's namespace.
    pub namespace: String,
    /// The service account.
    pub serviceaccount: ObjectRef,
    /// The pod the token is bound to, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<ObjectRef>,
}

/// A token's claims.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// Issuer.
    pub iss: String,
    /// `system:serviceaccount:NS:NAME`.
    pub sub: String,
    /// Audiences.
    pub aud: Vec<String>,
    /// Expiry, seconds since the epoch.
    pub exp: i64,
    /// Issued at.
    pub iat: i64,
    /// Not before.
    pub nbf: i64,
    /// Token id.
    pub jti: String,
    /// What the token is for.
    #[serde(rename = "kubernetes.io")]
    pub kubernetes: KubernetesClaims,
}

/// Issues and verifies tokens with one key pair.
pub struct Tokens {
    encoding: EncodingKey,
    decoding: DecodingKey,
    kid: String,
    jwk: Value,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokens").field("kid", &self.kid).finish()
    }
}

fn b64url(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

impl Tokens {
    /// The tokens of a P-256 key in PKCS#8 PEM.
    pub fn from_pem(key_pem: &str) -> Result<Self, String> {
        let pair = rcgen::KeyPair::from_pem(key_pem)
            .map_err(|e| format!("the service-account key: {e}"))?;
        let point = pair.public_key_raw();
        if point.len() != 65 || point[0] != 4 {
            return Err("the service-account key is not a P-256 key".into());
        }
        let (x, y) = (b64url(&point[1..33]), b64url(&point[33..]));
        let kid = b64url(&sha2::Sha256::digest(pair.public_key_pem().as_bytes()));
        Ok(Self {
            encoding: EncodingKey::from_ec_pem(key_pem.as_bytes()).map_err(|e| e.to_string())?,
            decoding: DecodingKey::from_ec_components(&x, &y).map_err(|e| e.to_string())?,
            jwk: json!({"use": "sig", "kty": "EC", "kid": kid, "crv": "P-256", "alg": "ES256", "x": x, "y": y}),
            kid,
        })
    }

    /// A new P-256 key in PKCS#8 PEM.
    pub fn generate_key() -> Result<String, String> {
        rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
            .map(|k| k.serialize_pem())
            .map_err(|e| e.to_string())
    }

    /// Signs `claims`.
    pub fn issue(&self, claims: &Claims) -> Result<String, String> {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding).map_err(|e| e.to_string())
    }

    /// The claims of a token this key signed, unexpired, for one of
    /// `audiences`.
    pub fn verify(&self, token: &str, audiences: &[&str]) -> Result<Claims, String> {
        let mut v = Validation::new(Algorithm::ES256);
        v.set_audience(audiences);
        v.set_issuer(&[ISSUER]);
        v.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &v)
            .map(|d| d.claims)
            .map_err(|e| e.to_string())
    }

    /// The public key set (`/openid/v1/jwks`).
    pub fn jwks(&self) -> Value {
        json!({"keys": [self.jwk]})
    }
}

/// The OpenID discovery document (`/.well-known/openid-configuration`).
pub fn openid_configuration(jwks_uri: &str) -> Value {
    json!({
        "issuer": ISSUER,
        "jwks_uri": jwks_uri,
        "response_types_supported": ["id_token"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["ES256"],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(exp_in: i64, aud: &str) -> Claims {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        Claims {
            iss: ISSUER.into(),
            sub: "system:serviceaccount:team:ci".into(),
            aud: vec![aud.into()],
            exp: now + exp_in,
            iat: now,
            nbf: now,
            jti: "j".into(),
            kubernetes: KubernetesClaims {
                namespace: "team".into(),
                serviceaccount: ObjectRef {
                    name: "ci".into(),
                    uid: "u".into(),
                },
                pod: None,
            },
        }
    }

    #[test]
    fn tokens_verify_only_with_their_key_audience_and_time() {
        let tokens = Tokens::from_pem(&Tokens::generate_key().unwrap()).unwrap();
        let other = Tokens::from_pem(&Tokens::generate_key().unwrap()).unwrap();
        let good = tokens.issue(&claims(600, ISSUER)).unwrap();
        assert_eq!(
            tokens.verify(&good, &[ISSUER]).unwrap(),
            claims(600, ISSUER).clone_with(&tokens.verify(&good, &[ISSUER]).unwrap())
        );
        assert!(other.verify(&good, &[ISSUER]).is_err(), "another key");
        assert!(
            tokens.verify(&good, &["vault"]).is_err(),
            "another audience"
        );
        let expired = tokens.issue(&claims(-3600, ISSUER)).unwrap();
        assert!(tokens.verify(&expired, &[ISSUER]).is_err());
        let mut tampered = good.clone();
        tampered.insert(good.find('.').unwrap() + 5, 'x');
        assert!(tokens.verify(&tampered, &[ISSUER]).is_err());
        assert!(tokens.verify("not.a.token", &[ISSUER]).is_err());
        let jwks = tokens.jwks();
        assert_eq!(jwks["keys"][0]["kty"], "EC");
        assert_eq!(jwks["keys"][0]["kid"].as_str().unwrap(), tokens.kid);
    }

    impl Claims {
        /// These claims with `other`'s times, which the test cannot know.
        fn clone_with(&self, other: &Claims) -> Claims {
            Claims {
                exp: other.exp,
                iat: other.iat,
                nbf: other.nbf,
                ..self.clone()
            }
        }
    }
}

//! Bootstrap tokens, as Kubernetes keeps them: a token `ID.SECRET`
//! (`[a-z0-9]{6}.[a-z0-9]{16}`) is a Secret `kube-system/bootstrap-token-ID`
//! of type `bootstrap.kubernetes.io/token` whose data says what it may be
//! used for (`usage-bootstrap-authentication`, `usage-bootstrap-signing`),
//! until when (`expiration`, RFC 3339) and which extra groups
//! (`auth-extra-groups`, each `system:bootstrappers:*`) it brings.
//! A joining node checks the cluster's CA with a detached JWS (HS256, keyed
//! by the whole token) over the `cluster-info` kubeconfig.

use base64::Engine as _;
use serde_json::Value;

/// The Secret type of bootstrap tokens.
pub const SECRET_TYPE: &str = "bootstrap.kubernetes.io/token";
/// The prefix of a bootstrap token Secret's name.
pub const SECRET_PREFIX: &str = "bootstrap-token-";
/// The group every bootstrap token's user is in.
pub const GROUP: &str = "system:bootstrappers";
/// The prefix of the user a bootstrap token authenticates as.
pub const USER_PREFIX: &str = "system:bootstrap:";
/// The namespace and name of the ConfigMap a joining node reads the CA from.
pub const CLUSTER_INFO: (&str, &str) = ("kube-public", "cluster-info");
/// The prefix of the ConfigMap key holding a token's signature.
pub const JWS_PREFIX: &str = "jws-kubeconfig-";

/// A token's ID and secret, if `token` has the bootstrap token's form.
pub fn parse(token: &str) -> Option<(&str, &str)> {
    let (id, secret) = token.split_once('.')?;
    let ok = |s: &str, n: usize| {
        s.len() == n
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    };
    (ok(id, 6) && ok(secret, 16)).then_some((id, secret))
}

/// A bootstrap token as its Secret describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    /// The public part.
    pub id: String,
    /// The private part.
    pub secret: String,
    /// When it stops being valid (seconds since the epoch), if ever.
    pub expires: Option<i64>,
    /// Whether it authenticates API requests.
    pub authentication: bool,
    /// Whether it signs the `cluster-info` ConfigMap.
    pub signing: bool,
    /// Groups beyond `system:bootstrappers`.
    pub extra_groups: Vec<String>,
    /// What it is for, as its creator said.
    pub description: String,
}

impl Token {
    /// The token a Secret holds, if it is a well-formed bootstrap token
    /// Secret (its type, its name matching its ID, both parts valid).
    pub fn from_secret(secret: &Value) -> Option<Self> {
        if secret.get("type").and_then(Value::as_str) != Some(SECRET_TYPE) {
            return None;
        }
        let data = secret.get("data")?.as_object()?;
        let field = |k: &str| -> Option<String> {
            let b = base64::engine::general_purpose::STANDARD
                .decode(data.get(k)?.as_str()?)
                .ok()?;
            String::from_utf8(b).ok()
        };
        let id = field("token-id")?;
        let secret_part = field("token-secret")?;
        let name = secret.pointer("/metadata/name").and_then(Value::as_str)?;
        parse(&format!("{id}.{secret_part}"))?;
        if name != format!("{SECRET_PREFIX}{id}") {
            return None;
        }
        // An expiration that cannot be read makes the token unusable.
        let expires = field("expiration").map(|t| {
            t.parse::<jiff::Timestamp>()
                .map(|t| t.as_second())
                .unwrap_or(i64::MIN)
        });
        let extra_groups = field("auth-extra-groups")
            .map(|g| {
                g.split(',')
                    .map(str::trim)
                    .filter(|g| !g.is_empty())
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        Some(Self {
            id,
            secret: secret_part,
            expires,
            authentication: field("usage-bootstrap-authentication").as_deref() == Some("true"),
            signing: field("usage-bootstrap-signing").as_deref() == Some("true"),
            extra_groups,
            description: field("description").unwrap_or_default(),
        })
    }

    /// Whether the token has expired at `now` (seconds since the epoch).
    pub fn expired(&self, now: i64) -> bool {
        self.expires.is_some_and(|e| e <= now)
    }

    /// The user and groups the token authenticates as: only the extra
    /// groups under `system:bootstrappers:` count, as in Kubernetes.
    pub fn user(&self) -> crate::user::User {
        let mut groups = vec![GROUP.to_string()];
        groups.extend(
            self.extra_groups
                .iter()
                .filter(|g| g.starts_with("system:bootstrappers:"))
                .cloned(),
        );
        groups.push(crate::user::AUTHENTICATED.to_string());
        crate::user::User {
            name: format!("{USER_PREFIX}{}", self.id),
            groups,
        }
    }

    /// Whether `presented` is this token's secret, compared in constant time.
    pub fn matches(&self, presented: &str) -> bool {
        let (a, b) = (self.secret.as_bytes(), presented.as_bytes());
        a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }
}

/// The detached JWS (`HEADER..SIGNATURE`, HS256 keyed by `id.secret`) of
/// `payload`, as kube-controller-manager's bootstrap signer writes it.
pub fn detached_jws(id: &str, secret: &str, payload: &str) -> String {
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let header = b64.encode(format!(r#"{{"alg":"HS256","kid":"{id}"}}"#));
    let signed = format!("{header}.{}", b64.encode(payload));
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, format!("{id}.{secret}").as_bytes());
    let tag = ring::hmac::sign(&key, signed.as_bytes());
    format!("{header}..{}", b64.encode(tag.as_ref()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn secret(name: &str, fields: &[(&str, &str)]) -> Value {
        let b64 = base64::engine::general_purpose::STANDARD;
        let data: serde_json::Map<String, Value> = fields
            .iter()
            .map(|(k, v)| (k.to_string(), json!(b64.encode(v))))
            .collect();
        json!({"metadata": {"name": name}, "type": SECRET_TYPE, "data": data})
    }

    #[test]
    fn tokens_have_one_form() {
        assert_eq!(
            parse("abcdef.0123456789abcdef"),
            Some(("abcdef", "0123456789abcdef"))
        );
        for bad in [
            "abcdef0123456789abcdef",
            "ABCDEF.0123456789abcdef",
            "abcde.0123456789abcdef",
            "abcdef.0123456789abcde",
            "abcdef.0123456789abcdef.x",
            "",
            "abcdef.",
        ] {
            assert_eq!(parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_secret_says_what_its_token_may_do() {
        let s = secret(
            "bootstrap-token-abcdef",
            &[
                ("token-id", "abcdef"),
                ("token-secret", "0123456789abcdef"),
                ("usage-bootstrap-authentication", "true"),
                ("expiration", "2030-01-01T00:00:00Z"),
                (
                    "auth-extra-groups",
                    "system:bootstrappers:workers, system:masters",
                ),
            ],
        );
        let t = Token::from_secret(&s).unwrap();
        assert!(t.authentication && !t.signing);
        assert!(!t.expired(jiff::Timestamp::now().as_second()));
        assert!(t.expired(1_900_000_000));
        assert!(t.matches("0123456789abcdef") && !t.matches("0123456789abcdee") && !t.matches(""));
        // A token cannot make itself a member of any group but the
        // bootstrappers'.
        assert_eq!(t.user().name, "system:bootstrap:abcdef");
        assert_eq!(
            t.user().groups,
            [
                "system:bootstrappers",
                "system:bootstrappers:workers",
                "system:authenticated"
            ]
        );
        // Its name must match its ID; its type must be the bootstrap one.
        let mut renamed = s.clone();
        renamed["metadata"]["name"] = json!("bootstrap-token-zzzzzz");
        assert_eq!(Token::from_secret(&renamed), None);
        let mut opaque = s.clone();
        opaque["type"] = json!("Opaque");
        assert_eq!(Token::from_secret(&opaque), None);
        // An unreadable expiration is an expired token.
        let bad = secret(
            "bootstrap-token-abcdef",
            &[
                ("token-id", "abcdef"),
                ("token-secret", "0123456789abcdef"),
                ("expiration", "soon"),
            ],
        );
        assert!(Token::from_secret(&bad).unwrap().expired(0));
    }

    #[test]
    fn the_signature_is_keyed_by_the_whole_token() {
        let a = detached_jws("abcdef", "0123456789abcdef", "kubeconfig");
        let (header, sig) = a.split_once("..").unwrap();
        assert!(!header.is_empty() && !sig.is_empty());
        assert_eq!(a, detached_jws("abcdef", "0123456789abcdef", "kubeconfig"));
        assert_ne!(a, detached_jws("abcdef", "0123456789abcdee", "kubeconfig"));
        assert_ne!(a, detached_jws("abcdef", "0123456789abcdef", "kubeconfig2"));
    }
}

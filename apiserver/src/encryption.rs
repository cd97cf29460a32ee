//! Encryption at rest, configured as kube-apiserver's
//! `--encryption-provider-config`: an `apiserver.config.k8s.io/v1`
//! EncryptionConfiguration becomes the store's sealing rules. Without one,
//! Secrets are sealed with an AES-GCM key made at first start.
//!
//! Rotating a key takes one restart with the new key first and the old one
//! still listed: the store writes everything again the new way when it
//! opens, after which the old key may go.

use std::path::Path;
use std::sync::Arc;

use base64::Engine as _;
use serde_json::Value;
use shoal_store::{Provider, Rule, Sealer};

/// The sealer an EncryptionConfiguration file asks for.
pub fn from_file(path: &Path) -> Result<Arc<Sealer>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    parse(&text)
        .map(|rules| Arc::new(Sealer::new(rules)))
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// The sealer used without a configuration: Secrets sealed with the key in
/// `pki_dir/encryption.key` (32 random bytes made at first start, owner
/// only, as the CA key is), and read in the clear as a store written before
/// sealing holds them.
pub fn default_sealer(pki_dir: &Path) -> Result<Arc<Sealer>, String> {
    let path = pki_dir.join("encryption.key");
    let b64 = base64::engine::general_purpose::STANDARD;
    if !path.exists() {
        shoal_pki::write_private(&path, &b64.encode(Sealer::generate_key()))
            .map_err(|e| format!("{}: {e}", path.display()))?;
    }
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let key = b64
        .decode(text.trim())
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let key = Provider::aesgcm("key1", &key).map_err(|e| format!("{}: {e}", path.display()))?;
    let rule = Rule::new(
        "secrets",
        covers(vec!["secrets".into()]),
        vec![key, Provider::Identity],
    )
    .map_err(|e| e.to_string())?;
    Ok(Arc::new(Sealer::new(vec![rule])))
}

/// The rules of an EncryptionConfiguration (YAML or JSON).
pub fn parse(text: &str) -> Result<Vec<Rule>, String> {
    let doc = shoal_http::yaml_to_json(text.as_bytes()).map_err(|e| e.message)?;
    if doc.get("kind").and_then(Value::as_str) != Some("EncryptionConfiguration")
        || !matches!(
            doc.get("apiVersion").and_then(Value::as_str),
            Some("apiserver.config.k8s.io/v1" | "apiserver.config.k8s.io/v1beta1")
        )
    {
        return Err("expected an apiserver.config.k8s.io/v1 EncryptionConfiguration".into());
    }
    let entries = non_empty(&doc, "resources", "resources: at least one entry")?;
    let mut rules = Vec::new();
    for (i, entry) in entries.iter().enumerate() {
        let at = format!("resources[{i}]");
        let patterns = non_empty(
            entry,
            "resources",
            &format!("{at}.resources: at least one resource"),
        )?
        .iter()
        .enumerate()
        .map(|(j, r)| pattern(r).map_err(|e| format!("{at}.resources[{j}]: {e}")))
        .collect::<Result<Vec<_>, _>>()?;
        let providers = non_empty(
            entry,
            "providers",
            &format!("{at}.providers: at least one provider"),
        )?
        .iter()
        .enumerate()
        .map(|(j, p)| providers(p).map_err(|e| format!("{at}.providers[{j}]: {e}")))
        .collect::<Result<Vec<_>, _>>()?
        .into_iter()
        .flatten()
        .collect();
        rules.push(
            Rule::new(patterns.join(","), covers(patterns), providers)
                .map_err(|e| format!("{at}: {e}"))?,
        );
    }
    Ok(rules)
}

/// The list `field` of `value`, which must hold `what`.
fn non_empty<'a>(value: &'a Value, field: &str, what: &str) -> Result<&'a Vec<Value>, String> {
    value
        .get(field)
        .and_then(Value::as_array)
        .filter(|a| !a.is_empty())
        .ok_or_else(|| format!("{what} is required"))
}

/// A resource as the configuration names it: `secrets`,
/// `deployments.apps`, `*.apps`, `*.` (the core group) or `*.*`.
fn pattern(value: &Value) -> Result<String, String> {
    let text = value
        .as_str()
        .ok_or("must be a string")?
        .to_ascii_lowercase();
    let valid_name = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
    };
    let ok = match text.strip_prefix("*.") {
        Some("" | "*") => true,
        Some(group) => valid_name(group),
        None => valid_name(&text),
    };
    if !ok {
        return Err(format!(
            "{text:?} is not a resource (`secrets`, `deployments.apps`), a group's \
             (`*.apps`, `*.` for the core group) or every one (`*.*`)"
        ));
    }
    Ok(text)
}

/// Which store keys the resource patterns cover: a key starts with its
/// resource, `plural` for the core group and `plural.group` otherwise.
fn covers(patterns: Vec<String>) -> impl Fn(&str) -> bool + Send + Sync + 'static {
    move |key: &str| {
        let resource = key.split('/').next().unwrap_or_default();
        patterns.iter().any(|p| match p.strip_prefix("*.") {
            Some("*") => true,
            Some("") => !resource.contains('.'),
            Some(group) => resource.split_once('.').is_some_and(|(_, g)| g == group),
            None => resource == p,
        })
    }
}

/// The keys of one provider entry, in order.
fn providers(value: &Value) -> Result<Vec<Provider>, String> {
    let object = value.as_object().ok_or("must be an object")?;
    let [(kind, spec)] = object.iter().collect::<Vec<_>>()[..] else {
        return Err("exactly one of aesgcm, secretbox or identity is required".into());
    };
    let make: fn(&str, &[u8]) -> Result<Provider, shoal_store::SealError> = match kind.as_str() {
        "identity" => return Ok(vec![Provider::Identity]),
        "aesgcm" => Provider::aesgcm,
        "secretbox" => Provider::secretbox,
        "aescbc" => {
            return Err(
                "aescbc is not supported (Kubernetes deprecates it): use aesgcm or secretbox"
                    .into(),
            );
        }
        "kms" => return Err("kms providers need a KMS plugin, which shoal does not run".into()),
        other => return Err(format!("unknown provider {other:?}")),
    };
    let keys = non_empty(spec, "keys", &format!("{kind}.keys: at least one key"))?;
    let mut names = std::collections::HashSet::new();
    keys.iter()
        .enumerate()
        .map(|(i, k)| {
            let at = format!("{kind}.keys[{i}]");
            let name = k
                .get("name")
                .and_then(Value::as_str)
                .ok_or(format!("{at}.name is required"))?;
            if !names.insert(name) {
                return Err(format!("{at}.name: {name:?} is listed twice"));
            }
            let secret = k
                .get("secret")
                .and_then(Value::as_str)
                .ok_or(format!("{at}.secret is required"))?;
            let secret = base64::engine::general_purpose::STANDARD
                .decode(secret.trim())
                .map_err(|e| format!("{at}.secret is not base64: {e}"))?;
            make(name, &secret).map_err(|e| format!("{at}: {e}"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u8) -> String {
        base64::engine::general_purpose::STANDARD.encode([n; 32])
    }

    #[test]
    fn a_configuration_seals_what_it_names_with_its_first_key() {
        let text = format!(
            "apiVersion: apiserver.config.k8s.io/v1
kind: EncryptionConfiguration
resources:
- resources: [secrets, configmaps, '*.apps']
  providers:
  - secretbox:
      keys: [{{name: new, secret: {}}}]
  - aesgcm:
      keys: [{{name: old, secret: {}}}]
  - identity: {{}}
- resources: ['*.*']
  providers:
  - identity: {{}}
",
            key(1),
            key(2)
        );
        let sealer = Sealer::new(parse(&text).unwrap());
        for k in ["secrets/ns/a", "configmaps/ns/b", "deployments.apps/ns/c"] {
            assert!(
                sealer
                    .seal(k, b"{}")
                    .starts_with(b"k8s:enc:secretbox:v1:new:"),
                "{k}"
            );
        }
        for k in ["pods/ns/a", "leases.coordination.k8s.io/ns/b"] {
            assert_eq!(&*sealer.seal(k, b"{}"), b"{}", "{k}");
        }
        let only_core =
            Sealer::new(parse(&text.replace("secrets, configmaps, '*.apps'", "'*.'")).unwrap());
        assert!(only_core.seal("pods/ns/a", b"{}").starts_with(b"k8s:enc:"));
        assert_eq!(&*only_core.seal("deployments.apps/ns/c", b"{}"), b"{}");
    }

    #[test]
    fn mistakes_are_named() {
        let doc = |resources: &str, providers: &str| {
            format!(
                "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\n\
                 resources:\n- resources: {resources}\n  providers: {providers}\n"
            )
        };
        let k = key(1);
        for (text, says) in [
            ("kind: Policy".to_string(), "EncryptionConfiguration"),
            (doc("[]", "[identity: {}]"), "at least one resource"),
            (doc("['a*b']", "[identity: {}]"), "is not a resource"),
            (doc("[secrets]", "[]"), "at least one provider"),
            (
                doc(
                    "[secrets]",
                    &format!("[{{aescbc: {{keys: [{{name: a, secret: {k}}}]}}}}]"),
                ),
                "aescbc is not supported",
            ),
            (
                doc("[secrets]", "[{aesgcm: {keys: []}}]"),
                "at least one key",
            ),
            (
                doc(
                    "[secrets]",
                    "[{aesgcm: {keys: [{name: a, secret: c2hvcnQ=}]}}]",
                ),
                "5 bytes",
            ),
            (
                doc("[secrets]", "[{aesgcm: {keys: [{name: a, secret: '!!'}]}}]"),
                "not base64",
            ),
            (
                doc(
                    "[secrets]",
                    &format!(
                        "[{{aesgcm: {{keys: [{{name: a, secret: {k}}}, {{name: a, secret: {k}}}]}}}}]"
                    ),
                ),
                "listed twice",
            ),
            (
                doc("[secrets]", "[{identity: {}, aesgcm: {}}]"),
                "exactly one",
            ),
            (doc("[secrets]", "[{kms: {}}]"), "KMS plugin"),
        ] {
            let err = parse(&text).unwrap_err();
            assert!(err.contains(says), "{text}\n=> {err}");
        }
    }
}

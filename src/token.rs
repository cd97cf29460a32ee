//! `shoal token`: the bootstrap tokens nodes join with, kept as Kubernetes
//! keeps them (Secrets `kube-system/bootstrap-token-ID`), so `kubectl`
//! sees and deletes them too.

use std::path::Path;

use anyhow::{Context, Result};
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::core::{ApiResource, DynamicObject, GroupVersionKind};
use serde_json::json;

/// The group a token made here adds its node to, beside
/// `system:bootstrappers`.
const GROUP: &str = "system:bootstrappers:shoal:default-node-token";
const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";

fn secrets(client: kube::Client) -> Api<DynamicObject> {
    let ar = ApiResource::from_gvk(&GroupVersionKind::gvk("", "v1", "Secret"));
    Api::namespaced_with(client, "kube-system", &ar)
}

pub(crate) async fn client(kubeconfig: &Path) -> Result<kube::Client> {
    let kc = kube::config::Kubeconfig::read_from(kubeconfig)
        .with_context(|| format!("reading {}", kubeconfig.display()))?;
    let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default()).await?;
    Ok(kube::Client::try_from(cfg)?)
}

fn random(n: usize) -> String {
    (0..n)
        .map(|_| ALPHABET[rand::random_range(0..ALPHABET.len())] as char)
        .collect()
}

/// Makes a token valid for `ttl` (forever when zero) and returns it: a
/// node's, or with `server` a server's (`shoal server --join`), which may
/// also fetch the keys every server shares.
pub async fn create(
    kubeconfig: &Path,
    ttl: std::time::Duration,
    description: &str,
    server: bool,
) -> Result<String> {
    let (id, secret) = (random(6), random(16));
    let mut data = json!({
        "token-id": id, "token-secret": secret,
        "usage-bootstrap-authentication": "true", "usage-bootstrap-signing": "true",
        "auth-extra-groups": if server { shoal_apiserver::rbac::SERVER_BOOTSTRAPPERS } else { GROUP },
        "description": description,
    });
    if !ttl.is_zero() {
        let until = jiff::Timestamp::now()
            + jiff::SignedDuration::try_from(ttl).context("the token's lifetime")?;
        data["expiration"] = json!(until.round(jiff::Unit::Second)?.to_string());
    }
    let obj: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": format!("bootstrap-token-{id}"), "namespace": "kube-system"},
        "type": "bootstrap.kubernetes.io/token", "stringData": data,
    }))?;
    secrets(client(kubeconfig).await?)
        .create(&PostParams::default(), &obj)
        .await
        .context("creating the token")?;
    Ok(format!("{id}.{secret}"))
}

/// Prints the tokens as `kubeadm token list` does.
pub async fn list(kubeconfig: &Path) -> Result<()> {
    use base64::Engine as _;
    let list = secrets(client(kubeconfig).await?)
        .list(&ListParams::default().fields("type=bootstrap.kubernetes.io/token"))
        .await
        .context("listing the tokens")?;
    println!(
        "{:<24}{:<22}{:<38}DESCRIPTION",
        "TOKEN", "EXPIRES", "USAGES"
    );
    for s in list.items {
        let field = |k: &str| {
            s.data["data"][k]
                .as_str()
                .and_then(|v| base64::engine::general_purpose::STANDARD.decode(v).ok())
                .and_then(|b| String::from_utf8(b).ok())
                .unwrap_or_default()
        };
        let usages: Vec<&str> = ["authentication", "signing"]
            .into_iter()
            .filter(|u| field(&format!("usage-bootstrap-{u}")) == "true")
            .collect();
        let expires = field("expiration");
        println!(
            "{:<24}{:<22}{:<38}{}",
            format!("{}.{}", field("token-id"), field("token-secret")),
            if expires.is_empty() {
                "<forever>".into()
            } else {
                expires
            },
            usages.join(","),
            field("description")
        );
    }
    Ok(())
}

/// Deletes a token, named by its ID or the whole token: nodes can no
/// longer join with it.
pub async fn delete(kubeconfig: &Path, token: &str) -> Result<()> {
    let id = token.split('.').next().unwrap_or_default();
    if id.len() != 6 || !id.bytes().all(|b| ALPHABET.contains(&b)) {
        anyhow::bail!("{token:?} is neither a token ID nor a token");
    }
    secrets(client(kubeconfig).await?)
        .delete(&format!("bootstrap-token-{id}"), &DeleteParams::default())
        .await
        .with_context(|| format!("deleting token {id}"))?;
    println!("bootstrap token {id:?} deleted");
    Ok(())
}

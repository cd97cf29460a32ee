//! Getting a container's image onto the node: `imagePullPolicy`, registry
//! pulls with credentials from `imagePullSecrets`, and the events the
//! kubelet records for them.

use std::time::Instant;

use base64::Engine as _;
use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;
use serde_json::Value;
use shoal_runtime_wasm::{Credentials, Runtime, registry_host};

/// Why an image is not available: the waiting reason and its message.
pub(crate) struct ImageFailure {
    pub reason: &'static str,
    pub message: String,
}

/// What happened, for the Pulled event.
pub(crate) enum Obtained {
    Present,
    Pulled { millis: u128 },
}

/// Credentials for `host` from the pod's `imagePullSecrets`
/// (`kubernetes.io/dockerconfigjson` secrets).
async fn credentials(client: &kube::Client, pod: &Value, host: &str) -> Option<Credentials> {
    let ns = pod
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or("default");
    let api: Api<Secret> = Api::namespaced(client.clone(), ns);
    for s in pod
        .pointer("/spec/imagePullSecrets")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
    {
        let Some(name) = s.get("name").and_then(Value::as_str) else {
            continue;
        };
        let Ok(Some(secret)) = api.get_opt(name).await else {
            continue;
        };
        let data = secret.data.unwrap_or_default();
        let Some(raw) = data
            .get(".dockerconfigjson")
            .or_else(|| data.get(".dockercfg"))
        else {
            continue;
        };
        let Ok(cfg) = serde_json::from_slice::<Value>(&raw.0) else {
            continue;
        };
        let auths = cfg.get("auths").unwrap_or(&cfg);
        let entry = auths.as_object().and_then(|m| {
            m.iter().find(|(k, _)| {
                k.trim_start_matches("https://")
                    .trim_start_matches("http://")
                    .trim_end_matches('/')
                    == host
            })
        });
        let Some((_, e)) = entry else { continue };
        let user = e.get("username").and_then(Value::as_str);
        let pass = e.get("password").and_then(Value::as_str);
        if let (Some(u), Some(p)) = (user, pass) {
            return Some(Credentials {
                username: u.into(),
                password: p.into(),
            });
        }
        if let Some(auth) = e.get("auth").and_then(Value::as_str) {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(auth)
                .ok()?;
            let text = String::from_utf8(decoded).ok()?;
            let (u, p) = text.split_once(':')?;
            return Some(Credentials {
                username: u.into(),
                password: p.into(),
            });
        }
    }
    None
}

/// Makes sure the container's image is in the node's store, pulling it as
/// its `imagePullPolicy` says.
pub(crate) async fn obtain(
    runtime: &Runtime,
    client: &kube::Client,
    pod: &Value,
    container: &Value,
    on_pull: impl std::future::Future<Output = ()>,
) -> Result<Obtained, ImageFailure> {
    let image = container
        .get("image")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let policy = container
        .get("imagePullPolicy")
        .and_then(Value::as_str)
        .unwrap_or("IfNotPresent");
    let present = runtime.has_image(image);
    let host = registry_host(image);
    let pull = match (policy, present, host) {
        ("Never", true, _) => false,
        ("Never", false, _) => {
            return Err(ImageFailure {
                reason: "ErrImageNeverPull",
                message: format!(
                    "Container image \"{image}\" is not present with pull policy of Never"
                ),
            });
        }
        (_, true, None) => false,
        (_, false, None) => {
            return Err(ImageFailure {
                reason: "ErrImagePull",
                message: format!(
                    "image {image:?} not found in the node's image store (import it with `shoal images import`, or name a registry)"
                ),
            });
        }
        ("Always", _, Some(_)) => true,
        (_, present, Some(_)) => !present,
    };
    if !pull {
        return Ok(Obtained::Present);
    }
    on_pull.await;
    let creds = credentials(client, pod, host.unwrap_or_default()).await;
    let started = Instant::now();
    match runtime.pull(image, creds.as_ref()).await {
        Ok(_) => Ok(Obtained::Pulled {
            millis: started.elapsed().as_millis(),
        }),
        Err(e) => Err(ImageFailure {
            reason: "ErrImagePull",
            message: e.to_string(),
        }),
    }
}

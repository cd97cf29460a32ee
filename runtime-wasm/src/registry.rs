//! Pulling Wasm images from OCI registries, in both formats people publish:
//! the CNCF Wasm artifact (`application/vnd.wasm.config.v0+json` config,
//! `application/wasm` layer; what `wkg oci push` and `oras` produce) and
//! images whose layer is a Wasm module or component (runwasi's media
//! types). Layers are checked against their digest before they are stored.

use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use sha2::{Digest, Sha256};

use crate::{Error, ImageRef, Result, Runtime};

/// Media types of layers that hold a Wasm binary.
const WASM_LAYERS: &[&str] = &[
    "application/wasm",
    "application/vnd.wasm.content.layer.v1+wasm",
    "application/vnd.w3c.wasm.module.v1+wasm",
    "application/vnd.bytecodealliance.wasm.component.layer.v0+wasm",
    "application/vnd.wasm.component.layer.v0+wasm",
];

/// Credentials for a registry (from `imagePullSecrets`).
#[derive(Debug, Clone)]
pub struct Credentials {
    /// User name.
    pub username: String,
    /// Password or token.
    pub password: String,
}

/// The registry host an image reference names explicitly, if any
/// (`localhost:5000/app:v1` → `localhost:5000`; `app:v1` → none).
pub fn registry_host(image: &str) -> Option<&str> {
    let (first, rest) = image.split_once('/')?;
    let _ = rest;
    (first.contains('.') || first.contains(':') || first == "localhost").then_some(first)
}

fn insecure(host: &str) -> bool {
    let name = host.rsplit_once(':').map_or(host, |(h, _)| h);
    name == "localhost" || name.starts_with("127.") || name == "[::1]"
}

fn pull_err(image: &str, e: impl std::fmt::Display) -> Error {
    Error::Pull {
        image: image.to_string(),
        reason: e.to_string(),
    }
}

impl Runtime {
    /// Pulls `image` from its registry into the image store and returns the
    /// digest of the Wasm layer. Loopback registries are spoken to over
    /// plain HTTP, every other one over HTTPS.
    pub async fn pull(&self, image: &str, credentials: Option<&Credentials>) -> Result<String> {
        let image_ref = ImageRef::parse(image)?;
        let reference: Reference = image_ref.as_str().parse().map_err(|e| pull_err(image, e))?;
        let host = reference.resolve_registry().to_string();
        let protocol = if insecure(&host) {
            ClientProtocol::Http
        } else {
            ClientProtocol::Https
        };
        let client = Client::new(ClientConfig {
            protocol,
            ..Default::default()
        });
        let auth = match credentials {
            Some(c) => RegistryAuth::Basic(c.username.clone(), c.password.clone()),
            None => RegistryAuth::Anonymous,
        };
        let (manifest, _manifest_digest, _config) = client
            .pull_manifest_and_config(&reference, &auth)
            .await
            .map_err(|e| pull_err(image, e))?;
        let layer = manifest
            .layers
            .iter()
            .find(|l| WASM_LAYERS.contains(&l.media_type.as_str()))
            .ok_or_else(|| {
                let types: Vec<&str> = manifest
                    .layers
                    .iter()
                    .map(|l| l.media_type.as_str())
                    .collect();
                pull_err(
                    image,
                    format!(
                        "the image has no WebAssembly layer (layers: {})",
                        types.join(", ")
                    ),
                )
            })?;
        let mut bytes = Vec::with_capacity(usize::try_from(layer.size).unwrap_or(0).min(64 << 20));
        client
            .pull_blob(&reference, layer, &mut bytes)
            .await
            .map_err(|e| pull_err(image, e))?;
        let digest = format!("sha256:{}", hex::encode(Sha256::digest(&bytes)));
        if digest != layer.digest {
            return Err(pull_err(
                image,
                format!(
                    "layer digest mismatch: manifest says {}, content is {digest}",
                    layer.digest
                ),
            ));
        }
        self.images().import(image_ref.as_str(), &bytes)
    }

    /// Whether `image` is in the local image store.
    pub fn has_image(&self, image: &str) -> bool {
        ImageRef::parse(image)
            .ok()
            .and_then(|r| self.images().resolve(&r).ok().flatten())
            .is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_hosts() {
        assert_eq!(
            registry_host("localhost:5000/app:v1"),
            Some("localhost:5000")
        );
        assert_eq!(registry_host("ghcr.io/org/app:v1"), Some("ghcr.io"));
        assert_eq!(registry_host("org/app:v1"), None);
        assert_eq!(registry_host("app:v1"), None);
        assert!(insecure("127.0.0.1:5000") && insecure("localhost") && !insecure("ghcr.io"));
    }
}

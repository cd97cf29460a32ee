//! Pulling Wasm images from OCI registries, in the formats people publish:
//!
//! - the CNCF Wasm artifact (`application/vnd.wasm.config.v0+json` config,
//!   `application/wasm` layer; what `wkg oci push` and `oras` produce) and
//!   images whose layer is a Wasm module or component (runwasi's media
//!   types);
//! - runwasi-style images built like containers (`docker buildx build
//!   --platform wasi/wasm`): tar layers holding the `.wasm` file that the
//!   image config's `Entrypoint` names.
//!
//! Every layer is checked against its digest before it is used, and the
//! image config's entrypoint, command, environment and working directory
//! are kept as the defaults of the pods that run the image.

use std::io::Read;

use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::manifest::ImageIndexEntry;
use oci_client::manifest::OciDescriptor;
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use sha2::{Digest, Sha256};

use crate::{Error, ImageConfig, ImageRef, Result, Runtime};

/// Media types of tar layers, plain or gzip-compressed.
const TAR_LAYERS: &[(&str, bool)] = &[
    ("application/vnd.oci.image.layer.v1.tar", false),
    ("application/vnd.oci.image.layer.v1.tar+gzip", true),
    ("application/vnd.docker.image.rootfs.diff.tar", false),
    ("application/vnd.docker.image.rootfs.diff.tar.gzip", true),
];

/// The largest module shoal takes from a registry.
pub const MAX_MODULE_BYTES: u64 = 256 << 20;

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
            platform_resolver: Some(Box::new(wasm_platform)),
            ..Default::default()
        });
        let auth = match credentials {
            Some(c) => RegistryAuth::Basic(c.username.clone(), c.password.clone()),
            None => RegistryAuth::Anonymous,
        };
        let (manifest, _manifest_digest, config) = client
            .pull_manifest_and_config(&reference, &auth)
            .await
            .map_err(|e| pull_err(image, e))?;
        let image_config = parse_config(&config);
        let fetch = async |layer: &OciDescriptor| -> Result<Vec<u8>> {
            if u64::try_from(layer.size).unwrap_or(u64::MAX) > MAX_MODULE_BYTES {
                return Err(pull_err(
                    image,
                    format!(
                        "layer {} is {} bytes, over the limit of {MAX_MODULE_BYTES}",
                        layer.digest, layer.size
                    ),
                ));
            }
            let mut bytes = Vec::with_capacity(usize::try_from(layer.size).unwrap_or(0));
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
            Ok(bytes)
        };
        if let Some(layer) = manifest
            .layers
            .iter()
            .find(|l| WASM_LAYERS.contains(&l.media_type.as_str()))
        {
            let bytes = fetch(layer).await?;
            return self
                .images()
                .import_with_config(image_ref.as_str(), &bytes, image_config);
        }
        let tar_layers: Vec<(&OciDescriptor, bool)> = manifest
            .layers
            .iter()
            .filter_map(|l| {
                TAR_LAYERS
                    .iter()
                    .find(|(t, _)| *t == l.media_type)
                    .map(|(_, gz)| (l, *gz))
            })
            .collect();
        if tar_layers.is_empty() {
            let types: Vec<&str> = manifest
                .layers
                .iter()
                .map(|l| l.media_type.as_str())
                .collect();
            return Err(pull_err(
                image,
                format!(
                    "the image has no WebAssembly layer (layers: {})",
                    types.join(", ")
                ),
            ));
        }
        let config = image_config.unwrap_or_default();
        let path = entrypoint_path(&config).ok_or_else(|| {
            pull_err(
                image,
                "the image's layers are tar archives and its config names no Entrypoint or Cmd",
            )
        })?;
        // The topmost layer that has the file, or that deletes it, decides.
        for (layer, gzip) in tar_layers.into_iter().rev() {
            let bytes = fetch(layer).await?;
            match find_in_layer(&bytes, gzip, &path).map_err(|e| pull_err(image, e))? {
                InLayer::Found(module) => {
                    return self.images().import_with_config(
                        image_ref.as_str(),
                        &module,
                        Some(config),
                    );
                }
                InLayer::Deleted => break,
                InLayer::Absent => {}
            }
        }
        Err(pull_err(
            image,
            format!("the entrypoint /{path} is not a file in the image's layers"),
        ))
    }

    /// The run settings `image` was pulled with (entrypoint, command,
    /// environment, working directory), if its image config had any.
    pub fn image_config(&self, image: &str) -> Option<ImageConfig> {
        let r = ImageRef::parse(image).ok()?;
        self.images().config(&r).ok().flatten()
    }

    /// Whether `image` is in the local image store.
    pub fn has_image(&self, image: &str) -> bool {
        ImageRef::parse(image)
            .ok()
            .and_then(|r| self.images().resolve(&r).ok().flatten())
            .is_some()
    }
}

/// Picks the Wasm entry of a multi-platform image (`wasi/wasm`, or any
/// `wasm` architecture), else the first entry.
fn wasm_platform(entries: &[ImageIndexEntry]) -> Option<String> {
    entries
        .iter()
        .find(|e| {
            e.platform
                .as_ref()
                .is_some_and(|p| p.architecture.to_string() == "wasm")
        })
        .or(entries.first())
        .map(|e| e.digest.clone())
}

/// The run settings of an OCI or Docker image config; `None` for configs
/// that carry none (the Wasm artifact's).
fn parse_config(config: &str) -> Option<ImageConfig> {
    #[derive(serde::Deserialize)]
    struct Outer {
        config: Option<ImageConfig>,
    }
    serde_json::from_str::<Outer>(config).ok()?.config
}

/// The file the image runs, relative to the image root: the first word of
/// `Entrypoint` (or of `Cmd` without one), against `WorkingDir` if relative.
fn entrypoint_path(config: &ImageConfig) -> Option<String> {
    let program = config.entrypoint.first().or(config.cmd.first())?;
    let full = if program.starts_with('/') {
        program.clone()
    } else {
        format!("{}/{program}", config.working_dir.trim_end_matches('/'))
    };
    let mut parts: Vec<&str> = Vec::new();
    for c in full.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    (!parts.is_empty()).then(|| parts.join("/"))
}

/// What one tar layer says about a path.
#[derive(Debug, PartialEq)]
enum InLayer {
    Found(Vec<u8>),
    Deleted,
    Absent,
}

/// Looks for `path` (relative to the image root) in a tar layer, honouring
/// OCI whiteouts. A module over [`MAX_MODULE_BYTES`] is refused.
fn find_in_layer(bytes: &[u8], gzip: bool, path: &str) -> std::result::Result<InLayer, String> {
    let reader: Box<dyn Read> = if gzip {
        Box::new(flate2::read::GzDecoder::new(bytes))
    } else {
        Box::new(bytes)
    };
    let (dir, name) = path.rsplit_once('/').unwrap_or(("", path));
    let whiteout = if dir.is_empty() {
        format!(".wh.{name}")
    } else {
        format!("{dir}/.wh.{name}")
    };
    let mut archive = tar::Archive::new(reader);
    let entries = archive
        .entries()
        .map_err(|e| format!("reading a tar layer: {e}"))?;
    let mut found = InLayer::Absent;
    for entry in entries {
        let mut entry = entry.map_err(|e| format!("reading a tar layer: {e}"))?;
        let entry_path = entry
            .path()
            .map_err(|e| format!("reading a tar layer: {e}"))?
            .to_string_lossy()
            .trim_start_matches("./")
            .trim_start_matches('/')
            .trim_end_matches('/')
            .to_string();
        let opaque = entry_path
            .strip_suffix(".wh..wh..opq")
            .map(|d| d.trim_end_matches('/'));
        if entry_path == whiteout
            || opaque.is_some_and(|d| d.is_empty() || path.starts_with(&format!("{d}/")))
        {
            found = InLayer::Deleted;
            continue;
        }
        if entry_path != path {
            continue;
        }
        let kind = entry.header().entry_type();
        if !kind.is_file() {
            return Err(format!(
                "the entrypoint /{path} is a {kind:?} entry, not a regular file"
            ));
        }
        if entry.size() > MAX_MODULE_BYTES {
            return Err(format!(
                "the entrypoint /{path} is {} bytes, over the limit of {MAX_MODULE_BYTES}",
                entry.size()
            ));
        }
        let mut module = Vec::with_capacity(usize::try_from(entry.size()).unwrap_or(0));
        entry
            .read_to_end(&mut module)
            .map_err(|e| format!("reading /{path} from a tar layer: {e}"))?;
        found = InLayer::Found(module);
    }
    Ok(found)
}

pub(crate) fn fuzz_config(config: &str) -> Option<String> {
    entrypoint_path(&parse_config(config)?)
}

pub(crate) fn fuzz_layer(bytes: &[u8], gzip: bool, path: &str) -> Result<bool, String> {
    find_in_layer(bytes, gzip, path).map(|found| matches!(found, InLayer::Found(_)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer(files: &[(&str, &[u8])], gzip: bool) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (path, data) in files {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_cksum();
            b.append_data(&mut h, path, *data).unwrap();
        }
        let tar = b.into_inner().unwrap();
        if !gzip {
            return tar;
        }
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, &tar).unwrap();
        gz.finish().unwrap()
    }

    #[test]
    fn entrypoints_and_layers() {
        let cfg = |entry: &[&str], cmd: &[&str], wd: &str| ImageConfig {
            entrypoint: entry.iter().map(|s| s.to_string()).collect(),
            cmd: cmd.iter().map(|s| s.to_string()).collect(),
            working_dir: wd.into(),
            ..Default::default()
        };
        assert_eq!(
            entrypoint_path(&cfg(&["/app.wasm"], &[], "")).as_deref(),
            Some("app.wasm")
        );
        assert_eq!(
            entrypoint_path(&cfg(&[], &["./bin/x.wasm"], "/srv")).as_deref(),
            Some("srv/bin/x.wasm")
        );
        assert_eq!(
            entrypoint_path(&cfg(&["../../etc/a"], &[], "/")).as_deref(),
            Some("etc/a")
        );
        assert_eq!(entrypoint_path(&cfg(&[], &[], "/")), None);

        for gzip in [false, true] {
            let l = layer(&[("other.txt", b"x"), ("./app.wasm", b"\0asm")], gzip);
            assert_eq!(
                find_in_layer(&l, gzip, "app.wasm").unwrap(),
                InLayer::Found(b"\0asm".to_vec())
            );
            assert_eq!(
                find_in_layer(&l, gzip, "nope.wasm").unwrap(),
                InLayer::Absent
            );
        }
        let wh = layer(&[(".wh.app.wasm", b"")], false);
        assert_eq!(
            find_in_layer(&wh, false, "app.wasm").unwrap(),
            InLayer::Deleted
        );
        let opq = layer(&[("bin/.wh..wh..opq", b"")], false);
        assert_eq!(
            find_in_layer(&opq, false, "bin/app.wasm").unwrap(),
            InLayer::Deleted
        );
        assert!(find_in_layer(b"not a tar archive at all, just text", true, "a").is_err());
    }

    #[test]
    fn image_configs() {
        let c = parse_config(r#"{"architecture":"wasm","os":"wasip1","config":{"Entrypoint":["/app.wasm"],"Cmd":null,"Env":["A=1"],"WorkingDir":"/"}}"#).unwrap();
        assert_eq!(c.entrypoint, ["/app.wasm"]);
        assert!(c.cmd.is_empty());
        assert_eq!(c.env, ["A=1"]);
        assert_eq!(
            parse_config(r#"{"architecture":"wasm","os":"wasip2"}"#),
            None
        );
        assert_eq!(parse_config("not json"), None);
    }

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

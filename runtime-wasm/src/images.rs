//! The node's local image store: content-addressed blobs plus a name index.
//!
//! Layout under the store's root:
//! `blobs/sha256/<hex>` holds module bytes, `index.json` maps normalised
//! image references to digests and, for images pulled with an OCI image
//! config, the entrypoint, command, environment and working directory it
//! declares. Writers replace `index.json` atomically, so `shoal images
//! import` can run while the agent reads.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::{Error, Result};

/// A normalised image reference: `[registry/]repository:tag` or `...@sha256:…`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ImageRef(String);

impl ImageRef {
    /// Parses and normalises a reference as a container runtime does:
    /// `docker.io/library/` is implied and `:latest` is the default tag.
    pub fn parse(s: &str) -> Result<Self> {
        let s = s.trim();
        let valid = !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-/:@".contains(c))
            && !s.starts_with(['/', ':', '@', '.', '-'])
            && !s.ends_with(['/', ':', '@']);
        if !valid {
            return Err(Error::InvalidImageRef(s.to_string()));
        }
        let mut name = s.to_string();
        for prefix in ["docker.io/library/", "docker.io/"] {
            if let Some(rest) = name.strip_prefix(prefix) {
                name = rest.to_string();
                break;
            }
        }
        let last = name.rsplit('/').next().unwrap_or(&name);
        if !last.contains(':') && !name.contains('@') {
            name.push_str(":latest");
        }
        Ok(Self(name))
    }

    /// The normalised text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What an OCI image config declares about how to run the image (the
/// defaults a pod's `command`, `args`, `env` and `workingDir` override).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ImageConfig {
    /// `Entrypoint`: the program and its leading arguments.
    #[serde(default, deserialize_with = "null_as_default")]
    pub entrypoint: Vec<String>,
    /// `Cmd`: default arguments.
    #[serde(default, deserialize_with = "null_as_default")]
    pub cmd: Vec<String>,
    /// `Env`, as `NAME=value`.
    #[serde(default, deserialize_with = "null_as_default")]
    pub env: Vec<String>,
    /// `WorkingDir`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub working_dir: String,
}

fn null_as_default<'de, D: serde::Deserializer<'de>, T: Default + Deserialize<'de>>(
    d: D,
) -> std::result::Result<T, D::Error> {
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// One image of the index: its module's digest and, when known, its config.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
enum Entry {
    Digest(String),
    Full { digest: String, config: ImageConfig },
}

impl Entry {
    fn digest(&self) -> &str {
        match self {
            Entry::Digest(d) | Entry::Full { digest: d, .. } => d,
        }
    }
}

/// The local image store of one node.
#[derive(Debug, Clone)]
pub struct ImageStore {
    root: PathBuf,
    /// The index as last read, with what identifies that version of the
    /// file: a pod start looks the index up several times, and a node
    /// starting thousands of pods should not read and parse it each time.
    index: Arc<Mutex<Option<CachedIndex>>>,
}

/// The index as last read and the version of the file it was read from.
type CachedIndex = (FileVersion, Arc<Index>);

type Index = BTreeMap<String, Entry>;

/// What tells one version of the index file from another: writers replace
/// it by renaming a new file over it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileVersion {
    inode: u64,
    len: u64,
    modified: std::time::SystemTime,
}

impl ImageStore {
    /// A store rooted at `root` (created on first import).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self {
            root: root.into(),
            index: Arc::default(),
        }
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn index_path(&self) -> PathBuf {
        self.root.join("index.json")
    }

    fn blob_path(&self, digest: &str) -> PathBuf {
        let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
        self.root.join("blobs").join("sha256").join(hex)
    }

    fn read_index(&self) -> Result<Arc<Index>> {
        use std::os::unix::fs::MetadataExt;
        let path = self.index_path();
        let meta = match std::fs::metadata(&path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Arc::default()),
            Err(e) => return Err(e.into()),
        };
        let version = FileVersion {
            inode: meta.ino(),
            len: meta.len(),
            modified: meta.modified()?,
        };
        let mut cached = self.index.lock().expect("index cache lock");
        if let Some((v, index)) = &*cached
            && *v == version
        {
            return Ok(index.clone());
        }
        let index: Arc<Index> =
            match std::fs::read(&path) {
                Ok(bytes) => Arc::new(serde_json::from_slice(&bytes).map_err(|e| {
                    Error::Io(std::io::Error::new(std::io::ErrorKind::InvalidData, e))
                })?),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Arc::default()),
                Err(e) => return Err(e.into()),
            };
        *cached = Some((version, index.clone()));
        Ok(index)
    }

    /// Stores `bytes` under `name`, returning the digest (`sha256:…`).
    pub fn import(&self, name: &str, bytes: &[u8]) -> Result<String> {
        self.import_with_config(name, bytes, None)
    }

    /// Stores `bytes` under `name` with the image config it came with.
    pub fn import_with_config(
        &self,
        name: &str,
        bytes: &[u8],
        config: Option<ImageConfig>,
    ) -> Result<String> {
        let name = ImageRef::parse(name)?;
        let digest = self.store_blob(bytes)?;
        let mut index = Index::clone(&*self.read_index()?);
        let entry = match config {
            Some(config) => Entry::Full {
                digest: digest.clone(),
                config,
            },
            None => Entry::Digest(digest.clone()),
        };
        index.insert(name.0, entry);
        let json = serde_json::to_vec_pretty(&index).expect("index serialises");
        write_atomic(&self.index_path(), &json)?;
        Ok(digest)
    }

    /// Stores `bytes` as a blob without naming it, returning its digest:
    /// a reference `name@<digest>` resolves to it.
    pub fn store_blob(&self, bytes: &[u8]) -> Result<String> {
        let digest = format!("sha256:{}", hex::encode(Sha256::digest(bytes)));
        let blob = self.blob_path(&digest);
        std::fs::create_dir_all(blob.parent().expect("blob path has a parent"))?;
        if !blob.exists() {
            write_atomic(&blob, bytes)?;
        }
        Ok(digest)
    }

    /// The digest an image reference names, if present. A reference by
    /// digest (`name@sha256:…`) resolves when that blob is present.
    pub fn resolve(&self, image: &ImageRef) -> Result<Option<String>> {
        if let Some(e) = self.read_index()?.get(image.as_str()) {
            return Ok(Some(e.digest().to_string()));
        }
        if let Some((_, digest)) = image.as_str().split_once('@') {
            return Ok(self.blob_path(digest).exists().then(|| digest.to_string()));
        }
        Ok(None)
    }

    /// Reads a blob by digest.
    pub fn read_blob(&self, digest: &str) -> Result<Vec<u8>> {
        Ok(std::fs::read(self.blob_path(digest))?)
    }

    /// Every stored module: digest, size in bytes and when it was stored.
    pub fn blobs(&self) -> Result<Vec<(String, u64, std::time::SystemTime)>> {
        let dir = self.root.join("blobs").join("sha256");
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e.into()),
        };
        let mut out = Vec::new();
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.contains('.') {
                continue; // an import in progress
            }
            let meta = e.metadata()?;
            out.push((
                format!("sha256:{name}"),
                meta.len(),
                meta.modified().unwrap_or(std::time::UNIX_EPOCH),
            ));
        }
        Ok(out)
    }

    /// Removes a module and every image name that refers to it.
    pub fn remove(&self, digest: &str) -> Result<()> {
        let mut index = Index::clone(&*self.read_index()?);
        let before = index.len();
        index.retain(|_, e| e.digest() != digest);
        if index.len() != before {
            let json = serde_json::to_vec_pretty(&index).expect("index serialises");
            write_atomic(&self.index_path(), &json)?;
        }
        match std::fs::remove_file(self.blob_path(digest)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
            _ => Ok(()),
        }
    }

    /// The config an image was pulled with, if it had one.
    pub fn config(&self, image: &ImageRef) -> Result<Option<ImageConfig>> {
        Ok(match self.read_index()?.get(image.as_str()) {
            Some(Entry::Full { config, .. }) => Some(config.clone()),
            _ => None,
        })
    }

    /// Every image name with its digest.
    pub fn list(&self) -> Result<BTreeMap<String, String>> {
        Ok(self
            .read_index()?
            .iter()
            .map(|(name, e)| (name.clone(), e.digest().to_string()))
            .collect())
    }
}

/// Writes `path` whole or not at all; writers racing on one path (the same
/// content) each use a file of their own.
fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = path.with_extension(format!("tmp.{}.{n}", std::process::id()));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_normalise() {
        assert_eq!(ImageRef::parse("hello:v1").unwrap().as_str(), "hello:v1");
        assert_eq!(ImageRef::parse("hello").unwrap().as_str(), "hello:latest");
        assert_eq!(
            ImageRef::parse("docker.io/library/hello:v1")
                .unwrap()
                .as_str(),
            "hello:v1"
        );
        assert_eq!(
            ImageRef::parse("localhost:5000/a/b").unwrap().as_str(),
            "localhost:5000/a/b:latest"
        );
        assert!(ImageRef::parse("").is_err());
        assert!(ImageRef::parse("a b").is_err());
        assert!(ImageRef::parse("../x").is_err());
    }

    #[test]
    fn import_then_resolve() {
        let dir = std::env::temp_dir().join(format!("shoal-images-{}", std::process::id()));
        let store = ImageStore::new(&dir);
        let d = store.import("m:v1", b"\0asm\x01\0\0\0").unwrap();
        assert_eq!(
            store.resolve(&ImageRef::parse("m:v1").unwrap()).unwrap(),
            Some(d.clone())
        );
        assert_eq!(store.read_blob(&d).unwrap(), b"\0asm\x01\0\0\0");
        assert_eq!(
            store.resolve(&ImageRef::parse("m:v2").unwrap()).unwrap(),
            None
        );
        std::fs::remove_dir_all(dir).unwrap();
    }
}

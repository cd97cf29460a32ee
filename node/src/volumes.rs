//! Pod volumes as directories on the node, offered to containers as WASI
//! preopens at their `mountPath`: `emptyDir`, `configMap`, `secret`,
//! `downwardAPI`, `projected` (materialised under the pod's directory) and
//! `hostPath` (the node's own directory). A guest reaches nothing else of
//! the host filesystem.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::Api;
use serde_json::Value;
use shoal_runtime_wasm::Preopen;

/// Why a pod's volumes could not be set up (the container's
/// `CreateContainerConfigError` message).
pub(crate) type VolumeError = String;

/// The host directory of each of a pod's volumes.
pub(crate) type Volumes = BTreeMap<String, PathBuf>;

/// A relative path with no `..` and no root, as Kubernetes requires of
/// `items[].path` and `subPath`.
fn safe_relative(p: &str) -> Option<PathBuf> {
    let path = Path::new(p);
    let ok = !p.is_empty() && path.components().all(|c| matches!(c, Component::Normal(_)));
    ok.then(|| path.to_path_buf())
}

fn write_files(dir: &Path, files: &BTreeMap<String, Vec<u8>>) -> Result<(), VolumeError> {
    for (rel, bytes) in files {
        let rel =
            safe_relative(rel).ok_or_else(|| format!("invalid file path {rel:?} in volume"))?;
        let path = dir.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| format!("creating {}: {e}", parent.display()))?;
        }
        std::fs::write(&path, bytes).map_err(|e| format!("writing {}: {e}", path.display()))?;
    }
    Ok(())
}

/// Keys of `data` as files, honouring `items` (key → path).
fn select(
    data: BTreeMap<String, Vec<u8>>,
    items: Option<&Value>,
) -> Result<BTreeMap<String, Vec<u8>>, VolumeError> {
    let Some(items) = items.and_then(Value::as_array) else {
        return Ok(data);
    };
    let mut out = BTreeMap::new();
    for it in items {
        let key = it.get("key").and_then(Value::as_str).unwrap_or_default();
        let path = it.get("path").and_then(Value::as_str).unwrap_or(key);
        let v = data
            .get(key)
            .ok_or_else(|| format!("key {key:?} not found in volume source"))?;
        out.insert(path.to_string(), v.clone());
    }
    Ok(out)
}

async fn config_map(
    client: &kube::Client,
    ns: &str,
    src: &Value,
) -> Result<BTreeMap<String, Vec<u8>>, VolumeError> {
    let name = src.get("name").and_then(Value::as_str).unwrap_or_default();
    let optional = src
        .get("optional")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    match api
        .get_opt(name)
        .await
        .map_err(|e| format!("reading configmap {name:?}: {e}"))?
    {
        Some(cm) => {
            let mut data: BTreeMap<String, Vec<u8>> = cm
                .data
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (k, v.into_bytes()))
                .collect();
            data.extend(
                cm.binary_data
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(k, v)| (k, v.0)),
            );
            select(data, src.get("items"))
        }
        None if optional => Ok(BTreeMap::new()),
        None => Err(format!("configmap {name:?} not found")),
    }
}

async fn secret(
    client: &kube::Client,
    ns: &str,
    src: &Value,
    name_field: &str,
) -> Result<BTreeMap<String, Vec<u8>>, VolumeError> {
    let name = src
        .get(name_field)
        .and_then(Value::as_str)
        .unwrap_or_default();
    let optional = src
        .get("optional")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let api: Api<Secret> = Api::namespaced(client.clone(), ns);
    match api
        .get_opt(name)
        .await
        .map_err(|e| format!("reading secret {name:?}: {e}"))?
    {
        Some(s) => {
            let mut data: BTreeMap<String, Vec<u8>> = s
                .data
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (k, v.0))
                .collect();
            data.extend(
                s.string_data
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(k, v)| (k, v.into_bytes())),
            );
            select(data, src.get("items"))
        }
        None if optional => Ok(BTreeMap::new()),
        None => Err(format!("secret {name:?} not found")),
    }
}

fn downward(pod: &Value, src: &Value) -> Result<BTreeMap<String, Vec<u8>>, VolumeError> {
    let mut out = BTreeMap::new();
    for it in src
        .get("items")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
    {
        let path = it
            .get("path")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let field = it
            .pointer("/fieldRef/fieldPath")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let text = match field {
            "metadata.labels" | "metadata.annotations" => {
                let map = pod
                    .pointer(&format!("/metadata/{}", &field[9..]))
                    .and_then(Value::as_object)
                    .cloned()
                    .unwrap_or_default();
                map.iter()
                    .map(|(k, v)| format!("{k}=\"{}\"\n", v.as_str().unwrap_or_default()))
                    .collect()
            }
            f => crate::env::field_ref(pod, f)?,
        };
        out.insert(path, text.into_bytes());
    }
    Ok(out)
}

/// A name the node turns into one path component: an RFC 1123 label, as
/// Kubernetes requires of volume names (never `..`, `/` or empty).
pub(crate) fn is_component(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-')
}

/// The longest a token may live before the node asks for a new one.
const TOKEN_REFRESH_AT: f64 = 0.8;

/// A service-account token for `pod` as a projected `serviceAccountToken`
/// source asks for it (bound to the pod, for its audience), from the API's
/// TokenRequest; the token and its lifetime in seconds.
async fn service_account_token(
    client: &kube::Client,
    pod: &Value,
    src: &Value,
) -> Result<(Vec<u8>, u64), VolumeError> {
    let text = |p: &str| pod.pointer(p).and_then(Value::as_str).unwrap_or_default();
    let ns = text("/metadata/namespace");
    let account = match text("/spec/serviceAccountName") {
        "" => "default",
        a => a,
    };
    let mut spec = serde_json::json!({
        "boundObjectRef": {"apiVersion": "v1", "kind": "Pod",
            "name": text("/metadata/name"), "uid": text("/metadata/uid")},
        "expirationSeconds": src.get("expirationSeconds").and_then(Value::as_i64).unwrap_or(3600).max(600),
    });
    if let Some(aud) = src
        .get("audience")
        .and_then(Value::as_str)
        .filter(|a| !a.is_empty())
    {
        spec["audiences"] = serde_json::json!([aud]);
    }
    let body = serde_json::json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec});
    let api: Api<k8s_openapi::api::core::v1::ServiceAccount> = Api::namespaced(client.clone(), ns);
    let answer: Value = api
        .create_subresource(
            "token",
            account,
            &kube::api::PostParams::default(),
            serde_json::to_vec(&body).map_err(|e| e.to_string())?,
        )
        .await
        .map_err(|e| format!("requesting a token for service account {ns}/{account}: {e}"))?;
    let token = answer
        .pointer("/status/token")
        .and_then(Value::as_str)
        .ok_or_else(|| format!("no token for service account {ns}/{account}"))?;
    let lifetime = answer
        .pointer("/spec/expirationSeconds")
        .and_then(Value::as_u64)
        .unwrap_or(600);
    Ok((token.as_bytes().to_vec(), lifetime))
}

/// The `serviceAccountToken` sources of a pod's projected volumes: the
/// volume's name and the source.
fn token_sources(pod: &Value) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    for v in pod
        .pointer("/spec/volumes")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
    {
        let name = v.get("name").and_then(Value::as_str).unwrap_or_default();
        for s in v
            .pointer("/projected/sources")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default()
        {
            if let Some(t) = s.get("serviceAccountToken") {
                out.push((name.to_string(), t.clone()));
            }
        }
    }
    out
}

/// Writes fresh tokens into the pod's projected volumes, each replacing
/// its file at once (a reader sees the old token or the new one); how long
/// until the next refresh is due.
pub(crate) async fn refresh_tokens(
    client: &kube::Client,
    pod: &Value,
    root: &Path,
) -> Result<Option<std::time::Duration>, VolumeError> {
    let mut next: Option<u64> = None;
    for (volume, src) in token_sources(pod) {
        if !is_component(&volume) {
            continue;
        }
        let path = src.get("path").and_then(Value::as_str).unwrap_or_default();
        let rel = safe_relative(path).ok_or_else(|| format!("invalid token path {path:?}"))?;
        let (token, lifetime) = service_account_token(client, pod, &src).await?;
        let file = root.join("volumes").join(&volume).join(rel);
        let tmp = file.with_extension("refresh");
        std::fs::write(&tmp, &token).map_err(|e| format!("writing {}: {e}", tmp.display()))?;
        std::fs::rename(&tmp, &file).map_err(|e| format!("replacing {}: {e}", file.display()))?;
        next = Some(next.map_or(lifetime, |n| n.min(lifetime)));
    }
    Ok(next.map(|s| std::time::Duration::from_secs_f64(s as f64 * TOKEN_REFRESH_AT)))
}

/// When a pod's tokens are next due, from their sources' lifetimes.
pub(crate) fn token_refresh_due(pod: &Value) -> Option<std::time::Duration> {
    token_sources(pod)
        .iter()
        .map(|(_, s)| {
            s.get("expirationSeconds")
                .and_then(Value::as_u64)
                .unwrap_or(3600)
                .max(600)
        })
        .min()
        .map(|s| std::time::Duration::from_secs_f64(s as f64 * TOKEN_REFRESH_AT))
}

/// Sets up every volume of `pod` under `root` (the pod's directory). The
/// node's `data_dir` is never offered to a pod, whatever the pod says.
pub(crate) async fn prepare(
    client: &kube::Client,
    pod: &Value,
    root: &Path,
    data_dir: &Path,
) -> Result<Volumes, VolumeError> {
    let ns = pod
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or("default");
    let mut out = Volumes::new();
    for v in pod
        .pointer("/spec/volumes")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
    {
        let name = v
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        if !is_component(&name) {
            return Err(format!(
                "volume name {name:?} is not a lowercase RFC 1123 label"
            ));
        }
        if out.contains_key(&name) {
            return Err(format!("volume {name:?} is named twice"));
        }
        let dir = root.join("volumes").join(&name);
        let materialise = |files: BTreeMap<String, Vec<u8>>| -> Result<PathBuf, VolumeError> {
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir)
                .map_err(|e| format!("creating {}: {e}", dir.display()))?;
            write_files(&dir, &files)?;
            Ok(dir.clone())
        };
        let path = if let Some(src) = v.get("emptyDir") {
            std::fs::create_dir_all(&dir)
                .map_err(|e| format!("creating {}: {e}", dir.display()))?;
            if src.get("medium").and_then(Value::as_str) == Some("Memory")
                && let Err(e) = mount_tmpfs(&dir, size_limit(src))
            {
                // Without the right to mount (an agent not running as
                // root) the volume stays on disk; its sizeLimit is still
                // enforced by eviction.
                tracing::warn!("{e}; volume {name:?} stays on disk");
            }
            dir.clone()
        } else if let Some(src) = v.get("configMap") {
            materialise(config_map(client, ns, src).await?)?
        } else if let Some(src) = v.get("secret") {
            materialise(secret(client, ns, src, "secretName").await?)?
        } else if let Some(src) = v.get("downwardAPI") {
            materialise(downward(pod, src)?)?
        } else if let Some(src) = v.get("projected") {
            let mut files = BTreeMap::new();
            for s in src
                .get("sources")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default()
            {
                if let Some(c) = s.get("configMap") {
                    files.extend(config_map(client, ns, c).await?);
                } else if let Some(c) = s.get("secret") {
                    files.extend(secret(client, ns, c, "name").await?);
                } else if let Some(c) = s.get("downwardAPI") {
                    files.extend(downward(pod, c)?);
                } else if let Some(c) = s.get("serviceAccountToken") {
                    let path = c.get("path").and_then(Value::as_str).unwrap_or_default();
                    files.insert(
                        path.to_string(),
                        service_account_token(client, pod, c).await?.0,
                    );
                } else {
                    return Err(format!("volume {name:?}: unsupported projected source"));
                }
            }
            materialise(files)?
        } else if let Some(src) = v.get("hostPath") {
            host_path(src, data_dir)?
        } else {
            let kind = v
                .as_object()
                .and_then(|m| m.keys().find(|k| *k != "name").cloned())
                .unwrap_or_default();
            return Err(format!(
                "volume {name:?}: volume type {kind:?} is not supported"
            ));
        };
        out.insert(name, path);
    }
    Ok(out)
}

/// A `hostPath` volume's directory after the checks its `type` asks for.
/// Only directories can be offered to a Wasm guest, so the file, socket and
/// device types are refused with the reason.
fn host_path(src: &Value, data_dir: &Path) -> Result<PathBuf, VolumeError> {
    let p = PathBuf::from(src.get("path").and_then(Value::as_str).unwrap_or_default());
    if !p.is_absolute() || p.components().any(|c| c == Component::ParentDir) {
        return Err(format!(
            "hostPath {}: must be an absolute path without '..'",
            p.display()
        ));
    }
    refuse_data_dir(&p, data_dir)?;
    let ty = src.get("type").and_then(Value::as_str).unwrap_or_default();
    match ty {
        "" | "Directory" => {}
        "DirectoryOrCreate" => {
            if !p.exists() {
                std::fs::create_dir_all(&p)
                    .map_err(|e| format!("creating {}: {e}", p.display()))?;
            }
        }
        "File" | "FileOrCreate" | "Socket" | "CharDevice" | "BlockDevice" => {
            return Err(format!(
                "hostPath type {ty} for {}: a Wasm container can mount directories only",
                p.display()
            ));
        }
        other => return Err(format!("hostPath type {other:?} is not a valid type")),
    }
    if !p.is_dir() {
        let what = if p.exists() {
            "is not a directory"
        } else {
            "does not exist"
        };
        return Err(format!(
            "hostPath type check failed: {} {what} on the node",
            p.display()
        ));
    }
    // Checked again through symbolic links, now that it exists.
    let real = p
        .canonicalize()
        .map_err(|e| format!("hostPath {}: {e}", p.display()))?;
    refuse_data_dir(&real, data_dir)?;
    Ok(p)
}

/// Refuses a host path inside the agent's data directory or holding it
/// (the node's keys, other pods' volumes and images live there).
fn refuse_data_dir(p: &Path, data_dir: &Path) -> Result<(), VolumeError> {
    let data = data_dir
        .canonicalize()
        .unwrap_or_else(|_| data_dir.to_path_buf());
    if p.starts_with(&data) || data.starts_with(p) {
        return Err(format!(
            "hostPath {}: the node agent's data directory is not offered to pods",
            p.display()
        ));
    }
    Ok(())
}

/// The directory a `subPath` names under a volume's `host` directory,
/// created if missing; refused when it leaves the volume, through `..` or
/// through a symbolic link a container left in the volume.
fn sub_path(host: &Path, sub: &str) -> Result<PathBuf, VolumeError> {
    let rel = safe_relative(sub).ok_or_else(|| format!("invalid subPath {sub:?}"))?;
    let base = host
        .canonicalize()
        .map_err(|e| format!("volume directory {}: {e}", host.display()))?;
    let mut p = base.clone();
    for part in rel.components() {
        p.push(part);
        match std::fs::symlink_metadata(&p) {
            Ok(m) if m.file_type().is_symlink() => {
                return Err(format!(
                    "subPath {sub:?} goes through a symbolic link; refused"
                ));
            }
            Ok(m) if !m.is_dir() => {
                return Err(format!("subPath {sub:?} is not a directory"));
            }
            Ok(_) => {}
            Err(_) => {
                std::fs::create_dir(&p).map_err(|e| format!("creating {}: {e}", p.display()))?
            }
        }
    }
    let real = p
        .canonicalize()
        .map_err(|e| format!("subPath {sub:?}: {e}"))?;
    if !real.starts_with(&base) {
        return Err(format!("subPath {sub:?} leaves its volume; refused"));
    }
    Ok(real)
}

/// `emptyDir.sizeLimit` in bytes.
pub(crate) fn size_limit(src: &Value) -> Option<u64> {
    src.get("sizeLimit")
        .and_then(Value::as_str)
        .and_then(shoal_quantity::bytes)
}

/// Backs a `medium: Memory` emptyDir with tmpfs sized to its `sizeLimit`
/// (half the node's memory without one, tmpfs' own default).
fn mount_tmpfs(dir: &Path, limit: Option<u64>) -> Result<(), VolumeError> {
    use rustix::mount::{MountFlags, mount};
    let mut opts = String::from("mode=0777");
    if let Some(bytes) = limit {
        opts.push_str(&format!(",size={bytes}"));
    }
    let opts = std::ffi::CString::new(opts).map_err(|e| e.to_string())?;
    // A tmpfs left by an earlier run of the agent is replaced, not stacked.
    let _ = rustix::mount::unmount(dir, rustix::mount::UnmountFlags::DETACH);
    mount(
        "tmpfs",
        dir,
        "tmpfs",
        MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOEXEC,
        Some(opts.as_c_str()),
    )
    .map_err(|e| {
        format!(
            "mounting tmpfs for a Memory emptyDir at {}: {e}",
            dir.display()
        )
    })
}

/// Unmounts the tmpfs volumes under a pod's directory before it is removed.
pub(crate) fn unmount_all(pod_dir: &Path) {
    let Ok(entries) = std::fs::read_dir(pod_dir.join("volumes")) else {
        return;
    };
    for e in entries.flatten() {
        // Not a mount point is the common answer and means nothing to undo.
        let _ = rustix::mount::unmount(e.path(), rustix::mount::UnmountFlags::DETACH);
    }
}

/// The emptyDirs of `pod` with a `sizeLimit`: volume name and limit in
/// bytes. A memory-backed one on its tmpfs cannot pass the limit (the
/// tmpfs has that size); one left on disk is measured like the others.
pub(crate) fn disk_limits(pod: &Value) -> Vec<(String, u64)> {
    pod.pointer("/spec/volumes")
        .and_then(Value::as_array)
        .map(|vols| {
            vols.iter()
                .filter_map(|v| {
                    let src = v.get("emptyDir")?;
                    Some((v.get("name")?.as_str()?.to_string(), size_limit(src)?))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Bytes used by the files under `dir`, not following symlinks.
pub(crate) fn usage(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => usage(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

/// The preopens of one container from its `volumeMounts`.
pub(crate) fn mounts(container: &Value, volumes: &Volumes) -> Result<Vec<Preopen>, VolumeError> {
    let mut out = Vec::new();
    for m in container
        .get("volumeMounts")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
    {
        let name = m.get("name").and_then(Value::as_str).unwrap_or_default();
        let mount = m
            .get("mountPath")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let host = volumes
            .get(name)
            .ok_or_else(|| format!("volumeMount {name:?} names no volume of the pod"))?;
        let host = match m
            .get("subPath")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
        {
            Some(sub) => sub_path(host, sub)?,
            None => host.clone(),
        };
        out.push(Preopen {
            host,
            guest: mount.to_string(),
            read_only: m.get("readOnly").and_then(Value::as_bool).unwrap_or(false),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A directory of its own for one test, removed afterwards.
    struct Scratch(PathBuf);

    impl Scratch {
        fn new(what: &str) -> Self {
            let p = std::env::temp_dir().join(format!("shoal-{what}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&p);
            std::fs::create_dir_all(&p).unwrap();
            Self(p)
        }

        fn path(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn volume_names_are_one_path_component() {
        assert!(is_component("config-1"));
        for bad in [
            "",
            "..",
            ".",
            "/etc",
            "a/b",
            "A",
            "-a",
            "a-",
            &"a".repeat(64),
        ] {
            assert!(!is_component(bad), "{bad}");
        }
    }

    #[test]
    fn host_paths_never_reach_the_data_dir() {
        let tmp = Scratch::new("hostpath-data");
        let data = tmp.path().join("data");
        let other = tmp.path().join("other");
        std::fs::create_dir_all(data.join("pki")).unwrap();
        std::fs::create_dir_all(&other).unwrap();
        std::os::unix::fs::symlink(data.join("pki"), tmp.path().join("link")).unwrap();
        let hp = |p: &Path| host_path(&serde_json::json!({"path": p}), &data);
        assert!(hp(&other).is_ok());
        for bad in [
            data.clone(),
            data.join("pki"),
            tmp.path().to_path_buf(),
            PathBuf::from("/"),
            tmp.path().join("link"),
            other.join("../data"),
            PathBuf::from("relative"),
        ] {
            assert!(hp(&bad).is_err(), "{}", bad.display());
        }
    }

    #[test]
    fn sub_paths_stay_in_their_volume() {
        let tmp = Scratch::new("subpath");
        let vol = tmp.path().join("vol");
        std::fs::create_dir_all(&vol).unwrap();
        let outside = tmp.path().join("outside");
        std::fs::create_dir_all(&outside).unwrap();
        std::os::unix::fs::symlink(&outside, vol.join("escape")).unwrap();
        assert!(sub_path(&vol, "a/b").unwrap().ends_with("vol/a/b"));
        assert!(vol.join("a/b").is_dir());
        for bad in ["escape", "escape/x", "../outside", "/etc", "a/../../x"] {
            assert!(sub_path(&vol, bad).is_err(), "{bad}");
        }
        assert!(!outside.join("x").exists());
    }

    #[test]
    fn paths_must_stay_inside() {
        assert!(safe_relative("a/b.txt").is_some());
        for bad in ["", "/etc/passwd", "../x", "a/../../x", "./a"] {
            assert!(safe_relative(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn host_path_types() {
        let dir = std::env::temp_dir().join(format!("shoal-hostpath-{}", std::process::id()));
        let file = dir.join("file");
        let created = dir.join("made/here");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(&file, "x").unwrap();
        let src = |path: &Path, ty: &str| serde_json::json!({"path": path, "type": ty});
        let nowhere = Path::new("/nonexistent/shoal-data");
        assert_eq!(host_path(&src(&dir, "Directory"), nowhere).unwrap(), dir);
        assert_eq!(host_path(&src(&dir, ""), nowhere).unwrap(), dir);
        assert_eq!(
            host_path(&src(&created, "DirectoryOrCreate"), nowhere).unwrap(),
            created
        );
        assert!(created.is_dir());
        let err = host_path(&src(&file, "Directory"), nowhere).unwrap_err();
        assert!(err.contains("is not a directory"), "{err}");
        let err = host_path(&src(&dir.join("nope"), "Directory"), nowhere).unwrap_err();
        assert!(err.contains("does not exist"), "{err}");
        let err = host_path(&src(&file, "File"), nowhere).unwrap_err();
        assert!(err.contains("directories only"), "{err}");
        let err = host_path(&src(&dir, "Sideways"), nowhere).unwrap_err();
        assert!(err.contains("not a valid type"), "{err}");
        std::fs::remove_dir_all(dir).unwrap();
    }
}

//! What a container's OCI runtime spec (`config.json` in its bundle) asks
//! for, turned into what the runtime runs: the module in the container's
//! root filesystem, its arguments and environment, the directories it sees,
//! its limits and its network. Pure: the bundle's files are read by the
//! caller, and every path a spec names is checked to stay inside the root
//! filesystem.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use serde::Deserialize;

use crate::Preopen;

/// The parts of an OCI runtime spec the shim reads. Unknown fields are
/// ignored; missing ones take the spec's defaults.
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub(crate) struct Spec {
    pub process: Option<Process>,
    pub root: Option<Root>,
    pub mounts: Vec<Mount>,
    pub linux: Option<Linux>,
    pub annotations: BTreeMap<String, String>,
}

/// A process to run: the container's own, or one `exec` adds.
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub(crate) struct Process {
    pub args: Vec<String>,
    pub env: Vec<String>,
    pub cwd: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct Root {
    pub path: String,
    pub readonly: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct Mount {
    pub destination: String,
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub source: Option<String>,
    pub options: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct Linux {
    pub resources: Option<Resources>,
    pub namespaces: Vec<Namespace>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct Resources {
    pub memory: Option<Memory>,
    pub cpu: Option<Cpu>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct Memory {
    pub limit: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct Cpu {
    pub quota: Option<i64>,
    pub period: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct Namespace {
    #[serde(rename = "type")]
    pub kind: String,
    /// An existing namespace to join (a CRI pod's network).
    pub path: Option<String>,
}

/// The annotation containerd's CRI plugin puts on a pod's sandbox container.
const CONTAINER_TYPE: &str = "io.kubernetes.cri.container-type";
/// The annotation naming the sandbox a CRI container belongs to.
const SANDBOX_ID: &str = "io.kubernetes.cri.sandbox-id";
/// The annotation by which a container's commands say they follow shoal's
/// stop request (the same as on shoal's nodes).
pub(crate) const STOP_FILE_ANNOTATION: &str = "shoal.dev/stop-file";

impl Spec {
    /// Parses `config.json`.
    pub fn parse(json: &[u8]) -> Result<Self, String> {
        serde_json::from_slice(json).map_err(|e| format!("config.json: {e}"))
    }

    /// Whether this is a pod's sandbox (the pause container CRI starts
    /// first): it runs nothing and only holds the pod until it is stopped.
    pub fn is_sandbox(&self) -> bool {
        self.annotations.get(CONTAINER_TYPE).map(String::as_str) == Some("sandbox")
    }

    /// Whether its guest follows the stop request: WASI has no signals,
    /// so a `SIGTERM` becomes a file the guest looks for.
    pub fn asks_to_stop(&self) -> bool {
        self.annotations
            .get(STOP_FILE_ANNOTATION)
            .map(String::as_str)
            == Some("true")
    }

    /// The pod sandbox a CRI container belongs to.
    pub fn sandbox_id(&self) -> Option<&str> {
        self.annotations.get(SANDBOX_ID).map(String::as_str)
    }

    /// The root filesystem's directory: `root.path`, relative to the bundle.
    pub fn rootfs(&self, bundle: &Path) -> PathBuf {
        let path = self
            .root
            .as_ref()
            .map(|r| r.path.as_str())
            .filter(|p| !p.is_empty())
            .unwrap_or("rootfs");
        bundle.join(path)
    }

    /// The network the container's guests use.
    pub fn network(&self) -> Network {
        let ns = self
            .linux
            .as_ref()
            .and_then(|l| l.namespaces.iter().find(|n| n.kind == "network"));
        match ns {
            None => Network::Host,
            Some(Namespace {
                path: Some(path), ..
            }) if path.starts_with('/') => Network::Namespace(PathBuf::from(path)),
            // A new, empty namespace: nothing to reach.
            Some(_) => Network::None,
        }
    }
}

/// The network a container's guests use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Network {
    /// The host's (no network namespace in the spec).
    Host,
    /// The namespace at this path (a pod's, which CNI set up).
    Namespace(PathBuf),
    /// None: the spec asks for a new namespace, which would be empty.
    None,
}

/// What to run for one process of a container.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    /// The module inside the root filesystem (`args[0]`), as a path
    /// relative to it.
    pub module: PathBuf,
    pub argv: Vec<String>,
    pub env: Vec<(String, String)>,
    pub cwd: Option<String>,
    pub memory_limit: Option<usize>,
    pub cpu_millis: Option<u32>,
    pub preopens: Vec<Preopen>,
    pub network: Network,
}

/// The plan for `process` in a container made from `spec`, whose root
/// filesystem is at `rootfs`.
pub(crate) fn plan(spec: &Spec, process: &Process, rootfs: &Path) -> Result<Plan, String> {
    let Some(program) = process.args.first() else {
        return Err("the process has no args: nothing to run".into());
    };
    let module = inside(program).ok_or_else(|| {
        format!("{program:?} is not a path inside the container's root filesystem")
    })?;
    let env = process
        .env
        .iter()
        .map(|kv| match kv.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => (kv.clone(), String::new()),
        })
        .collect();
    let resources = spec.linux.as_ref().and_then(|l| l.resources.as_ref());
    let memory_limit = resources
        .and_then(|r| r.memory.as_ref())
        .and_then(|m| m.limit)
        .filter(|l| *l > 0)
        .map(|l| usize::try_from(l).unwrap_or(usize::MAX));
    let cpu_millis = resources.and_then(|r| r.cpu.as_ref()).and_then(|c| {
        let quota = u64::try_from(c.quota?).ok().filter(|q| *q > 0)?;
        let period = c.period.filter(|p| *p > 0).unwrap_or(100_000);
        Some(
            u32::try_from(quota.saturating_mul(1000) / period)
                .unwrap_or(u32::MAX)
                .max(1),
        )
    });
    let mut preopens = vec![Preopen {
        host: rootfs.to_path_buf(),
        guest: "/".into(),
        read_only: spec.root.as_ref().is_some_and(|r| r.readonly),
    }];
    preopens.extend(spec.mounts.iter().filter_map(bind_mount));
    let cwd = Some(process.cwd.clone()).filter(|c| !c.is_empty() && c != "/");
    Ok(Plan {
        module,
        argv: process.args.clone(),
        env,
        cwd,
        memory_limit,
        cpu_millis,
        preopens,
        network: spec.network(),
    })
}

/// A bind mount of a host directory, which the guest sees at its
/// destination. Other mounts (proc, sysfs, tmpfs, devices, single files
/// such as `/etc/hosts`) have nothing a WASI guest can open, and are left
/// out.
fn bind_mount(m: &Mount) -> Option<Preopen> {
    let bind =
        m.kind.as_deref() == Some("bind") || m.options.iter().any(|o| o == "bind" || o == "rbind");
    let source = PathBuf::from(m.source.as_ref()?);
    if !bind || !source.is_absolute() || !source.is_dir() || !m.destination.starts_with('/') {
        return None;
    }
    inside(&m.destination)?;
    Some(Preopen {
        host: source,
        guest: m.destination.clone(),
        read_only: m.options.iter().any(|o| o == "ro"),
    })
}

/// `path` as a path relative to the root filesystem, if it names
/// something in it: no `..` and nothing but plain names.
fn inside(path: &str) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for c in Path::new(path).components() {
        match c {
            Component::RootDir | Component::CurDir => {}
            Component::Normal(n) => out.push(n),
            Component::ParentDir | Component::Prefix(_) => return None,
        }
    }
    (!out.as_os_str().is_empty()).then_some(out)
}

/// The module's file on the host: `plan.module` under `rootfs`, refused
/// when a link takes it outside the root filesystem.
pub(crate) fn module_path(rootfs: &Path, module: &Path) -> Result<PathBuf, String> {
    let root = rootfs
        .canonicalize()
        .map_err(|e| format!("root filesystem {}: {e}", rootfs.display()))?;
    let path = root.join(module);
    let real = path
        .canonicalize()
        .map_err(|e| format!("/{}: {e}", module.display()))?;
    if !real.starts_with(&root) {
        return Err(format!(
            "/{} leads outside the container's root filesystem",
            module.display()
        ));
    }
    Ok(real)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(json: serde_json::Value) -> Spec {
        Spec::parse(json.to_string().as_bytes()).unwrap()
    }

    #[test]
    fn a_container_spec_becomes_a_plan() {
        let s = spec(serde_json::json!({
            "process": {"args": ["/app.wasm", "x"], "env": ["A=1=2", "B"], "cwd": "/work"},
            "root": {"path": "rootfs", "readonly": true},
            "mounts": [
                {"destination": "/proc", "type": "proc", "source": "proc"},
                {"destination": "/data", "type": "bind", "source": "/tmp", "options": ["rbind", "ro"]},
                {"destination": "/etc/hosts", "type": "bind", "source": "/etc/hosts"},
            ],
            "linux": {
                "resources": {"memory": {"limit": 1048576}, "cpu": {"quota": 50000, "period": 100000}},
                "namespaces": [{"type": "pid"}, {"type": "network"}],
            },
        }));
        let p = plan(&s, s.process.as_ref().unwrap(), Path::new("/b/rootfs")).unwrap();
        assert_eq!(p.module, PathBuf::from("app.wasm"));
        assert_eq!(p.argv, ["/app.wasm", "x"]);
        assert_eq!(
            p.env,
            [("A".into(), "1=2".into()), ("B".into(), String::new())]
        );
        assert_eq!(p.cwd.as_deref(), Some("/work"));
        assert_eq!(p.memory_limit, Some(1 << 20));
        assert_eq!(p.cpu_millis, Some(500));
        assert_eq!(p.network, Network::None, "a new network namespace");
        let guest: Vec<_> = p
            .preopens
            .iter()
            .map(|p| (p.guest.as_str(), p.read_only))
            .collect();
        assert_eq!(guest, [("/", true), ("/data", true)]);
        assert!(!s.is_sandbox());
    }

    #[test]
    fn paths_that_leave_the_root_filesystem_are_refused() {
        for bad in ["../x.wasm", "/a/../../x.wasm", "", "/"] {
            let s = spec(serde_json::json!({"process": {"args": [bad]}}));
            let err = plan(&s, s.process.as_ref().unwrap(), Path::new("/r")).unwrap_err();
            assert!(err.contains("not a path inside"), "{bad}: {err}");
        }
        let s = spec(serde_json::json!({"process": {"args": []}}));
        assert!(plan(&s, s.process.as_ref().unwrap(), Path::new("/r")).is_err());
        let s = spec(serde_json::json!({"mounts": [
            {"destination": "/../../etc", "type": "bind", "source": "/tmp"},
            {"destination": "relative", "type": "bind", "source": "/tmp"},
        ], "process": {"args": ["/m.wasm"]}}));
        let p = plan(&s, s.process.as_ref().unwrap(), Path::new("/r")).unwrap();
        assert_eq!(p.preopens.len(), 1, "only the root filesystem");
        assert_eq!(p.network, Network::Host);
        let s = spec(
            serde_json::json!({"process": {"args": ["/m.wasm"]}, "linux": {"namespaces": [
                {"type": "network", "path": "/var/run/netns/cni-1"},
            ]}}),
        );
        let p = plan(&s, s.process.as_ref().unwrap(), Path::new("/r")).unwrap();
        assert_eq!(p.network, Network::Namespace("/var/run/netns/cni-1".into()));
    }

    #[test]
    fn a_link_out_of_the_root_filesystem_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("rootfs");
        std::fs::create_dir(&root).unwrap();
        std::fs::write(dir.path().join("secret"), b"x").unwrap();
        std::os::unix::fs::symlink(dir.path().join("secret"), root.join("m.wasm")).unwrap();
        std::fs::write(root.join("ok.wasm"), b"x").unwrap();
        let err = module_path(&root, Path::new("m.wasm")).unwrap_err();
        assert!(err.contains("leads outside"), "{err}");
        assert!(module_path(&root, Path::new("ok.wasm")).is_ok());
        assert!(module_path(&root, Path::new("missing.wasm")).is_err());
    }

    #[test]
    fn sandboxes_are_recognised() {
        let s = spec(serde_json::json!({"annotations": {CONTAINER_TYPE: "sandbox"}}));
        assert!(s.is_sandbox());
        assert!(!s.asks_to_stop());
        let s = spec(serde_json::json!({"annotations": {STOP_FILE_ANNOTATION: "true"}}));
        assert!(s.asks_to_stop());
    }
}

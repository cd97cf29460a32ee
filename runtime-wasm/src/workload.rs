use wasmtime::component::{Component, types::ComponentItem};
use wasmtime::{Engine, InstancePre, Module};
use wasmtime_wasi::p2::bindings::CommandPre;
use wasmtime_wasi_http::p2::bindings::ProxyPre;

use std::path::Path;

use crate::host::{ComponentHost, CoreHost};

use crate::{Error, Result};

/// What kind of program an image holds, read from the binary itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkloadKind {
    /// A `wasi:http/proxy` component: one instance per request.
    Http,
    /// A component exporting `wasi:cli/run`: runs until it exits.
    ComponentCommand,
    /// A WASI preview 1 core module with `_start`: runs until it exits.
    CoreCommand,
}

/// A compiled image, ready to instantiate.
pub struct Workload {
    pub(crate) digest: String,
    pub(crate) kind: WorkloadKind,
    /// The engine (and pool) it was compiled for.
    pub(crate) flavor: crate::pools::Flavor,
    pub(crate) pre: Pre,
}

/// A workload linked against the host, ready for fast instantiation.
pub(crate) enum Pre {
    Http(ProxyPre<ComponentHost>),
    Command(CommandPre<ComponentHost>),
    Core(InstancePre<CoreHost>),
}

#[derive(Clone)]
pub(crate) enum Compiled {
    Component(Component),
    Core(Module),
}

impl Workload {
    /// The image digest the workload was compiled from.
    pub fn digest(&self) -> &str {
        &self.digest
    }

    /// The kind of workload.
    pub fn kind(&self) -> WorkloadKind {
        self.kind
    }

    /// Whether the workload serves HTTP requests.
    pub fn is_http(&self) -> bool {
        self.kind == WorkloadKind::Http
    }
}

/// Compiles `bytes` and classifies the result. Blocking: call off the async
/// executor.
pub(crate) fn compile(
    engine: &Engine,
    image: &str,
    digest: &str,
    bytes: &[u8],
    cache: Option<&Path>,
) -> Result<(String, WorkloadKind, Compiled)> {
    let compile_err = |e: wasmtime::Error| Error::Compile {
        image: image.to_string(),
        reason: format!("{e:#}"),
    };
    if wasmparser::Parser::is_component(bytes) {
        let component =
            match cache.and_then(|c| load_cached(c, |p| deserialize_component(engine, p))) {
                Some(c) => c,
                None => {
                    let c = Component::new(engine, bytes).map_err(compile_err)?;
                    if let Some(path) = cache {
                        store_cached(path, c.serialize());
                    }
                    c
                }
            };
        let ty = component.component_type();
        let exports: Vec<String> = ty
            .exports(engine)
            .map(|(name, _)| name.to_string())
            .collect();
        let exports_instance = |prefix: &str| {
            ty.exports(engine).any(|(name, item)| {
                name.starts_with(prefix) && matches!(item.ty, ComponentItem::ComponentInstance(_))
            })
        };
        let kind = if exports_instance("wasi:http/incoming-handler@0.2") {
            WorkloadKind::Http
        } else if exports_instance("wasi:cli/run@0.2") {
            WorkloadKind::ComponentCommand
        } else {
            return Err(Error::UnsupportedWorld {
                image: image.to_string(),
                exports: exports.join(", "),
            });
        };
        Ok((digest.to_string(), kind, Compiled::Component(component)))
    } else if wasmparser::Parser::is_core_wasm(bytes) {
        let module = match cache.and_then(|c| load_cached(c, |p| deserialize_module(engine, p))) {
            Some(m) => m,
            None => {
                let m = Module::new(engine, bytes).map_err(compile_err)?;
                if let Some(path) = cache {
                    store_cached(path, m.serialize());
                }
                m
            }
        };
        if module.get_export("_start").is_none() {
            return Err(Error::Compile {
                image: image.to_string(),
                reason: "core module has no `_start` export (not a WASI command)".into(),
            });
        }
        Ok((
            digest.to_string(),
            WorkloadKind::CoreCommand,
            Compiled::Core(module),
        ))
    } else {
        Err(Error::NotWasm {
            image: image.to_string(),
        })
    }
}

/// Reads a compiled artifact from the cache; a missing, stale or unreadable
/// one is ignored (and compiled again).
fn load_cached<T>(path: &Path, read: impl FnOnce(&Path) -> wasmtime::Result<T>) -> Option<T> {
    if !path.exists() {
        return None;
    }
    match read(path) {
        Ok(v) => Some(v),
        Err(e) => {
            tracing::warn!("ignoring cached artifact {}: {e:#}", path.display());
            let _ = std::fs::remove_file(path);
            None
        }
    }
}

fn store_cached(path: &Path, bytes: wasmtime::Result<Vec<u8>>) {
    let write = || -> std::io::Result<()> {
        let bytes = bytes.map_err(|e| std::io::Error::other(format!("{e:#}")))?;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
        std::fs::write(&tmp, bytes)?;
        std::fs::rename(&tmp, path)
    };
    if let Err(e) = write() {
        tracing::warn!("caching compiled artifact {}: {e}", path.display());
    }
}

// Deserializing runs machine code from the file, so only artifacts this
// runtime wrote into its own cache directory are ever read; the file name
// carries the engine's compatibility hash, and wasmtime rejects artifacts
// of another engine configuration.
#[allow(unsafe_code)]
fn deserialize_component(engine: &Engine, path: &Path) -> wasmtime::Result<Component> {
    // SAFETY: the file was produced by `Component::serialize` of an engine
    // with this configuration and is only written by this process (atomic
    // rename into the runtime's private cache directory).
    unsafe { Component::deserialize_file(engine, path) }
}

#[allow(unsafe_code)]
fn deserialize_module(engine: &Engine, path: &Path) -> wasmtime::Result<Module> {
    // SAFETY: as for components: produced by `Module::serialize` into the
    // runtime's private cache directory.
    unsafe { Module::deserialize_file(engine, path) }
}

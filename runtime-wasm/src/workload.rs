use wasmtime::component::{Component, types::ComponentItem};
use wasmtime::{Engine, InstancePre, Module};
use wasmtime_wasi::p2::bindings::CommandPre;
use wasmtime_wasi_http::p2::bindings::ProxyPre;

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
    pub(crate) pre: Pre,
}

/// A workload linked against the host, ready for fast instantiation.
pub(crate) enum Pre {
    Http(ProxyPre<ComponentHost>),
    Command(CommandPre<ComponentHost>),
    Core(InstancePre<CoreHost>),
}

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
) -> Result<(String, WorkloadKind, Compiled)> {
    let compile_err = |e: wasmtime::Error| Error::Compile {
        image: image.to_string(),
        reason: format!("{e:#}"),
    };
    if wasmparser::Parser::is_component(bytes) {
        let component = Component::new(engine, bytes).map_err(compile_err)?;
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
        let module = Module::new(engine, bytes).map_err(compile_err)?;
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

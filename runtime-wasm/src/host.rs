//! The per-instance host state stored in each wasmtime `Store`.

use wasmtime::component::ResourceTable;

use crate::CommandSpec;
use crate::memory::InstanceLimits;
use crate::network::HttpHooks;
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

/// State of a component instance: WASI, WASI HTTP and the resource limits.
pub(crate) struct ComponentHost {
    pub wasi: WasiCtx,
    pub http: WasiHttpCtx,
    pub table: ResourceTable,
    pub limits: InstanceLimits,
    pub hooks: HttpHooks,
}

impl ComponentHost {
    pub fn new(wasi: WasiCtx, spec: &CommandSpec) -> Self {
        Self {
            wasi,
            http: WasiHttpCtx::new(),
            table: ResourceTable::new(),
            limits: InstanceLimits::unbounded(),
            hooks: HttpHooks {
                network: spec.network.clone(),
            },
        }
    }
}

impl WasiView for ComponentHost {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for ComponentHost {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.hooks,
        }
    }
}

/// State of a WASI preview 1 core module instance.
pub(crate) struct CoreHost {
    pub wasi: WasiP1Ctx,
    pub limits: InstanceLimits,
}

impl CoreHost {
    pub fn new(wasi: WasiP1Ctx) -> Self {
        Self {
            wasi,
            limits: InstanceLimits::unbounded(),
        }
    }
}

/// Host state that carries the instance's resource limits.
pub(crate) trait Limited: 'static {
    fn limits(&mut self) -> &mut InstanceLimits;
}

impl Limited for ComponentHost {
    fn limits(&mut self) -> &mut InstanceLimits {
        &mut self.limits
    }
}

impl Limited for CoreHost {
    fn limits(&mut self) -> &mut InstanceLimits {
        &mut self.limits
    }
}

impl crate::Runtime {
    /// A store for one instance: its memory limits and CPU governor set.
    pub(crate) fn store<T: Limited>(
        &self,
        workload: &crate::Workload,
        mut host: T,
        spec: &CommandSpec,
    ) -> wasmtime::Store<T> {
        // Every instance has a memory limit: the pod's, or the node's
        // default; and all share the node's memory for pods.
        *host.limits() = InstanceLimits::new(
            spec.memory_limit.or(self.config.default_memory_limit),
            self.memory.clone(),
        )
        .counted(spec.usage.clone());
        let mut store = wasmtime::Store::new(self.engine_of(workload), host);
        store.limiter(|h| h.limits());
        crate::cpu::govern(&mut store, spec.cpu_millis);
        store
    }
}

//! The per-instance host state stored in each wasmtime `Store`.

use wasmtime::component::ResourceTable;
use wasmtime::{StoreLimits, StoreLimitsBuilder};
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

/// State of a component instance: WASI, WASI HTTP and the resource limits.
pub(crate) struct ComponentHost {
    pub wasi: WasiCtx,
    pub http: WasiHttpCtx,
    pub table: ResourceTable,
    pub limits: StoreLimits,
}

impl ComponentHost {
    pub fn new(wasi: WasiCtx, memory_limit: Option<usize>) -> Self {
        Self {
            wasi,
            http: WasiHttpCtx::new(),
            table: ResourceTable::new(),
            limits: limits(memory_limit),
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
            hooks: Default::default(),
        }
    }
}

/// State of a WASI preview 1 core module instance.
pub(crate) struct CoreHost {
    pub wasi: WasiP1Ctx,
    pub limits: StoreLimits,
}

impl CoreHost {
    pub fn new(wasi: WasiP1Ctx, memory_limit: Option<usize>) -> Self {
        Self {
            wasi,
            limits: limits(memory_limit),
        }
    }
}

/// Limits for one instance: growth past the memory limit traps, so the
/// container ends as `OOMKilled` instead of limping on.
pub(crate) fn limits(memory_limit: Option<usize>) -> StoreLimits {
    let mut b = StoreLimitsBuilder::new().trap_on_grow_failure(true);
    if let Some(m) = memory_limit {
        b = b.memory_size(m);
    }
    b.build()
}

//! The two engines of a node and their instance pools. Commands live as
//! long as their container: when one ends, its slot's memory, table and
//! stack go back to the kernel, so a node that ran 10,000 pods and deleted
//! them holds none of their pages. HTTP instances live for one request:
//! their slots keep the pages the last request dirtied and rewrite them in
//! place for the next, which is what makes an instance per request cheap.

use wasmtime::component::Linker;
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use crate::host::{ComponentHost, CoreHost};
use crate::{Error, Result, RuntimeConfig};

/// Which engine a workload runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flavor {
    /// Long-lived commands (components and core modules).
    Command,
    /// `wasi:http/proxy` components, an instance per request.
    Http,
}

impl Flavor {
    pub(crate) const ALL: [Flavor; 2] = [Flavor::Command, Flavor::Http];

    /// The flavor a binary's top-level exports call for, read without
    /// compiling it: a component exporting `wasi:http/incoming-handler` is
    /// served per request, anything else runs as a command. (Compiling
    /// checks the world properly; this only picks the pool.)
    pub(crate) fn of_binary(bytes: &[u8]) -> Self {
        use wasmparser::{Parser, Payload};
        if !Parser::is_component(bytes) {
            return Flavor::Command;
        }
        let mut depth = 0u32;
        for payload in Parser::new(0).parse_all(bytes) {
            match payload {
                Ok(Payload::ModuleSection { .. } | Payload::ComponentSection { .. }) => depth += 1,
                Ok(Payload::End(_)) => depth = depth.saturating_sub(1),
                Ok(Payload::ComponentExportSection(exports)) if depth == 0 => {
                    let http = exports
                        .into_iter()
                        .flatten()
                        .any(|e| e.name.name.starts_with("wasi:http/incoming-handler@0.2"));
                    if http {
                        return Flavor::Http;
                    }
                }
                Err(_) => break,
                _ => {}
            }
        }
        Flavor::Command
    }
}

/// Memory mappings a command instance may take: its linear memory, the
/// module's image mapped into it, its table, its stack, and the guard
/// regions between them.
const MAPPINGS_PER_INSTANCE: u64 = 8;

/// Mappings left for everything else the process maps (the HTTP pool
/// among them).
const OTHER_MAPPINGS: u64 = 16_384;

const MAX_MAP_COUNT: &str = "/proc/sys/vm/max_map_count";

/// Makes room in the kernel's `vm.max_map_count` for `instances` running
/// commands, raising it where the process may (as the kubelet sets the
/// kernel tunables it needs; many systems keep the old default of 65,530,
/// about 8,000 instances). Returns how many instances fit.
pub fn ensure_map_count(instances: u32) -> u32 {
    let needed = u64::from(instances) * MAPPINGS_PER_INSTANCE + OTHER_MAPPINGS;
    let Some(current) = std::fs::read_to_string(MAX_MAP_COUNT)
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
    else {
        return instances;
    };
    if current >= needed {
        return instances;
    }
    match std::fs::write(MAX_MAP_COUNT, needed.to_string()) {
        Ok(()) => {
            tracing::info!(
                "raised vm.max_map_count from {current} to {needed} for {instances} instances"
            );
            instances
        }
        Err(e) => {
            let fit = current.saturating_sub(OTHER_MAPPINGS) / MAPPINGS_PER_INSTANCE;
            let fit = u32::try_from(fit).unwrap_or(u32::MAX).min(instances);
            tracing::warn!(
                "vm.max_map_count is {current}, room for {fit} instances, not {instances} ({e}); \
                 raise it with `sysctl -w vm.max_map_count={needed}`"
            );
            fit
        }
    }
}

/// Instances the HTTP pool holds: requests served at once across the node.
pub(crate) const HTTP_INSTANCES: u32 = 1024;

/// Bytes of each HTTP instance's linear memory slot kept resident between
/// requests.
const KEEP_RESIDENT: usize = 1 << 20;

/// Slots whose remaining memory is returned to the kernel together.
const DECOMMIT_BATCH: usize = 16;

/// Address space the linear memories of one pool may reserve. The user
/// half of x86-64's address space is 128 TiB; half of it is left to
/// everything else.
const MEMORY_ADDRESS_SPACE: u64 = 64 << 40;

/// wasmtime's guard region after each linear memory on 64-bit hosts.
const MEMORY_GUARD: u64 = 32 << 20;

/// A 32-bit memory's whole range: with this much reserved, compiled code
/// needs no bounds checks.
const FULL_RESERVATION: u64 = 4 << 30;

/// How the linear memories of a pool of `instances` fit the address space.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct PoolLayout {
    /// Memory slots of the pool: two per instance where that fits, else
    /// one and some to spare, for components with more than one memory.
    pub memories: u32,
    /// The reservation per memory when the full 4 GiB do not fit (compiled
    /// code then checks bounds).
    pub reservation: Option<u64>,
    /// The largest memory an instance may grow to.
    pub max_memory: usize,
}

impl PoolLayout {
    pub(crate) fn new(instances: u32, max_memory: usize) -> Self {
        let fits = |memories: u32| {
            u64::from(memories) * (FULL_RESERVATION + MEMORY_GUARD) <= MEMORY_ADDRESS_SPACE
        };
        let generous = instances.saturating_mul(2);
        let memories = if fits(generous) {
            generous
        } else {
            instances.saturating_add(instances / 16).saturating_add(1)
        };
        if fits(memories) {
            return Self {
                memories,
                reservation: None,
                max_memory,
            };
        }
        let per_memory = MEMORY_ADDRESS_SPACE / u64::from(memories.max(1));
        let reservation = (per_memory.saturating_sub(MEMORY_GUARD) & !0xffff).max(1 << 16);
        Self {
            memories,
            reservation: Some(reservation),
            max_memory: max_memory.min(usize::try_from(reservation).unwrap_or(usize::MAX)),
        }
    }
}

/// One engine with the linkers of the workloads it runs.
pub(crate) struct FlavorEngine {
    pub engine: Engine,
    pub component_linker: Linker<ComponentHost>,
    pub core_linker: wasmtime::Linker<CoreHost>,
}

impl FlavorEngine {
    /// The engine of `flavor`: pooling allocator when the host allows it,
    /// on-demand allocation otherwise.
    pub(crate) fn new(config: &RuntimeConfig, flavor: Flavor) -> Result<Self> {
        let engine = build(config, flavor, true).or_else(|e| {
            tracing::warn!(
                "pooling allocator unavailable for {flavor:?} instances ({e}); using on-demand allocation"
            );
            build(config, flavor, false)
        })?;
        let engine_err = |e: wasmtime::Error| Error::Engine(e.to_string());
        let mut component_linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut component_linker).map_err(engine_err)?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut component_linker)
            .map_err(engine_err)?;
        crate::lookup::add_to_linker(&mut component_linker).map_err(engine_err)?;
        crate::sockets::add_to_linker(&mut component_linker).map_err(engine_err)?;
        let mut core_linker = wasmtime::Linker::new(&engine);
        wasmtime_wasi::p1::add_to_linker_async(&mut core_linker, |h: &mut CoreHost| &mut h.wasi)
            .map_err(engine_err)?;
        Ok(Self {
            engine,
            component_linker,
            core_linker,
        })
    }
}

fn build(config: &RuntimeConfig, flavor: Flavor, pooling: bool) -> Result<Engine> {
    let mut c = Config::new();
    c.epoch_interruption(true).wasm_component_model(true);
    let n = match flavor {
        Flavor::Command => config.pool_instances,
        Flavor::Http => HTTP_INSTANCES,
    };
    let layout = PoolLayout::new(n, config.max_memory_bytes);
    if let Some(bytes) = layout.reservation {
        c.memory_reservation(bytes);
    }
    if flavor == Flavor::Command {
        // A command's stack goes back to the kernel when it ends.
        c.async_stack_zeroing(true);
    }
    if pooling {
        let mut p = PoolingAllocationConfig::default();
        p.total_component_instances(n)
            .total_core_instances(n.saturating_mul(8))
            .total_memories(layout.memories)
            .total_tables(n.saturating_mul(4))
            .total_stacks(n)
            .max_memory_size(layout.max_memory)
            .decommit_batch_size(DECOMMIT_BATCH);
        if flavor == Flavor::Http {
            // Reset a slot for its next request by rewriting the pages the
            // last one dirtied (found with PAGEMAP_SCAN where the kernel has
            // it) instead of unmapping them: no page faults on reuse and far
            // fewer TLB shootdowns across cores.
            p.pagemap_scan(wasmtime::Enabled::Auto)
                .linear_memory_keep_resident(KEEP_RESIDENT)
                .table_keep_resident(KEEP_RESIDENT / 16);
        }
        c.allocation_strategy(InstanceAllocationStrategy::Pooling(p));
    }
    Engine::new(&c).map_err(|e| Error::Engine(format!("{e:#}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pools_keep_full_reservations_while_they_fit_the_address_space() {
        let tiny = PoolLayout::new(3, 1 << 30);
        assert_eq!(tiny.memories, 6);
        let small = PoolLayout::new(12_256, 1 << 30);
        assert_eq!(small.reservation, None);
        assert_eq!(small.max_memory, 1 << 30);
        assert!(small.memories > 12_256 + 12_256 / 16);
        let big = PoolLayout::new(50_256, 1 << 30);
        let r = big.reservation.expect("50,000 pods do not fit 4 GiB each");
        assert!(r >= 1 << 30, "{r}");
        assert!(u64::from(big.memories) * (r + MEMORY_GUARD) <= MEMORY_ADDRESS_SPACE);
        assert_eq!(big.max_memory, 1 << 30);
        let huge = PoolLayout::new(200_000, 1 << 30);
        let r = huge.reservation.unwrap();
        assert!(r < 1 << 30 && r.is_multiple_of(1 << 16));
        assert_eq!(
            huge.max_memory as u64, r,
            "memories cannot outgrow their slot"
        );
    }

    #[test]
    fn binaries_pick_their_pool_from_their_exports() {
        let core = wat::parse_str(r#"(module (func (export "_start")))"#).unwrap();
        assert_eq!(Flavor::of_binary(&core), Flavor::Command);
        let http = wat::parse_str(
            r#"(component
                (component $inner)
                (instance $i (instantiate $inner))
                (export "wasi:http/incoming-handler@0.2.0" (instance $i)))"#,
        )
        .unwrap();
        assert_eq!(Flavor::of_binary(&http), Flavor::Http);
        let nested = wat::parse_str(
            r#"(component
                (component $inner
                    (component $c)
                    (instance $i (instantiate $c))
                    (export "wasi:http/incoming-handler@0.2.0" (instance $i)))
                (instance $i (instantiate $inner))
                (export "wasi:cli/run@0.2.0" (instance $i)))"#,
        )
        .unwrap();
        assert_eq!(
            Flavor::of_binary(&nested),
            Flavor::Command,
            "only top-level exports count"
        );
        assert_eq!(Flavor::of_binary(b"not wasm"), Flavor::Command);
    }
}

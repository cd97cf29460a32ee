use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::OnceCell;
use wasmtime::component::Linker;
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};
use wasmtime_wasi::p2::bindings::CommandPre;
use wasmtime_wasi_http::p2::bindings::ProxyPre;

use crate::host::{ComponentHost, CoreHost};
use crate::workload::{Compiled, Pre, compile};
use crate::{Error, ImageRef, ImageStore, Result, Workload, WorkloadKind};

/// How often the engine's epoch advances; a running guest yields to other
/// tasks at every tick.
pub(crate) const EPOCH_TICK: Duration = Duration::from_millis(5);

/// Bytes of each linear memory slot kept resident between instances.
const KEEP_RESIDENT: usize = 1 << 20;

/// Slots whose remaining memory is returned to the kernel together.
const DECOMMIT_BATCH: usize = 16;

/// Settings of a node's runtime.
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// Directory of the image store.
    pub image_dir: PathBuf,
    /// Instances the pooling allocator keeps slots for.
    pub pool_instances: u32,
    /// Largest linear memory any instance may grow to.
    pub max_memory_bytes: usize,
    /// Bytes of modules and compiled artifacts the image store may hold
    /// before unused images are collected.
    pub image_cache_max_bytes: u64,
    /// How long an image stays exempt from collection after it was stored
    /// or last used.
    pub image_minimum_age: Duration,
}

impl RuntimeConfig {
    /// Defaults for a node whose data lives under `data_dir`.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            image_dir: data_dir.into().join("images"),
            pool_instances: 1000,
            max_memory_bytes: 1 << 30,
            image_cache_max_bytes: 10 << 30,
            image_minimum_age: Duration::from_secs(120),
        }
    }
}

/// The node's Wasm runtime: one engine, a cache of compiled workloads.
pub struct Runtime {
    engine: Engine,
    images: ImageStore,
    component_linker: Linker<ComponentHost>,
    core_linker: wasmtime::Linker<CoreHost>,
    cache: Mutex<HashMap<String, Arc<OnceCell<Arc<Workload>>>>>,
    pub(crate) config: RuntimeConfig,
    /// When each module was last loaded for a container.
    pub(crate) last_used: Mutex<HashMap<String, std::time::SystemTime>>,
    /// Held while garbage is collected, so two collections do not race.
    pub(crate) gc_lock: Mutex<()>,
}

impl Runtime {
    /// Builds the engine (pooling allocator when the host allows it, the
    /// on-demand allocator otherwise) and starts the epoch ticker.
    pub fn new(config: RuntimeConfig) -> Result<Arc<Self>> {
        let engine = Self::engine(&config, true).or_else(|e| {
            tracing::warn!("pooling allocator unavailable ({e}); using on-demand allocation");
            Self::engine(&config, false)
        })?;
        let mut component_linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut component_linker)
            .map_err(|e| Error::Engine(e.to_string()))?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut component_linker)
            .map_err(|e| Error::Engine(e.to_string()))?;
        let mut core_linker = wasmtime::Linker::new(&engine);
        wasmtime_wasi::p1::add_to_linker_async(&mut core_linker, |h: &mut CoreHost| &mut h.wasi)
            .map_err(|e| Error::Engine(e.to_string()))?;
        let weak = engine.weak();
        std::thread::Builder::new()
            .name("shoal-epoch".into())
            .spawn(move || {
                while let Some(engine) = weak.upgrade() {
                    engine.increment_epoch();
                    drop(engine);
                    std::thread::sleep(EPOCH_TICK);
                }
            })
            .map_err(Error::Io)?;
        Ok(Arc::new(Self {
            engine,
            images: ImageStore::new(config.image_dir.clone()),
            component_linker,
            core_linker,
            cache: Mutex::new(HashMap::new()),
            config,
            last_used: Mutex::new(HashMap::new()),
            gc_lock: Mutex::new(()),
        }))
    }

    fn engine(config: &RuntimeConfig, pooling: bool) -> Result<Engine> {
        let mut c = Config::new();
        c.epoch_interruption(true).wasm_component_model(true);
        if pooling {
            let n = config.pool_instances;
            let mut p = PoolingAllocationConfig::default();
            p.total_component_instances(n)
                .total_core_instances(n * 8)
                .total_memories(n * 2)
                .total_tables(n * 4)
                .total_stacks(n)
                .max_memory_size(config.max_memory_bytes)
                // Reset a slot for its next instance by rewriting the pages
                // the last one dirtied (found with PAGEMAP_SCAN where the
                // kernel has it) instead of unmapping them: no page faults on
                // reuse and far fewer TLB shootdowns across cores.
                .pagemap_scan(wasmtime::Enabled::Auto)
                .linear_memory_keep_resident(KEEP_RESIDENT)
                .table_keep_resident(KEEP_RESIDENT / 16)
                .decommit_batch_size(DECOMMIT_BATCH);
            c.allocation_strategy(InstanceAllocationStrategy::Pooling(p));
        }
        Engine::new(&c).map_err(|e| Error::Engine(format!("{e:#}")))
    }

    /// The engine configuration's part of compiled artifacts' names.
    pub(crate) fn engine_tag(&self) -> String {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        self.engine.precompile_compatibility_hash().hash(&mut h);
        format!("{:016x}", h.finish())
    }

    /// Where the compiled artifact of `digest` is cached: keyed by the
    /// module digest and the engine's compatibility hash.
    pub(crate) fn compiled_path(&self, digest: &str) -> std::path::PathBuf {
        let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
        self.images
            .root()
            .join("compiled")
            .join(format!("{hex}-{}.cwasm", self.engine_tag()))
    }

    /// Drops the compiled workload of a removed module.
    pub(crate) fn forget(&self, digest: &str) {
        self.cache.lock().expect("cache lock").remove(digest);
        self.last_used
            .lock()
            .expect("last-used lock")
            .remove(digest);
    }

    /// The local image store.
    pub fn images(&self) -> &ImageStore {
        &self.images
    }

    pub(crate) fn engine_ref(&self) -> &Engine {
        &self.engine
    }

    /// Resolves `image` in the image store and compiles it, once per digest.
    pub async fn load(&self, image: &str) -> Result<Arc<Workload>> {
        let image_ref = ImageRef::parse(image)?;
        let digest = self
            .images
            .resolve(&image_ref)?
            .ok_or_else(|| Error::ImageNotFound(image_ref.to_string()))?;
        self.last_used
            .lock()
            .expect("last-used lock")
            .insert(digest.clone(), std::time::SystemTime::now());
        let cell = self
            .cache
            .lock()
            .expect("cache lock")
            .entry(digest.clone())
            .or_default()
            .clone();
        let workload = cell
            .get_or_try_init(|| async {
                let bytes = self.images.read_blob(&digest)?;
                let engine = self.engine.clone();
                let (img, dig) = (image_ref.to_string(), digest.clone());
                let cache = self.compiled_path(&digest);
                let compiled = tokio::task::spawn_blocking(move || {
                    compile(&engine, &img, &dig, &bytes, Some(&cache))
                })
                .await
                .map_err(|e| Error::Engine(format!("compiler task failed: {e}")))??;
                self.prepare(compiled).map(Arc::new)
            })
            .await?;
        Ok(workload.clone())
    }

    fn prepare(
        &self,
        (digest, kind, compiled): (String, WorkloadKind, Compiled),
    ) -> Result<Workload> {
        let inst = |e: wasmtime::Error| Error::Instantiate(format!("{e:#}"));
        let pre = match compiled {
            Compiled::Component(c) => {
                let pre = self.component_linker.instantiate_pre(&c).map_err(inst)?;
                match kind {
                    WorkloadKind::Http => Pre::Http(ProxyPre::new(pre).map_err(inst)?),
                    _ => Pre::Command(CommandPre::new(pre).map_err(inst)?),
                }
            }
            Compiled::Core(m) => Pre::Core(self.core_linker.instantiate_pre(&m).map_err(inst)?),
        };
        Ok(Workload { digest, kind, pre })
    }
}

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::FutureExt;
use futures::future::{BoxFuture, Shared};
use tokio::sync::OnceCell;
use wasmtime::Engine;
use wasmtime_wasi::p2::bindings::CommandPre;
use wasmtime_wasi_http::p2::bindings::ProxyPre;

use crate::pools::{Flavor, FlavorEngine};
use crate::workload::{Compiled, Pre, compile};
use crate::{Error, ImageRef, ImageStore, Result, Workload, WorkloadKind};

/// A module's compilation, awaited by every load that needs it.
type CompileJob = Shared<BoxFuture<'static, Result<((String, WorkloadKind, Compiled), Flavor)>>>;

/// How often the engine's epoch advances; a running guest yields to other
/// tasks at every tick.
pub(crate) const EPOCH_TICK: Duration = Duration::from_millis(5);

/// Settings of a node's runtime.
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// Directory of the image store.
    pub image_dir: PathBuf,
    /// Command instances the pooling allocator keeps slots for (HTTP
    /// requests have a pool of their own).
    pub pool_instances: u32,
    /// Largest linear memory any instance may grow to.
    pub max_memory_bytes: usize,
    /// Bytes of modules and compiled artifacts the image store may hold
    /// before unused images are collected.
    pub image_cache_max_bytes: u64,
    /// How long an image stays exempt from collection after it was stored
    /// or last used.
    pub image_minimum_age: Duration,
    /// The memory limit of an instance whose pod sets none.
    pub default_memory_limit: Option<usize>,
    /// The memory all instances may hold together (the node's allocatable
    /// memory); `None`: unbounded.
    pub pod_memory: Option<usize>,
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
            default_memory_limit: None,
            pod_memory: None,
        }
    }
}

/// The node's Wasm runtime: an engine for commands and one for HTTP
/// instances (see `pools`), and a cache of compiled workloads.
pub struct Runtime {
    commands: FlavorEngine,
    http: FlavorEngine,
    images: ImageStore,
    cache: Mutex<HashMap<String, Arc<OnceCell<Arc<Workload>>>>>,
    /// Compilations under way, by digest.
    compiling: Mutex<HashMap<String, CompileJob>>,
    /// Compilations started since the runtime began.
    compilations: std::sync::atomic::AtomicU64,
    pub(crate) config: RuntimeConfig,
    /// When each module was last loaded for a container.
    pub(crate) last_used: Mutex<HashMap<String, std::time::SystemTime>>,
    /// Held while garbage is collected, so two collections do not race.
    pub(crate) gc_lock: Mutex<()>,
    /// The node's memory for pods, shared by every instance.
    pub(crate) memory: Option<Arc<crate::memory::MemoryBudget>>,
}

impl Runtime {
    /// Builds the engines and starts the epoch ticker.
    pub fn new(config: RuntimeConfig) -> Result<Arc<Self>> {
        let commands = FlavorEngine::new(&config, Flavor::Command)?;
        let http = FlavorEngine::new(&config, Flavor::Http)?;
        let weak = [commands.engine.weak(), http.engine.weak()];
        std::thread::Builder::new()
            .name("shoal-epoch".into())
            .spawn(move || {
                loop {
                    let engines: Vec<Engine> = weak.iter().filter_map(|w| w.upgrade()).collect();
                    if engines.is_empty() {
                        return;
                    }
                    for e in &engines {
                        e.increment_epoch();
                    }
                    drop(engines);
                    std::thread::sleep(EPOCH_TICK);
                }
            })
            .map_err(Error::Io)?;
        Ok(Arc::new(Self {
            commands,
            http,
            images: ImageStore::new(config.image_dir.clone()),
            cache: Mutex::new(HashMap::new()),
            compiling: Mutex::new(HashMap::new()),
            compilations: Default::default(),
            memory: config.pod_memory.map(crate::memory::MemoryBudget::new),
            config,
            last_used: Mutex::new(HashMap::new()),
            gc_lock: Mutex::new(()),
        }))
    }

    fn flavor(&self, flavor: Flavor) -> &FlavorEngine {
        match flavor {
            Flavor::Command => &self.commands,
            Flavor::Http => &self.http,
        }
    }

    /// An engine configuration's part of compiled artifacts' names.
    pub(crate) fn engine_tag(&self, flavor: Flavor) -> String {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        self.flavor(flavor)
            .engine
            .precompile_compatibility_hash()
            .hash(&mut h);
        format!("{:016x}", h.finish())
    }

    /// Where the compiled artifact of `digest` for `flavor`'s engine is
    /// cached: keyed by the module digest and the engine's compatibility
    /// hash.
    pub(crate) fn compiled_path(&self, digest: &str, flavor: Flavor) -> std::path::PathBuf {
        let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
        self.images
            .root()
            .join("compiled")
            .join(format!("{hex}-{}.cwasm", self.engine_tag(flavor)))
    }

    /// Drops the compiled workload of a removed module.
    pub(crate) fn forget(&self, digest: &str) {
        self.cache.lock().expect("cache lock").remove(digest);
        self.last_used
            .lock()
            .expect("last-used lock")
            .remove(digest);
    }

    /// Bytes of linear memory the node's instances hold now, and the most
    /// they may hold together (`None`: unbounded).
    pub fn memory_in_use(&self) -> (usize, Option<usize>) {
        match &self.memory {
            Some(m) => (m.used(), Some(m.limit())),
            None => (0, None),
        }
    }

    /// The local image store.
    pub fn images(&self) -> &ImageStore {
        &self.images
    }

    /// The engine `workload` was compiled for.
    pub(crate) fn engine_of(&self, workload: &Workload) -> &Engine {
        &self.flavor(workload.flavor).engine
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
                let job = self.compile_job(&image_ref, &digest);
                let done = job
                    .await
                    .and_then(|(compiled, flavor)| self.prepare(compiled, flavor));
                // Done either way: a workload lives in the cell now, and a
                // failure is tried again by the next load.
                self.compiling
                    .lock()
                    .expect("compiling lock")
                    .remove(&digest);
                done.map(Arc::new)
            })
            .await?;
        Ok(workload.clone())
    }

    /// How many compilations of a module (from its binary or from the
    /// compiled cache) this runtime has started.
    pub fn compilations(&self) -> u64 {
        self.compilations.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The compilation of `digest`, started if none is running. It runs to
    /// the end on the blocking pool even when every caller stops waiting (a
    /// probe's timeout, a deleted pod): the next caller takes its result
    /// instead of starting again, so a node under load cannot keep
    /// abandoning and restarting the same compilation.
    fn compile_job(&self, image_ref: &ImageRef, digest: &str) -> CompileJob {
        let mut jobs = self.compiling.lock().expect("compiling lock");
        if let Some(job) = jobs.get(digest) {
            return job.clone();
        }
        self.compilations
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let images = self.images.clone();
        let engines = Flavor::ALL.map(|f| {
            (
                f,
                self.flavor(f).engine.clone(),
                self.compiled_path(digest, f),
            )
        });
        let (img, dig) = (image_ref.to_string(), digest.to_string());
        let task = tokio::task::spawn_blocking(move || {
            let bytes = images.read_blob(&dig)?;
            let flavor = Flavor::of_binary(&bytes);
            let (_, engine, cache) = engines
                .iter()
                .find(|(f, ..)| *f == flavor)
                .expect("an engine per flavor");
            compile(engine, &img, &dig, &bytes, Some(cache)).map(|c| (c, flavor))
        });
        let job = async move {
            task.await
                .map_err(|e| Error::Engine(format!("compiler task failed: {e}")))?
        }
        .boxed()
        .shared();
        jobs.insert(digest.to_string(), job.clone());
        job
    }

    /// Links a workload compiled on `flavor`'s engine. (Both engines link
    /// every world, so a workload runs whichever pool its binary chose.)
    fn prepare(
        &self,
        (digest, kind, compiled): (String, WorkloadKind, Compiled),
        flavor: Flavor,
    ) -> Result<Workload> {
        let inst = |e: wasmtime::Error| Error::Instantiate(format!("{e:#}"));
        let linkers = self.flavor(flavor);
        let pre = match compiled {
            Compiled::Component(c) => {
                let pre = linkers.component_linker.instantiate_pre(&c).map_err(inst)?;
                match kind {
                    WorkloadKind::Http => Pre::Http(ProxyPre::new(pre).map_err(inst)?),
                    _ => Pre::Command(CommandPre::new(pre).map_err(inst)?),
                }
            }
            Compiled::Core(m) => Pre::Core(linkers.core_linker.instantiate_pre(&m).map_err(inst)?),
        };
        Ok(Workload {
            digest,
            kind,
            flavor,
            pre,
        })
    }
}

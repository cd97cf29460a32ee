//! The task service containerd calls: the containers of the daemon, each
//! with its init process and the processes `exec` adds, and the events
//! containerd hears of them (create, start, exit, OOM, delete).
//!
//! A container's module is the file its process names in its root
//! filesystem (the image's entrypoint, as containerd unpacked it); the
//! daemon stores it by digest, so the same module in many containers is
//! compiled once.
//!
//! May import: `spec`, `process`, the runtime's public API and the shim
//! protocols.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use async_trait::async_trait;
use containerd_shim::asynchronous::ExitSignal;
use containerd_shim::asynchronous::publisher::RemotePublisher;
use containerd_shim::protos::api::{self, Empty};
use containerd_shim::protos::cgroups_v2::metrics::{CPUStat, MemoryStat, Metrics};
use containerd_shim::protos::events::task::{
    TaskCreate, TaskDelete, TaskExecAdded, TaskExecStarted, TaskExit, TaskIO, TaskOOM, TaskStart,
};
use containerd_shim::protos::protobuf::well_known_types::timestamp::Timestamp;
use containerd_shim::protos::protobuf::{EnumOrUnknown, MessageDyn, MessageField};
use containerd_shim::protos::shim_async::Task;
use containerd_shim::protos::topics;
use containerd_shim::protos::ttrpc::{self, r#async::TtrpcContext};
use containerd_shim::protos::types::task::{ProcessInfo, Status};

use super::netns::{Executor, Namespaces};
use super::process::{Ended, Job, Proc, State, StdioPaths};
use super::spec::{self, Network, Plan, Spec};
use crate::{CommandSpec, NetworkAccess, OutputSink, Runtime, Usage, Workload};

/// Where a guest that follows the stop request sees its directory, and
/// the file that appears there when it should stop (as on shoal's nodes).
const RUN_DIR: &str = "/run/shoal";
const STOP_FILE: &str = "stop";

/// The largest `config.json` the daemon reads.
const MAX_SPEC: u64 = 4 << 20;
/// The largest module the daemon loads from a root filesystem.
const MAX_MODULE: u64 = 512 << 20;

type RpcResult<T> = ttrpc::Result<T>;

fn status(code: ttrpc::Code, msg: impl Into<String>) -> ttrpc::Error {
    ttrpc::Error::RpcStatus(ttrpc::get_status(code, msg.into()))
}

fn not_found(what: impl std::fmt::Display) -> ttrpc::Error {
    status(ttrpc::Code::NOT_FOUND, format!("{what}: not found"))
}

/// The daemon's task service.
pub(crate) struct Service {
    inner: Arc<Inner>,
}

struct Inner {
    runtime: Arc<Runtime>,
    publisher: RemotePublisher,
    namespace: String,
    containers: Mutex<HashMap<String, Arc<Container>>>,
    /// Executors inside pods' network namespaces.
    namespaces: Namespaces,
    /// The toolbox's digest, once stored.
    toolbox_digest: std::sync::OnceLock<String>,
    /// When a request last came in, for leaving when idle.
    last_request: Mutex<Instant>,
}

/// One container.
struct Container {
    id: String,
    bundle: PathBuf,
    rootfs: PathBuf,
    /// Whether the daemon mounted the root filesystem (and unmounts it).
    mounted: bool,
    spec: Spec,
    /// The container's own module and how its instance starts, which
    /// `exec` reuses; none for a sandbox.
    base: Option<(Arc<Workload>, CommandSpec, PathBuf)>,
    usage: Arc<Usage>,
    /// Its network: for a sandbox, the pod's.
    network: Network,
    /// Where its instances run when it is in a pod's network namespace.
    executor: Option<Arc<Executor>>,
    init: Arc<Proc>,
    execs: Mutex<HashMap<String, Arc<Proc>>>,
}

impl Container {
    fn process(&self, exec_id: &str) -> RpcResult<Arc<Proc>> {
        if exec_id.is_empty() {
            return Ok(self.init.clone());
        }
        self.execs
            .lock()
            .expect("execs lock")
            .get(exec_id)
            .cloned()
            .ok_or_else(|| not_found(format!("process {exec_id}")))
    }
}

/// Output nobody reads (a process's streams are its own pipes).
struct Discard;

impl OutputSink for Discard {
    fn write(&self, _: &[u8]) {}
}

impl Service {
    pub fn new(runtime: Arc<Runtime>, publisher: RemotePublisher, namespace: String) -> Self {
        Self {
            inner: Arc::new(Inner {
                runtime,
                publisher,
                namespace,
                containers: Mutex::new(HashMap::new()),
                namespaces: Namespaces::default(),
                toolbox_digest: std::sync::OnceLock::new(),
                last_request: Mutex::new(Instant::now()),
            }),
        }
    }

    /// Leaves (removing the socket first, so the next container spawns a
    /// new daemon) once no container has been served for `linger`; every
    /// few minutes meanwhile, and before leaving, removes from the image
    /// store the modules no container runs (past the store's bound,
    /// least recently used first).
    pub fn leave_when_idle(&self, linger: Duration, exit: Arc<ExitSignal>, socket: String) {
        let inner = Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            let mut last_gc = Instant::now();
            loop {
                tokio::time::sleep(Duration::from_secs(1).min(linger)).await;
                let Some(inner) = inner.upgrade() else { return };
                if last_gc.elapsed() >= GC_INTERVAL {
                    last_gc = Instant::now();
                    inner.collect_garbage().await;
                }
                let idle = inner.containers.lock().expect("containers lock").is_empty()
                    && inner.last_request.lock().expect("request lock").elapsed() >= linger;
                if idle {
                    inner.collect_garbage().await;
                    let path = socket.strip_prefix("unix://").unwrap_or(&socket);
                    let _ = std::fs::remove_file(path);
                    log::info!("no containers for {linger:?}: leaving");
                    exit.signal();
                    return;
                }
            }
        });
    }
}

impl Inner {
    /// Collects the image store's garbage, keeping every running
    /// container's module.
    async fn collect_garbage(self: &Arc<Self>) {
        let in_use: Vec<String> = self
            .containers
            .lock()
            .expect("containers lock")
            .values()
            .filter_map(|c| c.base.as_ref())
            .map(|(w, ..)| module_ref(w.digest()))
            .collect();
        let this = self.clone();
        let report = tokio::task::spawn_blocking(move || {
            this.runtime
                .collect_garbage(in_use.iter().map(String::as_str))
        })
        .await;
        match report {
            Ok(Ok(r)) if !r.removed.is_empty() => log::info!(
                "image store: removed {} modules, {} → {} bytes",
                r.removed.len(),
                r.before,
                r.after
            ),
            Ok(Err(e)) => log::warn!("image store garbage collection: {e}"),
            _ => {}
        }
    }

    fn touch(&self) {
        *self.last_request.lock().expect("request lock") = Instant::now();
    }

    fn container(&self, id: &str) -> RpcResult<Arc<Container>> {
        self.touch();
        self.containers
            .lock()
            .expect("containers lock")
            .get(id)
            .cloned()
            .ok_or_else(|| not_found(format!("container {id}")))
    }

    fn publish(self: &Arc<Self>, topic: &'static str, event: Box<dyn MessageDyn>) {
        let this = self.clone();
        tokio::spawn(async move {
            let ctx = ttrpc::context::with_timeout(0);
            if let Err(e) = this
                .publisher
                .publish(ctx, topic, &this.namespace, event)
                .await
            {
                log::warn!("publishing {topic}: {e}");
            }
        });
    }

    /// Reads the bundle, mounts the root filesystem and loads the module.
    async fn create(&self, req: &api::CreateTaskRequest) -> Result<Container, String> {
        let bundle = PathBuf::from(&req.bundle);
        let spec = Spec::parse(&read_bounded(&bundle.join("config.json"), MAX_SPEC)?)?;
        let rootfs = spec.rootfs(&bundle);
        let stdio = StdioPaths {
            stdin: req.stdin.clone(),
            stdout: req.stdout.clone(),
            stderr: req.stderr.clone(),
            terminal: req.terminal,
        };
        let usage = Arc::new(Usage::default());
        if spec.is_sandbox() {
            return Ok(Container {
                id: req.id.clone(),
                bundle,
                rootfs,
                mounted: false,
                network: spec.network(),
                spec,
                base: None,
                usage,
                executor: None,
                init: Proc::new(Job::Pause, stdio),
                execs: Mutex::default(),
            });
        }
        let mounted = !req.rootfs.is_empty();
        for m in &req.rootfs {
            std::fs::create_dir_all(&rootfs).map_err(|e| format!("{}: {e}", rootfs.display()))?;
            containerd_shim::asynchronous::util::mount_rootfs(m, &rootfs)
                .await
                .map_err(|e| format!("mounting the root filesystem: {e}"))?;
        }
        let loaded = async {
            let process = spec.process.as_ref().ok_or("the spec has no process")?;
            let mut plan = spec::plan(&spec, process, &rootfs)?;
            plan.network = self.pod_network(&spec, plan.network);
            if spec.asks_to_stop() {
                // A directory of its own where the stop file appears.
                let dir = bundle.join("shoal-run");
                std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
                let _ = std::fs::remove_file(dir.join(STOP_FILE));
                plan.preopens.push(crate::Preopen {
                    host: dir,
                    guest: RUN_DIR.into(),
                    read_only: true,
                });
            }
            let executor = match &plan.network {
                Network::Namespace(path) => Some(self.namespaces.executor(path)?),
                Network::Host | Network::None => None,
            };
            let (workload, module) = self.load(&rootfs, &plan).await?;
            let command = command_spec(&plan, &usage);
            Ok::<_, String>((workload, command, module, executor, plan.network))
        }
        .await;
        let (workload, command, module, executor, plan_network) = match loaded {
            Ok(l) => l,
            Err(e) => {
                if mounted {
                    unmount_rootfs(&bundle);
                }
                return Err(e);
            }
        };
        let stop_file = spec
            .asks_to_stop()
            .then(|| bundle.join("shoal-run").join(STOP_FILE));
        let init = Proc::stoppable(
            Job::Wasm {
                workload: workload.clone(),
                spec: Box::new(command.clone()),
                status_file: None,
            },
            stdio,
            stop_file,
        );
        Ok(Container {
            id: req.id.clone(),
            bundle,
            rootfs,
            mounted,
            spec,
            network: plan_network,
            base: Some((workload, command, module)),
            usage,
            executor,
            init,
            execs: Mutex::default(),
        })
    }

    /// A CRI container joins its pod's network through the sandbox's
    /// process (`/proc/<pid>/ns/net`), which is this daemon: that names
    /// the daemon's own namespace, so the pod's is its sandbox's.
    fn pod_network(&self, spec: &Spec, network: Network) -> Network {
        let Network::Namespace(path) = &network else {
            return network;
        };
        if !same_file(path, Path::new("/proc/self/ns/net")) {
            return network;
        }
        let sandbox = spec.sandbox_id().and_then(|id| {
            self.containers
                .lock()
                .expect("containers lock")
                .get(id)
                .map(|c| c.network.clone())
        });
        sandbox.unwrap_or(Network::Host)
    }

    /// The toolbox, compiled (stored once per daemon).
    async fn toolbox(&self, t: &super::Toolbox) -> Result<Arc<Workload>, String> {
        let digest = match self.toolbox_digest.get() {
            Some(d) => d.clone(),
            None => {
                let d = self
                    .runtime
                    .images()
                    .store_blob(t.wasm)
                    .map_err(|e| format!("storing the toolbox: {e}"))?;
                self.toolbox_digest.get_or_init(|| d).clone()
            }
        };
        self.runtime
            .load(&module_ref(&digest))
            .await
            .map_err(|e| format!("the toolbox: {e}"))
    }

    /// The module `plan` names, compiled: its file must be Wasm.
    async fn load(&self, rootfs: &Path, plan: &Plan) -> Result<(Arc<Workload>, PathBuf), String> {
        let path = spec::module_path(rootfs, &plan.module)?;
        let bytes = read_bounded(&path, MAX_MODULE)?;
        if !bytes.starts_with(b"\0asm") {
            return Err(format!(
                "/{} is not a WebAssembly module: this runtime runs Wasm images only",
                plan.module.display()
            ));
        }
        let digest = self
            .runtime
            .images()
            .store_blob(&bytes)
            .map_err(|e| format!("storing the module: {e}"))?;
        let workload = self
            .runtime
            .load(&module_ref(&digest))
            .await
            .map_err(|e| format!("/{}: {e}", plan.module.display()))?;
        Ok((workload, path))
    }

    /// Starts `proc` of `container`; its end is published (and, for the
    /// init process, ends the container's other processes).
    async fn start(
        self: &Arc<Self>,
        container: &Arc<Container>,
        exec_id: &str,
        proc: &Arc<Proc>,
    ) -> Result<(), String> {
        let this = self.clone();
        let c = container.clone();
        let id = exec_id.to_string();
        let ended = move |e: Ended| {
            if e.oom {
                this.publish(
                    topics::TASK_OOM_EVENT_TOPIC,
                    Box::new(TaskOOM {
                        container_id: c.id.clone(),
                        ..Default::default()
                    }),
                );
            }
            if id.is_empty() {
                for p in c.execs.lock().expect("execs lock").values() {
                    let _ = p.kill(9);
                }
            }
            this.publish(
                topics::TASK_EXIT_EVENT_TOPIC,
                Box::new(TaskExit {
                    container_id: c.id.clone(),
                    id: if id.is_empty() { c.id.clone() } else { id },
                    pid: pid(),
                    exit_status: e.code,
                    exited_at: MessageField::some(Timestamp::from(e.at)),
                    ..Default::default()
                }),
            );
        };
        let executor = container.executor.as_ref().map(|e| e.handle());
        proc.start(self.runtime.clone(), executor, ended).await
    }
}

/// How often the image store's garbage is collected.
const GC_INTERVAL: Duration = Duration::from_secs(300);

/// The image store's name for a module the daemon found in a root
/// filesystem.
fn module_ref(digest: &str) -> String {
    format!("shim.local/module@{digest}")
}

/// The daemon's pid: every process of every container is an instance in it.
fn pid() -> u32 {
    std::process::id()
}

fn command_spec(plan: &Plan, usage: &Arc<Usage>) -> CommandSpec {
    CommandSpec {
        argv: plan.argv.clone(),
        env: plan.env.clone(),
        stdout: Arc::new(Discard),
        stderr: Arc::new(Discard),
        memory_limit: plan.memory_limit,
        preopens: plan.preopens.clone(),
        cpu_millis: plan.cpu_millis,
        working_dir: plan.cwd.clone(),
        // In a pod's namespace the guest has that namespace's network, as
        // a process of the pod would.
        network: match plan.network {
            Network::Host | Network::Namespace(_) => NetworkAccess::Host,
            Network::None => NetworkAccess::None,
        },
        stdio: None,
        usage: Some(usage.clone()),
    }
}

/// A directory name for an exec id (containerd's are free-form).
fn exec_dir_name(exec_id: &str) -> String {
    use sha2::Digest as _;
    hex::encode(&sha2::Sha256::digest(exec_id.as_bytes())[..16])
}

/// Whether two paths are the same file (namespaces compare this way).
fn same_file(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

/// Reads a file of at most `max` bytes.
fn read_bounded(path: &Path, max: u64) -> Result<Vec<u8>, String> {
    let f = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut bytes = Vec::new();
    f.take(max + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if bytes.len() as u64 > max {
        return Err(format!("{} is larger than {max} bytes", path.display()));
    }
    Ok(bytes)
}

/// Unmounts whatever is mounted at the bundle's root filesystem.
pub(crate) fn unmount_rootfs(bundle: &Path) {
    let rootfs = bundle.join("rootfs");
    if let Err(e) = containerd_shim::mount::umount_recursive(rootfs.to_str(), 0) {
        log::warn!("unmounting {}: {e}", rootfs.display());
    }
}

fn timestamp(at: SystemTime) -> MessageField<Timestamp> {
    MessageField::some(Timestamp::from(at))
}

#[async_trait]
impl Task for Service {
    async fn connect(
        &self,
        _: &TtrpcContext,
        _: api::ConnectRequest,
    ) -> RpcResult<api::ConnectResponse> {
        self.inner.touch();
        Ok(api::ConnectResponse {
            shim_pid: pid(),
            task_pid: pid(),
            version: concat!("shoal ", env!("CARGO_PKG_VERSION")).into(),
            ..Default::default()
        })
    }

    async fn create(
        &self,
        _: &TtrpcContext,
        req: api::CreateTaskRequest,
    ) -> RpcResult<api::CreateTaskResponse> {
        let inner = &self.inner;
        inner.touch();
        if inner
            .containers
            .lock()
            .expect("containers lock")
            .contains_key(&req.id)
        {
            return Err(status(
                ttrpc::Code::ALREADY_EXISTS,
                format!("container {} already exists", req.id),
            ));
        }
        let container = inner.create(&req).await.map_err(|e| {
            log::warn!("creating {}: {e}", req.id);
            status(ttrpc::Code::FAILED_PRECONDITION, e)
        })?;
        let container = Arc::new(container);
        let raced = {
            let mut all = inner.containers.lock().expect("containers lock");
            if all.contains_key(&req.id) {
                true
            } else {
                all.insert(req.id.clone(), container.clone());
                false
            }
        };
        if raced {
            if container.mounted {
                unmount_rootfs(&container.bundle);
            }
            return Err(status(
                ttrpc::Code::ALREADY_EXISTS,
                format!("container {} already exists", req.id),
            ));
        }
        inner.publish(
            topics::TASK_CREATE_EVENT_TOPIC,
            Box::new(TaskCreate {
                container_id: req.id.clone(),
                bundle: req.bundle.clone(),
                rootfs: req.rootfs.clone(),
                io: MessageField::some(TaskIO {
                    stdin: req.stdin.clone(),
                    stdout: req.stdout.clone(),
                    stderr: req.stderr.clone(),
                    terminal: req.terminal,
                    ..Default::default()
                }),
                pid: pid(),
                ..Default::default()
            }),
        );
        Ok(api::CreateTaskResponse {
            pid: pid(),
            ..Default::default()
        })
    }

    async fn start(
        &self,
        _: &TtrpcContext,
        req: api::StartRequest,
    ) -> RpcResult<api::StartResponse> {
        let inner = &self.inner;
        let c = inner.container(&req.id)?;
        let proc = c.process(&req.exec_id)?;
        inner
            .start(&c, &req.exec_id, &proc)
            .await
            .map_err(|e| status(ttrpc::Code::FAILED_PRECONDITION, e))?;
        if req.exec_id.is_empty() {
            inner.publish(
                topics::TASK_START_EVENT_TOPIC,
                Box::new(TaskStart {
                    container_id: c.id.clone(),
                    pid: pid(),
                    ..Default::default()
                }),
            );
        } else {
            inner.publish(
                topics::TASK_EXEC_STARTED_EVENT_TOPIC,
                Box::new(TaskExecStarted {
                    container_id: c.id.clone(),
                    exec_id: req.exec_id.clone(),
                    pid: pid(),
                    ..Default::default()
                }),
            );
        }
        Ok(api::StartResponse {
            pid: pid(),
            ..Default::default()
        })
    }

    async fn state(
        &self,
        _: &TtrpcContext,
        req: api::StateRequest,
    ) -> RpcResult<api::StateResponse> {
        let c = self.inner.container(&req.id)?;
        let proc = c.process(&req.exec_id)?;
        let (status, exit_status, exited_at) = match proc.state() {
            State::Created => (Status::CREATED, 0, MessageField::none()),
            State::Running => (Status::RUNNING, 0, MessageField::none()),
            State::Stopped { code, at } => (Status::STOPPED, code, timestamp(at)),
        };
        Ok(api::StateResponse {
            id: req.id.clone(),
            bundle: c.bundle.display().to_string(),
            pid: pid(),
            status: EnumOrUnknown::new(status),
            stdin: proc.stdio.stdin.clone(),
            stdout: proc.stdio.stdout.clone(),
            stderr: proc.stdio.stderr.clone(),
            terminal: proc.stdio.terminal,
            exit_status,
            exited_at,
            exec_id: req.exec_id.clone(),
            ..Default::default()
        })
    }

    async fn kill(&self, _: &TtrpcContext, req: api::KillRequest) -> RpcResult<Empty> {
        let c = self.inner.container(&req.id)?;
        let proc = c.process(&req.exec_id)?;
        if req.all && req.exec_id.is_empty() {
            for p in c.execs.lock().expect("execs lock").values() {
                let _ = p.kill(req.signal);
            }
        }
        proc.kill(req.signal)
            .map_err(|e| status(ttrpc::Code::NOT_FOUND, e))?;
        Ok(Empty::default())
    }

    async fn wait(&self, _: &TtrpcContext, req: api::WaitRequest) -> RpcResult<api::WaitResponse> {
        let c = self.inner.container(&req.id)?;
        let proc = c.process(&req.exec_id)?;
        let (code, at) = proc.wait().await;
        Ok(api::WaitResponse {
            exit_status: code,
            exited_at: timestamp(at),
            ..Default::default()
        })
    }

    async fn delete(
        &self,
        _: &TtrpcContext,
        req: api::DeleteRequest,
    ) -> RpcResult<api::DeleteResponse> {
        let inner = &self.inner;
        let c = inner.container(&req.id)?;
        let proc = c.process(&req.exec_id)?;
        let (code, at) = match proc.state() {
            State::Running => {
                return Err(status(
                    ttrpc::Code::FAILED_PRECONDITION,
                    "the process is running: kill it first",
                ));
            }
            State::Created => (0, SystemTime::now()),
            State::Stopped { code, at } => (code, at),
        };
        if !req.exec_id.is_empty() {
            c.execs.lock().expect("execs lock").remove(&req.exec_id);
            let _ = std::fs::remove_dir_all(
                c.bundle
                    .join("exec-status")
                    .join(exec_dir_name(&req.exec_id)),
            );
        } else {
            inner
                .containers
                .lock()
                .expect("containers lock")
                .remove(&req.id);
            if c.mounted {
                unmount_rootfs(&c.bundle);
            }
            inner.publish(
                topics::TASK_DELETE_EVENT_TOPIC,
                Box::new(TaskDelete {
                    container_id: c.id.clone(),
                    pid: pid(),
                    exit_status: code,
                    exited_at: timestamp(at),
                    id: c.id.clone(),
                    ..Default::default()
                }),
            );
        }
        Ok(api::DeleteResponse {
            pid: pid(),
            exit_status: code,
            exited_at: timestamp(at),
            ..Default::default()
        })
    }

    async fn exec(&self, _: &TtrpcContext, req: api::ExecProcessRequest) -> RpcResult<Empty> {
        let inner = &self.inner;
        let c = inner.container(&req.id)?;
        let invalid = |e: String| status(ttrpc::Code::INVALID_ARGUMENT, e);
        let Some((own, base, own_path)) = &c.base else {
            return Err(invalid("a pod's sandbox runs no commands".into()));
        };
        if c.init.state() != State::Running {
            return Err(status(
                ttrpc::Code::FAILED_PRECONDITION,
                "the container is not running",
            ));
        }
        let process: spec::Process = serde_json::from_slice(&req.spec.value)
            .map_err(|e| invalid(format!("exec process spec: {e}")))?;
        let plan = spec::plan(&c.spec, &process, &c.rootfs).map_err(invalid)?;
        // The container's own module, by its path or file name; else the
        // module at that path in the root filesystem.
        let names_own = spec::module_path(&c.rootfs, &plan.module).ok().as_ref() == Some(own_path)
            || (plan.module.components().count() == 1
                && own_path.file_name() == plan.module.file_name());
        let mut spec = CommandSpec {
            argv: plan.argv.clone(),
            env: plan.env.clone(),
            working_dir: plan.cwd.clone(),
            ..base.clone()
        };
        let mut status_file = None;
        let workload = if names_own {
            own.clone()
        } else {
            match inner.load(&c.rootfs, &plan).await {
                Ok((w, _)) => w,
                // Not in the image: the toolbox's command of that name.
                Err(e) => match super::toolbox().filter(|t| (t.has)(&plan.argv[0])) {
                    Some(t) => {
                        let dir = c
                            .bundle
                            .join("exec-status")
                            .join(exec_dir_name(&req.exec_id));
                        std::fs::create_dir_all(&dir)
                            .map_err(|e| status(ttrpc::Code::INTERNAL, e.to_string()))?;
                        spec.preopens.push(crate::Preopen {
                            host: dir.clone(),
                            guest: t.status_dir.into(),
                            read_only: false,
                        });
                        status_file = Some(dir.join("status"));
                        inner
                            .toolbox(t)
                            .await
                            .map_err(|e| status(ttrpc::Code::INTERNAL, e))?
                    }
                    None => {
                        return Err(status(ttrpc::Code::NOT_FOUND, format!("executable: {e}")));
                    }
                },
            }
        };
        let proc = Proc::new(
            Job::Wasm {
                workload,
                spec: Box::new(spec),
                status_file,
            },
            StdioPaths {
                stdin: req.stdin.clone(),
                stdout: req.stdout.clone(),
                stderr: req.stderr.clone(),
                terminal: req.terminal,
            },
        );
        {
            let mut execs = c.execs.lock().expect("execs lock");
            if execs.contains_key(&req.exec_id) {
                return Err(status(
                    ttrpc::Code::ALREADY_EXISTS,
                    format!("process {} already exists", req.exec_id),
                ));
            }
            execs.insert(req.exec_id.clone(), proc);
        }
        inner.publish(
            topics::TASK_EXEC_ADDED_EVENT_TOPIC,
            Box::new(TaskExecAdded {
                container_id: c.id.clone(),
                exec_id: req.exec_id.clone(),
                ..Default::default()
            }),
        );
        Ok(Empty::default())
    }

    async fn pids(&self, _: &TtrpcContext, req: api::PidsRequest) -> RpcResult<api::PidsResponse> {
        self.inner.container(&req.id)?;
        Ok(api::PidsResponse {
            processes: vec![ProcessInfo {
                pid: pid(),
                ..Default::default()
            }],
            ..Default::default()
        })
    }

    async fn stats(
        &self,
        _: &TtrpcContext,
        req: api::StatsRequest,
    ) -> RpcResult<api::StatsResponse> {
        let c = self.inner.container(&req.id)?;
        let limit = c
            .base
            .as_ref()
            .and_then(|(_, s, _)| s.memory_limit)
            .unwrap_or(0);
        let metrics = Metrics {
            cpu: MessageField::some(CPUStat {
                usage_usec: c.usage.cpu().as_micros() as u64,
                ..Default::default()
            }),
            memory: MessageField::some(MemoryStat {
                usage: c.usage.memory() as u64,
                usage_limit: limit as u64,
                ..Default::default()
            }),
            ..Default::default()
        };
        let any = containerd_shim::util::convert_to_any(Box::new(metrics))
            .map_err(|e| status(ttrpc::Code::INTERNAL, e.to_string()))?;
        Ok(api::StatsResponse {
            stats: MessageField::some(any),
            ..Default::default()
        })
    }

    async fn close_io(&self, _: &TtrpcContext, req: api::CloseIORequest) -> RpcResult<Empty> {
        let c = self.inner.container(&req.id)?;
        if req.stdin {
            c.process(&req.exec_id)?.close_stdin();
        }
        Ok(Empty::default())
    }

    async fn resize_pty(&self, _: &TtrpcContext, req: api::ResizePtyRequest) -> RpcResult<Empty> {
        // A guest's terminal has no size to change.
        self.inner.container(&req.id)?.process(&req.exec_id)?;
        Ok(Empty::default())
    }

    async fn update(&self, _: &TtrpcContext, req: api::UpdateTaskRequest) -> RpcResult<Empty> {
        // Limits are fixed when an instance starts; a new one takes the
        // container's spec again.
        self.inner.container(&req.id)?;
        Ok(Empty::default())
    }

    async fn shutdown(&self, _: &TtrpcContext, _: api::ShutdownRequest) -> RpcResult<Empty> {
        // The daemon serves other containers; it leaves by itself once idle.
        Ok(Empty::default())
    }
}

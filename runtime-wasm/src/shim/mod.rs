//! `containerd-shim-shoal-v1`: this runtime behind containerd's shim v2
//! task API, so any containerd runs Wasm containers with
//! `runtime_type = "io.containerd.shoal.v1"` (and Kubernetes pods with a
//! RuntimeClass whose handler names it).
//!
//! containerd starts a shim binary for every container; here that start
//! only finds (or, the first time, spawns) one long-lived daemon per
//! containerd and namespace, and answers with its socket. The daemon serves
//! every container of the node from one [`Runtime`]: a container costs an
//! instance, not a process.
//!
//! The daemon keeps its state under `SHOAL_SHIM_ROOT` (default
//! `/var/lib/shoal-shim`): the image store with each module seen and its
//! compiled form (bounded by `SHOAL_SHIM_IMAGE_CACHE_BYTES`, 10 GiB; a
//! module stays at least `SHOAL_SHIM_IMAGE_MINIMUM_AGE_SECONDS`, 120), and
//! `shim.log`. It leaves once it has served no container for
//! `SHOAL_SHIM_LINGER_SECONDS` (default 30).
//!
//! May import: the runtime's public API, `containerd-shim` and its
//! protocols.

mod netns;
mod process;
mod spec;
mod task;

use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use containerd_shim::asynchronous::{ExitSignal, Shim, spawn};
use containerd_shim::protos::api::{ConnectRequest, DeleteResponse};
use containerd_shim::protos::protobuf::MessageField;
use containerd_shim::protos::protobuf::well_known_types::timestamp::Timestamp;
use containerd_shim::protos::shim_async::{Client, TaskClient};
use containerd_shim::publisher::RemotePublisher;
use containerd_shim::{Config, Flags, StartOpts};

use crate::{Runtime, RuntimeConfig};

/// The runtime name containerd knows the shim by.
pub const RUNTIME_ID: &str = "io.containerd.shoal.v1";

/// Every container of one containerd and namespace shares a daemon.
const GROUPING: &str = "shoal";

/// Commands `exec` finds when a container's root filesystem has no file
/// of that name: the toolbox shoal's nodes offer (`sh`, `ls`, `cat`, …).
pub struct Toolbox {
    /// The toolbox's module.
    pub wasm: &'static [u8],
    /// Whether it has a command of this name (or path).
    pub has: fn(&str) -> bool,
    /// Where it writes a command's exit code, when offered a directory.
    pub status_dir: &'static str,
}

static TOOLBOX: std::sync::OnceLock<Toolbox> = std::sync::OnceLock::new();

/// The toolbox the binary registered.
pub(crate) fn toolbox() -> Option<&'static Toolbox> {
    TOOLBOX.get()
}

/// Runs the shim binary with a toolbox for `exec`: see [`run`].
pub async fn run_with(toolbox: Toolbox) {
    let _ = TOOLBOX.set(toolbox);
    run().await;
}

/// Runs the shim binary: `start`, `delete` or the daemon, as containerd's
/// arguments say. Call from a multi-threaded tokio `main`.
pub async fn run() {
    let config = Config {
        no_setup_logger: true,
        no_reaper: true,
        no_sub_reaper: true,
        ..Default::default()
    };
    containerd_shim::asynchronous::run::<Daemon>(RUNTIME_ID, Some(config)).await;
}

/// The shim's data directory.
fn root() -> PathBuf {
    std::env::var_os("SHOAL_SHIM_ROOT")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/lib/shoal-shim"))
}

/// How long the daemon stays without containers before it leaves.
fn linger() -> Duration {
    Duration::from_secs(env_number("SHOAL_SHIM_LINGER_SECONDS").unwrap_or(30))
}

fn env_number(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|s| s.parse().ok())
}

/// One invocation of the shim binary.
struct Daemon {
    exit: Arc<ExitSignal>,
    namespace: String,
    /// The daemon's socket (`unix://…`), when this is the daemon.
    socket: String,
}

#[async_trait::async_trait]
impl Shim for Daemon {
    type T = task::Service;

    async fn new(_runtime_id: &str, flags: &Flags, _config: &mut Config) -> Self {
        let daemon = flags.action.is_empty() && !flags.socket.is_empty();
        if daemon {
            let root = root();
            if let Err(e) = std::fs::create_dir_all(&root).and_then(|()| {
                // Out of any bundle: leaving must not remove a socket
                // another bundle's `address` names.
                std::env::set_current_dir(&root)
            }) {
                eprintln!("shim root {}: {e}", root.display());
            }
            FileLog::install(&root.join("shim.log"));
        }
        Daemon {
            exit: Arc::new(ExitSignal::default()),
            namespace: flags.namespace.clone(),
            socket: flags.socket.clone(),
        }
    }

    async fn start_shim(&mut self, opts: StartOpts) -> containerd_shim::Result<String> {
        let address = containerd_shim::socket_address(&opts.address, &opts.namespace, GROUPING);
        let address = if is_serving(&address).await {
            address
        } else {
            spawn(opts, GROUPING, Vec::new()).await?
        };
        // containerd finds the daemon again through the bundle's `address`
        // after its own restart.
        containerd_shim::asynchronous::util::write_str_to_file("address", &address).await?;
        Ok(address)
    }

    async fn delete_shim(&mut self) -> containerd_shim::Result<DeleteResponse> {
        // The daemon is gone: take down what it left in the bundle.
        let bundle = std::env::current_dir().unwrap_or_default();
        task::unmount_rootfs(&bundle);
        Ok(DeleteResponse {
            exit_status: 137,
            exited_at: MessageField::some(Timestamp::now()),
            ..Default::default()
        })
    }

    async fn wait(&mut self) {
        self.exit.wait().await;
    }

    async fn create_task_service(&self, publisher: RemotePublisher) -> Self::T {
        let root = root();
        crate::ensure_map_count(1000);
        let mut config = RuntimeConfig::new(&root);
        if let Some(bytes) = env_number("SHOAL_SHIM_IMAGE_CACHE_BYTES") {
            config.image_cache_max_bytes = bytes;
        }
        if let Some(secs) = env_number("SHOAL_SHIM_IMAGE_MINIMUM_AGE_SECONDS") {
            config.image_minimum_age = Duration::from_secs(secs);
        }
        let runtime = match Runtime::new(config) {
            Ok(rt) => rt,
            Err(e) => {
                log::error!("starting the runtime: {e}");
                std::process::exit(1);
            }
        };
        let service = task::Service::new(runtime, publisher, self.namespace.clone());
        service.leave_when_idle(linger(), self.exit.clone(), self.socket.clone());
        service
    }
}

/// Whether a daemon answers at `address` (a `Connect` also tells it a
/// container is coming, so it does not leave meanwhile).
async fn is_serving(address: &str) -> bool {
    let check = async {
        let client = Client::connect(address).await.ok()?;
        TaskClient::new(client)
            .connect(
                containerd_shim::protos::ttrpc::context::with_timeout(2_000_000_000),
                &ConnectRequest::default(),
            )
            .await
            .ok()
    };
    tokio::time::timeout(Duration::from_secs(3), check)
        .await
        .ok()
        .flatten()
        .is_some()
}

/// The daemon's log: lines appended to a file (containerd does not read a
/// shared daemon's output).
struct FileLog(Mutex<std::fs::File>);

impl FileLog {
    fn install(path: &std::path::Path) {
        let Ok(file) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
        else {
            return;
        };
        if log::set_boxed_logger(Box::new(FileLog(Mutex::new(file)))).is_ok() {
            log::set_max_level(log::LevelFilter::Info);
        }
    }
}

impl log::Log for FileLog {
    fn enabled(&self, m: &log::Metadata) -> bool {
        m.level() <= log::Level::Info
    }

    fn log(&self, r: &log::Record) {
        if !self.enabled(r.metadata()) {
            return;
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let mut f = self.0.lock().expect("log lock");
        let _ = writeln!(
            f,
            "{}.{:03} {} {}: {}",
            now.as_secs(),
            now.subsec_millis(),
            r.level(),
            r.target(),
            r.args()
        );
    }

    fn flush(&self) {}
}

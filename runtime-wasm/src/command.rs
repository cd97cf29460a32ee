use std::sync::Arc;

use wasmtime_wasi::{FsPerms, I32Exit, WasiCtxBuilder};

use crate::host::{ComponentHost, CoreHost};
use crate::output::SinkStream;
use crate::workload::Pre;
use crate::{NetworkAccess, OutputSink, Runtime, Workload};

/// How one container instance is started.
#[derive(Clone)]
pub struct CommandSpec {
    /// `argv`, with the program name first.
    pub argv: Vec<String>,
    /// Environment variables.
    pub env: Vec<(String, String)>,
    /// Where stdout goes.
    pub stdout: Arc<dyn OutputSink>,
    /// Where stderr goes.
    pub stderr: Arc<dyn OutputSink>,
    /// Cap on the instance's linear memory, from `limits.memory`.
    pub memory_limit: Option<usize>,
    /// Host directories the guest sees, confined to themselves.
    pub preopens: Vec<Preopen>,
    /// Share of a core the instance may use, in millicores (`limits.cpu`).
    pub cpu_millis: Option<u32>,
    /// The guest's working directory (`workingDir`); relative paths resolve
    /// against it.
    pub working_dir: Option<String>,
    /// What network the guest may reach.
    pub network: NetworkAccess,
    /// Pipes for stdin, stdout and stderr in place of `stdout` and `stderr`
    /// (an interactive instance, as `kubectl exec` starts).
    pub stdio: Option<crate::Stdio>,
    /// Where the instance's CPU time and memory are counted (its
    /// container's).
    pub usage: Option<Arc<crate::Usage>>,
}

/// A host directory offered to the guest at a path of its own.
#[derive(Debug, Clone)]
pub struct Preopen {
    /// The directory on the node.
    pub host: std::path::PathBuf,
    /// Where the guest sees it (the volume's `mountPath`).
    pub guest: String,
    /// Whether writes are refused.
    pub read_only: bool,
}

/// How a command instance ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Exit {
    /// The guest exited with a status code (0 for a normal return).
    Code(i32),
    /// The guest trapped.
    Trap(String),
    /// The guest needed more memory than its limit.
    OutOfMemory(String),
    /// The instance could not start.
    StartFailed(String),
}

impl Exit {
    /// The exit code Kubernetes reports for this end.
    pub fn code(&self) -> i32 {
        match self {
            Exit::Code(c) => *c,
            Exit::OutOfMemory(_) => 137,
            Exit::Trap(_) | Exit::StartFailed(_) => 1,
        }
    }
}

pub(crate) fn wasi_builder(spec: &CommandSpec) -> Result<WasiCtxBuilder, String> {
    let mut b = WasiCtxBuilder::new();
    b.args(&spec.argv).envs(&spec.env);
    match &spec.stdio {
        Some(stdio) => {
            b.stdout(stdio.stdout.clone()).stderr(stdio.stderr.clone());
            if let Some(stdin) = &stdio.stdin {
                b.stdin(stdin.clone());
            }
        }
        None => {
            b.stdout(SinkStream(spec.stdout.clone()))
                .stderr(SinkStream(spec.stderr.clone()));
        }
    }
    for p in &spec.preopens {
        let perms = if p.read_only {
            FsPerms::ReadOnly
        } else {
            FsPerms::ReadWrite
        };
        b.preopened_dir(&p.host, &p.guest, perms)
            .map_err(|e| format!("mounting {} at {}: {e:#}", p.host.display(), p.guest))?;
    }
    if let Some(dir) = &spec.working_dir {
        b.initial_cwd(dir);
        if !spec.env.iter().any(|(k, _)| k == "PWD") {
            b.env("PWD", dir);
        }
        // Guests whose libc starts in "/" resolve relative paths through a
        // "." preopen: offer the working directory there too, when a volume
        // holds it.
        if let Some((p, host)) = volume_holding(&spec.preopens, dir) {
            let perms = if p.read_only {
                FsPerms::ReadOnly
            } else {
                FsPerms::ReadWrite
            };
            b.preopened_dir(&host, ".", perms)
                .map_err(|e| format!("workingDir {dir}: {e:#}"))?;
        }
    }
    let network = spec.network.clone();
    b.allow_ip_name_lookup(network.any())
        .allow_tcp(network.any())
        .allow_udp(network.any());
    b.socket_addr_check(move |addr, usage| {
        let ok = network.allows(addr, usage);
        Box::pin(async move { ok })
    });
    Ok(b)
}

/// The mounted volume that contains `dir` (the deepest one) and the node
/// directory `dir` is in it.
fn volume_holding<'a>(
    preopens: &'a [Preopen],
    dir: &str,
) -> Option<(&'a Preopen, std::path::PathBuf)> {
    preopens
        .iter()
        .filter_map(|p| {
            let base = p.guest.trim_end_matches('/');
            let rest = dir.strip_prefix(base)?;
            if !(rest.is_empty() || rest.starts_with('/')) {
                return None;
            }
            let rest = rest.trim_start_matches('/');
            if rest.split('/').any(|c| c == "..") {
                return None;
            }
            Some((base.len(), p, p.host.join(rest)))
        })
        .max_by_key(|(len, ..)| *len)
        .map(|(_, p, host)| (p, host))
        .filter(|(_, host)| host.is_dir())
}

/// An instantiation failure: a trap in a start function stays a trap.
fn start_failed(err: wasmtime::Error) -> Exit {
    match classify(err) {
        Exit::Trap(m) if err_is_not_trap(&m) => Exit::StartFailed(m),
        other => other,
    }
}

fn err_is_not_trap(message: &str) -> bool {
    !message.contains("wasm trap")
}

pub(crate) fn classify(err: wasmtime::Error) -> Exit {
    if let Some(code) = err.downcast_ref::<I32Exit>() {
        return Exit::Code(code.0);
    }
    let text = format!("{err:#}");
    if text.contains("maximum concurrent limit") || text.contains("maximum concurrent") {
        Exit::StartFailed(format!("the node has no free instance slot: {text}"))
    } else if text.contains("forcing trap when growing memory")
        || text.contains("memory allocation failed")
    {
        Exit::OutOfMemory(text)
    } else {
        Exit::Trap(text)
    }
}

impl Runtime {
    /// Creates a store and an instance of `workload` and drops them without
    /// running it: the start-up cost of every workload kind, for benchmarks.
    #[doc(hidden)]
    pub async fn instantiate_only(
        &self,
        workload: &Workload,
        spec: &CommandSpec,
    ) -> Result<(), String> {
        let mut wasi = wasi_builder(spec)?;
        let err = |e: wasmtime::Error| format!("{e:#}");
        let component = match &workload.pre {
            Pre::Core(pre) => {
                let mut store = self.store(workload, CoreHost::new(wasi.build_p1()), spec);
                return pre
                    .instantiate_async(&mut store)
                    .await
                    .map(drop)
                    .map_err(err);
            }
            Pre::Command(pre) => pre.instance_pre(),
            Pre::Http(pre) => pre.instance_pre(),
        };
        let mut store = self.store(workload, ComponentHost::new(wasi.build(), spec), spec);
        component
            .instantiate_async(&mut store)
            .await
            .map(drop)
            .map_err(err)
    }

    /// Runs a command workload until it exits. Dropping the future stops the
    /// instance. HTTP workloads are not commands and end at once with
    /// [`Exit::StartFailed`].
    pub async fn run_command(&self, workload: &Workload, spec: CommandSpec) -> Exit {
        let usage = spec.usage.clone();
        crate::usage::metered(usage, self.run_command_unmetered(workload, spec)).await
    }

    async fn run_command_unmetered(&self, workload: &Workload, spec: CommandSpec) -> Exit {
        match &workload.pre {
            Pre::Command(pre) => {
                let wasi = match wasi_builder(&spec) {
                    Ok(mut b) => b.build(),
                    Err(e) => return Exit::StartFailed(e),
                };
                let mut store = self.store(workload, ComponentHost::new(wasi, &spec), &spec);
                let command = match pre.instantiate_async(&mut store).await {
                    Ok(c) => c,
                    Err(e) => return start_failed(e),
                };
                match command.wasi_cli_run().call_run(&mut store).await {
                    Ok(Ok(())) => Exit::Code(0),
                    Ok(Err(())) => Exit::Code(1),
                    Err(e) => classify(e),
                }
            }
            Pre::Core(pre) => {
                let wasi = match wasi_builder(&spec) {
                    Ok(mut b) => b.build_p1(),
                    Err(e) => return Exit::StartFailed(e),
                };
                let mut store = self.store(workload, CoreHost::new(wasi), &spec);
                let instance = match pre.instantiate_async(&mut store).await {
                    Ok(i) => i,
                    Err(e) => return start_failed(e),
                };
                let start = match instance.get_typed_func::<(), ()>(&mut store, "_start") {
                    Ok(f) => f,
                    Err(e) => return Exit::StartFailed(format!("{e:#}")),
                };
                match start.call_async(&mut store, ()).await {
                    Ok(()) => Exit::Code(0),
                    Err(e) => classify(e),
                }
            }
            Pre::Http(_) => Exit::StartFailed("an HTTP component is served, not run".into()),
        }
    }
}

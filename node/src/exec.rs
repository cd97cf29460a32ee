//! `kubectl exec` into a Wasm pod: the command runs as a new instance in a
//! running container's sandbox — its volumes, environment and network
//! grant, its memory and CPU limits — with stdin, stdout and stderr streamed
//! to the client and its exit code reported.
//!
//! What runs: the container's own module when the command names it (its
//! image's entrypoint, by path or file name), else the toolbox's command of
//! that name; another name is not found (exit code 127), as in a container
//! without that executable.
//!
//! The protocols (`streaming/`) turn their frames into [`Input`] and
//! [`Output`]; this module knows nothing of them.
//!
//! The same runs the `exec` handlers of probes and hooks
//! ([`InContainer`]).
//!
//! An `attach` request goes to [`crate::attach`] instead.
//!
//! May import: the agent's shared state, attach, the toolbox, the terminal and
//! the probes' [`Commands`](crate::probes::Commands) it serves.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use shoal_runtime_wasm::{CommandSpec, Exit, Preopen, Stdio, Workload};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

use crate::agent::Shared;

/// A running container, as exec sees it.
pub(crate) struct Target {
    /// How the container's instance was started (its argv and output are
    /// replaced for each command).
    pub spec: CommandSpec,
    /// The container's own module.
    pub workload: Arc<Workload>,
    /// Names that call the container's own module.
    pub names: Vec<String>,
    /// The pod's directory on the node.
    pub pod_dir: PathBuf,
    /// The pod's IP.
    pub pod_ip: String,
    /// When the container started, and the same as a timestamp.
    pub started: std::time::Instant,
    pub started_at: String,
    /// Its output and stdin, for `kubectl attach`.
    pub attach: Arc<crate::attach::AttachHub>,
}

/// The running containers of the node, by pod UID and container name.
#[derive(Default)]
pub(crate) struct Targets(Mutex<HashMap<(String, String), Arc<Target>>>);

/// A container's entry in [`Targets`], removed when dropped.
pub(crate) struct Registered {
    targets: Arc<Targets>,
    key: (String, String),
    target: Arc<Target>,
}

impl Drop for Registered {
    fn drop(&mut self) {
        let mut map = self.targets.0.lock().expect("exec targets lock");
        // A restarted container may have registered anew.
        if map
            .get(&self.key)
            .is_some_and(|t| Arc::ptr_eq(t, &self.target))
        {
            map.remove(&self.key);
        }
    }
}

impl Targets {
    /// Makes a running container reachable until the entry is dropped.
    pub fn register(self: &Arc<Self>, uid: &str, container: &str, target: Target) -> Registered {
        let key = (uid.to_string(), container.to_string());
        let target = Arc::new(target);
        self.0
            .lock()
            .expect("exec targets lock")
            .insert(key.clone(), target.clone());
        Registered {
            targets: self.clone(),
            key,
            target,
        }
    }

    /// Every running container, by pod UID and name.
    pub fn all(&self) -> Vec<((String, String), Arc<Target>)> {
        self.0
            .lock()
            .expect("exec targets lock")
            .iter()
            .map(|(k, t)| (k.clone(), t.clone()))
            .collect()
    }

    /// A running container of the pod `uid`, any.
    pub fn any_of(&self, uid: &str) -> Option<Arc<Target>> {
        self.0
            .lock()
            .expect("exec targets lock")
            .iter()
            .find(|((u, _), _)| u == uid)
            .map(|(_, t)| t.clone())
    }

    /// The running container `container` of the pod `uid`.
    pub fn get(&self, uid: &str, container: &str) -> Option<Arc<Target>> {
        self.0
            .lock()
            .expect("exec targets lock")
            .get(&(uid.to_string(), container.to_string()))
            .cloned()
    }
}

/// Names by which a command calls the container's own module: its image's
/// entrypoint path, that path's file name, and the file name without
/// `.wasm`.
pub(crate) fn own_names(entrypoint: &[String]) -> Vec<String> {
    let Some(path) = entrypoint.first().filter(|p| !p.is_empty()) else {
        return Vec::new();
    };
    let file = path.rsplit('/').next().unwrap_or(path);
    let mut names = vec![path.clone(), file.to_string()];
    if let Some(stem) = file.strip_suffix(".wasm") {
        names.push(stem.to_string());
    }
    names
}

/// A command to run and the streams the client asked for.
#[derive(Debug, Clone, Default)]
pub(crate) struct Command {
    pub argv: Vec<String>,
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
    pub tty: bool,
    /// Attach to the container's own streams instead of running argv.
    pub attach: bool,
}

impl Command {
    /// The options of a kubelet `exec` or `attach` request's query.
    pub fn from_query(query: &[(String, String)]) -> Command {
        let flag = |k: &str| {
            query
                .iter()
                .any(|(n, v)| n == k && matches!(v.as_str(), "1" | "true" | "True"))
        };
        let tty = flag("tty");
        Command {
            argv: query
                .iter()
                .filter(|(n, _)| n == "command")
                .map(|(_, v)| v.clone())
                .collect(),
            stdin: flag("stdin"),
            stdout: flag("stdout"),
            // A terminal has no separate stderr.
            stderr: flag("stderr") && !tty,
            tty,
            attach: false,
        }
    }
}

/// From the client.
#[derive(Debug)]
pub(crate) enum Input {
    Stdin(Bytes),
    /// The client closed stdin.
    StdinEnd,
    /// The client's terminal changed size.
    Resize {
        width: u16,
        height: u16,
    },
}

/// To the client.
#[derive(Debug, Clone)]
pub(crate) enum Output {
    Stdout(Bytes),
    Stderr(Bytes),
}

/// How a command ended.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    Exited(i32),
    /// It could not run.
    Failed(String),
}

/// Runs `cmd` in `target` until it ends. Dropping the future stops it.
pub(crate) async fn run(
    shared: &Shared,
    target: &Target,
    cmd: Command,
    input: mpsc::Receiver<Input>,
    output: mpsc::Sender<Output>,
) -> Outcome {
    if cmd.attach {
        return crate::attach::run(target, cmd, input, output).await;
    }
    let Some(name) = cmd.argv.first().cloned() else {
        return Outcome::Failed("you must specify at least one command for the container".into());
    };
    let err_channel = |b: Bytes| {
        if cmd.tty {
            Output::Stdout(b)
        } else {
            Output::Stderr(b)
        }
    };
    let (workload, toolbox) = if target.names.contains(&name) {
        (target.workload.clone(), false)
    } else if crate::toolbox::has(&name) {
        match crate::toolbox::workload(&shared.runtime).await {
            Ok(w) => (w, true),
            Err(e) => return Outcome::Failed(e),
        }
    } else {
        let msg = format!(
            "OCI runtime exec failed: exec failed: unable to start container process: exec: \"{name}\": executable file not found in $PATH: unknown\n"
        );
        let _ = output.send(err_channel(Bytes::from(msg))).await;
        return Outcome::Exited(127);
    };
    if workload.is_http() {
        return Outcome::Failed(format!(
            "\"{name}\" is an HTTP component: it serves requests and cannot be run as a command"
        ));
    }
    let mut spec = target.spec.clone();
    spec.argv = cmd.argv.clone();
    if cmd.tty && !spec.env.iter().any(|(k, _)| k == "TERM") {
        spec.env.push(("TERM".into(), "xterm".into()));
    }
    let status_dir = toolbox.then(|| {
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        target
            .pod_dir
            .join("exec")
            .join(format!("{}-{n}", std::process::id()))
    });
    let _cleanup = status_dir.as_ref().map(|d| RemoveOnDrop(d.clone()));
    if let Some(dir) = &status_dir {
        if let Err(e) = std::fs::create_dir_all(dir) {
            return Outcome::Failed(format!("preparing the command: {e}"));
        }
        spec.preopens.push(Preopen {
            host: dir.clone(),
            guest: crate::toolbox::STATUS_DIR.into(),
            read_only: false,
        });
    }
    const PIPE: usize = 64 * 1024;
    let (stdin_guest, stdin_host) = if cmd.stdin {
        let (a, b) = tokio::io::duplex(PIPE);
        (Some(a), Some(b))
    } else {
        (None, None)
    };
    let (out_w, out_r) = tokio::io::duplex(PIPE);
    let (err_w, err_r) = tokio::io::duplex(PIPE);
    spec.stdio = Some(Stdio::new(stdin_guest, out_w, err_w, cmd.tty));
    let tty = cmd.tty;
    let feed = feed_stdin(input, stdin_host, output.clone(), tty);
    let show_out = pump(out_r, output.clone(), tty, Output::Stdout);
    let show_err = pump(err_r, output, tty, move |b| {
        if tty {
            Output::Stdout(b)
        } else {
            Output::Stderr(b)
        }
    });
    let running = async {
        let run = shared.runtime.run_command(&workload, spec);
        tokio::pin!(run);
        tokio::select! {
            exit = &mut run => exit,
            () = feed => run.await,
        }
    };
    let (exit, (), ()) = tokio::join!(running, show_out, show_err);
    let written = status_dir
        .as_ref()
        .and_then(|d| std::fs::read_to_string(d.join("status")).ok())
        .and_then(|s| s.trim().parse::<i32>().ok());
    match exit {
        Exit::StartFailed(m) => Outcome::Failed(m),
        Exit::Code(c) => Outcome::Exited(written.filter(|_| c != 0).unwrap_or(c)),
        other => Outcome::Exited(other.code()),
    }
}

/// The `exec` handlers of one container's probes and hooks.
pub(crate) struct InContainer<'a> {
    pub shared: &'a Shared,
    pub uid: String,
    pub container: String,
}

impl crate::probes::Commands for InContainer<'_> {
    fn run(
        &self,
        argv: Vec<String>,
    ) -> futures::future::BoxFuture<'_, Result<(i32, String), String>> {
        Box::pin(async move {
            let target = self
                .shared
                .exec
                .get(&self.uid, &self.container)
                .ok_or_else(|| format!("container {} is not running", self.container))?;
            let cmd = Command {
                argv,
                stdin: false,
                stdout: true,
                stderr: true,
                tty: false,
                attach: false,
            };
            let (_no_input, input) = mpsc::channel(1);
            let (out_tx, mut out_rx) = mpsc::channel(16);
            let collect = async {
                let mut all = Vec::new();
                while let Some(Output::Stdout(b) | Output::Stderr(b)) = out_rx.recv().await {
                    let room = crate::probes::MAX_BODY.saturating_sub(all.len());
                    all.extend_from_slice(&b[..b.len().min(room)]);
                }
                String::from_utf8_lossy(&all).into_owned()
            };
            let (outcome, output) =
                tokio::join!(run(self.shared, &target, cmd, input, out_tx), collect);
            match outcome {
                Outcome::Exited(code) => Ok((code, output)),
                Outcome::Failed(why) => Err(why),
            }
        })
    }

    fn prepare<'a>(&'a self, argv: &'a [String]) -> futures::future::BoxFuture<'a, ()> {
        Box::pin(async move {
            let carried = self
                .shared
                .exec
                .get(&self.uid, &self.container)
                .is_some_and(|t| argv.first().is_some_and(|n| t.names.contains(n)));
            if !carried && argv.first().is_some_and(|n| crate::toolbox::has(n)) {
                // A failure shows when the command runs.
                let _ = crate::toolbox::workload(&self.shared.runtime).await;
            }
        })
    }
}

static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Hands the client's input to the guest's stdin (through the line
/// discipline on a terminal) until the client stops sending.
async fn feed_stdin(
    mut input: mpsc::Receiver<Input>,
    mut stdin: Option<tokio::io::DuplexStream>,
    echo: mpsc::Sender<Output>,
    tty: bool,
) {
    let mut line = crate::tty::LineDiscipline::default();
    while let Some(i) = input.recv().await {
        match i {
            Input::Stdin(bytes) => {
                let Some(w) = stdin.as_mut() else { continue };
                let (data, end) = if tty {
                    let typed = line.input(&bytes);
                    if !typed.echo.is_empty() {
                        let _ = echo.send(Output::Stdout(Bytes::from(typed.echo))).await;
                    }
                    (typed.lines, typed.eof)
                } else {
                    (bytes.to_vec(), false)
                };
                // A guest that stopped reading drops what comes.
                if w.write_all(&data).await.is_err() || end {
                    let _ = w.shutdown().await;
                    stdin = None;
                }
            }
            Input::StdinEnd => {
                if let Some(mut w) = stdin.take() {
                    let _ = w.shutdown().await;
                }
            }
            // The guest has no terminal size to learn.
            Input::Resize { width, height } => {
                tracing::trace!("exec: the terminal is {width}x{height}");
            }
        }
    }
    // Input ended with the client's stream: stdin ends too.
    if let Some(mut w) = stdin.take() {
        let _ = w.shutdown().await;
    }
}

/// Sends what the guest writes to the client until the guest's end of the
/// pipe is gone.
async fn pump(
    mut from: impl AsyncRead + Unpin,
    to: mpsc::Sender<Output>,
    tty: bool,
    wrap: impl Fn(Bytes) -> Output,
) {
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                let data = if tty {
                    crate::tty::output(&buf[..n])
                } else {
                    buf[..n].to_vec()
                };
                if to.send(wrap(Bytes::from(data))).await.is_err() {
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_options_follow_the_kubelet() {
        let q: Vec<(String, String)> = [
            ("command", "sh"),
            ("command", "-c"),
            ("command", "ls /"),
            ("stdin", "true"),
            ("stdout", "true"),
            ("stderr", "true"),
            ("tty", "true"),
        ]
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
        let c = Command::from_query(&q);
        assert_eq!(c.argv, ["sh", "-c", "ls /"]);
        assert!(c.stdin && c.stdout && c.tty);
        assert!(!c.stderr, "a terminal has no stderr");
    }

    #[test]
    fn the_module_answers_to_its_entrypoint_names() {
        assert_eq!(
            own_names(&["/app/hello-cmd.wasm".into()]),
            ["/app/hello-cmd.wasm", "hello-cmd.wasm", "hello-cmd"]
        );
        assert!(own_names(&[]).is_empty());
    }
}

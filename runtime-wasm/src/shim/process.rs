//! One process of a container the shim serves: the container's own (its
//! init) or one `exec` added. A process is created, runs once as an
//! instance in the shim's runtime (or, for a pod's sandbox, as a pause that
//! only waits), and ends with an exit code that stays readable until the
//! process is deleted.
//!
//! Its standard streams are the paths containerd hands over: FIFOs it
//! reads and writes, a `file://` URL for a log file, or nothing.
//!
//! May import: the runtime's public API.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use tokio::io::AsyncWrite;
use tokio::sync::{oneshot, watch};

use crate::{CommandSpec, Exit, Runtime, Stdio, Workload};

/// Where a process is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum State {
    Created,
    Running,
    Stopped { code: u32, at: SystemTime },
}

/// The standard streams containerd gave a process.
#[derive(Debug, Clone, Default)]
pub(crate) struct StdioPaths {
    pub stdin: String,
    pub stdout: String,
    pub stderr: String,
    pub terminal: bool,
}

/// What a process runs.
pub(crate) enum Job {
    /// A pod's sandbox: nothing runs; it holds the pod until it is killed.
    Pause,
    /// An instance of a module.
    Wasm {
        workload: Arc<Workload>,
        spec: Box<CommandSpec>,
        /// Where the guest may write its exit code (a WASI preview 2
        /// command ends only with success or failure).
        status_file: Option<std::path::PathBuf>,
    },
}

/// How a process ended, as the task service reports it.
pub(crate) struct Ended {
    pub code: u32,
    pub at: SystemTime,
    /// Whether it ran out of memory (containerd hears of an OOM).
    pub oom: bool,
}

/// One process.
pub(crate) struct Proc {
    pub stdio: StdioPaths,
    /// The file whose creation asks the guest to stop, if it follows the
    /// stop request.
    stop_file: Option<std::path::PathBuf>,
    state: watch::Sender<State>,
    job: Mutex<Option<Job>>,
    /// Delivers a signal to the running process, which ends it.
    signal: Mutex<Option<oneshot::Sender<u32>>>,
    /// Ends the relay into the guest's stdin (containerd's `CloseIO`).
    close_stdin: Mutex<Option<oneshot::Sender<()>>>,
}

impl Proc {
    pub fn new(job: Job, stdio: StdioPaths) -> Arc<Self> {
        Self::stoppable(job, stdio, None)
    }

    /// A process whose guest follows the stop request through `stop_file`.
    pub fn stoppable(
        job: Job,
        stdio: StdioPaths,
        stop_file: Option<std::path::PathBuf>,
    ) -> Arc<Self> {
        Arc::new(Self {
            stdio,
            stop_file,
            state: watch::Sender::new(State::Created),
            job: Mutex::new(Some(job)),
            signal: Mutex::new(None),
            close_stdin: Mutex::new(None),
        })
    }

    pub fn state(&self) -> State {
        *self.state.borrow()
    }

    /// Starts the process; `ended` hears how it ends. Refused when it has
    /// started before or its streams cannot be opened.
    /// It runs on `executor` (a pod's network namespace) if given, else on
    /// the daemon's.
    pub async fn start(
        self: &Arc<Self>,
        runtime: Arc<Runtime>,
        executor: Option<&tokio::runtime::Handle>,
        ended: impl FnOnce(Ended) + Send + 'static,
    ) -> Result<(), String> {
        let job = self
            .job
            .lock()
            .expect("job lock")
            .take()
            .ok_or("the process has already been started")?;
        let (signal_tx, signal_rx) = oneshot::channel();
        let mut job = job;
        if let Job::Wasm { spec, .. } = &mut job {
            let (stdio, close) = self.open_stdio().await?;
            *self.close_stdin.lock().expect("stdin lock") = close;
            spec.stdio = Some(stdio);
        }
        *self.signal.lock().expect("signal lock") = Some(signal_tx);
        self.state.send_replace(State::Running);
        let this = self.clone();
        let run = async move {
            let (code, oom) = match job {
                Job::Pause => (128 + signal_rx.await.unwrap_or(9), false),
                Job::Wasm {
                    workload,
                    spec,
                    status_file,
                } => {
                    tokio::select! {
                        exit = runtime.run_command(&workload, *spec) => {
                            if let Exit::Trap(e) | Exit::StartFailed(e) = &exit {
                                log::warn!("instance ended: {e}");
                            }
                            let written = status_file
                                .filter(|_| exit != Exit::Code(0))
                                .and_then(|f| std::fs::read_to_string(f).ok())
                                .and_then(|s| s.trim().parse::<u32>().ok());
                            let code = written.unwrap_or(exit.code() as u32);
                            (code, matches!(exit, Exit::OutOfMemory(_)))
                        }
                        sig = signal_rx => (128 + sig.unwrap_or(9), false),
                    }
                }
            };
            let at = SystemTime::now();
            this.signal.lock().expect("signal lock").take();
            this.close_stdin.lock().expect("stdin lock").take();
            this.state.send_replace(State::Stopped { code, at });
            ended(Ended { code, at, oom });
        };
        match executor {
            Some(handle) => drop(handle.spawn(run)),
            None => drop(tokio::spawn(run)),
        }
        Ok(())
    }

    /// Delivers `signal`: any signal but 0 ends a running process (a guest
    /// has no handlers; its grace is the caller's wait before a `SIGKILL`),
    /// except that `SIGTERM` and `SIGINT` only create `stop_file` when the
    /// process has one (the guest then finishes by itself). Signal 0 only
    /// asks whether it runs.
    pub fn kill(&self, signal: u32) -> Result<(), String> {
        const SIGINT: u32 = 2;
        const SIGTERM: u32 = 15;
        if let (State::Running, Some(file), SIGINT | SIGTERM) =
            (self.state(), &self.stop_file, signal)
        {
            return std::fs::write(file, b"").map_err(|e| format!("asking to stop: {e}"));
        }
        match self.state() {
            State::Stopped { .. } => return Err("process already finished".into()),
            State::Created if signal != 0 => {
                // Never started: it ends here, without running.
                self.job.lock().expect("job lock").take();
                self.state.send_replace(State::Stopped {
                    code: 128 + signal,
                    at: SystemTime::now(),
                });
                return Ok(());
            }
            _ => {}
        }
        if signal != 0
            && let Some(tx) = self.signal.lock().expect("signal lock").take()
        {
            let _ = tx.send(signal);
        }
        Ok(())
    }

    /// Waits until the process has stopped: its exit code and time.
    pub async fn wait(&self) -> (u32, SystemTime) {
        let mut rx = self.state.subscribe();
        loop {
            if let State::Stopped { code, at } = *rx.borrow_and_update() {
                return (code, at);
            }
            if rx.changed().await.is_err() {
                return (255, SystemTime::now());
            }
        }
    }

    /// Closes the guest's stdin: it reads end-of-file.
    pub fn close_stdin(&self) {
        self.close_stdin.lock().expect("stdin lock").take();
    }

    /// Opens the process's streams. Stdin is relayed through a pipe the
    /// shim can close, so the guest sees end-of-file on `CloseIO` even
    /// while containerd keeps its FIFO open.
    async fn open_stdio(&self) -> Result<(Stdio, Option<oneshot::Sender<()>>), String> {
        let p = &self.stdio;
        let stdout = open_output(&p.stdout)?;
        let stderr = if p.stderr.is_empty() && p.terminal {
            Box::new(tokio::io::sink()) as Box<dyn AsyncWrite + Send + Sync + Unpin>
        } else {
            open_output(&p.stderr)?
        };
        if p.stdin.is_empty() {
            let none: Option<tokio::io::Empty> = None;
            return Ok((Stdio::new(none, stdout, stderr, p.terminal), None));
        }
        let mut fifo = tokio::net::unix::pipe::OpenOptions::new()
            .read_write(true)
            .open_receiver(&p.stdin)
            .map_err(|e| format!("stdin {}: {e}", p.stdin))?;
        let (reader, mut writer) = tokio::io::simplex(64 * 1024);
        let (close_tx, close_rx) = oneshot::channel::<()>();
        tokio::spawn(async move {
            tokio::select! {
                _ = tokio::io::copy(&mut fifo, &mut writer) => {}
                _ = close_rx => {}
            }
        });
        Ok((
            Stdio::new(Some(reader), stdout, stderr, p.terminal),
            Some(close_tx),
        ))
    }
}

/// Opens a stdout or stderr: a FIFO, a `file://` log file, or a sink when
/// containerd gave none.
fn open_output(path: &str) -> Result<Box<dyn AsyncWrite + Send + Sync + Unpin>, String> {
    if path.is_empty() {
        return Ok(Box::new(tokio::io::sink()));
    }
    if let Some(file) = path.strip_prefix("file://") {
        let f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(file)
            .map_err(|e| format!("{path}: {e}"))?;
        return Ok(Box::new(tokio::fs::File::from_std(f)));
    }
    if path.contains("://") {
        return Err(format!(
            "{path}: only FIFOs and file:// outputs are supported"
        ));
    }
    // Read-write, so opening does not wait for (or fail without) a reader.
    let fifo = tokio::net::unix::pipe::OpenOptions::new()
        .read_write(true)
        .open_sender(Path::new(path))
        .map_err(|e| format!("{path}: {e}"))?;
    Ok(Box::new(fifo))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_pause_runs_until_it_is_killed() {
        let dir = tempfile::tempdir().unwrap();
        let rt = Runtime::new(crate::RuntimeConfig::new(dir.path())).unwrap();
        let p = Proc::new(Job::Pause, StdioPaths::default());
        assert_eq!(p.state(), State::Created);
        let (tx, rx) = oneshot::channel();
        p.start(rt.clone(), None, move |e| {
            let _ = tx.send(e.code);
        })
        .await
        .unwrap();
        assert_eq!(p.state(), State::Running);
        assert!(p.start(rt, None, |_| {}).await.is_err(), "a second start");
        p.kill(0).unwrap();
        assert_eq!(p.state(), State::Running, "signal 0 only asks");
        p.kill(15).unwrap();
        assert_eq!(rx.await.unwrap(), 143);
        assert_eq!(p.wait().await.0, 143);
        assert!(p.kill(9).unwrap_err().contains("already finished"));
    }

    #[test]
    fn a_process_killed_before_it_starts_ends_at_once() {
        let p = Proc::new(Job::Pause, StdioPaths::default());
        p.kill(9).unwrap();
        assert!(matches!(p.state(), State::Stopped { code: 137, .. }));
    }

    #[test]
    fn outputs_other_than_fifos_and_files_are_refused() {
        assert!(open_output("binary:///usr/bin/logger").is_err());
    }
}

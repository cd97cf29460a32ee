//! `kubectl attach`: a running container's output as it is written, and
//! its stdin (`stdin: true`) from one attached client at a time. Each
//! container has an [`AttachHub`]: its output goes to its log and to every
//! attached client ([`Tee`]); its stdin is a pipe the hub keeps between
//! sessions, closed after the first session when `stdinOnce` is set.
//!
//! May import: exec's streams and the terminal.

use std::sync::Arc;

use bytes::Bytes;
use shoal_runtime_wasm::OutputSink;
use tokio::io::{AsyncWriteExt, DuplexStream};
use tokio::sync::{broadcast, mpsc, watch};

use crate::exec::{Command, Input, Outcome, Output, Target};

/// Writes of the guest an attached client may fall behind by (each slot
/// is held by every container, attached or not; what a slow client misses
/// is in the log).
const OUTPUT_QUEUE: usize = 32;

/// What an attached client may reach of one container.
pub(crate) struct AttachHub {
    out: broadcast::Sender<Output>,
    stdin: tokio::sync::Mutex<Option<DuplexStream>>,
    /// The current run's end: its exit code.
    ended: watch::Sender<Option<i32>>,
    /// The container's `stdin`, `stdinOnce` and `tty`.
    pub has_stdin: bool,
    pub stdin_once: bool,
    pub tty: bool,
}

impl AttachHub {
    pub fn new(has_stdin: bool, stdin_once: bool, tty: bool) -> Arc<Self> {
        Arc::new(Self {
            out: broadcast::channel(OUTPUT_QUEUE).0,
            stdin: tokio::sync::Mutex::new(None),
            ended: watch::channel(None).0,
            has_stdin,
            stdin_once,
            tty,
        })
    }

    /// A run begins with `stdin` as its pipe; it ends when the returned
    /// guard is told so or dropped.
    pub fn begin(self: &Arc<Self>, stdin: Option<DuplexStream>) -> RunGuard {
        if let Ok(mut s) = self.stdin.try_lock() {
            *s = stdin;
        }
        self.ended.send_replace(None);
        RunGuard(self.clone())
    }
}

/// The run of a container, for its attached clients.
pub(crate) struct RunGuard(Arc<AttachHub>);

impl RunGuard {
    /// The run ended with `code`.
    pub fn end(&self, code: i32) {
        self.0.ended.send_replace(Some(code));
    }
}

impl Drop for RunGuard {
    fn drop(&mut self) {
        // Stopped by the node, as SIGKILL stops a process.
        self.0.ended.send_if_modified(|e| {
            let unset = e.is_none();
            if unset {
                *e = Some(137);
            }
            unset
        });
    }
}

/// A container's stdout or stderr: to its log and to attached clients.
pub(crate) struct Tee {
    pub log: Arc<dyn OutputSink>,
    pub hub: Arc<AttachHub>,
    pub stderr: bool,
}

impl OutputSink for Tee {
    fn write(&self, bytes: &[u8]) {
        self.log.write(bytes);
        if self.hub.out.receiver_count() > 0 {
            let b = Bytes::copy_from_slice(bytes);
            let _ = self.hub.out.send(if self.stderr && !self.hub.tty {
                Output::Stderr(b)
            } else {
                Output::Stdout(b)
            });
        }
    }
}

/// Whether the client asked for the stream `o` is on.
fn wanted(cmd: &Command, o: &Output) -> bool {
    match o {
        Output::Stdout(_) => cmd.stdout,
        Output::Stderr(_) => cmd.stderr,
    }
}

/// Attaches a client to `target` until the container's run ends (its exit
/// code) or the client goes.
pub(crate) async fn run(
    target: &Target,
    cmd: Command,
    mut input: mpsc::Receiver<Input>,
    output: mpsc::Sender<Output>,
) -> Outcome {
    let hub = target.attach.clone();
    if target.workload.is_http() {
        return Outcome::Failed(
            "the container is an HTTP component: it has no stdin or output to attach to".into(),
        );
    }
    let mut out = hub.out.subscribe();
    let mut ended = hub.ended.subscribe();
    let mut writer = if cmd.stdin && hub.has_stdin {
        hub.stdin.lock().await.take()
    } else {
        None
    };
    let mut line = crate::tty::LineDiscipline::default();
    let outcome = loop {
        let end = *ended.borrow_and_update();
        if let Some(code) = end {
            // What the run wrote before it ended still goes out.
            while let Ok(o) = out.try_recv() {
                if wanted(&cmd, &o) && output.send(o).await.is_err() {
                    break;
                }
            }
            break Outcome::Exited(code);
        }
        tokio::select! {
            o = out.recv() => match o {
                Ok(o) => {
                    if wanted(&cmd, &o) && output.send(o).await.is_err() {
                        break Outcome::Exited(0);
                    }
                }
                // A client slower than the guest misses what it fell behind on.
                Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => break Outcome::Exited(0),
            },
            i = input.recv() => match i {
                Some(Input::Stdin(bytes)) => {
                    let Some(w) = writer.as_mut() else { continue };
                    let (data, end) = if hub.tty {
                        let typed = line.input(&bytes);
                        if !typed.echo.is_empty() {
                            let _ = output.send(Output::Stdout(Bytes::from(typed.echo))).await;
                        }
                        (typed.lines, typed.eof)
                    } else {
                        (bytes.to_vec(), false)
                    };
                    if w.write_all(&data).await.is_err() || end {
                        let _ = w.shutdown().await;
                        writer = None;
                    }
                }
                Some(Input::StdinEnd) => {
                    if hub.stdin_once && let Some(mut w) = writer.take() {
                        let _ = w.shutdown().await;
                    }
                }
                Some(Input::Resize { .. }) => {}
                // The client went: the container goes on.
                None => break Outcome::Exited(0),
            },
            _ = ended.changed() => {}
        }
    };
    // The pipe stays for the next client, unless it was for one only.
    if let Some(mut w) = writer {
        if hub.stdin_once {
            let _ = w.shutdown().await;
        } else {
            *hub.stdin.lock().await = Some(w);
        }
    }
    outcome
}

//! Streams of an interactive instance (`kubectl exec`): stdin, stdout and
//! stderr as async pipes the node reads and writes, with backpressure, and
//! whether they are a terminal.

use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncWrite};
use wasmtime_wasi::cli::{
    AsyncStdinStream, AsyncStdoutStream, IsTerminal, StdinStream, StdoutStream,
};
use wasmtime_wasi::p2::{InputStream, OutputStream};

/// The standard streams of one instance.
#[derive(Clone)]
pub struct Stdio {
    pub(crate) stdin: Option<Terminal<Arc<AsyncStdinStream>>>,
    pub(crate) stdout: Terminal<Arc<AsyncStdoutStream>>,
    pub(crate) stderr: Terminal<Arc<AsyncStdoutStream>>,
}

impl Stdio {
    /// Streams over the given pipes; `tty` tells the guest they are a
    /// terminal. Without `stdin` the guest reads end-of-file at once.
    pub fn new(
        stdin: Option<impl AsyncRead + Send + Sync + 'static>,
        stdout: impl AsyncWrite + Send + Sync + 'static,
        stderr: impl AsyncWrite + Send + Sync + 'static,
        tty: bool,
    ) -> Self {
        // The pipes' own buffers are the flow control: 8 KiB at a time.
        let out = |w| Terminal(Arc::new(AsyncStdoutStream::new(8192, w)), tty);
        Stdio {
            stdin: stdin.map(|r| Terminal(Arc::new(AsyncStdinStream::new(r)), tty)),
            stdout: out(Box::pin(stdout) as std::pin::Pin<Box<dyn AsyncWrite + Send + Sync>>),
            stderr: out(Box::pin(stderr)),
        }
    }
}

impl Stdio {
    /// Stdin over a pipe, stdout and stderr to sinks (a long-running
    /// container with `stdin: true`, whose output is its log).
    pub fn attached(
        stdin: impl AsyncRead + Send + Sync + 'static,
        stdout: Arc<dyn crate::OutputSink>,
        stderr: Arc<dyn crate::OutputSink>,
        tty: bool,
    ) -> Self {
        Self::new(
            Some(stdin),
            crate::output::SinkWriter(stdout),
            crate::output::SinkWriter(stderr),
            tty,
        )
    }
}

/// A stream that says whether it is a terminal.
#[derive(Clone)]
pub(crate) struct Terminal<T>(pub T, pub bool);

impl<T> IsTerminal for Terminal<T> {
    fn is_terminal(&self) -> bool {
        self.1
    }
}

impl StdinStream for Terminal<Arc<AsyncStdinStream>> {
    fn p2_stream(&self) -> Box<dyn InputStream> {
        self.0.p2_stream()
    }

    fn async_stream(&self) -> Box<dyn AsyncRead + Send + Sync> {
        self.0.async_stream()
    }
}

impl StdoutStream for Terminal<Arc<AsyncStdoutStream>> {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        self.0.p2_stream()
    }

    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        self.0.async_stream()
    }
}

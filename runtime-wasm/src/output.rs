use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};

/// Where a guest's stdout or stderr goes. The node agent implements it with
/// per-container log files.
pub trait OutputSink: Send + Sync + 'static {
    /// Takes bytes the guest wrote; must not block for long.
    fn write(&self, bytes: &[u8]);
}

/// Adapts an [`OutputSink`] to WASI's stdout stream.
pub(crate) struct SinkStream(pub Arc<dyn OutputSink>);

impl IsTerminal for SinkStream {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for SinkStream {
    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(SinkWriter(self.0.clone()))
    }
}

pub(crate) struct SinkWriter(pub Arc<dyn OutputSink>);

impl AsyncWrite for SinkWriter {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.0.write(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

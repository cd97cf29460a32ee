//! Plain-HTTP requests from guests (`wasi:http` outgoing-handler), sent by
//! shoal rather than wasmtime-wasi-http's default sender: the connection
//! has `TCP_NODELAY` (without it a request's last write waits for the
//! peer's delayed ACK, ~40 ms a request) and may be bound to the pod's
//! own address, so the peer sees which pod called (NetworkPolicy).
//! HTTPS keeps the default sender.

use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper_util::rt::TokioIo;
use wasmtime_wasi_http::{Error as HttpError, RequestOptions, WasiBody};

/// What a send gives wasmtime-wasi-http: the response, and the
/// connection's work, which it drives while the guest reads the body.
pub(crate) type Sent = (
    http::Response<WasiBody>,
    Box<dyn Future<Output = Result<(), HttpError>> + Send>,
);

/// A response body that fails when no data arrives for `between`.
struct Paced {
    incoming: hyper::body::Incoming,
    timeout: tokio::time::Interval,
}

impl http_body::Body for Paced {
    type Data = Bytes;
    type Error = HttpError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, HttpError>>> {
        match Pin::new(&mut self.incoming).poll_frame(cx) {
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(HttpError::from(e)))),
            Poll::Ready(Some(Ok(frame))) => {
                self.timeout.reset();
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Pending => {
                ready!(self.timeout.poll_tick(cx));
                Poll::Ready(Some(Err(HttpError::ConnectionReadTimeout)))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        http_body::Body::is_end_stream(&self.incoming)
    }

    fn size_hint(&self) -> http_body::SizeHint {
        http_body::Body::size_hint(&self.incoming)
    }
}

/// Sets `IP_BIND_ADDRESS_NO_PORT` on `socket` (best effort).
#[allow(unsafe_code)]
fn bind_address_no_port(socket: &tokio::net::TcpSocket) {
    use std::os::fd::AsRawFd;
    let on: libc::c_int = 1;
    // SAFETY: the descriptor is the socket's own and open for the call; the
    // option's value is a c_int that lives across it, its size given.
    let _ = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_IP,
            libc::IP_BIND_ADDRESS_NO_PORT,
            (&raw const on).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
}

/// Sends `request` over plain HTTP/1.1 to `addr`, from `source` when the
/// node gives one, honouring the guest's timeouts.
pub(crate) async fn send_plain(
    mut request: http::Request<WasiBody>,
    options: Option<RequestOptions>,
    addr: SocketAddr,
    source: Option<IpAddr>,
) -> Result<Sent, HttpError> {
    let limit = |d: Option<Duration>| d.unwrap_or(Duration::from_secs(600));
    let connect_timeout = limit(options.and_then(|o| o.connect_timeout));
    let first_byte = limit(options.and_then(|o| o.first_byte_timeout));
    let between = limit(options.and_then(|o| o.between_bytes_timeout)).max(Duration::from_nanos(1));
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()
    } else {
        tokio::net::TcpSocket::new_v6()
    }
    .map_err(HttpError::Connect)?;
    if let Some(src) = source {
        // The port is chosen at connect, per destination: bound ports
        // would otherwise run out after some 28,000 connections a minute.
        bind_address_no_port(&socket);
        socket
            .bind(SocketAddr::new(src, 0))
            .map_err(HttpError::Connect)?;
    }
    let stream = tokio::time::timeout(connect_timeout, socket.connect(addr))
        .await
        .map_err(|_| HttpError::ConnectionTimeout)?
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::ConnectionRefused => HttpError::ConnectionRefused,
            _ => HttpError::Connect(e),
        })?;
    let _ = stream.set_nodelay(true);
    let (mut sender, conn) = tokio::time::timeout(
        connect_timeout,
        hyper::client::conn::http1::handshake(TokioIo::new(stream)),
    )
    .await
    .map_err(|_| HttpError::ConnectionTimeout)??;
    let conn = tokio::spawn(conn);
    // On the wire, the request line carries the path only.
    let path = request
        .uri()
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_string();
    *request.uri_mut() = http::Uri::builder()
        .path_and_query(path)
        .build()
        .map_err(|_| HttpError::HttpRequestUriInvalid)?;
    let response = tokio::time::timeout(first_byte, sender.send_request(request))
        .await
        .map_err(|_| HttpError::ConnectionReadTimeout)??;
    let mut timeout = tokio::time::interval(between);
    timeout.reset();
    let response = response.map(|incoming| Paced { incoming, timeout }.boxed_unsync());
    let io = async move {
        match conn.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(HttpError::from(e)),
            Err(_) => Err(HttpError::ConnectionTerminated),
        }
    };
    Ok((response, Box::new(io)))
}

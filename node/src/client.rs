//! The agent's client of the Kubernetes API. Every request and watch of the
//! node goes as a stream of one HTTP/2 connection (HTTP/1.1 where the
//! server offers nothing else), so thousands of pods cost the control plane
//! one connection, not one each; and every request first takes a token
//! from the node's bucket, as client-go's QPS and burst limit a kubelet.

use std::time::Duration;

use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use kube::client::ConfigExt;
use tower::{BoxError, Layer, Service, ServiceBuilder};

use crate::ratelimit::TokenBucket;

/// How many requests a second the node sends, after a burst.
#[derive(Debug, Clone, Copy)]
pub struct ClientLimits {
    /// Sustained requests a second (0: unlimited).
    pub qps: f64,
    /// Requests that may go at once.
    pub burst: u32,
}

/// Errors building the client.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The kubeconfig's TLS or authentication settings.
    #[error(transparent)]
    Kube(#[from] kube::Error),
    /// The kubeconfig's `tls-server-name`.
    #[error("tls-server-name {0:?} is not a valid server name")]
    ServerName(String),
}

/// A kube client for `config` that multiplexes over HTTP/2 and keeps to
/// `limits`.
pub fn connect(config: &kube::Config, limits: ClientLimits) -> Result<kube::Client, ClientError> {
    connect_tls(config, config.rustls_client_config()?, limits)
}

/// A client as [`connect`] makes, with `tls` in place of the TLS settings
/// `config` names (a node whose certificate is renewed while it runs).
pub fn connect_tls(
    config: &kube::Config,
    tls: rustls::ClientConfig,
    limits: ClientLimits,
) -> Result<kube::Client, ClientError> {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(config.connect_timeout);
    let mut builder = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http();
    if let Some(name) = &config.tls_server_name {
        let server_name = rustls_pki_types::ServerName::try_from(name.clone())
            .map_err(|_| ClientError::ServerName(name.clone()))?;
        builder = builder
            .with_server_name_resolver(hyper_rustls::FixedServerNameResolver::new(server_name));
    }
    let https = builder.enable_all_versions().wrap_connector(http);
    let hyper = hyper_util::client::legacy::Client::builder(TokioExecutor::new())
        .timer(TokioTimer::new())
        .pool_timer(TokioTimer::new())
        // A connection the server stopped answering is found and replaced,
        // as client-go's HTTP/2 health check does.
        .http2_keep_alive_interval(Duration::from_secs(30))
        .http2_keep_alive_timeout(Duration::from_secs(15))
        .http2_keep_alive_while_idle(true)
        // Thousands of streams share the connection; requests given up
        // while the server answers must not make it look like a misbehaving
        // peer and cost the connection.
        .http2_max_concurrent_reset_streams(4096)
        .build(https);
    let service = ServiceBuilder::new()
        .layer(config.base_uri_layer())
        .option_layer(config.auth_layer()?)
        .layer(config.extra_headers_layer()?)
        .layer(RateLimitLayer(TokenBucket::new(limits.qps, limits.burst)))
        .service(hyper);
    Ok(kube::Client::new(service, config.default_namespace.clone()))
}

/// Makes every request wait for a token of the bucket.
#[derive(Clone)]
struct RateLimitLayer(TokenBucket);

impl<S> Layer<S> for RateLimitLayer {
    type Service = RateLimited<S>;
    fn layer(&self, inner: S) -> RateLimited<S> {
        RateLimited {
            bucket: self.0.clone(),
            inner,
        }
    }
}

#[derive(Clone)]
struct RateLimited<S> {
    bucket: TokenBucket,
    inner: S,
}

impl<S, R> Service<R> for RateLimited<S>
where
    S: Service<R> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: Into<BoxError>,
    R: Send + 'static,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = futures::future::BoxFuture<'static, Result<S::Response, BoxError>>;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), BoxError>> {
        // The inner client is always ready; readiness is checked on the
        // clone that sends the request, after its token.
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: R) -> Self::Future {
        let bucket = self.bucket.clone();
        let mut inner = self.inner.clone();
        Box::pin(async move {
            bucket.acquire().await;
            futures::future::poll_fn(|cx| inner.poll_ready(cx))
                .await
                .map_err(Into::into)?;
            inner.call(req).await.map_err(Into::into)
        })
    }
}

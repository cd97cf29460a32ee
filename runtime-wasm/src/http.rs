use wasmtime_wasi_http::WasiHttpView;
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;

use crate::command::{CommandSpec, wasi_builder};
use crate::host::ComponentHost;
use crate::workload::Pre;
use crate::{Runtime, Workload};

/// Body of a response produced by a guest.
pub type HttpBody = wasmtime_wasi_http::p2::body::HyperOutgoingBody;
/// A response produced by a guest.
pub type HttpResponse = hyper::Response<HttpBody>;

impl Runtime {
    /// Serves one request with a fresh instance of an HTTP workload. The
    /// error text is what the caller should answer with a 500 or 502.
    ///
    /// When `stop` completes the instance is cancelled, even while it is
    /// still writing the response body.
    pub async fn serve_http<B>(
        &self,
        workload: &Workload,
        spec: &CommandSpec,
        req: hyper::Request<B>,
        stop: impl Future<Output = ()> + Send + 'static,
    ) -> Result<HttpResponse, String>
    where
        B: hyper::body::Body<Data = bytes::Bytes> + Send + 'static,
        B::Error: Into<wasmtime_wasi_http::Error>,
    {
        let Pre::Http(pre) = &workload.pre else {
            return Err("the container does not serve HTTP".into());
        };
        let mut store = self.store(
            workload,
            ComponentHost::new(wasi_builder(spec)?.build(), spec),
            spec,
        );
        let (sender, receiver) = tokio::sync::oneshot::channel();
        let req = store
            .data_mut()
            .http()
            .new_incoming_request(Scheme::Http, req)
            .map_err(|e| format!("{e:#}"))?;
        let out = store
            .data_mut()
            .http()
            .new_response_outparam(sender)
            .map_err(|e| format!("{e:#}"))?;
        let pre = pre.clone();
        let usage = spec.usage.clone();
        let task = tokio::spawn(crate::usage::metered(usage, async move {
            let serve = async {
                let proxy = pre.instantiate_async(&mut store).await?;
                proxy
                    .wasi_http_incoming_handler()
                    .call_handle(&mut store, req, out)
                    .await
            };
            tokio::select! {
                done = serve => done,
                () = stop => Err(wasmtime::Error::msg("the instance was stopped")),
            }
        }));
        match receiver.await {
            Ok(Ok(resp)) => Ok(resp),
            Ok(Err(code)) => Err(format!("guest answered with error {code:?}")),
            Err(_) => match task.await {
                Ok(Ok(())) => Err("guest returned without setting a response".into()),
                Ok(Err(e)) => Err(format!("guest failed: {e:#}")),
                Err(e) => Err(format!("guest task failed: {e}")),
            },
        }
    }
}

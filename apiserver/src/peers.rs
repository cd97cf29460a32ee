//! A server among others. The servers of a cluster call each other on
//! the API's own TLS port, under `/peers/`:
//!
//! - `/peers/raft/<call>`: the store's Raft traffic, with each server's
//!   peer certificate (group `system:shoal-servers`, which RBAC's
//!   `shoal:peer` role lets post there);
//! - `/peers/join`: a server joining with a server token (group
//!   `system:bootstrappers:shoal:servers`) is given the files every
//!   server shares (the CAs, the service-account key, the key sealing data
//!   at rest) and the members; it issues its own certificates from the CA
//!   and asks the store's group to add it.
//!
//! [`TlsTransport`] is the store's way to those calls.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::future::BoxFuture;
use http_body_util::{BodyExt as _, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use serde::{Deserialize, Serialize};

use shoal_machinery::error::ApiError;
use shoal_store::{Member, Rpc, Store, Transport};

/// The longest a peer's call may take (a snapshot chunk or a batch of
/// entries included).
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// What a joining server is given.
#[derive(Debug, Serialize, Deserialize)]
pub struct JoinBundle {
    /// The files every server shares, by name (`shoal_pki::SHARED_FILES`).
    pub files: BTreeMap<String, String>,
    /// The members of the store's group.
    pub members: Vec<Member>,
}

/// Answers the other servers' calls.
pub struct Endpoint {
    /// The store they replicate.
    pub store: Store,
    /// This server's `<data-dir>/pki`.
    pub pki_dir: PathBuf,
}

impl shoal_http::PeerService for Endpoint {
    fn call(&self, call: &str, body: Bytes) -> BoxFuture<'static, Result<Vec<u8>, ApiError>> {
        let store = self.store.clone();
        let pki_dir = self.pki_dir.clone();
        let call = call.to_string();
        Box::pin(async move {
            if let Some(name) = call.strip_prefix("raft/") {
                let rpc = Rpc::from_name(name).ok_or_else(ApiError::no_route)?;
                return store.serve(rpc, &body).await.map_err(ApiError::bad_request);
            }
            if call != "join" {
                return Err(ApiError::no_route());
            }
            let files = shoal_pki::shared_files(&pki_dir).map_err(ApiError::internal)?;
            serde_json::to_vec(&JoinBundle {
                files,
                members: store.members(),
            })
            .map_err(ApiError::internal)
        })
    }
}

type HttpsClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>;

fn client(tls: rustls::ClientConfig) -> HttpsClient {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(Some(Duration::from_secs(3)));
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_only()
        .enable_http1()
        .wrap_connector(http);
    Client::builder(TokioExecutor::new())
        .timer(TokioTimer::new())
        .pool_timer(TokioTimer::new())
        .pool_idle_timeout(Duration::from_secs(60))
        .build(https)
}

/// How long a join may take: the new member is added once it has
/// caught up with the log.
const JOIN_TIMEOUT: Duration = Duration::from_secs(300);

/// POSTs `body` to `url` and returns the answer's body, or why not
/// within `timeout`.
async fn post(
    client: &HttpsClient,
    url: &str,
    bearer: Option<&str>,
    body: Vec<u8>,
    timeout: Duration,
) -> Result<Vec<u8>, String> {
    let mut req = http::Request::post(url).header(http::header::CONTENT_TYPE, "application/json");
    if let Some(token) = bearer {
        req = req.header(http::header::AUTHORIZATION, format!("Bearer {token}"));
    }
    let req = req
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| e.to_string())?;
    let answer = async {
        let resp = client.request(req).await.map_err(|e| format!("{e:?}"))?;
        let status = resp.status();
        let bytes = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        if status.is_success() {
            Ok(bytes.to_vec())
        } else {
            Err(format!(
                "{status}: {}",
                String::from_utf8_lossy(&bytes[..bytes.len().min(512)])
            ))
        }
    };
    tokio::time::timeout(timeout, answer)
        .await
        .map_err(|_| format!("no answer within {timeout:?}"))?
}

/// The store's calls to the other servers, over TLS with this server's
/// peer certificate; connections are kept and reused.
pub struct TlsTransport(HttpsClient);

impl TlsTransport {
    /// A transport presenting the peer pair `tls` holds.
    pub fn new(tls: Arc<rustls::ClientConfig>) -> Self {
        Self(client((*tls).clone()))
    }
}

impl Transport for TlsTransport {
    fn call(
        &self,
        addr: &str,
        rpc: Rpc,
        body: Vec<u8>,
    ) -> BoxFuture<'static, Result<Vec<u8>, String>> {
        let client = self.0.clone();
        let url = format!("https://{addr}/peers/raft/{}", rpc.name());
        let timeout = if rpc == Rpc::Join {
            JOIN_TIMEOUT
        } else {
            CALL_TIMEOUT
        };
        Box::pin(async move { post(&client, &url, None, body, timeout).await })
    }
}

/// Asks the server at `server` (an API URL) for what joining needs, with
/// the server token `token`, trusting only the CA `ca_pem` (which the
/// token's signature vouched for).
pub async fn fetch_join_bundle(
    server: &str,
    ca_pem: &str,
    token: &str,
) -> Result<JoinBundle, String> {
    let tls = shoal_pki::roots(ca_pem)
        .and_then(shoal_pki::trusting)
        .map_err(|e| e.to_string())?;
    let url = format!("{}/peers/join", server.trim_end_matches('/'));
    let body = post(
        &client(tls),
        &url,
        Some(token),
        b"{}".to_vec(),
        CALL_TIMEOUT,
    )
    .await?;
    serde_json::from_slice(&body).map_err(|e| format!("the join answer: {e}"))
}

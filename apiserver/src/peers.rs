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
//!   and asks the store's group to add it;
//! - for administrators (RBAC on the non-resource URLs, as `cluster-admin`
//!   has): `GET /peers/members` lists the members, `DELETE
//!   /peers/members/<id>` removes one, `GET /peers/snapshot` is a backup
//!   of the store and the shared files (`shoal member`, `shoal snapshot`).
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
    /// A server alone (`shoal up`): it has no peers, and answers only its
    /// administrators.
    pub alone: bool,
}

/// A member as `GET /peers/members` lists it.
#[derive(Debug, Serialize, Deserialize)]
pub struct MemberStatus {
    /// Its id in the store's group.
    pub id: u64,
    /// The address its peers reach it at.
    pub addr: String,
    /// Whether it votes (a learner does not, until it has caught up).
    pub voter: bool,
    /// Whether it leads.
    pub leader: bool,
}

/// What a backup holds beside the store's state (`GET /peers/snapshot`
/// gives the store's backup body with `files` added, which the store's
/// restore passes over): the files every server shares, so that it
/// restores into an empty data directory.
#[derive(Debug, Deserialize)]
pub struct BackupFiles {
    /// The files every server shares, by name.
    pub files: BTreeMap<String, String>,
}

impl shoal_http::PeerService for Endpoint {
    fn call(
        &self,
        method: &http::Method,
        call: &str,
        body: Bytes,
    ) -> BoxFuture<'static, Result<Vec<u8>, ApiError>> {
        let store = self.store.clone();
        let pki_dir = self.pki_dir.clone();
        let call = call.to_string();
        let method = method.clone();
        let alone = self.alone;
        Box::pin(async move {
            let unavailable = |e: shoal_store::StoreError| ApiError::unavailable(e.to_string());
            match (&method, call.as_str()) {
                (&http::Method::POST, raft) if raft.starts_with("raft/") && !alone => {
                    let rpc =
                        Rpc::from_name(&raft["raft/".len()..]).ok_or_else(ApiError::no_route)?;
                    store.serve(rpc, &body).await.map_err(ApiError::bad_request)
                }
                (&http::Method::POST, "join") if !alone => {
                    let files = shoal_pki::shared_files(&pki_dir).map_err(ApiError::internal)?;
                    serde_json::to_vec(&JoinBundle {
                        files,
                        members: store.members(),
                    })
                    .map_err(ApiError::internal)
                }
                (&http::Method::GET, "members") => {
                    store.linearize().await.map_err(unavailable)?;
                    let leader = store.leader();
                    let members: Vec<MemberStatus> = store
                        .members()
                        .into_iter()
                        .map(|m| MemberStatus {
                            leader: Some(m.id) == leader,
                            id: m.id,
                            addr: m.addr,
                            voter: m.voter,
                        })
                        .collect();
                    serde_json::to_vec(&members).map_err(ApiError::internal)
                }
                (&http::Method::DELETE, member) if member.starts_with("members/") => {
                    let id: u64 = member["members/".len()..].parse().map_err(|_| {
                        ApiError::bad_request(format!("{member:?}: a member is named by its id"))
                    })?;
                    if !store.members().iter().any(|m| m.id == id) {
                        return Err(ApiError::not_found("", "members", &id.to_string()));
                    }
                    store
                        .remove_member(id)
                        .await
                        .map_err(|e| ApiError::bad_request(format!("removing member {id}: {e}")))?;
                    Ok(serde_json::to_vec(&serde_json::json!({"removed": id}))
                        .map_err(ApiError::internal)?)
                }
                (&http::Method::GET, "snapshot") => {
                    let state = store.backup().await.map_err(unavailable)?;
                    let files = shoal_pki::shared_files(&pki_dir).map_err(ApiError::internal)?;
                    // `{"files":{..},` and the rest of the store's object.
                    let mut out = b"{\"files\":".to_vec();
                    out.extend(serde_json::to_vec(&files).map_err(ApiError::internal)?);
                    out.push(b',');
                    out.extend(state.get(1..).unwrap_or_default());
                    Ok(out)
                }
                _ => Err(ApiError::no_route()),
            }
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

//! Which API server a node agent talks to, when the cluster has several,
//! as k3s's agent load balancer does: the agent's client talks to a local
//! TCP relay (`https://127.0.0.1:<port>`, a name every server's certificate
//! holds), which passes each connection to the server it last reached,
//! or to the next that answers when that one does not. The servers are
//! those given on the command line and those the `kubernetes` Service
//! lists, read again every ten seconds.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::Endpoints;
use kube::Api;
use tokio::net::{TcpListener, TcpStream};

/// How long a server has to accept a connection before the next is tried.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// How often the servers' list is read from the `kubernetes` Service.
const REFRESH: Duration = Duration::from_secs(10);

/// The servers, as `host:port`, and the one connections go to first.
#[derive(Default)]
struct Servers {
    given: Vec<String>,
    listed: Vec<String>,
    current: String,
}

impl Servers {
    /// Every server, the current one first, each once.
    fn in_order(&self) -> Vec<String> {
        let mut out = vec![self.current.clone()];
        for s in self.listed.iter().chain(&self.given) {
            if !out.contains(s) {
                out.push(s.clone());
            }
        }
        out
    }
}

/// The relay; dropping it stops it.
pub struct Balancer {
    addr: SocketAddr,
    servers: Arc<Mutex<Servers>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Balancer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// `host:port` of an API URL (6443 when it names no port).
fn authority(url: &str) -> Option<String> {
    let uri: http::Uri = url.parse().ok()?;
    Some(format!(
        "{}:{}",
        uri.host()?,
        uri.port_u16().unwrap_or(6443)
    ))
}

impl Balancer {
    /// Starts a relay to the servers at `urls` (API URLs; the first is
    /// tried first).
    pub async fn start(urls: &[String]) -> std::io::Result<Self> {
        let given: Vec<String> = urls.iter().filter_map(|u| authority(u)).collect();
        let current = given
            .first()
            .cloned()
            .ok_or_else(|| std::io::Error::other("no API server given"))?;
        let servers = Arc::new(Mutex::new(Servers {
            given,
            listed: Vec::new(),
            current,
        }));
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let relaying = servers.clone();
        let task = tokio::spawn(async move {
            loop {
                match listener.accept().await {
                    Ok((conn, _)) => {
                        let _ = conn.set_nodelay(true);
                        tokio::spawn(relay(conn, relaying.clone()));
                    }
                    Err(e) => {
                        tracing::warn!("accepting on the API relay: {e}");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
            }
        });
        Ok(Self {
            addr,
            servers,
            task,
        })
    }

    /// The URL the agent's client uses.
    pub fn url(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// The server connections go to first.
    pub fn current(&self) -> String {
        self.servers.lock().expect("servers lock").current.clone()
    }

    /// Reads the servers from the `kubernetes` Service's endpoints with
    /// `client` every ten seconds, for as long as the task runs.
    pub fn follow(&self, client: kube::Client) -> tokio::task::JoinHandle<()> {
        let servers = self.servers.clone();
        tokio::spawn(async move {
            let api: Api<Endpoints> = Api::namespaced(client, "default");
            loop {
                match api.get("kubernetes").await {
                    Ok(ep) => {
                        let listed = listed(&ep);
                        if !listed.is_empty() {
                            servers.lock().expect("servers lock").listed = listed;
                        }
                    }
                    Err(e) => tracing::debug!("reading the API servers: {e}"),
                }
                tokio::time::sleep(REFRESH).await;
            }
        })
    }
}

/// The servers `kubernetes`' Endpoints list, as `host:port`.
fn listed(ep: &Endpoints) -> Vec<String> {
    let mut out = Vec::new();
    for subset in ep.subsets.iter().flatten() {
        let ports: Vec<i32> = subset.ports.iter().flatten().map(|p| p.port).collect();
        for a in subset.addresses.iter().flatten() {
            for p in &ports {
                out.push(SocketAddr::new(
                    match a.ip.parse() {
                        Ok(ip) => ip,
                        Err(_) => continue,
                    },
                    *p as u16,
                ));
            }
        }
    }
    out.sort();
    out.dedup();
    out.into_iter().map(|a| a.to_string()).collect()
}

/// Passes `conn` to the first server that accepts it, starting with the
/// current one; the one that accepts becomes current.
async fn relay(mut conn: TcpStream, servers: Arc<Mutex<Servers>>) {
    let order = servers.lock().expect("servers lock").in_order();
    for server in order {
        let up = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(&server)).await;
        let Ok(Ok(mut up)) = up else {
            tracing::debug!("API server {server} does not answer");
            continue;
        };
        let _ = up.set_nodelay(true);
        {
            let mut s = servers.lock().expect("servers lock");
            if s.current != server {
                tracing::info!("talking to API server {server} (was {})", s.current);
                s.current = server.clone();
            }
        }
        let _ = tokio::io::copy_bidirectional(&mut conn, &mut up).await;
        return;
    }
    tracing::warn!("no API server answers");
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    /// A listener and its address.
    async fn listener() -> (TcpListener, String) {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap().to_string();
        (l, addr)
    }

    /// Answers each connection with `name`.
    async fn serve(l: TcpListener, name: &'static str) {
        loop {
            let (mut c, _) = l.accept().await.unwrap();
            c.write_all(name.as_bytes()).await.unwrap();
        }
    }

    async fn ask(b: &Balancer) -> String {
        let mut c = TcpStream::connect(b.addr).await.unwrap();
        let mut out = String::new();
        let _ = c.read_to_string(&mut out).await;
        out
    }

    #[tokio::test]
    async fn connections_move_to_the_next_server_when_one_is_gone() {
        let (a, a_addr) = listener().await;
        let (b, b_addr) = listener().await;
        let a_task = tokio::spawn(serve(a, "a"));
        tokio::spawn(serve(b, "b"));
        let urls = [format!("https://{a_addr}"), format!("https://{b_addr}")];
        let balancer = Balancer::start(&urls).await.unwrap();
        assert_eq!(ask(&balancer).await, "a");
        a_task.abort();
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(ask(&balancer).await, "b");
        assert_eq!(balancer.current(), b_addr);
        // It stays with the one that answered.
        assert_eq!(ask(&balancer).await, "b");
    }

    #[test]
    fn endpoints_name_servers_by_address_and_port() {
        let ep: Endpoints = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "kubernetes"},
            "subsets": [
                {"addresses": [{"ip": "10.0.0.2"}, {"ip": "10.0.0.1"}], "ports": [{"port": 6443}]},
                {"addresses": [{"ip": "10.0.0.3"}], "ports": [{"port": 7443}]}]}))
        .unwrap();
        assert_eq!(
            listed(&ep),
            ["10.0.0.1:6443", "10.0.0.2:6443", "10.0.0.3:7443"]
        );
    }
}

//! Starting the control plane: PKI, store, API listener, scheduler and
//! controllers.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use serde_json::json;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use shoal_http::aggregator::Aggregator;
use shoal_http::{ApiState, serve};
use shoal_pki::Pki;
use shoal_registry::kinds;
use shoal_registry::objects::{Objects, WriteOpts};
use shoal_registry::resources;
use shoal_store::Store;

pub use shoal_registry::admission::default_tolerations::DefaultTolerationSeconds;

/// Settings of the control plane.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Where the store and the PKI live.
    pub data_dir: PathBuf,
    /// Address the API listens on.
    pub listen: SocketAddr,
    /// Extra names and addresses for the serving certificate.
    pub hosts: Vec<String>,
    /// The range node pod CIDRs are cut from.
    pub cluster_cidr: String,
    /// Prefix length of each node's pod CIDR.
    pub node_cidr_mask: u8,
    /// Whether the controllers give each Node a pod CIDR.
    pub allocate_node_cidrs: bool,
    /// How long an Event lives after it was last written.
    pub event_ttl: std::time::Duration,
    /// How long a node may stay silent before it is unreachable.
    pub node_grace: std::time::Duration,
    /// How long new pods tolerate a node that is not ready or unreachable.
    pub tolerations: DefaultTolerationSeconds,
    /// The cluster DNS address: the `kube-dns` Service's ClusterIP.
    pub cluster_dns: std::net::Ipv4Addr,
    /// How requests are authorized.
    pub authorization: Authorization,
    /// The audit log, if one is kept.
    pub audit: Option<Arc<shoal_http::audit::Audit>>,
    /// An EncryptionConfiguration for data at rest (Secrets sealed with a
    /// key of the cluster's own without one).
    pub encryption_config: Option<PathBuf>,
    /// Whether the server is alone or one of several.
    pub membership: Membership,
}

/// How a server's store relates to the other servers'.
#[derive(Debug, Clone)]
pub enum Membership {
    /// The only server (`shoal up`): a group of one that never calls out.
    Alone,
    /// A server of a cluster others may join: the first (`--cluster-init`),
    /// or any server restarting once joined.
    Member,
    /// Joins the cluster of the server at `server` (its API URL) with the
    /// server token `token`, trusting the CA `ca` (PEM) that the token's
    /// signature vouched for. Once joined, a restart is [`Membership::Member`]'s.
    Join {
        /// The API URL of a server of the cluster.
        server: String,
        /// A bootstrap token in the servers' group.
        token: String,
        /// The cluster CA.
        ca: String,
    },
}

/// How the API authorizes requests, as kube-apiserver's
/// `--authorization-mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Authorization {
    /// Roles and bindings decide (the default).
    Rbac,
    /// Every authenticated user may do everything.
    AlwaysAllow,
}

/// A running control plane.
pub struct Server {
    /// The PKI.
    pub pki: Pki,
    /// The object API.
    pub objects: Objects,
    /// The address the API listens on.
    pub addr: SocketAddr,
    tasks: Vec<JoinHandle<()>>,
}

/// Errors starting the control plane.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Certificates.
    #[error(transparent)]
    Pki(#[from] shoal_pki::PkiError),
    /// The store.
    #[error(transparent)]
    Store(#[from] shoal_store::StoreError),
    /// The listener.
    #[error("listening on {0}: {1}")]
    Listen(SocketAddr, std::io::Error),
    /// Encryption at rest.
    #[error("encryption at rest: {0}")]
    Encryption(String),
    /// Writing the initial objects.
    #[error("creating initial objects: {0}")]
    Init(shoal_machinery::error::ApiError),
    /// Joining the other servers.
    #[error("joining the cluster: {0}")]
    Join(String),
}

impl Server {
    /// Starts everything and returns once the API accepts requests.
    pub async fn start(config: ServerConfig) -> Result<Self, StartError> {
        let pki_dir = config.data_dir.join("pki");
        if let Membership::Join { server, token, ca } = &config.membership
            && !pki_dir.join("ca.crt").exists()
        {
            let bundle = crate::peers::fetch_join_bundle(server, ca, token)
                .await
                .map_err(|e| StartError::Join(format!("asking {server}: {e}")))?;
            shoal_pki::write_shared(&pki_dir, &bundle.files)
                .map_err(|e| StartError::Join(e.to_string()))?;
        }
        let join_via = match &config.membership {
            Membership::Join { server, .. } => Some(server.clone()),
            _ => None,
        };
        let pki = Pki::load_or_create(&pki_dir, &config.hosts)?;
        let sealer = match &config.encryption_config {
            Some(path) => crate::encryption::from_file(path),
            None => crate::encryption::default_sealer(&pki_dir),
        }
        .map_err(StartError::Encryption)?;
        let listener = TcpListener::bind(config.listen)
            .await
            .map_err(|e| StartError::Listen(config.listen, e))?;
        let addr = listener
            .local_addr()
            .map_err(|e| StartError::Listen(config.listen, e))?;
        let advertise = if addr.ip().is_unspecified() {
            config
                .hosts
                .iter()
                .filter_map(|h| h.parse::<std::net::IpAddr>().ok())
                .find(|ip| !ip.is_unspecified())
                .unwrap_or(addr.ip())
        } else {
            addr.ip()
        };
        let alone = matches!(config.membership, Membership::Alone);
        let transport: Option<Arc<dyn shoal_store::Transport>> = if alone {
            None
        } else {
            Some(Arc::new(crate::peers::TlsTransport::new(
                pki.client_config(&pki.peer)?,
            )))
        };
        let store = Store::open(
            &config.data_dir.join("store"),
            shoal_store::Options {
                id: member_id(&config.data_dir, join_via.is_some())
                    .map_err(|e| StartError::Join(e.to_string()))?,
                addr: if alone {
                    config.listen.to_string()
                } else {
                    SocketAddr::new(advertise, addr.port()).to_string()
                },
                sealer: Some(sealer),
                transport: transport.clone(),
                init: !matches!(config.membership, Membership::Join { .. }),
                election_seed: None,
            },
        )
        .await?;
        let rbac = (config.authorization == Authorization::Rbac).then(shoal_http::Rbac::new);
        let mut admission: Vec<Arc<dyn shoal_registry::admission::Admission>> = vec![
            Arc::new(shoal_registry::admission::limit_ranger::LimitRanger(
                store.clone(),
            )),
            Arc::new(shoal_registry::admission::service_account::ServiceAccounts(
                store.clone(),
            )),
            Arc::new(config.tolerations),
            Arc::new(shoal_registry::admission::runtime_class::RuntimeClasses(
                store.clone(),
            )),
            Arc::new(shoal_registry::admission::pod_security::PodSecurity(
                store.clone(),
            )),
        ];
        if let Some(rbac) = &rbac {
            admission.push(Arc::new(
                shoal_registry::admission::node_restriction::NodeRestriction,
            ));
            admission.push(Arc::new(shoal_http::NoEscalation(rbac.clone())));
        }
        admission.push(Arc::new(
            shoal_registry::admission::resource_quota::ResourceQuotas(store.clone()),
        ));
        let objects = Objects::new(store.clone())
            .with_admission(admission)
            .with_webhooks(Arc::new(shoal_http::WebhookAdmission(store.clone())));
        let tls = pki.server_config(&pki.apiserver, &[b"h2", b"http/1.1"])?;
        let aggregator = Arc::new(Aggregator::new(&pki));
        let mut tasks = Vec::new();
        // As `--authorization-mode=Node,RBAC`: nodes' reads of Secrets,
        // ConfigMaps and claims are the Node authorizer's, the rest RBAC's.
        let authorizer: Arc<dyn shoal_http::Authorizer> = match &rbac {
            Some(rbac) => {
                tasks.push(rbac.follow(objects.clone()));
                Arc::new(shoal_http::NodeAuthorizer {
                    inner: rbac.clone(),
                    objects: objects.clone(),
                })
            }
            None => Arc::new(shoal_http::AllowAll),
        };
        let state = ApiState {
            authorizer: authorizer.clone(),
            objects: objects.clone(),
            kubelet_client: pki.client_config(&pki.apiserver_kubelet_client)?,
            metrics: Arc::default(),
            aggregator: aggregator.clone(),
            inflight: Arc::default(),
            audit: config.audit.clone(),
            tokens: Some(Arc::new(
                shoal_pki::tokens::Tokens::from_pem(&pki.service_account_key)
                    .map_err(|e| StartError::Pki(shoal_pki::PkiError::Key(e)))?,
            )),
            peers: Some(Arc::new(crate::peers::Endpoint {
                store: store.clone(),
                pki_dir: pki_dir.clone(),
                alone,
            })),
        };
        // Peers reach this server's store from here on: a joining server's
        // log comes this way.
        tasks.push(tokio::spawn(serve(listener, tls, state)));
        // A joining server not yet in the group (its first start, or one
        // that stopped before it was added) asks to be added.
        let joining = join_via.filter(|_| store.members().is_empty());
        if let Some(server) = &joining {
            let target = server_authority(server).map_err(StartError::Join)?;
            store.join(&target).await.map_err(|e| {
                StartError::Join(format!("joining the store's group at {target}: {e}"))
            })?;
        } else if !alone {
            store.caught_up().await;
        }
        ensure_initial_objects(&objects, config.cluster_dns)
            .await
            .map_err(StartError::Init)?;
        complete_statuses(&objects).await;
        let api_at = SocketAddr::new(advertise, addr.port());
        if alone && let Err(e) = crate::api_endpoints::write(&objects, &[api_at]).await {
            tracing::warn!("writing the kubernetes Service's endpoints: {e}");
        }
        if !alone {
            tasks.push(tokio::spawn(crate::api_endpoints::keep_lease(
                objects.clone(),
                store.id(),
                api_at,
            )));
        }
        if let Err(e) = ensure_authentication_config(&objects, &pki).await {
            tracing::warn!("writing kube-system/{AUTHENTICATION_CONFIG}: {}", e.message);
        }
        if let Err(e) = ensure_default_policy(&objects).await {
            tracing::warn!("writing the default roles and bindings: {}", e.message);
        }
        let controller_config = shoal_controllers::ControllerConfig {
            cluster_cidr: config.cluster_cidr.clone(),
            node_mask: config.node_cidr_mask,
            allocate_node_cidrs: config.allocate_node_cidrs,
            ca_pem: pki.ca.clone(),
            event_ttl: config.event_ttl,
            node_grace: config.node_grace,
            signer: Some({
                let pki = pki.clone();
                Arc::new(move |csr: &str, signer: &str, secs: u64| {
                    pki.sign_request(csr, signer, secs)
                })
            }),
            approver: Some(node_approver(
                objects.clone(),
                authorizer.clone(),
                config
                    .hosts
                    .iter()
                    .cloned()
                    .chain([advertise.to_string()])
                    .collect(),
            )),
            cluster_info: Some(cluster_info(
                &format!("https://{}", SocketAddr::new(advertise, addr.port())),
                &pki.ca,
            )),
        };
        tasks.push(tokio::spawn(shoal_http::aggregator::run(
            objects.clone(),
            aggregator,
        )));
        // The scheduler and controllers run on one server at a time: the
        // one whose store leads, while it holds their Leases.
        tasks.push(tokio::spawn(lead(store, objects.clone(), {
            let objects = objects.clone();
            move || {
                let mut duties = vec![
                    tokio::spawn(shoal_scheduler::run(objects.clone())),
                    tokio::spawn(shoal_controllers::run(
                        objects.clone(),
                        controller_config.clone(),
                    )),
                ];
                if !alone {
                    duties.push(tokio::spawn(crate::api_endpoints::reconcile(
                        objects.clone(),
                    )));
                }
                duties
            }
        })));
        Ok(Self {
            pki,
            objects,
            addr,
            tasks,
        })
    }

    /// Waits until the store stops on a fatal error (its disk full or
    /// failing), and returns why: the server cannot go on without it.
    pub async fn failed(&self) -> String {
        self.objects.store().stopped().await
    }

    /// Stops the tasks and the store.
    pub async fn shutdown(self) {
        for t in &self.tasks {
            t.abort();
        }
        self.objects.store().shutdown().await;
    }
}

/// Tasks aborted when dropped.
struct Duties(Vec<JoinHandle<()>>);

impl Drop for Duties {
    fn drop(&mut self) {
        self.0.iter().for_each(JoinHandle::abort);
    }
}

/// Runs the tasks `start` spawns while this server's store leads its
/// group and it holds the components' Leases (renewed every 2 s; lost
/// when no renewal succeeded for their duration), and stops them when
/// either ends.
async fn lead(store: Store, objects: Objects, start: impl Fn() -> Vec<JoinHandle<()>>) {
    use crate::leader_election::{LEASE_DURATION, RENEW_PERIOD, renew};
    let identity = format!("shoal-server-{}", store.id());
    let mut running: Option<Duties> = None;
    let mut renewed: Option<std::time::Instant> = None;
    loop {
        let leads = store.leader() == Some(store.id());
        if leads {
            match renew(&objects, &identity).await {
                Ok(()) => renewed = Some(std::time::Instant::now()),
                Err(e) => tracing::debug!("renewing the components' Leases: {}", e.message),
            }
        } else {
            renewed = None;
        }
        let holds = renewed.is_some_and(|t| t.elapsed() < LEASE_DURATION);
        match (holds, running.is_some()) {
            (true, false) => {
                tracing::info!("this server leads: the scheduler and controllers run here");
                running = Some(Duties(start()));
            }
            (false, true) if leads => {
                tracing::warn!(
                    "this server could not renew the scheduler's and controllers' Leases for {LEASE_DURATION:?}: they stop"
                );
                running = None;
            }
            (false, true) => {
                tracing::info!("this server no longer leads: its scheduler and controllers stop");
                running = None;
            }
            _ => {}
        }
        store.leadership_changed(RENEW_PERIOD).await;
    }
}

/// This server's member id in the store's group, kept in
/// `<data-dir>/member-id`: 1 for the first server (and a server alone),
/// a random one for a joining server.
fn member_id(data_dir: &std::path::Path, joining: bool) -> std::io::Result<u64> {
    let path = data_dir.join("member-id");
    match std::fs::read_to_string(&path) {
        Ok(text) => text
            .trim()
            .parse()
            .map_err(|e| std::io::Error::other(format!("{}: {e}", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let id = if joining {
                rand::random_range(2..u64::MAX)
            } else {
                1
            };
            std::fs::write(&path, format!("{id}\n"))?;
            Ok(id)
        }
        Err(e) => Err(e),
    }
}

/// `host:port` of an API URL (port 6443 when it names none).
fn server_authority(url: &str) -> Result<String, String> {
    let uri: http::Uri = url
        .parse()
        .map_err(|e| format!("the server URL {url:?}: {e}"))?;
    let host = uri
        .host()
        .ok_or_else(|| format!("the server URL {url:?} names no host"))?;
    Ok(format!("{host}:{}", uri.port_u16().unwrap_or(6443)))
}

/// The kubeconfig joining nodes read from `kube-public/cluster-info`: the
/// server and its CA, no credentials.
fn cluster_info(server: &str, ca_pem: &str) -> String {
    use base64::Engine as _;
    let ca = base64::engine::general_purpose::STANDARD.encode(ca_pem);
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: shoal\n  cluster:\n    server: {server}\n    certificate-authority-data: {ca}\ncontexts: []\nusers: []\n"
    )
}

/// Approves node agents' certificate requests as kube-controller-manager's
/// `csrapproving` does: a client certificate for a node when its requester
/// may create `certificatesigningrequests/nodeclient` (bootstrap tokens'
/// users may) or, renewing its own, `selfnodeclient` (nodes may); and a
/// node's serving certificate for names that are neither this server's
/// nor another Node's, so a node cannot pose as the API or its peers.
fn node_approver(
    objects: Objects,
    authorizer: Arc<dyn shoal_http::Authorizer>,
    server_names: Vec<String>,
) -> shoal_controllers::Approver {
    use base64::Engine as _;
    use shoal_machinery::user::{Attributes, ResourceAttributes, User};
    use shoal_pki::signer::{NodeRequest, node_request};
    Arc::new(move |csr: &serde_json::Value| {
        let spec = csr.get("spec")?;
        let text = |k: &str| spec.get(k).and_then(serde_json::Value::as_str);
        let pem = base64::engine::general_purpose::STANDARD
            .decode(text("request")?)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())?;
        let usages = shoal_machinery::meta::strings(spec, "usages");
        let usages: Vec<&str> = usages.iter().map(String::as_str).collect();
        let requester = User {
            name: text("username")?.to_string(),
            groups: shoal_machinery::meta::strings(spec, "groups"),
        };
        let may = |subresource: &str| {
            let a = Attributes {
                verb: "create".into(),
                resource: Some(ResourceAttributes {
                    group: "certificates.k8s.io".into(),
                    version: String::new(),
                    resource: "certificatesigningrequests".into(),
                    subresource: subresource.into(),
                    namespace: String::new(),
                    name: String::new(),
                }),
                path: String::new(),
            };
            authorizer.authorize(&requester, &a).is_ok()
        };
        match node_request(&pem, text("signerName")?, &usages, &requester.name)? {
            NodeRequest::Client(_) => may("nodeclient").then(|| {
                "Auto approving kubelet client certificate after SubjectAccessReview.".into()
            }),
            NodeRequest::SelfClient(_) => may("selfnodeclient").then(|| {
                "Auto approving self kubelet client certificate after SubjectAccessReview.".into()
            }),
            NodeRequest::Serving(node, names) => {
                let nodes = resources::by_kind("", "Node")?;
                let (others, _) =
                    objects.list(nodes, None, &Default::default(), &Default::default());
                let others: Vec<&serde_json::Value> = others.iter().map(|o| &*o.value).collect();
                names_free(&node, &names, &server_names, &others).then(|| {
                    "Auto approving the node's serving certificate for its own names.".into()
                })
            }
        }
    })
}

/// Whether node `node` may have a serving certificate for `names`: none
/// is the API server's, or another Node's name or address.
fn names_free(
    node: &str,
    names: &[shoal_pki::signer::Name],
    server_names: &[String],
    nodes: &[&serde_json::Value],
) -> bool {
    use shoal_machinery::meta;
    let taken = |n: &str| {
        server_names.iter().any(|s| s == n)
            || nodes.iter().any(|o| {
                meta::name(o) != node
                    && (meta::name(o) == n
                        || o.pointer("/status/addresses")
                            .and_then(serde_json::Value::as_array)
                            .is_some_and(|a| a.iter().any(|x| x["address"] == n)))
            })
    };
    names.iter().all(|n| match n {
        shoal_pki::signer::Name::Dns(d) => !taken(d),
        shoal_pki::signer::Name::Ip(ip) => !taken(&ip.to_string()),
    })
}

async fn ensure_initial_objects(
    objects: &Objects,
    cluster_dns: std::net::Ipv4Addr,
) -> Result<(), shoal_machinery::error::ApiError> {
    let ns = resources::by_kind("", "Namespace").expect("namespaces are served");
    for name in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        if objects.get(ns, "", name).is_err() {
            objects
                .create(
                    ns,
                    "",
                    json!({"metadata": {"name": name}}),
                    WriteOpts::default(),
                )
                .await?;
        }
    }
    let svc = resources::by_kind("", "Service").expect("services are served");
    if objects.get(svc, "default", "kubernetes").is_err() {
        let obj = json!({"metadata": {"name": "kubernetes", "labels": {"component": "apiserver", "provider": "kubernetes"}},
            "spec": {"clusterIP": "10.96.0.1", "ports": [{"name": "https", "port": 443, "targetPort": 6443}]}});
        objects
            .create(svc, "default", obj, WriteOpts::default())
            .await?;
    }
    // The cluster DNS, which every node serves at this address: the
    // Service reserves it and names it as clients look for it.
    if objects.get(svc, "kube-system", "kube-dns").is_err() {
        let obj = json!({"metadata": {"name": "kube-dns", "labels": {"k8s-app": "kube-dns",
                "kubernetes.io/cluster-service": "true", "kubernetes.io/name": "shoal-dns"}},
            "spec": {"clusterIP": cluster_dns.to_string(), "ports": [
                {"name": "dns", "port": 53, "protocol": "UDP"},
                {"name": "dns-tcp", "port": 53, "protocol": "TCP"}]}});
        if let Err(e) = objects
            .create(svc, "kube-system", obj, WriteOpts::default())
            .await
        {
            tracing::warn!(
                "creating the kube-dns Service at {cluster_dns}: {}",
                e.message
            );
        }
    }
    Ok(())
}

/// Writes the default ClusterRoles and ClusterRoleBindings: those missing
/// are created, and those still marked for automatic update
/// (`rbac.authorization.kubernetes.io/autoupdate: "true"`) get today's
/// rules and subjects; a default a user changed and unmarked is left alone.
async fn ensure_default_policy(objects: &Objects) -> Result<(), shoal_machinery::error::ApiError> {
    for obj in shoal_rbac::defaults() {
        let kind = obj["kind"].as_str().unwrap_or_default();
        let r =
            resources::by_kind("rbac.authorization.k8s.io", kind).expect("RBAC kinds are served");
        let name = obj["metadata"]["name"].as_str().unwrap_or_default();
        let ns = obj["metadata"]["namespace"].as_str().unwrap_or_default();
        match objects.get(r, ns, name) {
            Err(_) => {
                objects
                    .create(r, ns, obj.clone(), WriteOpts::default())
                    .await?;
            }
            Ok(cur) => {
                let auto = cur
                    .value
                    .pointer("/metadata/annotations/rbac.authorization.kubernetes.io~1autoupdate")
                    .and_then(serde_json::Value::as_str)
                    == Some("true");
                let fields = ["rules", "aggregationRule", "subjects", "roleRef"];
                if auto && fields.iter().any(|f| cur.value.get(*f) != obj.get(*f)) {
                    let mut next = (*cur.value).clone();
                    for f in fields {
                        match obj.get(f) {
                            Some(v) => next[f] = v.clone(),
                            None => {
                                if let Some(m) = next.as_object_mut() {
                                    m.remove(f);
                                }
                            }
                        }
                    }
                    objects
                        .update(r, ns, name, next, None, WriteOpts::default())
                        .await?;
                }
            }
        }
    }
    Ok(())
}

/// Gives objects stored before their kind's status carried the fields Go
/// always writes those fields, as kube-apiserver's defaulting on read
/// would. Later writes keep them.
async fn complete_statuses(objects: &Objects) {
    for r in objects
        .resources()
        .all()
        .into_iter()
        .filter(|r| !kinds::of(r).status_zeros.is_empty())
    {
        let (items, _) = objects.list(r, None, &Default::default(), &Default::default());
        for stored in items {
            let mut obj = (*stored.value).clone();
            if !kinds::of(r).fill_status_zeros(&mut obj) {
                continue;
            }
            let (ns, name) = (
                shoal_machinery::meta::str_at(&obj, "/metadata/namespace")
                    .unwrap_or_default()
                    .to_string(),
                shoal_machinery::meta::name(&obj).to_string(),
            );
            let written = objects
                .update(
                    r,
                    &ns,
                    &name,
                    obj,
                    Some(resources::Sub::Status),
                    WriteOpts::default(),
                )
                .await;
            // A conflict means it was written meanwhile, with the fields.
            if let Err(e) = written {
                tracing::debug!(
                    "completing the status of {} {ns}/{name}: {}",
                    r.kind,
                    e.message
                );
            }
        }
    }
}

/// The ConfigMap extension API servers read the cluster's client CAs and
/// front-proxy headers from.
const AUTHENTICATION_CONFIG: &str = "extension-apiserver-authentication";

/// Writes `kube-system/extension-apiserver-authentication` (again when the
/// CAs changed).
async fn ensure_authentication_config(
    objects: &Objects,
    pki: &shoal_pki::Pki,
) -> Result<(), shoal_machinery::error::ApiError> {
    let cm = resources::by_kind("", "ConfigMap").expect("configmaps are served");
    let data = shoal_http::aggregator::authentication_config(pki);
    match objects.get(cm, "kube-system", AUTHENTICATION_CONFIG) {
        Ok(current) if current.value.get("data") == Some(&data) => Ok(()),
        Ok(current) => {
            let mut obj = (*current.value).clone();
            obj["data"] = data;
            objects
                .update(
                    cm,
                    "kube-system",
                    AUTHENTICATION_CONFIG,
                    obj,
                    None,
                    WriteOpts::default(),
                )
                .await
                .map(|_| ())
        }
        Err(_) => {
            let obj = json!({"metadata": {"name": AUTHENTICATION_CONFIG}, "data": data});
            objects
                .create(cm, "kube-system", obj, WriteOpts::default())
                .await
                .map(|_| ())
        }
    }
}

/// Keeps `Arc` in the public API surface small.
pub type SharedServer = Arc<Server>;

#[cfg(test)]
mod tests {
    use super::*;
    use shoal_store::{Command, Cond};

    #[test]
    fn a_node_gets_no_serving_certificate_for_the_api_or_another_node() {
        use shoal_pki::signer::Name;
        let other = json!({"metadata": {"name": "b"},
            "status": {"addresses": [{"type": "InternalIP", "address": "10.0.0.2"}]}});
        let me = json!({"metadata": {"name": "a"},
            "status": {"addresses": [{"type": "InternalIP", "address": "10.0.0.1"}]}});
        let nodes = [&other, &me];
        let server = ["10.0.0.9".to_string(), "localhost".to_string()];
        let ip = |s: &str| Name::Ip(s.parse().unwrap());
        assert!(names_free(
            "a",
            &[Name::Dns("a".into()), ip("10.0.0.1")],
            &server,
            &nodes
        ));
        assert!(!names_free("a", &[ip("10.0.0.2")], &server, &nodes));
        assert!(!names_free("a", &[Name::Dns("b".into())], &server, &nodes));
        assert!(!names_free("a", &[ip("10.0.0.9")], &server, &nodes));
        assert!(!names_free(
            "a",
            &[Name::Dns("localhost".into())],
            &server,
            &nodes
        ));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn statuses_stored_without_go_zeros_get_them_at_start() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_single(dir.path(), 1, "127.0.0.1:1")
            .await
            .unwrap();
        let ds = resources::by_kind("apps", "DaemonSet").unwrap();
        // As an older shoal stored it: no status fields at all.
        let old = json!({"apiVersion": "apps/v1", "kind": "DaemonSet",
            "metadata": {"name": "d", "namespace": "default", "uid": "u1", "generation": 1,
                "creationTimestamp": "2026-01-01T00:00:00Z"},
            "spec": {"selector": {"matchLabels": {"a": "b"}},
                "template": {"metadata": {"labels": {"a": "b"}},
                    "spec": {"containers": [{"name": "c", "image": "i"}]}}},
            "status": {}});
        store
            .write(Command::Put {
                key: ds.key("default", "d"),
                value: old,
                cond: Cond::Any,
            })
            .await
            .unwrap();
        let objects = Objects::new(store);
        complete_statuses(&objects).await;
        let now = objects.get(ds, "default", "d").unwrap().value;
        assert_eq!(
            now["status"],
            json!({"currentNumberScheduled": 0, "numberMisscheduled": 0,
                "desiredNumberScheduled": 0, "numberReady": 0})
        );
        // Nothing to do a second time.
        let rev = objects.get(ds, "default", "d").unwrap().revision;
        complete_statuses(&objects).await;
        assert_eq!(objects.get(ds, "default", "d").unwrap().revision, rev);
        objects.store().shutdown().await;
    }
}

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::json;
use shoal_cni::PodIpam;
use shoal_runtime_wasm::Runtime;

use crate::node_conditions::Transitions;
use crate::pods::PodWorker;

/// Settings of a node agent.
#[derive(Clone)]
pub struct AgentConfig {
    /// The Node's name.
    pub node_name: String,
    /// Where logs and pod state live.
    pub data_dir: PathBuf,
    /// The node's address (NodePorts and the kubelet API listen here).
    pub node_ip: IpAddr,
    /// Port of the kubelet API.
    pub kubelet_port: u16,
    /// TLS config of the kubelet API.
    pub kubelet_tls: Arc<rustls::ServerConfig>,
    /// Allocatable pods.
    pub max_pods: u32,
    /// When container logs are rotated.
    pub log_rotation: crate::logs::LogRotation,
    /// The node also runs the control plane (`shoal up`): it is labelled
    /// `node-role.kubernetes.io/control-plane`.
    pub control_plane: bool,
    /// Events sent a second, after a burst of `event_burst`.
    pub event_qps: f64,
    /// Events that may be sent at once.
    pub event_burst: u32,
    /// How long the node's Lease is valid; it is renewed every quarter.
    pub lease_duration: Duration,
    /// How pod IPs are made reachable.
    pub pod_network: crate::podnet::PodNetwork,
    /// The cluster DNS this node serves (where pod IPs are routed).
    pub dns: crate::dns::DnsConfig,
    /// Memory kept for the system and the agent: the node's allocatable
    /// memory is its capacity less this.
    pub system_reserved_memory: u64,
    /// The hard eviction thresholds (`--eviction-hard`).
    pub eviction_hard: crate::pressure::Thresholds,
    /// The pod CIDR to use when the Node object has none (`--pod-cidr`).
    pub pod_cidr: Option<shoal_cni::Ipv4Cidr>,
    /// Taints the Node is registered with (`--register-with-taints`).
    pub register_with_taints: Vec<serde_json::Value>,
    /// Labels the Node is registered with (`--node-labels`).
    pub node_labels: Vec<(String, String)>,
}

/// How long the agent waits for the control plane to assign the Node a
/// pod CIDR before it says what it waits for.
const POD_CIDR_PATIENCE: Duration = Duration::from_secs(5);

/// Pods that may be starting at once; the rest wait their turn in order.
const POD_STARTS: usize = 64;

/// Container log files the node keeps open at once.
const OPEN_LOG_FILES: usize = 1024;

/// What the agent's tasks share.
pub(crate) struct Shared {
    pub config: AgentConfig,
    pub client: kube::Client,
    pub runtime: Arc<Runtime>,
    pub ipam: Mutex<Option<PodIpam>>,
    pub pods: Mutex<HashMap<String, PodWorker>>,
    pub by_name: Mutex<HashMap<(String, String), String>>,
    pub http: crate::proxy::HttpTargets,
    /// The node's own addresses, which pods without `hostNetwork` may not
    /// connect to.
    pub node_addrs: Arc<[IpAddr]>,
    /// Woken when a pod is removed, so unused images can be collected.
    pub image_gc: tokio::sync::Notify,
    /// Pod status writes.
    pub status: Arc<crate::status::StatusManager>,
    /// The node's allocatable memory and the pods holding it.
    pub admissions: Arc<crate::admit::Admissions>,
    /// The node's Events.
    pub events: Arc<crate::events::EventRecorder>,
    /// The budget of open container log files.
    pub open_logs: Arc<crate::logs::OpenLogs>,
    /// The start queue: a permit per pod being started.
    pub starts: Arc<tokio::sync::Semaphore>,
    /// Whether pod IPs are routed (the node's CIDR is local to it): then
    /// HTTP pods listen on their IP and guests may listen on theirs.
    pub pod_ips_live: bool,
    /// Whether Services are implemented by the kernel (nftables rules the
    /// agent programs); otherwise the agent's NodePort listeners serve HTTP.
    pub kernel_services: bool,
    /// The cluster's names, where the node serves cluster DNS (pod IPs
    /// routed); guests' lookups use them.
    pub names: Option<crate::dns::Names>,
    /// Service ports that lead to the node itself, closed to guests.
    pub service_guard: Arc<crate::services::ServiceGuard>,
    /// The cluster's NetworkPolicies, with what they decide from.
    pub policies: crate::policy::Policies,
    /// Every node's pod CIDR (where pod IPs are routed): connections to
    /// them come from the pod's own address.
    pub pod_cidrs: std::sync::RwLock<Vec<shoal_cni::Ipv4Cidr>>,
    /// Running containers, for `kubectl exec`.
    pub exec: Arc<crate::exec::Targets>,
    /// The handlers of the RuntimeClasses pods name.
    pub runtime_classes: crate::runtime_class::Handlers,
    /// The samples of CPU rates in `/stats/summary`.
    pub stats: crate::stats::Sampler,
    /// Pods the node evicted, stopped until they are deleted.
    pub evicted: Mutex<std::collections::HashSet<String>>,
    /// When the agent started.
    pub started: std::time::Instant,
    /// The same, as a timestamp.
    pub started_at: String,
}

/// A running node agent.
pub struct Agent {
    tasks: Vec<tokio::task::JoinHandle<()>>,
    shared: Arc<Shared>,
    routes: Option<shoal_cni::RouteTable>,
}

/// Errors starting the agent.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The API refused a request.
    #[error("API: {0}")]
    Api(#[from] kube::Error),
    /// A local resource failed.
    #[error("{0}")]
    Local(String),
}

/// How often the image store is checked against its bound when no pod
/// goes away.
const IMAGE_GC_PERIOD: Duration = Duration::from_secs(300);

/// Keeps the image store within its bound, removing images no pod on the
/// node uses, whenever a pod is removed and every few minutes.
async fn collect_images(shared: Arc<Shared>) {
    loop {
        tokio::select! {
            () = shared.image_gc.notified() => {}
            () = tokio::time::sleep(IMAGE_GC_PERIOD) => {}
        }
        let mut in_use = crate::pods::images_in_use(&shared);
        in_use.push(crate::toolbox::IMAGE.to_string());
        let runtime = shared.runtime.clone();
        let result = tokio::task::spawn_blocking(move || {
            runtime.collect_garbage(in_use.iter().map(String::as_str))
        })
        .await;
        match result {
            Ok(Ok(r)) if !r.removed.is_empty() => tracing::info!(
                "image garbage collection: removed {} images, {} → {} bytes",
                r.removed.len(),
                r.before,
                r.after
            ),
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::warn!("image garbage collection: {e}"),
            Err(e) => tracing::warn!("image garbage collection task: {e}"),
        }
    }
}

/// Every address of the node's interfaces plus the advertised node IP.
fn node_addrs(node_ip: IpAddr) -> Arc<[IpAddr]> {
    let mut addrs: Vec<IpAddr> = if_addrs::get_if_addrs()
        .map(|list| list.into_iter().map(|i| i.ip()).collect())
        .unwrap_or_else(|e| {
            tracing::warn!("listing the node's addresses: {e}");
            Vec::new()
        });
    addrs.push(node_ip);
    addrs.sort();
    addrs.dedup();
    addrs.into()
}

fn kernel_version() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// The memory pods may have on this machine: its memory less
/// `reserved` bytes (at least a quarter of it is left to pods).
pub fn allocatable_memory(reserved: u64) -> u64 {
    let total = memory_kib().unwrap_or(1 << 20) * 1024;
    total.saturating_sub(reserved).max(total / 4)
}

/// The node's memory in KiB (`MemTotal`).
pub(crate) fn memory_kib() -> Option<u64> {
    std::fs::read_to_string("/proc/meminfo").ok().and_then(|m| {
        m.lines()
            .next()
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u64>().ok())
    })
}

fn stamp() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// The conditions a Node object carries, as JSON.
fn conditions_of(node: &Node) -> Vec<serde_json::Value> {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| serde_json::to_value(c).ok())
        .and_then(|v| match v {
            serde_json::Value::Array(a) => Some(a),
            _ => None,
        })
        .unwrap_or_default()
}

/// The node's status, its conditions' transition times from `transitions`.
fn node_status(
    config: &AgentConfig,
    transitions: &mut Transitions,
    pressure: &crate::pressure::Pressure,
) -> serde_json::Value {
    let now = stamp();
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mem_kib = memory_kib().unwrap_or(1 << 20);
    let capacity = json!({"cpu": cpus.to_string(), "memory": format!("{mem_kib}Ki"), "pods": config.max_pods.to_string()});
    let mut allocatable = capacity.clone();
    allocatable["memory"] = json!(format!(
        "{}Ki",
        allocatable_memory(config.system_reserved_memory) / 1024
    ));
    json!({
        "capacity": capacity, "allocatable": allocatable,
        "conditions": std::iter::once(json!(
            {"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "shoal node agent is posting ready status", "lastHeartbeatTime": now}))
            .chain(pressure.conditions(&now))
            .map(|c| transitions.stamp(c, &now))
            .collect::<Vec<_>>(),
        "addresses": [{"type": "InternalIP", "address": config.node_ip.to_string()}, {"type": "Hostname", "address": config.node_name}],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": config.kubelet_port}},
        "nodeInfo": {
            "machineID": "", "systemUUID": "", "bootID": "", "kernelVersion": kernel_version(),
            "osImage": "shoal", "containerRuntimeVersion": format!("shoal-wasm://{}", env!("CARGO_PKG_VERSION")),
            "kubeletVersion": "v1.32.0-shoal", "kubeProxyVersion": "v1.32.0-shoal",
            "operatingSystem": "linux", "architecture": if cfg!(target_arch = "x86_64") { "amd64" } else { std::env::consts::ARCH },
        },
    })
}

/// The node's pod CIDR: the Node object's `spec.podCIDR` (the control
/// plane's node IPAM sets it), or `flag` when the Node has none — written
/// to the Node where the API lets the node set it, so other nodes route to
/// it. Without either, waits for the control plane and says so.
async fn pod_cidr(
    nodes: &Api<Node>,
    name: &str,
    flag: Option<shoal_cni::Ipv4Cidr>,
) -> Result<shoal_cni::Ipv4Cidr, AgentError> {
    let began = tokio::time::Instant::now();
    let mut said = false;
    loop {
        let n = nodes.get(name).await?;
        if let Some(c) = n.spec.and_then(|s| s.pod_cidr) {
            return c.parse().map_err(|e: shoal_cni::Error| {
                AgentError::Local(format!("the Node's spec.podCIDR {c:?}: {e}"))
            });
        }
        if let Some(c) = flag {
            let patch = json!({"spec": {"podCIDR": c.to_string(), "podCIDRs": [c.to_string()]}});
            if let Err(e) = nodes
                .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                tracing::info!(
                    "pod CIDR {c} from --pod-cidr, not written to Node {name} ({e}); other nodes will not route to it"
                );
            }
            return Ok(c);
        }
        if !said && began.elapsed() >= POD_CIDR_PATIENCE {
            said = true;
            tracing::warn!(
                "waiting for Node {name} to be given spec.podCIDR: the control plane assigns it \
                 (shoal's does; kube-controller-manager with --allocate-node-cidrs), or pass --pod-cidr"
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

impl Agent {
    /// Registers the node and starts the agent's loops.
    pub async fn start(
        mut config: AgentConfig,
        client: kube::Client,
        runtime: Arc<Runtime>,
    ) -> Result<Self, AgentError> {
        let nodes: Api<Node> = Api::all(client.clone());
        let name = config.node_name.clone();
        let existing = nodes.get_opt(&name).await?;
        // A node that was Ready stays Ready since then across a restart.
        let mut transitions =
            Transitions::of(&existing.as_ref().map(conditions_of).unwrap_or_default());
        if existing.is_none() {
            let mut labels = json!({
                "kubernetes.io/hostname": name, "kubernetes.io/os": "linux",
                "kubernetes.io/arch": if cfg!(target_arch = "x86_64") { "amd64" } else { std::env::consts::ARCH },
            });
            if config.control_plane {
                labels["node-role.kubernetes.io/control-plane"] = json!("");
            }
            for (k, v) in &config.node_labels {
                labels[k] = json!(v);
            }
            let mut spec = json!({});
            if !config.register_with_taints.is_empty() {
                spec["taints"] = json!(config.register_with_taints);
            }
            let node: Node = serde_json::from_value(
                json!({"metadata": {"name": name, "labels": labels}, "spec": spec}),
            )
            .map_err(|e| AgentError::Local(e.to_string()))?;
            nodes.create(&PostParams::default(), &node).await?;
        }
        nodes
            .patch_status(
                &name,
                &PatchParams::default(),
                &Patch::Merge(
                    json!({"status": node_status(&config, &mut transitions, &Default::default())}),
                ),
            )
            .await?;
        let cidr = pod_cidr(&nodes, &name, config.pod_cidr).await?;
        let dns_route = shoal_cni::Ipv4Cidr::new(config.dns.address, 32)
            .map_err(|e| AgentError::Local(e.to_string()))?;
        let routes = crate::podnet::open(config.pod_network, cidr, &[dns_route]).await;
        let kernel_services = match &routes {
            Some(_) => match crate::services::available(cidr, config.dns.address).await {
                Ok(()) => true,
                Err(e) => {
                    tracing::warn!(
                        "Services by nftables unavailable ({e}); NodePorts are served for HTTP pods of this node only"
                    );
                    false
                }
            },
            None => false,
        };
        let mut ipam = PodIpam::new(cidr);
        // The node cannot hold more pods than its CIDR has addresses.
        let addresses = u32::try_from(cidr.size().saturating_sub(3)).unwrap_or(u32::MAX);
        if addresses < config.max_pods {
            config.max_pods = addresses;
            nodes
                .patch_status(
                    &name,
                    &PatchParams::default(),
                    &Patch::Merge(
                        json!({"status": node_status(&config, &mut transitions, &Default::default())}),
                    ),
                )
                .await?;
        }
        let pods: Api<Pod> = Api::all(client.clone());
        let mine = pods
            .list(&ListParams::default().fields(&format!("spec.nodeName={name}")))
            .await?;
        for p in &mine.items {
            if let Some(ip) = p
                .status
                .as_ref()
                .and_then(|s| s.pod_ip.as_ref())
                .and_then(|ip| ip.parse().ok())
            {
                ipam.reserve(ip);
            }
        }
        let shared = Arc::new(Shared {
            config: config.clone(),
            client: client.clone(),
            runtime,
            ipam: Mutex::new(Some(ipam)),
            pods: Mutex::new(HashMap::new()),
            by_name: Mutex::new(HashMap::new()),
            http: crate::proxy::HttpTargets::default(),
            node_addrs: node_addrs(config.node_ip),
            image_gc: tokio::sync::Notify::new(),
            status: crate::status::StatusManager::new(),
            admissions: crate::admit::Admissions::new(allocatable_memory(
                config.system_reserved_memory,
            )),
            events: crate::events::EventRecorder::new(&config.node_name),
            open_logs: crate::logs::OpenLogs::new(OPEN_LOG_FILES),
            starts: Arc::new(tokio::sync::Semaphore::new(POD_STARTS)),
            pod_ips_live: routes.is_some(),
            kernel_services,
            names: routes
                .is_some()
                .then(|| crate::dns::Names::new(&config.dns.domain)),
            service_guard: Arc::default(),
            policies: crate::policy::Policies::default(),
            pod_cidrs: std::sync::RwLock::new(vec![cidr]),
            exec: Arc::default(),
            runtime_classes: Default::default(),
            stats: crate::stats::Sampler::default(),
            evicted: Mutex::default(),
            started: std::time::Instant::now(),
            started_at: crate::containers::now(),
        });
        if let Err(e) = crate::toolbox::install(&shared.runtime) {
            tracing::warn!("{e}");
        }
        let listen = SocketAddr::new(config.node_ip, config.kubelet_port);
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .map_err(|e| AgentError::Local(format!("kubelet API on {listen}: {e}")))?;
        let mut tasks = shared.status.start(client.clone());
        tasks.extend(
            shared
                .events
                .start(client.clone(), config.event_qps, config.event_burst),
        );
        tasks.extend([
            tokio::spawn(heartbeat(shared.clone())),
            tokio::spawn(watch_pods(shared.clone())),
            tokio::spawn(crate::kubelet_api::serve(shared.clone(), listener)),
            tokio::spawn(crate::proxy::run(shared.clone())),
            tokio::spawn(collect_images(shared.clone())),
            tokio::spawn(crate::policy::run(shared.clone())),
        ]);
        if let Some(table) = &routes {
            tasks.push(tokio::spawn(crate::podnet::run(
                shared.clone(),
                cidr,
                vec![dns_route],
                table.clone(),
            )));
        }
        if kernel_services {
            tasks.push(tokio::spawn(crate::services::run(
                shared.clone(),
                cidr,
                config.dns.address,
            )));
        }
        if let Some(names) = &shared.names {
            tasks.push(tokio::spawn(crate::dns::run(
                shared.clone(),
                names.clone(),
                config.dns.clone(),
            )));
        }
        Ok(Self {
            tasks,
            shared,
            routes,
        })
    }

    /// Stops the agent's loops and every pod instance on this node.
    pub async fn shutdown(self) {
        for t in &self.tasks {
            t.abort();
        }
        let workers: Vec<_> = self
            .shared
            .pods
            .lock()
            .expect("pods lock")
            .drain()
            .map(|(_, w)| w)
            .collect();
        for w in workers {
            w.abort();
        }
        if self.shared.kernel_services {
            crate::services::remove().await;
        }
        if let Some(table) = &self.routes {
            crate::podnet::close(table).await;
        }
    }
}

/// How often the node posts its status when nothing changed (the
/// kubelet's `nodeStatusReportFrequency`); its Lease says it is alive.
const STATUS_REPORT: Duration = Duration::from_secs(300);

/// Renews the node's Lease every quarter of its duration, and posts the
/// node's status every [`STATUS_REPORT`] or at once when the API does not
/// have it Ready (the control plane marked it unreachable while it was
/// silent).
async fn heartbeat(shared: Arc<Shared>) {
    let name = shared.config.node_name.clone();
    let nodes: Api<Node> = Api::all(shared.client.clone());
    let leases: Api<Lease> = Api::namespaced(shared.client.clone(), "kube-node-lease");
    let duration = shared.config.lease_duration;
    let renew = (duration / 4).clamp(Duration::from_millis(200), Duration::from_secs(10));
    let seconds = duration.as_secs().max(1);
    let mut transitions = Transitions::default();
    let mut posted: Option<std::time::Instant> = None;
    let mut warned = false;
    let mut last_pressure = crate::pressure::Pressure::default();
    loop {
        let now = jiff::Timestamp::now()
            .strftime("%Y-%m-%dT%H:%M:%S.%6fZ")
            .to_string();
        let lease = json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": name},
            "spec": {"holderIdentity": name, "leaseDurationSeconds": seconds, "renewTime": now}});
        let pp = PatchParams::default();
        if leases.get_opt(&name).await.ok().flatten().is_none() {
            if let Ok(l) = serde_json::from_value::<Lease>(lease.clone()) {
                let _ = leases.create(&PostParams::default(), &l).await;
            }
        } else if let Err(e) = leases.patch(&name, &pp, &Patch::Merge(&lease)).await {
            tracing::warn!("renewing node lease: {e}");
        }
        let ready = match nodes.get_opt(&name).await {
            Ok(Some(n)) => {
                // The registration's times, then what others changed.
                let conditions = conditions_of(&n);
                transitions.observe(&conditions);
                let shown = conditions
                    .iter()
                    .any(|c| c["type"] == "Ready" && c["status"] == "True");
                if !shown && posted.is_some() && !warned {
                    warned = true;
                    tracing::warn!(
                        "the API server does not show node {name} Ready after its status was posted; posting it every pass"
                    );
                }
                Some(shown)
            }
            _ => None,
        };
        // Pressure, measured every pass: a change is posted at once, and
        // under memory or disk pressure a pod is evicted.
        let running = shared.pods.lock().expect("pods lock").len() as u64;
        let observed = crate::pressure::measure(
            &shared.config.data_dir,
            running,
            u64::from(shared.config.max_pods),
        );
        let pressure = crate::pressure::decide(&shared.config.eviction_hard, &observed);
        if let Some(why) = pressure.eviction() {
            crate::pods::evict_one(&shared, why);
        }
        let due = posted.is_none_or(|t| t.elapsed() >= STATUS_REPORT) || pressure != last_pressure;
        if ready == Some(false) || (ready.is_some() && due) {
            let status = node_status(&shared.config, &mut transitions, &pressure);
            match nodes
                .patch_status(&name, &pp, &Patch::Merge(json!({ "status": status })))
                .await
            {
                Ok(_) => {
                    posted = Some(std::time::Instant::now());
                    last_pressure = pressure;
                }
                Err(e) => tracing::warn!("posting node status: {e}"),
            }
        }
        tokio::time::sleep(renew).await;
    }
}

async fn watch_pods(shared: Arc<Shared>) {
    let pods: Api<Pod> = Api::all(shared.client.clone());
    let cfg =
        watcher::Config::default().fields(&format!("spec.nodeName={}", shared.config.node_name));
    // A failed watch is retried after an exponential back-off.
    let mut stream = watcher(pods, cfg).default_backoff().boxed();
    while let Some(ev) = stream.next().await {
        match ev {
            Ok(watcher::Event::Apply(p)) | Ok(watcher::Event::InitApply(p)) => {
                crate::pods::observe(&shared, p)
            }
            Ok(watcher::Event::Delete(p)) => crate::pods::forget(&shared, &p),
            Ok(_) => {}
            Err(e) => tracing::warn!("watching pods: {e}"),
        }
    }
}

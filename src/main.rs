//! The `shoal` command: one binary for the control plane, the node agent and
//! the tools around them.

mod control_plane;
mod flags;
mod logging;
mod node_setup;
mod store_admin;
mod token;

use flags::{parse_bytes, parse_duration, parse_label, parse_taint};

/// jemalloc instead of glibc's allocator: after 2,000 pods were created and
/// deleted, glibc kept 540 MB resident for 205 MB in use (and mimalloc
/// about as much); jemalloc returns its dirty pages to the kernel within
/// seconds and kept 210 MB.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use shoal_apiserver::server::Membership;

/// A Kubernetes-compatible cluster whose pods are WebAssembly modules.
#[derive(Parser)]
#[command(name = "shoal", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    #[command(flatten)]
    log: LogArgs,
}

/// Where shoal's own log goes.
#[derive(Args, Clone)]
struct LogArgs {
    /// Write shoal's log to this file, rotated by size, instead of stderr.
    #[arg(long, env = "SHOAL_LOG_FILE", global = true)]
    log_file: Option<PathBuf>,
    /// Size at which the log file is rotated (a quantity: 100Mi).
    #[arg(long, env = "SHOAL_LOG_FILE_MAX_SIZE", default_value = "100Mi", value_parser = parse_bytes, global = true)]
    log_file_max_size: u64,
    /// Log files kept, the current one included.
    #[arg(long, env = "SHOAL_LOG_FILE_MAX_FILES", default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..), global = true)]
    log_file_max_files: u32,
}

#[derive(Subcommand)]
enum Command {
    /// Start a single-node cluster (control plane and node) in the foreground.
    Up(UpArgs),
    /// Start a server of a cluster of several (control plane and node):
    /// the first with `--cluster-init`, the others with `--join` and a
    /// server token; any of them answers the API.
    Server(ServerArgs),
    /// Run a node agent that joins a cluster through its API.
    Agent(AgentArgs),
    /// Write the credentials a new node joins this cluster with, for a
    /// node that cannot reach the API to ask for them (see `shoal token`).
    NodeConfig(NodeConfigArgs),
    /// Manage the bootstrap tokens nodes join with (`shoal agent --token`).
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// List the members of the servers' replicated store, or remove one
    /// (a dead server, before another takes its place).
    Member {
        #[command(subcommand)]
        command: MemberCommand,
    },
    /// Back up the cluster (`save`, from any server) or restore a backup
    /// into a data directory (`restore`, its server stopped).
    Snapshot {
        #[command(subcommand)]
        command: SnapshotCommand,
    },
    /// Set this machine's containerd up to run Wasm containers with
    /// shoal's runtime (`containerd-shim-shoal-v1`).
    Node {
        #[command(subcommand)]
        command: NodeCommand,
    },
    /// Manage the node's local image store.
    Images {
        #[command(subcommand)]
        command: ImagesCommand,
    },
    /// Print the version.
    Version,
}

#[derive(Args, Clone)]
struct UpArgs {
    /// Where the store, certificates, images and logs live.
    #[arg(long, env = "SHOAL_DATA_DIR", default_value = "/var/lib/shoal")]
    data_dir: PathBuf,
    /// Where to write the administrator's kubeconfig (default: DATA_DIR/kubeconfig).
    #[arg(long, env = "SHOAL_KUBECONFIG")]
    kubeconfig: Option<PathBuf>,
    /// Port of the Kubernetes API.
    #[arg(long, env = "SHOAL_API_PORT", default_value_t = 6443)]
    api_port: u16,
    /// Address the API listens on.
    #[arg(long, env = "SHOAL_BIND_ADDRESS", default_value = "127.0.0.1")]
    bind_address: IpAddr,
    /// More names or addresses the API's certificate holds, as k3s's
    /// `--tls-san`: a load balancer's or a DNS name in front of several
    /// servers (repeat or separate with commas).
    #[arg(long, env = "SHOAL_TLS_SAN", value_delimiter = ',')]
    tls_san: Vec<String>,
    /// Range the nodes' pod CIDRs are cut from.
    #[arg(long, env = "SHOAL_CLUSTER_CIDR", default_value = "10.244.0.0/14")]
    cluster_cidr: String,
    /// Prefix length of each node's pod CIDR (/18: 16,382 pods per node).
    #[arg(long, env = "SHOAL_NODE_CIDR_MASK_SIZE", default_value_t = 18, value_parser = clap::value_parser!(u8).range(8..=30))]
    node_cidr_mask_size: u8,
    /// Whether the control plane gives each Node a pod CIDR from
    /// `--cluster-cidr` (false: nodes bring their own, `--pod-cidr`).
    #[arg(long, env = "SHOAL_ALLOCATE_NODE_CIDRS", default_value_t = true, action = clap::ArgAction::Set)]
    allocate_node_cidrs: bool,
    /// How long an Event is kept after it was last written (a duration: 1h).
    #[arg(long, env = "SHOAL_EVENT_TTL", default_value = "1h", value_parser = parse_duration)]
    event_ttl: std::time::Duration,
    /// How long a node's agent may stay silent (no Lease renewal, no
    /// status) before the node is marked unreachable and its pods not Ready.
    #[arg(long, env = "SHOAL_NODE_MONITOR_GRACE_PERIOD", default_value = "40s", value_parser = parse_duration)]
    node_monitor_grace_period: std::time::Duration,
    /// How long a new pod tolerates its node being not ready before it is
    /// evicted, in seconds, unless the pod says otherwise.
    #[arg(
        long,
        env = "SHOAL_DEFAULT_NOT_READY_TOLERATION_SECONDS",
        default_value_t = 300
    )]
    default_not_ready_toleration_seconds: u64,
    /// How long a new pod tolerates its node being unreachable before it is
    /// evicted, in seconds, unless the pod says otherwise.
    #[arg(
        long,
        env = "SHOAL_DEFAULT_UNREACHABLE_TOLERATION_SECONDS",
        default_value_t = 300
    )]
    default_unreachable_toleration_seconds: u64,
    /// How requests are authorized: `RBAC` (roles and bindings decide) or
    /// `AlwaysAllow` (every authenticated client may do everything).
    #[arg(
        long,
        env = "SHOAL_AUTHORIZATION_MODE",
        value_enum,
        default_value = "RBAC"
    )]
    authorization_mode: AuthorizationMode,
    /// Where to write the audit log (JSON lines, one audit.k8s.io Event a
    /// request); none is kept without it.
    #[arg(long, env = "SHOAL_AUDIT_LOG_PATH")]
    audit_log_path: Option<PathBuf>,
    /// Which requests the audit log records: an audit.k8s.io/v1 Policy
    /// (default: every request, at the Metadata level).
    #[arg(long, env = "SHOAL_AUDIT_POLICY_FILE")]
    audit_policy_file: Option<PathBuf>,
    /// Size at which the audit log is rotated (one earlier file is kept).
    #[arg(long, env = "SHOAL_AUDIT_LOG_MAXSIZE", default_value = "100Mi", value_parser = parse_bytes)]
    audit_log_maxsize: u64,
    /// How data is encrypted at rest: an apiserver.config.k8s.io/v1
    /// EncryptionConfiguration (`aesgcm`, `secretbox` and `identity`
    /// providers; the first writes, all read). Without it Secrets are
    /// sealed with a key made at first start (DATA_DIR/pki/encryption.key).
    #[arg(long, env = "SHOAL_ENCRYPTION_PROVIDER_CONFIG")]
    encryption_provider_config: Option<PathBuf>,
    #[command(flatten)]
    node: NodeArgs,
}

/// A server among others, as `shoal up` with a store replicated among
/// the servers.
#[derive(Args, Clone)]
struct ServerArgs {
    /// Start a new cluster others join (the first server). Not needed on a
    /// restart.
    #[arg(long, env = "SHOAL_CLUSTER_INIT", conflicts_with = "join")]
    cluster_init: bool,
    /// The API URL of a server of the cluster to join.
    #[arg(long, env = "SHOAL_JOIN", requires = "token")]
    join: Option<String>,
    /// A server token (the first server's `DATA_DIR/token`, or `shoal
    /// token create --server`); needed at the first start only.
    #[arg(long, env = "SHOAL_TOKEN", hide_env_values = true)]
    token: Option<String>,
    #[command(flatten)]
    up: UpArgs,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum AuthorizationMode {
    #[value(name = "RBAC")]
    Rbac,
    #[value(name = "AlwaysAllow")]
    AlwaysAllow,
}

/// Settings of a node agent, in `shoal up` and `shoal agent` alike.
#[derive(Args, Clone)]
struct NodeArgs {
    /// The node's address: NodePorts and the kubelet API listen here.
    #[arg(long, env = "SHOAL_NODE_IP", default_value = "127.0.0.1")]
    node_ip: IpAddr,
    /// Port of the node's kubelet API.
    #[arg(long, env = "SHOAL_KUBELET_PORT", default_value_t = 10250)]
    kubelet_port: u16,
    /// Name of the node.
    #[arg(long, env = "SHOAL_NODE_NAME", default_value = "shoal")]
    node_name: String,
    /// Pods the node accepts (at most as many as its pod CIDR has addresses).
    #[arg(long, env = "SHOAL_MAX_PODS", default_value_t = 12_000)]
    max_pods: u32,
    /// Requests a second the node sends to the API, after a burst (0: no limit).
    #[arg(long, env = "SHOAL_KUBE_API_QPS", default_value_t = 2000.0)]
    kube_api_qps: f64,
    /// Requests the node may send to the API at once.
    #[arg(long, env = "SHOAL_KUBE_API_BURST", default_value_t = 4000)]
    kube_api_burst: u32,
    /// Events a second the node records, after a burst; more are dropped
    /// when its queue is full (0: no limit).
    #[arg(long, env = "SHOAL_EVENT_QPS", default_value_t = 50.0)]
    event_qps: f64,
    /// Events the node may record at once.
    #[arg(long, env = "SHOAL_EVENT_BURST", default_value_t = 100)]
    event_burst: u32,
    /// How long the node's Lease is valid (a duration); the agent renews
    /// it every quarter of that.
    #[arg(long, env = "SHOAL_NODE_LEASE_DURATION", default_value = "40s", value_parser = parse_duration)]
    node_lease_duration: std::time::Duration,
    /// How pod IPs are made reachable: `host-gw` routes the node's pod CIDR
    /// to itself and other nodes' through their addresses (nodes on one
    /// link; needs CAP_NET_ADMIN); `none` leaves pod IPs as labels.
    #[arg(long, env = "SHOAL_POD_NETWORK", value_enum, default_value = "host-gw")]
    pod_network: PodNetworkArg,
    /// Address of the cluster DNS: each node serves it (where pod IPs are
    /// routed), and it is the `kube-dns` Service's ClusterIP.
    #[arg(long, env = "SHOAL_CLUSTER_DNS", default_value = "10.96.0.10")]
    cluster_dns: std::net::Ipv4Addr,
    /// The cluster's DNS domain.
    #[arg(long, env = "SHOAL_CLUSTER_DOMAIN", default_value = "cluster.local")]
    cluster_domain: String,
    /// Size at which a container's log file is rotated (a quantity: 10Mi).
    #[arg(long, env = "SHOAL_CONTAINER_LOG_MAX_SIZE", default_value = "10Mi", value_parser = parse_bytes)]
    container_log_max_size: u64,
    /// Log files kept per container, the current one included.
    #[arg(long, env = "SHOAL_CONTAINER_LOG_MAX_FILES", default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..))]
    container_log_max_files: u32,
    /// Bytes of images and compiled artifacts the node keeps before it
    /// removes the images no pod uses (a quantity: 10Gi).
    #[arg(long, env = "SHOAL_IMAGE_CACHE_MAX_SIZE", default_value = "10Gi", value_parser = parse_bytes)]
    image_cache_max_size: u64,
    /// How long a newly stored or last used image is exempt from garbage
    /// collection (a duration: 90s, 2m, 1h).
    #[arg(long, env = "SHOAL_MINIMUM_IMAGE_TTL_DURATION", default_value = "2m", value_parser = parse_duration)]
    minimum_image_ttl_duration: std::time::Duration,
    /// The memory limit of a container whose pod sets none (a quantity).
    #[arg(long, env = "SHOAL_DEFAULT_MEMORY_LIMIT", default_value = "512Mi", value_parser = parse_bytes)]
    default_memory_limit: u64,
    /// Memory kept for the system and the agent: pods together may use
    /// the node's memory less this (its allocatable memory), and the node
    /// refuses pods whose requests do not fit in it.
    #[arg(long, env = "SHOAL_SYSTEM_RESERVED_MEMORY", default_value = "512Mi", value_parser = parse_bytes)]
    system_reserved_memory: u64,
    /// Hard eviction thresholds, as the kubelet's: `signal<quantity` or
    /// `signal<N%`, comma-separated (memory.available, nodefs.available,
    /// nodefs.inodesFree, pid.available). Under one, the node reports
    /// pressure and evicts pods.
    #[arg(long, env = "SHOAL_EVICTION_HARD", default_value = shoal_node::pressure::Thresholds::DEFAULT, value_parser = shoal_node::pressure::Thresholds::parse)]
    eviction_hard: shoal_node::pressure::Thresholds,
    /// The node's pod CIDR when the control plane assigns none (one
    /// without node IPAM); the Node's `spec.podCIDR` wins when it has one.
    #[arg(long, env = "SHOAL_POD_CIDR")]
    pod_cidr: Option<shoal_node::Ipv4Cidr>,
    /// Taints the node registers with, as the kubelet's:
    /// `key[=value]:Effect`, comma-separated (e.g.
    /// `shoal.dev/wasm=true:NoSchedule`, so only pods that tolerate it
    /// land on the node).
    #[arg(long, env = "SHOAL_REGISTER_WITH_TAINTS", value_delimiter = ',', value_parser = parse_taint)]
    register_with_taints: Vec<serde_json::Value>,
    /// Labels the node registers with, as the kubelet's: `key=value`,
    /// comma-separated (e.g. `shoal.dev/runtime=wasm`, for a
    /// RuntimeClass's `scheduling.nodeSelector`).
    #[arg(long, env = "SHOAL_NODE_LABELS", value_delimiter = ',', value_parser = parse_label)]
    node_labels: Vec<(String, String)>,
}

/// A node agent joining a cluster through its API, as a kubelet does:
/// with `--server` and a bootstrap `--token` (its certificates are then
/// asked for, kept and renewed), or with the files `shoal node-config`
/// wrote.
#[derive(Args, Clone)]
struct AgentArgs {
    /// Where the node's images, compiled artifacts, pod state and logs live.
    #[arg(long, env = "SHOAL_DATA_DIR", default_value = "/var/lib/shoal")]
    data_dir: PathBuf,
    /// The API server's URL, to join with a bootstrap token; several,
    /// comma-separated, for a cluster of several servers (the agent also
    /// learns them from the `kubernetes` Service and moves to one that
    /// answers when its own does not).
    #[arg(long, env = "SHOAL_SERVER", conflicts_with_all = ["kubeconfig", "tls_cert_file", "tls_private_key_file", "client_ca_file"])]
    server: Option<String>,
    /// A bootstrap token (`shoal token create`); needed at the first join
    /// and whenever the node's kept client certificate has expired.
    #[arg(long, env = "SHOAL_TOKEN", requires = "server", hide_env_values = true)]
    token: Option<String>,
    /// The node's credentials for the API (see `shoal node-config`).
    #[arg(long, env = "SHOAL_KUBECONFIG", required_unless_present = "server")]
    kubeconfig: Option<PathBuf>,
    /// Serving certificate of the kubelet API (PEM).
    #[arg(long, required_unless_present = "server")]
    tls_cert_file: Option<PathBuf>,
    /// Private key of the serving certificate (PEM).
    #[arg(long, required_unless_present = "server")]
    tls_private_key_file: Option<PathBuf>,
    /// CA that signs the certificates clients of the kubelet API present
    /// (the API server's, for logs).
    #[arg(long, required_unless_present = "server")]
    client_ca_file: Option<PathBuf>,
    #[command(flatten)]
    node: NodeArgs,
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Make a token and print it.
    Create {
        /// How long the token is valid (0: until deleted).
        #[arg(long, default_value = "24h", value_parser = parse_duration)]
        ttl: std::time::Duration,
        /// What the token is for.
        #[arg(long, default_value = "")]
        description: String,
        /// A token for a server to join with (`shoal server --join`),
        /// which receives the cluster's keys, instead of a node's.
        #[arg(long)]
        server: bool,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// List the tokens.
    List {
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Delete a token (by its ID or the whole token): no node joins with it
    /// any more; nodes that joined keep their certificates.
    Delete {
        /// The token or its ID.
        token: String,
        #[command(flatten)]
        api: ApiArgs,
    },
}

#[derive(Subcommand)]
enum MemberCommand {
    /// List the members: id, address, and whether each leads, votes or is
    /// still catching up (a learner).
    List {
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Remove a member by its id (see `list`); the last voter stays.
    Remove {
        /// The member's id.
        id: u64,
        #[command(flatten)]
        api: ApiArgs,
    },
}

#[derive(Subcommand)]
enum SnapshotCommand {
    /// Write a backup: every object at one revision, and the keys every
    /// server shares (the file is as secret as a server's data directory).
    Save {
        /// Where to write it.
        file: PathBuf,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Restore a backup into a data directory (empty, or a stopped server
    /// of the same cluster): its server then starts a new cluster with the
    /// backup's objects.
    Restore {
        /// The backup.
        file: PathBuf,
        /// The data directory to restore into.
        #[arg(long, env = "SHOAL_DATA_DIR", default_value = "/var/lib/shoal")]
        data_dir: PathBuf,
        /// The server's EncryptionConfiguration, if it runs with one.
        #[arg(long, env = "SHOAL_ENCRYPTION_PROVIDER_CONFIG")]
        encryption_provider_config: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum NodeCommand {
    /// Install the shim where containerd finds it, add the runtime to
    /// containerd's CRI plugin, and print the RuntimeClass for it.
    Setup {
        /// containerd's configuration file.
        #[arg(long, default_value = "/etc/containerd/config.toml")]
        containerd_config: PathBuf,
        /// A directory on containerd's `PATH` for the shim binary.
        #[arg(long, default_value = "/usr/local/bin")]
        bin_dir: PathBuf,
        /// The runtime handler's name (the RuntimeClass's `handler`).
        #[arg(long, default_value = "shoal")]
        handler: String,
        /// Print what would change and change nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

/// How a command reaches the API.
#[derive(Args, Clone)]
struct ApiArgs {
    /// An administrator's kubeconfig.
    #[arg(long, env = "KUBECONFIG", default_value = "/var/lib/shoal/kubeconfig")]
    kubeconfig: PathBuf,
}

/// Issues the files a node agent joins the cluster with.
#[derive(Args, Clone)]
struct NodeConfigArgs {
    /// The control plane's data directory (its CA signs the credentials).
    #[arg(long, env = "SHOAL_DATA_DIR", default_value = "/var/lib/shoal")]
    data_dir: PathBuf,
    /// Name of the new node.
    #[arg(long)]
    node_name: String,
    /// Address of the new node (its kubelet API certificate names it).
    #[arg(long)]
    node_ip: IpAddr,
    /// The API's URL as the node reaches it.
    #[arg(long, default_value = "https://127.0.0.1:6443")]
    server: String,
    /// Directory to write kubeconfig, kubelet.crt, kubelet.key and ca.crt to.
    #[arg(long)]
    out: PathBuf,
}

/// `--pod-network` values.
#[derive(Clone, Copy, clap::ValueEnum)]
enum PodNetworkArg {
    HostGw,
    None,
}

impl From<PodNetworkArg> for shoal_node::PodNetwork {
    fn from(a: PodNetworkArg) -> Self {
        match a {
            PodNetworkArg::HostGw => shoal_node::PodNetwork::HostGw,
            PodNetworkArg::None => shoal_node::PodNetwork::None,
        }
    }
}

#[derive(Subcommand)]
enum ImagesCommand {
    /// Put a Wasm module into the local image store under NAME:TAG.
    Import {
        /// The node's data directory.
        #[arg(long, env = "SHOAL_DATA_DIR", default_value = "/var/lib/shoal")]
        data_dir: PathBuf,
        /// The .wasm file.
        file: PathBuf,
        /// The image reference pods use, e.g. `hello-http:v1`.
        name: String,
    },
    /// List the images in the local image store.
    List {
        /// The node's data directory.
        #[arg(long, env = "SHOAL_DATA_DIR", default_value = "/var/lib/shoal")]
        data_dir: PathBuf,
    },
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    logging::init(logging::LogConfig {
        file: cli.log.log_file.clone(),
        rotation: shoal_node::logs::LogRotation {
            max_bytes: cli.log.log_file_max_size,
            max_files: cli.log.log_file_max_files,
        },
        burst: 10,
        window: std::time::Duration::from_secs(10),
    })
    .context("opening the log file")?;
    let open_files = raise_open_files_limit();
    // Connections may take what the store, pods and outgoing connections
    // leave: a quarter of the descriptors, at least 64, stays for them.
    shoal_listen::set_budget(open_files.saturating_sub((open_files / 4).max(64)) as usize);
    match cli.command {
        Command::Up(args) => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?
            .block_on(control_plane::up(args, Membership::Alone)),
        Command::Server(args) => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?
            .block_on(control_plane::server(args)),
        Command::Agent(args) => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?
            .block_on(agent(args)),
        Command::NodeConfig(args) => node_config(&args),
        Command::Token { command } => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
            .block_on(async move {
                let _ = rustls::crypto::ring::default_provider().install_default();
                match command {
                    TokenCommand::Create {
                        ttl,
                        description,
                        server,
                        api,
                    } => {
                        println!(
                            "{}",
                            token::create(&api.kubeconfig, ttl, &description, server).await?
                        );
                        Ok(())
                    }
                    TokenCommand::List { api } => token::list(&api.kubeconfig).await,
                    TokenCommand::Delete { token, api } => {
                        token::delete(&api.kubeconfig, &token).await
                    }
                }
            }),
        Command::Member { command } => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
            .block_on(async move {
                let _ = rustls::crypto::ring::default_provider().install_default();
                match command {
                    MemberCommand::List { api } => store_admin::list(&api.kubeconfig).await,
                    MemberCommand::Remove { id, api } => {
                        store_admin::remove(&api.kubeconfig, id).await
                    }
                }
            }),
        Command::Snapshot {
            command: SnapshotCommand::Save { file, api },
        } => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
            .block_on(async move {
                let _ = rustls::crypto::ring::default_provider().install_default();
                store_admin::save(&api.kubeconfig, &file).await
            }),
        Command::Snapshot {
            command:
                SnapshotCommand::Restore {
                    file,
                    data_dir,
                    encryption_provider_config,
                },
        } => store_admin::restore(&file, &data_dir, encryption_provider_config.as_deref()),
        Command::Images {
            command:
                ImagesCommand::Import {
                    data_dir,
                    file,
                    name,
                },
        } => import(&data_dir, &file, &name),
        Command::Images {
            command: ImagesCommand::List { data_dir },
        } => {
            let store = shoal_runtime_wasm::ImageStore::new(data_dir.join("images"));
            for (name, digest) in store.list()? {
                println!("{name}\t{digest}");
            }
            Ok(())
        }
        Command::Node {
            command:
                NodeCommand::Setup {
                    containerd_config,
                    bin_dir,
                    handler,
                    dry_run,
                },
        } => node_setup::setup(&node_setup::Setup {
            containerd_config,
            bin_dir,
            handler,
            dry_run,
        }),
        Command::Version => {
            println!(
                "shoal {} (Kubernetes API {})",
                env!("CARGO_PKG_VERSION"),
                shoal_apiserver::KUBE_VERSION
            );
            Ok(())
        }
    }
}

/// Raises the soft limit of open files to the hard one, as Go programs do
/// at start: the default soft limit (1,024) is far below what a node with
/// thousands of pods and connections needs, and the hard limit is what the
/// administrator allows. Returns the limit in force.
fn raise_open_files_limit() -> u64 {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    let Some(soft) = limit.current else {
        return 1 << 20;
    };
    // An unlimited hard limit still stops at the kernel's `nr_open`.
    let hard = limit.maximum.unwrap_or_else(|| {
        std::fs::read_to_string("/proc/sys/fs/nr_open")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(1 << 20)
    });
    if hard <= soft {
        return soft;
    }
    match setrlimit(
        Resource::Nofile,
        Rlimit {
            current: Some(hard),
            maximum: limit.maximum,
        },
    ) {
        Ok(()) => {
            tracing::debug!("open files limit raised from {soft} to {hard}");
            hard
        }
        Err(e) => {
            tracing::warn!("raising the open files limit from {soft} to {hard}: {e}");
            soft
        }
    }
}

/// Creates the data directory, readable by its owner only: it holds the
/// cluster's keys and every pod's files.
fn private_dir(dir: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .with_context(|| format!("making {} private", dir.display()))
}

fn import(data_dir: &Path, file: &Path, name: &str) -> Result<()> {
    let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    if !bytes.starts_with(b"\0asm") {
        eprintln!(
            "warning: {} does not start with the WebAssembly magic number; pods using it will fail to start",
            file.display()
        );
    }
    let store = shoal_runtime_wasm::ImageStore::new(data_dir.join("images"));
    let digest = store.import(name, &bytes)?;
    println!("imported {} as {name} ({digest})", file.display());
    Ok(())
}

async fn agent(args: AgentArgs) -> Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    private_dir(&args.data_dir)?;
    let (client, kubelet_tls, renewal) = match &args.server {
        Some(server) => {
            let given: Vec<String> = server
                .split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect();
            let relay = shoal_node::servers::Balancer::start(&given)
                .await
                .context("starting the API relay")?;
            let joined = shoal_node::bootstrap::join(shoal_node::bootstrap::JoinConfig {
                server: relay.url(),
                token: args.token.clone(),
                node_name: args.node.node_name.clone(),
                addresses: vec![args.node.node_ip],
                dir: args.data_dir.join("credentials"),
                limits: limits(&args.node),
            })
            .await
            .with_context(|| format!("joining the cluster at {server}"))?;
            let renewal = joined.renew();
            let following = relay.follow(joined.client.clone());
            (
                joined.client,
                joined.kubelet_tls,
                Some((renewal, following, relay)),
            )
        }
        None => {
            let (client, tls) = offline_credentials(&args).await?;
            (client, tls, None)
        }
    };
    let agent = start_agent(&args.data_dir, &args.node, client, kubelet_tls, false).await?;
    println!(
        "shoal agent is ready: node {} at {}",
        args.node.node_name, args.node.node_ip
    );
    tokio::signal::ctrl_c().await?;
    eprintln!("shutting down");
    if let Some((renewal, following, _relay)) = renewal {
        renewal.abort();
        following.abort();
    }
    agent.shutdown().await;
    Ok(())
}

/// The API client and kubelet API settings from the files `shoal
/// node-config` wrote.
async fn offline_credentials(
    args: &AgentArgs,
) -> Result<(kube::Client, Arc<rustls::ServerConfig>)> {
    let read = |p: &Path| -> Result<String> {
        std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))
    };
    let need = |p: &Option<PathBuf>, flag: &str| -> Result<PathBuf> {
        p.clone()
            .ok_or_else(|| anyhow::anyhow!("{flag} is needed without --server"))
    };
    let kubeconfig_file = need(&args.kubeconfig, "--kubeconfig")?;
    let cert = need(&args.tls_cert_file, "--tls-cert-file")?;
    let key = need(&args.tls_private_key_file, "--tls-private-key-file")?;
    let ca = need(&args.client_ca_file, "--client-ca-file")?;
    let kubeconfig = kube::config::Kubeconfig::read_from(&kubeconfig_file)
        .with_context(|| format!("reading {}", kubeconfig_file.display()))?;
    let pair = shoal_pki::Pair {
        cert: read(&cert)?,
        key: read(&key)?,
    };
    let kubelet_tls =
        shoal_pki::server_config(&read(&ca)?, &pair, &[b"http/1.1"]).with_context(|| {
            format!(
                "the kubelet API's certificate {}, key {} or client CA {}",
                cert.display(),
                key.display(),
                ca.display()
            )
        })?;
    Ok((
        kubeconfig_client(kubeconfig, &args.node).await?,
        kubelet_tls,
    ))
}

fn limits(node: &NodeArgs) -> shoal_node::client::ClientLimits {
    shoal_node::client::ClientLimits {
        qps: node.kube_api_qps,
        burst: node.kube_api_burst,
    }
}

/// The node's API client from a kubeconfig.
async fn kubeconfig_client(
    kubeconfig: kube::config::Kubeconfig,
    node: &NodeArgs,
) -> Result<kube::Client> {
    let kc = kube::Config::from_custom_kubeconfig(
        kubeconfig,
        &kube::config::KubeConfigOptions::default(),
    )
    .await?;
    Ok(shoal_node::client::connect(&kc, limits(node))?)
}

/// Starts a node agent that reaches the API with `client`.
async fn start_agent(
    data_dir: &Path,
    node: &NodeArgs,
    client: kube::Client,
    kubelet_tls: Arc<rustls::ServerConfig>,
    control_plane: bool,
) -> Result<shoal_node::Agent> {
    // A slot per pod, and some for pods with several containers; the
    // kernel must be able to map them all.
    let instances = shoal_runtime_wasm::ensure_map_count(node.max_pods.saturating_add(256));
    let max_pods = node.max_pods.min(instances.saturating_sub(256));
    let runtime = shoal_runtime_wasm::Runtime::new(shoal_runtime_wasm::RuntimeConfig {
        pool_instances: instances,
        image_cache_max_bytes: node.image_cache_max_size,
        image_minimum_age: node.minimum_image_ttl_duration,
        default_memory_limit: usize::try_from(node.default_memory_limit).ok(),
        pod_memory: usize::try_from(shoal_node::allocatable_memory(node.system_reserved_memory))
            .ok(),
        ..shoal_runtime_wasm::RuntimeConfig::new(data_dir)
    })?;
    shoal_node::Agent::start(
        shoal_node::AgentConfig {
            node_name: node.node_name.clone(),
            data_dir: data_dir.join("node"),
            node_ip: node.node_ip,
            kubelet_port: node.kubelet_port,
            kubelet_tls,
            max_pods,
            log_rotation: shoal_node::logs::LogRotation {
                max_bytes: node.container_log_max_size,
                max_files: node.container_log_max_files,
            },
            control_plane,
            event_qps: node.event_qps,
            event_burst: node.event_burst,
            lease_duration: node.node_lease_duration,
            pod_network: node.pod_network.into(),
            dns: shoal_node::DnsConfig {
                address: node.cluster_dns,
                domain: node.cluster_domain.clone(),
            },
            system_reserved_memory: node.system_reserved_memory,
            eviction_hard: node.eviction_hard.clone(),
            pod_cidr: node.pod_cidr,
            register_with_taints: node.register_with_taints.clone(),
            node_labels: node.node_labels.clone(),
        },
        client,
        runtime,
    )
    .await
    .context("starting the node agent")
}

fn node_config(args: &NodeConfigArgs) -> Result<()> {
    let pki_dir = args.data_dir.join("pki");
    if !pki_dir.join("ca.crt").exists() {
        anyhow::bail!(
            "{} holds no cluster: pass the data dir of `shoal up`",
            args.data_dir.display()
        );
    }
    let pki = shoal_pki::Pki::load_or_create(&pki_dir, &[]).with_context(|| {
        format!(
            "reading the cluster's certificates in {}",
            pki_dir.display()
        )
    })?;
    let creds =
        shoal_pki::issue_node_credentials(&pki_dir, &args.node_name, &args.node_ip.to_string())?;
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let user = format!("system:node:{}", args.node_name);
    shoal_pki::write_private(
        &args.out.join("kubeconfig"),
        &pki.kubeconfig(&args.server, &user, &creds.client),
    )?;
    std::fs::write(args.out.join("kubelet.crt"), &creds.serving.cert)?;
    shoal_pki::write_private(&args.out.join("kubelet.key"), &creds.serving.key)?;
    std::fs::write(args.out.join("ca.crt"), &pki.ca)?;
    println!(
        "wrote the credentials of node {name} to {out}; start it with: shoal agent --kubeconfig {out}/kubeconfig --tls-cert-file {out}/kubelet.crt --tls-private-key-file {out}/kubelet.key --client-ca-file {out}/ca.crt --node-name {name} --node-ip {ip}",
        name = args.node_name,
        out = args.out.display(),
        ip = args.node_ip
    );
    Ok(())
}

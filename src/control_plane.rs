//! Running a control plane with its node: `shoal up` (a server alone)
//! and `shoal server` (one of several).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use anyhow::{Context, Result};
use shoal_apiserver::server::Membership;

use super::{
    AuthorizationMode, ServerArgs, UpArgs, kubeconfig_client, limits, private_dir, start_agent,
    token,
};

/// `shoal server`: the membership its flags and data dir say, then as
/// `shoal up`.
pub(crate) async fn server(args: ServerArgs) -> Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let membership = match (&args.join, &args.token) {
        (Some(server), Some(token)) => {
            let ca_file = args.up.data_dir.join("pki/ca.crt");
            let ca = if ca_file.exists() {
                std::fs::read_to_string(&ca_file)?
            } else {
                // Trusted once the token's signature in cluster-info
                // vouches for it.
                shoal_node::bootstrap::discover(server, token, limits(&args.up.node))
                    .await
                    .with_context(|| format!("reading the cluster's CA from {server}"))?
            };
            Membership::Join {
                server: server.clone(),
                token: token.clone(),
                ca,
            }
        }
        _ if args.cluster_init || args.up.data_dir.join("member-id").exists() => Membership::Member,
        _ => anyhow::bail!(
            "{} holds no server of a cluster: start the first with --cluster-init, the others with --join URL --token TOKEN",
            args.up.data_dir.display()
        ),
    };
    up(args.up, membership).await
}

pub(crate) async fn up(args: UpArgs, membership: Membership) -> Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    private_dir(&args.data_dir)?;
    let alone = matches!(membership, Membership::Alone);
    let join_token = match &membership {
        Membership::Join { token, .. } => Some(token.clone()),
        _ => None,
    };
    let listen = SocketAddr::new(args.bind_address, args.api_port);
    let mut hosts = vec![args.bind_address.to_string(), args.node.node_ip.to_string()];
    hosts.extend(args.tls_san.iter().cloned());
    let audit = match &args.audit_log_path {
        None => None,
        Some(path) => {
            let policy = match &args.audit_policy_file {
                None => shoal_apiserver::audit::Policy::default(),
                Some(p) => shoal_apiserver::audit::Policy::parse(
                    &std::fs::read_to_string(p)
                        .with_context(|| format!("reading {}", p.display()))?,
                )
                .map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?,
            };
            Some(Arc::new(
                shoal_apiserver::audit::Audit::start(path.clone(), policy, args.audit_log_maxsize)
                    .with_context(|| format!("opening the audit log {}", path.display()))?,
            ))
        }
    };
    let server = shoal_apiserver::server::Server::start(shoal_apiserver::server::ServerConfig {
        data_dir: args.data_dir.clone(),
        listen,
        hosts,
        cluster_cidr: args.cluster_cidr.clone(),
        node_cidr_mask: args.node_cidr_mask_size,
        allocate_node_cidrs: args.allocate_node_cidrs,
        event_ttl: args.event_ttl,
        node_grace: args.node_monitor_grace_period,
        tolerations: shoal_apiserver::server::DefaultTolerationSeconds {
            not_ready: args.default_not_ready_toleration_seconds,
            unreachable: args.default_unreachable_toleration_seconds,
        },
        cluster_dns: args.node.cluster_dns,
        authorization: match args.authorization_mode {
            AuthorizationMode::Rbac => shoal_apiserver::server::Authorization::Rbac,
            AuthorizationMode::AlwaysAllow => shoal_apiserver::server::Authorization::AlwaysAllow,
        },
        audit,
        encryption_config: args.encryption_provider_config.clone(),
        membership,
    })
    .await
    .context("starting the control plane")?;
    let host = if args.bind_address.is_unspecified() {
        IpAddr::from([127, 0, 0, 1])
    } else {
        args.bind_address
    };
    let url = format!("https://{}", SocketAddr::new(host, server.addr.port()));
    let kubeconfig_path = args
        .kubeconfig
        .clone()
        .unwrap_or_else(|| args.data_dir.join("kubeconfig"));
    if let Some(dir) = kubeconfig_path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    shoal_pki::write_private(
        &kubeconfig_path,
        &server.pki.kubeconfig(&url, "admin", &server.pki.admin),
    )?;
    // The node's client certificate names this node: NodeRestriction lets
    // a node's credentials write only their own Node.
    let node_client = if args.node.node_name == "shoal" {
        server.pki.node_client.clone()
    } else {
        shoal_pki::issue_node_credentials(
            &args.data_dir.join("pki"),
            &args.node.node_name,
            &args.node.node_ip.to_string(),
        )?
        .client
    };
    let node_kc = kube::config::Kubeconfig::from_yaml(&server.pki.kubeconfig(
        &url,
        &format!("system:node:{}", args.node.node_name),
        &node_client,
    ))?;
    let kubelet_tls = server
        .pki
        .server_config(&server.pki.node_serving, &[b"http/1.1"])?;
    let client = kubeconfig_client(node_kc, &args.node).await?;
    let agent = start_agent(&args.data_dir, &args.node, client, kubelet_tls, true).await?;
    // The token other nodes join with, made at the first start as k3s
    // makes its node token; `shoal token` makes and revokes others.
    let token_file = args.data_dir.join("node-token");
    if !token_file.exists() {
        let token = token::create(
            &kubeconfig_path,
            std::time::Duration::ZERO,
            "made by shoal up for joining nodes",
            false,
        )
        .await?;
        shoal_pki::write_private(&token_file, &format!("{token}\n"))?;
    }
    // Among servers, the token other servers join with, as k3s's
    // DATA_DIR/token.
    let server_token = args.data_dir.join("token");
    if !alone && !server_token.exists() {
        // A joining server keeps the token it joined with.
        let token = match join_token {
            Some(token) => token,
            None => {
                token::create(
                    &kubeconfig_path,
                    std::time::Duration::ZERO,
                    "made by shoal server for joining servers",
                    true,
                )
                .await?
            }
        };
        shoal_pki::write_private(&server_token, &format!("{token}\n"))?;
    }
    println!(
        "shoal is ready: API at {url}, node {}. Use it with: export KUBECONFIG={}",
        args.node.node_name,
        kubeconfig_path.display()
    );
    println!(
        "nodes join with: shoal agent --server {url} --token $(cat {})",
        token_file.display()
    );
    if !alone {
        println!(
            "servers join with: shoal server --join {url} --token $(cat {})",
            server_token.display()
        );
    }
    tokio::select! {
        signal = tokio::signal::ctrl_c() => signal?,
        why = server.failed() => {
            // The API cannot write without its store: stop, for a
            // supervisor to start it again once the cause is fixed.
            agent.shutdown().await;
            anyhow::bail!(
                "the store under {} stopped: {why}",
                args.data_dir.join("store").display()
            );
        }
    }
    eprintln!("shutting down");
    agent.shutdown().await;
    server.shutdown().await;
    Ok(())
}

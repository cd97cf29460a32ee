//! What security costs the API: pod creates a second and their latency
//! from 16 clients, against two `shoal up`s running side by side:
//!
//! - open: `--authorization-mode AlwaysAllow`, no audit log, the
//!   administrator's certificate;
//! - secured: the defaults (RBAC) with an audit log of every request at
//!   the Metadata level, and a user who is not an administrator: a
//!   certificate issued through the CSR API, bound to `edit` by a
//!   RoleBinding, writing into a namespace at PodSecurity `baseline`.
//!
//! Both run the built-in admission plugins (ServiceAccount, PodSecurity);
//! the secured one also NodeRestriction and RBAC's escalation check. The
//! pods wait on a node selector nothing matches, so only the API works.
//! ROUNDS rounds (default 5) of CREATES creates each (default 1,000)
//! alternate between the two (each first in every other round, after a
//! pause for both to settle); the medians of the rounds' rates, the p50
//! and p99 of every create, and the ratio are printed.
//!
//! Run with `cargo bench --bench api_security` (`AUDIT=0`: the secured
//! cluster without its audit log; `AS_ADMIN=1`: its creates made by the
//! administrator, whom RBAC allows at once).

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::Instant;

use base64::Engine as _;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, PostParams};

/// A kubeconfig for user `bench` of cluster `c`, its certificate issued
/// through the CertificateSigningRequest API and approved.
fn user_kubeconfig(c: &common::Cluster) -> std::path::PathBuf {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "bench");
    let request = params.serialize_request(&key).unwrap().pem().unwrap();
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let csr = c.dir.join("bench-csr.yaml");
    std::fs::write(
        &csr,
        format!(
            "apiVersion: certificates.k8s.io/v1\nkind: CertificateSigningRequest\nmetadata: {{name: bench}}\nspec:\n  request: {}\n  signerName: kubernetes.io/kube-apiserver-client\n  usages: [client auth]\n",
            b64(&request)
        ),
    )
    .unwrap();
    c.ok(&["apply", "-f", csr.to_str().unwrap()]);
    c.ok(&["certificate", "approve", "bench"]);
    let cert = c.wait_for(
        &[
            "get",
            "csr",
            "bench",
            "-o",
            "jsonpath={.status.certificate}",
        ],
        "the bench user's certificate",
        |s| !s.is_empty(),
    );
    let ca = std::fs::read_to_string(c.dir.join("pki/ca.crt")).unwrap();
    let path = c.dir.join("bench-user.kubeconfig");
    std::fs::write(
        &path,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: {{server: \"{}\", certificate-authority-data: {}}}\nusers:\n- name: bench\n  user: {{client-certificate-data: {}, client-key-data: {}}}\ncontexts:\n- name: bench\n  context: {{cluster: c, user: bench, namespace: bench}}\ncurrent-context: bench\n",
            c.server(),
            b64(&ca),
            cert,
            b64(&key.serialize_pem())
        ),
    )
    .unwrap();
    path
}

/// Creates `count` pods named from `first` in namespace `bench` with 16
/// clients; the wall time and each create's latency (ms).
async fn creates(client: &kube::Client, first: usize, count: usize) -> (f64, Vec<f64>) {
    let start = Instant::now();
    let workers: Vec<_> = (0..16)
        .map(|w| {
            let client = client.clone();
            tokio::spawn(async move {
                let api: Api<Pod> = Api::namespaced(client, "bench");
                let mut latencies = Vec::new();
                for i in (first + w..first + count).step_by(16) {
                    let pod: Pod = serde_json::from_value(serde_json::json!({
                        "metadata": {"name": format!("p-{i}"), "labels": {"app": format!("a{}", i % 100)}},
                        "spec": {
                            "nodeSelector": {"bench": "no-such-node"},
                            "containers": [{"name": "c", "image": "hello-cmd:v1"}],
                        },
                    }))
                    .unwrap();
                    let t = Instant::now();
                    api.create(&PostParams::default(), &pod).await.unwrap();
                    latencies.push(t.elapsed().as_secs_f64() * 1000.0);
                }
                latencies
            })
        })
        .collect();
    let mut all = Vec::new();
    for w in workers {
        all.extend(w.await.unwrap());
    }
    (start.elapsed().as_secs_f64(), all)
}

fn main() {
    let rounds = common::env_number("ROUNDS", 5);
    let count = common::env_number("CREATES", 1_000);
    let audit = std::env::temp_dir().join(format!("shoal-bench-audit-{}.log", std::process::id()));
    let open = common::Cluster::start_with("bench-open", &["--authorization-mode", "AlwaysAllow"]);
    // AUDIT=0 leaves the secured cluster's audit log out, to tell its
    // cost from RBAC's.
    let audited_args = ["--audit-log-path", audit.to_str().unwrap()];
    let with_audit = common::env_number("AUDIT", 1) != 0;
    let secured = common::Cluster::start_with(
        "bench-secured",
        if with_audit { &audited_args[..] } else { &[] },
    );
    for c in [&open, &secured] {
        c.ok(&["create", "namespace", "bench"]);
        c.ok(&[
            "label",
            "namespace",
            "bench",
            "pod-security.kubernetes.io/enforce=baseline",
        ]);
    }
    secured.ok(&[
        "create",
        "rolebinding",
        "bench-edit",
        "--clusterrole=edit",
        "--user=bench",
        "-n",
        "bench",
    ]);
    let user = user_kubeconfig(&secured);
    let rt = tokio::runtime::Runtime::new().unwrap();
    // AS_ADMIN=1 sends the secured cluster's creates with the
    // administrator's certificate (RBAC answers `system:masters` at once).
    let as_admin = common::env_number("AS_ADMIN", 0) != 0;
    let secured_as = if as_admin { &secured.kubeconfig } else { &user };
    let (open_client, secured_client) = rt.block_on(async {
        (
            common::kube_client(&open.kubeconfig).await,
            common::kube_client(secured_as).await,
        )
    });
    // The user is who the secured cluster says it is, and no more.
    let who = secured.ok(&[
        "auth",
        "whoami",
        "--kubeconfig",
        user.to_str().unwrap(),
        "-o",
        "jsonpath={.status.userInfo.username}",
    ]);
    assert_eq!(who, "bench");
    let denied = secured.kubectl(&["get", "nodes", "--kubeconfig", user.to_str().unwrap()]);
    assert!(
        !denied.status.success(),
        "the bench user is not an administrator"
    );

    // Warm both up.
    rt.block_on(creates(&open_client, 0, 200));
    rt.block_on(creates(&secured_client, 0, 200));
    let (mut open_rates, mut secured_rates) = (Vec::new(), Vec::new());
    let (mut open_lat, mut secured_lat) = (Vec::new(), Vec::new());
    for r in 0..rounds {
        let first = 1_000 + r * count;
        // Each goes first in every other round, and each round starts once
        // both control planes are done with the last one's pods.
        let order = if r % 2 == 0 {
            [true, false]
        } else {
            [false, true]
        };
        for open_turn in order {
            std::thread::sleep(std::time::Duration::from_secs(3));
            let client = if open_turn {
                &open_client
            } else {
                &secured_client
            };
            let (secs, lat) = rt.block_on(creates(client, first, count));
            let (rates, lats) = if open_turn {
                (&mut open_rates, &mut open_lat)
            } else {
                (&mut secured_rates, &mut secured_lat)
            };
            rates.push(count as f64 / secs);
            lats.extend(lat);
        }
    }
    let audited = std::fs::read_to_string(&audit)
        .map(|s| {
            s.lines()
                .filter(|l| {
                    l.contains("\"verb\":\"create\"") && l.contains("\"resource\":\"pods\"")
                })
                .count()
        })
        .unwrap_or(0);
    let (o, s) = (common::median(open_rates), common::median(secured_rates));
    println!(
        "open (AlwaysAllow, administrator, no audit): {o:.0} creates/s (median of {rounds} rounds of {count}), p50 {:.1} ms, p99 {:.1} ms",
        common::percentile(&mut open_lat, 0.5),
        common::percentile(&mut open_lat, 0.99)
    );
    println!(
        "secured (RBAC for a user bound to edit, admission, audit at Metadata): {s:.0} creates/s, p50 {:.1} ms, p99 {:.1} ms; {audited} pod creates audited",
        common::percentile(&mut secured_lat, 0.5),
        common::percentile(&mut secured_lat, 0.99)
    );
    println!(
        "ratio secured/open: {:.2} (cost {:.1}%; target ≤ 10%)",
        s / o,
        (1.0 - s / o) * 100.0
    );
    let _ = std::fs::remove_file(&audit);
}

//! Nodes join with a bootstrap token, as kubelets do with TLS bootstrap:
//! the agent trusts the cluster's CA through the token's signature of
//! `cluster-info`, asks for its client and serving certificates through
//! CertificateSigningRequests (approved automatically), and restarts
//! without the token. Tokens are listed and revoked with `shoal token`.

mod common;

use std::process::Command;

use common::{Cluster, example};

fn shoal_token(c: &Cluster, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_shoal"))
        .arg("token")
        .args(args)
        .arg("--kubeconfig")
        .arg(&c.kubeconfig)
        .env("RUST_BACKTRACE", "0")
        .output()
        .unwrap()
}

/// kubectl with only a bearer token (no client certificate), trusting the
/// cluster's CA.
fn kubectl_with_token(c: &Cluster, token: &str, args: &[&str]) -> std::process::Output {
    Command::new("kubectl")
        .args(["--kubeconfig", "/dev/null", "--server", &c.server()])
        .arg(format!(
            "--certificate-authority={}",
            c.dir.join("pki/ca.crt").display()
        ))
        .args(["--token", token])
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap()
}

#[test]
fn a_node_joins_with_a_bootstrap_token_and_revoked_tokens_are_refused() {
    let c = Cluster::start("join");
    let token = c.node_token();
    let id = token.split('.').next().unwrap().to_string();
    let mut worker = c.join_with_token("worker-1", "127.0.0.2", Some(&token));
    worker.import(&example("hello-cmd"), "hello-cmd:v1");
    c.wait_for(
        &[
            "get",
            "node",
            "worker-1",
            "-o",
            "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}",
        ],
        "worker-1 Ready",
        |s| s == "True",
    );

    // Its certificates came through the API: the client one asked with the
    // token, the serving one by the node itself; both approved and issued.
    let csrs = c.ok(&["get", "csr", "-o",
        "jsonpath={range .items[*]}{.spec.signerName} {.spec.username} {.status.conditions[0].reason} {.status.certificate}{\"\\n\"}{end}"]);
    let rows: Vec<Vec<&str>> = csrs.lines().map(|l| l.split(' ').collect()).collect();
    let has = |signer: &str, user: &str| {
        rows.iter()
            .any(|r| r[0] == signer && r[1] == user && r[2] == "AutoApproved" && r[3].len() > 100)
    };
    assert!(
        has(
            "kubernetes.io/kube-apiserver-client-kubelet",
            &format!("system:bootstrap:{id}")
        ),
        "{csrs}"
    );
    assert!(
        has("kubernetes.io/kubelet-serving", "system:node:worker-1"),
        "{csrs}"
    );

    // Pods run there, and their logs come through its kubelet API, whose
    // serving certificate the API server checks against the CA.
    let manifest = c.dir.join("pod.yaml");
    std::fs::write(&manifest, "apiVersion: v1\nkind: Pod\nmetadata: {name: joined}\nspec:\n  nodeSelector: {kubernetes.io/hostname: worker-1}\n  containers:\n  - name: main\n    image: hello-cmd:v1\n    env: [{name: GREETING, value: hello from a joined node}]\n").unwrap();
    c.ok(&["apply", "-f", manifest.to_str().unwrap()]);
    c.wait_for(
        &["logs", "joined"],
        "logs through worker-1's kubelet API",
        |s| s.contains("hello from a joined node"),
    );

    // The token's user may ask for certificates and nothing else.
    let denied = kubectl_with_token(&c, &token, &["get", "pods"]);
    assert!(!denied.status.success());
    assert!(String::from_utf8_lossy(&denied.stderr).contains(&format!(
        "User \"system:bootstrap:{id}\" cannot list resource \"pods\""
    )));

    // The node restarts on the credentials it kept, with no token and
    // no new request.
    worker.stop();
    drop(worker);
    let worker = c.join_with_token("worker-1", "127.0.0.2", None);
    let count = c.ok(&["get", "csr", "-o", "name"]).lines().count();
    assert_eq!(count, 2, "{}", worker.log());

    // A second token: listed, usable, then revoked and refused, by kubectl
    // and by a joining node.
    let made = shoal_token(&c, &["create", "--ttl", "1h", "--description", "second"]);
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let second = String::from_utf8(made.stdout).unwrap().trim().to_string();
    let listed = String::from_utf8(shoal_token(&c, &["list"]).stdout).unwrap();
    assert!(
        listed.contains(&second) && listed.contains("second") && listed.contains(&token),
        "{listed}"
    );
    let whoami = kubectl_with_token(
        &c,
        &second,
        &[
            "auth",
            "whoami",
            "-o",
            "jsonpath={.status.userInfo.username}",
        ],
    );
    assert_eq!(
        String::from_utf8_lossy(&whoami.stdout),
        format!("system:bootstrap:{}", &second[..6])
    );
    let deleted = shoal_token(&c, &["delete", &second]);
    assert!(
        deleted.status.success(),
        "{}",
        String::from_utf8_lossy(&deleted.stderr)
    );
    let refused = kubectl_with_token(&c, &second, &["auth", "whoami"]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("Unauthorized"));
    let join = Command::new(env!("CARGO_BIN_EXE_shoal"))
        .args(["agent", "--data-dir"])
        .arg(c.dir.join("revoked"))
        .args(["--server", &c.server(), "--token", &second])
        .args([
            "--node-name",
            "revoked",
            "--node-ip",
            "127.0.0.3",
            "--pod-network",
            "none",
        ])
        .env("RUST_BACKTRACE", "0")
        .output()
        .unwrap();
    assert!(!join.status.success());
    assert!(
        String::from_utf8_lossy(&join.stderr)
            .contains(&format!("knows no signing token with ID {}", &second[..6])),
        "{}",
        String::from_utf8_lossy(&join.stderr)
    );
    // A token the cluster never made is refused the same way, and no
    // Node was registered by either.
    let made_up = Command::new(env!("CARGO_BIN_EXE_shoal"))
        .args(["agent", "--data-dir"])
        .arg(c.dir.join("made-up"))
        .args([
            "--server",
            &c.server(),
            "--token",
            "abcdef.0123456789abcdef",
        ])
        .args([
            "--node-name",
            "made-up",
            "--node-ip",
            "127.0.0.4",
            "--pod-network",
            "none",
        ])
        .env("RUST_BACKTRACE", "0")
        .output()
        .unwrap();
    assert!(!made_up.status.success());
    assert!(
        String::from_utf8_lossy(&made_up.stderr).contains("knows no signing token with ID abcdef")
    );
    let nodes = c.ok(&["get", "nodes", "-o", "name"]);
    assert_eq!(nodes.lines().count(), 2, "{nodes}");
    drop(worker);
}

#[test]
fn a_node_brings_its_own_pod_cidr_and_registers_with_taints() {
    // A control plane that assigns no pod CIDRs, as one without node IPAM.
    let c = Cluster::start_with(
        "own-cidr",
        &["--allocate-node-cidrs=false", "--pod-cidr", "10.244.0.0/18"],
    );
    let worker = c.join(
        "wasm-1",
        "127.0.0.2",
        &[
            "--pod-cidr",
            "10.244.64.0/18",
            "--register-with-taints",
            "shoal.dev/wasm=true:NoSchedule",
            "--node-labels",
            "shoal.dev/runtime=wasm,tier=edge",
        ],
    );
    worker.import(&example("hello-cmd"), "hello-cmd:v1");
    c.import(&example("hello-cmd"), "hello-cmd:v1");
    let spec = c.ok(&[
        "get",
        "nodes",
        "-o",
        "jsonpath={range .items[*]}{.metadata.name} {.spec.podCIDR} {.spec.taints[*].key}{\"\\n\"}{end}",
    ]);
    assert!(spec.contains("shoal 10.244.0.0/18"), "{spec}");
    assert!(
        spec.contains("wasm-1 10.244.64.0/18 shoal.dev/wasm"),
        "{spec}"
    );
    let labels = c.ok(&["get", "node", "wasm-1", "-o", "jsonpath={.metadata.labels}"]);
    assert!(
        labels.contains(r#""shoal.dev/runtime":"wasm""#) && labels.contains(r#""tier":"edge""#),
        "{labels}"
    );
    // A RuntimeClass carries the node's selector and toleration: pods that
    // name it land there, the others stay off; one naming a class that
    // does not exist is refused.
    let rc = c.dir.join("runtimeclass.yaml");
    std::fs::write(
        &rc,
        r#"apiVersion: node.k8s.io/v1
kind: RuntimeClass
metadata: {name: shoal}
handler: shoal
scheduling:
  nodeSelector: {shoal.dev/runtime: wasm}
  tolerations: [{key: shoal.dev/wasm, operator: Equal, value: "true", effect: NoSchedule}]
"#,
    )
    .unwrap();
    c.ok(&["apply", "-f", rc.to_str().unwrap()]);
    c.ok(&["run", "plain", "--image=hello-cmd:v1"]);
    c.ok(&[
        "run",
        "wasm",
        "--image=hello-cmd:v1",
        "--overrides",
        r#"{"spec": {"runtimeClassName": "shoal"}}"#,
    ]);
    let refused = c.fails(&[
        "run",
        "nowhere",
        "--image=hello-cmd:v1",
        "--overrides",
        r#"{"spec": {"runtimeClassName": "missing"}}"#,
    ]);
    assert!(
        refused.contains(
            r#"pods "nowhere" is forbidden: pod rejected: RuntimeClass "missing" not found"#
        ),
        "{refused}"
    );
    let placed = |pod: &str| {
        c.wait_for(
            &[
                "get",
                "pod",
                pod,
                "-o",
                "jsonpath={.status.phase} {.spec.nodeName} {.status.podIP}",
            ],
            "the pod running",
            |s| s.starts_with("Running "),
        )
    };
    let plain = placed("plain");
    assert!(plain.starts_with("Running shoal 10.244."), "{plain}");
    let wasm = placed("wasm");
    let ip: std::net::Ipv4Addr = wasm.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(
        wasm.starts_with("Running wasm-1 ") && (64..128).contains(&ip.octets()[2]),
        "{wasm}"
    );
}

//! Identities and authorization as a Kubernetes user meets them: client
//! certificates issued through the CertificateSigningRequest API, RBAC
//! roles and bindings enforced on every request, `kubectl auth whoami`,
//! `can-i` (with `--list` and `--as`) and impersonation.

mod common;

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use base64::Engine as _;
use common::{Cluster, example};

/// A user's kubeconfig, with a certificate the cluster issued through a
/// CertificateSigningRequest the administrator approved.
fn credentials(c: &Cluster, name: &str, groups: &[&str]) -> PathBuf {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    for g in groups {
        params
            .distinguished_name
            .push(rcgen::DnType::OrganizationName, *g);
    }
    let request = params.serialize_request(&key).unwrap().pem().unwrap();
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let csr = c.dir.join(format!("{name}-csr.yaml"));
    std::fs::write(
        &csr,
        format!(
            "apiVersion: certificates.k8s.io/v1\nkind: CertificateSigningRequest\nmetadata: {{name: {name}}}\nspec:\n  request: {}\n  signerName: kubernetes.io/kube-apiserver-client\n  expirationSeconds: 3600\n  usages: [client auth]\n",
            b64(&request)
        ),
    )
    .unwrap();
    c.ok(&["apply", "-f", csr.to_str().unwrap()]);
    c.ok(&["certificate", "approve", name]);
    let cert = c.wait_for(
        &["get", "csr", name, "-o", "jsonpath={.status.certificate}"],
        "the certificate to be issued",
        |o| !o.trim().is_empty(),
    );
    let row = c.ok(&["get", "csr", name, "--no-headers"]);
    assert!(row.contains("Approved,Issued"), "{row}");
    let ca = std::fs::read_to_string(c.dir.join("pki/ca.crt")).unwrap();
    let pem = base64::engine::general_purpose::STANDARD
        .decode(cert.trim())
        .unwrap();
    std::fs::write(c.dir.join(format!("{name}.crt")), pem).unwrap();
    std::fs::write(c.dir.join(format!("{name}.key")), key.serialize_pem()).unwrap();
    let path = c.dir.join(format!("{name}.kubeconfig"));
    std::fs::write(
        &path,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: {}\n    certificate-authority-data: {}\nusers:\n- name: {name}\n  user:\n    client-certificate-data: {}\n    client-key-data: {}\ncontexts:\n- name: c\n  context: {{cluster: c, user: {name}}}\ncurrent-context: c\n",
            c.server(),
            b64(&ca),
            cert.trim(),
            b64(&key.serialize_pem()),
        ),
    )
    .unwrap();
    path
}

/// Waits up to ten seconds for `done` (an authorizer sees a new binding
/// once its watch delivers it).
fn eventually(what: &str, done: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !done() {
        assert!(
            std::time::Instant::now() < deadline,
            "{what} never happened"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// Runs kubectl with `kubeconfig`.
fn kubectl_as(c: &Cluster, kubeconfig: &PathBuf, args: &[&str]) -> Output {
    Command::new("kubectl")
        .args(args)
        .env("KUBECONFIG", kubeconfig)
        .arg(format!(
            "--cache-dir={}",
            c.dir.join("kube-cache-users").display()
        ))
        .stdin(Stdio::null())
        .output()
        .expect("running kubectl")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn users_may_do_what_their_roles_grant() {
    let c = Cluster::start("rbac");
    let alice = credentials(&c, "alice", &["devs"]);
    let run = |args: &[&str]| kubectl_as(&c, &alice, args);

    let who = text(&run(&["auth", "whoami"]));
    assert!(
        who.contains("alice") && who.contains("[devs system:authenticated]"),
        "{who}"
    );

    // Nothing is granted yet.
    let out = run(&["get", "pods"]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("Error from server (Forbidden): pods is forbidden: User \"alice\" cannot list resource \"pods\" in API group \"\" in the namespace \"default\""),
        "{}",
        text(&out)
    );
    let out = run(&["auth", "can-i", "create", "deployments"]);
    assert!(
        !out.status.success() && text(&out).starts_with("no"),
        "{}",
        text(&out)
    );

    // admin in one namespace.
    c.ok(&["create", "namespace", "team"]);
    c.ok(&[
        "create",
        "rolebinding",
        "alice-admin",
        "--clusterrole=admin",
        "--user=alice",
        "-n",
        "team",
    ]);
    let granted = || {
        run(&["auth", "can-i", "create", "deployments", "-n", "team"])
            .status
            .success()
    };
    eventually("the binding taking effect", granted);
    let out = run(&[
        "create",
        "deployment",
        "web",
        "--image=hello-cmd:v1",
        "-n",
        "team",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    // admin manages the namespace's roles, but nothing cluster-wide.
    let out = run(&[
        "create",
        "rolebinding",
        "bob-view",
        "--clusterrole=view",
        "--user=bob",
        "-n",
        "team",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let out = run(&["get", "nodes"]);
    assert!(
        text(&out).contains("nodes is forbidden: User \"alice\" cannot list resource \"nodes\" in API group \"\" at the cluster scope"),
        "{}",
        text(&out)
    );
    let out = run(&[
        "create",
        "clusterrolebinding",
        "mine",
        "--clusterrole=cluster-admin",
        "--user=alice",
    ]);
    assert!(
        text(&out).contains("clusterrolebindings.rbac.authorization.k8s.io is forbidden"),
        "{}",
        text(&out)
    );
    let out = run(&[
        "create",
        "deployment",
        "web",
        "--image=hello-cmd:v1",
        "-n",
        "default",
    ]);
    assert!(
        text(&out).contains("deployments.apps is forbidden"),
        "{}",
        text(&out)
    );
    // Nobody grants what they do not hold: not by binding a bigger role,
    // not by writing a role with more rules.
    let out = run(&[
        "create",
        "rolebinding",
        "root",
        "--clusterrole=cluster-admin",
        "--user=alice",
        "-n",
        "team",
    ]);
    assert!(
        text(&out).contains("is attempting to bind RBAC permissions not currently held"),
        "{}",
        text(&out)
    );
    let out = run(&[
        "create",
        "role",
        "nodes",
        "--verb=list",
        "--resource=nodes",
        "-n",
        "team",
    ]);
    assert!(
        text(&out).contains("is attempting to grant RBAC permissions not currently held"),
        "{}",
        text(&out)
    );
    let out = run(&[
        "create",
        "role",
        "secrets",
        "--verb=get",
        "--resource=secrets",
        "-n",
        "team",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let list = text(&run(&["auth", "can-i", "--list", "-n", "team"]));
    assert!(
        list.contains("deployments.apps")
            && list.contains("rolebindings.rbac.authorization.k8s.io"),
        "{list}"
    );
    assert!(
        !text(&run(&["auth", "can-i", "--list", "-n", "default"])).contains("deployments.apps")
    );

    // A group's binding reaches every member: view in default for devs.
    c.ok(&[
        "create",
        "rolebinding",
        "devs-view",
        "--clusterrole=view",
        "--group=devs",
        "-n",
        "default",
    ]);
    eventually("the group binding taking effect", || {
        run(&["get", "pods", "-n", "default"]).status.success()
    });
    let out = run(&["delete", "configmap", "kube-root-ca.crt", "-n", "default"]);
    assert!(text(&out).contains("is forbidden"), "{}", text(&out));

    // Impersonation: only for those allowed to impersonate.
    let out = run(&["get", "pods", "-n", "team", "--as", "bob"]);
    assert!(
        text(&out).contains("users \"bob\" is forbidden: User \"alice\" cannot impersonate resource \"users\" in API group \"\" at the cluster scope"),
        "{}",
        text(&out)
    );
    assert_eq!(
        c.ok(&[
            "auth",
            "can-i",
            "create",
            "deployments",
            "-n",
            "team",
            "--as",
            "alice"
        ])
        .trim(),
        "yes"
    );
    let out = c.kubectl(&[
        "auth",
        "can-i",
        "create",
        "deployments",
        "-n",
        "team",
        "--as",
        "bob",
    ]);
    assert!(!out.status.success(), "bob only views");
    assert_eq!(
        c.ok(&[
            "auth",
            "can-i",
            "list",
            "deployments",
            "-n",
            "team",
            "--as",
            "bob"
        ])
        .trim(),
        "yes"
    );
    let who = c.ok(&["auth", "whoami", "--as", "carol", "--as-group", "ops"]);
    assert!(
        who.contains("carol") && who.contains("[ops system:authenticated]"),
        "{who}"
    );

    // Service accounts are users too.
    c.ok(&["create", "serviceaccount", "ci", "-n", "team"]);
    c.ok(&[
        "create",
        "rolebinding",
        "ci-edit",
        "--clusterrole=edit",
        "--serviceaccount=team:ci",
        "-n",
        "team",
    ]);
    let sa = "system:serviceaccount:team:ci";
    c.wait_for(
        &["auth", "can-i", "create", "pods", "-n", "team", "--as", sa],
        "the service account's binding",
        |o| o.trim() == "yes",
    );
    let out = c.kubectl(&[
        "auth", "can-i", "create", "pods", "-n", "default", "--as", sa,
    ]);
    assert!(!out.status.success());

    // The node's own identity still runs pods.
    c.import(&example("hello-cmd"), "hello-cmd:v1");
    c.ok(&["run", "steady", "--image=hello-cmd:v1"]);
    c.wait_for(&["get", "pod", "steady"], "steady Running", |o| {
        o.contains(" Running ")
    });
    assert!(
        c.ok(&["logs", "steady"]).contains("1"),
        "logs through the kubelet API"
    );

    // The kubelet API asks the API server whether a caller other than the
    // API server may use it.
    let kubelet = |who: &str| {
        let out = Command::new("curl")
            .args(["-sk", "-o", "/dev/null", "-w", "%{http_code}"])
            .arg("--cert")
            .arg(c.dir.join(format!("{who}.crt")))
            .arg("--key")
            .arg(c.dir.join(format!("{who}.key")))
            .arg(format!(
                "https://127.0.0.1:{}/containerLogs/default/steady/steady",
                c.kubelet_port
            ))
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    assert_eq!(kubelet("alice"), "403");
    c.ok(&[
        "create",
        "clusterrole",
        "node-proxy",
        "--verb=get",
        "--resource=nodes/proxy",
    ]);
    c.ok(&[
        "create",
        "clusterrolebinding",
        "alice-proxy",
        "--clusterrole=node-proxy",
        "--user=alice",
    ]);
    eventually("the kubelet API letting alice in", || {
        kubelet("alice") == "200"
    });
}

#[test]
fn the_kubelet_signer_issues_only_node_identities() {
    let c = Cluster::start("csr");
    let request = |cn: &str, org: &str| {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
        params
            .distinguished_name
            .push(rcgen::DnType::OrganizationName, org);
        base64::engine::general_purpose::STANDARD
            .encode(params.serialize_request(&key).unwrap().pem().unwrap())
    };
    for (name, cn, org) in [
        ("node-a", "system:node:a", "system:nodes"),
        ("sneaky", "admin", "system:masters"),
    ] {
        let file = c.dir.join(format!("{name}.yaml"));
        std::fs::write(
            &file,
            format!(
                "apiVersion: certificates.k8s.io/v1\nkind: CertificateSigningRequest\nmetadata: {{name: {name}}}\nspec:\n  request: {}\n  signerName: kubernetes.io/kube-apiserver-client-kubelet\n  usages: [digital signature, client auth]\n",
                request(cn, org)
            ),
        )
        .unwrap();
        c.ok(&["apply", "-f", file.to_str().unwrap()]);
        c.ok(&["certificate", "approve", name]);
    }
    c.wait_for(
        &["get", "csr", "node-a", "--no-headers"],
        "node-a issued",
        |o| o.contains("Approved,Issued"),
    );
    let failed = c.wait_for(
        &[
            "get",
            "csr",
            "sneaky",
            "-o",
            "jsonpath={.status.conditions[?(@.type==\"Failed\")].message}",
        ],
        "sneaky failed",
        |o| !o.is_empty(),
    );
    assert!(
        failed.contains("does not begin with system:node:"),
        "{failed}"
    );
    assert!(
        c.ok(&[
            "get",
            "csr",
            "sneaky",
            "-o",
            "jsonpath={.status.certificate}"
        ])
        .is_empty()
    );
}

/// A kubeconfig for the API with a bearer token.
fn token_kubeconfig(c: &Cluster, name: &str, token: &str) -> PathBuf {
    let ca = std::fs::read_to_string(c.dir.join("pki/ca.crt")).unwrap();
    let path = c.dir.join(format!("{name}.kubeconfig"));
    std::fs::write(
        &path,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: {}\n    certificate-authority-data: {}\nusers:\n- name: t\n  user:\n    token: {token}\ncontexts:\n- name: c\n  context: {{cluster: c, user: t}}\ncurrent-context: c\n",
            c.server(),
            base64::engine::general_purpose::STANDARD.encode(ca),
        ),
    )
    .unwrap();
    path
}

#[test]
fn service_account_tokens_authenticate_their_account() {
    let c = Cluster::start("tokens");
    c.ok(&["create", "serviceaccount", "ci"]);
    c.ok(&[
        "create",
        "rolebinding",
        "ci-view",
        "--clusterrole=view",
        "--serviceaccount=default:ci",
    ]);
    let token = c.ok(&["create", "token", "ci"]);
    let ci = token_kubeconfig(&c, "ci", token.trim());
    let who = text(&kubectl_as(&c, &ci, &["auth", "whoami"]));
    assert!(
        who.contains("system:serviceaccount:default:ci")
            && who.contains(
                "[system:serviceaccounts system:serviceaccounts:default system:authenticated]"
            ),
        "{who}"
    );
    eventually("the service account's binding taking effect", || {
        kubectl_as(&c, &ci, &["get", "pods"]).status.success()
    });
    let out = kubectl_as(&c, &ci, &["get", "secrets"]);
    assert!(
        text(&out)
            .contains("User \"system:serviceaccount:default:ci\" cannot list resource \"secrets\""),
        "{}",
        text(&out)
    );

    // Another signature, another audience's token, a tampered one: 401.
    let mut tampered = token.trim().to_string();
    tampered.pop();
    for bad in [tampered.as_str(), "not-a-token"] {
        let out = kubectl_as(&c, &token_kubeconfig(&c, "bad", bad), &["get", "pods"]);
        assert!(text(&out).contains("Unauthorized"), "{}", text(&out));
    }
    let vault = c.ok(&["create", "token", "ci", "--audience=vault"]);
    let out = kubectl_as(
        &c,
        &token_kubeconfig(&c, "vault", vault.trim()),
        &["get", "pods"],
    );
    assert!(text(&out).contains("Unauthorized"), "{}", text(&out));
    let err = c.fails(&["create", "token", "ci", "--duration=5m"]);
    assert!(
        err.contains("may not specify a duration less than 10 minutes"),
        "{err}"
    );

    // TokenReview tells others whose a token is.
    let review = c.dir.join("review.json");
    std::fs::write(
        &review,
        serde_json::json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview",
            "spec": {"token": token.trim()}})
        .to_string(),
    )
    .unwrap();
    let answer = c.ok(&[
        "create",
        "--validate=false",
        "-f",
        review.to_str().unwrap(),
        "-o",
        "jsonpath={.status.authenticated} {.status.user.username}",
    ]);
    assert_eq!(answer, "true system:serviceaccount:default:ci");

    // The issuer's discovery documents, for other systems to verify tokens.
    let config: serde_json::Value =
        serde_json::from_str(&c.ok(&["get", "--raw", "/.well-known/openid-configuration"]))
            .unwrap();
    assert_eq!(
        config["issuer"],
        "https://kubernetes.default.svc.cluster.local"
    );
    assert!(
        config["jwks_uri"]
            .as_str()
            .unwrap()
            .ends_with("/openid/v1/jwks")
    );
    let jwks: serde_json::Value =
        serde_json::from_str(&c.ok(&["get", "--raw", "/openid/v1/jwks"])).unwrap();
    assert_eq!(jwks["keys"][0]["kty"], "EC");
    assert_eq!(jwks["keys"][0]["alg"], "ES256");

    // A token bound to a pod ends with the pod; every token with its account.
    c.import(&example("hello-cmd"), "hello-cmd:v1");
    c.ok(&[
        "run",
        "holder",
        "--image=hello-cmd:v1",
        "--overrides={\"spec\":{\"serviceAccountName\":\"ci\"}}",
    ]);
    let bound = c.ok(&[
        "create",
        "token",
        "ci",
        "--bound-object-kind=Pod",
        "--bound-object-name=holder",
    ]);
    let held = token_kubeconfig(&c, "held", bound.trim());
    assert!(kubectl_as(&c, &held, &["get", "pods"]).status.success());
    c.ok(&["delete", "pod", "holder", "--grace-period=0", "--force"]);
    c.wait_for(&["get", "pods"], "the pod gone", |o| !o.contains("holder"));
    assert!(text(&kubectl_as(&c, &held, &["get", "pods"])).contains("Unauthorized"));
    assert!(kubectl_as(&c, &ci, &["get", "pods"]).status.success());
    c.ok(&["delete", "serviceaccount", "ci"]);
    assert!(text(&kubectl_as(&c, &ci, &["get", "pods"])).contains("Unauthorized"));
}

#[test]
fn pods_get_their_service_account_credentials() {
    let c = Cluster::start("podtokens");
    c.import(&example("hello-cmd"), "hello-cmd:v1");
    c.ok(&["create", "serviceaccount", "reader"]);
    c.ok(&[
        "create",
        "rolebinding",
        "reader-view",
        "--clusterrole=view",
        "--serviceaccount=default:reader",
    ]);
    let dir = "/var/run/secrets/kubernetes.io/serviceaccount";
    let pod = |name: &str, extra: &str| {
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec:\n  serviceAccountName: reader\n{extra}  containers:\n  - name: c\n    image: hello-cmd:v1\n    env:\n    - {{name: SHOW_FILES, value: \"{dir}/namespace,{dir}/token,{dir}/ca.crt\"}}\n    - {{name: SHOW_ENV, value: \"KUBERNETES_SERVICE_HOST,KUBERNETES_SERVICE_PORT\"}}\n    - {{name: INTERVAL, value: \"3600\"}}\n"
        )
    };
    let file = c.dir.join("with.yaml");
    std::fs::write(&file, pod("with", "")).unwrap();
    c.ok(&["apply", "-f", file.to_str().unwrap()]);
    let file = c.dir.join("without.yaml");
    std::fs::write(
        &file,
        pod("without", "  automountServiceAccountToken: false\n"),
    )
    .unwrap();
    c.ok(&["apply", "-f", file.to_str().unwrap()]);
    let spec = c.ok(&[
        "get",
        "pod",
        "with",
        "-o",
        "jsonpath={.spec.volumes[0].name} {.spec.containers[0].volumeMounts[0].mountPath}",
    ]);
    assert!(
        spec.starts_with("kube-api-access-") && spec.ends_with(dir),
        "{spec}"
    );
    let logs = c.wait_for(&["logs", "with"], "the credentials printed", |o| {
        o.contains("KUBERNETES_SERVICE_PORT=")
    });
    assert!(logs.contains("KUBERNETES_SERVICE_HOST=10.96.0.1"), "{logs}");
    assert!(logs.contains("KUBERNETES_SERVICE_PORT=443"), "{logs}");
    assert!(logs.contains("BEGIN CERTIFICATE"), "the cluster CA: {logs}");
    let token = logs
        .split_whitespace()
        .find(|w| w.starts_with("eyJ"))
        .unwrap_or_else(|| panic!("no token in {logs}"));
    // The pod's token is the pod's service account's, bound to the pod.
    let as_pod = token_kubeconfig(&c, "as-pod", token);
    let who = text(&kubectl_as(&c, &as_pod, &["auth", "whoami"]));
    assert!(
        who.contains("system:serviceaccount:default:reader"),
        "{who}"
    );
    assert!(kubectl_as(&c, &as_pod, &["get", "pods"]).status.success());
    let none = c.wait_for(&["logs", "without"], "the files' absence printed", |o| {
        o.contains("KUBERNETES_SERVICE_PORT=")
    });
    assert!(
        !none.contains("eyJ") && !none.contains("BEGIN CERTIFICATE"),
        "{none}"
    );
    c.ok(&["delete", "pod", "with", "--grace-period=0", "--force"]);
    c.wait_for(&["get", "pods"], "the pod gone", |o| !o.contains("with "));
    assert!(text(&kubectl_as(&c, &as_pod, &["get", "pods"])).contains("Unauthorized"));
}

#[test]
fn a_node_writes_only_its_own_objects() {
    let c = Cluster::start("noderestriction");
    let b64 = |p: &str| {
        base64::engine::general_purpose::STANDARD
            .encode(std::fs::read(c.dir.join("pki").join(p)).unwrap())
    };
    // The node agent's own credentials (system:node:shoal in system:nodes).
    let node = c.dir.join("node.kubeconfig");
    std::fs::write(
        &node,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: {}\n    certificate-authority-data: {}\nusers:\n- name: node\n  user:\n    client-certificate-data: {}\n    client-key-data: {}\ncontexts:\n- name: c\n  context: {{cluster: c, user: node}}\ncurrent-context: c\n",
            c.server(),
            b64("ca.crt"),
            b64("node-client.crt"),
            b64("node-client.key"),
        ),
    )
    .unwrap();
    let run = |args: &[&str]| kubectl_as(&c, &node, args);
    let other = c.dir.join("other.yaml");
    std::fs::write(
        &other,
        "apiVersion: v1\nkind: Node\nmetadata: {name: other}\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: elsewhere}\nspec:\n  nodeName: other\n  containers: [{name: c, image: hello-cmd:v1}]\n",
    )
    .unwrap();
    c.ok(&["apply", "-f", other.to_str().unwrap()]);
    let patch = r#"{"metadata":{"labels":{"taken":"yes"}}}"#;
    let out = run(&["patch", "node", "other", "-p", patch]);
    assert!(
        text(&out).contains("node \"shoal\" is not allowed to modify node \"other\""),
        "{}",
        text(&out)
    );
    let out = run(&["patch", "node", "shoal", "-p", patch]);
    assert!(out.status.success(), "{}", text(&out));
    let status = r#"{"status":{"phase":"Failed","reason":"Taken"}}"#;
    let out = run(&[
        "patch",
        "pod",
        "elsewhere",
        "--subresource=status",
        "-p",
        status,
    ]);
    assert!(
        text(&out).contains(
            "node \"shoal\" can only update pod status for pods with spec.nodeName set to itself"
        ),
        "{}",
        text(&out)
    );
    assert_eq!(
        c.ok(&["get", "pod", "elsewhere", "-o", "jsonpath={.status.reason}"]),
        ""
    );
    let out = run(&["run", "planted", "--image=hello-cmd:v1"]);
    assert!(
        text(&out).contains("can only create mirror pods"),
        "{}",
        text(&out)
    );
    let out = run(&["create", "token", "default"]);
    assert!(
        text(&out).contains("can only get a token bound to a pod on that node"),
        "{}",
        text(&out)
    );
    let out = run(&[
        "create",
        "token",
        "default",
        "--bound-object-kind=Pod",
        "--bound-object-name=elsewhere",
    ]);
    assert!(
        text(&out).contains("can only get a token bound to a pod on that node"),
        "{}",
        text(&out)
    );
    // What it may not read: nothing beyond its role.
    let out = run(&[
        "create",
        "clusterrolebinding",
        "mine",
        "--clusterrole=cluster-admin",
        "--user=system:node:shoal",
    ]);
    assert!(text(&out).contains("is forbidden"), "{}", text(&out));

    // The Node authorizer: a node reads the Secrets and ConfigMaps its own
    // pods name, one at a time, and nothing else of those kinds.
    c.ok(&[
        "create",
        "secret",
        "generic",
        "for-here",
        "--from-literal=k=v",
    ]);
    c.ok(&[
        "create",
        "secret",
        "generic",
        "for-there",
        "--from-literal=k=v",
    ]);
    let pods = c.dir.join("pods.yaml");
    std::fs::write(
        &pods,
        "apiVersion: v1
kind: Pod
metadata: {name: here}
spec:
  nodeName: shoal
  containers: [{name: c, image: hello-cmd:v1, envFrom: [{secretRef: {name: for-here}}]}]
---
apiVersion: v1
kind: Pod
metadata: {name: there}
spec:
  nodeName: other
  containers: [{name: c, image: hello-cmd:v1, envFrom: [{secretRef: {name: for-there}}]}]
",
    )
    .unwrap();
    c.ok(&["apply", "-f", pods.to_str().unwrap()]);
    let out = run(&["get", "secret", "for-here", "-o", "name"]);
    assert!(out.status.success(), "{}", text(&out));
    let out = run(&["get", "secret", "for-there"]);
    assert!(
        text(&out).contains("no relationship found between node 'shoal' and this object"),
        "{}",
        text(&out)
    );
    let out = run(&["get", "secrets"]);
    assert!(
        text(&out).contains("can only get individual secrets"),
        "{}",
        text(&out)
    );
    // Its pod's service account projection names the CA's ConfigMap.
    let out = run(&["get", "configmap", "kube-root-ca.crt", "-o", "name"]);
    assert!(out.status.success(), "{}", text(&out));
    c.ok(&["create", "configmap", "private", "--from-literal=k=v"]);
    let out = run(&["get", "configmap", "private"]);
    assert!(
        text(&out).contains("no relationship found"),
        "{}",
        text(&out)
    );
}

#[test]
fn pod_security_levels_are_enforced_per_namespace() {
    let c = Cluster::start("podsecurity");
    c.ok(&["create", "namespace", "locked"]);
    c.ok(&[
        "label",
        "namespace",
        "locked",
        "pod-security.kubernetes.io/enforce=baseline",
    ]);
    let pod = |ns: &str, name: &str, extra: &str| {
        let file = c.dir.join(format!("{ns}-{name}.yaml"));
        std::fs::write(
            &file,
            format!("apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}, namespace: {ns}}}\nspec:\n{extra}  containers: [{{name: c, image: hello-cmd:v1}}]\n"),
        )
        .unwrap();
        c.kubectl(&["apply", "-f", file.to_str().unwrap()])
    };
    let host = "  hostNetwork: true\n  volumes: [{name: root, hostPath: {path: /}}]\n";
    let out = pod("locked", "escape", host);
    assert!(
        text(&out).contains("pods \"escape\" is forbidden: violates PodSecurity \"baseline:latest\": host namespaces (hostNetwork=true), hostPath volumes (volume \"root\")"),
        "{}",
        text(&out)
    );
    assert!(pod("locked", "plain", "").status.success());
    // Unlabelled namespaces are privileged, as in Kubernetes.
    let out = pod("default", "escape", host);
    assert!(out.status.success(), "{}", text(&out));
    // restricted asks for hardened containers.
    c.ok(&[
        "label",
        "namespace",
        "locked",
        "--overwrite",
        "pod-security.kubernetes.io/enforce=restricted",
    ]);
    let out = pod("locked", "soft", "");
    assert!(
        text(&out).contains(
            "violates PodSecurity \"restricted:latest\": allowPrivilegeEscalation != false"
        ),
        "{}",
        text(&out)
    );
    // A workload whose pods would be refused is warned about, not refused;
    // and a `warn` label warns without refusing.
    let out = c.kubectl(&[
        "create",
        "deployment",
        "soft",
        "-n",
        "locked",
        "--image=hello-cmd:v1",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("Warning: would violate PodSecurity \"restricted:latest\": allowPrivilegeEscalation != false"),
        "{}",
        text(&out)
    );
    c.ok(&[
        "label",
        "namespace",
        "default",
        "pod-security.kubernetes.io/warn=baseline",
    ]);
    let out = pod("default", "noisy", host);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Warning: would violate PodSecurity \"baseline:latest\": host namespaces (hostNetwork=true)"),
        "{}",
        text(&out)
    );
}

#[test]
fn secrets_are_encrypted_at_rest() {
    let mut c = Cluster::start("encryption");
    c.ok(&[
        "create",
        "secret",
        "generic",
        "db",
        "--from-literal=password=hunter2-6d0c4b",
    ]);
    c.ok(&[
        "create",
        "configmap",
        "settings",
        "--from-literal=mode=visible-91e3",
    ]);
    c.stop();
    let on_disk = store_files(&c);
    let holds = |s: &str| on_disk.windows(s.len()).any(|w| w == s.as_bytes());
    // Secrets' data is base64 in the object: look for that too.
    let b64 = base64::engine::general_purpose::STANDARD.encode("hunter2-6d0c4b");
    assert!(
        holds("visible-91e3"),
        "the store's files hold the ConfigMap"
    );
    assert!(
        !holds("hunter2-6d0c4b") && !holds(&b64),
        "the Secret is in the clear on disk"
    );
    assert!(holds("k8s:enc:aesgcm:v1:key1:"));
    let key = std::fs::metadata(c.dir.join("pki/encryption.key")).unwrap();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&key.permissions()) & 0o777,
        0o600
    );
    let dir = std::fs::metadata(&c.dir).unwrap();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&dir.permissions()) & 0o777,
        0o700
    );
    c.boot();
    let got = c.ok(&["get", "secret", "db", "-o", "jsonpath={.data.password}"]);
    assert_eq!(got, b64);

    // Rotation, as with kube-apiserver: the new key first, the old one
    // still listed, ConfigMaps sealed too.
    let old_key = std::fs::read_to_string(c.dir.join("pki/encryption.key")).unwrap();
    let new_key = base64::engine::general_purpose::STANDARD.encode([0x5a; 32]);
    let config = c.dir.join("encryption.yaml");
    let write_config = |providers: &str| {
        std::fs::write(
            &config,
            format!(
                "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\n\
                 resources:\n- resources: [secrets, configmaps]\n  providers:\n{providers}"
            ),
        )
        .unwrap();
    };
    let secretbox = format!("  - secretbox:\n      keys: [{{name: key2, secret: {new_key}}}]\n");
    let aesgcm = format!(
        "  - aesgcm:\n      keys: [{{name: key1, secret: {}}}]\n",
        old_key.trim()
    );
    write_config(&format!("{secretbox}{aesgcm}  - identity: {{}}\n"));
    c.stop();
    c.add_args(&["--encryption-provider-config", config.to_str().unwrap()]);
    c.boot();
    c.ok(&[
        "create",
        "secret",
        "generic",
        "db2",
        "--from-literal=password=swordfish-20b7",
    ]);
    c.stop();
    let on_disk = store_files(&c);
    let holds = |s: &str| on_disk.windows(s.len()).any(|w| w == s.as_bytes());
    assert!(holds("k8s:enc:secretbox:v1:key2:"));
    for gone in ["k8s:enc:aesgcm:v1:key1:", "visible-91e3", "swordfish-20b7"] {
        assert!(!holds(gone), "{gone} still on disk after the rotation");
    }
    // The old key goes; everything still reads.
    write_config(&secretbox);
    c.boot();
    let got = c.ok(&["get", "secret", "db", "-o", "jsonpath={.data.password}"]);
    assert_eq!(got, b64);
    let got = c.ok(&[
        "get",
        "configmap",
        "settings",
        "-o",
        "jsonpath={.data.mode}",
    ]);
    assert_eq!(got, "visible-91e3");
    c.stop();
    // A configuration that cannot read the store is refused at start,
    // naming what it lacks; nothing is lost.
    write_config(&aesgcm);
    let log = c.boot_fails();
    assert!(
        log.contains("k8s:enc:secretbox:v1:key2") && log.contains("does not list"),
        "{log}"
    );
    write_config("  - aescbc: {}\n");
    assert!(c.boot_fails().contains("aescbc is not supported"));
    write_config(&secretbox);
    c.boot();
    let got = c.ok(&["get", "secret", "db2", "-o", "jsonpath={.data.password}"]);
    assert_eq!(
        got,
        base64::engine::general_purpose::STANDARD.encode("swordfish-20b7")
    );
}

/// Every file of a stopped cluster's store, concatenated.
fn store_files(c: &Cluster) -> Vec<u8> {
    let mut on_disk = Vec::new();
    for e in std::fs::read_dir(c.dir.join("store")).unwrap() {
        on_disk.extend(std::fs::read(e.unwrap().path()).unwrap_or_default());
    }
    on_disk
}

#[test]
fn the_built_in_node_may_have_any_name() {
    // Its credentials name it, so NodeRestriction lets it write its Node.
    let c = Cluster::start_with("nodename", &["--node-name", "edge-1"]);
    c.wait_for(&["get", "node", "edge-1"], "edge-1 Ready", |o| {
        o.contains(" Ready ")
    });
}

#[test]
fn requests_are_audited_by_policy() {
    let policy =
        std::env::temp_dir().join(format!("shoal-audit-policy-{}.yaml", std::process::id()));
    std::fs::write(
        &policy,
        "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: None\n  resources: [{group: \"\", resources: [events]}]\n- level: None\n  nonResourceURLs: [\"/api*\", \"/openapi*\", /version]\n- level: Metadata\n",
    )
    .unwrap();
    let log = std::env::temp_dir().join(format!("shoal-audit-{}.log", std::process::id()));
    let _ = std::fs::remove_file(&log);
    let c = Cluster::start_with(
        "audit",
        &[
            "--audit-log-path",
            log.to_str().unwrap(),
            "--audit-policy-file",
            policy.to_str().unwrap(),
        ],
    );
    let alice = credentials(&c, "alice", &["devs"]);
    assert!(!kubectl_as(&c, &alice, &["get", "pods"]).status.success());
    c.ok(&["create", "configmap", "audited", "--from-literal=a=b"]);
    c.ok(&["get", "pods", "--as", "bob", "--as-group", "system:masters"]);
    let events = || -> Vec<serde_json::Value> {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("each line is an audit Event"))
            .collect()
    };
    let find = |pred: &dyn Fn(&serde_json::Value) -> bool| {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            if let Some(e) = events().into_iter().find(|e| pred(e)) {
                return e;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no such event in {:#?}",
                events()
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    };
    let refused =
        find(&|e| e["user"]["username"] == "alice" && e["objectRef"]["resource"] == "pods");
    assert_eq!(refused["verb"], "list");
    assert_eq!(refused["responseStatus"]["code"], 403);
    assert_eq!(refused["apiVersion"], "audit.k8s.io/v1");
    assert_eq!(refused["objectRef"]["namespace"], "default");
    let created = find(&|e| e["objectRef"]["resource"] == "configmaps" && e["verb"] == "create");
    assert_eq!(created["verb"], "create");
    assert_eq!(created["user"]["username"], "shoal-admin");
    assert_eq!(created["responseStatus"]["code"], 201);
    let impersonated = find(&|e| e["impersonatedUser"]["username"] == "bob");
    assert_eq!(impersonated["user"]["username"], "shoal-admin");
    // What the policy leaves out is not there.
    assert!(
        events()
            .iter()
            .all(|e| e["objectRef"]["resource"] != "events")
    );
    assert!(events().iter().all(|e| e["requestURI"] != "/version"));
    let _ = std::fs::remove_file(&policy);
    let _ = std::fs::remove_file(&log);
}

/// Approving a certificate request takes the `approve` verb on its signer
/// as well as the `approval` subresource, as in Kubernetes.
#[test]
fn approving_a_request_takes_the_approve_verb_on_its_signer() {
    let c = Cluster::start("approve");
    let carol = credentials(&c, "carol", &[]);
    let f = c.dir.join("approver.yaml");
    std::fs::write(
        &f,
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata: {name: csr-approver}\nrules:\n- {apiGroups: [certificates.k8s.io], resources: [certificatesigningrequests], verbs: [get, list]}\n- {apiGroups: [certificates.k8s.io], resources: [certificatesigningrequests/approval], verbs: [update]}\n---\napiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata: {name: carol-approves}\nroleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: csr-approver}\nsubjects: [{kind: User, apiGroup: rbac.authorization.k8s.io, name: carol}]\n",
    )
    .unwrap();
    c.ok(&["apply", "-f", f.to_str().unwrap()]);
    // A request for another user, which carol may not approve yet.
    {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "dave");
        let request = base64::engine::general_purpose::STANDARD
            .encode(params.serialize_request(&key).unwrap().pem().unwrap());
        let csr = c.dir.join("dave.yaml");
        std::fs::write(
            &csr,
            format!("apiVersion: certificates.k8s.io/v1\nkind: CertificateSigningRequest\nmetadata: {{name: dave}}\nspec:\n  request: {request}\n  signerName: kubernetes.io/kube-apiserver-client\n  usages: [client auth]\n"),
        )
        .unwrap();
        c.ok(&["apply", "-f", csr.to_str().unwrap()]);
    }
    let out = kubectl_as(&c, &carol, &["certificate", "approve", "dave"]);
    assert!(
        text(&out).contains("user not permitted to approve requests with signerName \"kubernetes.io/kube-apiserver-client\""),
        "{}",
        text(&out)
    );
    let grant = c.dir.join("signer.yaml");
    std::fs::write(
        &grant,
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata: {name: client-signer}\nrules:\n- {apiGroups: [certificates.k8s.io], resources: [signers], verbs: [approve], resourceNames: [\"kubernetes.io/*\"]}\n---\napiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata: {name: carol-signs}\nroleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: client-signer}\nsubjects: [{kind: User, apiGroup: rbac.authorization.k8s.io, name: carol}]\n",
    )
    .unwrap();
    c.ok(&["apply", "-f", grant.to_str().unwrap()]);
    let mut approved = false;
    for _ in 0..50 {
        let out = kubectl_as(&c, &carol, &["certificate", "approve", "dave"]);
        if out.status.success() {
            approved = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(approved, "carol approves once she holds the signer");
    c.wait_for(
        &["get", "csr", "dave", "--no-headers"],
        "dave issued",
        |o| o.contains("Approved,Issued"),
    );
}

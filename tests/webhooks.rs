//! Admission webhooks as a Kubernetes user configures them: a
//! ValidatingWebhookConfiguration that denies, a
//! MutatingWebhookConfiguration that patches, both over TLS with their
//! CA bundle and namespace selectors, called for kubectl's writes and the
//! controllers' alike, and failure policies when a webhook is down or slow.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use base64::Engine as _;
use common::{Cluster, free_port};

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A CA and a serving certificate for 127.0.0.1 signed by it, as files.
fn certificates(dir: &Path) -> String {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, "webhook-ca");
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let mut srv = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    srv.subject_alt_names = vec![rcgen::SanType::IpAddress([127, 0, 0, 1].into())];
    let issuer = rcgen::Issuer::new(ca, ca_key);
    let cert = srv.signed_by(&key, &issuer).unwrap();
    std::fs::write(dir.join("srv.crt"), cert.pem()).unwrap();
    std::fs::write(dir.join("srv.key"), key.serialize_pem()).unwrap();
    base64::engine::general_purpose::STANDARD.encode(ca_cert.pem())
}

fn webhook(name: &str, url: &str, ca: &str, resources: &str, policy: &str, timeout: u32) -> String {
    format!(
        "- name: {name}\n  clientConfig: {{url: \"{url}\", caBundle: {ca}}}\n  rules: [{{operations: [CREATE], apiGroups: [\"\"], apiVersions: [v1], resources: [{resources}]}}]\n  namespaceSelector: {{matchLabels: {{webhooks: \"on\"}}}}\n  sideEffects: None\n  admissionReviewVersions: [v1]\n  failurePolicy: {policy}\n  timeoutSeconds: {timeout}\n"
    )
}

#[test]
fn webhooks_deny_patch_and_fail_as_their_policies_say() {
    let c = Cluster::start("webhooks");
    let ca = certificates(&c.dir);
    let port = free_port();
    let log = c.dir.join("reviews.log");
    let mut child = Command::new("python3")
        .arg(common::repo().join("tests/support/webhook.py"))
        .args(["127.0.0.1", &port.to_string()])
        .arg(c.dir.join("srv.crt"))
        .arg(c.dir.join("srv.key"))
        .arg(&log)
        .stdout(Stdio::piped())
        .spawn()
        .expect("starting the webhook");
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert_eq!(first.trim(), "serving");
    let _server = Killed(child);

    let base = format!("https://127.0.0.1:{port}");
    let dead = format!("https://127.0.0.1:{}/validate", free_port());
    let manifest = format!(
        "apiVersion: admissionregistration.k8s.io/v1\nkind: ValidatingWebhookConfiguration\nmetadata: {{name: policy}}\nwebhooks:\n{}{}---\napiVersion: admissionregistration.k8s.io/v1\nkind: MutatingWebhookConfiguration\nmetadata: {{name: labels}}\nwebhooks:\n{}---\napiVersion: v1\nkind: Namespace\nmetadata: {{name: guarded, labels: {{webhooks: \"on\"}}}}\n---\napiVersion: v1\nkind: Namespace\nmetadata: {{name: open}}\n",
        webhook(
            "deny.shoal.test",
            &format!("{base}/validate"),
            &ca,
            "pods",
            "Fail",
            10
        ),
        webhook("down.shoal.test", &dead, &ca, "configmaps", "Fail", 2),
        webhook(
            "label.shoal.test",
            &format!("{base}/mutate"),
            &ca,
            "pods",
            "Fail",
            10
        ),
    );
    let f = c.dir.join("webhooks.yaml");
    std::fs::write(&f, manifest).unwrap();
    c.ok(&["apply", "-f", f.to_str().unwrap()]);
    let listed = c.ok(&["get", "validatingwebhookconfigurations"]);
    assert!(
        common::row(&listed, "policy")[1] == "2",
        "kubectl shows the webhooks: {listed}"
    );

    // The validating webhook denies, with its own words and code, for a
    // real write and a dry run alike.
    for extra in [&[][..], &["--dry-run=server"][..]] {
        let mut args = vec!["run", "evil", "-n", "guarded", "--image=hello-cmd:v1"];
        args.extend_from_slice(extra);
        let err = c.fails(&args);
        assert!(
            err.contains(
                "admission webhook \"deny.shoal.test\" denied the request: pods named evil are not allowed here"
            ),
            "{err}"
        );
    }
    assert!(
        c.fails(&["get", "pod", "evil", "-n", "guarded"])
            .contains("NotFound")
    );

    // Others pass, patched by the mutating webhook.
    c.ok(&["run", "good", "-n", "guarded", "--image=hello-cmd:v1"]);
    let labels = c.ok(&[
        "get",
        "pod",
        "good",
        "-n",
        "guarded",
        "-o",
        "jsonpath={.metadata.labels}",
    ]);
    assert!(
        labels.contains("\"mutated-by\":\"webhook\"") && labels.contains("\"run\":\"good\""),
        "{labels}"
    );

    // Namespaces the selector leaves out are not sent.
    c.ok(&["run", "evil", "-n", "open", "--image=hello-cmd:v1"]);
    let labels = c.ok(&[
        "get",
        "pod",
        "evil",
        "-n",
        "open",
        "-o",
        "jsonpath={.metadata.labels}",
    ]);
    assert!(!labels.contains("mutated-by"), "{labels}");

    // The controllers' writes are admitted the same way: a Deployment's
    // pods come patched.
    c.ok(&[
        "create",
        "deployment",
        "web",
        "-n",
        "guarded",
        "--image=hello-cmd:v1",
        "--replicas=2",
    ]);
    c.wait_for(
        &[
            "get",
            "pods",
            "-n",
            "guarded",
            "-l",
            "app=web,mutated-by=webhook",
            "-o",
            "name",
        ],
        "the Deployment's pods, patched",
        |s| s.lines().count() == 2,
    );
    let reviews = std::fs::read_to_string(&log).unwrap();
    assert!(reviews.contains("\"dryRun\": true"), "{reviews}");
    assert!(reviews.contains("\"query\": \"timeout=10s\""), "{reviews}");
    assert!(
        reviews
            .lines()
            .all(|l| !l.contains("\"namespace\": \"open\"")),
        "{reviews}"
    );

    // A webhook that cannot be reached fails the writes it takes while its
    // policy is Fail, and is skipped once it is Ignore.
    let err = c.fails(&["create", "configmap", "cm", "-n", "guarded"]);
    assert!(
        err.contains("Internal error occurred: failed calling webhook \"down.shoal.test\""),
        "{err}"
    );
    c.ok(&[
        "patch",
        "validatingwebhookconfiguration",
        "policy",
        "--type=json",
        "-p",
        "[{\"op\": \"replace\", \"path\": \"/webhooks/1/failurePolicy\", \"value\": \"Ignore\"}]",
    ]);
    c.ok(&["create", "configmap", "cm", "-n", "guarded"]);

    // A slow webhook is given up at its timeout.
    let slow = format!(
        "apiVersion: admissionregistration.k8s.io/v1\nkind: ValidatingWebhookConfiguration\nmetadata: {{name: slow}}\nwebhooks:\n{}",
        webhook(
            "slow.shoal.test",
            &format!("{base}/slow"),
            &ca,
            "secrets",
            "Fail",
            1
        )
    );
    std::fs::write(&f, slow).unwrap();
    c.ok(&["apply", "-f", f.to_str().unwrap()]);
    let started = std::time::Instant::now();
    let err = c.fails(&["create", "secret", "generic", "s", "-n", "guarded"]);
    assert!(err.contains("did not answer within 1s"), "{err}");
    assert!(started.elapsed() < std::time::Duration::from_secs(4));

    // Webhook configurations are checked as kube-apiserver checks them.
    let bad = "apiVersion: admissionregistration.k8s.io/v1\nkind: ValidatingWebhookConfiguration\nmetadata: {name: bad}\nwebhooks:\n- name: short.name\n  clientConfig: {url: \"http://127.0.0.1/x\"}\n  sideEffects: Some\n  admissionReviewVersions: [v1]\n";
    std::fs::write(&f, bad).unwrap();
    let err = c.fails(&["apply", "-f", f.to_str().unwrap()]);
    assert!(
        err.contains("webhooks[0].name")
            && err.contains("webhooks[0].sideEffects")
            && err.contains("webhooks[0].clientConfig.url"),
        "{err}"
    );
}

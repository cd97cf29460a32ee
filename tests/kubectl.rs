//! kubectl's everyday commands against shoal, as a user runs them: apply
//! and diff, replace, the three patch types, labels and annotations, every
//! output format, watches, sorting, rollouts, waits, `auth can-i` and
//! deletion with `--wait`.

mod common;

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::Cluster;

fn deployment(env: &[(&str, &str)], image: &str) -> String {
    let env: Vec<String> = env
        .iter()
        .map(|(k, v)| format!("{{name: {k}, value: \"{v}\"}}"))
        .collect();
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: web, labels: {{app: web}}}}\nspec:\n  replicas: 0\n  selector: {{matchLabels: {{app: web}}}}\n  template:\n    metadata: {{labels: {{app: web}}}}\n    spec:\n      containers:\n      - name: c\n        image: {image}\n        env: [{}]\n",
        env.join(", ")
    )
}

#[test]
fn everyday_kubectl_commands() {
    let c = Cluster::start("kubectl");
    // The built-in Service leads to the port the API listens on (the
    // tests' is never the default 6443).
    assert_ne!(c.api_port, 6443);
    assert_eq!(
        c.ok(&[
            "get",
            "svc",
            "kubernetes",
            "-o",
            "jsonpath={.spec.ports[0].targetPort} {.spec.ports[0].port}"
        ]),
        format!("{} 443", c.api_port)
    );
    let file = |name: &str, text: &str| {
        let p = c.dir.join(name);
        std::fs::write(&p, text).unwrap();
        p.to_str().unwrap().to_string()
    };

    // apply, diff, and an apply that reorders a list.
    let v1 = file("v1.yaml", &deployment(&[("A", "1"), ("B", "2")], "web:v1"));
    c.ok(&["apply", "-f", &v1]);
    let same = c.kubectl(&["diff", "-f", &v1]);
    assert_eq!(
        same.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&same.stderr)
    );
    let v2 = file(
        "v2.yaml",
        &deployment(&[("B", "2"), ("A", "one")], "web:v1"),
    );
    let diff = c.kubectl(&["diff", "-f", &v2]);
    let text = String::from_utf8_lossy(&diff.stdout);
    assert_eq!(
        diff.status.code(),
        Some(1),
        "{text}{}",
        String::from_utf8_lossy(&diff.stderr)
    );
    assert!(
        text.contains("-          value: \"1\"") && text.contains("+          value: one"),
        "{text}"
    );
    c.ok(&["apply", "-f", &v2]);
    assert_eq!(
        c.ok(&[
            "get",
            "deploy",
            "web",
            "-o",
            "jsonpath={.spec.template.spec.containers[0].env[*].name}"
        ]),
        "B A"
    );

    // create from literals, replace, the three patch types.
    c.ok(&[
        "create",
        "configmap",
        "app",
        "--from-literal=a=1",
        "--from-literal=b=2",
    ]);
    c.ok(&[
        "create",
        "secret",
        "generic",
        "creds",
        "--from-literal=user=admin",
    ]);
    assert_eq!(
        c.ok(&["get", "secret", "creds", "-o", "jsonpath={.data.user}"]),
        "YWRtaW4="
    );
    let cm = file(
        "cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: app}\ndata: {a: '10', b: '2'}\n",
    );
    c.ok(&["replace", "-f", &cm]);
    c.ok(&["patch", "cm", "app", "-p", r#"{"data": {"c": "3"}}"#]);
    c.ok(&[
        "patch",
        "cm",
        "app",
        "--type=merge",
        "-p",
        r#"{"data": {"b": null}}"#,
    ]);
    c.ok(&[
        "patch",
        "cm",
        "app",
        "--type=json",
        "-p",
        r#"[{"op": "add", "path": "/data/d", "value": "4"}]"#,
    ]);
    assert_eq!(
        c.ok(&["get", "cm", "app", "-o", "jsonpath={.data}"]),
        r#"{"a":"10","c":"3","d":"4"}"#
    );
    let err = c.fails(&["create", "-f", &cm]);
    assert!(
        err.contains("AlreadyExists") && err.contains("configmaps \"app\" already exists"),
        "{err}"
    );

    // labels and annotations.
    c.ok(&["label", "cm", "app", "tier=web"]);
    assert!(
        c.fails(&["label", "cm", "app", "tier=db"])
            .contains("--overwrite")
    );
    c.ok(&["label", "cm", "app", "tier=db", "--overwrite"]);
    c.ok(&["annotate", "cm", "app", "owner=ops"]);
    assert_eq!(
        c.ok(&[
            "get",
            "cm",
            "app",
            "-o",
            "jsonpath={.metadata.labels.tier}/{.metadata.annotations.owner}"
        ]),
        "db/ops"
    );
    c.ok(&["label", "cm", "app", "tier-"]);
    assert!(
        c.ok(&["get", "cm", "app", "--show-labels"])
            .contains("<none>")
    );

    // Output formats, selectors, sorting, all namespaces.
    for name in ["zeta", "mid", "alpha"] {
        c.ok(&["create", "configmap", name, "--from-literal=k=v"]);
        c.ok(&["label", "cm", name, "set=sorted"]);
    }
    let sorted = c.ok(&[
        "get",
        "cm",
        "-l",
        "set=sorted",
        "--sort-by=.metadata.name",
        "-o",
        "name",
    ]);
    assert_eq!(sorted, "configmap/alpha\nconfigmap/mid\nconfigmap/zeta\n");
    let newest_first = c.ok(&[
        "get",
        "cm",
        "-l",
        "set=sorted",
        "--sort-by=.metadata.creationTimestamp",
        "-o",
        "custom-columns=NAME:.metadata.name,K:.data.k",
        "--no-headers",
    ]);
    assert!(
        newest_first.lines().all(|l| l.ends_with(" v")),
        "{newest_first}"
    );
    let yaml = c.ok(&["get", "cm", "app", "-o", "yaml"]);
    assert!(
        yaml.starts_with("apiVersion: v1\n") && yaml.contains("kind: ConfigMap"),
        "{yaml}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&c.ok(&["get", "cm", "-o", "json"])).unwrap();
    assert_eq!(json["kind"], "List");
    assert_eq!(
        c.ok(&["get", "cm", "app", "-o", "go-template={{.metadata.name}}"]),
        "app"
    );
    assert_eq!(
        c.ok(&[
            "get",
            "cm",
            "--field-selector",
            "metadata.name=mid",
            "-o",
            "name"
        ]),
        "configmap/mid\n"
    );
    let all = c.ok(&["get", "cm", "-A"]);
    assert!(
        all.starts_with("NAMESPACE") && all.contains("kube-root-ca.crt"),
        "{all}"
    );
    let wide = c.ok(&["get", "deploy", "-o", "wide"]);
    assert!(
        wide.lines().next().unwrap().contains("SELECTOR") && wide.contains("web:v1"),
        "{wide}"
    );
    assert!(c.ok(&["describe", "deploy", "web"]).contains("Replicas:"));

    // get -w sees changes as they happen.
    let mut watch = Command::new("kubectl")
        .args([
            "get",
            "cm",
            "-w",
            "--output-watch-events",
            "-l",
            "set=sorted",
        ])
        .env("KUBECONFIG", &c.kubeconfig)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    c.ok(&["label", "cm", "mid", "changed=yes"]);
    c.ok(&["delete", "cm", "zeta"]);
    std::thread::sleep(Duration::from_millis(1500));
    watch.kill().unwrap();
    let mut seen = String::new();
    watch
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut seen)
        .unwrap();
    watch.wait().unwrap();
    for line in ["ADDED      alpha", "MODIFIED   mid", "DELETED    zeta"] {
        let want: Vec<&str> = line.split_whitespace().collect();
        assert!(
            seen.lines()
                .any(|l| l.split_whitespace().take(2).eq(want.iter().copied())),
            "{line} missing from\n{seen}"
        );
    }

    // Rollouts: status, restart, history, undo, set image, scale, wait.
    c.ok(&["rollout", "status", "deploy/web", "--timeout=30s"]);
    c.ok(&["rollout", "restart", "deploy/web"]);
    c.ok(&["rollout", "status", "deploy/web", "--timeout=30s"]);
    let history = c.ok(&["rollout", "history", "deploy/web"]);
    let revisions: Vec<&str> = history
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|r| r.parse::<u32>().is_ok())
        .collect();
    assert_eq!(revisions, ["1", "2", "3"], "{history}");
    c.ok(&["rollout", "undo", "deploy/web", "--to-revision=1"]);
    c.wait_for(
        &[
            "get",
            "deploy",
            "web",
            "-o",
            "jsonpath={.spec.template.spec.containers[0].env[*].value}",
        ],
        "the first template back",
        |o| o == "1 2",
    );
    c.ok(&["set", "image", "deploy/web", "c=web:v2"]);
    c.ok(&["scale", "deploy/web", "--replicas=0"]);
    c.ok(&[
        "wait",
        "--for=condition=Available",
        "deploy/web",
        "--timeout=30s",
    ]);
    assert!(
        c.ok(&["get", "deploy", "web", "-o", "wide"])
            .contains("web:v2")
    );

    // Discovery, documentation, authorization.
    assert!(
        c.ok(&["api-resources"])
            .lines()
            .any(|l| l.starts_with("deployments "))
    );
    assert!(
        c.ok(&["explain", "deployment.spec.strategy"])
            .contains("rollingUpdate")
    );
    assert_eq!(c.ok(&["auth", "can-i", "create", "deployments"]), "yes\n");
    assert_eq!(
        c.ok(&["auth", "can-i", "delete", "pods", "-n", "kube-system"]),
        "yes\n"
    );
    let rules = c.ok(&["auth", "can-i", "--list"]);
    assert!(rules.contains("*.*"), "{rules}");

    // Deletion waits for the objects to go; the ReplicaSets go with their
    // Deployment.
    c.ok(&[
        "delete",
        "deploy",
        "web",
        "--wait=true",
        "--cascade=foreground",
        "--timeout=30s",
    ]);
    c.wait_for(
        &["get", "rs", "-o", "name"],
        "the ReplicaSets deleted",
        |o| o.is_empty(),
    );
    c.ok(&["delete", "-f", &cm, "--wait=true"]);
    assert!(c.fails(&["get", "cm", "app"]).contains("NotFound"));
}

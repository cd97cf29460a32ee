//! A container's environment from ConfigMaps, Secrets and the pod itself.

mod common;

use common::{Cluster, example};

#[test]
fn env_from_configmaps_secrets_and_fields() {
    let c = Cluster::start("env");
    c.import(&example("hello-cmd"), "hello-cmd:v1");
    let manifest = c.dir.join("env.yaml");
    std::fs::write(
        &manifest,
        r#"apiVersion: v1
kind: ConfigMap
metadata: {name: greetings}
data: {text: "hi from a configmap"}
---
apiVersion: v1
kind: Secret
metadata: {name: creds}
stringData: {token: s3cret}
---
apiVersion: v1
kind: Pod
metadata: {name: env-demo, labels: {team: blue}}
spec:
  containers:
  - name: main
    image: hello-cmd:v1
    envFrom:
    - secretRef: {name: creds}
      prefix: SECRET_
    env:
    - name: GREETING
      valueFrom: {configMapKeyRef: {name: greetings, key: text}}
---
apiVersion: v1
kind: Pod
metadata: {name: field-demo, labels: {team: blue}}
spec:
  containers:
  - name: main
    image: hello-cmd:v1
    env:
    - name: GREETING
      valueFrom: {fieldRef: {fieldPath: "metadata.labels['team']"}}
---
apiVersion: v1
kind: Pod
metadata: {name: secret-demo}
spec:
  containers:
  - name: main
    image: hello-cmd:v1
    env:
    - name: GREETING
      valueFrom: {secretKeyRef: {name: creds, key: token}}
---
apiVersion: v1
kind: Pod
metadata: {name: missing-config}
spec:
  containers:
  - name: main
    image: hello-cmd:v1
    env:
    - name: GREETING
      valueFrom: {configMapKeyRef: {name: absent, key: text}}
"#,
    )
    .unwrap();
    c.ok(&["apply", "-f", manifest.to_str().unwrap()]);
    let logs = c.wait_for(&["logs", "env-demo"], "a log line", |o| {
        !o.trim().is_empty()
    });
    assert!(logs.starts_with("hi from a configmap #1"), "{logs}");
    let logs = c.wait_for(&["logs", "field-demo"], "a log line", |o| {
        !o.trim().is_empty()
    });
    assert!(logs.starts_with("blue #1"), "{logs}");
    let logs = c.wait_for(&["logs", "secret-demo"], "a log line", |o| {
        !o.trim().is_empty()
    });
    assert!(logs.starts_with("s3cret #1"), "{logs}");
    let d = c.wait_for(
        &["describe", "pod", "missing-config"],
        "config error",
        |o| o.contains("CreateContainerConfigError"),
    );
    assert!(d.contains("configmap \"absent\" not found"), "{d}");
}

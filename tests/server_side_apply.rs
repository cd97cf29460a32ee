//! `kubectl apply --server-side`: managedFields, conflicts between field
//! managers, `--force-conflicts`, and fields a manager stops applying.

mod common;

use common::Cluster;
use serde_json::Value;

const FULL: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {app: web, tier: front}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: c, image: hello-cmd:v1}]
"#;

const SCALE: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 3
"#;

fn managers(c: &Cluster) -> Vec<(String, String)> {
    let out = c.ok(&[
        "get",
        "deploy",
        "web",
        "-o",
        "json",
        "--show-managed-fields",
    ]);
    let v: Value = serde_json::from_str(&out).unwrap();
    v["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["manager"].as_str().unwrap().to_string(),
                e["operation"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn server_side_apply_tracks_field_managers() {
    let c = Cluster::start("ssa");
    let write = |name: &str, text: &str| {
        let p = c.dir.join(name);
        std::fs::write(&p, text).unwrap();
        p.to_str().unwrap().to_string()
    };
    let full = write("full.yaml", FULL);
    let scale = write("scale.yaml", SCALE);

    let out = c.ok(&["apply", "--server-side", "-f", &full]);
    assert!(
        out.contains("deployment.apps/web serverside-applied"),
        "{out}"
    );
    assert_eq!(managers(&c), [("kubectl".to_string(), "Apply".to_string())]);
    let fields = c.ok(&[
        "get",
        "deploy",
        "web",
        "-o",
        "jsonpath={.metadata.managedFields[0].fieldsV1}",
        "--show-managed-fields",
    ]);
    assert!(
        fields.contains(r#""f:replicas":{}"#) && fields.contains(r#""k:{\"name\":\"c\"}""#),
        "{fields}"
    );
    c.ok(&["apply", "--server-side", "-f", &full]);

    // Another manager changing a field kubectl owns is refused.
    let err = c.fails(&[
        "apply",
        "--server-side",
        "--field-manager=scaler",
        "-f",
        &scale,
    ]);
    assert!(
        err.contains(r#"conflict with "kubectl""#) && err.contains(".spec.replicas"),
        "{err}"
    );
    assert_eq!(
        c.ok(&["get", "deploy", "web", "-o", "jsonpath={.spec.replicas}"]),
        "2"
    );

    // --force-conflicts takes the field over.
    c.ok(&[
        "apply",
        "--server-side",
        "--field-manager=scaler",
        "--force-conflicts",
        "-f",
        &scale,
    ]);
    assert_eq!(
        c.ok(&["get", "deploy", "web", "-o", "jsonpath={.spec.replicas}"]),
        "3"
    );
    let m = managers(&c);
    assert!(
        m.contains(&("scaler".to_string(), "Apply".to_string())),
        "{m:?}"
    );

    // kubectl applies again without the replicas (now scaler's) and without
    // the tier label: replicas stay, the label it owned alone goes.
    let trimmed = FULL
        .replace("  replicas: 2\n", "")
        .replace(", tier: front", "");
    let trimmed = write("trimmed.yaml", &trimmed);
    c.ok(&["apply", "--server-side", "-f", &trimmed]);
    assert_eq!(
        c.ok(&["get", "deploy", "web", "-o", "jsonpath={.spec.replicas}"]),
        "3"
    );
    assert_eq!(
        c.ok(&["get", "deploy", "web", "-o", "jsonpath={.metadata.labels}"]),
        r#"{"app":"web"}"#
    );

    // A write that is not an apply takes the fields it changes: scaling
    // makes the next apply of replicas a conflict with the scaler.
    c.ok(&["scale", "deploy/web", "--replicas=4"]);
    let m = managers(&c);
    let scaler = m
        .iter()
        .find(|(_, op)| op == "Update")
        .map(|(name, _)| name.clone());
    let scaler = scaler.unwrap_or_else(|| panic!("an Update entry for the scale: {m:?}"));
    let err = c.fails(&[
        "apply",
        "--server-side",
        "--field-manager=scaler",
        "-f",
        &scale,
    ]);
    assert!(
        err.contains(&format!("conflict with \"{scaler}\"")) && err.contains(".spec.replicas"),
        "{err}"
    );

    // A server-side dry run changes nothing.
    let bumped = write(
        "bumped.yaml",
        &FULL
            .replace("hello-cmd:v1", "hello-cmd:v2")
            .replace("  replicas: 2\n", ""),
    );
    let dry = c.ok(&[
        "apply",
        "--server-side",
        "--dry-run=server",
        "-f",
        &bumped,
        "-o",
        "jsonpath={.spec.template.spec.containers[0].image}",
    ]);
    assert_eq!(dry, "hello-cmd:v2");
    assert_eq!(
        c.ok(&[
            "get",
            "deploy",
            "web",
            "-o",
            "jsonpath={.spec.template.spec.containers[0].image}"
        ]),
        "hello-cmd:v1"
    );
}

/// `kubectl create` then `kubectl apply --server-side` of the same file:
/// equal values make the appliers co-owners, as Kubernetes does (the
/// server's defaults inside a container and its ports do not conflict);
/// a changed value then conflicts with the creator.
#[test]
fn apply_after_create_shares_equal_fields() {
    let c = Cluster::start("ssa-create");
    let file = c.dir.join("d.yaml");
    let text = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: shared}
spec:
  replicas: 0
  selector: {matchLabels: {app: shared}}
  template:
    metadata: {labels: {app: shared}}
    spec:
      containers:
      - name: nginx
        image: nginx:1
        ports: [{containerPort: 80}]
"#;
    std::fs::write(&file, text).unwrap();
    let f = file.to_str().unwrap();
    c.ok(&["create", "-f", f]);
    c.ok(&["apply", "--server-side", "-f", f]);
    let out = c.ok(&[
        "get",
        "deploy",
        "shared",
        "-o",
        "jsonpath={.metadata.managedFields[*].manager}",
    ]);
    assert_eq!(out.trim(), "kubectl-create kubectl");
    std::fs::write(&file, text.replace("nginx:1", "nginx:2")).unwrap();
    let err = c.fails(&["apply", "--server-side", "-f", f]);
    assert!(
        err.contains("conflict with \"kubectl-create\"") && err.contains(".image"),
        "{err}"
    );
    c.ok(&["apply", "--server-side", "--force-conflicts", "-f", f]);
}

//! CustomResourceDefinitions through kubectl: a definition serves its
//! resource with discovery, OpenAPI (`explain`), printer columns, pruning,
//! defaulting and validation by its schema, the `status` and `scale`
//! subresources, and deletion of its objects when it goes.

mod common;

use common::{Cluster, row};

const CRONTABS: &str = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: crontabs.stable.example.com}
spec:
  group: stable.example.com
  scope: Namespaced
  names: {plural: crontabs, singular: crontab, kind: CronTab, shortNames: [ct], categories: [all]}
  versions:
  - name: v1
    served: true
    storage: true
    subresources:
      status: {}
      scale: {specReplicasPath: .spec.replicas, statusReplicasPath: .status.replicas, labelSelectorPath: .status.selector}
    additionalPrinterColumns:
    - {name: Schedule, type: string, jsonPath: .spec.cronSpec}
    - {name: Replicas, type: integer, jsonPath: .spec.replicas}
    - {name: Ready, type: string, jsonPath: '.status.conditions[?(@.type=="Ready")].status'}
    - {name: Image, type: string, jsonPath: .spec.image, priority: 1}
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            description: What to run and when.
            required: [cronSpec]
            x-kubernetes-validations:
            - {rule: "!has(self.mode) || self.mode != 'Slow' || self.replicas <= 4", message: Slow crontabs run at most 4 replicas}
            - {rule: "self.cronSpec == oldSelf.cronSpec", message: cronSpec is immutable}
            properties:
              cronSpec: {type: string, pattern: '^(\S+\s){4}\S+$', description: The schedule in cron format.}
              image: {type: string, default: busybox}
              replicas: {type: integer, minimum: 0, maximum: 10, default: 1}
              mode: {type: string, enum: [Fast, Slow]}
          status:
            type: object
            properties:
              replicas: {type: integer}
              selector: {type: string}
              conditions:
                type: array
                items:
                  type: object
                  properties: {type: {type: string}, status: {type: string}}
---
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: regions.geo.example.com}
spec:
  group: geo.example.com
  scope: Cluster
  names: {plural: regions, kind: Region}
  versions:
  - name: v1alpha1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec: {type: object, x-kubernetes-preserve-unknown-fields: true}
  - name: v1beta1
    served: true
    storage: false
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec: {type: object, x-kubernetes-preserve-unknown-fields: true}
"#;

const OBJECTS: &str = r#"
apiVersion: stable.example.com/v1
kind: CronTab
metadata: {name: nightly}
spec: {cronSpec: "0 3 * * *", replicas: 2}
---
apiVersion: geo.example.com/v1alpha1
kind: Region
metadata: {name: north}
spec: {anything: {goes: [1, 2]}}
"#;

#[test]
fn kubectl_serves_custom_resources() {
    let mut c = Cluster::start("crds");
    let dir = c.dir.clone();
    let write = |name: &str, text: &str| {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p.to_str().unwrap().to_string()
    };
    let crds = write("crds.yaml", CRONTABS);
    let objects = write("objects.yaml", OBJECTS);

    c.ok(&["apply", "-f", &crds]);
    c.ok(&[
        "wait",
        "--for=condition=Established",
        "crd/crontabs.stable.example.com",
        "crd/regions.geo.example.com",
        "--timeout=20s",
    ]);
    let resources = c.ok(&["api-resources", "--api-group=stable.example.com"]);
    assert_eq!(
        row(&resources, "crontabs"),
        ["crontabs", "ct", "stable.example.com/v1", "true", "CronTab"]
    );
    let crd = c.ok(&["get", "crd", "crontabs.stable.example.com", "-o", "json"]);
    let crd: serde_json::Value = serde_json::from_str(&crd).unwrap();
    assert_eq!(crd["spec"]["names"]["listKind"], "CronTabList");
    assert_eq!(crd["status"]["acceptedNames"]["kind"], "CronTab");
    assert_eq!(crd["status"]["storedVersions"], serde_json::json!(["v1"]));

    // Objects: defaults filled, columns from the definition, short name
    // and category.
    c.ok(&["apply", "-f", &objects]);
    let nightly = row(&c.ok(&["get", "ct"]), "nightly");
    assert_eq!(nightly[1..7], ["0", "3", "*", "*", "*", "2"], "{nightly:?}");
    // No Ready condition yet: an empty cell.
    assert_eq!(nightly.len(), 7, "{nightly:?}");
    let wide = c.ok(&["get", "crontabs.stable.example.com", "-o", "wide"]);
    assert!(wide.lines().next().unwrap().ends_with("IMAGE"), "{wide}");
    assert_eq!(row(&wide, "nightly").last().unwrap(), "busybox");
    assert!(
        c.ok(&["get", "all"])
            .contains("crontab.stable.example.com/nightly")
    );
    let region = c.ok(&[
        "get",
        "region",
        "north",
        "-o",
        "jsonpath={.spec.anything.goes}",
    ]);
    assert_eq!(region, "[1,2]");
    assert_eq!(row(&c.ok(&["get", "regions"]), "north").len(), 2);
    // Both versions serve the same objects; v1beta1 is preferred.
    assert_eq!(
        c.ok(&["get", "region", "north", "-o", "jsonpath={.apiVersion}"]),
        "geo.example.com/v1beta1"
    );
    assert_eq!(
        c.ok(&[
            "get",
            "regions.v1alpha1.geo.example.com",
            "north",
            "-o",
            "jsonpath={.apiVersion}"
        ]),
        "geo.example.com/v1alpha1"
    );
    let crd_list = c.ok(&["get", "crd"]);
    assert_eq!(row(&crd_list, "regions.geo.example.com").len(), 2);
    assert!(crd_list.starts_with("NAME"), "{crd_list}");
    assert!(
        crd_list.lines().next().unwrap().ends_with("CREATED AT"),
        "{crd_list}"
    );

    // Validation by the schema: 422 with field causes; unknown fields are
    // refused under kubectl's strict validation and pruned otherwise.
    let bad = write(
        "bad.yaml",
        "apiVersion: stable.example.com/v1\nkind: CronTab\nmetadata: {name: bad}\nspec: {cronSpec: nope, replicas: 20, mode: Warp}\n",
    );
    let err = c.fails(&["create", "-f", &bad]);
    assert!(err.contains("The CronTab \"bad\" is invalid"), "{err}");
    for cause in [
        "spec.cronSpec: Invalid value: \"nope\": spec.cronSpec in body should match",
        "spec.mode: Unsupported value: \"Warp\": supported values: \"Fast\", \"Slow\"",
        "spec.replicas: Invalid value: 20: spec.replicas in body should be less than or equal to 10",
    ] {
        assert!(err.contains(cause), "{cause} missing from {err}");
    }
    let missing = write(
        "missing.yaml",
        "apiVersion: stable.example.com/v1\nkind: CronTab\nmetadata: {name: bad}\nspec: {replicas: 1}\n",
    );
    assert!(
        c.fails(&["create", "-f", &missing])
            .contains("spec.cronSpec: Required value")
    );
    let extra = write(
        "extra.yaml",
        "apiVersion: stable.example.com/v1\nkind: CronTab\nmetadata: {name: extra}\nspec: {cronSpec: '* * * * *', color: red}\n",
    );
    let err = c.fails(&["create", "-f", &extra]);
    assert!(
        err.contains("strict decoding error: unknown field \"spec.color\""),
        "{err}"
    );
    let out = c.kubectl(&["create", "-f", &extra, "--validate=warn"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown field \"spec.color\""));
    let spec = c.ok(&["get", "ct", "extra", "-o", "jsonpath={.spec}"]);
    let spec: serde_json::Value = serde_json::from_str(&spec).unwrap();
    assert_eq!(
        spec,
        serde_json::json!({"cronSpec": "* * * * *", "image": "busybox", "replicas": 1})
    );

    // OpenAPI from the schema.
    let explain = c.ok(&["explain", "crontab.spec.cronSpec"]);
    assert!(
        explain.contains("The schedule in cron format."),
        "{explain}"
    );
    assert!(c.ok(&["explain", "ct.spec"]).contains("enum: Fast, Slow"));

    // Subresources: the main resource ignores status, /status ignores the
    // rest, and scale reads and writes the definition's paths.
    c.ok(&["scale", "ct", "nightly", "--replicas=4"]);
    c.ok(&[
        "patch", "ct", "nightly", "--subresource=status", "--type=merge", "-p",
        r#"{"status": {"replicas": 4, "selector": "app=nightly", "conditions": [{"type": "Ready", "status": "True"}]}, "spec": {"replicas": 9}}"#,
    ]);
    let nightly = row(&c.ok(&["get", "ct"]), "nightly");
    assert_eq!(nightly[6..8], ["4", "True"], "{nightly:?}");
    c.ok(&[
        "patch",
        "ct",
        "nightly",
        "--type=merge",
        "-p",
        r#"{"status": {"replicas": 0}, "spec": {"mode": "Slow"}}"#,
    ]);
    let scale = c.ok(&[
        "get",
        "--raw",
        "/apis/stable.example.com/v1/namespaces/default/crontabs/nightly/scale",
    ]);
    let scale: serde_json::Value = serde_json::from_str(&scale).unwrap();
    assert_eq!(scale["spec"]["replicas"], 4);
    assert_eq!(
        scale["status"],
        serde_json::json!({"replicas": 4, "selector": "app=nightly"})
    );
    // CEL rules of the schema, plain and transition (oldSelf) ones.
    let err = c.fails(&[
        "patch",
        "ct",
        "nightly",
        "--type=merge",
        "-p",
        r#"{"spec": {"replicas": 5}}"#,
    ]);
    assert!(
        err.contains("spec: Invalid value: \"object\": Slow crontabs run at most 4 replicas"),
        "{err}"
    );
    let err = c.fails(&[
        "patch",
        "ct",
        "nightly",
        "--type=merge",
        "-p",
        r#"{"spec": {"cronSpec": "1 2 3 4 5"}}"#,
    ]);
    assert!(err.contains("cronSpec is immutable"), "{err}");
    // Custom resources have no strategic merge patch, as in Kubernetes.
    let err = c.fails(&[
        "patch",
        "ct",
        "nightly",
        "-p",
        r#"{"spec": {"mode": "Fast"}}"#,
    ]);
    assert!(
        err.contains("application/strategic-merge-patch+json is not supported"),
        "{err}"
    );
    c.ok(&["label", "ct", "nightly", "team=ops"]);
    assert_eq!(
        c.ok(&["get", "ct", "-l", "team=ops", "-o", "name"]),
        "crontab.stable.example.com/nightly\n"
    );

    // A restart serves the same resources from the store.
    c.stop();
    c.boot();
    assert_eq!(row(&c.ok(&["get", "ct"]), "nightly")[6], "4");

    // Deleting the definition deletes its objects, then the resource.
    c.ok(&[
        "delete",
        "crd",
        "crontabs.stable.example.com",
        "--timeout=30s",
    ]);
    let err = c.fails(&["get", "crontabs.stable.example.com"]);
    assert!(
        err.contains("the server doesn't have a resource type"),
        "{err}"
    );
    c.ok(&["apply", "-f", &crds]);
    c.ok(&[
        "wait",
        "--for=condition=Established",
        "crd/crontabs.stable.example.com",
        "--timeout=20s",
    ]);
    assert!(c.ok(&["get", "ct", "-A", "-o", "name"]).is_empty());
    assert!(!c.ok(&["get", "regions", "-o", "name"]).is_empty());

    // Bad definitions are refused with causes.
    let bad_crd = write(
        "bad-crd.yaml",
        "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata: {name: things.example.com}\nspec:\n  group: example.com\n  scope: Global\n  names: {plural: widgets, kind: Widget}\n  versions: [{name: v1, served: true, storage: false}]\n",
    );
    let err = c.fails(&["create", "-f", &bad_crd]);
    for cause in [
        "metadata.name: Invalid value: \"things.example.com\": must be spec.names.plural+\".\"+spec.group",
        "spec.scope: Unsupported value: \"Global\"",
        "must have exactly one version marked as storage version",
        "spec.versions[0].schema.openAPIV3Schema: Required value: schemas are required",
    ] {
        assert!(err.contains(cause), "{cause} missing from {err}");
    }
}

const GREETINGS: &str = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: greetings.demo.example.com}
spec:
  group: demo.example.com
  scope: Namespaced
  names: {plural: greetings, kind: Greeting}
  versions:
  - name: v1
    served: true
    storage: true
    subresources: {status: {}}
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec: {type: object, properties: {message: {type: string}}}
          status: {type: object, properties: {configMap: {type: string}, observedGeneration: {type: integer}}}
"#;

mod greeter {
    //! A kube-rs `Controller` for Greetings: each gets a ConfigMap it owns
    //! holding its message, and a status naming it.

    use std::sync::Arc;
    use std::time::Duration;

    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams};
    use kube::runtime::controller::{Action, Controller};
    use kube::runtime::watcher;
    use kube::{Resource, ResourceExt};
    use serde_json::json;

    pub fn resource() -> ApiResource {
        ApiResource {
            group: "demo.example.com".into(),
            version: "v1".into(),
            api_version: "demo.example.com/v1".into(),
            kind: "Greeting".into(),
            plural: "greetings".into(),
        }
    }

    struct Ctx {
        client: kube::Client,
    }

    async fn reconcile(g: Arc<DynamicObject>, ctx: Arc<Ctx>) -> Result<Action, kube::Error> {
        let ns = g.namespace().unwrap_or_default();
        let name = format!("greeting-{}", g.name_any());
        let owner = g
            .controller_owner_ref(&resource())
            .expect("greetings have uids");
        let cm = json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "ownerReferences": [owner]},
            "data": {"message": g.data["spec"]["message"]},
        });
        let cms: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), &ns);
        cms.patch(
            &name,
            &PatchParams::apply("greeter").force(),
            &Patch::Apply(cm),
        )
        .await?;
        let greetings: Api<DynamicObject> =
            Api::namespaced_with(ctx.client.clone(), &ns, &resource());
        let status =
            json!({"status": {"configMap": name, "observedGeneration": g.meta().generation}});
        greetings
            .patch_status(
                &g.name_any(),
                &PatchParams::default(),
                &Patch::Merge(status),
            )
            .await?;
        Ok(Action::await_change())
    }

    fn retry(_: Arc<DynamicObject>, _: &kube::Error, _: Arc<Ctx>) -> Action {
        Action::requeue(Duration::from_millis(500))
    }

    /// Runs the controller until the future is dropped.
    pub async fn run(client: kube::Client) {
        use futures::StreamExt;
        let greetings: Api<DynamicObject> = Api::all_with(client.clone(), &resource());
        let cms: Api<ConfigMap> = Api::all(client.clone());
        Controller::new_with(greetings, watcher::Config::default(), resource())
            .owns(cms, watcher::Config::default())
            .run(reconcile, retry, Arc::new(Ctx { client }))
            .for_each(|_| async {})
            .await;
    }
}

#[test]
fn a_kube_rs_controller_reconciles_custom_objects() {
    let c = Cluster::start("crd-controller");
    let crd = c.dir.join("greetings.yaml");
    std::fs::write(&crd, GREETINGS).unwrap();
    c.ok(&["apply", "-f", crd.to_str().unwrap()]);
    c.ok(&[
        "wait",
        "--for=condition=Established",
        "crd/greetings.demo.example.com",
        "--timeout=20s",
    ]);

    let rt = tokio::runtime::Runtime::new().unwrap();
    let kubeconfig = c.kubeconfig.clone();
    let controller = rt.spawn(async move {
        let kc = kube::config::Kubeconfig::read_from(&kubeconfig).unwrap();
        let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default())
            .await
            .unwrap();
        greeter::run(kube::Client::try_from(cfg).unwrap()).await;
    });

    let hello = c.dir.join("hello.yaml");
    let greeting = |message: &str| {
        std::fs::write(
            &hello,
            format!("apiVersion: demo.example.com/v1\nkind: Greeting\nmetadata: {{name: hello}}\nspec: {{message: {message}}}\n"),
        )
        .unwrap();
        c.ok(&["apply", "-f", hello.to_str().unwrap()]);
    };
    greeting("hi");
    c.wait_for(
        &[
            "get",
            "cm",
            "greeting-hello",
            "-o",
            "jsonpath={.data.message}",
            "--ignore-not-found",
        ],
        "the controller's ConfigMap",
        |out| out == "hi",
    );
    c.wait_for(
        &[
            "get",
            "greeting",
            "hello",
            "-o",
            "jsonpath={.status.configMap}/{.status.observedGeneration}",
        ],
        "the controller's status",
        |out| out == "greeting-hello/1",
    );
    // A change to the spec is reconciled again.
    greeting("bonjour");
    c.wait_for(
        &[
            "get",
            "cm",
            "greeting-hello",
            "-o",
            "jsonpath={.data.message}",
        ],
        "the updated ConfigMap",
        |out| out == "bonjour",
    );
    c.wait_for(
        &[
            "get",
            "greeting",
            "hello",
            "-o",
            "jsonpath={.status.observedGeneration}",
        ],
        "the status of generation 2",
        |out| out == "2",
    );
    // The ConfigMap is the Greeting's dependent: it goes with it.
    c.ok(&["delete", "greeting", "hello", "--wait=true"]);
    c.wait_for(
        &["get", "cm", "-o", "name"],
        "the ConfigMap garbage collected",
        |out| !out.contains("greeting-hello"),
    );
    controller.abort();
}

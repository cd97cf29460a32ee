//! Kinds that are stored and served as Kubernetes serves them (RBAC,
//! RuntimeClass, PriorityClass, PodDisruptionBudget, networking, quotas,
//! autoscaling, EndpointSlices, volumes and storage classes): applied from
//! manifests, listed with Kubernetes' columns and short names, validated by
//! their schema.

mod common;

use common::{Cluster, row};

const MANIFEST: &str = r#"
apiVersion: node.k8s.io/v1
kind: RuntimeClass
metadata: {name: shoal}
handler: shoal
---
apiVersion: scheduling.k8s.io/v1
kind: PriorityClass
metadata: {name: high}
value: 1000
globalDefault: false
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: reader}
rules: [{apiGroups: [""], resources: [pods], verbs: [get, list]}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: read-pods}
subjects:
- {kind: User, name: jane, apiGroup: rbac.authorization.k8s.io}
- {kind: ServiceAccount, name: robot, namespace: default}
roleRef: {kind: Role, name: reader, apiGroup: rbac.authorization.k8s.io}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: viewer}
rules: [{apiGroups: ["*"], resources: ["*"], verbs: [get]}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: view-all}
subjects: [{kind: Group, name: auditors, apiGroup: rbac.authorization.k8s.io}]
roleRef: {kind: ClusterRole, name: viewer, apiGroup: rbac.authorization.k8s.io}
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {name: web}
spec: {minAvailable: 1, selector: {matchLabels: {app: web}}}
---
apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata: {name: edge}
spec: {controller: example.com/edge}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: web}
spec:
  ingressClassName: edge
  rules:
  - host: web.example.com
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: only-web}
spec: {podSelector: {matchLabels: {app: web}}, policyTypes: [Ingress]}
---
apiVersion: v1
kind: LimitRange
metadata: {name: defaults}
spec: {limits: [{type: Container, default: {memory: 64Mi}}]}
---
apiVersion: v1
kind: ResourceQuota
metadata: {name: pods}
spec: {hard: {pods: "10"}}
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: web}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}
  minReplicas: 1
  maxReplicas: 5
---
apiVersion: apps/v1
kind: ControllerRevision
metadata: {name: web-1}
revision: 1
data: {spec: {template: {metadata: {labels: {app: web}}}}}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: web-abc, labels: {kubernetes.io/service-name: web}}
addressType: IPv4
endpoints: [{addresses: [10.244.0.9]}]
ports: [{name: http, port: 8080, protocol: TCP}]
---
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata: {name: fast, annotations: {storageclass.kubernetes.io/is-default-class: "true"}}
provisioner: example.com/fast
---
apiVersion: v1
kind: PersistentVolume
metadata: {name: disk-1}
spec: {capacity: {storage: 1Gi}, accessModes: [ReadWriteOnce], storageClassName: fast, hostPath: {path: /srv/disk-1}}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: data}
spec: {accessModes: [ReadWriteOnce, ReadOnlyMany], storageClassName: fast, resources: {requests: {storage: 1Gi}}}
"#;

#[test]
fn stored_kinds_apply_list_and_validate() {
    let c = Cluster::start("kinds");
    let manifest = c.dir.join("kinds.yaml");
    std::fs::write(&manifest, MANIFEST).unwrap();
    let applied = c.ok(&["apply", "-f", manifest.to_str().unwrap()]);
    assert_eq!(applied.lines().count(), 18, "{applied}");
    assert!(
        c.ok(&["apply", "-f", manifest.to_str().unwrap()])
            .lines()
            .all(|l| l.ends_with("unchanged"))
    );

    assert_eq!(row(&c.ok(&["get", "runtimeclass"]), "shoal")[1], "shoal");
    // Volumes are stored (no provisioner binds them), with kubectl's columns.
    assert_eq!(row(&c.ok(&["get", "pvc"]), "data")[1], "Pending");
    let pv = row(&c.ok(&["get", "pv"]), "disk-1");
    assert_eq!(pv[1..5], ["1Gi", "RWO", "Retain", "Available"], "{pv:?}");
    let sc = row(&c.ok(&["get", "sc"]), "fast");
    assert_eq!(
        sc[1..5],
        ["(default)", "example.com/fast", "Delete", "Immediate"],
        "{sc:?}"
    );
    assert_eq!(row(&c.ok(&["get", "pc"]), "high")[1..3], ["1000", "false"]);
    let rb = row(&c.ok(&["get", "rolebinding", "-o", "wide"]), "read-pods");
    assert_eq!(rb[1], "Role/reader");
    assert_eq!(rb[3..], ["jane", "default/robot"]);
    let crb = row(
        &c.ok(&["get", "clusterrolebinding", "-o", "wide"]),
        "view-all",
    );
    assert_eq!(
        (crb[1].as_str(), crb[3].as_str()),
        ("ClusterRole/viewer", "auditors")
    );
    assert_eq!(row(&c.ok(&["get", "pdb"]), "web")[1..3], ["1", "N/A"]);
    assert_eq!(
        row(&c.ok(&["get", "ing"]), "web")[1..3],
        ["edge", "web.example.com"]
    );
    assert_eq!(
        row(&c.ok(&["get", "ingressclass"]), "edge")[1],
        "example.com/edge"
    );
    assert_eq!(row(&c.ok(&["get", "netpol"]), "only-web")[1], "app=web");
    c.ok(&[
        "get",
        "limits/defaults",
        "quota/pods",
        "hpa/web",
        "endpointslice/web-abc",
        "role/reader",
        "clusterrole/viewer",
    ]);
    assert_eq!(
        row(&c.ok(&["get", "controllerrevisions"]), "web-1")[1..3],
        ["<none>", "1"]
    );
    // The quota reports what the namespace uses (no pods run here).
    c.wait_for(
        &["get", "quota", "pods", "--no-headers"],
        "quota usage",
        |o| o.contains("pods: 0/10"),
    );
    // HorizontalPodAutoscalers are in the `all` category, as in Kubernetes.
    assert!(
        c.ok(&["get", "all"])
            .contains("horizontalpodautoscaler.autoscaling/web")
    );

    let resources = c.ok(&["api-resources", "--no-headers"]);
    for (name, short, group) in [
        ("runtimeclasses", "", "node.k8s.io/v1"),
        ("priorityclasses", "pc", "scheduling.k8s.io/v1"),
        ("poddisruptionbudgets", "pdb", "policy/v1"),
        ("horizontalpodautoscalers", "hpa", "autoscaling/v2"),
        ("rolebindings", "", "rbac.authorization.k8s.io/v1"),
    ] {
        let line = resources
            .lines()
            .find(|l| l.starts_with(&format!("{name} ")))
            .unwrap_or_else(|| panic!("{name} missing from\n{resources}"));
        assert!(
            line.contains(group) && line.contains(&format!(" {short} ")),
            "{line}"
        );
    }

    // Schema validation: a PriorityClass's value is an integer.
    let bad = c.dir.join("bad.yaml");
    std::fs::write(
        &bad,
        "apiVersion: scheduling.k8s.io/v1\nkind: PriorityClass\nmetadata: {name: broken}\nvalue: high\n",
    )
    .unwrap();
    let err = c.fails(&["apply", "-f", bad.to_str().unwrap()]);
    assert!(err.contains("value"), "{err}");
    assert!(
        c.fails(&["get", "priorityclass", "broken"])
            .contains("NotFound")
    );

    c.ok(&["delete", "-f", manifest.to_str().unwrap()]);
    assert!(
        c.fails(&["get", "runtimeclass", "shoal"])
            .contains("NotFound")
    );
}

#[test]
fn replication_controllers_keep_their_pods() {
    let c = Cluster::start("rc");
    let rc = c.dir.join("rc.yaml");
    // No selector: it defaults to the template's labels, as do the labels.
    std::fs::write(
        &rc,
        "apiVersion: v1\nkind: ReplicationController\nmetadata: {name: web}\nspec:\n  replicas: 2\n  template:\n    metadata: {labels: {app: web}}\n    spec: {containers: [{name: c, image: hello-cmd:v1}]}\n",
    )
    .unwrap();
    c.ok(&["apply", "-f", rc.to_str().unwrap()]);
    assert_eq!(
        c.ok(&[
            "get",
            "rc",
            "web",
            "-o",
            "jsonpath={.spec.selector.app}/{.metadata.labels.app}"
        ]),
        "web/web"
    );
    let pods = |n: usize| {
        c.wait_for(
            &[
                "get",
                "pods",
                "-l",
                "app=web",
                "-o",
                "jsonpath={.items[*].metadata.ownerReferences[0].kind}",
            ],
            "the controller's pods",
            |o| {
                o.split_whitespace()
                    .filter(|k| *k == "ReplicationController")
                    .count()
                    == n
            },
        );
    };
    pods(2);
    c.wait_for(&["get", "rc", "web", "--no-headers"], "rc status", |o| {
        o.split_whitespace().take(3).collect::<Vec<_>>() == ["web", "2", "2"]
    });
    assert!(c.ok(&["get", "all"]).contains("replicationcontroller/web"));
    c.ok(&["scale", "rc", "web", "--replicas=1"]);
    pods(1);
    let bad = c.dir.join("bad-rc.yaml");
    std::fs::write(
        &bad,
        "apiVersion: v1\nkind: ReplicationController\nmetadata: {name: bad}\nspec:\n  selector: {app: other}\n  template:\n    metadata: {labels: {app: web}}\n    spec: {containers: [{name: c, image: i}]}\n",
    )
    .unwrap();
    let err = c.fails(&["apply", "-f", bad.to_str().unwrap()]);
    assert!(
        err.contains("`selector` does not match template `labels`"),
        "{err}"
    );
    c.ok(&["delete", "rc", "web"]);
    c.wait_for(
        &["get", "pods", "-l", "app=web", "-o", "name"],
        "pods gone",
        |o| o.trim().is_empty(),
    );
}

#[test]
fn events_are_served_by_both_event_apis() {
    let c = Cluster::start("events-api");
    let ev = c.dir.join("event.yaml");
    std::fs::write(
        &ev,
        "apiVersion: events.k8s.io/v1\nkind: Event\nmetadata: {name: cm-touched}\neventTime: \"2026-01-01T00:00:00.000000Z\"\nreportingController: example.com/toucher\nreportingInstance: toucher-1\naction: Touch\nreason: Touched\nnote: the configmap was touched\ntype: Normal\nregarding: {kind: ConfigMap, name: settings, namespace: default, apiVersion: v1}\n",
    )
    .unwrap();
    c.ok(&["create", "-f", ev.to_str().unwrap()]);
    // The core API reads the same object under its own field names.
    let core = c.ok(&[
        "get",
        "events",
        "cm-touched",
        "-o",
        "jsonpath={.apiVersion}|{.message}|{.involvedObject.name}|{.reportingComponent}",
    ]);
    assert_eq!(
        core,
        "v1|the configmap was touched|settings|example.com/toucher"
    );
    assert!(
        c.ok(&[
            "get",
            "events",
            "--field-selector",
            "involvedObject.name=settings"
        ])
        .contains("the configmap was touched")
    );
    let patched = c.ok(&[
        "patch",
        "events.v1.events.k8s.io",
        "cm-touched",
        "--type=merge",
        "-p",
        r#"{"note": "touched twice", "deprecatedCount": 2}"#,
        "-o",
        "jsonpath={.apiVersion}|{.note}",
    ]);
    assert_eq!(patched, "events.k8s.io/v1|touched twice");
    assert_eq!(
        c.ok(&[
            "get",
            "events",
            "cm-touched",
            "-o",
            "jsonpath={.message}/{.count}"
        ]),
        "touched twice/2"
    );
    let listed = c.ok(&[
        "get",
        "events.v1.events.k8s.io",
        "-o",
        "jsonpath={.items[*].regarding.name}",
    ]);
    assert!(
        listed.split_whitespace().any(|n| n == "settings"),
        "{listed}"
    );
    c.ok(&["delete", "events.v1.events.k8s.io", "cm-touched"]);
    assert!(
        c.fails(&["get", "events", "cm-touched"])
            .contains("NotFound")
    );
}

/// APIServices are stored and listed with kubectl's columns; a local one
/// is Available, one backed by a Service says why it is not.
#[test]
fn api_services_are_stored_with_their_availability() {
    let c = Cluster::start("apiservices");
    let f = c.dir.join("apiservices.yaml");
    std::fs::write(
        &f,
        "apiVersion: apiregistration.k8s.io/v1\nkind: APIService\nmetadata: {name: v1.example.com}\nspec: {group: example.com, version: v1, groupPriorityMinimum: 100, versionPriority: 10}\n---\napiVersion: apiregistration.k8s.io/v1\nkind: APIService\nmetadata: {name: v1beta1.metrics.k8s.io}\nspec:\n  group: metrics.k8s.io\n  version: v1beta1\n  groupPriorityMinimum: 100\n  versionPriority: 100\n  insecureSkipTLSVerify: true\n  service: {namespace: kube-system, name: metrics-server}\n",
    )
    .unwrap();
    c.ok(&["apply", "-f", f.to_str().unwrap()]);
    let listed = c.wait_for(&["get", "apiservices"], "both with a condition", |o| {
        !o.contains("Unknown") && o.lines().count() == 3
    });
    let local = row(&listed, "v1.example.com");
    assert_eq!(local[1..3], ["Local", "True"], "{listed}");
    let backed = row(&listed, "v1beta1.metrics.k8s.io");
    assert_eq!(backed[1], "kube-system/metrics-server", "{listed}");
    assert_eq!(backed[2..4], ["False", "(ServiceNotFound)"], "{listed}");
    let header: Vec<&str> = listed.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["NAME", "SERVICE", "AVAILABLE", "AGE"]);
    // A name that is not <version>.<group> is refused.
    let bad = c.dir.join("bad.yaml");
    std::fs::write(
        &bad,
        "apiVersion: apiregistration.k8s.io/v1\nkind: APIService\nmetadata: {name: wrong}\nspec: {group: example.com, version: v2, groupPriorityMinimum: 100, versionPriority: 10}\n",
    )
    .unwrap();
    let err = c.fails(&["apply", "-f", bad.to_str().unwrap()]);
    assert!(err.contains("must be v2.example.com"), "{err}");
    c.ok(&["delete", "apiservice", "v1.example.com"]);
}

/// Every built-in kind through kube-rs's typed `Api<K>`: created, read,
/// listed and deleted, each answer decoded into k8s-openapi's type, from
/// the same objects as the Python client's walk (whose models are the
/// stricter about required fields).
#[test]
fn kube_rs_typed_apis_accept_every_kind() {
    use k8s_openapi::api::{
        apps::v1 as apps, autoscaling::v2 as autoscaling, batch::v1 as batch,
        certificates::v1 as certificates, coordination::v1 as coordination, core::v1 as core,
        discovery::v1 as discovery, events::v1 as events, networking::v1 as networking,
        node::v1 as node, policy::v1 as policy, rbac::v1 as rbac, scheduling::v1 as scheduling,
        storage::v1 as storage,
    };
    use k8s_openapi::kube_aggregator::pkg::apis::apiregistration::v1 as apiregistration;
    use k8s_openapi::serde::{Serialize, de::DeserializeOwned};
    use kube::api::{Api, DeleteParams, ListParams, PostParams};
    use serde_json::Value;

    /// Create, get, list and delete `obj` as a `K` through `api`.
    async fn walk<K>(api: Api<K>, obj: &Value) -> Result<(), String>
    where
        K: kube::Resource + Clone + DeserializeOwned + Serialize + std::fmt::Debug,
    {
        let typed: K = serde_json::from_value(obj.clone()).map_err(|e| format!("decode: {e}"))?;
        let name = obj["metadata"]["name"].as_str().unwrap();
        let step = |s: &'static str| move |e: kube::Error| format!("{s}: {e}");
        api.create(&PostParams::default(), &typed)
            .await
            .map_err(step("create"))?;
        api.get(name).await.map_err(step("get"))?;
        api.list(&ListParams::default())
            .await
            .map_err(step("list"))?;
        api.delete(name, &DeleteParams::default())
            .await
            .map_err(step("delete"))?;
        Ok(())
    }

    let c = Cluster::start("kube-rs-kinds");
    let kinds: Value = serde_json::from_str(
        &std::fs::read_to_string(common::repo().join("tests/support/kinds.json")).unwrap(),
    )
    .unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let failures = rt.block_on(async {
        let kc = kube::config::Kubeconfig::read_from(&c.kubeconfig).unwrap();
        let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default())
            .await
            .unwrap();
        let client = kube::Client::try_from(cfg).unwrap();
        let default_ns = kinds["namespace"].as_str().unwrap().to_string();
        let mut failures = Vec::new();
        for obj in kinds["namespaced"].as_array().unwrap() {
            let ns = obj["metadata"]["namespace"]
                .as_str()
                .unwrap_or(&default_ns)
                .to_string();
            let created: Api<core::Namespace> = Api::all(client.clone());
            if created.get_opt(&ns).await.unwrap().is_none() {
                let n = serde_json::from_value(serde_json::json!({"metadata": {"name": ns}}));
                created
                    .create(&PostParams::default(), &n.unwrap())
                    .await
                    .unwrap();
            }
            macro_rules! ns_walk {
                ($t:ty) => {
                    walk(Api::<$t>::namespaced(client.clone(), &ns), obj).await
                };
            }
            let kind = (
                obj["apiVersion"].as_str().unwrap(),
                obj["kind"].as_str().unwrap(),
            );
            let result = match kind {
                ("v1", "ConfigMap") => ns_walk!(core::ConfigMap),
                ("v1", "Secret") => ns_walk!(core::Secret),
                ("v1", "ServiceAccount") => ns_walk!(core::ServiceAccount),
                ("v1", "Service") => ns_walk!(core::Service),
                ("v1", "Pod") => ns_walk!(core::Pod),
                ("v1", "PodTemplate") => ns_walk!(core::PodTemplate),
                ("v1", "ReplicationController") => ns_walk!(core::ReplicationController),
                ("v1", "LimitRange") => ns_walk!(core::LimitRange),
                ("v1", "ResourceQuota") => ns_walk!(core::ResourceQuota),
                ("v1", "PersistentVolumeClaim") => ns_walk!(core::PersistentVolumeClaim),
                ("v1", "Endpoints") => ns_walk!(core::Endpoints),
                ("v1", "Event") => ns_walk!(core::Event),
                ("apps/v1", "Deployment") => ns_walk!(apps::Deployment),
                ("apps/v1", "ReplicaSet") => ns_walk!(apps::ReplicaSet),
                ("apps/v1", "StatefulSet") => ns_walk!(apps::StatefulSet),
                ("apps/v1", "DaemonSet") => ns_walk!(apps::DaemonSet),
                ("apps/v1", "ControllerRevision") => ns_walk!(apps::ControllerRevision),
                ("batch/v1", "Job") => ns_walk!(batch::Job),
                ("batch/v1", "CronJob") => ns_walk!(batch::CronJob),
                ("coordination.k8s.io/v1", "Lease") => ns_walk!(coordination::Lease),
                ("rbac.authorization.k8s.io/v1", "Role") => ns_walk!(rbac::Role),
                ("rbac.authorization.k8s.io/v1", "RoleBinding") => ns_walk!(rbac::RoleBinding),
                ("policy/v1", "PodDisruptionBudget") => ns_walk!(policy::PodDisruptionBudget),
                ("networking.k8s.io/v1", "NetworkPolicy") => ns_walk!(networking::NetworkPolicy),
                ("networking.k8s.io/v1", "Ingress") => ns_walk!(networking::Ingress),
                ("autoscaling/v2", "HorizontalPodAutoscaler") => {
                    ns_walk!(autoscaling::HorizontalPodAutoscaler)
                }
                ("discovery.k8s.io/v1", "EndpointSlice") => ns_walk!(discovery::EndpointSlice),
                ("events.k8s.io/v1", "Event") => ns_walk!(events::Event),
                other => Err(format!("no typed walk for {other:?}")),
            };
            if let Err(e) = result {
                failures.push(format!("{kind:?}: {e}"));
            }
        }
        for obj in kinds["cluster"].as_array().unwrap() {
            macro_rules! walk_all {
                ($t:ty) => {
                    walk(Api::<$t>::all(client.clone()), obj).await
                };
            }
            let kind = (
                obj["apiVersion"].as_str().unwrap(),
                obj["kind"].as_str().unwrap(),
            );
            let result = match kind {
                ("rbac.authorization.k8s.io/v1", "ClusterRole") => walk_all!(rbac::ClusterRole),
                ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding") => {
                    walk_all!(rbac::ClusterRoleBinding)
                }
                ("v1", "PersistentVolume") => walk_all!(core::PersistentVolume),
                ("storage.k8s.io/v1", "StorageClass") => walk_all!(storage::StorageClass),
                ("node.k8s.io/v1", "RuntimeClass") => walk_all!(node::RuntimeClass),
                ("scheduling.k8s.io/v1", "PriorityClass") => walk_all!(scheduling::PriorityClass),
                ("networking.k8s.io/v1", "IngressClass") => walk_all!(networking::IngressClass),
                ("certificates.k8s.io/v1", "CertificateSigningRequest") => {
                    walk_all!(certificates::CertificateSigningRequest)
                }
                ("apiregistration.k8s.io/v1", "APIService") => {
                    walk_all!(apiregistration::APIService)
                }
                other => Err(format!("no typed walk for {other:?}")),
            };
            if let Err(e) = result {
                failures.push(format!("{kind:?}: {e}"));
            }
        }
        // What the cluster makes itself, through typed lists.
        let nodes: Api<core::Node> = Api::all(client.clone());
        if let Err(e) = nodes.list(&ListParams::default()).await {
            failures.push(format!("nodes: {e}"));
        }
        failures
    });
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Responses are written as kube-apiserver writes them: objects, lists and
/// watch events in the field order of their Go types, at every depth, and
/// a newline after each.
#[test]
fn responses_are_written_in_go_field_order() {
    let c = Cluster::start("goorder");
    let f = c.dir.join("d.yaml");
    std::fs::write(
        &f,
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web, labels: {z: '1', a: '2'}}\nspec:\n  selector: {matchLabels: {app: web}}\n  template:\n    metadata: {labels: {app: web}}\n    spec: {restartPolicy: Always, containers: [{name: web, image: hello-http:v1, ports: [{protocol: TCP, containerPort: 8080}]}]}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: cm}\ndata: {b: '1', a: '2'}\nimmutable: false\n",
    )
    .unwrap();
    c.ok(&["apply", "-f", f.to_str().unwrap()]);
    let get = |path: &str| {
        let out = c.kubectl(&["get", "--raw", path]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let d = get("/apis/apps/v1/namespaces/default/deployments/web");
    assert!(
        d.starts_with(r#"{"kind":"Deployment","apiVersion":"apps/v1","metadata":{"name":"web","namespace":"default","uid":"#),
        "{d}"
    );
    // Maps sorted; inside the template, the Go order again.
    assert!(d.contains(r#""labels":{"a":"2","z":"1"}"#), "{d}");
    assert!(
        d.contains(r#"{"name":"web","image":"hello-http:v1","ports":[{"containerPort":8080,"protocol":"TCP"}],"#),
        "{d}"
    );
    let spec = d.find(r#""spec":{"replicas""#).expect("spec then replicas");
    assert!(d[spec..].find(r#""status":"#).is_some(), "{d}");
    assert!(d.ends_with("}\n"), "{d:?}");

    let list = get("/api/v1/namespaces/default/configmaps?fieldSelector=metadata.name%3Dcm");
    assert!(
        list.starts_with(
            r#"{"kind":"ConfigMapList","apiVersion":"v1","metadata":{"resourceVersion":"#
        ),
        "{list}"
    );
    assert!(
        list.contains(r#""items":[{"kind":"ConfigMap","apiVersion":"v1","metadata":{"name":"cm","#),
        "{list}"
    );
    assert!(
        list.contains(r#""immutable":false,"data":{"a":"2","b":"1"}"#),
        "{list}"
    );

    let watch = get(
        "/api/v1/namespaces/default/configmaps?watch=1&timeoutSeconds=1&fieldSelector=metadata.name%3Dcm",
    );
    assert!(
        watch.starts_with(r#"{"type":"ADDED","object":{"kind":"ConfigMap","apiVersion":"v1","metadata":{"name":"cm","#),
        "{watch}"
    );
}

/// A CertificateSigningRequest made with `openssl req` (CN alice, O dev).
const CSR_PEM_BASE64: &str = "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURSBSRVFVRVNULS0tLS0KTUlIWU1JR0FBZ0VBTUI0eERqQU1CZ05WQkFNTUJXRnNhV05sTVF3d0NnWURWUVFLREFOa1pYWXdXVEFUQmdjcQpoa2pPUFFJQkJnZ3Foa2pPUFFNQkJ3TkNBQVFaNFJQY25ZWnNqNTkxTk1LYSsxSkJvNnR4UURlQ1R1TVl2QUpFCnFRRHdLdmQrTWJuamJFVWYwMjJ5VmhkQUphcFlZNlFKUnc3VFpTMFZncFNGN2pHNm9BQXdDZ1lJS29aSXpqMEUKQXdJRFJ3QXdSQUlnWktYT0gyeWNXSDFFRVM1bVlNdWliMndsTkg1RFZOVEZwYVJXczVxaE9vNENJRk0wTTZPWQoxVXNsck5jcHRON1A4bXl4TlAzVGIyQzAybkIwRkhGb0xTMlUKLS0tLS1FTkQgQ0VSVElGSUNBVEUgUkVRVUVTVC0tLS0tCg==";

#[test]
fn certificate_signing_requests_are_stored_checked_and_printed() {
    let mut c = Cluster::start("csr");
    let manifest = c.dir.join("csr.yaml");
    std::fs::write(
        &manifest,
        format!(
            "apiVersion: certificates.k8s.io/v1\nkind: CertificateSigningRequest\nmetadata: {{name: alice}}\n\
             spec:\n  request: {CSR_PEM_BASE64}\n  signerName: kubernetes.io/kube-apiserver-client\n\
             \x20 expirationSeconds: 86400\n  usages: [client auth]\n"
        ),
    )
    .unwrap();
    c.ok(&["apply", "-f", manifest.to_str().unwrap()]);
    let table = c.ok(&["get", "csr"]);
    let header: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        [
            "NAME",
            "AGE",
            "SIGNERNAME",
            "REQUESTOR",
            "REQUESTEDDURATION",
            "CONDITION"
        ]
    );
    let r = row(&table, "alice");
    assert_eq!(r[2], "kubernetes.io/kube-apiserver-client", "{table}");
    // The requester is who asked, whatever the body said.
    assert_eq!(r[3], "shoal-admin", "{table}");
    assert_eq!(r[r.len() - 2..], ["24h", "Pending"], "{table}");

    // The request is what was asked: an update leaves the spec as it was.
    c.ok(&[
        "patch",
        "csr",
        "alice",
        "--type=merge",
        "-p",
        r#"{"spec":{"signerName":"example.com/other"},"metadata":{"labels":{"team":"a"}}}"#,
    ]);
    assert_eq!(
        c.ok(&[
            "get",
            "csr",
            "alice",
            "-o",
            "jsonpath={.spec.signerName} {.metadata.labels.team}"
        ]),
        "kubernetes.io/kube-apiserver-client a"
    );
    // The decision is the status's.
    c.ok(&[
        "patch",
        "csr",
        "alice",
        "--subresource=status",
        "--type=merge",
        "-p",
        r#"{"status":{"conditions":[{"type":"Approved","status":"True","reason":"ByHand","message":"checked"}]}}"#,
    ]);
    // The cluster's signer issues the approved request.
    c.wait_for(
        &["get", "csr", "alice", "--no-headers"],
        "the certificate issued",
        |o| o.split_whitespace().last() == Some("Approved,Issued"),
    );

    // A request that is not one is refused with Kubernetes' causes.
    let bad = c.dir.join("bad.yaml");
    std::fs::write(
        &bad,
        "apiVersion: certificates.k8s.io/v1\nkind: CertificateSigningRequest\nmetadata: {name: bad}\n\
         spec:\n  request: aGVsbG8=\n  signerName: nodomain\n  usages: [client auth, flying]\n",
    )
    .unwrap();
    let err = c.fails(&["apply", "-f", bad.to_str().unwrap()]);
    for cause in [
        "spec.request: Invalid value",
        "PEM block type must be CERTIFICATE REQUEST",
        "spec.signerName: Invalid value",
        "spec.usages[1]: Unsupported value",
    ] {
        assert!(err.contains(cause), "{cause} missing from {err}");
    }
    assert!(c.fails(&["get", "csr", "bad"]).contains("NotFound"));

    // What was accepted survives a restart.
    c.stop();
    c.boot();
    assert_eq!(
        row(&c.ok(&["get", "csr"]), "alice").last().unwrap(),
        "Approved,Issued"
    );
}

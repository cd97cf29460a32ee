//! kubectl's typed commands (`create configmap|secret|deployment|service…`,
//! `expose`) send protobuf. Each object they create must be the object the
//! same command creates from JSON (`--dry-run=client -o json`, then
//! `create -f`), which is Go's own rendering of it.

mod common;

use common::Cluster;
use serde_json::Value;

/// Fields the server assigns differently to every object.
const ASSIGNED: &[&str] = &[
    "/metadata/name",
    "/metadata/uid",
    "/metadata/resourceVersion",
    "/metadata/creationTimestamp",
    "/metadata/managedFields",
    "/spec/clusterIP",
    "/spec/clusterIPs",
    "/status",
];

fn get_json(c: &Cluster, kind: &str, name: &str) -> Value {
    serde_json::from_str(&c.ok(&["get", kind, name, "-o", "json"])).unwrap()
}

/// The object without what the server assigns, and with `from` renamed `to`
/// in label values and selectors (the generators derive those from the name).
fn comparable(mut v: Value) -> Value {
    for p in ASSIGNED {
        let (parent, key) = p.rsplit_once('/').unwrap();
        if let Some(Value::Object(m)) = v.pointer_mut(parent) {
            m.remove(key);
        }
    }
    if let Some(Value::Array(ports)) = v.pointer_mut("/spec/ports") {
        for p in ports {
            if let Value::Object(m) = p {
                m.remove("nodePort");
            }
        }
    }
    drop_nulls(&mut v);
    v
}

/// `null` and absent mean the same (`creationTimestamp: null` in templates).
fn drop_nulls(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.retain(|_, x| !x.is_null());
            m.values_mut().for_each(drop_nulls);
        }
        Value::Array(a) => a.iter_mut().for_each(drop_nulls),
        _ => {}
    }
}

/// Runs `args` (a create generator whose name is `NAME`) once as is, sending
/// protobuf, and once through `--dry-run=client -o json` and `create -f`,
/// sending JSON; the two objects must match.
fn same_as_json(c: &Cluster, kind: &str, args: &[&str]) -> Value {
    let with =
        |name: &str| -> Vec<String> { args.iter().map(|a| a.replace("NAME", name)).collect() };
    let pb: Vec<String> = with("pb");
    let out = c.ok(&pb.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(out.contains("pb"), "{out}");
    let mut json_args = with("js");
    json_args.extend(["--dry-run=client".into(), "-o".into(), "json".into()]);
    let rendered = c.ok(&json_args.iter().map(String::as_str).collect::<Vec<_>>());
    let file = c.dir.join(format!("{kind}.json"));
    std::fs::write(&file, rendered).unwrap();
    c.ok(&["create", "-f", file.to_str().unwrap()]);

    let name = args.iter().find(|a| a.contains("NAME")).unwrap();
    let from_pb = get_json(c, kind, &name.replace("NAME", "pb"));
    let from_json = get_json(c, kind, &name.replace("NAME", "js"));
    let text = |v: &Value| {
        serde_json::to_string_pretty(v)
            .unwrap()
            .replace("\"js", "\"pb")
    };
    assert_eq!(
        text(&comparable(from_pb.clone())),
        text(&comparable(from_json)),
        "{kind}: the protobuf object differs from the JSON one"
    );
    from_pb
}

#[test]
fn kubectl_create_generators_and_expose() {
    let c = Cluster::start("generators");

    let cm = same_as_json(
        &c,
        "configmap",
        &[
            "create",
            "configmap",
            "NAME",
            "--from-literal=a=1",
            "--from-literal=b=two",
            "--from-literal=empty=",
        ],
    );
    assert_eq!(
        cm["data"],
        serde_json::json!({"a": "1", "b": "two", "empty": ""})
    );

    let secret = same_as_json(
        &c,
        "secret",
        &[
            "create",
            "secret",
            "generic",
            "NAME",
            "--from-literal=password=hunter2",
        ],
    );
    assert_eq!(secret["data"]["password"], "aHVudGVyMg==");
    assert_eq!(secret["type"], "Opaque");
    let registry = same_as_json(
        &c,
        "secret",
        &[
            "create",
            "secret",
            "docker-registry",
            "NAME-registry",
            "--docker-server=registry.example",
            "--docker-username=u",
            "--docker-password=p",
        ],
    );
    assert_eq!(registry["type"], "kubernetes.io/dockerconfigjson");

    // replicas 0 is a pointer in Go: the zero is kept, not defaulted to 1.
    let deploy = same_as_json(
        &c,
        "deployment",
        &[
            "create",
            "deployment",
            "NAME",
            "--image=hello-cmd:v1",
            "--replicas=0",
            "--port=8080",
        ],
    );
    assert_eq!(deploy["spec"]["replicas"], 0);
    let container = &deploy["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["ports"][0]["containerPort"], 8080);
    assert!(
        container["ports"][0].get("hostPort").is_none(),
        "{container}"
    );
    assert!(
        deploy["spec"]["template"]["metadata"]
            .get("creationTimestamp")
            .is_none()
    );

    let svc = same_as_json(
        &c,
        "service",
        &["create", "service", "nodeport", "NAME", "--tcp=81:8080"],
    );
    let node_port = svc["spec"]["ports"][0]["nodePort"].as_i64().unwrap();
    assert!(
        (30000..=32767).contains(&node_port),
        "a node port is allocated: {svc}"
    );

    same_as_json(&c, "serviceaccount", &["create", "serviceaccount", "NAME"]);
    same_as_json(
        &c,
        "role",
        &[
            "create",
            "role",
            "NAME",
            "--verb=get,list",
            "--resource=pods",
        ],
    );
    let binding = same_as_json(
        &c,
        "rolebinding",
        &[
            "create",
            "rolebinding",
            "NAME",
            "--role=reader",
            "--serviceaccount=default:robot",
            "--user=jane",
        ],
    );
    assert_eq!(binding["roleRef"]["name"], "reader");
    assert_eq!(binding["subjects"].as_array().unwrap().len(), 2);
    same_as_json(
        &c,
        "priorityclass",
        &[
            "create",
            "priorityclass",
            "NAME",
            "--value=0",
            "--description=low",
        ],
    );
    same_as_json(
        &c,
        "pdb",
        &[
            "create",
            "pdb",
            "NAME",
            "--selector=app=web",
            "--max-unavailable=0",
        ],
    );
    same_as_json(
        &c,
        "ingress",
        &[
            "create",
            "ingress",
            "NAME",
            "--rule=example.com/api*=web:80",
        ],
    );

    // A namespace, then an object in it.
    c.ok(&["create", "namespace", "team"]);
    c.ok(&[
        "create",
        "configmap",
        "inside",
        "-n",
        "team",
        "--from-literal=x=1",
    ]);
    assert_eq!(
        c.ok(&[
            "get",
            "cm",
            "inside",
            "-n",
            "team",
            "-o",
            "jsonpath={.data.x}"
        ]),
        "1"
    );

    // expose reads the deployment and sends a Service.
    c.ok(&[
        "expose",
        "deployment",
        "pb",
        "--name=web",
        "--port=80",
        "--target-port=8080",
    ]);
    let web = get_json(&c, "service", "web");
    assert_eq!(web["spec"]["selector"]["app"], "pb");
    assert_eq!(web["spec"]["ports"][0]["port"], 80);
    assert_eq!(web["spec"]["ports"][0]["targetPort"], 8080);
    assert!(
        web["spec"]["clusterIP"]
            .as_str()
            .unwrap()
            .starts_with("10.96."),
        "{web}"
    );

    // dryRun travels in the query, beside a protobuf body.
    let dry = c.ok(&[
        "create",
        "configmap",
        "dry",
        "--from-literal=x=1",
        "--dry-run=server",
        "-o",
        "jsonpath={.data.x}",
    ]);
    assert_eq!(dry, "1");
    assert!(c.fails(&["get", "configmap", "dry"]).contains("NotFound"));

    // Validation still answers a protobuf body with 422.
    let err = c.fails(&["create", "deployment", "Bad_Name", "--image=hello-cmd:v1"]);
    assert!(
        err.contains("Invalid value") || err.contains("invalid"),
        "{err}"
    );
}

//! Bad input gets a clear error and the node keeps running its other pods.

mod common;

use std::io::Write;

use common::{Cluster, example};

fn write(c: &Cluster, name: &str, text: &str) -> String {
    let p = c.dir.join(name);
    std::fs::File::create(&p)
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    p.to_str().unwrap().to_string()
}

#[test]
fn manifests_modules_and_traps() {
    let c = Cluster::start("bad");
    c.import(&example("hello-cmd"), "hello-cmd:v1");
    c.ok(&["run", "steady", "--image=hello-cmd:v1"]);
    c.wait_for(&["get", "pod", "steady"], "steady Running", |o| {
        o.contains(" Running ")
    });

    let unknown = write(
        &c,
        "unknown.yaml",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: x\nspec:\n  replica: 2\n  selector:\n    matchLabels: {app: x}\n  template:\n    metadata:\n      labels: {app: x}\n    spec:\n      containers:\n      - {name: c, image: i:v1}\n",
    );
    let err = c.fails(&["apply", "--validate=strict", "-f", &unknown]);
    assert!(
        err.contains("Error from server (BadRequest)")
            && err.contains("unknown field \"spec.replica\""),
        "{err}"
    );

    let invalid = write(
        &c,
        "invalid.yaml",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: Bad_Name\nspec:\n  selector:\n    matchLabels: {app: x}\n  template:\n    metadata:\n      labels: {app: other}\n    spec:\n      containers:\n      - {name: c}\n",
    );
    let err = c.fails(&["apply", "-f", &invalid]);
    assert!(
        err.contains("is invalid")
            && err.contains("metadata.name")
            && err.contains("`selector` does not match template `labels`")
            && err.contains("containers[0].image: Required value"),
        "{err}"
    );
    let err = c.fails(&["get", "pod", "nope"]);
    assert!(
        err.contains("Error from server (NotFound): pods \"nope\" not found"),
        "{err}"
    );

    // Bytes that are not Wasm.
    let garbage = c.dir.join("garbage.wasm");
    std::fs::write(&garbage, b"this is not a wasm module").unwrap();
    c.import(&garbage, "garbage:v1");
    c.ok(&["run", "garbage", "--image=garbage:v1"]);
    let d = c.wait_for(
        &["describe", "pod", "garbage"],
        "CreateContainerError",
        |o| o.contains("CreateContainerError"),
    );
    assert!(
        d.contains("is not a WebAssembly module or component"),
        "{d}"
    );
    assert!(d.contains("Warning  Failed"), "an event says why: {d}");

    // An image that was never imported.
    c.ok(&["run", "missing", "--image=never-imported:v1"]);
    let d = c.wait_for(&["describe", "pod", "missing"], "image pull failure", |o| {
        o.contains("ErrImagePull") || o.contains("ImagePullBackOff")
    });
    assert!(d.contains("never-imported:v1"), "{d}");
    assert!(
        c.ok(&["get", "pod", "missing"])
            .contains("ImagePullBackOff")
            || d.contains("ErrImagePull")
    );

    // A command that traps: terminated with a reason, then restarted.
    let trap = c.dir.join("trap.wasm");
    std::fs::write(
        &trap,
        wat::parse_str(
            r#"(module (memory (export "memory") 1) (func (export "_start") unreachable))"#,
        )
        .unwrap(),
    )
    .unwrap();
    c.import(&trap, "trap:v1");
    c.ok(&["run", "trap-once", "--image=trap:v1", "--restart=Never"]);
    let st = c.wait_for(&["get", "pod", "trap-once", "-o", "jsonpath={.status.phase} {.status.containerStatuses[0].state.terminated.reason} {.status.containerStatuses[0].state.terminated.exitCode}"], "terminated", |o| o.starts_with("Failed"));
    assert_eq!(st.trim(), "Failed Error 1");
    let msg = c.ok(&[
        "get",
        "pod",
        "trap-once",
        "-o",
        "jsonpath={.status.containerStatuses[0].state.terminated.message}",
    ]);
    assert!(msg.contains("unreachable"), "the trap is reported: {msg}");
    c.ok(&["run", "trap-loop", "--image=trap:v1"]);
    c.wait_for(
        &[
            "get",
            "pod",
            "trap-loop",
            "-o",
            "jsonpath={.status.containerStatuses[0].restartCount}",
        ],
        "a restart",
        |o| o.trim().parse::<u32>().unwrap_or(0) >= 1,
    );
    let pods = c.ok(&["get", "pods"]);
    assert!(
        pods.lines().any(|l| l.starts_with("trap-loop")
            && (l.contains("CrashLoopBackOff") || l.contains("Error") || l.contains("Running"))),
        "{pods}"
    );

    // The rest of the node is unaffected.
    let steady = c.ok(&[
        "get",
        "pod",
        "steady",
        "-o",
        "jsonpath={.status.phase} {.status.containerStatuses[0].restartCount}",
    ]);
    assert_eq!(steady, "Running 0");
    assert!(c.ok(&["get", "nodes"]).contains(" Ready "));
}

#[test]
fn anonymous_requests_are_unauthorized() {
    let c = Cluster::start("anon");
    let full = std::fs::read_to_string(&c.kubeconfig).unwrap();
    // Without a client certificate (a token shoal does not accept, so
    // kubectl does not prompt for a password).
    let anon: String = full
        .lines()
        .filter(|l| !l.contains("client-certificate-data") && !l.contains("client-key-data"))
        .map(|l| {
            if l == "  user:" {
                "  user: {token: not-a-credential}\n".to_string()
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    let path = c.dir.join("anon-kubeconfig");
    std::fs::write(&path, anon).unwrap();
    let out = std::process::Command::new("kubectl")
        .args(["get", "pods"])
        .env("KUBECONFIG", &path)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("the server has asked for the client to provide credentials"),
        "{err}"
    );
    assert!(
        c.ok(&["get", "pods"]).is_empty(),
        "the admin kubeconfig is accepted"
    );
}

/// Services that cannot have what they ask for are refused with 422 and
/// Kubernetes' causes, and nothing is stored.
#[test]
fn services_asking_for_taken_or_invalid_addresses_and_ports() {
    let c = Cluster::start("bad-services");
    let svc = |name: &str, extra: &str| {
        format!("apiVersion: v1\nkind: Service\nmetadata: {{name: {name}}}\nspec:\n{extra}")
    };
    let first = write(
        &c,
        "first.yaml",
        &svc(
            "first",
            "  type: NodePort\n  clusterIP: 10.96.1.1\n  ports: [{port: 80, nodePort: 30100}]\n",
        ),
    );
    c.ok(&["apply", "-f", &first]);
    let cases = [
        (
            "  clusterIP: 10.96.1.1\n  ports: [{port: 80}]\n",
            "spec.clusterIPs: Invalid value: []string{\"10.96.1.1\"}: failed to allocate IP 10.96.1.1: provided IP is already allocated",
        ),
        (
            "  clusterIP: 192.168.7.7\n  ports: [{port: 80}]\n",
            "is not in the valid range. The range of valid IPs is 10.96.0.0/12",
        ),
        (
            "  type: NodePort\n  ports: [{port: 80, nodePort: 30100}]\n",
            "spec.ports[0].nodePort: Invalid value: 30100: provided port is already allocated",
        ),
        (
            "  type: NodePort\n  ports: [{port: 80, nodePort: 80}]\n",
            "provided port is not in the valid range. The range of valid ports is 30000-32767",
        ),
        (
            "  ports: [{name: a, port: 80}, {name: b, port: 80}]\n",
            "spec.ports[1]: Duplicate value",
        ),
        (
            "  ports: [{name: a, port: 80}, {name: a, port: 81}]\n",
            "spec.ports[1].name: Duplicate value: \"a\"",
        ),
    ];
    for (i, (spec, want)) in cases.iter().enumerate() {
        let file = write(
            &c,
            &format!("bad-{i}.yaml"),
            &svc(&format!("bad-{i}"), spec),
        );
        let err = c.fails(&["apply", "-f", &file]);
        assert!(
            err.contains("is invalid") && err.contains(want),
            "case {i}: {err}"
        );
    }
    let names = c.ok(&["get", "svc", "-o", "name"]);
    assert!(!names.contains("bad-"), "{names}");
    // A NetworkPolicy with an address block that is not one.
    for (i, (block, want)) in [
        (
            "{cidr: 10.0.0.0/33}",
            "spec.ingress[0].from[0].ipBlock.cidr: Invalid value: \"10.0.0.0/33\": must be a valid CIDR value",
        ),
        (
            "{cidr: 10.0.0.0/8, except: [192.168.0.0/16]}",
            "spec.ingress[0].from[0].ipBlock.except[0]: Invalid value: \"192.168.0.0/16\": must be a strict subset of `cidr`",
        ),
    ]
    .iter()
    .enumerate()
    {
        let file = write(
            &c,
            &format!("policy-{i}.yaml"),
            &format!("apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {{name: p{i}}}\nspec:\n  podSelector: {{}}\n  ingress:\n  - from: [{{ipBlock: {block}}}]\n"),
        );
        let err = c.fails(&["apply", "-f", &file]);
        assert!(err.contains("is invalid") && err.contains(want), "{err}");
    }
    assert!(
        c.ok(&["get", "networkpolicies", "-o", "name"])
            .trim()
            .is_empty()
    );
}

/// Nests `leaf` `depth` levels deep under `key`.
fn nested(key: &str, depth: usize) -> serde_json::Value {
    let mut v = serde_json::json!("leaf");
    for _ in 0..depth {
        v = serde_json::json!({ key: v });
    }
    v
}

#[test]
fn hostile_pod_specs_and_deep_objects_are_refused_and_restarts_survive() {
    let mut c = Cluster::start("hostile");
    // Names and paths a node would turn into host paths.
    let pod = |volume: &str, mount: &str| {
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: p}}\nspec:\n  containers:\n  - name: c\n    image: i:v1\n    volumeMounts: [{mount}]\n  volumes: [{volume}]\n"
        )
    };
    for (volume, mount, want) in [
        (
            "{name: /var/lib, configMap: {name: x}}",
            "",
            "spec.volumes[0].name: Invalid value: \"/var/lib\"",
        ),
        (
            "{name: v, configMap: {name: x, items: [{key: k, path: ../../etc/passwd}]}}",
            "",
            "spec.volumes[0].configMap.items[0].path: Invalid value: \"../../etc/passwd\": must not contain '..'",
        ),
        (
            "{name: v, emptyDir: {}}",
            "{name: v, mountPath: /d, subPath: /etc}",
            "spec.containers[0].volumeMounts[0].subPath: Invalid value: \"/etc\": must be a relative path",
        ),
        (
            "{name: v, hostPath: {path: /tmp/../etc}}",
            "",
            "spec.volumes[0].hostPath.path: Invalid value: \"/tmp/../etc\": must not contain '..'",
        ),
    ] {
        let file = write(&c, "hostile.yaml", &pod(volume, mount));
        let err = c.fails(&["apply", "-f", &file]);
        assert!(
            err.contains("The Pod \"p\" is invalid") && err.contains(want),
            "{want}: {err}"
        );
    }

    // A custom resource keeping unknown fields, nested deeply.
    let crd = write(
        &c,
        "crd.yaml",
        "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata: {name: trees.example.com}\nspec:\n  group: example.com\n  names: {kind: Tree, plural: trees}\n  scope: Namespaced\n  versions:\n  - name: v1\n    served: true\n    storage: true\n    schema:\n      openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}\n",
    );
    c.ok(&["apply", "-f", &crd]);
    c.wait_for(&["get", "trees"], "the Tree kind served", |o| {
        o.contains("No resources found")
    });
    let tree = |name: &str, depth: usize| {
        let body = serde_json::json!({"apiVersion": "example.com/v1", "kind": "Tree",
            "metadata": {"name": name}, "spec": nested("branch", depth)});
        write(&c, &format!("{name}.json"), &body.to_string())
    };
    c.ok(&["create", "--validate=false", "-f", &tree("deep", 90)]);
    let err = c.fails(&["create", "--validate=false", "-f", &tree("deeper", 120)]);
    assert!(err.contains("Error from server (BadRequest)"), "{err}");
    // An unknown field nested deeply in a built-in kind.
    let cm = serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "odd"}, "extra": nested("x", 120)});
    let cm = write(&c, "odd.json", &cm.to_string());
    let err = c.fails(&["create", "--validate=false", "-f", &cm]);
    assert!(err.contains("nests more than 100 levels deep"), "{err}");

    // Whatever was accepted is read back after a restart.
    c.stop();
    c.boot();
    let got = c.ok(&["get", "tree", "deep", "-o", "json"]);
    let got: serde_json::Value = serde_json::from_str(&got).unwrap();
    assert_eq!(got["spec"], nested("branch", 90));
}

/// Clients that connect and say nothing, or stop halfway through their
/// request's headers, hold nothing for long: the API keeps answering
/// others at once, and closes them after its handshake (10 s) and header
/// (30 s) timeouts.
#[test]
fn silent_and_slow_clients_are_dropped_while_others_are_served() {
    use std::io::{Read, Write};
    use std::net::TcpStream;
    use std::time::{Duration, Instant};
    let c = Cluster::start("slow-clients");
    let addr = format!("127.0.0.1:{}", c.api_port);
    // Hundreds of connections that never start TLS, and some that send
    // half a ClientHello.
    let mut silent: Vec<TcpStream> = (0..300)
        .map(|_| TcpStream::connect(&addr).unwrap())
        .collect();
    for s in silent.iter_mut().take(50) {
        s.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01]).unwrap();
    }
    let started = Instant::now();
    c.ok(&["get", "namespaces"]);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "kubectl waited {:?} behind silent clients",
        started.elapsed()
    );
    // All of them are closed by the server after the handshake timeout.
    std::thread::sleep(Duration::from_secs(11));
    for s in &mut silent {
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut buf = [0u8; 64];
        match s.read(&mut buf) {
            Ok(0) | Err(_) => {}
            // A TLS alert before the close is a close too.
            Ok(_) => assert!(matches!(s.read(&mut buf), Ok(0) | Err(_))),
        }
    }
    // An open TLS session whose client never finishes a request's headers
    // is closed too, while another is served.
    let script = format!(
        r#"
import socket, ssl, time
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", {port})))
s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
start = time.time()
s.settimeout(60)
try:
    while s.recv(4096):
        pass
except Exception:
    pass
print(int(time.time() - start))
"#,
        port = c.api_port
    );
    let out = std::process::Command::new("python3")
        .args(["-c", &script])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let secs: u64 = text.trim().parse().unwrap_or(99);
    assert!(
        secs < 40,
        "a half-sent request held its connection {secs} s: {text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    c.ok(&["get", "namespaces"]);
}

/// Watches whose clients stop reading hold a bounded amount each, and end
/// (the client lists again, as with kube-apiserver) once they stall, their
/// connections closed; the API keeps serving everyone else meanwhile.
#[test]
fn watches_that_are_not_read_are_bounded_and_ended() {
    use std::io::BufRead;
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};
    const WATCHES: usize = 50;
    let c = Cluster::start("stalled-watches");
    let pid = c.pid();
    let fds = common::open_fds(pid);
    let mut watcher = Command::new("python3")
        .arg(common::repo().join("tests/support/stalled_watches.py"))
        .args([
            &c.api_port.to_string(),
            c.dir.join("pki").to_str().unwrap(),
            &WATCHES.to_string(),
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(watcher.stdout.take().unwrap()).lines();
    assert_eq!(lines.next().unwrap().unwrap(), "watching");
    let deadline = Instant::now() + Duration::from_secs(10);
    // (Give or take a few the process opened or closed meanwhile.)
    while common::open_fds(pid) + 5 < fds + WATCHES {
        assert!(
            Instant::now() < deadline,
            "{} descriptors, {fds} before {WATCHES} watches",
            common::open_fds(pid)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let before = common::rss_kib(pid);
    // 40 ConfigMaps of 900 KiB: 36 MB of events for every watch, 1.8 GB
    // for all of them were nothing bounded.
    let data = c.dir.join("blob");
    std::fs::write(&data, "x".repeat(900 * 1024)).unwrap();
    let started = Instant::now();
    for i in 0..40 {
        c.ok(&[
            "create",
            "configmap",
            &format!("big-{i}"),
            &format!("--from-file=blob={}", data.display()),
        ]);
    }
    let writes = started.elapsed();
    let grown_mib = common::rss_kib(pid).saturating_sub(before) / 1024;
    eprintln!("{WATCHES} unread watches: +{grown_mib} MiB, 40 writes in {writes:?}");
    assert!(
        grown_mib < 500,
        "{WATCHES} unread watches grew shoal by {grown_mib} MiB"
    );
    assert!(
        writes < Duration::from_secs(60),
        "40 writes took {writes:?} beside the unread watches"
    );
    c.ok(&["get", "configmaps", "big-39", "-o", "name"]);
    // Stalled for longer than the API waits: every one is ended and its
    // connection closed.
    std::thread::sleep(Duration::from_secs(35));
    let left = common::open_fds(pid);
    drop(watcher.stdin.take());
    let _ = watcher.wait();
    assert!(
        left < fds + 5,
        "{} descriptors more than before the watches",
        left - fds
    );
    assert!(c.log().contains("a watch of configmaps ended"));
    c.ok(&["get", "namespaces"]);
}

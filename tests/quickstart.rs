//! The README's quick start, step by step, against the real binary with the
//! real kubectl.

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::{Cluster, example, http_get, repo};

fn running_pods(out: &str, prefix: &str) -> usize {
    out.lines()
        .filter(|l| l.starts_with(prefix) && l.contains(" Running "))
        .count()
}

#[test]
fn quick_start_end_to_end() {
    let c = Cluster::start("quickstart");
    let nodes = c.ok(&["get", "nodes"]);
    assert!(
        nodes
            .lines()
            .nth(1)
            .is_some_and(|l| l.starts_with("shoal ") && l.contains(" Ready ")),
        "{nodes}"
    );

    c.import(&example("hello-http"), "hello-http:v1");
    let manifest = repo().join("examples/hello-http/k8s.yaml");
    let manifest = manifest.to_str().unwrap();
    let applied = c.ok(&["apply", "-f", manifest]);
    assert!(
        applied.contains("deployment.apps/hello-http created")
            && applied.contains("service/hello-http created"),
        "{applied}"
    );
    let rollout = c.ok(&[
        "rollout",
        "status",
        "deployment/hello-http",
        "--timeout=60s",
    ]);
    assert!(rollout.contains("successfully rolled out"), "{rollout}");
    let again = c.ok(&["apply", "-f", manifest]);
    assert!(
        again.contains("deployment.apps/hello-http unchanged")
            && again.contains("service/hello-http unchanged"),
        "re-applying the same manifest changes nothing: {again}"
    );

    let wide = c.ok(&["get", "pods", "-o", "wide"]);
    let header = wide.lines().next().unwrap();
    for col in ["NAME", "READY", "STATUS", "RESTARTS", "AGE", "IP", "NODE"] {
        assert!(header.contains(col), "missing column {col}: {header}");
    }
    let rows: Vec<&str> = wide
        .lines()
        .skip(1)
        .filter(|l| l.starts_with("hello-http-"))
        .collect();
    assert_eq!(rows.len(), 2, "{wide}");
    for r in &rows {
        let f: Vec<&str> = r.split_whitespace().collect();
        assert_eq!(f[1], "1/1", "{r}");
        assert_eq!(f[2], "Running", "{r}");
        assert!(
            f[5].starts_with("10.244."),
            "pod IP from the node's CIDR: {r}"
        );
        assert_eq!(f[6], "shoal", "{r}");
    }
    let pod_names: BTreeSet<String> = rows
        .iter()
        .map(|r| r.split_whitespace().next().unwrap().to_string())
        .collect();

    // The Service's endpoints, also as an EndpointSlice that names the pods.
    c.wait_for(
        &[
            "get",
            "endpointslices",
            "-l",
            "kubernetes.io/service-name=hello-http",
            "-o",
            "jsonpath={.items[*].endpoints[*].conditions.ready}",
        ],
        "an EndpointSlice of two ready pods",
        |o| o == "true true",
    );
    let sliced: BTreeSet<String> = c
        .ok(&[
            "get",
            "endpointslices",
            "-l",
            "kubernetes.io/service-name=hello-http",
            "-o",
            "jsonpath={.items[*].endpoints[*].targetRef.name}",
        ])
        .split_whitespace()
        .map(String::from)
        .collect();
    assert_eq!(sliced, pod_names);
    let port = c.node_port("hello-http");
    assert!((30000..=32767).contains(&port));
    let mut served = BTreeSet::new();
    for i in 0..10 {
        let (code, body) = http_get(port, &format!("/hello?i={i}")).expect("NodePort answers");
        assert_eq!(code, 200, "{body}");
        assert!(
            body.starts_with(&format!("Hello from shoal! GET /hello?i={i} (served by ")),
            "{body}"
        );
        served.insert(
            body.trim()
                .rsplit(' ')
                .next()
                .unwrap()
                .trim_end_matches(')')
                .to_string(),
        );
    }
    assert_eq!(served, pod_names, "requests spread over both replicas");

    c.ok(&["scale", "deployment/hello-http", "--replicas=5"]);
    c.wait_for(&["get", "pods"], "5 running replicas", |o| {
        running_pods(o, "hello-http-") == 5
    });
    c.ok(&[
        "rollout",
        "status",
        "deployment/hello-http",
        "--timeout=60s",
    ]);
    c.ok(&["scale", "deployment/hello-http", "--replicas=1"]);
    c.wait_for(&["get", "pods"], "1 replica", |o| {
        o.lines().filter(|l| l.starts_with("hello-http-")).count() == 1
            && running_pods(o, "hello-http-") == 1
    });
    let deploy = c.ok(&["get", "deployment", "hello-http"]);
    assert!(
        deploy
            .lines()
            .nth(1)
            .is_some_and(|l| l.split_whitespace().collect::<Vec<_>>()[1..4] == ["1/1", "1", "1"]),
        "{deploy}"
    );

    // A template change rolls the Deployment onto a new ReplicaSet.
    c.import(&example("hello-http"), "hello-http:v2");
    c.ok(&[
        "set",
        "image",
        "deployment/hello-http",
        "hello=hello-http:v2",
    ]);
    let rollout = c.ok(&[
        "rollout",
        "status",
        "deployment/hello-http",
        "--timeout=60s",
    ]);
    assert!(rollout.contains("successfully rolled out"), "{rollout}");
    let images = c.wait_for(
        &[
            "get",
            "pods",
            "-o",
            "jsonpath={range .items[*]}{.spec.containers[0].image} {.status.phase}{\"\\n\"}{end}",
        ],
        "only v2 pods",
        |o| {
            let lines: Vec<&str> = o.lines().filter(|l| l.starts_with("hello-http")).collect();
            lines.len() == 1 && lines[0] == "hello-http:v2 Running"
        },
    );
    assert!(!images.contains("hello-http:v1"));
    let rs = c.ok(&["get", "rs", "-l", "app=hello-http"]);
    assert_eq!(rs.lines().count(), 3, "old and new ReplicaSets: {rs}");

    c.import(&example("hello-cmd"), "hello-cmd:v1");
    c.ok(&[
        "apply",
        "-f",
        repo().join("examples/hello-cmd/k8s.yaml").to_str().unwrap(),
    ]);
    c.wait_for(&["get", "pod", "hello-cmd"], "hello-cmd Running", |o| {
        o.contains(" Running ")
    });
    let logs = c.wait_for(&["logs", "hello-cmd"], "two log lines", |o| {
        o.lines().count() >= 2
    });
    assert!(
        logs.lines().next().unwrap() == "hello from a wasm pod #1",
        "{logs}"
    );

    let numbers: Vec<u64> = c
        .follow_logs("hello-cmd", &["--tail=1"], 3, Duration::from_secs(15))
        .iter()
        .map(|line| line.rsplit('#').next().unwrap().parse().unwrap())
        .collect();
    assert_eq!(
        numbers.len(),
        3,
        "logs -f keeps streaming new lines: {numbers:?}"
    );
    assert!(numbers.windows(2).all(|w| w[1] == w[0] + 1), "{numbers:?}");

    let describe = c.ok(&["describe", "pod", "hello-cmd"]);
    for want in [
        "Status:           Running",
        "Conditions:",
        "Ready             True",
        "Events:",
        "Scheduled",
        "Started container hello",
    ] {
        let squeezed: String = describe.split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(
            squeezed.contains(&want.split_whitespace().collect::<Vec<_>>().join(" ")),
            "describe lacks {want:?}:\n{describe}"
        );
    }
    // Events are listed in the order they happened.
    let reasons: Vec<&str> = describe
        .lines()
        .skip_while(|l| !l.starts_with("Events:"))
        .filter_map(|l| l.split_whitespace().nth(1))
        .filter(|r| ["Scheduled", "Pulled", "Created", "Started"].contains(r))
        .collect();
    assert_eq!(
        reasons,
        ["Scheduled", "Pulled", "Created", "Started"],
        "{describe}"
    );

    let deleted = c.ok(&["delete", "-f", manifest]);
    assert!(
        deleted.contains("deployment.apps \"hello-http\" deleted"),
        "{deleted}"
    );
    c.wait_for(&["get", "pods"], "hello-http pods gone", |o| {
        !o.contains("hello-http-")
    });
    assert!(
        c.fails(&["get", "deployment", "hello-http"])
            .contains("NotFound")
    );
    assert!(c.ok(&["get", "rs"]).trim().is_empty() || !c.ok(&["get", "rs"]).contains("hello-http"));
    let deadline = Instant::now() + Duration::from_secs(10);
    while http_get(port, "/").is_some_and(|(code, _)| code == 200) {
        assert!(
            Instant::now() < deadline,
            "the NodePort still serves after the Service is gone"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    c.ok(&["delete", "pod", "hello-cmd"]);
    c.wait_for(&["get", "pods"], "no pods", |o| {
        o.trim().is_empty() || !o.contains("hello-cmd")
    });
}

#[test]
fn restart_keeps_every_object() {
    let mut c = Cluster::start("restart");
    let objects = c.dir.join("objects.yaml");
    std::fs::write(&objects, "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: keep}\ndata: {a: \"1\"}\n---\napiVersion: v1\nkind: Namespace\nmetadata: {name: other}\n").unwrap();
    c.ok(&["apply", "-f", objects.to_str().unwrap()]);
    let before = c.ok(&[
        "get",
        "configmap",
        "keep",
        "-o",
        "jsonpath={.metadata.uid} {.metadata.resourceVersion} {.data.a}",
    ]);
    assert!(
        c.stop().success(),
        "clean exit on SIGINT:\n{}",
        common::tail(&c.log(), 20)
    );
    c.boot();
    let after = c.ok(&[
        "get",
        "configmap",
        "keep",
        "-o",
        "jsonpath={.metadata.uid} {.metadata.resourceVersion} {.data.a}",
    ]);
    assert_eq!(before, after);
    assert!(c.ok(&["get", "ns", "other"]).contains("Active"));
    c.wait_for(&["get", "nodes"], "node Ready after restart", |o| {
        o.contains(" Ready ")
    });
    let next = c.dir.join("next.yaml");
    std::fs::write(
        &next,
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: next}\ndata: {b: \"2\"}\n",
    )
    .unwrap();
    c.ok(&["apply", "-f", next.to_str().unwrap()]);
    let rv_next: u64 = c
        .ok(&[
            "get",
            "configmap",
            "next",
            "-o",
            "jsonpath={.metadata.resourceVersion}",
        ])
        .parse()
        .unwrap();
    let rv_keep: u64 = before.split(' ').nth(1).unwrap().parse().unwrap();
    assert!(rv_next > rv_keep, "revisions keep growing across restarts");
}

#[test]
fn a_crash_loses_no_write() {
    // The applied state is not fsynced on each write, so after a crash it
    // lags the log: startup re-applies the log before anything reads it.
    let mut c = Cluster::start("crash");
    c.ok(&["create", "configmap", "kept", "--from-literal=b=2"]);
    c.crash();
    c.boot();
    assert_eq!(
        c.ok(&["get", "configmap", "kept", "-o", "jsonpath={.data.b}"]),
        "2"
    );
    assert!(c.ok(&["get", "ns", "kube-system"]).contains("Active"));
}

//! Deleting an HTTP pod lets the requests it is serving finish within the
//! grace period, and stops them when it ends.

mod common;

use std::time::{Duration, Instant};

use common::{Cluster, example, http_get};

fn web(name: &str) -> String {
    format!(
        r#"---
apiVersion: v1
kind: Pod
metadata: {{name: {name}, labels: {{app: {name}}}}}
spec:
  containers:
  - {{name: main, image: hello-http:v1, ports: [{{containerPort: 8080}}]}}
---
apiVersion: v1
kind: Service
metadata: {{name: {name}}}
spec:
  type: NodePort
  selector: {{app: {name}}}
  ports: [{{port: 80, targetPort: 8080}}]
"#
    )
}

fn wait_serving(port: u16) {
    for _ in 0..100 {
        if http_get(port, "/").is_some_and(|(code, _)| code == 200) {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("the service never answered");
}

#[test]
fn in_flight_requests_finish_within_the_grace_period() {
    let c = Cluster::start("graceful");
    c.import(&example("hello-http"), "hello-http:v1");
    let manifest = c.dir.join("web.yaml");
    std::fs::write(&manifest, web("patient") + &web("hasty")).unwrap();
    c.ok(&["apply", "-f", manifest.to_str().unwrap()]);

    // Default grace period (30 s): a 2 s request started before the delete
    // is answered in full, and the pod goes once it is.
    let port = c.node_port("patient");
    wait_serving(port);
    let slow = std::thread::spawn(move || http_get(port, "/sleep?2000"));
    std::thread::sleep(Duration::from_millis(400));
    let began = Instant::now();
    c.ok(&["delete", "pod", "patient", "--wait=true"]);
    let took = began.elapsed();
    let (code, body) = slow
        .join()
        .unwrap()
        .expect("the in-flight request is answered");
    assert_eq!(code, 200);
    assert!(
        body.contains("GET /sleep?2000 (served by patient)"),
        "{body}"
    );
    assert!(
        took >= Duration::from_millis(1000) && took < Duration::from_secs(20),
        "the delete waits for the request, not the whole grace period: {took:?}"
    );

    // A 1 s grace period cuts a 20 s request off.
    let port = c.node_port("hasty");
    wait_serving(port);
    let slow = std::thread::spawn(move || {
        let began = Instant::now();
        (http_get(port, "/sleep?20000"), began.elapsed())
    });
    std::thread::sleep(Duration::from_millis(400));
    c.ok(&["delete", "pod", "hasty", "--grace-period=1", "--wait=true"]);
    let (answer, after) = slow.join().unwrap();
    assert!(
        after < Duration::from_secs(10),
        "the request was stopped with the grace period: {after:?}"
    );
    assert!(
        answer.as_ref().is_none_or(|(code, _)| *code != 200),
        "a stopped request is not a success: {answer:?}"
    );
}

/// A command asked to stop (the stop file, for a pod that says it looks)
/// ends within the grace period instead of being cancelled at its end, and
/// one that did not say so is cancelled at once; preStop hooks run first
/// and the deletion waits for them; a failing postStart hook restarts its
/// container.
#[test]
fn hooks_run_and_commands_are_asked_to_stop() {
    let c = Cluster::start("hooks");
    c.import(&example("hello-cmd"), "hello-cmd:v1");
    c.import(&example("hello-http"), "hello-http:v1");
    let manifest = c.dir.join("hooks.yaml");
    std::fs::write(
        &manifest,
        r#"apiVersion: v1
kind: Pod
metadata: {name: polite, annotations: {shoal.dev/stop-file: "true"}}
spec:
  terminationGracePeriodSeconds: 30
  containers:
  - name: main
    image: hello-cmd:v1
    env: [{name: INTERVAL, value: "60"}]
    lifecycle: {preStop: {sleep: {seconds: 2}}}
---
apiVersion: v1
kind: Pod
metadata: {name: abrupt}
spec:
  terminationGracePeriodSeconds: 30
  containers:
  - {name: main, image: hello-cmd:v1, env: [{name: INTERVAL, value: "60"}]}
---
apiVersion: v1
kind: Pod
metadata: {name: stubborn}
spec:
  terminationGracePeriodSeconds: 3
  containers:
  - name: main
    image: hello-cmd:v1
    env: [{name: INTERVAL, value: "60"}]
    lifecycle: {preStop: {sleep: {seconds: 3600}}}
---
apiVersion: v1
kind: Pod
metadata: {name: draining}
spec:
  containers:
  - name: web
    image: hello-http:v1
    ports: [{containerPort: 8080}]
    lifecycle: {preStop: {httpGet: {path: "/sleep?1500", port: 8080}}}
---
apiVersion: v1
kind: Pod
metadata: {name: unwarmed}
spec:
  containers:
  - name: web
    image: hello-http:v1
    ports: [{containerPort: 8080}]
    lifecycle: {postStart: {httpGet: {path: "/status?500", port: 8080}}}
"#,
    )
    .unwrap();
    c.ok(&["apply", "-f", manifest.to_str().unwrap()]);
    for pod in ["polite", "abrupt", "stubborn", "draining"] {
        c.wait_for(
            &["get", "pod", pod, "-o", "jsonpath={.status.phase}"],
            "the pod to run",
            |s| s == "Running",
        );
    }
    c.wait_for(&["logs", "polite"], "the first line", |s| s.contains("#1"));

    // The command: the preStop sleep, then the stop file; it says so and
    // exits long before its 30 s are up.
    let (lines, took) = std::thread::scope(|scope| {
        let follow = scope.spawn(|| c.follow_logs("polite", &[], 2, Duration::from_secs(40)));
        std::thread::sleep(Duration::from_millis(500));
        let began = Instant::now();
        c.ok(&["delete", "pod", "polite", "--wait=true"]);
        (follow.join().unwrap(), began.elapsed())
    });
    assert_eq!(
        lines.last().map(String::as_str),
        Some("asked to stop after 1 lines"),
        "{lines:?}"
    );
    assert!(
        took >= Duration::from_secs(2) && took < Duration::from_secs(20),
        "the preStop hook's 2 s, not the 30 s grace period: {took:?}"
    );

    // A command that did not say it would look is cancelled at once.
    let began = Instant::now();
    c.ok(&["delete", "pod", "abrupt", "--wait=true"]);
    assert!(
        began.elapsed() < Duration::from_secs(10),
        "{:?}",
        began.elapsed()
    );

    // A preStop hook that never returns is cut at the grace period.
    let began = Instant::now();
    c.ok(&["delete", "pod", "stubborn", "--wait=true"]);
    let took = began.elapsed();
    assert!(
        took >= Duration::from_secs(2) && took < Duration::from_secs(15),
        "the 3 s grace period, not the hook's hour: {took:?}"
    );

    // An HTTP component's preStop request is served before it goes.
    let began = Instant::now();
    c.ok(&["delete", "pod", "draining", "--wait=true"]);
    let took = began.elapsed();
    assert!(
        took >= Duration::from_millis(1500) && took < Duration::from_secs(20),
        "{took:?}"
    );

    // A failed postStart hook restarts the container.
    c.wait_for(
        &[
            "get",
            "events",
            "--field-selector",
            "involvedObject.name=unwarmed",
            "-o",
            "jsonpath={.items[*].message}",
        ],
        "the hook's failure",
        |s| s.contains("PostStartHook failed: HTTP probe failed with statuscode: 500"),
    );
    c.wait_for(
        &[
            "get",
            "pod",
            "unwarmed",
            "-o",
            "jsonpath={.status.containerStatuses[0].restartCount}",
        ],
        "a restart",
        |s| s.parse::<u32>().is_ok_and(|n| n >= 1),
    );
}

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

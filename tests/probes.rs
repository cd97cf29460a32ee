//! Container probes through the real binary and kubectl: a readiness probe
//! gates a pod's Ready condition and its Service's endpoints, and follows
//! the container's health both ways; a liveness or startup probe that fails
//! restarts the container with the kubelet's events; a probe against a
//! port nothing serves, or one answered too slowly, fails with the reason.
//! `exec` probes and hooks run their commands in the pod's sandbox; `grpc`
//! probes call gRPC's health check.

mod common;

use common::{Cluster, example};

fn pod(name: &str, extra: &str) -> String {
    format!(
        r#"---
apiVersion: v1
kind: Pod
metadata: {{name: {name}, labels: {{app: {name}}}}}
spec:
  containers:
  - name: hello
    image: hello-http:v1
    ports: [{{containerPort: 8080, name: http}}]
{extra}
"#
    )
}

fn ready(c: &Cluster, name: &str) -> String {
    c.ok(&[
        "get",
        "pod",
        name,
        "-o",
        "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}",
    ])
}

/// Waits for pod `name` to be Ready.
fn wait_ready(c: &Cluster, name: &str) {
    c.wait_for(
        &[
            "get",
            "pod",
            name,
            "-o",
            "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}",
        ],
        &format!("{name} to be Ready"),
        |s| s == "True",
    );
}

/// The messages of `name`'s events once one contains `text`.
fn wait_event(c: &Cluster, name: &str, text: &str) -> String {
    c.wait_for(
        &[
            "get",
            "events",
            "--field-selector",
            &format!("involvedObject.name={name}"),
            "-o",
            "jsonpath={range .items[*]}{.reason}: {.message}{\"\\n\"}{end}",
        ],
        text,
        |out| out.contains(text),
    )
}

#[test]
fn probes_gate_readiness_and_restart_unhealthy_containers() {
    let c = Cluster::start("probes");
    c.import(&example("hello-http"), "hello-http:v1");
    let health = c.dir.join("health");
    std::fs::create_dir_all(&health).unwrap();
    std::fs::write(health.join("ok"), "").unwrap();
    let gated = format!(
        r#"    readinessProbe:
      httpGet: {{path: "/exists?/health/ok", port: http}}
      periodSeconds: 1
      failureThreshold: 1
    volumeMounts: [{{name: health, mountPath: /health}}]
  volumes:
  - name: health
    hostPath: {{path: {}, type: Directory}}
---
apiVersion: v1
kind: Service
metadata: {{name: gated}}
spec:
  selector: {{app: gated}}
  ports: [{{port: 80, targetPort: 8080}}]"#,
        health.display()
    );
    let manifest = [
        pod("gated", &gated),
        pod(
            "refused",
            "    readinessProbe: {tcpSocket: {port: 9999}, periodSeconds: 1}",
        ),
        pod(
            "hung",
            "    readinessProbe: {httpGet: {path: \"/sleep?5000\", port: 8080}, periodSeconds: 1, timeoutSeconds: 1}",
        ),
        pod(
            "sick",
            "    livenessProbe: {httpGet: {path: \"/status?500\", port: 8080}, periodSeconds: 1, failureThreshold: 2}",
        ),
        pod(
            "slow",
            "    startupProbe: {httpGet: {path: \"/status?503\", port: 8080}, periodSeconds: 1, failureThreshold: 2}",
        ),
    ]
    .concat();
    let file = c.dir.join("probes.yaml");
    std::fs::write(&file, manifest).unwrap();
    c.ok(&["apply", "-f", file.to_str().unwrap()]);

    // Ready once the probe passes, and in the Service's endpoints.
    c.wait_for(
        &[
            "get",
            "pod",
            "gated",
            "-o",
            "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}",
        ],
        "gated to be Ready",
        |s| s == "True",
    );
    let ip = c.ok(&["get", "pod", "gated", "-o", "jsonpath={.status.podIP}"]);
    c.wait_for(
        &[
            "get",
            "endpoints",
            "gated",
            "-o",
            "jsonpath={.subsets[*].addresses[*].ip}",
        ],
        "gated's address among the ready endpoints",
        |s| s.trim() == ip.trim(),
    );
    // Unhealthy: not Ready, out of the endpoints, with the reason.
    std::fs::remove_file(health.join("ok")).unwrap();
    c.wait_for(
        &[
            "get",
            "endpoints",
            "gated",
            "-o",
            "jsonpath={.subsets[*].addresses[*].ip}|{.subsets[*].notReadyAddresses[*].ip}",
        ],
        "gated's address among the endpoints not ready",
        |s| s.trim() == format!("|{}", ip.trim()),
    );
    assert_eq!(ready(&c, "gated"), "False");
    wait_event(
        &c,
        "gated",
        "Unhealthy: Readiness probe failed: HTTP probe failed with statuscode: 503",
    );
    let restarts = c.ok(&[
        "get",
        "pod",
        "gated",
        "-o",
        "jsonpath={.status.containerStatuses[0].restartCount}",
    ]);
    assert_eq!(restarts, "0", "readiness never restarts a container");
    // Healthy again: back in.
    std::fs::write(health.join("ok"), "").unwrap();
    c.wait_for(
        &[
            "get",
            "endpoints",
            "gated",
            "-o",
            "jsonpath={.subsets[*].addresses[*].ip}",
        ],
        "gated back among the ready endpoints",
        |s| s.trim() == ip.trim(),
    );

    // A port nothing serves: never Ready, and the event says why.
    let refused = wait_event(&c, "refused", "connect: connection refused");
    assert!(
        refused.contains("Unhealthy: Readiness probe failed: dial tcp ")
            && refused.contains(":9999: connect: connection refused"),
        "{refused}"
    );
    assert_eq!(ready(&c, "refused"), "False");

    // An answer slower than the probe's timeout is a failure.
    wait_event(
        &c,
        "hung",
        "context deadline exceeded (Client.Timeout exceeded while awaiting headers)",
    );
    assert_eq!(ready(&c, "hung"), "False");

    // A failing liveness probe restarts the container, as SIGKILL ends a
    // process.
    wait_event(
        &c,
        "sick",
        "Killing: Container hello failed liveness probe, will be restarted",
    );
    wait_event(
        &c,
        "sick",
        "Unhealthy: Liveness probe failed: HTTP probe failed with statuscode: 500",
    );
    c.wait_for(
        &[
            "get",
            "pod",
            "sick",
            "-o",
            "jsonpath={.status.containerStatuses[0].restartCount} {.status.containerStatuses[0].lastState.terminated.exitCode}",
        ],
        "sick to be restarted",
        |s| {
            let mut f = s.split_whitespace();
            f.next().and_then(|n| n.parse::<u32>().ok()).unwrap_or(0) >= 1
                && f.next() == Some("137")
        },
    );

    // A startup probe that never passes: not started, not Ready, restarted.
    wait_event(
        &c,
        "slow",
        "Killing: Container hello failed startup probe, will be restarted",
    );
    let slow = c.ok(&[
        "get",
        "pod",
        "slow",
        "-o",
        "jsonpath={.status.containerStatuses[0].started} {.status.containerStatuses[0].ready}",
    ]);
    assert_eq!(slow, "false false");
    wait_event(
        &c,
        "slow",
        "Unhealthy: Startup probe failed: HTTP probe failed with statuscode: 503",
    );
}

#[test]
fn exec_and_grpc_probes_and_exec_hooks_run_in_the_pod() {
    let c = Cluster::start("probes-exec");
    c.import(&example("hello-http"), "hello-http:v1");
    let host = c.dir.join("hooks");
    std::fs::create_dir_all(&host).unwrap();
    let data = "    volumeMounts: [{name: data, mountPath: /data}]
  volumes: [{name: data, emptyDir: {}}]";
    let manifest = [
        pod(
            "execready",
            &format!(
                "    readinessProbe: {{exec: {{command: [cat, /data/ready]}}, periodSeconds: 1}}\n{data}"
            ),
        ),
        pod(
            "execlive",
            "    livenessProbe: {exec: {command: [sh, -c, 'echo sick; exit 3']}, periodSeconds: 1, failureThreshold: 1}",
        ),
        pod(
            "grpcok",
            "    readinessProbe: {grpc: {port: 8080}, periodSeconds: 1}",
        ),
        pod(
            "grpcsick",
            &format!(
                "    readinessProbe: {{grpc: {{port: 8080, service: /data/serving}}, periodSeconds: 1}}\n{data}"
            ),
        ),
        pod(
            "hooked",
            &format!(
                r#"    lifecycle:
      postStart: {{exec: {{command: [sh, -c, "echo started > /hooks/post"]}}}}
      preStop: {{exec: {{command: [sh, -c, "echo stopping > /hooks/pre"]}}}}
    volumeMounts: [{{name: hooks, mountPath: /hooks}}]
  volumes:
  - name: hooks
    hostPath: {{path: {}, type: Directory}}"#,
                host.display()
            ),
        ),
    ]
    .concat();
    let file = c.dir.join("probes.yaml");
    std::fs::write(&file, manifest).unwrap();
    c.ok(&["apply", "-f", file.to_str().unwrap()]);

    // exec: the command's output is the failure's reason; once the file is
    // there the pod is Ready.
    wait_event(
        &c,
        "execready",
        "Unhealthy: Readiness probe failed: cat: /data/ready:",
    );
    assert_eq!(ready(&c, "execready"), "False");
    c.ok(&["exec", "execready", "--", "touch", "/data/ready"]);
    wait_ready(&c, "execready");
    wait_event(&c, "execlive", "Unhealthy: Liveness probe failed: sick");
    wait_event(
        &c,
        "execlive",
        "Killing: Container hello failed liveness probe, will be restarted",
    );

    // grpc: the health check, served in-process by the component.
    wait_ready(&c, "grpcok");
    wait_event(
        &c,
        "grpcsick",
        "Unhealthy: Readiness probe failed: service unhealthy (responded with \"NOT_SERVING\")",
    );
    assert_eq!(ready(&c, "grpcsick"), "False");
    c.ok(&["exec", "grpcsick", "--", "touch", "/data/serving"]);
    wait_ready(&c, "grpcsick");

    // exec hooks: postStart after the start, preStop before the stop.
    c.wait_for(&["get", "pod", "hooked"], "hooked running", |o| {
        o.contains("Running")
    });
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !host.join("post").exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let post = std::fs::read_to_string(host.join("post")).unwrap_or_default();
    assert_eq!(post, "started\n");
    assert!(!host.join("pre").exists());
    c.ok(&["delete", "pod", "hooked", "--timeout=60s"]);
    let pre = std::fs::read_to_string(host.join("pre")).unwrap_or_default();
    assert_eq!(pre, "stopping\n");
}

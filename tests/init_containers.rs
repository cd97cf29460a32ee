//! Init and sidecar containers through the real binary and kubectl: init
//! containers run one after another to completion before the containers
//! start, a sidecar (an init container with `restartPolicy: Always`)
//! starts before the ones after it and runs beside the containers, a
//! failed init container fails a pod that never restarts, and a Job's pod
//! completes while its sidecar is still running.

mod common;

use common::{Cluster, example};

fn cmd(name: &str, env: &str, extra: &str) -> String {
    format!(
        "  - {{name: {name}, image: hello-cmd:v1, {extra}volumeMounts: [{{name: work, mountPath: /work}}], env: [{env}]}}\n"
    )
}

#[test]
fn init_containers_run_in_order_and_sidecars_beside_the_containers() {
    let c = Cluster::start("init-containers");
    c.import(&example("hello-cmd"), "hello-cmd:v1");
    let pod = format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: ordered}}\nspec:\n  volumes: [{{name: work, emptyDir: {{}}}}]\n  initContainers:\n{}{}{}  containers:\n{}",
        cmd(
            "first",
            "{name: COUNT, value: '2'}, {name: WRITE_FILES, value: /work/first}",
            ""
        ),
        cmd(
            "sidecar",
            "{name: SHOW_FILES, value: /work/first}, {name: INTERVAL, value: '60'}",
            "restartPolicy: Always, "
        ),
        cmd(
            "second",
            "{name: COUNT, value: '1'}, {name: SHOW_FILES, value: /work/first}, {name: WRITE_FILES, value: /work/second}",
            ""
        ),
        cmd(
            "main",
            "{name: SHOW_FILES, value: '/work/first,/work/second'}, {name: INTERVAL, value: '60'}",
            ""
        ),
    );
    let broken = format!(
        "---\napiVersion: v1\nkind: Pod\nmetadata: {{name: broken}}\nspec:\n  restartPolicy: Never\n  volumes: [{{name: work, emptyDir: {{}}}}]\n  initContainers:\n{}  containers:\n{}",
        cmd(
            "fail",
            "{name: COUNT, value: '1'}, {name: EXIT_CODE, value: '3'}",
            ""
        ),
        cmd("main", "{name: INTERVAL, value: '60'}", ""),
    );
    let job = format!(
        "---\napiVersion: batch/v1\nkind: Job\nmetadata: {{name: with-sidecar}}\nspec:\n  template:\n    spec:\n      restartPolicy: Never\n      volumes: [{{name: work, emptyDir: {{}}}}]\n      initContainers:\n{}      containers:\n{}",
        cmd(
            "helper",
            "{name: INTERVAL, value: '60'}",
            "restartPolicy: Always, "
        )
        .replace("  - ", "      - "),
        cmd("task", "{name: COUNT, value: '1'}", "").replace("  - ", "      - "),
    );
    let file = c.dir.join("pods.yaml");
    std::fs::write(&file, pod + &broken + &job).unwrap();
    c.ok(&["apply", "-f", file.to_str().unwrap()]);

    // Running once every init container passed: READY counts the sidecar.
    c.wait_for(&["get", "pod", "ordered"], "ordered to run", |s| {
        let row = common::row(s, "ordered");
        row[1] == "2/2" && row[2] == "Running"
    });
    let states = c.ok(&[
        "get",
        "pod",
        "ordered",
        "-o",
        "jsonpath={range .status.initContainerStatuses[*]}{.name}={.state.terminated.reason}{.state.running.startedAt}{\" \"}{end}",
    ]);
    let states: Vec<&str> = states.split_whitespace().collect();
    assert_eq!(states[0], "first=Completed");
    assert!(states[1].starts_with("sidecar=2"), "running: {states:?}");
    assert_eq!(states[2], "second=Completed");
    // Each ran after the one before it had finished (or, for the sidecar,
    // started): what they wrote was there to read.
    let wrote = "written by hello-cmd";
    for (container, read) in [
        ("sidecar", "/work/first"),
        ("second", "/work/first"),
        ("main", "/work/first"),
        ("main", "/work/second"),
    ] {
        let logs = c.wait_for(
            &["logs", "ordered", "-c", container],
            "the container's first lines",
            |s| s.contains("read "),
        );
        assert!(
            logs.contains(&format!("read {read}: {wrote}")),
            "{container}: {logs}"
        );
    }
    // A failed init container fails a pod that never restarts; its
    // containers never start.
    c.wait_for(&["get", "pod", "broken"], "broken to fail", |s| {
        common::row(s, "broken")[2] == "Init:Error"
    });
    let broken = c.ok(&[
        "get",
        "pod",
        "broken",
        "-o",
        "jsonpath={.status.phase} {.status.initContainerStatuses[0].state.terminated.exitCode} {.status.containerStatuses[0].state.waiting.reason}",
    ]);
    // WASI 0.2 carries success or failure, not the number (1).
    assert_eq!(broken, "Failed 1 PodInitializing");

    // The Job completes with its task; the sidecar is stopped then.
    c.ok(&[
        "wait",
        "--for=condition=complete",
        "job/with-sidecar",
        "--timeout=60s",
    ]);
    let phase = c.ok(&[
        "get",
        "pods",
        "-l",
        "job-name=with-sidecar",
        "-o",
        "jsonpath={.items[0].status.phase} {.items[0].status.initContainerStatuses[0].state.terminated.reason}",
    ]);
    assert_eq!(phase, "Succeeded Completed");
}

//! batch/v1 Jobs: Wasm commands run to completion, with parallelism,
//! completions, Indexed completion, the backoff limit, a time to live, kubectl's columns,
//! `wait --for=condition`, `logs job/NAME` and `create job`.

mod common;

use common::{Cluster, example};

const JOBS: &str = r#"
apiVersion: batch/v1
kind: Job
metadata: {name: count}
spec:
  completions: 3
  parallelism: 2
  template:
    spec:
      restartPolicy: Never
      containers:
      - name: c
        image: hello-cmd:v1
        env: [{name: COUNT, value: "2"}]
---
apiVersion: batch/v1
kind: Job
metadata: {name: fails}
spec:
  backoffLimit: 1
  ttlSecondsAfterFinished: 10
  template:
    spec:
      restartPolicy: Never
      containers:
      - name: c
        image: hello-cmd:v1
        env: [{name: COUNT, value: "1"}, {name: EXIT_CODE, value: "3"}]
"#;

const INDEXED: &str = r#"
apiVersion: batch/v1
kind: Job
metadata: {name: shards}
spec:
  completionMode: Indexed
  completions: 3
  parallelism: 3
  template:
    spec:
      restartPolicy: Never
      containers:
      - name: c
        image: hello-cmd:v1
        env: [{name: COUNT, value: "1"}, {name: SHOW_ENV, value: JOB_COMPLETION_INDEX}]
"#;

fn lines_with(text: &str, word: &str) -> usize {
    text.lines().filter(|l| l.contains(word)).count()
}

#[test]
fn jobs_run_pods_to_completion() {
    let c = Cluster::start("jobs");
    c.import(&example("hello-cmd"), "hello-cmd:v1");
    let file = c.dir.join("jobs.yaml");
    std::fs::write(&file, JOBS).unwrap();
    c.ok(&["apply", "-f", file.to_str().unwrap()]);

    // Two failures exceed a backoff limit of 1; the Job fails, then its
    // time to live runs out and it goes with its pods.
    c.ok(&[
        "wait",
        "--for=condition=failed",
        "job/fails",
        "--timeout=60s",
    ]);
    let reason = c.ok(&[
        "get",
        "job",
        "fails",
        "-o",
        "jsonpath={.status.conditions[?(@.type==\"Failed\")].reason} {.status.failed}",
    ]);
    assert_eq!(reason, "BackoffLimitExceeded 2");
    let pods = c.ok(&["get", "pods", "-l", "job-name=fails", "--no-headers"]);
    assert_eq!(lines_with(&pods, "Error"), 2, "{pods}");
    c.wait_for(
        &["get", "jobs", "-o", "name"],
        "the failed job to go",
        |o| !o.contains("fails"),
    );
    c.wait_for(
        &["get", "pods", "-l", "job-name=fails", "-o", "name"],
        "its pods to go",
        |o| o.trim().is_empty(),
    );

    c.ok(&[
        "wait",
        "--for=condition=complete",
        "job/count",
        "--timeout=60s",
    ]);
    let row = c.ok(&["get", "job", "count", "--no-headers"]);
    let cols: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(cols[..3], ["count", "Complete", "3/3"], "{row}");
    let pods = c.ok(&["get", "pods", "-l", "job-name=count", "--no-headers"]);
    assert_eq!(lines_with(&pods, "Completed"), 3, "{pods}");
    assert!(
        c.ok(&["logs", "job/count"])
            .contains("hello from a wasm pod #2")
    );
    assert!(c.ok(&["get", "all"]).contains("job.batch/count"));

    // An Indexed Job: each pod runs one index, told by JOB_COMPLETION_INDEX.
    let indexed = c.dir.join("indexed.yaml");
    std::fs::write(&indexed, INDEXED).unwrap();
    c.ok(&["apply", "-f", indexed.to_str().unwrap()]);
    c.ok(&[
        "wait",
        "--for=condition=complete",
        "job/shards",
        "--timeout=60s",
    ]);
    assert_eq!(
        c.ok(&[
            "get",
            "job",
            "shards",
            "-o",
            "jsonpath={.status.completedIndexes} {.status.succeeded}"
        ]),
        "0-2 3"
    );
    let mut hosts: Vec<String> = c
        .ok(&[
            "get",
            "pods",
            "-l",
            "job-name=shards",
            "-o",
            "jsonpath={.items[*].spec.hostname}",
        ])
        .split_whitespace()
        .map(String::from)
        .collect();
    hosts.sort();
    assert_eq!(hosts, ["shards-0", "shards-1", "shards-2"]);
    let logs = c.ok(&["logs", "-l", "job-name=shards"]);
    for i in 0..3 {
        assert!(
            logs.contains(&format!("JOB_COMPLETION_INDEX={i}\n")),
            "{logs}"
        );
    }
    // A pod failure policy fails the Job on its first failure, though the
    // backoff limit would allow six more tries. (A WASI 0.2 command exits
    // with 0 or 1: Rust's std reports any other code as 1.)
    let policy = INDEXED
        .replace("name: shards", "name: policy")
        .replace("completionMode: Indexed", "podFailurePolicy: {rules: [{action: FailJob, onExitCodes: {operator: In, values: [1]}}]}")
        .replace("parallelism: 3", "parallelism: 1")
        .replace("{name: SHOW_ENV, value: JOB_COMPLETION_INDEX}", "{name: EXIT_CODE, value: \"3\"}");
    std::fs::write(&indexed, policy).unwrap();
    c.ok(&["apply", "-f", indexed.to_str().unwrap()]);
    c.ok(&[
        "wait",
        "--for=condition=failed",
        "job/policy",
        "--timeout=60s",
    ]);
    let why = c.ok(&[
        "get",
        "job",
        "policy",
        "-o",
        "jsonpath={.status.conditions[?(@.type==\"Failed\")].reason}/{.status.failed}",
    ]);
    assert_eq!(why, "PodFailurePolicy/1");
    let no_completions = INDEXED
        .replace("name: shards", "name: open")
        .replace("completions: 3", "");
    std::fs::write(&indexed, no_completions).unwrap();
    let err = c.fails(&["apply", "-f", indexed.to_str().unwrap()]);
    assert!(
        err.contains("spec.completions: Required value: when completion mode is Indexed"),
        "{err}"
    );

    // The template is immutable; restartPolicy Always is refused.
    let err = c.fails(&[
        "patch",
        "job",
        "count",
        "--type=merge",
        "-p",
        r#"{"spec":{"template":{"spec":{"activeDeadlineSeconds":5}}}}"#,
    ]);
    assert!(
        err.contains("spec.template: Invalid value") && err.contains("field is immutable"),
        "{err}"
    );
    let bad = JOBS
        .replace("name: count", "name: always")
        .replace("restartPolicy: Never", "restartPolicy: Always");
    std::fs::write(&file, bad).unwrap();
    let err = c.fails(&["apply", "-f", file.to_str().unwrap()]);
    assert!(
        err.contains("spec.template.spec.restartPolicy: Unsupported value: \"Always\""),
        "{err}"
    );

    // `create job` (a protobuf body): a long-running pod, removed with the Job.
    c.ok(&["create", "job", "forever", "--image=hello-cmd:v1"]);
    c.wait_for(
        &["get", "pods", "-l", "job-name=forever", "--no-headers"],
        "the job's pod to run",
        |o| o.contains("Running"),
    );
    assert_eq!(
        c.ok(&["get", "job", "forever", "-o", "jsonpath={.status.active}"]),
        "1"
    );
    c.ok(&["delete", "job", "forever", "--wait"]);
    c.wait_for(
        &["get", "pods", "-l", "job-name=forever", "-o", "name"],
        "the job's pod to go",
        |o| o.trim().is_empty(),
    );
}

const CRONJOB: &str = r#"
apiVersion: batch/v1
kind: CronJob
metadata: {name: tick}
spec:
  schedule: "* * * * *"
  successfulJobsHistoryLimit: 3
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: Never
          containers:
          - name: c
            image: hello-cmd:v1
            env: [{name: COUNT, value: "1"}]
"#;

#[test]
fn cronjobs_start_jobs_on_schedule() {
    let c = Cluster::start("cronjobs");
    c.import(&example("hello-cmd"), "hello-cmd:v1");
    let file = c.dir.join("cronjob.yaml");
    std::fs::write(&file, CRONJOB).unwrap();
    c.ok(&["apply", "-f", file.to_str().unwrap()]);
    let row = c.ok(&["get", "cj", "tick", "--no-headers"]);
    let cols: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(
        cols[..10],
        [
            "tick", "*", "*", "*", "*", "*", "<none>", "false", "0", "<none>"
        ],
        "{row}"
    );

    // `create job --from` (a protobuf Job) runs the template at once.
    c.ok(&["create", "job", "manual", "--from=cronjob/tick"]);
    c.ok(&[
        "wait",
        "--for=condition=complete",
        "job/manual",
        "--timeout=60s",
    ]);
    let annotation = c.ok(&[
        "get",
        "job",
        "manual",
        "-o",
        "jsonpath={.metadata.annotations.cronjob\\.kubernetes\\.io/instantiate}",
    ]);
    assert_eq!(annotation, "manual");

    // The next minute starts a Job of its own, which completes; the
    // controller wakes for the schedule without any other change.
    c.wait_for_within(
        100,
        &["get", "jobs", "--no-headers"],
        "a scheduled job to complete",
        |o| {
            o.lines()
                .any(|l| l.starts_with("tick-") && l.contains("Complete"))
        },
    );
    let stamp = c.ok(&[
        "get",
        "cj",
        "tick",
        "-o",
        "jsonpath={.status.lastScheduleTime}",
    ]);
    assert!(stamp.ends_with(":00Z"), "scheduled on the minute: {stamp}");

    // The schedule is validated.
    let err = c.fails(&[
        "create",
        "cronjob",
        "bad",
        "--image=hello-cmd:v1",
        "--schedule=61 * * * *",
    ]);
    assert!(
        err.contains("spec.schedule: Invalid value: \"61 * * * *\""),
        "{err}"
    );
}

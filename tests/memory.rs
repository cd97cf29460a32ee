//! Memory as a node bounds it: every instance has a limit (its pod's, or
//! the node's default), all instances together stay within the node's
//! allocatable memory, and the node refuses a pod whose memory requests
//! its allocatable memory cannot hold, whatever bound it there.

mod common;

use common::Cluster;

#[test]
fn instances_stay_within_their_limits_and_the_node_refuses_what_it_cannot_hold() {
    let c = Cluster::start_with("memory", &["--default-memory-limit", "32Mi"]);
    // A guest that grows its memory until growth fails.
    let hog = c.dir.join("hog.wasm");
    std::fs::write(
        &hog,
        wat::parse_str(
            r#"(module (memory (export "memory") 1)
                 (func (export "_start")
                   (loop (br_if 0 (i32.ne (memory.grow (i32.const 16)) (i32.const -1))))))"#,
        )
        .unwrap(),
    )
    .unwrap();
    c.import(&hog, "hog:v1");

    // No limit in the pod: the node's default stops it.
    c.ok(&["run", "hog", "--image=hog:v1", "--restart=Never"]);
    let st = c.wait_for(
        &["get", "pod", "hog", "-o",
            "jsonpath={.status.phase} {.status.containerStatuses[0].state.terminated.reason} {.status.containerStatuses[0].state.terminated.exitCode}"],
        "the hog ended",
        |o| o.starts_with("Failed"),
    );
    assert_eq!(st.trim(), "Failed OOMKilled 137");
    let msg = c.ok(&[
        "get",
        "pod",
        "hog",
        "-o",
        "jsonpath={.status.containerStatuses[0].state.terminated.message}",
    ]);
    assert!(msg.contains("memory limit is 33554432 bytes"), "{msg}");

    // A pod's own limit wins over the default.
    c.ok(&["run", "small", "--image=hog:v1", "--restart=Never",
        "--overrides={\"spec\": {\"containers\": [{\"name\": \"small\", \"image\": \"hog:v1\", \"resources\": {\"limits\": {\"memory\": \"4Mi\"}}}]}}"]);
    c.wait_for(
        &["get", "pod", "small", "-o", "jsonpath={.status.phase}"],
        "small ended",
        |o| o == "Failed",
    );
    let msg = c.ok(&[
        "get",
        "pod",
        "small",
        "-o",
        "jsonpath={.status.containerStatuses[0].state.terminated.message}",
    ]);
    assert!(msg.contains("memory limit is 4194304 bytes"), "{msg}");

    // The node reports less allocatable memory than it has, and refuses a
    // pod bound to it directly whose requests do not fit.
    let mem = c.ok(&[
        "get",
        "node",
        "shoal",
        "-o",
        "jsonpath={.status.capacity.memory} {.status.allocatable.memory}",
    ]);
    let kib: Vec<u64> = mem
        .split_whitespace()
        .map(|m| m.trim_end_matches("Ki").parse().unwrap())
        .collect();
    assert_eq!(kib[0] - kib[1], 512 * 1024, "{mem}");
    let f = c.dir.join("big.yaml");
    std::fs::write(
        &f,
        "apiVersion: v1\nkind: Pod\nmetadata: {name: big}\nspec:\n  nodeName: shoal\n  containers:\n  - name: c\n    image: hog:v1\n    resources: {requests: {memory: 4000Gi}}\n",
    )
    .unwrap();
    c.ok(&["apply", "-f", f.to_str().unwrap()]);
    let st = c.wait_for(
        &[
            "get",
            "pod",
            "big",
            "-o",
            "jsonpath={.status.phase} {.status.reason}",
        ],
        "the node's refusal",
        |o| o.starts_with("Failed"),
    );
    assert_eq!(st, "Failed OutOfmemory");
    let msg = c.ok(&["get", "pod", "big", "-o", "jsonpath={.status.message}"]);
    assert!(
        msg.starts_with(
            "Pod was rejected: Node didn't have enough resource: memory, requested: 4294967296000"
        ),
        "{msg}"
    );
    // The node goes on running pods.
    let d = c.dir.join("ok.wasm");
    std::fs::write(
        &d,
        wat::parse_str(r#"(module (memory (export "memory") 1) (func (export "_start")))"#)
            .unwrap(),
    )
    .unwrap();
    c.import(&d, "ok:v1");
    c.ok(&["run", "fine", "--image=ok:v1", "--restart=Never"]);
    c.wait_for(
        &["get", "pod", "fine", "-o", "jsonpath={.status.phase}"],
        "fine ran",
        |o| o == "Succeeded",
    );
}

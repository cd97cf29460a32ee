//! Container logs are rotated by size, and `kubectl logs -f` follows a
//! container across its rotations without losing a line.

mod common;

use std::time::Duration;

use common::{Cluster, example};

#[test]
fn logs_rotate_and_follow_keeps_every_line() {
    let c = Cluster::start_with(
        "logs",
        &[
            "--container-log-max-size",
            "1Ki",
            "--container-log-max-files",
            "2",
        ],
    );
    c.import(&example("hello-cmd"), "hello-cmd:v1");
    // About 250 bytes per stored line: a rotation every four lines.
    let greeting = "x".repeat(190);
    let manifest = c.dir.join("chatty.yaml");
    std::fs::write(
        &manifest,
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: chatty}}\nspec:\n  containers:\n  - name: main\n    image: hello-cmd:v1\n    env: [{{name: GREETING, value: {greeting}}}]\n"
        ),
    )
    .unwrap();
    c.ok(&["apply", "-f", manifest.to_str().unwrap()]);
    c.wait_for(&["logs", "chatty"], "the first line", |o| o.contains("#1"));

    let lines = c.follow_logs("chatty", &[], 12, Duration::from_secs(30));
    let numbers: Vec<u64> = lines
        .iter()
        .map(|line| {
            assert!(line.starts_with(&greeting), "{line:?}");
            line.rsplit('#').next().unwrap().parse().unwrap()
        })
        .collect();
    assert_eq!(numbers.len(), 12, "logs -f across rotations: {numbers:?}");
    assert!(
        numbers.windows(2).all(|w| w[1] == w[0] + 1),
        "no line lost or repeated across rotations: {numbers:?}"
    );

    let uid = c.ok(&["get", "pod", "chatty", "-o", "jsonpath={.metadata.uid}"]);
    let dir = c.dir.join("node/pods").join(uid.trim()).join("logs/main");
    let files: Vec<(String, u64)> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                e.metadata().unwrap().len(),
            )
        })
        .collect();
    assert!(files.len() <= 2, "at most two files are kept: {files:?}");
    assert!(
        files.iter().all(|(_, len)| *len < 1024 + 300),
        "no file grows far past the limit: {files:?}"
    );
    // Without -f, kubectl shows the current file, as with the kubelet.
    let current = c.ok(&["logs", "chatty"]);
    assert!(!current.contains("#1\n"), "{current}");
    let stamped = c.ok(&["logs", "chatty", "--timestamps", "--tail=1"]);
    let (ts, text) = stamped.trim().split_once(' ').unwrap();
    assert!(ts.ends_with('Z') && ts.contains('T'), "{stamped}");
    assert!(text.starts_with(&greeting), "{stamped}");
}

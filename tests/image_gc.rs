//! The node keeps its image store within `--image-cache-max-size`: when a
//! pod goes, images no pod uses are removed; images in use stay.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{Cluster, example};

fn images(c: &Cluster) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_shoal"))
        .args(["images", "list", "--data-dir"])
        .arg(&c.dir)
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn unused_images_are_collected_when_a_pod_goes() {
    let c = Cluster::start_with(
        "image-gc",
        &[
            "--image-cache-max-size",
            "1Ki",
            "--minimum-image-ttl-duration",
            "0s",
        ],
    );
    c.import(&example("hello-cmd"), "kept:v1");
    c.import(&example("hello-http"), "served:v1");
    c.ok(&["run", "keeper", "--image", "kept:v1"]);
    c.ok(&["run", "passing", "--image", "served:v1"]);
    for pod in ["keeper", "passing"] {
        c.wait_for(
            &["get", "pod", pod, "-o", "jsonpath={.status.phase}"],
            "Running",
            |o| o == "Running",
        );
    }
    let listed = images(&c);
    assert!(
        listed.contains("kept:v1") && listed.contains("served:v1"),
        "{listed}"
    );

    c.ok(&["delete", "pod", "passing", "--wait=true"]);
    let deadline = Instant::now() + Duration::from_secs(20);
    while images(&c).contains("served:v1") {
        assert!(
            Instant::now() < deadline,
            "the unused image was not collected:\n{}",
            images(&c)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        images(&c).contains("kept:v1"),
        "an image in use stays though the store is over its bound"
    );
    let compiled = c.dir.join("images/compiled");
    assert_eq!(
        std::fs::read_dir(&compiled).unwrap().count(),
        1,
        "only the kept image's compiled artifact is left"
    );
    assert_eq!(
        c.ok(&["get", "pod", "keeper", "-o", "jsonpath={.status.phase}"]),
        "Running"
    );
}

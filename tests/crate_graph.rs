//! The workspace's crates depend on each other only in the directions
//! ARCHITECTURE.md draws: each crate may use the shoal crates listed for it
//! here and no other, so the store never learns about kinds, the machinery
//! stays free of I/O, and the node agent never links the control plane.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

/// Each crate and the shoal crates it may depend on (any kind of
/// dependency: normal, build or dev).
const ALLOWED: &[(&str, &[&str])] = &[
    ("shoal-wire", &[]),
    ("shoal-pki", &[]),
    ("shoal-quantity", &[]),
    ("shoal-cni", &[]),
    ("shoal-machinery", &[]),
    ("shoal-rbac", &["shoal-machinery"]),
    ("shoal-store", &["shoal-wire"]),
    (
        "shoal-registry",
        &["shoal-machinery", "shoal-store", "shoal-quantity"],
    ),
    (
        "shoal-scheduler",
        &[
            "shoal-machinery",
            "shoal-registry",
            "shoal-store",
            "shoal-quantity",
        ],
    ),
    (
        "shoal-controllers",
        &[
            "shoal-machinery",
            "shoal-registry",
            "shoal-store",
            "shoal-scheduler",
            "shoal-quantity",
            "shoal-cni",
        ],
    ),
    (
        "shoal-http",
        &[
            "shoal-machinery",
            "shoal-registry",
            "shoal-store",
            "shoal-wire",
            "shoal-pki",
            "shoal-rbac",
            "shoal-listen",
        ],
    ),
    (
        "shoal-apiserver",
        &[
            "shoal-pki",
            "shoal-store",
            "shoal-machinery",
            "shoal-registry",
            "shoal-scheduler",
            "shoal-controllers",
            "shoal-http",
            "shoal-rbac",
        ],
    ),
    ("shoal-runtime-wasm", &[]),
    ("shoal-listen", &[]),
    (
        "shoal-node",
        &[
            "shoal-runtime-wasm",
            "shoal-cni",
            "shoal-quantity",
            "shoal-listen",
        ],
    ),
];

/// The shoal crates each workspace member depends on, from `cargo metadata`.
fn workspace_graph() -> BTreeMap<String, BTreeSet<String>> {
    let out = Command::new(env!("CARGO"))
        .args([
            "metadata",
            "--no-deps",
            "--format-version",
            "1",
            "--offline",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo metadata runs");
    assert!(
        out.status.success(),
        "cargo metadata: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).expect("metadata is JSON");
    let packages = meta["packages"].as_array().expect("packages");
    let names: BTreeSet<String> = packages
        .iter()
        .filter_map(|p| p["name"].as_str().map(str::to_string))
        .collect();
    packages
        .iter()
        .map(|p| {
            let deps = p["dependencies"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|d| d["name"].as_str())
                .filter(|d| names.contains(*d))
                .map(str::to_string)
                .collect();
            (p["name"].as_str().unwrap_or_default().to_string(), deps)
        })
        .collect()
}

#[test]
fn crates_depend_only_in_the_drawn_directions() {
    let graph = workspace_graph();
    let allowed: BTreeMap<&str, &[&str]> = ALLOWED.iter().copied().collect();
    let mut wrong = Vec::new();
    for (krate, deps) in &graph {
        if krate == "shoal" {
            continue; // the binary wires everything
        }
        let Some(may) = allowed.get(krate.as_str()) else {
            wrong.push(format!(
                "{krate} is not in the table of allowed dependencies"
            ));
            continue;
        };
        for d in deps {
            if !may.contains(&d.as_str()) {
                wrong.push(format!("{krate} depends on {d}"));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "dependencies against the drawn directions: {wrong:#?}"
    );
    // Every crate of the table is a member, so the table cannot rot.
    for krate in allowed.keys() {
        assert!(
            graph.contains_key(*krate),
            "{krate} is no longer a workspace member"
        );
    }
}

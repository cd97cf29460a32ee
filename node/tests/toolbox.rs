//! The toolbox's own tests (its shell's parsing and pipelines), built for
//! this machine: the toolbox is not a workspace member, being built for
//! wasm32-wasip2 by the node's build script.

use std::path::Path;
use std::process::Command;

#[test]
fn toolbox_unit_tests_pass() {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("toolbox-tests");
    std::fs::create_dir_all(&dir).unwrap();
    let bin = dir.join("toolbox-tests");
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("toolbox/src/main.rs");
    let built = Command::new(std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into()))
        .args(["--edition", "2024", "--test", "--crate-name", "toolbox"])
        .arg(&src)
        .arg("-o")
        .arg(&bin)
        .output()
        .unwrap();
    assert!(
        built.status.success(),
        "{}",
        String::from_utf8_lossy(&built.stderr)
    );
    let ran = Command::new(&bin).output().unwrap();
    let text = String::from_utf8_lossy(&ran.stdout);
    assert!(
        ran.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&ran.stderr)
    );
    assert!(text.contains("test result: ok"), "{text}");
}

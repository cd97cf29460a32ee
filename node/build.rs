//! Builds the toolbox (`toolbox/`) for wasm32-wasip2 with the compiler
//! building this crate, so the agent can embed it.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=toolbox/src");
    println!("cargo:rerun-if-changed=toolbox/applets.txt");
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let wasm = out.join("toolbox.wasm");
    let built = Command::new(&rustc)
        .args([
            "--edition",
            "2024",
            "--crate-name",
            "toolbox",
            "--target",
            "wasm32-wasip2",
        ])
        .args([
            "-C",
            "opt-level=s",
            "-C",
            "strip=debuginfo",
            "-C",
            "codegen-units=1",
        ])
        .arg("toolbox/src/main.rs")
        .arg("-o")
        .arg(&wasm)
        // Flags meant for the host build do not apply to the guest's.
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("RUSTFLAGS")
        .status();
    match built {
        Ok(s) if s.success() => {}
        other => panic!(
            "building the toolbox for wasm32-wasip2 failed ({other:?}); \
             the target is needed: rustup target add wasm32-wasip2"
        ),
    }
}

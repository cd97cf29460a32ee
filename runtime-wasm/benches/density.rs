//! Density and start rate of long-lived command instances on one runtime,
//! the node's Wasm runtime alone (no API server, no agent):
//!
//! - N instances (PODS, default 10,000) of a WASI command that prints one
//!   line at start and then sleeps in `poll_oneoff` forever, started as fast
//!   as the runtime allows; the rate is N over the time until every one has
//!   printed its line;
//! - the process's RSS before and after, per instance (an upper bound of
//!   the runtime's overhead: it includes the pages the guest touched).
//!
//! KIND=component runs the hello-cmd example (a WASI preview 2 component
//! written in Rust) instead, after `bash examples/build.sh`.
//!
//! Run with `cargo bench -p shoal-runtime-wasm --bench density`. Targets
//! (issue 3): ≥ 500 starts/s, ≤ 200 KiB of runtime overhead per instance.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use shoal_runtime_wasm::{CommandSpec, NetworkAccess, OutputSink, Runtime, RuntimeConfig};

/// Prints "up" and sleeps a second at a time, forever.
const SLEEPER: &str = r#"(module
  (import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "poll_oneoff" (func $poll (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "up\n")
  (func (export "_start")
    (i32.store (i32.const 0) (i32.const 16))
    (i32.store (i32.const 4) (i32.const 3))
    (drop (call $write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))
    ;; one clock subscription at 64: relative timeout of one second
    (i32.store8 (i32.const 72) (i32.const 0))
    (i32.store (i32.const 80) (i32.const 1))
    (i64.store (i32.const 88) (i64.const 1000000000))
    (i64.store (i32.const 96) (i64.const 0))
    (i32.store16 (i32.const 104) (i32.const 0))
    (loop $forever
      (drop (call $poll (i32.const 64) (i32.const 128) (i32.const 1) (i32.const 160)))
      (br $forever))))"#;

struct Counter(AtomicUsize);

impl OutputSink for Counter {
    fn write(&self, bytes: &[u8]) {
        let lines = bytes.iter().filter(|b| **b == b'\n').count();
        self.0.fetch_add(lines.min(1), Ordering::Relaxed);
    }
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap()
}

fn main() {
    let n: usize = std::env::var("PODS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let component = std::env::var("KIND").is_ok_and(|k| k == "component");
    let dir = std::env::temp_dir().join(format!("shoal-bench-density-{}", std::process::id()));
    let mut cfg = RuntimeConfig::new(&dir);
    cfg.pool_instances = u32::try_from(n + 16).unwrap();
    cfg.max_memory_bytes = 64 << 20;
    let rt = Runtime::new(cfg).unwrap();
    let (module, label) = if component {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../examples/hello-cmd/hello-cmd.wasm");
        let bytes = std::fs::read(&path)
            .unwrap_or_else(|e| panic!("{}: {e} (run `bash examples/build.sh`)", path.display()));
        (bytes, "hello-cmd (WASI p2 component)")
    } else {
        (
            wat::parse_str(SLEEPER).unwrap(),
            "sleeper (WASI p1 core module)",
        )
    };
    rt.images().import("sleeper:v1", &module).unwrap();
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let counter = Arc::new(Counter(AtomicUsize::new(0)));
    let (rate, before, after) = tokio.block_on(async {
        let w = rt.load("sleeper:v1").await.unwrap();
        let spec = CommandSpec {
            argv: vec!["sleeper".into()],
            env: vec![("GREETING".into(), "up".into())],
            stdout: counter.clone(),
            stderr: counter.clone(),
            memory_limit: None,
            preopens: vec![],
            cpu_millis: None,
            working_dir: None,
            network: NetworkAccess::None,
            stdio: None,
            usage: None,
        };
        // One instance first, so the figures leave out one-time costs.
        let (rt1, w1, s1) = (rt.clone(), w.clone(), spec.clone());
        tokio::spawn(async move { rt1.run_command(&w1, s1).await });
        while counter.0.load(Ordering::Relaxed) < 1 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        let before = rss_kib();
        let started = Instant::now();
        for _ in 0..n {
            let (rt, w, spec) = (rt.clone(), w.clone(), spec.clone());
            tokio::spawn(async move {
                let exit = rt.run_command(&w, spec).await;
                panic!("an instance ended: {exit:?}");
            });
        }
        while counter.0.load(Ordering::Relaxed) < n + 1 {
            assert!(
                started.elapsed() < Duration::from_secs(600),
                "not all started"
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let rate = n as f64 / started.elapsed().as_secs_f64();
        tokio::time::sleep(Duration::from_secs(3)).await;
        (rate, before, rss_kib())
    });
    let per = (after.saturating_sub(before)) as f64 / n as f64;
    println!("{n} long-lived instances of {label} on one runtime (2 worker threads)");
    println!(
        "start rate: {rate:.0} instances/s | target ≥ 500 ({:.1}× the target)",
        rate / 500.0
    );
    println!(
        "RSS: {before} KiB before, {after} KiB with all running: {per:.1} KiB per instance, \
         the guest's own touched memory included | target ≤ 200 KiB beyond the guest's memory \
         ({:.2}× of budget even counting it)",
        per / 200.0
    );
    std::process::exit(0);
}

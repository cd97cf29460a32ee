//! Instantiate-to-first-instruction for a WASI preview 1 command with a
//! compiled, pre-linked module: a fresh store, WASI context, instance and
//! the call of an empty `_start`, as a pod start or restart does.
//!
//! Run with `cargo bench -p shoal-runtime-wasm --bench instantiate`.
//! Target (issue 3): ≤ 10 µs for a core module.

use std::sync::Arc;
use std::time::Instant;

use shoal_runtime_wasm::{CommandSpec, Exit, NetworkAccess, OutputSink, Runtime, RuntimeConfig};

struct Discard;

impl OutputSink for Discard {
    fn write(&self, _: &[u8]) {}
}

fn main() {
    let dir = std::env::temp_dir().join(format!("shoal-bench-inst-{}", std::process::id()));
    let rt = Runtime::new(RuntimeConfig::new(&dir)).unwrap();
    let module =
        wat::parse_str(r#"(module (memory (export "memory") 1) (func (export "_start")))"#)
            .unwrap();
    rt.images().import("empty:v1", &module).unwrap();
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let samples: Vec<f64> = tokio.block_on(async {
        let w = rt.load("empty:v1").await.unwrap();
        let sink: Arc<dyn OutputSink> = Arc::new(Discard);
        let spec = CommandSpec {
            argv: vec!["empty".into()],
            env: vec![],
            stdout: sink.clone(),
            stderr: sink,
            memory_limit: None,
            preopens: vec![],
            cpu_millis: None,
            working_dir: None,
            network: NetworkAccess::None,
        };
        for _ in 0..500 {
            assert_eq!(rt.run_command(&w, spec.clone()).await, Exit::Code(0));
        }
        let mut out = Vec::new();
        for _ in 0..20_000 {
            let t = Instant::now();
            let exit = rt.run_command(&w, spec.clone()).await;
            out.push(t.elapsed().as_secs_f64() * 1e6);
            assert_eq!(exit, Exit::Code(0));
        }
        out
    });
    let mut s = samples;
    s.sort_by(f64::total_cmp);
    let p = |q: f64| s[((s.len() - 1) as f64 * q) as usize];
    println!(
        "core module instantiate + run empty _start: p50 {:.2} µs, p99 {:.2} µs over {} runs | target ≤ 10 µs ({:.2}× of budget)",
        p(0.5),
        p(0.99),
        s.len(),
        p(0.5) / 10.0
    );
    let _ = std::fs::remove_dir_all(dir);
}

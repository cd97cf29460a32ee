//! Instantiate-to-first-instruction with a compiled, pre-linked workload of
//! each kind, as a pod start, restart or HTTP request does:
//!
//! - a WASI preview 1 core module: fresh store, WASI context, instance and
//!   the call of an empty `_start`;
//! - a WASI preview 2 command component (the hello-cmd example) and a
//!   `wasi:http/proxy` component (the hello-http example): fresh store,
//!   WASI context and instance, ready to run.
//!
//! Run with `cargo bench -p shoal-runtime-wasm --bench instantiate` after
//! `bash examples/build.sh`. Targets (issue 3): ≤ 10 µs for a core module,
//! ≤ 100 µs for an HTTP component.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use shoal_runtime_wasm::{
    CommandSpec, Exit, NetworkAccess, OutputSink, Runtime, RuntimeConfig, Workload,
};

struct Discard;

impl OutputSink for Discard {
    fn write(&self, _: &[u8]) {}
}

const RUNS: usize = 20_000;

fn percentiles(mut s: Vec<f64>) -> (f64, f64) {
    s.sort_by(f64::total_cmp);
    let p = |q: f64| s[((s.len() - 1) as f64 * q) as usize];
    (p(0.5), p(0.99))
}

async fn time_instantiation(rt: &Runtime, w: &Workload, spec: &CommandSpec) -> (f64, f64) {
    for _ in 0..500 {
        rt.instantiate_only(w, spec).await.unwrap();
    }
    let mut out = Vec::with_capacity(RUNS);
    for _ in 0..RUNS {
        let t = Instant::now();
        rt.instantiate_only(w, spec).await.unwrap();
        out.push(t.elapsed().as_secs_f64() * 1e6);
    }
    percentiles(out)
}

fn main() {
    let dir = std::env::temp_dir().join(format!("shoal-bench-inst-{}", std::process::id()));
    let rt = Runtime::new(RuntimeConfig::new(&dir)).unwrap();
    let module =
        wat::parse_str(r#"(module (memory (export "memory") 1) (func (export "_start")))"#)
            .unwrap();
    rt.images().import("empty:v1", &module).unwrap();
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    for (name, file) in [
        ("hello-cmd:v1", "hello-cmd/hello-cmd.wasm"),
        ("hello-http:v1", "hello-http/hello-http.wasm"),
    ] {
        let bytes = std::fs::read(examples.join(file))
            .unwrap_or_else(|e| panic!("{file}: {e} (run `bash examples/build.sh` first)"));
        rt.images().import(name, &bytes).unwrap();
    }
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let sink: Arc<dyn OutputSink> = Arc::new(Discard);
    let spec = CommandSpec {
        argv: vec!["bench".into()],
        env: vec![("HOSTNAME".into(), "bench".into())],
        stdout: sink.clone(),
        stderr: sink,
        memory_limit: None,
        preopens: vec![],
        cpu_millis: None,
        working_dir: None,
        network: NetworkAccess::None,
        stdio: None,
        usage: None,
    };
    tokio.block_on(async {
        let core = rt.load("empty:v1").await.unwrap();
        for _ in 0..500 {
            assert_eq!(rt.run_command(&core, spec.clone()).await, Exit::Code(0));
        }
        let mut runs = Vec::with_capacity(RUNS);
        for _ in 0..RUNS {
            let t = Instant::now();
            let exit = rt.run_command(&core, spec.clone()).await;
            runs.push(t.elapsed().as_secs_f64() * 1e6);
            assert_eq!(exit, Exit::Code(0));
        }
        let (p50, p99) = percentiles(runs);
        println!(
            "core module, instantiate + empty _start: p50 {p50:.2} µs, p99 {p99:.2} µs | target ≤ 10 µs ({:.2}× of budget)",
            p50 / 10.0
        );
        for (label, image, target) in [
            ("core module, instantiate", "empty:v1", 10.0),
            ("p2 command component (hello-cmd), instantiate", "hello-cmd:v1", 100.0),
            ("HTTP component (hello-http), instantiate", "hello-http:v1", 100.0),
        ] {
            let w = rt.load(image).await.unwrap();
            let (p50, p99) = time_instantiation(&rt, &w, &spec).await;
            println!(
                "{label}: p50 {p50:.2} µs, p99 {p99:.2} µs | target ≤ {target} µs ({:.2}× of budget)",
                p50 / target
            );
        }
    });
    println!("({RUNS} runs each on one runtime thread)");
    let _ = std::fs::remove_dir_all(dir);
}

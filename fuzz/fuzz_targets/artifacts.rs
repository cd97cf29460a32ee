#![no_main]
//! Registry content is untrusted: image configs, tar layers (plain and
//! gzip), image references and Wasm binaries of any shape are parsed,
//! searched and classified without a panic.

use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use shoal_runtime_wasm::{ImageRef, Runtime, RuntimeConfig, fuzzing};

fn runtime() -> &'static (Arc<Runtime>, tokio::runtime::Runtime) {
    static RT: OnceLock<(Arc<Runtime>, tokio::runtime::Runtime)> = OnceLock::new();
    RT.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("shoal-fuzz-{}", std::process::id()));
        let mut cfg = RuntimeConfig::new(dir);
        cfg.pool_instances = 4;
        let rt = Runtime::new(cfg).expect("runtime");
        let exec = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("executor");
        (rt, exec)
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    match pick % 5 {
        0 => {
            if let Ok(text) = std::str::from_utf8(rest) {
                let _ = fuzzing::image_config(text);
            }
        }
        1 | 2 => {
            let _ = fuzzing::layer(rest, pick % 5 == 2, "app.wasm");
        }
        3 => {
            if let Ok(text) = std::str::from_utf8(rest) {
                let _ = ImageRef::parse(text);
            }
        }
        _ => {
            // Classification of arbitrary bytes as a workload; compiling
            // them is wasmtime's business and slow, so only small inputs.
            if rest.len() > 4096 {
                return;
            }
            let (rt, exec) = runtime();
            let digest = rt.images().import("fuzz:v1", rest).expect("import");
            let loaded = exec.block_on(rt.load("fuzz:v1"));
            let _ = loaded.map(|w| w.kind());
            let _ = digest;
        }
    }
});

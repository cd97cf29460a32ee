//! The runtime against small modules written in the text format: kinds are
//! recognised from the binary, output is captured, traps and memory limits
//! end the instance with a reason.

use std::sync::{Arc, Mutex};

use shoal_runtime_wasm::{
    CommandSpec, Error, Exit, NetworkAccess, OutputSink, Runtime, RuntimeConfig, WorkloadKind,
};

#[derive(Default)]
struct Capture(Mutex<Vec<u8>>);

impl OutputSink for Capture {
    fn write(&self, bytes: &[u8]) {
        self.0.lock().unwrap().extend_from_slice(bytes);
    }
}

fn runtime() -> (Arc<Runtime>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = RuntimeConfig::new(dir.path());
    cfg.pool_instances = 16;
    (Runtime::new(cfg).unwrap(), dir)
}

fn spec(out: Arc<Capture>, memory_limit: Option<usize>) -> CommandSpec {
    CommandSpec {
        argv: vec!["prog".into(), "a1".into()],
        env: vec![("K".into(), "V".into())],
        stdout: out.clone(),
        stderr: out,
        memory_limit,
        preopens: vec![],
        cpu_millis: None,
        working_dir: None,
        network: NetworkAccess::None,
        stdio: None,
        usage: None,
    }
}

const HELLO: &str = r#"(module
  (import "wasi_snapshot_preview1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "hi from wasm\n")
  (func (export "_start")
    (i32.store (i32.const 0) (i32.const 16))
    (i32.store (i32.const 4) (i32.const 13))
    (drop (call $w (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))
    (call $exit (i32.const 3))))"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn core_command_output_and_exit_code() {
    let (rt, _dir) = runtime();
    rt.images()
        .import("hello:v1", &wat::parse_str(HELLO).unwrap())
        .unwrap();
    let w = rt.load("hello:v1").await.unwrap();
    assert_eq!(w.kind(), WorkloadKind::CoreCommand);
    let out = Arc::new(Capture::default());
    assert_eq!(
        rt.run_command(&w, spec(out.clone(), None)).await,
        Exit::Code(3)
    );
    assert_eq!(
        String::from_utf8(out.0.lock().unwrap().clone()).unwrap(),
        "hi from wasm\n"
    );
    let again = rt.load("docker.io/library/hello:v1").await.unwrap();
    assert!(
        Arc::ptr_eq(&w, &again),
        "a second load of the same digest does not compile again"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traps_memory_limits_and_bad_images() {
    let (rt, _dir) = runtime();
    rt.images()
        .import(
            "trap:v1",
            &wat::parse_str(r#"(module (func (export "_start") unreachable))"#).unwrap(),
        )
        .unwrap();
    let w = rt.load("trap:v1").await.unwrap();
    match rt.run_command(&w, spec(Arc::default(), None)).await {
        Exit::Trap(m) => assert!(m.contains("unreachable"), "{m}"),
        other => panic!("{other:?}"),
    }
    let grow = r#"(module (memory (export "memory") 1) (func (export "_start") (drop (memory.grow (i32.const 100)))))"#;
    rt.images()
        .import("grow:v1", &wat::parse_str(grow).unwrap())
        .unwrap();
    let w = rt.load("grow:v1").await.unwrap();
    assert_eq!(
        rt.run_command(&w, spec(Arc::default(), None)).await,
        Exit::Code(0)
    );
    match rt
        .run_command(&w, spec(Arc::default(), Some(1 << 20)))
        .await
    {
        Exit::OutOfMemory(_) => {}
        other => panic!("growth past limits.memory is OOMKilled, got {other:?}"),
    }
    rt.images().import("junk:v1", b"not wasm at all").unwrap();
    assert!(matches!(
        rt.load("junk:v1").await,
        Err(Error::NotWasm { .. })
    ));
    rt.images()
        .import("trunc:v1", &wat::parse_str(HELLO).unwrap()[..40])
        .unwrap();
    assert!(matches!(
        rt.load("trunc:v1").await,
        Err(Error::Compile { .. })
    ));
    rt.images()
        .import(
            "lib:v1",
            &wat::parse_str("(module (func (export \"f\")))").unwrap(),
        )
        .unwrap();
    assert!(
        matches!(rt.load("lib:v1").await, Err(Error::Compile { .. })),
        "a core module without _start is refused"
    );
    assert!(matches!(
        rt.load("absent:v1").await,
        Err(Error::ImageNotFound(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endless_guest_does_not_starve_others_and_stops_when_dropped() {
    let (rt, _dir) = runtime();
    rt.images()
        .import(
            "spin:v1",
            &wat::parse_str(r#"(module (func (export "_start") (loop (br 0))))"#).unwrap(),
        )
        .unwrap();
    let w = rt.load("spin:v1").await.unwrap();
    let spinners: Vec<_> = (0..4)
        .map(|_| {
            let (rt, w) = (rt.clone(), w.clone());
            tokio::spawn(async move { rt.run_command(&w, spec(Arc::default(), None)).await })
        })
        .collect();
    let t = std::time::Instant::now();
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    assert!(
        t.elapsed() < std::time::Duration::from_millis(500),
        "the executor still runs other tasks"
    );
    for s in &spinners {
        s.abort();
    }
    for s in spinners {
        assert!(s.await.unwrap_err().is_cancelled());
    }
}

/// CPU time this process has used (user + system).
fn cpu_time() -> std::time::Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    let fields: Vec<&str> = stat
        .rsplit_once(") ")
        .unwrap()
        .1
        .split_whitespace()
        .collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    std::time::Duration::from_millis(ticks * 10)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cpu_limits_throttle_a_busy_loop() {
    let (rt, _dir) = runtime();
    rt.images()
        .import(
            "spin:v1",
            &wat::parse_str(r#"(module (func (export "_start") (loop (br 0))))"#).unwrap(),
        )
        .unwrap();
    let w = rt.load("spin:v1").await.unwrap();
    let mut used = Vec::new();
    for limit in [Some(100), None] {
        let mut s = spec(Arc::default(), None);
        s.cpu_millis = limit;
        let (rt2, w2) = (rt.clone(), w.clone());
        let before = cpu_time();
        let task = tokio::spawn(async move { rt2.run_command(&w2, s).await });
        tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
        task.abort();
        used.push((cpu_time() - before).as_secs_f64() / 1.5);
    }
    let (limited, unlimited) = (used[0], used[1]);
    eprintln!("cpu share: limited to 100m {limited:.3}, unlimited {unlimited:.3}");
    assert!(limited < 0.3, "a 100m guest used {limited:.2} of a core");
    // Generous bounds: other tests may share the two cores.
    assert!(
        unlimited > 0.35 && unlimited > 2.5 * limited,
        "an unlimited guest used {unlimited:.2} of a core"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compiled_artifacts_survive_restarts_and_bad_cache_files() {
    let dir = tempfile::tempdir().unwrap();
    let new_rt = || {
        let mut cfg = RuntimeConfig::new(dir.path());
        cfg.pool_instances = 16;
        Runtime::new(cfg).unwrap()
    };
    let rt = new_rt();
    rt.images()
        .import("hello:v1", &wat::parse_str(HELLO).unwrap())
        .unwrap();
    rt.load("hello:v1").await.unwrap();
    let cached: Vec<_> = std::fs::read_dir(dir.path().join("images/compiled"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(cached.len(), 1, "one artifact per digest: {cached:?}");
    assert!(cached[0].to_string_lossy().ends_with(".cwasm"));
    drop(rt);

    let rt = new_rt();
    let w = rt.load("hello:v1").await.unwrap();
    assert_eq!(
        rt.run_command(&w, spec(Arc::default(), None)).await,
        Exit::Code(3),
        "the cached artifact runs"
    );
    drop((w, rt));

    // Replaced, not rewritten in place: the old artifact may still be mapped.
    let tmp = cached[0].with_extension("junk");
    std::fs::write(&tmp, b"not an artifact").unwrap();
    std::fs::rename(&tmp, &cached[0]).unwrap();
    let rt = new_rt();
    let w = rt.load("hello:v1").await.unwrap();
    assert_eq!(
        rt.run_command(&w, spec(Arc::default(), None)).await,
        Exit::Code(3),
        "a bad cache file is recompiled"
    );
    assert_ne!(std::fs::read(&cached[0]).unwrap(), b"not an artifact");
}

/// A module with enough functions to take a while to compile.
fn big_module() -> Vec<u8> {
    let mut wat = String::from("(module (memory 1)\n");
    for i in 0..3000 {
        wat.push_str(&format!(
            "(func (export \"f{i}\") (param i32) (result i32) \
             (i32.add (i32.mul (local.get 0) (i32.const {i})) (i32.load (local.get 0))))\n"
        ));
    }
    wat.push_str("(func (export \"_start\") (drop (call 0 (i32.const 1)))))");
    wat::parse_str(&wat).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_load_given_up_on_does_not_restart_compilation() {
    let (rt, _dir) = runtime();
    rt.images().import("big:v1", &big_module()).unwrap();
    // Callers that stop waiting (a probe's timeout) leave the one
    // compilation running for the next caller.
    for _ in 0..10 {
        let _ = tokio::time::timeout(std::time::Duration::from_millis(1), rt.load("big:v1")).await;
    }
    let w = rt.load("big:v1").await.unwrap();
    assert_eq!(
        rt.run_command(&w, spec(Arc::default(), None)).await,
        Exit::Code(0)
    );
    assert_eq!(rt.compilations(), 1, "one compilation for every caller");
    rt.load("big:v1").await.unwrap();
    assert_eq!(
        rt.compilations(),
        1,
        "a loaded module is not compiled again"
    );
}

/// The hello-cmd example, built by `examples/build.sh`.
fn hello_cmd() -> Option<Vec<u8>> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples/hello-cmd/hello-cmd.wasm");
    std::fs::read(path).ok()
}

/// Runs hello-cmd for long enough to print its start-up report.
async fn start_report(rt: &Arc<Runtime>, mut s: CommandSpec) -> String {
    let out = Arc::new(Capture::default());
    s.stdout = out.clone();
    s.stderr = out.clone();
    let w = rt.load("hello-cmd:v1").await.unwrap();
    let (rt2, w2) = (rt.clone(), w.clone());
    let task = tokio::spawn(async move { rt2.run_command(&w2, s).await });
    for _ in 0..100 {
        if String::from_utf8_lossy(&out.0.lock().unwrap()).contains(" #1") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    task.abort();
    String::from_utf8(out.0.lock().unwrap().clone()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sockets_follow_the_network_grant() {
    let Some(module) = hello_cmd() else {
        panic!("build the examples first: bash examples/build.sh");
    };
    let (rt, _dir) = runtime();
    rt.images().import("hello-cmd:v1", &module).unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let target = listener.local_addr().unwrap().to_string();
    let grants = [
        (NetworkAccess::None, false),
        (
            NetworkAccess::Outbound {
                node_addrs: vec!["127.0.0.1".parse().unwrap()].into(),
                pod_ip: None,
                resolver: None,
                policy: None,
            },
            false,
        ),
        (NetworkAccess::Host, true),
    ];
    for (network, reachable) in grants {
        let mut s = spec(Arc::default(), None);
        s.env = vec![("CONNECT".into(), target.clone())];
        s.network = network.clone();
        let report = start_report(&rt, s).await;
        let line = report
            .lines()
            .find(|l| l.starts_with("connect "))
            .unwrap_or_else(|| panic!("no connect line in {report:?}"));
        if reachable {
            assert_eq!(line, format!("connect {target}: ok"), "{network:?}");
        } else {
            assert!(line.contains("error"), "{network:?}: {line}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_collection_keeps_images_in_use() {
    let dir = tempfile::tempdir().unwrap();
    let module = |n: i32| {
        wat::parse_str(format!(
            r#"(module (func (export "_start") (drop (i32.const {n}))))"#
        ))
        .unwrap()
    };
    let mut cfg = RuntimeConfig::new(dir.path());
    cfg.pool_instances = 4;
    let (a, b, c) = (module(1), module(2), module(3));
    cfg.image_cache_max_bytes = u64::MAX;
    let rt = Runtime::new(cfg.clone()).unwrap();
    rt.images().import("a:v1", &a).unwrap();
    rt.images().import("b:v1", &b).unwrap();
    rt.images().import("c:v1", &c).unwrap();
    rt.load("a:v1").await.unwrap();
    let compiled = dir.path().join("images/compiled");
    assert_eq!(std::fs::read_dir(&compiled).unwrap().count(), 1);
    let stale = compiled.join("00ff-0123456789abcdef.cwasm");
    std::fs::write(&stale, b"from another engine").unwrap();

    let report = rt.collect_garbage(["b:v1"]).unwrap();
    assert!(report.removed.is_empty(), "under the bound: {report:?}");
    assert!(!stale.exists(), "artifacts of no module are always removed");

    // A bound that only the image in use fits under.
    cfg.image_cache_max_bytes = b.len() as u64;
    let rt = Runtime::new(cfg.clone()).unwrap();
    let report = rt.collect_garbage(["b:v1"]).unwrap();
    assert!(
        report.removed.is_empty(),
        "images younger than the minimum age stay: {report:?}"
    );
    cfg.image_minimum_age = std::time::Duration::ZERO;
    let rt = Runtime::new(cfg).unwrap();
    let report = rt.collect_garbage(["docker.io/library/b:v1"]).unwrap();
    assert_eq!(report.removed.len(), 2, "{report:?}");
    assert_eq!(report.after, b.len() as u64, "{report:?}");
    let left: Vec<String> = rt.images().list().unwrap().into_keys().collect();
    assert_eq!(left, ["b:v1"]);
    assert_eq!(
        std::fs::read_dir(&compiled).unwrap().count(),
        0,
        "a's compiled artifact went with it"
    );
    assert!(rt.load("a:v1").await.is_err());
    assert!(rt.load("b:v1").await.is_ok());
}

/// A module whose `_start` never returns.
const SPIN: &str = r#"(module (func (export "_start") (loop $l (br $l))))"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_modules_are_contained() {
    let (rt, _dir) = runtime();
    let put = |name: &str, wat_text: &str| {
        rt.images()
            .import(name, &wat::parse_str(wat_text).unwrap())
            .unwrap();
    };
    put(
        "recurse:v1",
        r#"(module (func $f (export "_start") (call $f)))"#,
    );
    put(
        "huge-memory:v1",
        r#"(module (memory 60000) (func (export "_start")))"#,
    );
    put(
        "huge-table:v1",
        r#"(module (table 100000000 funcref) (func (export "_start")))"#,
    );

    let w = rt.load("recurse:v1").await.unwrap();
    match rt.run_command(&w, spec(Arc::default(), None)).await {
        Exit::Trap(m) => assert!(m.contains("stack"), "{m}"),
        other => panic!("a stack overflow traps, got {other:?}"),
    }

    // Declarations past the node's limits are refused with the reason,
    // when the module is prepared or at the latest when it starts.
    for image in ["huge-memory:v1", "huge-table:v1"] {
        let reason = match rt.load(image).await {
            Err(e) => e.to_string(),
            Ok(w) => match rt
                .run_command(&w, spec(Arc::default(), Some(64 << 20)))
                .await
            {
                Exit::StartFailed(m) | Exit::OutOfMemory(m) | Exit::Trap(m) => m,
                other => panic!("{image} must not start: {other:?}"),
            },
        };
        assert!(
            reason.contains("limit") || reason.contains("exceeds"),
            "{image}: {reason}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instance_slots_run_out_without_harm() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = RuntimeConfig::new(dir.path());
    cfg.pool_instances = 3;
    let rt = Runtime::new(cfg).unwrap();
    rt.images()
        .import("spin:v1", &wat::parse_str(SPIN).unwrap())
        .unwrap();
    let w = rt.load("spin:v1").await.unwrap();
    let mut running = Vec::new();
    let mut refused = None;
    for _ in 0..10 {
        let (rt2, w2) = (rt.clone(), w.clone());
        let task =
            tokio::spawn(async move { rt2.run_command(&w2, spec(Arc::default(), None)).await });
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        if task.is_finished() {
            refused = Some(task.await.unwrap());
            break;
        }
        running.push(task);
    }
    match refused {
        Some(Exit::StartFailed(m)) => assert!(m.contains("limit"), "{m}"),
        other => panic!("starting past the pool's slots fails to start: {other:?}"),
    }
    assert!(running.len() >= 3, "{} started", running.len());
    // Stopping one frees its slot for the next.
    running.pop().unwrap().abort();
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    let (rt2, w2) = (rt.clone(), w.clone());
    let again = tokio::spawn(async move { rt2.run_command(&w2, spec(Arc::default(), None)).await });
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    assert!(!again.is_finished(), "{:?}", again.await);
    again.abort();
    for t in running {
        t.abort();
    }
}

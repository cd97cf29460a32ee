//! shoal's runtime as a containerd runtime: a real containerd pulls Wasm
//! images from a real registry and runs them with
//! `ctr run --runtime io.containerd.shoal.v1`, served by one
//! `containerd-shim-shoal-v1` daemon — output, exit codes, memory limits
//! and OOM events, exec, kill, stats, and what happens when the daemon or
//! containerd dies — and, through containerd's CRI plugin as a kubelet
//! drives it, pods with the `shoal` handler that `shoal node setup`
//! configures, in pod networks from the standard CNI plugins.

mod common;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::containerd::{Containerd, RUNTIME, shim_binary};
use common::example;
use common::registry::Registry;
use k8s_cri::v1 as cri_api;

struct Setup {
    ctd: Containerd,
    registry: Registry,
    image: String,
}

/// A registry in `dir` holding hello-cmd built as a container image, and
/// that image's reference.
fn hello_image(dir: &std::path::Path) -> (Registry, String) {
    let registry = Registry::start(dir, None);
    registry.push(
        "container/hello-cmd:v1",
        &example("hello-cmd"),
        &["--format", "container"],
    );
    let image = format!("{}/container/hello-cmd:v1", registry.addr);
    (registry, image)
}

fn setup(name: &str, env: &[(&str, &str)]) -> Setup {
    let dir = PathBuf::from(format!("/tmp/shoal-shim-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let (registry, image) = hello_image(&dir);
    let ctd = Containerd::start(&dir.join("ctd"), None, env);
    ctd.pull(&image);
    Setup {
        ctd,
        registry,
        image,
    }
}

/// `ctr run --rm` of the image with `env`: exit code, stdout, stderr.
fn run(s: &Setup, id: &str, extra: &[&str]) -> (i32, String, String) {
    let mut args = vec!["run", "--rm", "--runtime", RUNTIME];
    args.extend_from_slice(extra);
    args.extend([s.image.as_str(), id]);
    let out = s.ctd.ctr(&args);
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn runs_wasm_images_pulled_by_containerd() {
    let s = setup("run", &[]);
    let (code, out, err) = run(&s, "three", &["--env", "COUNT=3", "--env", "INTERVAL=0"]);
    assert_eq!(code, 0, "{out}{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines,
        (1..=3)
            .map(|i| format!("hello from the image config #{i}"))
            .collect::<Vec<_>>(),
        "the image's entrypoint and environment, with the run's"
    );

    // A failing guest fails the container (a WASI preview 2 command ends
    // with success or failure only).
    let (code, _, _) = run(
        &s,
        "fails",
        &[
            "--env",
            "COUNT=1",
            "--env",
            "INTERVAL=0",
            "--env",
            "EXIT_CODE=3",
        ],
    );
    assert_eq!(code, 1);

    // The container's memory limit bounds the guest; containerd hears of
    // the OOM.
    let mut events = s
        .ctd
        .command()
        .arg("events")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let (code, out, err) = run(
        &s,
        "hungry",
        &[
            "--memory-limit",
            "33554432",
            "--env",
            "HOLD_MIB=64",
            "--env",
            "INTERVAL=0",
        ],
    );
    assert_eq!(code, 137, "out of memory: {out}{err}");
    let mut seen = String::new();
    let mut lines = BufReader::new(events.stdout.take().unwrap()).lines();
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        let Some(Ok(l)) = lines.next() else { break };
        seen.push_str(&l);
        seen.push('\n');
        if l.contains("/tasks/delete") {
            break;
        }
    }
    let _ = events.kill();
    let _ = events.wait();
    assert!(seen.contains("/tasks/oom"), "events: {seen}");
    assert!(seen.contains("/tasks/exit"), "events: {seen}");

    // The guest sees the root filesystem of the image and nothing else.
    let (code, out, _) = run(
        &s,
        "files",
        &[
            "--env",
            "SHOW_FILES=/etc/motd,/etc/shadow,/../../etc/passwd",
            "--env",
            "COUNT=1",
            "--env",
            "INTERVAL=0",
        ],
    );
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("base layer"), "the image's lower layer: {out}");
    assert!(!out.contains("root:"), "nothing of the host: {out}");

    // SIGTERM ends a guest at once (143), unless it follows the stop
    // request: then it finishes by itself.
    for (id, annotation, code, said) in [
        ("plain", "shoal.dev/other=x", 143, None),
        (
            "polite",
            "shoal.dev/stop-file=true",
            0,
            Some("asked to stop after"),
        ),
    ] {
        let mut child = s
            .ctd
            .command()
            .args([
                "run",
                "--rm",
                "--runtime",
                RUNTIME,
                "--annotation",
                annotation,
            ])
            .args([s.image.as_str(), id])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut first = String::new();
        out.read_line(&mut first).unwrap();
        assert!(
            first.starts_with("hello from the image config #1"),
            "{first}"
        );
        s.ctd.ok(&["task", "kill", id]);
        let mut rest = String::new();
        std::io::Read::read_to_string(&mut out, &mut rest).unwrap();
        let status = child.wait().unwrap();
        assert_eq!(status.code(), Some(code), "{id}: {rest}");
        if let Some(said) = said {
            assert!(rest.contains(said), "{id}: {rest}");
        }
    }

    assert!(s.ctd.mounts().is_empty(), "{:?}", s.ctd.mounts());
}

#[test]
fn one_daemon_serves_every_container() {
    let s = setup(
        "daemon",
        &[
            ("SHOAL_SHIM_LINGER_SECONDS", "2"),
            ("SHOAL_SHIM_IMAGE_CACHE_BYTES", "0"),
            ("SHOAL_SHIM_IMAGE_MINIMUM_AGE_SECONDS", "0"),
        ],
    );
    let ids: Vec<String> = (0..5).map(|i| format!("c{i}")).collect();
    for id in &ids {
        s.ctd.ok(&["run", "-d", "--runtime", RUNTIME, &s.image, id]);
    }
    let tasks = s.ctd.wait_tasks("five running", |t| {
        t.len() == 5 && t.values().all(|(_, st)| st == "RUNNING")
    });
    let pids: std::collections::BTreeSet<u32> = tasks.values().map(|(p, _)| *p).collect();
    assert_eq!(pids.len(), 1, "one process serves them all: {tasks:?}");
    let daemon = *pids.iter().next().unwrap();
    assert_eq!(s.ctd.shim_daemons(), [daemon]);
    let exe = std::fs::read_link(format!("/proc/{daemon}/exe")).unwrap();
    assert_eq!(exe, shim_binary().canonicalize().unwrap());

    // exec runs a new instance of the container's module; its output
    // comes back, and a kill ends it alone.
    let mut exec = s
        .ctd
        .command()
        .args(["task", "exec", "--exec-id", "e1", "c0", "/app.wasm"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(exec.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert_eq!(first.trim(), "hello from the image config #1");
    s.ctd
        .ok(&["task", "kill", "--exec-id", "e1", "-s", "SIGKILL", "c0"]);
    let status = exec.wait().unwrap();
    assert_eq!(status.code(), Some(137));
    assert_eq!(s.ctd.tasks()["c0"].1, "RUNNING");

    // A command the image lacks is the toolbox's, as on shoal's own
    // nodes: it sees the container's files, and its exit code comes back.
    let sh = s.ctd.ctr(&[
        "task",
        "exec",
        "--exec-id",
        "e2",
        "c0",
        "sh",
        "-c",
        "ls /; exit 3",
    ]);
    assert_eq!(sh.status.code(), Some(3), "{sh:?}");
    let listing = String::from_utf8_lossy(&sh.stdout);
    assert!(listing.lines().any(|l| l == "app.wasm"), "{listing}");
    let missing = s
        .ctd
        .ctr(&["task", "exec", "--exec-id", "e3", "c0", "/bin/nosuch"]);
    assert!(!missing.status.success());
    assert!(
        String::from_utf8_lossy(&missing.stderr).contains("No such file"),
        "{}",
        String::from_utf8_lossy(&missing.stderr)
    );

    // Stats for `kubectl top` on a host cluster.
    std::thread::sleep(Duration::from_millis(1500));
    let metrics = s.ctd.ok(&["task", "metrics", "c0"]);
    let value = |name: &str| -> u64 {
        metrics
            .lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{name} in {metrics}"))
    };
    assert!(value("cpu.usage_usec") > 0, "{metrics}");
    assert!(value("memory.usage") > 0, "{metrics}");

    // SIGTERM stops a container (128 + 15); the others keep running.
    s.ctd.ok(&["task", "kill", "c1"]);
    s.ctd.wait_tasks("c1 stopped", |t| t["c1"].1 == "STOPPED");
    assert!(
        ids.iter()
            .filter(|id| *id != "c1")
            .all(|id| s.ctd.tasks()[id.as_str()].1 == "RUNNING")
    );

    for id in &ids {
        let _ = s.ctd.ctr(&["task", "kill", "-s", "SIGKILL", id]);
    }
    s.ctd
        .wait_tasks("all stopped", |t| t.values().all(|(_, st)| st == "STOPPED"));
    for id in &ids {
        s.ctd.ok(&["task", "rm", id]);
        s.ctd.ok(&["container", "rm", id]);
    }
    assert!(s.ctd.mounts().is_empty(), "{:?}", s.ctd.mounts());
    let blobs = || -> usize {
        std::fs::read_dir(s.ctd.shim_root.join("images/blobs/sha256"))
            .map(|d| d.count())
            .unwrap_or(0)
    };
    assert_eq!(
        blobs(),
        2,
        "one module for five containers, and the toolbox"
    );
    // Without containers the daemon leaves, socket and all, and its
    // image store holds no module beyond its bound (0 here).
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::path::Path::new(&format!("/proc/{daemon}")).exists() {
        assert!(Instant::now() < deadline, "the idle daemon stays");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(blobs(), 0, "the unused modules collected");
}

#[test]
fn bad_images_dead_daemons_and_restarts() {
    let mut s = setup("faults", &[]);
    let dir = s.ctd.dir.clone();
    let script = dir.join("not-wasm");
    std::fs::write(&script, "#!/bin/sh\necho hi\n").unwrap();
    let reg = s.registry.addr.clone();
    s.registry
        .push("container/not-wasm:v1", &script, &["--format", "container"]);
    let bad = format!("{reg}/container/not-wasm:v1");
    s.ctd.pull(&bad);
    let out = s
        .ctd
        .ctr(&["run", "--rm", "--runtime", RUNTIME, &bad, "bad"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not a WebAssembly module"), "{err}");
    assert!(s.ctd.tasks().is_empty());
    assert!(s.ctd.mounts().is_empty(), "{:?}", s.ctd.mounts());
    let _ = s.ctd.ctr(&["container", "rm", "bad"]);

    // The daemon killed: containerd sees its containers gone and cleans
    // up; the next container starts a new daemon.
    s.ctd
        .ok(&["run", "-d", "--runtime", RUNTIME, &s.image, "k1"]);
    let old = s.ctd.wait_tasks("k1 running", |t| {
        t.get("k1").is_some_and(|t| t.1 == "RUNNING")
    })["k1"]
        .0;
    let _ = std::process::Command::new("kill")
        .args(["-9", &old.to_string()])
        .status();
    s.ctd
        .wait_tasks("k1 gone", |t| t.get("k1").is_none_or(|t| t.1 != "RUNNING"));
    let deadline = Instant::now() + Duration::from_secs(10);
    while !s.ctd.mounts().is_empty() {
        assert!(Instant::now() < deadline, "{:?}", s.ctd.mounts());
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = s.ctd.ctr(&["task", "rm", "k1"]);
    s.ctd.ok(&["container", "rm", "k1"]);
    s.ctd
        .ok(&["run", "-d", "--runtime", RUNTIME, &s.image, "k2"]);
    let new = s.ctd.wait_tasks("k2 running", |t| {
        t.get("k2").is_some_and(|t| t.1 == "RUNNING")
    })["k2"]
        .0;
    assert_ne!(new, old);

    // containerd restarted: it finds the daemon again.
    s.ctd.restart();
    assert_eq!(s.ctd.tasks()["k2"], (new, "RUNNING".to_string()));
    s.ctd.ok(&["task", "kill", "-s", "SIGKILL", "k2"]);
    s.ctd.wait_tasks("k2 stopped", |t| t["k2"].1 == "STOPPED");
    s.ctd.ok(&["task", "rm", "k2"]);
    assert!(s.ctd.mounts().is_empty(), "{:?}", s.ctd.mounts());
}

/// A CRI client (the kubelet's side) on containerd's socket.
async fn cri(
    socket: &std::path::Path,
) -> k8s_cri::v1::runtime_service_client::RuntimeServiceClient<tonic::transport::Channel> {
    let socket = socket.to_path_buf();
    let channel = tonic::transport::Endpoint::try_from("http://[::]:0")
        .unwrap()
        .connect_with_connector(tower::service_fn(move |_: tonic::transport::Uri| {
            let socket = socket.clone();
            async move {
                Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(
                    tokio::net::UnixStream::connect(socket).await?,
                ))
            }
        }))
        .await
        .unwrap();
    k8s_cri::v1::runtime_service_client::RuntimeServiceClient::new(channel)
}

type CriClient =
    k8s_cri::v1::runtime_service_client::RuntimeServiceClient<tonic::transport::Channel>;

/// A pod with the `shoal` handler, as a kubelet runs one: its sandbox's
/// config and id. `host_network` pods skip CNI.
async fn run_pod(
    client: &mut CriClient,
    name: &str,
    logs: &std::path::Path,
    host_network: bool,
) -> (cri_api::PodSandboxConfig, String) {
    let network = if host_network {
        cri_api::NamespaceMode::Node
    } else {
        cri_api::NamespaceMode::Pod
    };
    let config = cri_api::PodSandboxConfig {
        metadata: Some(cri_api::PodSandboxMetadata {
            name: name.into(),
            uid: format!("{name}-{}", std::process::id()),
            namespace: "default".into(),
            attempt: 0,
        }),
        hostname: name.into(),
        log_directory: logs.display().to_string(),
        linux: Some(cri_api::LinuxPodSandboxConfig {
            security_context: Some(cri_api::LinuxSandboxSecurityContext {
                namespace_options: Some(cri_api::NamespaceOption {
                    network: network as i32,
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    let id = client
        .run_pod_sandbox(cri_api::RunPodSandboxRequest {
            config: Some(config.clone()),
            runtime_handler: "shoal".into(),
        })
        .await
        .expect("RunPodSandbox with the shoal handler")
        .into_inner()
        .pod_sandbox_id;
    (config, id)
}

/// Creates and starts container `name` of `image` with `envs` in a pod;
/// its id. Its log is `<name>.log` in the pod's log directory.
async fn start_container(
    client: &mut CriClient,
    pod: &(cri_api::PodSandboxConfig, String),
    image: &str,
    name: &str,
    envs: &[(&str, &str)],
) -> String {
    let id = client
        .create_container(cri_api::CreateContainerRequest {
            pod_sandbox_id: pod.1.clone(),
            config: Some(cri_api::ContainerConfig {
                metadata: Some(cri_api::ContainerMetadata {
                    name: name.into(),
                    attempt: 0,
                }),
                image: Some(cri_api::ImageSpec {
                    image: image.into(),
                    ..Default::default()
                }),
                envs: envs
                    .iter()
                    .map(|(k, v)| cri_api::KeyValue {
                        key: k.to_string(),
                        value: v.to_string(),
                    })
                    .collect(),
                log_path: format!("{name}.log"),
                ..Default::default()
            }),
            sandbox_config: Some(pod.0.clone()),
        })
        .await
        .expect("CreateContainer")
        .into_inner()
        .container_id;
    client
        .start_container(cri_api::StartContainerRequest {
            container_id: id.clone(),
        })
        .await
        .expect("StartContainer");
    id
}

/// Stops and removes a pod, as a kubelet does when it is deleted.
async fn remove_pod(client: &mut CriClient, id: &str) {
    client
        .stop_pod_sandbox(cri_api::StopPodSandboxRequest {
            pod_sandbox_id: id.into(),
        })
        .await
        .expect("StopPodSandbox");
    client
        .remove_pod_sandbox(cri_api::RemovePodSandboxRequest {
            pod_sandbox_id: id.into(),
        })
        .await
        .expect("RemovePodSandbox");
}

#[test]
fn node_setup_makes_a_runtime_class_for_cri_pods() {
    let dir = PathBuf::from(format!("/tmp/shoal-shim-cri-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let (_registry, image) = hello_image(&dir);
    // The CRI plugin on; the pod sandbox's image is any local image (the
    // shim runs no process for a sandbox).
    let mut ctd = Containerd::configure(
        &dir.join("ctd"),
        Some(&format!(
            "[plugins.\"io.containerd.grpc.v1.cri\"]\n  sandbox_image = \"{image}\"\n"
        )),
        &[],
    );
    let setup = std::process::Command::new(common::shoal_binary())
        .args(["node", "setup", "--containerd-config"])
        .arg(&ctd.config)
        .arg("--bin-dir")
        .arg(dir.join("bin"))
        .output()
        .unwrap();
    assert!(
        setup.status.success(),
        "{}",
        String::from_utf8_lossy(&setup.stderr)
    );
    let runtime_class = String::from_utf8(setup.stdout).unwrap();
    assert!(runtime_class.contains("handler: shoal"), "{runtime_class}");
    assert!(dir.join("bin/containerd-shim-shoal-v1").exists());
    ctd.boot();
    let log = std::fs::read_to_string(ctd.dir.join("containerd.log")).unwrap();
    assert!(
        log.contains("shoal:{Type:io.containerd.shoal.v1"),
        "containerd's CRI plugin has the runtime: {log}"
    );
    ctd.ok(&["-n", "k8s.io", "images", "pull", "--plain-http", &image]);

    let logs = dir.join("pod-logs");
    std::fs::create_dir_all(&logs).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let mut client = cri(&ctd.socket).await;
        let pod = run_pod(&mut client, "hello", &logs, true).await;
        let id = start_container(
            &mut client,
            &pod,
            &image,
            "hello",
            &[("COUNT", "3"), ("INTERVAL", "0")],
        )
        .await;
        let deadline = Instant::now() + Duration::from_secs(30);
        let status = loop {
            let s = client
                .container_status(cri_api::ContainerStatusRequest {
                    container_id: id.clone(),
                    verbose: false,
                })
                .await
                .unwrap()
                .into_inner()
                .status
                .unwrap();
            if s.state == cri_api::ContainerState::ContainerExited as i32 {
                break s;
            }
            assert!(
                Instant::now() < deadline,
                "the container did not end: {s:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        assert_eq!(status.exit_code, 0, "{status:?}");
        assert_eq!(status.reason, "Completed");
        // containerd's CRI log format: time, stream, tag, line.
        let log = std::fs::read_to_string(logs.join("hello.log")).unwrap();
        let lines: Vec<&str> = log
            .lines()
            .map(|l| l.splitn(4, ' ').nth(3).unwrap_or(""))
            .collect();
        assert_eq!(
            lines,
            [
                "hello from the image config #1",
                "hello from the image config #2",
                "hello from the image config #3"
            ],
            "{log}"
        );

        // A long-running container: its stats, then the pod stopped and
        // removed with it.
        let busy = start_container(&mut client, &pod, &image, "busy", &[("BUSY_MS", "50")]).await;
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let stats = client
            .container_stats(cri_api::ContainerStatsRequest {
                container_id: busy.clone(),
            })
            .await
            .expect("ContainerStats")
            .into_inner()
            .stats
            .unwrap();
        let cpu = stats
            .cpu
            .and_then(|c| c.usage_core_nano_seconds)
            .map_or(0, |v| v.value);
        let memory = stats
            .memory
            .and_then(|m| m.working_set_bytes)
            .map_or(0, |v| v.value);
        assert!(cpu > 100_000_000, "{cpu} ns of CPU");
        assert!(memory > 0, "{memory} bytes");

        remove_pod(&mut client, &pod.1).await;
    });
    let left = ctd.ok(&["-n", "k8s.io", "task", "ls"]);
    assert_eq!(left.lines().count(), 1, "no tasks left: {left}");
    assert!(ctd.mounts().is_empty(), "{:?}", ctd.mounts());

    // The RuntimeClass it printed, applied to a cluster.
    let c = common::Cluster::start("shim-runtimeclass");
    let file = c.dir.join("runtimeclass.yaml");
    std::fs::write(&file, &runtime_class).unwrap();
    c.ok(&["apply", "-f", file.to_str().unwrap()]);
    assert_eq!(
        c.ok(&["get", "runtimeclass", "shoal", "-o", "jsonpath={.handler}"]),
        "shoal"
    );
    // shoal's own node runs the class's pods; a class whose handler is an
    // OCI runtime it lacks fails the pod's sandbox, as on a kubelet.
    c.import(&example("hello-cmd"), "hello-cmd:v1");
    std::fs::write(
        &file,
        "apiVersion: node.k8s.io/v1\nkind: RuntimeClass\nmetadata: {name: oci}\nhandler: runc\n",
    )
    .unwrap();
    c.ok(&["apply", "-f", file.to_str().unwrap()]);
    for (pod, class) in [("wasm", "shoal"), ("oci", "oci")] {
        c.ok(&[
            "run",
            pod,
            "--image=hello-cmd:v1",
            "--overrides",
            &format!(r#"{{"spec": {{"runtimeClassName": "{class}"}}}}"#),
        ]);
    }
    c.wait_for(
        &["get", "pod", "wasm", "-o", "jsonpath={.status.phase}"],
        "the shoal class's pod running",
        |s| s == "Running",
    );
    let events = c.wait_for(
        &[
            "get",
            "events",
            "--field-selector",
            "involvedObject.name=oci",
        ],
        "the sandbox failing",
        |s| s.contains("FailedCreatePodSandBox"),
    );
    assert!(events.contains(r#"no runtime for "runc""#), "{events}");
    assert_eq!(
        c.ok(&["get", "pod", "oci", "-o", "jsonpath={.status.phase}"]),
        "Pending"
    );
}

#[test]
fn cri_pods_have_their_own_network() {
    let dir = PathBuf::from(format!("/tmp/shoal-shim-net-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let (_registry, image) = hello_image(&dir);
    // Pods' networks from the standard CNI plugins: a bridge and
    // addresses from host-local.
    let bridge = "shoalcri0";
    let cni = dir.join("cni");
    std::fs::create_dir_all(&cni).unwrap();
    std::fs::write(
        cni.join("10-pods.conflist"),
        serde_json::json!({
            "cniVersion": "0.4.0", "name": "pods",
            "plugins": [{
                "type": "bridge", "bridge": bridge, "isGateway": true, "ipMasq": false,
                "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.213.0.0/24"}]],
                         "dataDir": dir.join("ipam").display().to_string()},
            }],
        })
        .to_string(),
    )
    .unwrap();
    let ctd = Containerd::start(
        &dir.join("ctd"),
        Some(&format!(
            "[plugins.\"io.containerd.grpc.v1.cri\"]\n  sandbox_image = \"{image}\"\n\
             [plugins.\"io.containerd.grpc.v1.cri\".cni]\n  bin_dir = \"/usr/lib/cni\"\n  conf_dir = \"{}\"\n\
             [plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.runc]\n  runtime_type = \"io.containerd.runc.v2\"\n\
             [plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.shoal]\n  runtime_type = \"{RUNTIME}\"\n",
            cni.display()
        )),
        &[],
    );
    ctd.ok(&["-n", "k8s.io", "images", "pull", "--plain-http", &image]);

    let rt = tokio::runtime::Runtime::new().unwrap();
    let (ip, netns) = rt.block_on(async {
        let mut client = cri(&ctd.socket).await;
        let pod = run_pod(&mut client, "echo", &dir.join("pod-logs"), false).await;
        let status = client
            .pod_sandbox_status(cri_api::PodSandboxStatusRequest {
                pod_sandbox_id: pod.1.clone(),
                verbose: true,
            })
            .await
            .unwrap()
            .into_inner();
        let ip = status.status.unwrap().network.unwrap().ip;
        assert!(ip.starts_with("10.213.0."), "{ip}");
        let info = status.info.get("info").cloned().unwrap_or_default();
        let netns = serde_json::from_str::<serde_json::Value>(&info)
            .ok()
            .and_then(|v| v["runtimeSpec"]["linux"]["namespaces"].as_array().cloned())
            .and_then(|ns| {
                ns.iter()
                    .find(|n| n["type"] == "network")
                    .and_then(|n| n["path"].as_str().map(String::from))
            })
            .unwrap_or_default();
        start_container(
            &mut client,
            &pod,
            &image,
            "echo",
            &[("UDP_ECHO", "0.0.0.0:9000")],
        )
        .await;

        // The guest's socket is in the pod's network, at the pod's address.
        let socket = std::net::UdpSocket::bind("0.0.0.0:0").unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        let reply = loop {
            socket.send_to(b"ping", (ip.as_str(), 9000)).unwrap();
            let mut buf = [0u8; 1500];
            if let Ok((n, from)) = socket.recv_from(&mut buf) {
                assert_eq!(from.ip().to_string(), ip);
                break String::from_utf8_lossy(&buf[..n]).into_owned();
            }
            assert!(Instant::now() < deadline, "no echo from {ip}:9000");
        };
        assert!(reply.contains("ping"), "{reply}");
        // Nothing listens on the node's own port 9000.
        let host = std::net::UdpSocket::bind("0.0.0.0:0").unwrap();
        host.set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        host.send_to(b"ping", "127.0.0.1:9000").unwrap();
        assert!(host.recv_from(&mut [0u8; 64]).is_err());

        remove_pod(&mut client, &pod.1).await;
        (ip, netns)
    });
    let left = ctd.ok(&["-n", "k8s.io", "task", "ls"]);
    assert_eq!(left.lines().count(), 1, "no tasks left: {left}");
    assert!(
        !netns.is_empty() && !std::path::Path::new(&netns).exists(),
        "the pod's namespace {netns:?} is gone"
    );
    let daemon = ctd.shim_daemons();
    assert_eq!(daemon.len(), 1);
    let threads = std::fs::read_dir(format!("/proc/{}/task", daemon[0]))
        .unwrap()
        .flatten()
        .filter(|t| {
            std::fs::read_to_string(t.path().join("comm")).is_ok_and(|c| c.starts_with("netns-"))
        })
        .count();
    assert_eq!(
        threads, 0,
        "the namespace's thread ended with its pod ({ip})"
    );
    let _ = std::process::Command::new("ip")
        .args(["link", "del", bridge])
        .status();
}

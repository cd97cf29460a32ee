//! The fault campaign: three `shoal server`s, each on a host of its own (a
//! network namespace), while clients write and read ConfigMaps through
//! every server and a nemesis kills servers with SIGKILL (the leader half
//! the time) and starts them again, pauses them with SIGSTOP, cuts
//! hosts off the network and starts a server again on an older copy of its
//! data directory (the one it had at an earlier kill: a disk restored from
//! a backup, a VM rolled back). Every operation is recorded; once the faults
//! stop, every server must answer every key, and the history must be
//! linearizable (the checker the store's own simulation uses): no lost
//! acknowledged write, no stale read.
//!
//! FAULT_SECONDS (default 20) sets how long the faults go on; the
//! campaign is the same test run longer (`FAULT_SECONDS=600 cargo test
//! --test faults`).

mod common;
#[path = "../apiserver/store/src/tests/linearizability.rs"]
#[allow(dead_code)]
mod linearizability;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Cluster, Host, Lan};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, Patch, PatchParams, PostParams};
use linearizability::{Kind, Op, check};
use rand::Rng as _;

const KEYS: usize = 4;
const CLIENTS: usize = 4;

fn value_of(cm: &ConfigMap) -> Option<u64> {
    cm.data.as_ref()?.get("v")?.parse().ok()
}

fn revision_of(cm: &ConfigMap) -> u64 {
    cm.metadata
        .resource_version
        .as_deref()
        .and_then(|r| r.parse().ok())
        .unwrap_or(0)
}

/// One write (`Some(value)`) or read of `key` through `api`, recorded.
async fn operate(
    api: &Api<ConfigMap>,
    key: &str,
    write: Option<u64>,
    origin: Instant,
    history: &Mutex<Vec<Op>>,
) {
    let now = || origin.elapsed().as_nanos() as u64;
    let invoked = now();
    let limit = Duration::from_secs(3);
    let op = match write {
        Some(value) => {
            let patch = Patch::Merge(serde_json::json!({"data": {"v": value.to_string()}}));
            let done =
                tokio::time::timeout(limit, api.patch(key, &PatchParams::default(), &patch)).await;
            let (revision, completed) = match done {
                Ok(Ok(cm)) => (Some(revision_of(&cm)), Some(now())),
                // Failed or unanswered: it may have happened.
                _ => (None, None),
            };
            Op {
                key: key.to_string(),
                kind: Kind::Write { value, revision },
                invoked,
                completed,
            }
        }
        None => match tokio::time::timeout(limit, api.get(key)).await {
            Ok(Ok(cm)) => Op {
                key: key.to_string(),
                kind: Kind::Read {
                    value: value_of(&cm),
                    revision: revision_of(&cm),
                },
                invoked,
                completed: Some(now()),
            },
            _ => return,
        },
    };
    history.lock().unwrap().push(op);
}

/// Copies a directory of files (a stopped server's store).
fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    let st = std::process::Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .unwrap();
    assert!(st.success(), "copying {}", from.display());
}

/// A process signal to a server.
fn signal(c: &Cluster, sig: &str) {
    let st = std::process::Command::new("kill")
        .args([sig, &c.pid().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
}

/// Takes `host` off the network, or puts it back.
fn link(host: &Host, up: bool) {
    let out = host.run(&["ip", "link", "set", "eth0", if up { "up" } else { "down" }]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn writes_survive_kills_pauses_and_partitions_and_reads_stay_linearizable() {
    let seconds = common::env_number("FAULT_SECONDS", 20) as u64;
    let mut lan = Lan::new();
    let hosts: Vec<Host> = (1..=3).map(|n| lan.host(n)).collect();
    let mut servers = common::three_servers(&hosts, "faults");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let apis: Vec<Api<ConfigMap>> = servers
        .iter()
        .map(|c| Api::namespaced(rt.block_on(common::kube_client(&c.kubeconfig)), "default"))
        .collect();
    let origin = Instant::now();
    let history = Arc::new(Mutex::new(Vec::new()));
    let values = Arc::new(AtomicU64::new(1));
    // The keys, created as writes of the history.
    for k in 0..KEYS {
        let value = values.fetch_add(1, Ordering::Relaxed);
        let invoked = origin.elapsed().as_nanos() as u64;
        let cm: ConfigMap = serde_json::from_value(serde_json::json!({
            "metadata": {"name": format!("k{k}")}, "data": {"v": value.to_string()}}))
        .unwrap();
        let made = rt
            .block_on(apis[0].create(&PostParams::default(), &cm))
            .unwrap();
        history.lock().unwrap().push(Op {
            key: format!("k{k}"),
            kind: Kind::Write {
                value,
                revision: Some(revision_of(&made)),
            },
            invoked,
            completed: Some(origin.elapsed().as_nanos() as u64),
        });
    }

    let run_for = Duration::from_secs(seconds);
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let (apis, history, values) = (apis.clone(), history.clone(), values.clone());
            rt.spawn(async move {
                let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::from_os_rng();
                while origin.elapsed() < run_for {
                    let api = &apis[rng.random_range(0..apis.len())];
                    let key = format!("k{}", rng.random_range(0..KEYS));
                    let write = rng
                        .random_bool(0.5)
                        .then(|| values.fetch_add(1, Ordering::Relaxed));
                    operate(api, &key, write, origin, &history).await;
                }
            })
        })
        .collect();

    // The nemesis.
    let mut rng = rand::rng();
    let (mut kills, mut pauses, mut cuts, mut rollbacks) = (0, 0, 0, 0);
    // The store as each server had it at its last kill.
    let mut saved: Vec<Option<std::path::PathBuf>> = vec![None; servers.len()];
    let mut faults = 0;
    while origin.elapsed() < run_for {
        let leader = servers.iter().position(|c| {
            let log = c.log();
            let leads = log.rfind("this server leads");
            let stopped = log.rfind("this server no longer leads");
            leads.is_some_and(|l| stopped.is_none_or(|s| s < l))
        });
        let victim = match leader {
            Some(l) if rng.random_bool(0.5) => l,
            _ => rng.random_range(0..servers.len()),
        };
        let hold = Duration::from_millis(rng.random_range(500..2500));
        // The first fault a kill, the second a rollback to what it saved;
        // then any.
        let fault = match faults {
            0 => 0,
            1 => 3,
            _ => rng.random_range(0..4),
        };
        faults += 1;
        let rollback = saved
            .iter()
            .position(Option::is_some)
            .filter(|_| fault == 3);
        match fault {
            3 if rollback.is_some() => {
                let victim = rollback.unwrap();
                let old = saved[victim].take().unwrap();
                let store = servers[victim].dir.join("store");
                servers[victim].crash();
                std::fs::remove_dir_all(&store).unwrap();
                copy_dir(&old, &store);
                std::thread::sleep(hold);
                servers[victim].boot();
                rollbacks += 1;
            }
            0 | 3 => {
                servers[victim].crash();
                let copy = servers[victim].dir.with_extension("old-store");
                let _ = std::fs::remove_dir_all(&copy);
                copy_dir(&servers[victim].dir.join("store"), &copy);
                saved[victim] = Some(copy);
                std::thread::sleep(hold);
                servers[victim].boot();
                kills += 1;
            }
            1 => {
                signal(&servers[victim], "-STOP");
                std::thread::sleep(hold);
                signal(&servers[victim], "-CONT");
                pauses += 1;
            }
            _ => {
                link(&hosts[victim], false);
                std::thread::sleep(hold);
                link(&hosts[victim], true);
                cuts += 1;
            }
        }
        std::thread::sleep(Duration::from_millis(rng.random_range(500..1500)));
    }
    for c in clients {
        rt.block_on(c).unwrap();
    }

    // The faults stopped: every server answers every key.
    let healed = Instant::now();
    for (i, api) in apis.iter().enumerate() {
        for k in 0..KEYS {
            let key = format!("k{k}");
            let before = history.lock().unwrap().len();
            while history.lock().unwrap().len() == before {
                assert!(
                    healed.elapsed() < Duration::from_secs(60),
                    "server {} did not answer {key} within 60 s of the faults' end",
                    servers[i].member_id()
                );
                rt.block_on(operate(api, &key, None, origin, &history));
            }
        }
    }
    let history = history.lock().unwrap().clone();
    let count = |f: fn(&Op) -> bool| history.iter().filter(|op| f(op)).count();
    let acknowledged = count(|op| {
        matches!(
            op.kind,
            Kind::Write {
                revision: Some(_),
                ..
            }
        )
    });
    let unanswered = count(|op| matches!(op.kind, Kind::Write { revision: None, .. }));
    let reads = count(|op| matches!(op.kind, Kind::Read { .. }));
    eprintln!(
        "{seconds} s of faults ({kills} kills, {pauses} pauses, {cuts} cuts, {rollbacks} restarts on an old data directory): {acknowledged} writes acknowledged, {unanswered} unanswered, {reads} reads; healed in {:?}",
        healed.elapsed()
    );
    assert!(
        acknowledged > 20 && reads > 20,
        "too little got through to mean anything"
    );
    assert!(
        rollbacks > 0 || faults < 2,
        "no server was started on an old data directory"
    );
    for c in &servers {
        let _ = std::fs::remove_dir_all(c.dir.with_extension("old-store"));
    }
    let violations = check(&history);
    assert!(
        violations.is_empty(),
        "{} violations, first: {:?}",
        violations.len(),
        &violations[..violations.len().min(5)]
    );
}

/// A tmpfs of `size` mounted at `dir` until dropped.
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    fn mount(dir: &std::path::Path, size: &str) -> Self {
        std::fs::create_dir_all(dir).unwrap();
        let st = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .status()
            .unwrap();
        assert!(st.success(), "mounting a tmpfs at {}", dir.display());
        Self(dir.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        // Lazily: the server using it may still be stopping.
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

#[test]
fn a_full_disk_stops_its_server_clearly_and_the_others_go_on() {
    let mut lan = Lan::new();
    let hosts: Vec<Host> = (1..=3).map(|n| lan.host(n)).collect();
    let first = Cluster::start_server_on(
        &hosts[0],
        "disk-1",
        &["--cluster-init", "--node-name", "s1"],
    );
    let join =
        |n: usize| first.joiner_on(&hosts[n - 1], &format!("disk-{n}"), &format!("s{n}"), &[]);
    let mut second = join(2);
    second.boot();
    // The third server's store on a small disk of its own.
    let mut third = join(3);
    let disk = Tmpfs::mount(&third.dir.join("store"), "64m");
    third.boot();
    first.ok(&["create", "configmap", "before", "--from-literal=a=1"]);
    // The disk fills up.
    let _ = std::process::Command::new("dd")
        .args(["if=/dev/zero", "bs=1M"])
        .arg(format!("of={}", disk.0.join("filler").display()))
        .output()
        .unwrap();
    // Writes go on through the others; the full server stops with the
    // reason instead of serving an API that cannot write.
    let big = "x".repeat(200_000);
    let manifest = |i: usize| {
        format!(
            r#"{{"apiVersion":"v1","kind":"ConfigMap","metadata":{{"name":"big-{i}"}},"data":{{"v":"{big}"}}}}"#
        )
    };
    let started = Instant::now();
    let mut written = 0;
    let stopped = loop {
        let file = first.dir.join("big.json");
        std::fs::write(&file, manifest(written)).unwrap();
        // A write the full server took as leader fails (503) until it has
        // stopped and another leads.
        if first
            .kubectl(&["create", "-f", file.to_str().unwrap()])
            .status
            .success()
        {
            written += 1;
        } else {
            std::thread::sleep(Duration::from_millis(200));
        }
        if let Some(status) = third.exited() {
            break status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the server with a full disk did not stop: {}",
            common::tail(&third.log(), 20)
        );
    };
    assert!(!stopped.success());
    let log = third.log();
    assert!(
        log.contains("the store under") && log.contains("No space left"),
        "{}",
        common::tail(&log, 20)
    );
    // (Once another server leads, if the full one did.)
    second.wait_for(
        &["create", "configmap", "after", "--from-literal=a=2"],
        "a write after the full server stopped",
        |_| true,
    );
    // Space again: the server starts and catches up, nothing lost.
    std::fs::remove_file(disk.0.join("filler")).unwrap();
    third.boot();
    // (The full server may stop before any big write went through.)
    let last_big = written.checked_sub(1).map(|i| format!("big-{i}"));
    for name in ["before", "after"].into_iter().chain(last_big.as_deref()) {
        third.ok(&["get", "configmap", name]);
    }
}

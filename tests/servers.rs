//! Several servers: `shoal server --cluster-init` and `--join`, each on a
//! host of its own (a network namespace), their store replicated; the API
//! answers on every server and outlives any one of them.

mod common;

use std::time::{Duration, Instant};

use common::{Cluster, Host, Lan};

/// The nodes `c` lists as Ready.
fn ready_nodes(c: &Cluster) -> usize {
    c.ok(&["get", "nodes", "--no-headers"])
        .lines()
        .filter(|l| l.split_whitespace().nth(1) == Some("Ready"))
        .count()
}

/// Which of `servers` says it leads now (the last such line of each log
/// decides).
fn leader(servers: &[&Cluster]) -> usize {
    let says = |c: &Cluster| {
        let log = c.log();
        let leads = log.rfind("this server leads");
        let stopped = log.rfind("this server no longer leads");
        leads.is_some_and(|l| stopped.is_none_or(|s| s < l))
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(i) = servers.iter().position(|c| says(c)) {
            return i;
        }
        assert!(Instant::now() < deadline, "no server says it leads");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn resource_version(c: &Cluster, cm: &str) -> String {
    c.ok(&[
        "get",
        "configmap",
        cm,
        "-o",
        "jsonpath={.metadata.resourceVersion}",
    ])
}

#[test]
fn three_servers_keep_the_api_when_any_one_dies() {
    let mut lan = Lan::new();
    let hosts: Vec<Host> = (1..=3).map(|n| lan.host(n)).collect();
    let worker_host = lan.host(4);
    let first = Cluster::start_server_on(
        &hosts[0],
        "servers-1",
        &["--cluster-init", "--node-name", "s1"],
    );
    let token = std::fs::read_to_string(first.dir.join("token")).unwrap();
    let token = token.trim().to_string();
    let url = first.server();
    let mut servers = vec![first];
    for n in [2, 3] {
        // The third joins through the second, which is not the leader.
        let via = if n == 3 {
            servers[1].server()
        } else {
            url.clone()
        };
        servers.push(Cluster::start_server_on(
            &hosts[n - 1],
            &format!("servers-{n}"),
            &[
                "--join",
                &via,
                "--token",
                &token,
                "--node-name",
                &format!("s{n}"),
            ],
        ));
    }
    // A wrong token is refused before anything is written.
    let stranger = Cluster::server_on(
        &hosts[2],
        "servers-stranger",
        &[
            "--join",
            &url,
            "--token",
            "abcdef.0123456789abcdef",
            "--node-name",
            "x",
        ],
    );
    let refused = stranger.boot_fails();
    assert!(
        refused.contains("abcdef"),
        "a wrong token was not named: {refused}"
    );
    assert!(!stranger.dir.join("pki/ca.key").exists());
    for c in &servers {
        c.wait_for(&["get", "nodes"], "three Ready nodes", |_| {
            ready_nodes(c) == 3
        });
    }
    // The kubernetes Service leads to every server.
    let api_ips = |c: &Cluster| {
        let out = c.ok(&[
            "get",
            "endpoints",
            "kubernetes",
            "-o",
            "jsonpath={.subsets[*].addresses[*].ip}",
        ]);
        let mut ips: Vec<String> = out.split_whitespace().map(String::from).collect();
        ips.sort();
        ips
    };
    let all_ips: Vec<String> = hosts.iter().map(|h| h.ip.clone()).collect();
    servers[1].wait_for(
        &["get", "endpoints", "kubernetes"],
        "every server's address",
        |_| api_ips(&servers[1]) == all_ips,
    );
    // A write through any server is read on every one, at one revision.
    servers[2].ok(&["create", "configmap", "c1", "--from-literal=a=1"]);
    let rv = resource_version(&servers[2], "c1");
    for c in &servers {
        assert_eq!(resource_version(c, "c1"), rv);
    }
    // A server that is not an administrator's is refused the peers' paths.
    let peers = servers[0].kubectl(&[
        "create",
        "--raw",
        "/peers/join",
        "-f",
        "-",
        "--as",
        "someone",
    ]);
    let said = String::from_utf8_lossy(&peers.stderr);
    assert!(
        !peers.status.success() && said.contains("forbidden"),
        "{said}"
    );

    // A node joined through the leader.
    let dead = leader(&servers.iter().collect::<Vec<_>>());
    let _worker = servers[dead].join_on(&worker_host, "w1", &[]);
    let renewed = |c: &Cluster| {
        c.ok(&[
            "get",
            "lease",
            "w1",
            "-n",
            "kube-node-lease",
            "-o",
            "jsonpath={.spec.renewTime}",
        ])
    };
    servers[dead].wait_for(&["get", "nodes"], "w1 Ready", |_| {
        ready_nodes(&servers[dead]) == 4
    });

    // The components' Leases name the server that runs them.
    let holder = |c: &Cluster, lease: &str| {
        c.ok(&[
            "get",
            "lease",
            lease,
            "-n",
            "kube-system",
            "-o",
            "jsonpath={.spec.holderIdentity} {.spec.leaseTransitions}",
        ])
    };
    let dead_identity = format!(
        "shoal-server-{}",
        std::fs::read_to_string(servers[dead].dir.join("member-id"))
            .unwrap()
            .trim()
    );
    for lease in ["kube-scheduler", "kube-controller-manager"] {
        servers[dead].wait_for(
            &["get", "lease", lease, "-n", "kube-system"],
            "the Lease held",
            |_| holder(&servers[dead], lease).starts_with(&format!("{dead_identity} ")),
        );
    }

    // The leader dies: the others elect another and go on, and the
    // scheduler and controllers move with the leadership.
    let before = renewed(&servers[dead]);
    servers[dead].crash();
    let alive: Vec<usize> = (0..3).filter(|i| *i != dead).collect();
    let started = Instant::now();
    loop {
        let out = servers[alive[0]].kubectl(&["create", "configmap", "c2", "--from-literal=a=2"]);
        if out.status.success() {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "no write for 15 s after the leader died: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!("first write after the leader died: {:?}", started.elapsed());
    let survivor = &servers[alive[1]];
    survivor.ok(&[
        "create",
        "deployment",
        "web",
        "--image=hello-cmd:v1",
        "--replicas=2",
    ]);
    survivor.wait_for(
        &[
            "get",
            "pods",
            "-l",
            "app=web",
            "-o",
            "jsonpath={.items[*].spec.nodeName}",
        ],
        "two web pods scheduled",
        |out| out.split_whitespace().count() == 2,
    );
    // One of the two now says it leads and holds the components' Leases,
    // and the dead server leaves the kubernetes Service once its lease
    // runs out.
    let now_leads = alive[leader(&[&servers[alive[0]], &servers[alive[1]]])];
    let identity = format!(
        "shoal-server-{}",
        std::fs::read_to_string(servers[now_leads].dir.join("member-id"))
            .unwrap()
            .trim()
    );
    survivor.wait_for(
        &["get", "lease", "-n", "kube-system"],
        "the Leases taken over",
        |_| {
            let held = holder(survivor, "kube-scheduler");
            let mut parts = held.split_whitespace();
            parts.next() == Some(identity.as_str())
                && parts
                    .next()
                    .and_then(|t| t.parse::<u32>().ok())
                    .is_some_and(|t| t >= 1)
        },
    );
    let left: Vec<String> = alive.iter().map(|i| hosts[*i].ip.clone()).collect();
    survivor.wait_for(
        &["get", "endpoints", "kubernetes"],
        "the dead server gone",
        |_| api_ips(survivor) == left,
    );

    // The node moves to a server that answers: its lease is renewed.
    survivor.wait_for_within(
        40,
        &["get", "lease", "w1", "-n", "kube-node-lease"],
        "w1's lease renewed",
        |_| renewed(survivor) != before,
    );

    // The dead server comes back with its data and catches up.
    let expected = resource_version(survivor, "c2");
    servers[dead].boot();
    assert_eq!(resource_version(&servers[dead], "c2"), expected);
}

/// `shoal <args>` run here, with `c`'s kubeconfig when given.
fn shoal(c: Option<&Cluster>, args: &[&str]) -> std::process::Output {
    let mut command = std::process::Command::new(common::shoal_binary());
    command.args(args);
    if let Some(c) = c {
        command.arg("--kubeconfig").arg(&c.kubeconfig);
    }
    command.output().unwrap()
}

fn shoal_ok(c: Option<&Cluster>, args: &[&str]) -> String {
    let out = shoal(c, args);
    assert!(
        out.status.success(),
        "shoal {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The member ids `shoal member list` prints, and the leader's.
fn members(c: &Cluster) -> (Vec<u64>, Option<u64>) {
    let out = shoal_ok(Some(c), &["member", "list"]);
    let mut ids = Vec::new();
    let mut leader = None;
    for line in out.lines().skip(1) {
        let cols: Vec<&str> = line.split_whitespace().collect();
        let id: u64 = cols[0].parse().unwrap();
        if cols[2] == "leader" {
            leader = Some(id);
        }
        ids.push(id);
    }
    ids.sort_unstable();
    (ids, leader)
}

#[test]
fn a_dead_server_is_replaced_and_a_backup_brings_the_cluster_back() {
    let mut lan = Lan::new();
    let hosts: Vec<Host> = (1..=4).map(|n| lan.host(n)).collect();
    let first = Cluster::start_server_on(
        &hosts[0],
        "members-1",
        &[
            "--cluster-init",
            "--node-name",
            "s1",
            "--tls-san",
            "api.shoal.test",
        ],
    );
    // The certificate holds the name a load balancer in front is reached
    // at, and no other.
    first.ok(&[
        "get",
        "ns",
        "default",
        "--tls-server-name",
        "api.shoal.test",
    ]);
    let other = first.kubectl(&["get", "ns", "default", "--tls-server-name", "other.test"]);
    assert!(
        !other.status.success(),
        "a name the certificate lacks was accepted"
    );
    let join = |n: usize| {
        let mut c = first.joiner_on(
            &hosts[n - 1],
            &format!("members-{n}"),
            &format!("s{n}"),
            &[],
        );
        c.boot();
        c
    };
    let (second, third) = (join(2), join(3));
    let mut servers = vec![first, second, third];
    let (ids, leader) = members(&servers[1]);
    let mut expected: Vec<u64> = servers.iter().map(Cluster::member_id).collect();
    expected.sort_unstable();
    assert_eq!(ids, expected);
    assert!(leader.is_some_and(|l| ids.contains(&l)));
    servers[0].ok(&["create", "configmap", "before", "--from-literal=a=1"]);
    servers[0].ok(&[
        "create",
        "secret",
        "generic",
        "kept",
        "--from-literal=p=s3cr3t-6b1e",
    ]);

    // A server dies for good; it is removed and a new one takes its place.
    let dead = servers[2].member_id();
    servers[2].crash();
    shoal_ok(Some(&servers[0]), &["member", "remove", &dead.to_string()]);
    assert!(!members(&servers[1]).0.contains(&dead));
    let again = shoal(Some(&servers[0]), &["member", "remove", &dead.to_string()]);
    assert!(!again.status.success(), "removed twice");
    // Only administrators see or change the members.
    let denied = servers[0].kubectl(&["get", "--raw", "/peers/members", "--as", "someone"]);
    assert!(String::from_utf8_lossy(&denied.stderr).contains("forbidden"));
    let mut fourth = servers[0].joiner_on(&hosts[3], "members-4", "s4", &[]);
    fourth.boot();
    let (ids, _) = members(&fourth);
    assert_eq!(ids.len(), 3);
    assert!(ids.contains(&fourth.member_id()) && !ids.contains(&dead));
    assert_eq!(
        fourth.ok(&["get", "configmap", "before", "-o", "jsonpath={.data.a}"]),
        "1"
    );
    // Three again: losing one more server leaves a quorum.
    servers[1].crash();
    fourth.ok(&["create", "configmap", "with-two", "--from-literal=a=2"]);

    // A backup from any server, then a write it does not hold.
    let backup = std::env::temp_dir().join(format!(
        "shoal-e2e-members-backup-{}.json",
        std::process::id()
    ));
    let saved = shoal_ok(
        Some(&fourth),
        &["snapshot", "save", backup.to_str().unwrap()],
    );
    assert!(saved.contains("snapshot saved"), "{saved}");
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(&backup).unwrap().permissions().mode();
    assert_eq!(mode & 0o077, 0, "the backup is readable by others");
    let snapshot_rv = resource_version(&fourth, "with-two");
    fourth.ok(&["create", "configmap", "after", "--from-literal=a=3"]);
    // Not into a running server's directory, nor another cluster's.
    let busy = shoal(
        None,
        &[
            "snapshot",
            "restore",
            backup.to_str().unwrap(),
            "--data-dir",
            fourth.dir.to_str().unwrap(),
        ],
    );
    assert!(
        String::from_utf8_lossy(&busy.stderr).contains("in use"),
        "{}",
        String::from_utf8_lossy(&busy.stderr)
    );
    let other = Cluster::start("members-other");
    let foreign = shoal(
        None,
        &[
            "snapshot",
            "restore",
            backup.to_str().unwrap(),
            "--data-dir",
            other.dir.to_str().unwrap(),
        ],
    );
    assert!(
        String::from_utf8_lossy(&foreign.stderr).contains("another cluster"),
        "{}",
        String::from_utf8_lossy(&foreign.stderr)
    );
    drop(other);

    // Every server is lost; the backup brings the cluster back in an
    // empty data directory.
    drop(fourth);
    drop(servers);
    let mut restored = Cluster::server_on(
        &hosts[0],
        "members-restored",
        &["--cluster-init", "--node-name", "r1"],
    );
    let said = shoal_ok(
        None,
        &[
            "snapshot",
            "restore",
            backup.to_str().unwrap(),
            "--data-dir",
            restored.dir.to_str().unwrap(),
        ],
    );
    assert!(said.contains("restored"), "{said}");
    restored.boot();
    assert_eq!(resource_version(&restored, "with-two"), snapshot_rv);
    assert_eq!(
        restored.ok(&["get", "secret", "kept", "-o", "jsonpath={.data.p}"]),
        "czNjcjN0LTZiMWU="
    );
    let missing = restored.kubectl(&["get", "configmap", "after"]);
    assert!(
        !missing.status.success(),
        "a write after the backup came back"
    );
    let (ids, leader) = members(&restored);
    assert_eq!(ids, [1]);
    assert_eq!(leader, Some(1));
    // It writes on from the backup's revision, and others join it again.
    restored.ok(&["create", "configmap", "new", "--from-literal=a=4"]);
    let new_rv: u64 = resource_version(&restored, "new").parse().unwrap();
    assert!(new_rv > snapshot_rv.parse::<u64>().unwrap());
    let mut rejoined = restored.joiner_on(&hosts[1], "members-rejoined", "r2", &[]);
    rejoined.boot();
    assert_eq!(members(&rejoined).0.len(), 2);
    assert_eq!(resource_version(&rejoined, "new"), new_rv.to_string());
    std::fs::remove_file(&backup).unwrap();
}

#[test]
fn a_watch_resumes_on_another_server_without_gaps_or_duplicates() {
    use futures::{StreamExt as _, TryStreamExt as _};
    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::api::{Api, PostParams, WatchEvent, WatchParams};

    let mut lan = Lan::new();
    let hosts: Vec<Host> = (1..=3).map(|n| lan.host(n)).collect();
    let mut servers = common::three_servers(&hosts, "resume");
    let watched = leader(&servers.iter().collect::<Vec<_>>());
    let writer = (watched + 1) % 3;
    let rt = tokio::runtime::Runtime::new().unwrap();
    let client = |i: usize| rt.block_on(common::kube_client(&servers[i].kubeconfig));
    let (watch_client, write_client, after_client) =
        (client(watched), client(writer), client((watched + 2) % 3));
    let from = rt
        .block_on(
            Api::<ConfigMap>::namespaced(write_client.clone(), "default")
                .list_metadata(&Default::default()),
        )
        .unwrap()
        .metadata
        .resource_version
        .unwrap();

    // A writer through a follower, retrying what fails (an unanswered
    // create may have happened: AlreadyExists then says it did).
    const COUNT: usize = 150;
    let writing = rt.spawn(async move {
        let api: Api<ConfigMap> = Api::namespaced(write_client, "default");
        for i in 0..COUNT {
            let cm: ConfigMap = serde_json::from_value(
                serde_json::json!({"metadata": {"name": format!("w-{i:03}")}}),
            )
            .unwrap();
            loop {
                match api.create(&PostParams::default(), &cm).await {
                    Ok(_) => break,
                    Err(kube::Error::Api(e)) if e.code == 409 => break,
                    Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                }
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    });
    // A watch on the leader, which dies after 40 events; the watch goes on
    // from its last resourceVersion on another server.
    let mut seen: Vec<(String, u64)> = Vec::new();
    let mut last = from;
    let mut killed = false;
    for api in [
        Api::<ConfigMap>::namespaced(watch_client, "default"),
        Api::<ConfigMap>::namespaced(after_client, "default"),
    ] {
        let mut stream = rt
            .block_on(api.watch(&WatchParams::default().timeout(60), &last))
            .unwrap()
            .boxed();
        loop {
            if !killed && seen.len() >= 40 {
                servers[watched].crash();
                killed = true;
            }
            let next = rt.block_on(async {
                tokio::time::timeout(Duration::from_secs(20), stream.try_next()).await
            });
            let event = match next {
                Ok(Ok(Some(WatchEvent::Added(cm)))) => cm,
                Ok(Ok(Some(WatchEvent::Bookmark(_)))) => continue,
                Ok(Ok(Some(other))) => panic!("unexpected event {other:?}"),
                // The server died under the watch, or it ended.
                Ok(Ok(None)) | Ok(Err(_)) => break,
                Err(_) => panic!("no event for 20 s after {} of {COUNT}", seen.len()),
            };
            let rv = event.metadata.resource_version.clone().unwrap();
            seen.push((event.metadata.name.clone().unwrap(), rv.parse().unwrap()));
            last = rv;
            if seen.len() >= COUNT {
                break;
            }
        }
        if seen.len() >= COUNT {
            break;
        }
        assert!(killed, "the watch ended before its server died");
    }
    rt.block_on(writing).unwrap();
    assert!(killed);
    let names: std::collections::BTreeSet<&str> = seen.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names.len(), seen.len(), "an event came twice");
    assert_eq!(seen.len(), COUNT, "events were lost");
    assert!(
        seen.windows(2).all(|w| w[0].1 < w[1].1),
        "events out of revision order"
    );
}

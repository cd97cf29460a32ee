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
    // One of the two now says it leads, and the dead server leaves the
    // kubernetes Service once its lease runs out.
    leader(&[&servers[alive[0]], &servers[alive[1]]]);
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

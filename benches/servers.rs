//! Three `shoal server`s, each on a host of its own (a network
//! namespace), against one `shoal up` on such a host:
//!
//! 1. The Kubernetes API: 16 kube-rs clients create CREATES ConfigMaps
//!    (default 3,000) through one server — the single server, then the
//!    three's leader, then a follower — with creates/s, p50 and p99, and
//!    the replication cost as a ratio.
//! 2. Failover: TRIALS times (default 20) the leader is killed with
//!    SIGKILL and the time to the first create a survivor accepts is
//!    taken; the killed server is started again before the next trial.
//!    p50, p99 and the largest, against the target (p99 ≤ 1 s).
//! 3. Recovery with OBJECTS more ConfigMaps stored (default 100,000): the
//!    time a follower takes to start again (to its ready line), and the
//!    time a new server takes from an empty data directory to a voting
//!    member with them (it receives a snapshot).
//!
//! Run with `cargo bench --bench servers` (root, for the network
//! namespaces).

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::{Cluster, Host, Lan};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, PostParams};

fn config_map(name: &str) -> ConfigMap {
    serde_json::from_value(serde_json::json!({
        "metadata": {"name": name},
        "data": {"key": "value of a typical size for a small configuration entry"},
    }))
    .unwrap()
}

/// Creates `count` ConfigMaps named `<prefix>-<i>` through `client`, 16 at
/// a time: creates/s and the latencies in ms.
async fn create(client: &kube::Client, prefix: &str, count: usize) -> (f64, Vec<f64>) {
    let started = Instant::now();
    let tasks: Vec<_> = (0..16)
        .map(|w| {
            let api: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
            let prefix = prefix.to_string();
            tokio::spawn(async move {
                let mut lat = Vec::new();
                for i in (w..count).step_by(16) {
                    let t = Instant::now();
                    api.create(
                        &PostParams::default(),
                        &config_map(&format!("{prefix}-{i}")),
                    )
                    .await
                    .unwrap();
                    lat.push(t.elapsed().as_secs_f64() * 1000.0);
                }
                lat
            })
        })
        .collect();
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    (count as f64 / started.elapsed().as_secs_f64(), all)
}

fn report(name: &str, (rate, mut lat): (f64, Vec<f64>)) -> f64 {
    println!(
        "{name}: {rate:.0} creates/s, p50 {:.1} ms, p99 {:.1} ms",
        common::percentile(&mut lat, 0.5),
        common::percentile(&mut lat, 0.99)
    );
    rate
}

/// The member id the leader has, as a server's `/peers/members` says.
async fn leader(client: &kube::Client) -> Option<u64> {
    let req = http::Request::get("/peers/members").body(Vec::new()).ok()?;
    let text = client.request_text(req).await.ok()?;
    let members: Vec<serde_json::Value> = serde_json::from_str(&text).ok()?;
    members
        .iter()
        .find(|m| m["leader"] == true)
        .and_then(|m| m["id"].as_u64())
}

fn main() {
    let creates = common::env_number("CREATES", 3_000);
    let trials = common::env_number("TRIALS", 20);
    let objects = common::env_number("OBJECTS", 100_000);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut lan = Lan::new();
    let hosts: Vec<Host> = (1..=5).map(|n| lan.host(n)).collect();

    // 1. One server, then three.
    let single = Cluster::start_on(&hosts[4], "bench-servers-single", &["--node-name", "one"]);
    let client = rt.block_on(common::kube_client(&single.kubeconfig));
    let one = report(
        "one server (shoal up)",
        rt.block_on(create(&client, "single", creates)),
    );
    drop(single);
    let mut servers = common::three_servers(&hosts, "bench-servers");
    let clients: Vec<kube::Client> = servers
        .iter()
        .map(|c| rt.block_on(common::kube_client(&c.kubeconfig)))
        .collect();
    let lead = rt.block_on(leader(&clients[0])).expect("a leader");
    let li = servers.iter().position(|c| c.member_id() == lead).unwrap();
    let fi = (li + 1) % 3;
    let through_leader = report(
        "three servers, through the leader",
        rt.block_on(create(&clients[li], "leader", creates)),
    );
    let through_follower = report(
        "three servers, through a follower",
        rt.block_on(create(&clients[fi], "follower", creates)),
    );
    println!(
        "replication cost: three/one {:.2} through the leader, {:.2} through a follower",
        through_leader / one,
        through_follower / one
    );

    // 2. Failover.
    let mut times = Vec::new();
    for trial in 0..trials {
        let lead = rt
            .block_on(leader(&clients[(trial + 1) % 3]))
            .expect("a leader");
        let li = servers.iter().position(|c| c.member_id() == lead).unwrap();
        let survivor = (li + 1) % 3;
        servers[li].crash();
        let killed = Instant::now();
        let api: Api<ConfigMap> = Api::namespaced(clients[survivor].clone(), "default");
        loop {
            let attempt = rt.block_on(async {
                let cm = config_map(&format!("failover-{trial}"));
                tokio::time::timeout(
                    Duration::from_secs(5),
                    api.create(&PostParams::default(), &cm),
                )
                .await
            });
            if matches!(attempt, Ok(Ok(_))) {
                break;
            }
            assert!(
                killed.elapsed() < Duration::from_secs(30),
                "no write for 30 s"
            );
        }
        let took = killed.elapsed().as_secs_f64() * 1000.0;
        times.push(took);
        servers[li].boot();
    }
    let mut sorted = times.clone();
    sorted.sort_by(f64::total_cmp);
    println!(
        "failover trials, sorted (ms): {}",
        sorted
            .iter()
            .map(|t| format!("{t:.0}"))
            .collect::<Vec<_>>()
            .join(" ")
    );
    println!(
        "failover over {trials} trials (SIGKILL of the leader → first accepted create): p50 {:.0} ms, p99 {:.0} ms, largest {:.0} ms (target p99 ≤ 1,000 ms)",
        common::percentile(&mut sorted, 0.5),
        common::percentile(&mut sorted, 0.99),
        sorted.last().copied().unwrap_or_default()
    );

    // 3. Recovery with many objects.
    let lead = rt.block_on(leader(&clients[0])).expect("a leader");
    let li = servers.iter().position(|c| c.member_id() == lead).unwrap();
    let started = Instant::now();
    rt.block_on(create(&clients[li], "fill", objects));
    println!(
        "{objects} more ConfigMaps stored in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let fi = (li + 1) % 3;
    servers[fi].stop();
    let started = Instant::now();
    servers[fi].boot();
    println!(
        "a follower restarted with them: ready in {:.2} s",
        started.elapsed().as_secs_f64()
    );
    let started = Instant::now();
    let mut new = servers[li].joiner_on(&hosts[3], "bench-servers-new", "s4", &[]);
    new.boot();
    let joined = started.elapsed().as_secs_f64();
    let voters = rt.block_on(async {
        let text = clients[li]
            .request_text(
                http::Request::get("/peers/members")
                    .body(Vec::new())
                    .unwrap(),
            )
            .await
            .unwrap();
        let members: Vec<serde_json::Value> = serde_json::from_str(&text).unwrap();
        members
            .iter()
            .filter(|m| m["voter"] == true)
            .map(|m| m["id"].as_u64().unwrap())
            .collect::<Vec<_>>()
    });
    assert!(voters.contains(&new.member_id()), "the new server votes");
    println!(
        "a new server from an empty data directory to a voting member with them: {joined:.2} s"
    );
    drop(new);
    drop(servers);
}

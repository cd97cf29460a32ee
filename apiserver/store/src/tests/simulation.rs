//! Three members on a network that drops, delays and reorders their
//! calls, cuts members off and restarts them, while clients write and
//! read through every member; the history must be linearizable and the
//! group must heal.
//!
//! It runs on one thread with the clock paused: the network's delays,
//! Raft's heartbeats and the members' election delays take simulated time,
//! storage work none, so a minute of faults takes a few seconds. Every
//! decision of the test and of shoal (faults, clients, election delays)
//! comes from one seed (printed; `SHOAL_SIM_SEED` sets it). A seed
//! replays those decisions but not every interleaving: inside openraft,
//! tokio's `select!` picks among branches ready at once at random.
//! `SHOAL_SIM_SECONDS` (default 60) sets the simulated time of faults.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng as _};
use serde_json::json;

use super::linearizability::{Kind, Op, check};
use super::net::{Faults, Net};
use crate::{Command, Cond, Outcome, Store};

const KEYS: usize = 4;
const CLIENTS: usize = 4;

/// The member `m<id>` as the network has it now (restarts replace it).
fn member(net: &Net, id: u64) -> Option<Store> {
    net.members.lock().unwrap().get(&format!("m{id}")).cloned()
}

/// A point in the history: a count, as simulated time stands still while
/// the thread works and real-time order is all the checker needs.
fn now(_origin: Instant) -> u64 {
    static TICKS: AtomicU64 = AtomicU64::new(1);
    TICKS.fetch_add(1, Ordering::Relaxed)
}

/// One operation through `store`, recorded in `history`.
async fn operate(
    store: &Store,
    key: String,
    write: Option<u64>,
    origin: Instant,
    history: &Mutex<Vec<Op>>,
) {
    let invoked = now(origin);
    let limit = Duration::from_secs(2);
    let op = match write {
        Some(value) => {
            let command = Command::Put {
                key: key.clone(),
                value: json!({"metadata": {"name": key}, "v": value}),
                cond: Cond::Any,
            };
            let (revision, completed) = match tokio::time::timeout(limit, store.write(command))
                .await
            {
                Ok(Ok(Outcome::Applied { revision, .. })) => (Some(revision), Some(now(origin))),
                // Failed or unanswered: it may have happened.
                _ => (None, None),
            };
            Op {
                key,
                kind: Kind::Write { value, revision },
                invoked,
                completed,
            }
        }
        None => {
            let read = async {
                store.linearize().await?;
                Ok::<_, crate::StoreError>(store.get(&key))
            };
            match tokio::time::timeout(limit, read).await {
                Ok(Ok(found)) => Op {
                    kind: Kind::Read {
                        value: found.as_ref().and_then(|s| s.value["v"].as_u64()),
                        revision: found.map_or(0, |s| s.revision),
                    },
                    key,
                    invoked,
                    completed: Some(now(origin)),
                },
                _ => return,
            }
        }
    };
    history.lock().unwrap().push(op);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_faulty_network_loses_no_acknowledged_write_and_serves_no_stale_read() {
    let seed: u64 = std::env::var("SHOAL_SIM_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    eprintln!("simulation seed {seed} (SHOAL_SIM_SEED={seed} replays its decisions)");
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let net = Arc::new(Net::default());
    *net.election_seed.lock().unwrap() = Some(seed);
    net.group(&dirs).await;
    net.set_faults(Some(Faults::new(seed, 0.02, Duration::from_millis(5))));

    let origin = Instant::now();
    let history = Arc::new(Mutex::new(Vec::new()));
    let values = Arc::new(AtomicU64::new(1));
    let run_for = Duration::from_secs(
        std::env::var("SHOAL_SIM_SECONDS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(60),
    );
    let clients: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let (net, history, values) = (net.clone(), history.clone(), values.clone());
            tokio::spawn(async move {
                let mut rng = StdRng::seed_from_u64(seed.wrapping_add(c as u64 + 1));
                while origin.elapsed() < run_for {
                    let id = rng.random_range(1..=3);
                    let key = format!("k{}", rng.random_range(0..KEYS));
                    let write = rng
                        .random_bool(0.5)
                        .then(|| values.fetch_add(1, Ordering::Relaxed));
                    let Some(store) = member(&net, id) else {
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        continue;
                    };
                    operate(&store, key, write, origin, &history).await;
                }
            })
        })
        .collect();

    // The nemesis: cuts a member off (the leader half the time), heals,
    // and restarts a member from its directory.
    let mut rng = StdRng::seed_from_u64(seed ^ 0x5eed);
    let mut restarts = 0;
    while origin.elapsed() < run_for {
        let leader = member(&net, 1)
            .or_else(|| member(&net, 2))
            .and_then(|s| s.leader());
        let victim = match leader {
            Some(l) if rng.random_bool(0.5) => l,
            _ => rng.random_range(1..=3),
        };
        if rng.random_bool(0.25) {
            let gone = net.members.lock().unwrap().remove(&format!("m{victim}"));
            if let Some(store) = gone {
                store.shutdown().await;
                drop(store);
                tokio::time::sleep(Duration::from_millis(rng.random_range(100..400))).await;
                net.open(dirs[victim as usize - 1].path(), victim, victim == 1)
                    .await;
                restarts += 1;
            }
        } else {
            net.cut.lock().unwrap().insert(format!("m{victim}"));
            tokio::time::sleep(Duration::from_millis(rng.random_range(200..800))).await;
            net.cut.lock().unwrap().clear();
        }
        // Time to elect a leader and get work done before the next.
        tokio::time::sleep(Duration::from_millis(rng.random_range(300..1000))).await;
    }
    for c in clients {
        c.await.unwrap();
    }

    // The faults stop: the group heals, and every member answers every
    // key as the others do.
    net.set_faults(None);
    net.cut.lock().unwrap().clear();
    for id in 1..=3 {
        let store = member(&net, id).unwrap();
        let healed = tokio::time::timeout(Duration::from_secs(20), store.caught_up()).await;
        assert!(healed.is_ok(), "member {id} did not heal");
        for k in 0..KEYS {
            operate(&store, format!("k{k}"), None, origin, &history).await;
        }
    }
    let history = history.lock().unwrap().clone();
    let acknowledged = history
        .iter()
        .filter(|op| {
            matches!(
                op.kind,
                Kind::Write {
                    revision: Some(_),
                    ..
                }
            )
        })
        .count();
    let reads = history
        .iter()
        .filter(|op| matches!(op.kind, Kind::Read { .. }))
        .count();
    let unknown = history
        .iter()
        .filter(|op| matches!(op.kind, Kind::Write { revision: None, .. }))
        .count();
    eprintln!(
        "{acknowledged} writes acknowledged, {unknown} unanswered, {reads} reads, {restarts} restarts"
    );
    assert!(
        acknowledged > 30 && reads > 30,
        "too little got through to mean anything"
    );
    let final_reads = &history[history.len() - 3 * KEYS..];
    assert_eq!(final_reads.len(), 3 * KEYS, "a healed member failed a read");
    let violations = check(&history);
    assert!(
        violations.is_empty(),
        "seed {seed}: {} violations, first: {:?}",
        violations.len(),
        &violations[..violations.len().min(5)]
    );
    for id in 1..=3 {
        member(&net, id).unwrap().shutdown().await;
    }
}

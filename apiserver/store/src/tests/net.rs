//! Members in one process, reaching each other through memory: a member
//! may be cut off (it neither reaches nor is reached), and calls may be
//! dropped (before or after they are served), delayed and so reordered,
//! by a seeded fault schedule.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng as _};

use crate::{Command, Options, Outcome, Rpc, Store, Transport};

/// The members and what the network does to their calls.
#[derive(Default)]
pub(super) struct Net {
    pub(super) members: Mutex<HashMap<String, Store>>,
    pub(super) cut: Mutex<HashSet<String>>,
    faults: Mutex<Option<Faults>>,
    /// Seeds the members' election delays (plus their ids) when set.
    pub(super) election_seed: Mutex<Option<u64>>,
}

/// What happens to calls: each is dropped on its way with probability
/// `drop` (and its reply lost with the same), and waits up to
/// `max_delay` each way; the decisions come from a seeded generator.
pub(super) struct Faults {
    rng: StdRng,
    drop: f64,
    max_delay: Duration,
}

impl Faults {
    pub(super) fn new(seed: u64, drop: f64, max_delay: Duration) -> Self {
        Self {
            rng: StdRng::seed_from_u64(seed),
            drop,
            max_delay,
        }
    }
}

/// What the network decided for one call.
struct Fate {
    lost_on_the_way: bool,
    reply_lost: bool,
    there: Duration,
    back: Duration,
}

/// One member's end of a [`Net`].
struct Link {
    me: String,
    net: Arc<Net>,
}

impl Transport for Link {
    fn call(
        &self,
        addr: &str,
        rpc: Rpc,
        body: Vec<u8>,
    ) -> futures::future::BoxFuture<'static, Result<Vec<u8>, String>> {
        let cut = self.net.cut.lock().unwrap();
        let target = if cut.contains(addr) || cut.contains(&self.me) {
            None
        } else {
            self.net.members.lock().unwrap().get(addr).cloned()
        };
        drop(cut);
        let fate = self.net.fate();
        Box::pin(async move {
            let Some(store) = target else {
                return Err("unreachable".into());
            };
            tokio::time::sleep(fate.there).await;
            if fate.lost_on_the_way {
                return Err("dropped".into());
            }
            let reply = store.serve(rpc, &body).await;
            tokio::time::sleep(fate.back).await;
            if fate.reply_lost {
                return Err("reply dropped".into());
            }
            reply
        })
    }
}

impl Net {
    /// Opens the store in `dir` as member `id` (at address `m<id>`) on
    /// this network; `init` starts a group.
    pub(super) async fn open(self: &Arc<Self>, dir: &Path, id: u64, init: bool) -> Store {
        let addr = format!("m{id}");
        let options = Options {
            id,
            addr: addr.clone(),
            sealer: None,
            transport: Some(Arc::new(Link {
                me: addr.clone(),
                net: self.clone(),
            })),
            init,
            election_seed: self
                .election_seed
                .lock()
                .unwrap()
                .map(|s| s.wrapping_add(id)),
        };
        let store = Store::open(dir, options).await.unwrap();
        self.members.lock().unwrap().insert(addr, store.clone());
        store
    }

    /// A group of members `m1`, `m2`, … in `dirs`: the first starts it,
    /// the others join it.
    pub(super) async fn group(self: &Arc<Self>, dirs: &[tempfile::TempDir]) -> Vec<Store> {
        let mut stores = vec![self.open(dirs[0].path(), 1, true).await];
        for (i, dir) in dirs.iter().enumerate().skip(1) {
            let s = self.open(dir.path(), i as u64 + 1, false).await;
            s.join("m1").await.unwrap();
            stores.push(s);
        }
        stores
    }

    /// Calls from here on meet `faults` (none with `None`).
    pub(super) fn set_faults(&self, faults: Option<Faults>) {
        *self.faults.lock().unwrap() = faults;
    }

    fn fate(&self) -> Fate {
        let mut faults = self.faults.lock().unwrap();
        match faults.as_mut() {
            None => Fate {
                lost_on_the_way: false,
                reply_lost: false,
                there: Duration::ZERO,
                back: Duration::ZERO,
            },
            Some(f) => {
                let max = f.max_delay.as_micros() as u64;
                Fate {
                    lost_on_the_way: f.rng.random_bool(f.drop),
                    reply_lost: f.rng.random_bool(f.drop),
                    there: Duration::from_micros(f.rng.random_range(0..=max)),
                    back: Duration::from_micros(f.rng.random_range(0..=max)),
                }
            }
        }
    }
}

/// Retries `write` for up to 10 s (while a leader is elected).
pub(super) async fn write_retrying(store: &Store, command: Command) -> Outcome {
    let start = std::time::Instant::now();
    loop {
        match store.write(command.clone()).await {
            Ok(o) => return o,
            Err(e) if start.elapsed() < Duration::from_secs(10) => {
                tracing::debug!("retrying: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("no write for 10 s: {e}"),
        }
    }
}

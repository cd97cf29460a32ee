//! When a member stands for election.
//!
//! openraft decides how a vote is cast and counted; this module only
//! decides when to ask for one. openraft 0.9's own timer waits for the
//! leader's lease (the longest election timeout) *and then* an election
//! timeout drawn once when the member starts, so a failover takes up to
//! twice the longest timeout, and two followers whose draws are close split
//! the vote again and again. Here a follower stands once the lease has run
//! out since it last heard from a leader, after a delay drawn afresh for
//! every attempt: the lease still keeps a live leader from being deposed
//! (the others refuse votes while it holds), and the fresh draws part
//! candidates that collided.
//!
//! May import: openraft and the crate's types.

use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use openraft::{Raft, ServerState};
use tokio::sync::mpsc::WeakUnboundedSender;
use tokio::time::Instant;

use crate::types::TypeConfig;

/// The leader's lease: a member that heard from a leader this recently
/// refuses to vote for another (openraft's rule, with its lease set to the
/// longest election timeout).
pub(crate) const LEASE: Duration = Duration::from_millis(400);

/// Heartbeats from the leader, several to a lease.
pub(crate) const HEARTBEAT: Duration = Duration::from_millis(50);

/// The spread of the delays drawn after the lease: wide enough that the
/// first candidate's vote request reaches the other members before their
/// own delays run out.
const SPREAD_MS: u64 = 150;

/// The shortest delay after the lease: the other members heard the last
/// heartbeat a little after this one did, and their leases must be over.
const MARGIN_MS: u64 = 20;

/// How long an election may take before the candidate stands again.
const RETRY: Duration = Duration::from_millis(100);

/// How often the member looks.
const TICK: Duration = Duration::from_millis(10);

/// When this member last heard from a leader (or granted a vote).
#[derive(Debug)]
pub(crate) struct Heard {
    base: Instant,
    millis: AtomicU64,
}

impl Default for Heard {
    fn default() -> Self {
        Self {
            base: Instant::now(),
            millis: AtomicU64::new(0),
        }
    }
}

impl Heard {
    /// A leader (or a candidate given this member's vote) was heard now.
    pub(crate) fn now(&self) {
        self.at(Instant::now());
    }

    fn at(&self, at: Instant) {
        let millis = at.saturating_duration_since(self.base).as_millis() as u64;
        self.millis.fetch_max(millis, Ordering::Relaxed);
    }

    fn since(&self) -> Duration {
        let last = self.base + Duration::from_millis(self.millis.load(Ordering::Relaxed));
        Instant::now().saturating_duration_since(last)
    }
}

/// The delays drawn after the lease (xorshift64*): from a seed, so a
/// simulation replays them, or from the system's randomness.
pub(crate) struct Draws(u64);

impl Draws {
    pub(crate) fn new(seed: Option<u64>) -> Self {
        let seed = seed.unwrap_or_else(|| {
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_u128(
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap_or_default()
                    .as_nanos(),
            );
            h.finish()
        });
        Self(seed | 1)
    }

    /// The next delay, `MARGIN_MS..MARGIN_MS + SPREAD_MS`.
    fn next(&mut self) -> Duration {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        let r = x.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 32;
        Duration::from_millis(MARGIN_MS + r % SPREAD_MS)
    }
}

/// Whether a member should stand now: a voter, not leading, whose lease
/// and drawn delay have run out since it last heard from a leader. The one
/// voter of a group stands at once.
pub(crate) fn should_stand(
    state: ServerState,
    voter: bool,
    only_voter: bool,
    silent: Duration,
    delay: Duration,
) -> bool {
    match state {
        ServerState::Leader | ServerState::Shutdown | ServerState::Learner => false,
        _ if !voter => false,
        ServerState::Candidate if only_voter => false,
        _ if only_voter => true,
        _ => silent >= LEASE + delay,
    }
}

/// Runs elections for `raft` until the store is dropped (`alive`, its
/// queue of proposals, gone) or
/// Raft shuts down.
pub(crate) async fn run<T>(
    raft: Raft<TypeConfig>,
    heard: Arc<Heard>,
    alive: WeakUnboundedSender<T>,
    mut draws: Draws,
) {
    let id = raft.metrics().borrow().id;
    let mut delay = draws.next();
    loop {
        tokio::time::sleep(TICK).await;
        if alive.upgrade().is_none() {
            return;
        }
        let (state, voter, only_voter) = {
            let m = raft.metrics();
            let m = m.borrow();
            let membership = m.membership_config.membership();
            let voters: Vec<u64> = membership.voter_ids().collect();
            (m.state, voters.contains(&id), voters == [id])
        };
        if state == ServerState::Shutdown {
            return;
        }
        if state == ServerState::Leader {
            heard.now();
            continue;
        }
        if !should_stand(state, voter, only_voter, heard.since(), delay) {
            continue;
        }
        tracing::debug!(member = id, "no leader heard: standing for election");
        if raft.trigger().elect().await.is_err() {
            return;
        }
        // A split vote or a lost election: the others' votes are not a
        // leader's, so no lease holds them; the next attempt comes after
        // the election's round trip and a new draw.
        heard.at((Instant::now() + RETRY)
            .checked_sub(LEASE)
            .unwrap_or(heard.base));
        delay = draws.next();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: Duration = Duration::from_millis(50);

    #[test]
    fn a_follower_stands_only_once_the_lease_and_its_delay_are_over() {
        let f = ServerState::Follower;
        assert!(!should_stand(f, true, false, LEASE, D));
        assert!(!should_stand(f, true, false, LEASE + D / 2, D));
        assert!(should_stand(f, true, false, LEASE + D, D));
        assert!(should_stand(
            ServerState::Candidate,
            true,
            false,
            LEASE + D,
            D
        ));
    }

    #[test]
    fn leaders_learners_and_non_voters_never_stand() {
        let long = Duration::from_secs(60);
        assert!(!should_stand(ServerState::Leader, true, true, long, D));
        assert!(!should_stand(ServerState::Learner, false, false, long, D));
        assert!(!should_stand(ServerState::Follower, false, false, long, D));
        assert!(!should_stand(ServerState::Shutdown, true, true, long, D));
    }

    #[test]
    fn the_only_voter_stands_at_once_but_not_twice() {
        let now = Duration::ZERO;
        assert!(should_stand(ServerState::Follower, true, true, now, D));
        assert!(!should_stand(ServerState::Candidate, true, true, now, D));
    }

    #[test]
    fn draws_differ_stay_in_their_range_and_replay_from_a_seed() {
        let mut system = Draws::new(None);
        let draws: Vec<Duration> = (0..64).map(|_| system.next()).collect();
        assert!(draws.iter().all(|d| {
            *d >= Duration::from_millis(MARGIN_MS)
                && *d < Duration::from_millis(MARGIN_MS + SPREAD_MS)
        }));
        let first = draws[0];
        assert!(draws.iter().any(|d| *d != first), "{draws:?}");
        let (mut a, mut b) = (Draws::new(Some(7)), Draws::new(Some(7)));
        let (a, b): (Vec<_>, Vec<_>) = (0..16).map(|_| (a.next(), b.next())).unzip();
        assert_eq!(a, b);
        assert_ne!(
            a,
            (0..16)
                .map({
                    let mut c = Draws::new(Some(8));
                    move |_| c.next()
                })
                .collect::<Vec<_>>()
        );
    }

    #[test]
    fn heard_keeps_the_latest_time() {
        let heard = Heard::default();
        heard.now();
        let later = heard.millis.load(Ordering::Relaxed);
        heard.at(heard.base);
        assert_eq!(heard.millis.load(Ordering::Relaxed), later);
        assert!(heard.since() < Duration::from_secs(1));
    }
}

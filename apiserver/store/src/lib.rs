//! The replicated object store: an openraft log and state machine on redb.
//!
//! Every write is a [`Command`] proposed through Raft; the state machine
//! applies it atomically with its precondition and stamps the entry's log
//! index as the object's `resourceVersion`, so one global revision orders
//! every change, as in etcd. Reads come from the applied state in memory.
//!
//! A store is one member of a Raft group: alone (`shoal up`), or one of
//! several servers reaching each other through a [`Transport`]. Any member
//! takes writes (a follower forwards them to the leader and answers once it
//! has applied them itself, so a client reads its own writes wherever it
//! writes); [`Store::linearize`] makes a read on any member see every write
//! acknowledged before it.

// openraft's `StorageError` is the error type its storage traits demand.
#![allow(clippy::result_large_err)]

mod election;
mod log;
mod network;
mod seal;
mod state;
mod types;
mod view;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use openraft::error::{ClientWriteError, RaftError};
use openraft::{
    AnyError, BasicNode, ChangeMembers, Config, ErrorSubject, ErrorVerb, Raft, StorageError,
    StorageIOError,
};
use serde::{Deserialize, Serialize};

pub use network::{Rpc, Transport};
pub use seal::{Provider, Rule, SealError, Sealer};
pub use state::{TooOld, WatchStart, resource_version};
use types::{Applied, Proposal, TypeConfig};
pub use types::{Command, Cond, Event, EventKind, Failure, Outcome, Stored};
pub use view::View;

/// Errors of the store.
#[derive(Debug, Clone, thiserror::Error, Serialize, Deserialize)]
pub enum StoreError {
    /// The store's files could not be opened.
    #[error("opening the store: {0}")]
    Open(String),
    /// Raft refused or failed the write.
    #[error("replication: {0}")]
    Raft(String),
}

/// Memory each redb database may use to cache pages. Reads are served from
/// the state machine's in-memory objects, so the cache only spares writes
/// a trip to the page cache; redb's default (1 GiB a database) would keep
/// every page a burst of writes touched for the life of the process.
const DB_CACHE_BYTES: usize = 32 << 20;

/// Opens (or creates) a redb database with the store's cache size.
pub(crate) fn open_db(path: &Path) -> Result<redb::Database, redb::DatabaseError> {
    redb::Database::builder()
        .set_cache_size(DB_CACHE_BYTES)
        .create(path)
}

/// Whether storage work runs inline, on the task asking for it: on a
/// current-thread runtime (a simulation's, with its clock paused), where
/// it takes no time on the runtime's clock and the order of events stays
/// what the simulation's seed made it. Elsewhere it runs beside the
/// runtime's other tasks.
pub(crate) fn inline_io() -> bool {
    tokio::runtime::Handle::try_current()
        .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::CurrentThread)
}

/// Runs blocking storage work: inline where [`inline_io`] says so,
/// otherwise with the runtime told the thread is busy.
pub(crate) fn blocking<T>(work: impl FnOnce() -> T) -> T {
    if inline_io() {
        work()
    } else {
        tokio::task::block_in_place(work)
    }
}

/// Reads what the store wrote. Objects sit a few levels down in log
/// entries and snapshots, so serde_json's default nesting limit (128) is
/// lifted here: an object the API accepted is always read back.
pub(crate) fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> serde_json::Result<T> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    de.disable_recursion_limit();
    let value = T::deserialize(&mut de)?;
    de.end()?;
    Ok(value)
}

/// Records in a database's `meta` table the sealing `sealer` writes with,
/// and whether the one recorded before was another (then what the
/// database holds must be written again).
pub(crate) fn sealing_changed(
    meta: &mut redb::Table<&str, &[u8]>,
    sealer: Option<&Sealer>,
) -> Result<bool, redb::Error> {
    use redb::ReadableTable as _;
    let fingerprint = sealer.map(Sealer::fingerprint).unwrap_or_default();
    if meta
        .get("sealing")?
        .is_some_and(|v| v.value() == fingerprint.as_bytes())
    {
        return Ok(false);
    }
    meta.insert("sealing", fingerprint.as_bytes())?;
    Ok(true)
}

pub(crate) fn read_err(e: impl std::error::Error + 'static) -> StorageError<u64> {
    StorageIOError::new(ErrorSubject::Store, ErrorVerb::Read, AnyError::new(&e)).into()
}

pub(crate) fn write_err(e: impl std::error::Error + 'static) -> StorageError<u64> {
    StorageIOError::new(ErrorSubject::Store, ErrorVerb::Write, AnyError::new(&e)).into()
}

/// Most commands in one log entry.
const MAX_BATCH: usize = 512;

/// A command waiting to be proposed, and whom to tell how it went.
type Pending = (Command, oneshot::Sender<Result<Outcome, StoreError>>);

/// A handle on the store; clones are cheap.
#[derive(Clone)]
pub struct Store {
    raft: Raft<TypeConfig>,
    shared: Arc<state::Shared>,
    /// Seals what a backup carries as the state seals it.
    sealer: Option<Arc<Sealer>>,
    proposals: mpsc::UnboundedSender<Pending>,
    peers: Peers,
}

/// How a store opens.
pub struct Options {
    /// This member's id, unique in the group.
    pub id: u64,
    /// The address its peers reach it at.
    pub addr: String,
    /// What values are encrypted with wherever they are persisted.
    pub sealer: Option<Arc<Sealer>>,
    /// How it reaches its peers; `None` for a member that stays alone.
    pub transport: Option<Arc<dyn Transport>>,
    /// Whether it starts a group of its own on first start; otherwise it
    /// waits for a member to add it ([`Store::join`]).
    pub init: bool,
    /// The seed of the delays drawn before standing for election (a
    /// simulation's, to replay them); `None` draws from the system.
    pub election_seed: Option<u64>,
}

/// A member of the group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// Its id.
    pub id: u64,
    /// The address its peers reach it at.
    pub addr: String,
    /// Whether it votes (a learner catching up does not).
    pub voter: bool,
}

/// The longest a write waits for a leader to be elected.
const LEADER_WAIT: Duration = Duration::from_secs(10);

impl Store {
    /// Opens the store in `dir` as member `id` of a Raft group whose only
    /// member it is, initialising the group on first start, and waits until
    /// it leads.
    pub async fn open_single(dir: &Path, id: u64, addr: &str) -> Result<Self, StoreError> {
        Self::open_sealed(dir, id, addr, None).await
    }

    /// As [`Store::open_single`], with the values `sealer` applies to
    /// encrypted wherever they are persisted.
    pub async fn open_sealed(
        dir: &Path,
        id: u64,
        addr: &str,
        sealer: Option<Arc<Sealer>>,
    ) -> Result<Self, StoreError> {
        Self::open(
            dir,
            Options {
                id,
                addr: addr.to_string(),
                sealer,
                transport: None,
                init: true,
                election_seed: None,
            },
        )
        .await
    }

    /// Opens the store in `dir` as `options` say. A member alone returns
    /// once it leads and has applied its log; a member of a group (or one
    /// yet to join) returns at once, to answer its peers: [`Store::linearize`]
    /// or [`Store::join`] then catch it up.
    pub async fn open(dir: &Path, options: Options) -> Result<Self, StoreError> {
        let Options {
            id,
            addr,
            sealer,
            transport,
            init,
            election_seed,
        } = options;
        std::fs::create_dir_all(dir).map_err(|e| StoreError::Open(e.to_string()))?;
        // A store being shut down in this process may still hold the files
        // for a moment; another process holding them is an error.
        let mut attempt = 0;
        let (log, sm) = loop {
            let opened =
                log::LogStore::open(&dir.join("raft-log.redb"), sealer.clone()).and_then(|log| {
                    Ok((
                        log,
                        state::StateMachine::open(&dir.join("state.redb"), sealer.clone())?,
                    ))
                });
            match opened {
                Ok(pair) => break pair,
                Err(redb::Error::DatabaseAlreadyOpen) if attempt < 50 => {
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(redb::Error::DatabaseAlreadyOpen) => {
                    return Err(StoreError::Open(format!(
                        "{} is in use by another shoal process",
                        dir.display()
                    )));
                }
                Err(e) => return Err(StoreError::Open(e.to_string())),
            }
        };
        let shared = sm.shared();
        let restored = sm.restored();
        // openraft's lease is its longest election timeout; when to stand
        // for election is `election`'s decision, not openraft's timer.
        let config = Config {
            cluster_name: "shoal".into(),
            heartbeat_interval: election::HEARTBEAT.as_millis() as u64,
            election_timeout_min: election::LEASE.as_millis() as u64 / 2,
            election_timeout_max: election::LEASE.as_millis() as u64,
            enable_elect: false,
            ..Default::default()
        };
        let config = Arc::new(
            config
                .validate()
                .map_err(|e| StoreError::Open(e.to_string()))?,
        );
        let raft = Raft::new(id, config, network::Network(transport.clone()), log, sm)
            .await
            .map_err(|e| StoreError::Open(e.to_string()))?;
        let initialized = raft
            .is_initialized()
            .await
            .map_err(|e| StoreError::Raft(e.to_string()))?;
        if !initialized && init {
            let members = BTreeMap::from([(id, BasicNode { addr: addr.clone() })]);
            raft.initialize(members)
                .await
                .map_err(|e| StoreError::Raft(e.to_string()))?;
        }
        let peers = Peers {
            raft: raft.clone(),
            transport,
            addr,
            heard: Arc::default(),
        };
        let (proposals, queue) = mpsc::unbounded_channel();
        tokio::spawn(propose_loop(peers.clone(), queue));
        tokio::spawn(election::run(
            raft.clone(),
            peers.heard.clone(),
            proposals.downgrade(),
            election::Draws::new(election_seed),
        ));
        let store = Self {
            raft,
            shared,
            sealer,
            proposals,
            peers,
        };
        let alone = store.peers.transport.is_none()
            || store.members().iter().filter(|m| m.voter).count() == 1
                && store.members().iter().all(|m| m.id == id);
        if (initialized || init) && alone {
            // Alone: entries of earlier terms are applied once its first
            // entry as leader commits; reads before that would miss the
            // last writes.
            store
                .raft
                .wait(Some(Duration::from_secs(30)))
                .metrics(
                    |m| {
                        m.current_leader == Some(id)
                            && m.last_log_index.is_some()
                            && m.last_applied.map(|l| l.index) == m.last_log_index
                    },
                    "leader elected and its log applied",
                )
                .await
                .map_err(|e| StoreError::Raft(e.to_string()))?;
            // The only member, now reached elsewhere (a server alone
            // becoming the first of several, a new address): the group
            // records where, for members joining later.
            let recorded = store.members().into_iter().find(|m| m.id == id);
            if store.peers.transport.is_some()
                && recorded.is_some_and(|m| m.addr != store.peers.addr)
            {
                let node = BasicNode {
                    addr: store.peers.addr.clone(),
                };
                store
                    .raft
                    .change_membership(ChangeMembers::SetNodes(BTreeMap::from([(id, node)])), false)
                    .await
                    .map_err(|e| StoreError::Raft(e.to_string()))?;
            }
        }
        if restored {
            store.cover_restored_state().await?;
        }
        Ok(store)
    }

    /// Takes a snapshot of a state restored from a backup and purges the
    /// log it covers, once this member leads: the restored objects came
    /// from no log entry, and a member joining later must get them, which
    /// it does as a snapshot once the entries it lacks are gone.
    async fn cover_restored_state(&self) -> Result<(), StoreError> {
        let id = self.id();
        let raft_err = |e: &dyn std::fmt::Display| StoreError::Raft(e.to_string());
        let leading = self
            .raft
            .wait(Some(Duration::from_secs(30)))
            .metrics(
                |m| m.current_leader == Some(id) && m.last_applied.is_some(),
                "a restored member leading",
            )
            .await
            .map_err(|e| raft_err(&e))?;
        let applied = leading.last_applied.map_or(0, |l| l.index);
        self.raft
            .trigger()
            .snapshot()
            .await
            .map_err(|e| raft_err(&e))?;
        let metrics = self
            .raft
            .wait(Some(Duration::from_secs(60)))
            .metrics(
                |m| m.snapshot.is_some_and(|s| s.index >= applied),
                "a snapshot of the restored state",
            )
            .await
            .map_err(|e| raft_err(&e))?;
        let upto = metrics.snapshot.map_or(0, |s| s.index);
        self.raft
            .trigger()
            .purge_log(upto)
            .await
            .map_err(|e| raft_err(&e))?;
        self.raft
            .wait(Some(Duration::from_secs(30)))
            .metrics(
                |m| m.purged.is_some_and(|p| p.index >= upto),
                "the log under the snapshot purged",
            )
            .await
            .map_err(|e| raft_err(&e))?;
        Ok(())
    }

    /// Waits, as long as it takes, until this member has applied what its
    /// group committed (a server starting among others, before it reads).
    pub async fn caught_up(&self) {
        let mut waited = 0;
        while let Err(e) = self.linearize().await {
            waited += 1;
            if waited % 10 == 1 {
                tracing::info!("waiting for the store's group: {e}");
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// This member's id.
    pub fn id(&self) -> u64 {
        self.raft.metrics().borrow().id
    }

    /// The leader's id, if one is known.
    pub fn leader(&self) -> Option<u64> {
        self.raft.metrics().borrow().current_leader
    }

    /// Waits until the leader changes, or `at_most`.
    pub async fn leadership_changed(&self, at_most: Duration) {
        let mut metrics = self.raft.metrics();
        let now = metrics.borrow().current_leader;
        let changed = async {
            while metrics.changed().await.is_ok() {
                if metrics.borrow().current_leader != now {
                    return;
                }
            }
            // The Raft node stopped: nothing more will change.
            std::future::pending::<()>().await
        };
        let _ = tokio::time::timeout(at_most, changed).await;
    }

    /// Waits until the Raft node stops on a fatal error (its storage
    /// failed: a full disk, an I/O error), and returns the error. It never
    /// returns while the node runs.
    pub async fn stopped(&self) -> String {
        let mut metrics = self.raft.metrics();
        loop {
            if let Err(e) = &metrics.borrow().running_state {
                return e.to_string();
            }
            if metrics.changed().await.is_err() {
                return "the Raft node stopped".into();
            }
        }
    }

    /// The members of the group, voters and learners.
    pub fn members(&self) -> Vec<Member> {
        let metrics = self.raft.metrics().borrow().clone();
        let membership = metrics.membership_config.membership();
        let voters: std::collections::BTreeSet<u64> = membership.voter_ids().collect();
        membership
            .nodes()
            .map(|(id, node)| Member {
                id: *id,
                addr: node.addr.clone(),
                voter: voters.contains(id),
            })
            .collect()
    }

    /// Asks the member at `addr` (any member: it passes the request to the
    /// leader) to add this one, as a learner until it has caught up, then
    /// as a voter, and waits until this member has applied what the group
    /// committed.
    pub async fn join(&self, addr: &str) -> Result<(), StoreError> {
        let me = self
            .peers
            .transport
            .as_ref()
            .ok_or_else(|| StoreError::Raft("a member alone cannot join".into()))?;
        let request = serde_json::to_vec(&(self.id(), &self.peers.addr))
            .map_err(|e| StoreError::Raft(e.to_string()))?;
        let reply = me
            .call(addr, Rpc::Join, request)
            .await
            .map_err(StoreError::Raft)?;
        let answer: Result<(), StoreError> =
            decode(&reply).map_err(|e| StoreError::Raft(e.to_string()))?;
        answer?;
        self.linearize().await
    }

    /// Adds member `id` at `addr`: as a learner until it has caught up,
    /// then as a voter. On a member that does not lead, the leader is asked.
    pub async fn add_member(&self, id: u64, addr: &str) -> Result<(), StoreError> {
        self.peers.add_member(id, addr.to_string()).await
    }

    /// Removes member `id` from the group (on the leader, or asking it).
    /// The last voter cannot go.
    pub async fn remove_member(&self, id: u64) -> Result<(), StoreError> {
        self.peers.remove_member(id).await
    }

    /// The whole state as of now (after a linearizable read), in the body
    /// [`Store::restore`] reads: every object at one revision, values the
    /// store seals sealed.
    pub async fn backup(&self) -> Result<Vec<u8>, StoreError> {
        self.linearize().await?;
        let view = self
            .shared
            .view("", None)
            .map_err(|e| StoreError::Raft(format!("no view of the state (oldest {})", e.oldest)))?;
        Ok(view::backup_body(&view, self.sealer.as_deref()))
    }

    /// Makes the store in `dir` hold the state of `backup` (a body
    /// [`Store::backup`] wrote) and nothing else: no log, no members. The
    /// store opened there next starts a new group, with the backup's
    /// objects and revision. `sealer` must open what the backup sealed.
    pub fn restore(
        dir: &Path,
        backup: &[u8],
        sealer: Option<Arc<Sealer>>,
    ) -> Result<u64, StoreError> {
        std::fs::create_dir_all(dir).map_err(|e| StoreError::Open(e.to_string()))?;
        for db in ["raft-log.redb", "state.redb"] {
            let path = dir.join(db);
            if path.exists()
                && let Err(redb::DatabaseError::DatabaseAlreadyOpen) = redb::Database::open(&path)
            {
                return Err(StoreError::Open(format!(
                    "{} is in use: stop the server first",
                    path.display()
                )));
            }
        }
        for file in ["raft-log.redb", "state.redb", "state.snapshot"] {
            match std::fs::remove_file(dir.join(file)) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(StoreError::Open(format!("{file}: {e}")));
                }
                _ => {}
            }
        }
        state::StateMachine::restore(&dir.join("state.redb"), sealer, backup)
            .map_err(|e| StoreError::Open(e.to_string()))
    }

    /// Waits until this member has applied every write acknowledged before
    /// the call, as the leader confirms it still leads (Raft's ReadIndex):
    /// a read after it is linearizable.
    pub async fn linearize(&self) -> Result<(), StoreError> {
        if self.peers.transport.is_none() {
            // Alone: every write was applied here before it was
            // acknowledged.
            return Ok(());
        }
        let index = self.peers.read_index().await?;
        self.peers.applied(index).await
    }

    /// Answers a peer's call `rpc` with body `body`; an error is a body
    /// that is not such a call.
    pub async fn serve(&self, rpc: Rpc, body: &[u8]) -> Result<Vec<u8>, String> {
        self.peers.serve(rpc, body).await
    }

    /// Proposes a command and waits until it is applied. Commands written
    /// concurrently are proposed together in one log entry, in the order
    /// they arrived.
    pub async fn write(&self, command: Command) -> Result<Outcome, StoreError> {
        let stopped = || StoreError::Raft("the store has stopped".into());
        let (reply, outcome) = oneshot::channel();
        self.proposals
            .send((command, reply))
            .map_err(|_| stopped())?;
        outcome.await.map_err(|_| stopped())?
    }

    /// The object at `key`.
    pub fn get(&self, key: &str) -> Option<Stored> {
        self.shared.get(key)
    }

    /// Objects under `prefix` and the revision they were read at.
    pub fn list(&self, prefix: &str) -> (Vec<Stored>, u64) {
        self.shared.list(prefix)
    }

    /// Keeps the objects under `prefix` as they were at `revision` for
    /// `list_at` while a paged list reads them (until 10 s after its last
    /// page).
    pub fn pin(&self, prefix: &str, revision: u64) {
        self.shared.pin(prefix, revision)
    }

    /// The latest applied revision.
    pub fn revision(&self) -> u64 {
        self.shared.revision()
    }

    /// The objects under `prefix` as they are now (`at` is `None`) or were
    /// at revision `at`, for a page of a list to be read from: a snapshot
    /// taken in O(1) plus the changes since `at` under `prefix`.
    pub fn view(&self, prefix: &str, at: Option<u64>) -> Result<View, TooOld> {
        self.shared.view(prefix, at)
    }

    /// Objects under `prefix` as they were at `revision`, if the changes
    /// since are still kept.
    pub fn list_at(&self, prefix: &str, revision: u64) -> Result<Vec<Stored>, TooOld> {
        self.shared.list_at(prefix, revision)
    }

    /// Changes after revision `from` and a receiver for what follows.
    pub fn watch(&self, from: Option<u64>) -> Result<WatchStart, TooOld> {
        self.shared.watch(from)
    }

    /// Stops the Raft node.
    pub async fn shutdown(&self) {
        let _ = self.raft.shutdown().await;
    }
}

/// A member's dealings with its peers: writes, reads and joins passed to
/// the leader, and the peers' calls answered.
#[derive(Clone)]
struct Peers {
    raft: Raft<TypeConfig>,
    transport: Option<Arc<dyn Transport>>,
    /// The address the peers reach this member at.
    addr: String,
    /// When a leader was last heard from.
    heard: Arc<election::Heard>,
}

impl Peers {
    /// The leader's address when another member leads, waiting up to
    /// [`LEADER_WAIT`] for an election; `None` when this member leads.
    async fn leader_elsewhere(&self) -> Result<Option<String>, StoreError> {
        if self.transport.is_none() {
            // Alone: it leads, or nobody does and the write fails there.
            return Ok(None);
        }
        // A member may hear from a leader before the log naming the
        // leader's address reaches it.
        let metrics = self
            .raft
            .wait(Some(LEADER_WAIT))
            .metrics(
                |m| {
                    m.current_leader.is_some_and(|l| {
                        l == m.id || m.membership_config.membership().get_node(&l).is_some()
                    })
                },
                "a leader elected, with its address",
            )
            .await
            .map_err(|e| StoreError::Raft(format!("no leader: {e}")))?;
        let leader = metrics.current_leader.expect("waited for a leader");
        if leader == metrics.id {
            return Ok(None);
        }
        Ok(metrics
            .membership_config
            .membership()
            .get_node(&leader)
            .map(|n| n.addr.clone()))
    }

    /// Calls `rpc` on the member at `addr` with `request`; its answer.
    async fn call<Req: Serialize, Resp: serde::de::DeserializeOwned>(
        &self,
        addr: &str,
        rpc: Rpc,
        request: &Req,
    ) -> Result<Resp, StoreError> {
        let transport = self
            .transport
            .as_ref()
            .ok_or_else(|| StoreError::Raft("no transport to other members".into()))?;
        let body = serde_json::to_vec(request).map_err(|e| StoreError::Raft(e.to_string()))?;
        let reply = transport
            .call(addr, rpc, body)
            .await
            .map_err(|e| StoreError::Raft(format!("the leader at {addr}: {e}")))?;
        let answer: Result<Resp, StoreError> =
            decode(&reply).map_err(|e| StoreError::Raft(e.to_string()))?;
        answer
    }

    /// Proposes on the leader, passing the proposal to it when another
    /// member leads; the outcome and the entry's log index.
    async fn propose(&self, proposal: Proposal) -> Result<(Applied, u64), StoreError> {
        match self.leader_elsewhere().await? {
            None => match self.raft.client_write(proposal).await {
                Ok(resp) => Ok((resp.data, resp.log_id.index)),
                // Leadership moved before the entry was taken: nothing
                // was written.
                Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => {
                    Err(StoreError::Raft(format!(
                        "leadership moved to {:?} before the write was taken; try again",
                        f.leader_id
                    )))
                }
                Err(e) => Err(StoreError::Raft(e.to_string())),
            },
            Some(addr) => {
                let (applied, index): (Applied, u64) =
                    self.call(&addr, Rpc::Write, &proposal).await?;
                // Answered once this member has it too: the client reads
                // its write here next.
                self.applied(index).await?;
                Ok((applied, index))
            }
        }
    }

    /// Waits until this member has applied log index `index`.
    async fn applied(&self, index: u64) -> Result<(), StoreError> {
        self.raft
            .wait(Some(LEADER_WAIT))
            .applied_index_at_least(Some(index), "the leader's entries applied")
            .await
            .map(|_| ())
            .map_err(|e| StoreError::Raft(e.to_string()))
    }

    /// The log index a linearizable read must wait for: the leader's, once
    /// it has confirmed with a quorum that it still leads.
    async fn read_index(&self) -> Result<u64, StoreError> {
        match self.leader_elsewhere().await? {
            None => {
                let (read, _) = self
                    .raft
                    .get_read_log_id()
                    .await
                    .map_err(|e| StoreError::Raft(e.to_string()))?;
                Ok(read.map_or(0, |l| l.index))
            }
            Some(addr) => self.call(&addr, Rpc::ReadIndex, &()).await,
        }
    }

    /// Removes member `id`, on the leader.
    async fn remove_member(&self, id: u64) -> Result<(), StoreError> {
        if let Some(leader) = self.leader_elsewhere().await? {
            return self.call(&leader, Rpc::Remove, &id).await;
        }
        let membership = self.raft.metrics().borrow().membership_config.clone();
        let membership = membership.membership();
        if membership.get_node(&id).is_none() {
            return Err(StoreError::Raft(format!("no member {id}")));
        }
        let voters: std::collections::BTreeSet<u64> = membership.voter_ids().collect();
        if voters.len() == 1 && voters.contains(&id) {
            return Err(StoreError::Raft(format!(
                "member {id} is the last voter: the group cannot go on without it"
            )));
        }
        let raft_err =
            |e: RaftError<u64, ClientWriteError<u64, BasicNode>>| StoreError::Raft(e.to_string());
        let ids = std::collections::BTreeSet::from([id]);
        if voters.contains(&id) {
            self.raft
                .change_membership(ChangeMembers::RemoveVoters(ids.clone()), false)
                .await
                .map_err(raft_err)?;
        }
        self.raft
            .change_membership(ChangeMembers::RemoveNodes(ids), false)
            .await
            .map_err(raft_err)?;
        Ok(())
    }

    /// Adds member `id` at `addr`, on the leader.
    async fn add_member(&self, id: u64, addr: String) -> Result<(), StoreError> {
        if let Some(leader) = self.leader_elsewhere().await? {
            return self.call(&leader, Rpc::Join, &(id, addr)).await;
        }
        let raft_err =
            |e: RaftError<u64, ClientWriteError<u64, BasicNode>>| StoreError::Raft(e.to_string());
        let membership = self.raft.metrics().borrow().membership_config.clone();
        if membership.membership().voter_ids().any(|v| v == id) {
            return Ok(());
        }
        // A learner first, until it has the log; then it votes.
        self.raft
            .add_learner(id, BasicNode { addr }, true)
            .await
            .map_err(raft_err)?;
        self.raft
            .change_membership(
                ChangeMembers::AddVoterIds(std::collections::BTreeSet::from([id])),
                false,
            )
            .await
            .map_err(raft_err)?;
        Ok(())
    }

    /// Answers a peer's call.
    async fn serve(&self, rpc: Rpc, body: &[u8]) -> Result<Vec<u8>, String> {
        fn reply<T: Serialize>(answer: T) -> Result<Vec<u8>, String> {
            serde_json::to_vec(&answer).map_err(|e| e.to_string())
        }
        let bad = |e: serde_json::Error| format!("a malformed {} call: {e}", rpc.name());
        match rpc {
            Rpc::Append => {
                let answer = self.raft.append_entries(decode(body).map_err(bad)?).await;
                if answer.as_ref().is_ok_and(|a| {
                    !matches!(a, openraft::raft::AppendEntriesResponse::HigherVote(_))
                }) {
                    self.heard.now();
                }
                reply(answer)
            }
            Rpc::Vote => {
                let answer = self.raft.vote(decode(body).map_err(bad)?).await;
                if answer.as_ref().is_ok_and(|a| a.vote_granted) {
                    self.heard.now();
                }
                reply(answer)
            }
            Rpc::Snapshot => {
                let answer = self.raft.install_snapshot(decode(body).map_err(bad)?).await;
                if answer.is_ok() {
                    self.heard.now();
                }
                reply(answer)
            }
            Rpc::Write => {
                let proposal: Proposal = decode(body).map_err(bad)?;
                reply(match self.leader_elsewhere().await {
                    Ok(None) => self
                        .raft
                        .client_write(proposal)
                        .await
                        .map(|r| (r.data, r.log_id.index))
                        .map_err(|e| StoreError::Raft(e.to_string())),
                    Ok(Some(_)) => Err(StoreError::Raft(
                        "not the leader: the write was not taken".into(),
                    )),
                    Err(e) => Err(e),
                })
            }
            Rpc::Join => {
                let (id, addr): (u64, String) = decode(body).map_err(bad)?;
                reply(self.add_member(id, addr).await)
            }
            Rpc::Remove => {
                let id: u64 = decode(body).map_err(bad)?;
                reply(self.remove_member(id).await)
            }
            Rpc::ReadIndex => {
                let () = decode(body).map_err(bad)?;
                reply(match self.leader_elsewhere().await {
                    Ok(None) => self.read_index().await,
                    Ok(Some(_)) => Err(StoreError::Raft("not the leader".into())),
                    Err(e) => Err(e),
                })
            }
        }
    }
}

/// Takes the commands waiting, proposes them as one log entry and answers
/// each with its outcome. One entry is on its way at a time: the commands
/// arriving meanwhile go together in the next (measured: more writes per
/// second than several smaller entries in flight).
async fn propose_loop(peers: Peers, mut queue: mpsc::UnboundedReceiver<Pending>) {
    while let Some(first) = queue.recv().await {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH
            && let Ok(next) = queue.try_recv()
        {
            batch.push(next);
        }
        let (commands, replies): (Vec<_>, Vec<_>) = batch.into_iter().unzip();
        let proposal = if commands.len() == 1 {
            Proposal::One(commands.into_iter().next().expect("one command"))
        } else {
            Proposal::Batch(commands)
        };
        match peers.propose(proposal).await.map(|(applied, _)| applied) {
            Ok(Applied::One(outcome)) => {
                for reply in replies {
                    let _ = reply.send(Ok(outcome.clone()));
                }
            }
            Ok(Applied::Batch(outcomes)) => {
                for (reply, outcome) in replies.into_iter().zip(outcomes) {
                    let _ = reply.send(Ok(outcome));
                }
            }
            Err(e) => {
                for reply in replies {
                    let _ = reply.send(Err(e.clone()));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;

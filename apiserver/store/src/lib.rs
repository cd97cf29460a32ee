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

mod log;
mod network;
mod seal;
mod state;
mod types;

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
pub use state::{TooOld, View, WatchStart, resource_version};
use types::{Applied, Proposal, TypeConfig};
pub use types::{Command, Cond, Event, EventKind, Failure, Outcome, Stored};

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
        let config = Config {
            cluster_name: "shoal".into(),
            heartbeat_interval: 100,
            election_timeout_min: 300,
            election_timeout_max: 600,
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
        };
        let (proposals, queue) = mpsc::unbounded_channel();
        tokio::spawn(propose_loop(peers.clone(), queue));
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
        Ok(state::backup_body(&view, self.sealer.as_deref()))
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
            Rpc::Append => reply(self.raft.append_entries(decode(body).map_err(bad)?).await),
            Rpc::Vote => reply(self.raft.vote(decode(body).map_err(bad)?).await),
            Rpc::Snapshot => reply(self.raft.install_snapshot(decode(body).map_err(bad)?).await),
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
mod tests {
    use openraft::testing::{StoreBuilder, Suite};
    use serde_json::json;

    use super::*;

    struct Builder;

    impl StoreBuilder<TypeConfig, log::LogStore, state::StateMachine, tempfile::TempDir> for Builder {
        async fn build(
            &self,
        ) -> Result<(tempfile::TempDir, log::LogStore, state::StateMachine), StorageError<u64>>
        {
            let dir = tempfile::tempdir().map_err(write_err)?;
            let log = log::LogStore::open(&dir.path().join("log.redb"), None).map_err(write_err)?;
            let sm =
                state::StateMachine::open(&dir.path().join("sm.redb"), None).map_err(write_err)?;
            Ok((dir, log, sm))
        }
    }

    #[test]
    fn passes_the_openraft_storage_suite() {
        Suite::test_all(Builder).unwrap();
    }

    async fn open(dir: &Path) -> Store {
        Store::open_single(dir, 1, "127.0.0.1:1").await.unwrap()
    }

    /// Stops `store` and opens its directory again.
    async fn restart(store: Store, dir: &Path) -> Store {
        store.shutdown().await;
        drop(store);
        open(dir).await
    }

    fn secrets_sealer(key: &[u8]) -> Sealer {
        sealer_of(vec![Provider::aesgcm("key1", key).unwrap()])
    }

    fn sealer_of(providers: Vec<Provider>) -> Sealer {
        Sealer::new(vec![
            Rule::for_prefixes(vec!["/registry/secrets/".into()], providers).unwrap(),
        ])
    }

    /// Every file of the store, concatenated.
    fn on_disk(dir: &Path) -> Vec<u8> {
        std::fs::read_dir(dir)
            .unwrap()
            .flat_map(|e| std::fs::read(e.unwrap().path()).unwrap_or_default())
            .collect()
    }

    fn holds(bytes: &[u8], s: &str) -> bool {
        bytes.windows(s.len()).any(|w| w == s.as_bytes())
    }

    async fn put_secret(store: &Store, name: &str, text: &str) {
        store
            .write(Command::Put {
                key: format!("/registry/secrets/ns/{name}"),
                value: json!({"metadata": {"name": name}, "data": {"v": text}}),
                cond: Cond::Absent,
            })
            .await
            .unwrap();
    }

    /// Members in one process, reaching each other through memory; a cut
    /// member neither reaches nor is reached.
    #[derive(Default)]
    struct Net {
        members: std::sync::Mutex<std::collections::HashMap<String, Store>>,
        cut: std::sync::Mutex<std::collections::HashSet<String>>,
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
            Box::pin(async move {
                match target {
                    Some(store) => store.serve(rpc, &body).await,
                    None => Err("unreachable".into()),
                }
            })
        }
    }

    impl Net {
        async fn open(self: &Arc<Self>, dir: &Path, id: u64, init: bool) -> Store {
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
            };
            let store = Store::open(dir, options).await.unwrap();
            self.members.lock().unwrap().insert(addr, store.clone());
            store
        }
    }

    /// Retries `write` for up to 10 s (while a leader is elected).
    async fn write_retrying(store: &Store, command: Command) -> Outcome {
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

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn three_members_replicate_and_survive_losing_the_leader() {
        let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
        let net = Arc::new(Net::default());
        let first = net.open(dirs[0].path(), 1, true).await;
        first.write(put("before", Cond::Absent)).await.unwrap();
        let mut stores = vec![first];
        for id in [2, 3] {
            let s = net.open(dirs[id as usize - 1].path(), id, false).await;
            // The third asks the second, which passes it to the leader.
            s.join(&format!("m{}", id - 1)).await.unwrap();
            // What was written before it joined came with the log.
            assert!(s.get("before").is_some(), "member {id} lacks the log");
            stores.push(s);
        }
        let members = stores[0].members();
        assert_eq!(members.len(), 3);
        assert!(members.iter().all(|m| m.voter), "{members:?}");
        // A follower takes a write and reads it back at once.
        let follower = stores.iter().find(|s| s.leader() != Some(s.id())).unwrap();
        let Outcome::Applied { revision, .. } =
            follower.write(put("a", Cond::Absent)).await.unwrap()
        else {
            panic!()
        };
        assert_eq!(follower.get("a").unwrap().revision, revision);
        // Preconditions hold across members: a second create fails.
        assert!(matches!(
            stores[2].write(put("a", Cond::Absent)).await.unwrap(),
            Outcome::Failed(Failure::AlreadyExists)
        ));
        for s in &stores {
            s.linearize().await.unwrap();
            assert_eq!(s.get("a").unwrap().revision, revision, "member {}", s.id());
        }
        // The leader dies: the others elect one and go on.
        let leader = stores[0].leader().unwrap();
        let dead = stores.remove(stores.iter().position(|s| s.id() == leader).unwrap());
        net.cut.lock().unwrap().insert(format!("m{leader}"));
        dead.shutdown().await;
        drop(dead);
        let started = std::time::Instant::now();
        let Outcome::Applied {
            revision: after, ..
        } = write_retrying(&stores[0], put("b", Cond::Absent)).await
        else {
            panic!()
        };
        let failover = started.elapsed();
        assert!(after > revision);
        assert!(
            failover < Duration::from_secs(5),
            "failover took {failover:?}"
        );
        stores[1].linearize().await.unwrap();
        assert!(stores[1].get("b").is_some());
        // The old leader comes back with its data and catches up.
        net.cut.lock().unwrap().clear();
        let back = net
            .open(dirs[leader as usize - 1].path(), leader, true)
            .await;
        back.caught_up().await;
        assert_eq!(back.get("b").unwrap().revision, after);
        assert_eq!(back.get("a").unwrap().revision, revision);
        for s in stores.into_iter().chain([back]) {
            s.shutdown().await;
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_isolated_leader_acknowledges_nothing_and_rejoins() {
        let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
        let net = Arc::new(Net::default());
        let mut stores = vec![net.open(dirs[0].path(), 1, true).await];
        for id in [2, 3] {
            let s = net.open(dirs[id as usize - 1].path(), id, false).await;
            s.join("m1").await.unwrap();
            stores.push(s);
        }
        let leader = stores[0].leader().unwrap();
        let old = stores.iter().find(|s| s.id() == leader).unwrap().clone();
        let others: Vec<Store> = stores
            .iter()
            .filter(|s| s.id() != leader)
            .cloned()
            .collect();
        net.cut.lock().unwrap().insert(format!("m{leader}"));
        // The isolated leader cannot commit: its write is not acknowledged,
        // nor a linearizable read.
        let lost = tokio::time::timeout(Duration::from_secs(3), old.write(put("x", Cond::Absent)));
        assert!(
            !matches!(lost.await, Ok(Ok(Outcome::Applied { .. }))),
            "an isolated leader acknowledged a write"
        );
        let read = tokio::time::timeout(Duration::from_secs(3), old.linearize()).await;
        assert!(
            !matches!(read, Ok(Ok(()))),
            "an isolated leader confirmed a linearizable read"
        );
        // The majority goes on.
        let Outcome::Applied { revision, .. } =
            write_retrying(&others[0], put("y", Cond::Absent)).await
        else {
            panic!()
        };
        // Healed: the old leader follows, and its unacknowledged write is
        // gone or applied once, never half.
        net.cut.lock().unwrap().clear();
        old.caught_up().await;
        assert_eq!(old.get("y").unwrap().revision, revision);
        for s in &stores {
            s.linearize().await.unwrap();
        }
        let x: Vec<Option<u64>> = stores
            .iter()
            .map(|s| s.get("x").map(|o| o.revision))
            .collect();
        assert!(x.iter().all(|r| *r == x[0]), "members disagree on x: {x:?}");
        for s in stores {
            s.shutdown().await;
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_rotated_key_rewrites_everything_it_sealed() {
        let dir = tempfile::tempdir().unwrap();
        let (k1, k2) = (Sealer::generate_key(), Sealer::generate_key());
        let v1 = || Provider::aesgcm("key1", &k1).unwrap();
        let v2 = || Provider::secretbox("key2", &k2).unwrap();
        let open_with = |providers: Vec<Provider>| {
            Store::open_sealed(
                dir.path(),
                1,
                "127.0.0.1:1",
                Some(Arc::new(sealer_of(providers))),
            )
        };
        // Written before anything was sealed.
        let store = Store::open_sealed(dir.path(), 1, "127.0.0.1:1", None)
            .await
            .unwrap();
        put_secret(&store, "a", "topsecret-81d2").await;
        store.shutdown().await;
        drop(store);
        assert!(holds(&on_disk(dir.path()), "topsecret-81d2"));
        // Sealing turned on: what was in the clear is sealed, nothing of it
        // left in the files.
        let store = open_with(vec![v1(), Provider::Identity]).await.unwrap();
        store.shutdown().await;
        drop(store);
        let bytes = on_disk(dir.path());
        assert!(holds(&bytes, "k8s:enc:aesgcm:v1:key1:"));
        assert!(!holds(&bytes, "topsecret-81d2"), "left in the clear");
        // The new key first, the old one still listed: everything is
        // written again with the new one.
        let store = open_with(vec![v2(), v1()]).await.unwrap();
        put_secret(&store, "b", "topsecret-93c4").await;
        store.shutdown().await;
        drop(store);
        let bytes = on_disk(dir.path());
        assert!(holds(&bytes, "k8s:enc:secretbox:v1:key2:"));
        for s in [
            "k8s:enc:aesgcm:v1:key1:",
            "topsecret-81d2",
            "topsecret-93c4",
        ] {
            assert!(!holds(&bytes, s), "{s} on disk after the rotation");
        }
        // The old key can go.
        let store = open_with(vec![v2()]).await.unwrap();
        for (k, v) in [("a", "topsecret-81d2"), ("b", "topsecret-93c4")] {
            let got = store.get(&format!("/registry/secrets/ns/{k}")).unwrap();
            assert_eq!(got.value["data"]["v"], v);
        }
        store.shutdown().await;
        drop(store);
        // Decrypting everything: identity first writes them in the clear.
        let store = open_with(vec![Provider::Identity, v2()]).await.unwrap();
        store.shutdown().await;
        drop(store);
        let bytes = on_disk(dir.path());
        assert!(holds(&bytes, "topsecret-81d2"), "written in the clear");
        assert!(!holds(&bytes, "k8s:enc:"), "still sealed");
        // Data in the clear where no identity provider is listed: refused.
        assert!(open_with(vec![v1()]).await.is_err());
    }

    fn put(key: &str, cond: Cond) -> Command {
        Command::Put {
            key: key.into(),
            value: json!({"metadata": {"name": key}}),
            cond,
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sealed_values_never_reach_the_disk_in_the_clear() {
        let dir = tempfile::tempdir().unwrap();
        let key = Sealer::generate_key();
        let sealer = || Some(Arc::new(secrets_sealer(&key)));
        let store = Store::open_sealed(dir.path(), 1, "127.0.0.1:1", sealer())
            .await
            .unwrap();
        for (k, text) in [
            ("/registry/secrets/ns/a", "topsecret-5f1e"),
            ("/registry/configmaps/ns/b", "plain-7a2c"),
        ] {
            store
                .write(Command::Put {
                    key: k.into(),
                    value: json!({"metadata": {"name": "x"}, "data": {"v": text}}),
                    cond: Cond::Absent,
                })
                .await
                .unwrap();
        }
        store.shutdown().await;
        drop(store);
        let on_disk = on_disk(dir.path());
        let holds = |s: &str| holds(&on_disk, s);
        assert!(holds("plain-7a2c"), "the test reads the files it should");
        assert!(
            !holds("topsecret-5f1e"),
            "a sealed value on disk in the clear"
        );
        let store = Store::open_sealed(dir.path(), 1, "127.0.0.1:1", sealer())
            .await
            .unwrap();
        assert_eq!(
            store.get("/registry/secrets/ns/a").unwrap().value["data"]["v"],
            "topsecret-5f1e"
        );
        store.shutdown().await;
        drop(store);
        // Without the key the store does not open: nothing is read as garbage.
        let other = Some(Arc::new(secrets_sealer(&Sealer::generate_key())));
        assert!(
            Store::open_sealed(dir.path(), 1, "127.0.0.1:1", other)
                .await
                .is_err()
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn deeply_nested_objects_are_read_back_after_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path()).await;
        let mut deep = json!("leaf");
        for _ in 0..126 {
            deep = json!({ "x": deep });
        }
        let value = json!({"metadata": {"name": "deep"}, "spec": deep});
        store
            .write(Command::Put {
                key: "deep".into(),
                value: value.clone(),
                cond: Cond::Absent,
            })
            .await
            .unwrap();
        let store = restart(store, dir.path()).await;
        assert_eq!(store.get("deep").unwrap().value["spec"], value["spec"]);
        store.shutdown().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn preconditions_revisions_watch_and_restart() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path()).await;
        let Outcome::Applied {
            revision: r1,
            object,
        } = store.write(put("a", Cond::Absent)).await.unwrap()
        else {
            panic!()
        };
        assert_eq!(
            object.unwrap()["metadata"]["resourceVersion"],
            json!(r1.to_string())
        );
        assert!(matches!(
            store.write(put("a", Cond::Absent)).await.unwrap(),
            Outcome::Failed(Failure::AlreadyExists)
        ));
        assert!(
            matches!(store.write(put("a", Cond::Revision(r1 + 100))).await.unwrap(), Outcome::Failed(Failure::Conflict { current }) if current == r1)
        );
        assert!(matches!(
            store.write(put("b", Cond::Present)).await.unwrap(),
            Outcome::Failed(Failure::NotFound)
        ));
        let Outcome::Applied { revision: r2, .. } =
            store.write(put("a", Cond::Revision(r1))).await.unwrap()
        else {
            panic!()
        };
        assert!(r2 > r1);
        let (backlog, _) = store.watch(Some(r1)).unwrap();
        assert_eq!(backlog.len(), 1);
        assert_eq!(backlog[0].kind, EventKind::Modified);
        let Outcome::Applied { .. } = store
            .write(Command::Delete {
                key: "a".into(),
                cond: Cond::Any,
            })
            .await
            .unwrap()
        else {
            panic!()
        };
        store.write(put("b", Cond::Absent)).await.unwrap();
        let (backlog, _) = store.watch(Some(r2)).unwrap();
        assert_eq!(
            backlog.iter().map(|e| e.kind).collect::<Vec<_>>(),
            [EventKind::Deleted, EventKind::Added]
        );
        let rev = store.revision();
        let store = restart(store, dir.path()).await;
        assert!(store.get("a").is_none());
        assert_eq!(
            store.get("b").unwrap().value["metadata"]["name"],
            json!("b")
        );
        assert!(store.revision() >= rev);
        assert!(
            store.watch(Some(r1)).is_err(),
            "history before the restart is gone: 410"
        );
        let (items, _) = store.list("");
        assert_eq!(items.len(), 1);
        store.shutdown().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_paged_list_outlives_the_history_it_would_need() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path()).await;
        for key in ["a", "b", "c"] {
            store.write(put(key, Cond::Absent)).await.unwrap();
        }
        let before = store.revision();
        let (first, pinned) = store.list("");
        assert_eq!(first.len(), 3);
        store.pin("", pinned);
        // Writes bigger than the whole history push it past both revisions.
        let big = "x".repeat(1 << 20);
        for _ in 0..40 {
            store
                .write(Command::Put {
                    key: "a".into(),
                    value: json!({"metadata": {"name": "a"}, "data": big}),
                    cond: Cond::Any,
                })
                .await
                .unwrap();
        }
        let later = store.list_at("", pinned).expect("the pinned list is kept");
        assert_eq!(later.len(), 3);
        assert!(later.iter().all(|s| s.value.get("data").is_none()));
        store.write(put("d", Cond::Absent)).await.unwrap();
        assert!(
            store.list_at("", before - 1).is_err(),
            "an unpinned revision past the history is 410"
        );
        store.shutdown().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_writes_share_entries_and_keep_one_revision_each() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path()).await;
        let (_, mut changes) = store.watch(None).unwrap();
        let writes = (0..200).map(|i| {
            let store = store.clone();
            // Half of them collide on a key: exactly one create of each wins.
            let key = format!("k{}", i % 100);
            async move { store.write(put(&key, Cond::Absent)).await.unwrap() }
        });
        let outcomes = futures::future::join_all(writes).await;
        let mut revisions: Vec<u64> = outcomes
            .iter()
            .filter_map(|o| match o {
                Outcome::Applied { revision, .. } => Some(*revision),
                Outcome::Failed(f) => {
                    assert_eq!(*f, Failure::AlreadyExists);
                    None
                }
            })
            .collect();
        assert_eq!(revisions.len(), 100);
        revisions.sort_unstable();
        revisions.dedup();
        assert_eq!(revisions.len(), 100, "every change has its own revision");
        for expected in &revisions {
            let event = changes.recv().await.unwrap();
            assert_eq!(event.revision, *expected, "events come in revision order");
        }
        let entries = store
            .raft
            .metrics()
            .borrow()
            .last_applied
            .map_or(0, |l| l.index);
        assert!(
            entries < 150,
            "200 concurrent writes went into {entries} log entries"
        );
        let rev = store.revision();
        assert_eq!(rev, *revisions.last().unwrap());
        let store = restart(store, dir.path()).await;
        let after = store.write(put("k-new", Cond::Absent)).await.unwrap();
        assert!(
            matches!(after, Outcome::Applied { revision, .. } if revision == rev + 1),
            "the revision counter survives a restart"
        );
        store.shutdown().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn lists_at_an_earlier_revision_undo_later_changes() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path()).await;
        for k in ["p/a", "p/b", "p/c", "q/x"] {
            store.write(put(k, Cond::Absent)).await.unwrap();
        }
        let at = store.revision();
        let changed = json!({"metadata": {"name": "p/b"}, "data": "new"});
        store
            .write(Command::Put {
                key: "p/b".into(),
                value: changed,
                cond: Cond::Present,
            })
            .await
            .unwrap();
        store
            .write(Command::Delete {
                key: "p/c".into(),
                cond: Cond::Any,
            })
            .await
            .unwrap();
        store.write(put("p/d", Cond::Absent)).await.unwrap();
        store.write(put("q/y", Cond::Absent)).await.unwrap();

        let then = store.list_at("p/", at).unwrap();
        let keys: Vec<String> = then
            .iter()
            .map(|s| s.value["metadata"]["name"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(keys, ["p/a", "p/b", "p/c"]);
        assert!(then[1].value.get("data").is_none(), "b as it was");
        assert!(then.iter().all(|s| s.revision <= at));
        let (now, _) = store.list("p/");
        assert_eq!(
            store.list_at("p/", store.revision()).unwrap().len(),
            now.len()
        );

        let rev = store.revision();
        let store = restart(store, dir.path()).await;
        assert!(
            store.list_at("p/", at).is_err(),
            "changes before a restart are not kept"
        );
        assert_eq!(store.list_at("p/", rev).unwrap().len(), 3);
        store.shutdown().await;
    }

    fn names<'a>(items: impl Iterator<Item = &'a Stored>) -> Vec<String> {
        items
            .map(|s| s.value["metadata"]["name"].as_str().unwrap().to_string())
            .collect()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn pages_of_a_view_read_one_revision_while_writes_go_on() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path()).await;
        let keys: Vec<String> = (0..20).map(|i| format!("p/{i:02}")).collect();
        for k in &keys {
            store.write(put(k, Cond::Absent)).await.unwrap();
        }
        store.write(put("q/x", Cond::Absent)).await.unwrap();
        let at = store.revision();
        let now = store.view("p/", None).unwrap();
        // Changes inside the range and around it after the view was taken.
        store
            .write(Command::Delete {
                key: "p/05".into(),
                cond: Cond::Any,
            })
            .await
            .unwrap();
        store
            .write(Command::Put {
                key: "p/10".into(),
                value: json!({"metadata": {"name": "p/10"}, "data": "new"}),
                cond: Cond::Present,
            })
            .await
            .unwrap();
        for k in ["p/07a", "p/99", "p/", "o/z"] {
            store.write(put(k, Cond::Absent)).await.unwrap();
        }

        // The view taken before them does not see them.
        assert_eq!(now.revision(), at);
        assert_eq!(names(now.range("p/", None)), keys);
        // A view at the earlier revision, read in pages of 4 after the
        // last key of the page before, gives the same objects once each.
        let then = store.view("p/", Some(at)).unwrap();
        let mut paged = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page: Vec<&Stored> = then.range("p/", after.as_deref()).take(4).collect();
            let Some(last) = page.last() else { break };
            after = Some(last.value["metadata"]["name"].as_str().unwrap().to_string());
            paged.extend(names(page.into_iter()));
        }
        assert_eq!(paged, keys);
        assert!(
            then.range("p/", Some("p/09"))
                .next()
                .is_some_and(|s| s.value.get("data").is_none()),
            "p/10 as it was"
        );
        // Keys outside the prefix never show, wherever a page starts.
        assert_eq!(names(then.range("p/", Some("a"))), keys);
        assert_eq!(then.range("p/", Some("p/zz")).count(), 0);
        // The latest view has the changes.
        let latest = names(store.view("p/", None).unwrap().range("p/", None));
        assert!(latest.contains(&"p/07a".to_string()) && !latest.contains(&"p/05".to_string()));
        assert_eq!(latest.first().map(String::as_str), Some("p/"));
        store.shutdown().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_dead_member_is_removed_and_replaced() {
        let dirs: Vec<_> = (0..4).map(|_| tempfile::tempdir().unwrap()).collect();
        let net = Arc::new(Net::default());
        let mut stores = vec![net.open(dirs[0].path(), 1, true).await];
        for id in [2, 3] {
            let s = net.open(dirs[id as usize - 1].path(), id, false).await;
            s.join("m1").await.unwrap();
            stores.push(s);
        }
        // A follower dies for good.
        let leader = stores[0].leader().unwrap();
        let dead = stores.iter().find(|s| s.id() != leader).unwrap().id();
        net.cut.lock().unwrap().insert(format!("m{dead}"));
        let gone = stores.remove(stores.iter().position(|s| s.id() == dead).unwrap());
        gone.shutdown().await;
        // Asked through the other follower, which passes it to the leader.
        let other = stores.iter().find(|s| s.id() != leader).unwrap().clone();
        other.remove_member(dead).await.unwrap();
        assert!(
            other.remove_member(dead).await.is_err(),
            "no such member now"
        );
        other.linearize().await.unwrap();
        let ids: Vec<u64> = other.members().iter().map(|m| m.id).collect();
        assert!(!ids.contains(&dead) && ids.len() == 2, "{ids:?}");
        // A new member takes its place; the group of three goes on without
        // the old one even when another member dies.
        let new = net.open(dirs[3].path(), 9, false).await;
        new.join(&format!("m{}", other.id())).await.unwrap();
        assert_eq!(new.members().iter().filter(|m| m.voter).count(), 3);
        net.cut.lock().unwrap().insert(format!("m{}", other.id()));
        write_retrying(&new, put("after", Cond::Absent)).await;
        net.cut.lock().unwrap().clear();
        // The last voter cannot be removed.
        let single_dir = tempfile::tempdir().unwrap();
        let single = open(single_dir.path()).await;
        assert!(single.remove_member(1).await.is_err());
        for s in stores.into_iter().chain([new, single]) {
            s.shutdown().await;
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_backup_restores_every_object_sealed_as_before() {
        let dir = tempfile::tempdir().unwrap();
        let sealer = Arc::new(secrets_sealer(&[7; 32]));
        let store = Store::open_sealed(dir.path(), 1, "m1", Some(sealer.clone()))
            .await
            .unwrap();
        for k in ["p/a", "p/b", "q/c"] {
            store.write(put(k, Cond::Absent)).await.unwrap();
        }
        put_secret(&store, "s", "topsecret-5e1f").await;
        store
            .write(Command::Delete {
                key: "p/b".into(),
                cond: Cond::Any,
            })
            .await
            .unwrap();
        let revision = store.revision();
        let backup = store.backup().await.unwrap();
        assert!(!holds(&backup, "topsecret-5e1f"), "a secret in the clear");
        // Writes after the backup are not in it.
        store.write(put("p/later", Cond::Absent)).await.unwrap();
        store.shutdown().await;
        drop(store);

        let elsewhere = tempfile::tempdir().unwrap();
        let at = Store::restore(elsewhere.path(), &backup, Some(sealer.clone())).unwrap();
        assert_eq!(at, revision);
        assert!(!holds(&on_disk(elsewhere.path()), "topsecret-5e1f"));
        let restored = Store::open_sealed(elsewhere.path(), 1, "m1", Some(sealer.clone()))
            .await
            .unwrap();
        let (keys, rev) = restored.list("");
        assert_eq!(rev, revision);
        let names: Vec<&str> = keys
            .iter()
            .map(|s| s.value["metadata"]["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["s", "p/a", "q/c"], "in key order");
        let secret = restored.get("/registry/secrets/ns/s").unwrap();
        assert_eq!(secret.value["data"]["v"], "topsecret-5e1f");
        // Revisions go on from the backup's.
        let Outcome::Applied { revision: next, .. } =
            restored.write(put("new", Cond::Absent)).await.unwrap()
        else {
            panic!()
        };
        assert_eq!(next, revision + 1);
        restored.shutdown().await;
        // Over an existing store, the old state goes.
        drop(restored);
        Store::restore(dir.path(), &backup, Some(sealer.clone())).unwrap();
        let again = Store::open_sealed(dir.path(), 1, "m1", Some(sealer))
            .await
            .unwrap();
        assert!(again.get("p/later").is_none());
        assert_eq!(again.list("").0.len(), 3);
        // A body that is not a backup is refused.
        assert!(Store::restore(elsewhere.path(), b"{\"nope\":1}", None).is_err());
        again.shutdown().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_member_joining_a_restored_store_gets_its_objects() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path()).await;
        for k in ["a", "b"] {
            store.write(put(k, Cond::Absent)).await.unwrap();
        }
        let backup = store.backup().await.unwrap();
        store.shutdown().await;
        drop(store);
        let dirs: Vec<_> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
        Store::restore(dirs[0].path(), &backup, None).unwrap();
        let net = Arc::new(Net::default());
        let first = net.open(dirs[0].path(), 1, true).await;
        assert_eq!(first.list("").0.len(), 2);
        // The restored objects are in no log entry: they reach a new
        // member in a snapshot.
        let second = net.open(dirs[1].path(), 2, false).await;
        second.join("m1").await.unwrap();
        assert!(second.get("a").is_some() && second.get("b").is_some());
        write_retrying(&second, put("c", Cond::Absent)).await;
        first.linearize().await.unwrap();
        assert_eq!(first.list("").0.len(), 3);
        for s in [first, second] {
            s.shutdown().await;
        }
    }
}

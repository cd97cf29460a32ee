//! The replicated object store: an openraft log and state machine on redb.
//!
//! Every write is a [`Command`] proposed through Raft; the state machine
//! applies it atomically with its precondition and stamps the entry's log
//! index as the object's `resourceVersion`, so one global revision orders
//! every change, as in etcd. Reads come from the applied state in memory.

mod log;
mod network;
mod state;
mod types;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use openraft::error::{ClientWriteError, RaftError};
use openraft::{AnyError, BasicNode, Config, ErrorSubject, ErrorVerb, Raft, StorageError, StorageIOError};
use tokio::sync::broadcast;

pub use state::{TooOld, resource_version};
pub use types::{Command, Cond, Event, EventKind, Failure, Outcome, Stored, TypeConfig};

/// Errors of the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The store's files could not be opened.
    #[error("opening the store: {0}")]
    Open(String),
    /// Raft refused or failed the write.
    #[error("replication: {0}")]
    Raft(String),
}

pub(crate) fn read_err(e: impl std::error::Error + 'static) -> StorageError<u64> {
    StorageIOError::new(ErrorSubject::Store, ErrorVerb::Read, AnyError::new(&e)).into()
}

pub(crate) fn write_err(e: impl std::error::Error + 'static) -> StorageError<u64> {
    StorageIOError::new(ErrorSubject::Store, ErrorVerb::Write, AnyError::new(&e)).into()
}

/// A handle on the store; clones are cheap.
#[derive(Clone)]
pub struct Store {
    raft: Raft<TypeConfig>,
    shared: Arc<state::Shared>,
}

impl Store {
    /// Opens the store in `dir` as member `id` of a Raft group whose only
    /// member it is, initialising the group on first start, and waits until
    /// it leads.
    pub async fn open_single(dir: &Path, id: u64, addr: &str) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir).map_err(|e| StoreError::Open(e.to_string()))?;
        let log = log::LogStore::open(&dir.join("raft-log.redb")).map_err(|e| StoreError::Open(e.to_string()))?;
        let sm = state::StateMachine::open(&dir.join("state.redb")).map_err(|e| StoreError::Open(e.to_string()))?;
        let shared = sm.shared();
        let config = Config {
            cluster_name: "shoal".into(),
            heartbeat_interval: 100,
            election_timeout_min: 300,
            election_timeout_max: 600,
            ..Default::default()
        };
        let config = Arc::new(config.validate().map_err(|e| StoreError::Open(e.to_string()))?);
        let raft = Raft::new(id, config, network::Network, log, sm)
            .await
            .map_err(|e| StoreError::Open(e.to_string()))?;
        let members = BTreeMap::from([(id, BasicNode { addr: addr.to_string() })]);
        match raft.initialize(members).await {
            Ok(()) => {}
            Err(RaftError::APIError(openraft::error::InitializeError::NotAllowed(_))) => {}
            Err(e) => return Err(StoreError::Raft(e.to_string())),
        }
        raft.wait(Some(Duration::from_secs(30)))
            .metrics(|m| m.current_leader == Some(id), "leader elected")
            .await
            .map_err(|e| StoreError::Raft(e.to_string()))?;
        Ok(Self { raft, shared })
    }

    /// Proposes a command and waits until it is applied.
    pub async fn write(&self, command: Command) -> Result<Outcome, StoreError> {
        match self.raft.client_write(command).await {
            Ok(resp) => Ok(resp.data),
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => {
                Err(StoreError::Raft(format!("not the leader (leader: {:?})", f.leader_id)))
            }
            Err(e) => Err(StoreError::Raft(e.to_string())),
        }
    }

    /// The object at `key`.
    pub fn get(&self, key: &str) -> Option<Stored> {
        self.shared.get(key)
    }

    /// Objects under `prefix` and the revision they were read at.
    pub fn list(&self, prefix: &str) -> (Vec<Stored>, u64) {
        self.shared.list(prefix)
    }

    /// The latest applied revision.
    pub fn revision(&self) -> u64 {
        self.shared.revision()
    }

    /// Changes after revision `from` and a receiver for what follows.
    pub fn watch(&self, from: Option<u64>) -> Result<(Vec<Arc<Event>>, broadcast::Receiver<Arc<Event>>), TooOld> {
        self.shared.watch(from)
    }

    /// Stops the Raft node.
    pub async fn shutdown(&self) {
        let _ = self.raft.shutdown().await;
    }
}

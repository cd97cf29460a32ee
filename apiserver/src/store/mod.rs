//! The replicated object store: an openraft log and state machine on redb.
//!
//! Every write is a [`Command`] proposed through Raft; the state machine
//! applies it atomically with its precondition and stamps the entry's log
//! index as the object's `resourceVersion`, so one global revision orders
//! every change, as in etcd. Reads come from the applied state in memory.

// openraft's `StorageError` is the error type its storage traits demand.
#![allow(clippy::result_large_err)]

mod log;
mod network;
mod state;
mod types;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use openraft::error::{ClientWriteError, RaftError};
use openraft::{
    AnyError, BasicNode, Config, ErrorSubject, ErrorVerb, Raft, StorageError, StorageIOError,
};

pub use state::{TooOld, WatchStart, resource_version};
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
        // A store being shut down in this process may still hold the files
        // for a moment; another process holding them is an error.
        let mut attempt = 0;
        let (log, sm) = loop {
            let opened = log::LogStore::open(&dir.join("raft-log.redb"))
                .and_then(|log| Ok((log, state::StateMachine::open(&dir.join("state.redb"))?)));
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
        let raft = Raft::new(id, config, network::Network, log, sm)
            .await
            .map_err(|e| StoreError::Open(e.to_string()))?;
        let initialized = raft
            .is_initialized()
            .await
            .map_err(|e| StoreError::Raft(e.to_string()))?;
        if !initialized {
            let members = BTreeMap::from([(
                id,
                BasicNode {
                    addr: addr.to_string(),
                },
            )]);
            raft.initialize(members)
                .await
                .map_err(|e| StoreError::Raft(e.to_string()))?;
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
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => Err(
                StoreError::Raft(format!("not the leader (leader: {:?})", f.leader_id)),
            ),
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
    pub fn watch(&self, from: Option<u64>) -> Result<WatchStart, TooOld> {
        self.shared.watch(from)
    }

    /// Stops the Raft node.
    pub async fn shutdown(&self) {
        let _ = self.raft.shutdown().await;
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
            let log = log::LogStore::open(&dir.path().join("log.redb")).map_err(write_err)?;
            let sm = state::StateMachine::open(&dir.path().join("sm.redb")).map_err(write_err)?;
            Ok((dir, log, sm))
        }
    }

    #[test]
    fn passes_the_openraft_storage_suite() {
        Suite::test_all(Builder).unwrap();
    }

    fn put(key: &str, cond: Cond) -> Command {
        Command::Put {
            key: key.into(),
            value: json!({"metadata": {"name": key}}),
            cond,
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn preconditions_revisions_watch_and_restart() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_single(dir.path(), 1, "127.0.0.1:1")
            .await
            .unwrap();
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
        store.shutdown().await;
        drop(store);

        let store = Store::open_single(dir.path(), 1, "127.0.0.1:1")
            .await
            .unwrap();
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
}

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
    AnyError, BasicNode, Config, ErrorSubject, ErrorVerb, Raft, StorageError, StorageIOError,
};

pub use seal::{Provider, Rule, SealError, Sealer};
pub use state::{TooOld, WatchStart, resource_version};
use types::{Applied, Proposal, TypeConfig};
pub use types::{Command, Cond, Event, EventKind, Failure, Outcome, Stored};

/// Errors of the store.
#[derive(Debug, Clone, thiserror::Error)]
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
    proposals: mpsc::UnboundedSender<Pending>,
}

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
        // Entries of earlier terms are applied once the new leader's first
        // entry commits: reads before that would miss the last writes.
        raft.wait(Some(Duration::from_secs(30)))
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
        let (proposals, queue) = mpsc::unbounded_channel();
        tokio::spawn(propose_loop(raft.clone(), queue));
        Ok(Self {
            raft,
            shared,
            proposals,
        })
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

/// Takes the commands waiting, proposes them as one log entry and answers
/// each with its outcome. One entry is on its way at a time: the commands
/// arriving meanwhile go together in the next (measured: more writes per
/// second than several smaller entries in flight).
async fn propose_loop(raft: Raft<TypeConfig>, mut queue: mpsc::UnboundedReceiver<Pending>) {
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
        match propose(&raft, proposal).await {
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

async fn propose(raft: &Raft<TypeConfig>, proposal: Proposal) -> Result<Applied, StoreError> {
    match raft.client_write(proposal).await {
        Ok(resp) => Ok(resp.data),
        Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => Err(StoreError::Raft(
            format!("not the leader (leader: {:?})", f.leader_id),
        )),
        Err(e) => Err(StoreError::Raft(e.to_string())),
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
}

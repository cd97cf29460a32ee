//! The store's tests: storage, replication, paging, backups.
use openraft::testing::{StoreBuilder, Suite};
use serde_json::json;

use super::*;

mod linearizability;
mod net;
mod simulation;

use net::{Net, write_retrying};

struct Builder;

impl StoreBuilder<TypeConfig, log::LogStore, state::StateMachine, tempfile::TempDir> for Builder {
    async fn build(
        &self,
    ) -> Result<(tempfile::TempDir, log::LogStore, state::StateMachine), StorageError<u64>> {
        let dir = tempfile::tempdir().map_err(write_err)?;
        let log = log::LogStore::open(&dir.path().join("log.redb"), None).map_err(write_err)?;
        let sm = state::StateMachine::open(&dir.path().join("sm.redb"), None).map_err(write_err)?;
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
    let Outcome::Applied { revision, .. } = follower.write(put("a", Cond::Absent)).await.unwrap()
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
    let stores = net.group(&dirs[..3]).await;
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
    let mut stores = net.group(&dirs[..3]).await;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_alone_becomes_the_first_of_several_at_its_new_address() {
    let dirs: Vec<_> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    let alone = Store::open_single(dirs[0].path(), 1, "127.0.0.1:6443")
        .await
        .unwrap();
    alone.write(put("a", Cond::Absent)).await.unwrap();
    alone.shutdown().await;
    drop(alone);
    let net = Arc::new(Net::default());
    let first = net.open(dirs[0].path(), 1, true).await;
    assert_eq!(
        first.members()[0].addr,
        "m1",
        "the group records the new address"
    );
    let second = net.open(dirs[1].path(), 2, false).await;
    second.join("m1").await.unwrap();
    assert!(second.get("a").is_some());
    assert_eq!(second.members().len(), 2);
    for s in [first, second] {
        s.shutdown().await;
    }
}

/// Waits until no store has the databases in `dir` open.
async fn closed(dir: &Path) {
    for name in ["raft-log.redb", "state.redb"] {
        for _ in 0..100 {
            match redb::Database::open(dir.join(name)) {
                Err(redb::DatabaseError::DatabaseAlreadyOpen) => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                _ => break,
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_started_on_an_old_copy_of_its_files_is_caught_up() {
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let net = Arc::new(Net::default());
    let mut stores = net.group(&dirs).await;
    let writes = |stores: Vec<Store>, prefix: &'static str| async move {
        for i in 0..20 {
            write_retrying(&stores[0], put(&format!("{prefix}/{i}"), Cond::Absent)).await;
        }
        stores
    };
    stores = writes(stores, "a").await;
    let leader = stores[0].leader().unwrap();
    let id = stores.iter().find(|s| s.id() != leader).unwrap().id();
    let dir = dirs[id as usize - 1].path();
    let take = |stores: &mut Vec<Store>| {
        let at = stores.iter().position(|s| s.id() == id).unwrap();
        stores.remove(at)
    };
    // A follower stops; a copy of its files is kept.
    let follower = take(&mut stores);
    follower.linearize().await.unwrap();
    follower.shutdown().await;
    closed(dir).await;
    let old = tempfile::tempdir().unwrap();
    for f in std::fs::read_dir(dir).unwrap() {
        let f = f.unwrap();
        std::fs::copy(f.path(), old.path().join(f.file_name())).unwrap();
    }
    // It runs on and takes more writes, with the others.
    stores.push(net.open(dir, id, false).await);
    stores = writes(stores, "b").await;
    let follower = take(&mut stores);
    follower.linearize().await.unwrap();
    assert_eq!(follower.list("").0.len(), 40);
    follower.shutdown().await;
    closed(dir).await;
    // It starts again on the old copy: 20 entries it had acknowledged are
    // gone from it. The leader finds its log shorter than it knew and
    // sends what it lacks.
    for f in std::fs::read_dir(old.path()).unwrap() {
        let f = f.unwrap();
        std::fs::copy(f.path(), dir.join(f.file_name())).unwrap();
    }
    let follower = net.open(dir, id, false).await;
    assert_eq!(follower.list("").0.len(), 20, "the old copy");
    stores.push(follower);
    stores = writes(stores, "c").await;
    for s in &stores {
        s.linearize().await.unwrap();
        assert_eq!(s.list("").0.len(), 60, "member {}", s.id());
    }
    for s in stores {
        s.shutdown().await;
    }
}

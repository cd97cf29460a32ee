//! The state machine: every object by key, persisted in redb and mirrored in
//! memory for reads, with a history of recent changes for watches.

use super::seal::Sealer;
use super::view::View;
use std::collections::{BTreeMap, VecDeque};
use std::io::Cursor;
use std::path::Path;
use std::sync::{Arc, Mutex, RwLock};

use imbl::OrdMap;
use openraft::storage::{RaftStateMachine, Snapshot, SnapshotMeta};
use openraft::{
    BasicNode, Entry, EntryPayload, LogId, OptionalSend, RaftSnapshotBuilder, StorageError,
    StoredMembership,
};
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::broadcast;

use super::types::{
    Applied, Command, Cond, Event, EventKind, Failure, Outcome, Proposal, Stored, TypeConfig,
};
use super::{read_err, write_err};
use shoal_wire::gotypes::json::to_vec as encode;

const OBJECTS: TableDefinition<&str, &[u8]> = TableDefinition::new("objects");
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");

/// How many changes are kept for watches that resume from a revision...
const HISTORY: usize = 100_000;
/// ... and how many bytes of objects (as JSON; in memory they take a few
/// times that) they may hold: the history is what lets a watch resume and
/// a paged list read at its first page's revision, and a burst of writes
/// must not leave it holding every version of 10,000 deleted pods.
const HISTORY_BYTES: usize = 32 << 20;

/// What readers share with the state machine.
pub struct Shared {
    /// A persistent map: a reader takes a snapshot of it in O(1) and reads
    /// it without holding the lock, while writes go on.
    objects: RwLock<OrdMap<String, Stored>>,
    hub: Mutex<Hub>,
    pins: Mutex<VecDeque<Pin>>,
}

/// A list being served in pages, kept so that the later pages read the
/// same objects however many changes come in between: under heavy writes
/// the bounded history may not reach back to the first page.
struct Pin {
    prefix: String,
    view: View,
    /// When a page last read it.
    used: std::time::Instant,
}

/// Paged lists kept at once, and how long one is kept after a page read it.
const PINS: usize = 8;
const PIN_IDLE: std::time::Duration = std::time::Duration::from_secs(10);

struct Hub {
    revision: u64,
    /// Changes after `history_from` are all in `history`.
    history_from: u64,
    history: VecDeque<Kept>,
    /// The sum of the kept changes' sizes.
    history_bytes: usize,
    tx: broadcast::Sender<Arc<Event>>,
}

/// A change as the history keeps it: the object after it and before it as
/// the JSON that was stored (one allocation each, shared with the store's
/// own copy while that version is current, rather than a tree of small
/// ones), decoded again only for a watch that resumes from it or a list at
/// an older revision.
struct Kept {
    revision: u64,
    kind: EventKind,
    key: String,
    object: bytes::Bytes,
    prev: Option<bytes::Bytes>,
}

impl Kept {
    fn size(&self) -> usize {
        self.key.len() + self.object.len() + self.prev.as_ref().map_or(0, bytes::Bytes::len)
    }

    /// The change as watches see it.
    fn event(&self) -> Option<Arc<Event>> {
        let object: Value = crate::decode(&self.object).ok()?;
        let prev = match &self.prev {
            Some(p) => Some(Arc::new(crate::decode::<Value>(p).ok()?)),
            None => None,
        };
        Some(Arc::new(Event {
            revision: self.revision,
            kind: self.kind,
            key: self.key.clone(),
            object: Arc::new(object),
            prev,
            json: self.object.clone().into(),
        }))
    }
}

/// The kept changes after a revision, and a receiver for the ones to come.
pub type WatchStart = (Vec<Arc<Event>>, broadcast::Receiver<Arc<Event>>);

/// The requested revision is older than the kept history.
#[derive(Debug, Clone, Copy)]
pub struct TooOld {
    /// The oldest revision a watch can start from.
    pub oldest: u64,
}

impl Shared {
    /// The object at `key`.
    pub fn get(&self, key: &str) -> Option<Stored> {
        self.objects.read().expect("objects lock").get(key).cloned()
    }

    /// Every object whose key starts with `prefix`, and the revision of the
    /// snapshot they were read at.
    pub fn list(&self, prefix: &str) -> (Vec<Stored>, u64) {
        let view = self.current();
        let items = view.range(prefix, None).cloned().collect();
        (items, view.revision())
    }

    /// The objects as they are now.
    fn current(&self) -> View {
        // Lists are read all the time (the controllers' rounds): a good
        // moment to let go of paged lists no longer read.
        self.pins
            .lock()
            .expect("pins lock")
            .retain(|p| p.used.elapsed() < PIN_IDLE);
        let objects = self.objects.read().expect("objects lock");
        let revision = self.hub.lock().expect("hub lock").revision;
        View::new(objects.clone(), Arc::default(), revision)
    }

    /// The objects under `prefix` as they are now (`at` is `None`) or
    /// were at revision `at`, if the changes since are still kept (or a
    /// paged list pinned them).
    pub fn view(&self, prefix: &str, at: Option<u64>) -> Result<View, TooOld> {
        let Some(at) = at else {
            return Ok(self.current());
        };
        if let Some(pin) = self
            .pins
            .lock()
            .expect("pins lock")
            .iter_mut()
            .find(|p| p.prefix == prefix && p.view.revision() == at)
        {
            pin.used = std::time::Instant::now();
            return Ok(pin.view.clone());
        }
        let objects_lock = self.objects.read().expect("objects lock");
        let hub = self.hub.lock().expect("hub lock");
        let objects = objects_lock.clone();
        drop(objects_lock);
        if at < hub.history_from {
            return Err(TooOld {
                oldest: hub.history_from,
            });
        }
        // Newest first: the oldest change after `at` to a key is the one
        // whose previous version is the key's state at `at`.
        let changed: Vec<(String, Option<bytes::Bytes>)> = hub
            .history
            .iter()
            .rev()
            .take_while(|e| e.revision > at)
            .filter(|e| e.key.starts_with(prefix))
            .map(|e| (e.key.clone(), e.prev.clone()))
            .collect();
        drop(hub);
        let mut undo = BTreeMap::new();
        for (key, prev) in changed {
            let then = match prev {
                Some(prev) => {
                    let Ok(value) = crate::decode::<Value>(&prev) else {
                        continue;
                    };
                    Some(Stored {
                        revision: resource_version(&value),
                        value: Arc::new(value),
                        json: prev,
                    })
                }
                None => None,
            };
            undo.insert(key, then);
        }
        Ok(View::new(objects, Arc::new(undo), at))
    }

    /// Keeps the objects under `prefix` as they were at `revision` (a
    /// list whose first page was just served) while its pages are read.
    pub fn pin(&self, prefix: &str, revision: u64) {
        let mut pins = self.pins.lock().expect("pins lock");
        pins.retain(|p| p.used.elapsed() < PIN_IDLE);
        if pins
            .iter()
            .any(|p| p.prefix == prefix && p.view.revision() == revision)
        {
            return;
        }
        drop(pins);
        let Ok(view) = self.view(prefix, Some(revision)) else {
            return;
        };
        let mut pins = self.pins.lock().expect("pins lock");
        pins.push_back(Pin {
            prefix: prefix.to_string(),
            view,
            used: std::time::Instant::now(),
        });
        while pins.len() > PINS {
            pins.pop_front();
        }
    }

    /// The latest applied revision.
    pub fn revision(&self) -> u64 {
        self.hub.lock().expect("hub lock").revision
    }

    /// Every object whose key starts with `prefix` as it was at `revision`.
    pub fn list_at(&self, prefix: &str, revision: u64) -> Result<Vec<Stored>, TooOld> {
        let view = self.view(prefix, Some(revision))?;
        Ok(view.range(prefix, None).cloned().collect())
    }

    /// Changes after `from` (all kept ones when `None` means "from now"),
    /// and a receiver for the changes that follow.
    pub fn watch(&self, from: Option<u64>) -> Result<WatchStart, TooOld> {
        let hub = self.hub.lock().expect("hub lock");
        let rx = hub.tx.subscribe();
        let Some(from) = from else {
            return Ok((Vec::new(), rx));
        };
        if from < hub.history_from {
            return Err(TooOld {
                oldest: hub.history_from,
            });
        }
        let backlog = hub
            .history
            .iter()
            .filter(|e| e.revision > from)
            .filter_map(Kept::event)
            .collect();
        Ok((backlog, rx))
    }
}

/// What a snapshot body is read for; its log id and membership come with
/// the snapshot's meta.
#[derive(Deserialize)]
struct SnapshotBody {
    /// Absent in snapshots taken before the revision counter: the log
    /// index was the revision then.
    #[serde(default)]
    revision: Option<u64>,
    objects: BTreeMap<String, Value>,
}

/// A snapshot body written from the objects in place.
#[derive(Serialize)]
struct SnapshotBodyRef<'a> {
    last_applied: Option<LogId<u64>>,
    membership: &'a StoredMembership<u64, BasicNode>,
    revision: Option<u64>,
    objects: BTreeMap<&'a str, std::borrow::Cow<'a, Value>>,
}

/// The Raft state machine.
pub struct StateMachine {
    db: Arc<Database>,
    shared: Arc<Shared>,
    last_applied: Option<LogId<u64>>,
    membership: StoredMembership<u64, BasicNode>,
    /// The revision of the last change; every put or delete takes the next.
    revision: u64,
    snapshot: CurrentSnapshot,
    /// Seals the values of secret keys in what is persisted.
    sealer: Option<Arc<Sealer>>,
    /// Restored from a backup, and no snapshot taken since: the objects
    /// came from no log entry, so a member joining must get them in a
    /// snapshot.
    restored: bool,
}

/// The latest snapshot, built or installed, shared with snapshot builders:
/// its meta, and its body in a file beside the state (a snapshot is the
/// whole state, and is read only when a member needs it).
#[derive(Clone)]
struct CurrentSnapshot {
    meta: Arc<Mutex<Option<SnapshotMeta<u64, BasicNode>>>>,
    path: Arc<std::path::PathBuf>,
}

impl CurrentSnapshot {
    fn new(path: std::path::PathBuf) -> Self {
        Self {
            meta: Arc::default(),
            path: Arc::new(path),
        }
    }

    /// Makes `body` the current snapshot's (written to a new file renamed
    /// over the old one).
    fn set(&self, meta: &SnapshotMeta<u64, BasicNode>, body: &[u8]) -> std::io::Result<()> {
        let tmp = self.path.with_extension("tmp");
        std::fs::write(&tmp, body)?;
        std::fs::rename(&tmp, &*self.path)?;
        *self.meta.lock().expect("snapshot lock") = Some(meta.clone());
        Ok(())
    }

    fn get(&self) -> std::io::Result<Option<Snapshot<TypeConfig>>> {
        let Some(meta) = self.meta.lock().expect("snapshot lock").clone() else {
            return Ok(None);
        };
        let body = std::fs::read(&*self.path)?;
        Ok(Some(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(body)),
        }))
    }
}

impl StateMachine {
    /// Opens the state at `path`, loading every object into memory.
    pub fn open(path: &Path, sealer: Option<Arc<Sealer>>) -> Result<Self, redb::Error> {
        let db = super::open_db(path)?;
        let txn = db.begin_write()?;
        txn.open_table(OBJECTS)?;
        txn.open_table(META)?;
        txn.commit()?;
        let txn = db.begin_read()?;
        let mut objects = OrdMap::new();
        for item in txn.open_table(OBJECTS)?.iter()? {
            let (k, v) = item?;
            let plain = match &sealer {
                Some(s) => s
                    .open(k.value(), v.value())
                    .map_err(|e| redb::Error::Io(std::io::Error::other(e)))?,
                None => std::borrow::Cow::Borrowed(v.value()),
            };
            let value: Value = crate::decode(&plain).map_err(|e| redb::Error::Io(e.into()))?;
            let revision = resource_version(&value);
            // In today's encoding, whatever wrote it.
            let json = encode(&value).into();
            objects.insert(
                k.value().to_string(),
                Stored {
                    value: Arc::new(value),
                    revision,
                    json,
                },
            );
        }
        let meta = txn.open_table(META)?;
        let get = |key: &str| -> Result<Option<Vec<u8>>, redb::Error> {
            Ok(meta.get(key)?.map(|v| v.value().to_vec()))
        };
        fn decode<T: serde::de::DeserializeOwned>(b: Vec<u8>) -> Result<T, redb::Error> {
            crate::decode(&b).map_err(|e| redb::Error::Io(e.into()))
        }
        let last_applied: Option<LogId<u64>> =
            get("last_applied")?.map(decode).transpose()?.flatten();
        let membership: StoredMembership<u64, BasicNode> = get("membership")?
            .map(decode)
            .transpose()?
            .unwrap_or_default();
        // Stores written before the revision counter used log indexes.
        let revision: u64 = match get("revision")? {
            Some(b) => decode(b)?,
            None => last_applied.map_or(0, |l| l.index),
        };
        let restored = get("restored")?.is_some();
        drop(meta);
        drop(txn);
        let (tx, _) = broadcast::channel(16_384);
        let hub = Hub {
            revision,
            history_from: revision,
            history: VecDeque::new(),
            history_bytes: 0,
            tx,
        };
        let shared = Arc::new(Shared {
            objects: RwLock::new(objects),
            hub: Mutex::new(hub),
            pins: Mutex::new(VecDeque::new()),
        });
        Self {
            db: Arc::new(db),
            shared,
            last_applied,
            membership,
            revision,
            snapshot: CurrentSnapshot::new(path.with_extension("snapshot")),
            sealer,
            restored,
        }
        .resealed()
    }

    /// Writes the objects again when they were sealed another way (a key
    /// added, rotated or dropped, a resource sealed or no longer), so that
    /// afterwards only the providers that write are needed to read them;
    /// the last snapshot file, sealed the old way, goes.
    fn resealed(mut self) -> Result<Self, redb::Error> {
        let txn = self.db.begin_write()?;
        {
            if !crate::sealing_changed(&mut txn.open_table(META)?, self.sealer.as_deref())? {
                return Ok(self);
            }
            let mut table = txn.open_table(OBJECTS)?;
            let objects = self.shared.objects.read().expect("objects lock");
            for (k, v) in objects.iter() {
                table.insert(k.as_str(), &self.persisted(k, &v.json)[..])?;
            }
        }
        txn.commit()?;
        // Pages the old forms occupied are freed, not erased: compacting
        // leaves none behind in the file.
        if let Some(db) = Arc::get_mut(&mut self.db) {
            db.compact()
                .map_err(|e| redb::Error::Io(std::io::Error::other(e)))?;
        }
        match std::fs::remove_file(&*self.snapshot.path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
            _ => {}
        }
        Ok(self)
    }

    /// The bytes persisted for `key`: sealed where they must be.
    fn persisted<'a>(&self, key: &str, json: &'a [u8]) -> std::borrow::Cow<'a, [u8]> {
        match &self.sealer {
            Some(s) => s.seal(key, json),
            None => std::borrow::Cow::Borrowed(json),
        }
    }

    /// Whether the state was restored from a backup and no snapshot has
    /// been taken since.
    pub fn restored(&self) -> bool {
        self.restored
    }

    /// The read side shared with the API.
    pub fn shared(&self) -> Arc<Shared> {
        self.shared.clone()
    }

    fn body(&self) -> Vec<u8> {
        let objects = self.shared.objects.read().expect("objects lock");
        let body = SnapshotBodyRef {
            last_applied: self.last_applied,
            membership: &self.membership,
            revision: Some(self.revision),
            objects: objects
                .iter()
                .map(|(k, v)| {
                    let value = match self
                        .sealer
                        .as_ref()
                        .and_then(|s| s.seal_for_snapshot(k, &v.value))
                    {
                        Some(sealed) => std::borrow::Cow::Owned(sealed),
                        None => std::borrow::Cow::Borrowed(&*v.value),
                    };
                    (k.as_str(), value)
                })
                .collect(),
        };
        serde_json::to_vec(&body).unwrap_or_default()
    }
}

impl StateMachine {
    /// Makes the state the objects of a snapshot or backup (values sealed
    /// as snapshots carry them), applied up to `last_applied`.
    fn replace(
        &mut self,
        mut objects: BTreeMap<String, Value>,
        last_applied: Option<LogId<u64>>,
        membership: StoredMembership<u64, BasicNode>,
        revision: u64,
    ) -> Result<(), StorageError<u64>> {
        if let Some(s) = &self.sealer {
            for (k, v) in objects.iter_mut() {
                *v = s.open_value(k, std::mem::take(v)).map_err(read_err)?;
            }
        }
        let mut jsons = Vec::with_capacity(objects.len());
        let txn = self.db.begin_write().map_err(write_err)?;
        {
            let mut table = txn.open_table(OBJECTS).map_err(write_err)?;
            table.retain(|_, _| false).map_err(write_err)?;
            for (k, v) in &objects {
                let b = encode(v);
                let stored = self.persisted(k, &b);
                table.insert(k.as_str(), &stored[..]).map_err(write_err)?;
                jsons.push(bytes::Bytes::from(b));
            }
            let mut m = txn.open_table(META).map_err(write_err)?;
            let mut put = |key: &str, value: Vec<u8>| {
                m.insert(key, value.as_slice())
                    .map(|_| ())
                    .map_err(write_err)
            };
            put(
                "last_applied",
                serde_json::to_vec(&last_applied).map_err(write_err)?,
            )?;
            put(
                "membership",
                serde_json::to_vec(&membership).map_err(write_err)?,
            )?;
            put(
                "revision",
                serde_json::to_vec(&revision).map_err(write_err)?,
            )?;
        }
        txn.commit().map_err(write_err)?;
        *self.shared.objects.write().expect("objects lock") = objects
            .into_iter()
            .zip(jsons)
            .map(|((k, v), json)| {
                let r = resource_version(&v);
                (
                    k,
                    Stored {
                        value: Arc::new(v),
                        revision: r,
                        json,
                    },
                )
            })
            .collect();
        {
            let mut hub = self.shared.hub.lock().expect("hub lock");
            hub.revision = revision;
            hub.history.clear();
            hub.history_bytes = 0;
            hub.history_from = revision;
            // The state changed in one step no event describes: watchers
            // see their channel close (a watch over HTTP ends, and its
            // client, resuming before this revision, is told to list
            // again) and subscribe anew.
            hub.tx = broadcast::channel(16_384).0;
        }
        self.last_applied = last_applied;
        self.membership = membership;
        self.revision = revision;
        Ok(())
    }

    /// Writes the state of `backup` (what [`super::view::backup_body`] wrote) at `path`,
    /// as a state no log has been applied to; its revision.
    pub fn restore(
        path: &Path,
        sealer: Option<Arc<Sealer>>,
        backup: &[u8],
    ) -> Result<u64, StorageError<u64>> {
        let body: SnapshotBody = crate::decode(backup).map_err(read_err)?;
        let revision = body.revision.unwrap_or_else(|| {
            body.objects
                .values()
                .map(resource_version)
                .max()
                .unwrap_or(0)
        });
        let mut sm = Self::open(path, sealer).map_err(write_err)?;
        sm.replace(body.objects, None, StoredMembership::default(), revision)?;
        let txn = sm.db.begin_write().map_err(write_err)?;
        txn.open_table(META)
            .map_err(write_err)?
            .insert("restored", &b"true"[..])
            .map_err(write_err)?;
        txn.commit().map_err(write_err)?;
        Ok(revision)
    }
}

/// The revision recorded in an object's `metadata.resourceVersion`.
pub fn resource_version(value: &Value) -> u64 {
    value
        .pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

fn check(cond: Cond, current: Option<&Stored>) -> Result<(), Failure> {
    match (cond, current) {
        (Cond::Any, _) => Ok(()),
        (Cond::Absent, None) => Ok(()),
        (Cond::Absent, Some(_)) => Err(Failure::AlreadyExists),
        (Cond::Present | Cond::Revision(_), None) => Err(Failure::NotFound),
        (Cond::Present, Some(_)) => Ok(()),
        (Cond::Revision(r), Some(cur)) if cur.revision == r => Ok(()),
        (Cond::Revision(_), Some(cur)) => Err(Failure::Conflict {
            current: cur.revision,
        }),
    }
}

enum DbOp {
    Put(String, bytes::Bytes),
    Delete(String),
}

/// What applying commands changes: the objects, the revision counter, the
/// rows to write and the events to publish (with the object before the
/// change as stored, for the history).
struct Changes<'a> {
    objects: &'a mut OrdMap<String, Stored>,
    revision: &'a mut u64,
    ops: &'a mut Vec<DbOp>,
    events: &'a mut Vec<(Arc<Event>, Option<bytes::Bytes>)>,
}

impl Changes<'_> {
    /// Applies a proposal's commands in order.
    fn propose(&mut self, proposal: Proposal) -> Result<Applied, StorageError<u64>> {
        Ok(match proposal {
            Proposal::One(command) => Applied::One(self.apply(command)?),
            Proposal::Batch(commands) => Applied::Batch(
                commands
                    .into_iter()
                    .map(|c| self.apply(c))
                    .collect::<Result<_, _>>()?,
            ),
        })
    }

    /// Applies one command; a change takes the next revision.
    fn apply(&mut self, command: Command) -> Result<Outcome, StorageError<u64>> {
        Ok(match command {
            Command::Put {
                key,
                mut value,
                cond,
            } => {
                let current = self.objects.get(&key);
                if let Err(f) = check(cond, current) {
                    return Ok(Outcome::Failed(f));
                }
                let prev = current.map(|c| (c.value.clone(), c.json.clone()));
                *self.revision += 1;
                let revision = *self.revision;
                set_resource_version(&mut value, revision);
                let value = Arc::new(value);
                let bytes = bytes::Bytes::from(encode(&value));
                self.ops.push(DbOp::Put(key.clone(), bytes.clone()));
                self.objects.insert(
                    key.clone(),
                    Stored {
                        value: value.clone(),
                        revision,
                        json: bytes.clone(),
                    },
                );
                let (prev, prev_json) = prev.unzip();
                let kind = if prev.is_some() {
                    EventKind::Modified
                } else {
                    EventKind::Added
                };
                self.events.push((
                    Arc::new(Event {
                        revision,
                        kind,
                        key,
                        object: value.clone(),
                        prev,
                        // Watches send the bytes just stored.
                        json: bytes.into(),
                    }),
                    prev_json,
                ));
                Outcome::Applied {
                    revision,
                    object: Some((*value).clone()),
                }
            }
            Command::Delete { key, cond } => {
                if let Err(f) = check(cond, self.objects.get(&key)) {
                    return Ok(Outcome::Failed(f));
                }
                let Some(old) = self.objects.remove(&key) else {
                    return Ok(Outcome::Failed(Failure::NotFound));
                };
                *self.revision += 1;
                let revision = *self.revision;
                self.ops.push(DbOp::Delete(key.clone()));
                let mut last = (*old.value).clone();
                set_resource_version(&mut last, revision);
                let json = bytes::Bytes::from(encode(&last));
                let last = Arc::new(last);
                self.events.push((
                    Arc::new(Event {
                        revision,
                        kind: EventKind::Deleted,
                        key,
                        object: last.clone(),
                        prev: Some(old.value),
                        json: json.into(),
                    }),
                    Some(old.json),
                ));
                Outcome::Applied {
                    revision,
                    object: Some((*last).clone()),
                }
            }
        })
    }
}

fn set_resource_version(value: &mut Value, revision: u64) {
    if let Some(meta) = value.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.insert(
            "resourceVersion".into(),
            Value::String(revision.to_string()),
        );
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId<u64>>, StoredMembership<u64, BasicNode>), StorageError<u64>> {
        Ok((self.last_applied, self.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Applied>, StorageError<u64>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut outcomes = Vec::new();
        let mut ops = Vec::new();
        let mut events = Vec::new();
        let mut objects = self.shared.objects.write().expect("objects lock");
        let mut changes = Changes {
            objects: &mut objects,
            revision: &mut self.revision,
            ops: &mut ops,
            events: &mut events,
        };
        for entry in entries {
            self.last_applied = Some(entry.log_id);
            let outcome = match entry.payload {
                EntryPayload::Blank => Applied::One(Outcome::Applied {
                    revision: *changes.revision,
                    object: None,
                }),
                EntryPayload::Membership(m) => {
                    self.membership = StoredMembership::new(Some(entry.log_id), m);
                    Applied::One(Outcome::Applied {
                        revision: *changes.revision,
                        object: None,
                    })
                }
                EntryPayload::Normal(proposal) => changes.propose(proposal)?,
            };
            outcomes.push(outcome);
        }
        let last_applied = serde_json::to_vec(&self.last_applied).map_err(write_err)?;
        let membership = serde_json::to_vec(&self.membership).map_err(write_err)?;
        let revision = serde_json::to_vec(&self.revision).map_err(write_err)?;
        crate::blocking(|| -> Result<(), StorageError<u64>> {
            let mut txn = self.db.begin_write().map_err(write_err)?;
            // Applied state is not fsynced: the Raft log is, and after a crash
            // openraft re-applies the log from the last durable
            // `last_applied`. Snapshots force a durable commit first.
            txn.set_durability(redb::Durability::None)
                .map_err(write_err)?;
            {
                let mut table = txn.open_table(OBJECTS).map_err(write_err)?;
                for op in &ops {
                    match op {
                        DbOp::Put(k, v) => {
                            let stored = self.persisted(k, v);
                            table.insert(k.as_str(), &stored[..]).map_err(write_err)?;
                        }
                        DbOp::Delete(k) => {
                            table.remove(k.as_str()).map_err(write_err)?;
                        }
                    }
                }
                let mut meta = txn.open_table(META).map_err(write_err)?;
                meta.insert("last_applied", last_applied.as_slice())
                    .map_err(write_err)?;
                meta.insert("membership", membership.as_slice())
                    .map_err(write_err)?;
                meta.insert("revision", revision.as_slice())
                    .map_err(write_err)?;
            }
            txn.commit().map_err(write_err)
        })?;
        let mut hub = self.shared.hub.lock().expect("hub lock");
        drop(objects);
        hub.revision = self.revision;
        for (event, prev) in events {
            let kept = Kept {
                revision: event.revision,
                kind: event.kind,
                key: event.key.clone(),
                object: event.object_json().clone(),
                prev,
            };
            hub.history_bytes += kept.size();
            hub.history.push_back(kept);
            while hub.history.len() > HISTORY || hub.history_bytes > HISTORY_BYTES {
                let Some(old) = hub.history.pop_front() else {
                    break;
                };
                hub.history_bytes -= old.size();
                hub.history_from = old.revision;
            }
            let _ = hub.tx.send(event);
        }
        Ok(outcomes)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        // Make every applied entry durable before the log below the snapshot
        // may be purged.
        let restored = self.restored;
        let flushed = crate::blocking(|| -> Result<(), redb::Error> {
            let txn = self.db.begin_write()?;
            // The snapshot holds the restored objects from here on.
            txn.open_table(META)?.remove("restored")?;
            txn.commit()?;
            Ok(())
        });
        if restored && flushed.is_ok() {
            self.restored = false;
        }
        if let Err(e) = flushed {
            tracing::error!("flushing the state machine before a snapshot: {e}");
        }
        let body = self.body();
        SnapshotBuilder {
            last_applied: self.last_applied,
            membership: self.membership.clone(),
            body,
            current: self.snapshot.clone(),
        }
    }

    async fn begin_receiving_snapshot(
        &mut self,
    ) -> Result<Box<Cursor<Vec<u8>>>, StorageError<u64>> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<u64, BasicNode>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError<u64>> {
        let bytes = snapshot.into_inner();
        let body: SnapshotBody = crate::decode(&bytes).map_err(read_err)?;
        let revision = body
            .revision
            .unwrap_or_else(|| meta.last_log_id.map_or(0, |l| l.index));
        crate::blocking(|| {
            self.replace(
                body.objects,
                meta.last_log_id,
                meta.last_membership.clone(),
                revision,
            )
        })?;
        self.snapshot.set(meta, &bytes).map_err(write_err)?;
        Ok(())
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> Result<Option<Snapshot<TypeConfig>>, StorageError<u64>> {
        self.snapshot.get().map_err(read_err)
    }
}

/// Builds a snapshot from a copy of the state taken when it was requested.
pub struct SnapshotBuilder {
    last_applied: Option<LogId<u64>>,
    membership: StoredMembership<u64, BasicNode>,
    body: Vec<u8>,
    current: CurrentSnapshot,
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError<u64>> {
        let id = format!(
            "{}-{}",
            self.last_applied.map_or(0, |l| l.index),
            uuid::Uuid::new_v4()
        );
        let meta = SnapshotMeta {
            last_log_id: self.last_applied,
            last_membership: self.membership.clone(),
            snapshot_id: id,
        };
        let body = std::mem::take(&mut self.body);
        crate::blocking(|| self.current.set(&meta, &body)).map_err(write_err)?;
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(body)),
        })
    }
}

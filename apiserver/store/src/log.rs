//! The Raft log in redb, with group commit: appends are handed to one
//! writer thread, which writes every append waiting at that moment in one
//! transaction (one fsync) and then reports each of them flushed. Under
//! concurrent writes the cost of an fsync is shared by all of them.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::path::Path;
use std::sync::{Arc, Mutex};

use openraft::storage::{LogFlushed, LogState, RaftLogReader, RaftLogStorage};
use openraft::{Entry, EntryPayload, LogId, OptionalSend, StorageError, Vote};
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

use super::seal::Sealer;
use super::types::TypeConfig;
use super::{read_err, write_err};

const LOG: TableDefinition<u64, &[u8]> = TableDefinition::new("log");
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");

type Done = std::sync::mpsc::SyncSender<Result<(), StorageError<u64>>>;

/// A change of the log other than an append, run on the writer thread.
type Change = Box<dyn FnOnce(&Database) -> Result<(), StorageError<u64>> + Send>;

/// One append: rows (index, serialised entry) and whom to tell.
type Append = (Vec<(u64, Vec<u8>)>, LogFlushed<TypeConfig>);

/// Work for the writer thread, done in the order it was sent.
enum Job {
    /// Log entries (index, serialised entry) to write, and whom to tell.
    Append(Vec<(u64, Vec<u8>)>, LogFlushed<TypeConfig>),
    /// Any other change of the log, done after the appends before it.
    Change(Change, Done),
}

/// Most entries kept in memory for [`LogStore::try_get_log_entries`].
const MAX_RECENT: usize = 10_000;

/// The log store. Clones share the database, the writer and the recent
/// entries.
#[derive(Clone)]
pub struct LogStore {
    db: Arc<Database>,
    /// The writer thread's queue; `None` where storage work runs inline
    /// ([`crate::inline_io`]).
    writer: Option<std::sync::mpsc::Sender<Job>>,
    /// Appended entries not yet read back: openraft reads each committed
    /// entry once to apply it, and handing it over from here saves
    /// decoding it again. Anything missing is read from disk.
    recent: Arc<Mutex<BTreeMap<u64, Entry<TypeConfig>>>>,
    /// Seals the values of secret keys in the entries written.
    sealer: Option<Arc<Sealer>>,
}

impl LogStore {
    /// Opens (or creates) the log at `path`.
    pub fn open(path: &Path, sealer: Option<Arc<Sealer>>) -> Result<Self, redb::Error> {
        let db = super::open_db(path)?;
        let txn = db.begin_write()?;
        txn.open_table(LOG)?;
        txn.open_table(META)?;
        txn.commit()?;
        let mut db = db;
        if reseal(&db, sealer.as_deref())? {
            // Pages the old forms occupied are freed, not erased:
            // compacting leaves none behind in the file.
            db.compact()
                .map_err(|e| redb::Error::Io(std::io::Error::other(e)))?;
        }
        let db = Arc::new(db);
        let writer = if crate::inline_io() {
            None
        } else {
            let (writer, jobs) = std::sync::mpsc::channel();
            let thread_db = db.clone();
            std::thread::Builder::new()
                .name("shoal-raft-log".into())
                .spawn(move || write_loop(&thread_db, &jobs))
                .map_err(redb::Error::Io)?;
            Some(writer)
        };
        Ok(Self {
            db,
            writer,
            recent: Arc::default(),
            sealer,
        })
    }

    /// An entry as the log stores it: values sealed where they must be.
    fn stored_form(&self, entry: &Entry<TypeConfig>) -> Result<Vec<u8>, StorageError<u64>> {
        stored_form(self.sealer.as_deref(), entry)
    }

    /// An entry read back from its stored form.
    fn read_entry(&self, bytes: &[u8]) -> Result<Entry<TypeConfig>, StorageError<u64>> {
        read_entry(self.sealer.as_deref(), bytes)
    }

    /// Takes the entries of `range` from the recent ones if all of them are
    /// there.
    fn take_recent<RB: RangeBounds<u64>>(&self, range: &RB) -> Option<Vec<Entry<TypeConfig>>> {
        let start = match range.start_bound() {
            Bound::Included(s) => *s,
            Bound::Excluded(s) => s.checked_add(1)?,
            Bound::Unbounded => return None,
        };
        let end = match range.end_bound() {
            Bound::Included(e) => e.checked_add(1)?,
            Bound::Excluded(e) => *e,
            Bound::Unbounded => return None,
        };
        let mut recent = self.recent.lock().expect("recent entries lock");
        let len = usize::try_from(end.checked_sub(start)?).ok()?;
        if recent.range(start..end).count() != len {
            return None;
        }
        let mut later = recent.split_off(&start);
        let mut rest = later.split_off(&end);
        recent.append(&mut rest);
        Some(later.into_values().collect())
    }

    /// Runs `change` on the writer thread after every append sent before
    /// it, and waits for it.
    fn change(
        &self,
        change: impl FnOnce(&Database) -> Result<(), StorageError<u64>> + Send + 'static,
    ) -> Result<(), StorageError<u64>> {
        let Some(writer) = &self.writer else {
            return change(&self.db);
        };
        let (done, wait) = std::sync::mpsc::sync_channel(1);
        writer
            .send(Job::Change(Box::new(change), done))
            .map_err(|_| write_err(std::io::Error::other("the log writer has stopped")))?;
        crate::blocking(|| wait.recv())
            .map_err(|_| write_err(std::io::Error::other("the log writer has stopped")))?
    }

    fn meta<T: serde::de::DeserializeOwned>(
        &self,
        key: &str,
    ) -> Result<Option<T>, StorageError<u64>> {
        let txn = self.db.begin_read().map_err(read_err)?;
        let table = txn.open_table(META).map_err(read_err)?;
        match table.get(key).map_err(read_err)? {
            Some(v) => Ok(Some(crate::decode(v.value()).map_err(read_err)?)),
            None => Ok(None),
        }
    }

    fn set_meta<T: serde::Serialize>(
        &self,
        key: &'static str,
        value: &T,
        durability: redb::Durability,
    ) -> Result<(), StorageError<u64>> {
        let bytes = serde_json::to_vec(value).map_err(write_err)?;
        self.change(move |db| {
            let mut txn = db.begin_write().map_err(write_err)?;
            txn.set_durability(durability).map_err(write_err)?;
            txn.open_table(META)
                .map_err(write_err)?
                .insert(key, bytes.as_slice())
                .map_err(write_err)?;
            txn.commit().map_err(write_err)
        })
    }

    fn last_entry_id(&self) -> Result<Option<LogId<u64>>, StorageError<u64>> {
        let txn = self.db.begin_read().map_err(read_err)?;
        let table = txn.open_table(LOG).map_err(read_err)?;
        match table.last().map_err(read_err)? {
            Some((_, v)) => {
                let e: Entry<TypeConfig> = crate::decode(v.value()).map_err(read_err)?;
                Ok(Some(e.log_id))
            }
            None => Ok(None),
        }
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<TypeConfig>>, StorageError<u64>> {
        if let Some(entries) = self.take_recent(&range) {
            return Ok(entries);
        }
        let txn = self.db.begin_read().map_err(read_err)?;
        let table = txn.open_table(LOG).map_err(read_err)?;
        let mut out = Vec::new();
        for item in table.range(range).map_err(read_err)? {
            let (_, v) = item.map_err(read_err)?;
            out.push(self.read_entry(v.value())?);
        }
        Ok(out)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError<u64>> {
        // Appends still on their way to disk count.
        self.change(|_| Ok(()))?;
        let last_purged: Option<LogId<u64>> = self.meta("last_purged")?;
        let last = self.last_entry_id()?.or(last_purged);
        Ok(LogState {
            last_purged_log_id: last_purged,
            last_log_id: last,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<u64>) -> Result<(), StorageError<u64>> {
        self.set_meta("vote", vote, redb::Durability::Immediate)
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<u64>>, StorageError<u64>> {
        self.meta("vote")
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError<u64>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut rows = Vec::new();
        let mut appended = Vec::new();
        for entry in entries {
            rows.push((entry.log_id.index, self.stored_form(&entry)?));
            appended.push(entry);
        }
        {
            let mut recent = self.recent.lock().expect("recent entries lock");
            recent.extend(appended.into_iter().map(|e| (e.log_id.index, e)));
            while recent.len() > MAX_RECENT {
                recent.pop_first();
            }
        }
        match &self.writer {
            Some(writer) => writer
                .send(Job::Append(rows, callback))
                .map_err(|_| write_err(std::io::Error::other("the log writer has stopped"))),
            None => {
                write_appends(&self.db, vec![(rows, callback)]);
                Ok(())
            }
        }
    }

    async fn truncate(&mut self, log_id: LogId<u64>) -> Result<(), StorageError<u64>> {
        self.recent
            .lock()
            .expect("recent entries lock")
            .retain(|i, _| *i < log_id.index);
        self.change(move |db| {
            let txn = db.begin_write().map_err(write_err)?;
            txn.open_table(LOG)
                .map_err(write_err)?
                .retain_in(log_id.index.., |_, _| false)
                .map_err(write_err)?;
            txn.commit().map_err(write_err)
        })
    }

    async fn purge(&mut self, log_id: LogId<u64>) -> Result<(), StorageError<u64>> {
        self.recent
            .lock()
            .expect("recent entries lock")
            .retain(|i, _| *i > log_id.index);
        let bytes = serde_json::to_vec(&log_id).map_err(write_err)?;
        self.change(move |db| {
            let txn = db.begin_write().map_err(write_err)?;
            txn.open_table(META)
                .map_err(write_err)?
                .insert("last_purged", bytes.as_slice())
                .map_err(write_err)?;
            txn.open_table(LOG)
                .map_err(write_err)?
                .retain_in(..=log_id.index, |_, _| false)
                .map_err(write_err)?;
            txn.commit().map_err(write_err)
        })
    }
}

/// An entry as the log stores it: values sealed where they must be.
fn stored_form(
    sealer: Option<&Sealer>,
    entry: &Entry<TypeConfig>,
) -> Result<Vec<u8>, StorageError<u64>> {
    if let (Some(s), EntryPayload::Normal(p)) = (sealer, &entry.payload)
        && let Some(sealed) = s.seal_proposal(p)
    {
        let e = Entry::<TypeConfig> {
            log_id: entry.log_id,
            payload: EntryPayload::Normal(sealed),
        };
        return serde_json::to_vec(&e).map_err(write_err);
    }
    serde_json::to_vec(entry).map_err(write_err)
}

/// An entry read back from its stored form.
fn read_entry(
    sealer: Option<&Sealer>,
    bytes: &[u8],
) -> Result<Entry<TypeConfig>, StorageError<u64>> {
    let mut e: Entry<TypeConfig> = crate::decode(bytes).map_err(read_err)?;
    if let Some(s) = sealer
        && let EntryPayload::Normal(p) = e.payload
    {
        e.payload = EntryPayload::Normal(s.open_proposal(p).map_err(read_err)?);
    }
    Ok(e)
}

/// Writes every entry again when the log was sealed another way (a key
/// added, rotated or dropped), so that afterwards only the providers that
/// write are needed to read it. Whether it did.
fn reseal(db: &Database, sealer: Option<&Sealer>) -> Result<bool, redb::Error> {
    let io = |e: StorageError<u64>| redb::Error::Io(std::io::Error::other(e.to_string()));
    let txn = db.begin_write()?;
    {
        if !crate::sealing_changed(&mut txn.open_table(META)?, sealer)? {
            return Ok(false);
        }
        let mut table = txn.open_table(LOG)?;
        let mut rows = Vec::new();
        for item in table.iter()? {
            let (index, bytes) = item?;
            let entry = read_entry(sealer, bytes.value()).map_err(io)?;
            rows.push((index.value(), stored_form(sealer, &entry).map_err(io)?));
        }
        for (index, bytes) in rows {
            table.insert(index, bytes.as_slice())?;
        }
    }
    txn.commit()?;
    Ok(true)
}

/// The writer thread: takes every append waiting, writes them in one
/// transaction, reports them flushed; other changes run in their turn.
fn write_loop(db: &Database, jobs: &std::sync::mpsc::Receiver<Job>) {
    let mut next = jobs.recv().ok();
    while let Some(job) = next.take() {
        match job {
            Job::Change(change, done) => {
                let _ = done.send(change(db));
                next = jobs.recv().ok();
            }
            Job::Append(rows, callback) => {
                let mut batch = vec![(rows, callback)];
                loop {
                    match jobs.try_recv() {
                        Ok(Job::Append(rows, callback)) => batch.push((rows, callback)),
                        Ok(other) => {
                            next = Some(other);
                            break;
                        }
                        Err(_) => break,
                    }
                }
                write_appends(db, batch);
                if next.is_none() {
                    next = jobs.recv().ok();
                }
            }
        }
    }
}

/// Writes `batch` in one transaction and tells each append's caller.
fn write_appends(db: &Database, batch: Vec<Append>) {
    let written = write_batch(db, &batch);
    for (_, callback) in batch {
        callback.log_io_completed(
            written
                .as_ref()
                .map(|_| ())
                .map_err(|e| std::io::Error::other(e.to_string())),
        );
    }
}

fn write_batch(db: &Database, batch: &[Append]) -> Result<(), StorageError<u64>> {
    let txn = db.begin_write().map_err(write_err)?;
    {
        let mut table = txn.open_table(LOG).map_err(write_err)?;
        for (rows, _) in batch {
            for (index, bytes) in rows {
                table.insert(*index, bytes.as_slice()).map_err(write_err)?;
            }
        }
    }
    txn.commit().map_err(write_err)
}

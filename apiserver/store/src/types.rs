//! The store's data types: what goes through the Raft log and what comes back.

use std::io::Cursor;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;

openraft::declare_raft_types!(
    /// Raft type configuration of the store.
    pub TypeConfig:
        D = Proposal,
        R = Applied,
        NodeId = u64,
        Node = openraft::BasicNode,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = Cursor<Vec<u8>>,
        AsyncRuntime = openraft::TokioRuntime,
);

/// A precondition checked atomically when a command is applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Cond {
    /// No precondition.
    Any,
    /// The key must not exist (create).
    Absent,
    /// The key must exist.
    Present,
    /// The key must exist and have been last written at this revision.
    Revision(u64),
}

/// A write proposed through the Raft log.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Command {
    /// Stores `value` at `key`. The state machine sets
    /// `metadata.resourceVersion` to the entry's revision.
    Put {
        /// The object's key.
        key: String,
        /// The object.
        value: Value,
        /// Precondition.
        cond: Cond,
    },
    /// Removes `key`.
    Delete {
        /// The object's key.
        key: String,
        /// Precondition.
        cond: Cond,
    },
}

/// What one log entry carries: a command, or commands applied one after the
/// other, each with its own precondition and revision, so concurrent writes
/// share a Raft round and an fsync. A single command is written as before
/// batching, so older logs still read.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Proposal {
    /// One command.
    One(Command),
    /// Commands in the order they were proposed.
    Batch(Vec<Command>),
}

/// Why a command was not applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Failure {
    /// The key does not exist.
    NotFound,
    /// The key exists.
    AlreadyExists,
    /// The key was written at another revision.
    Conflict {
        /// Revision of the current object.
        current: u64,
    },
}

/// The result of applying one log entry.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Outcome {
    /// Applied at `revision`; `object` is the stored object for a put and the
    /// removed object for a delete.
    Applied {
        /// Revision of this write.
        revision: u64,
        /// The object written or removed.
        object: Option<Value>,
    },
    /// Not applied.
    Failed(Failure),
}

/// The result of applying one log entry: one outcome per command.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Applied {
    /// The outcome of [`Proposal::One`], or of a membership or blank entry.
    One(Outcome),
    /// The outcomes of [`Proposal::Batch`], in its order.
    Batch(Vec<Outcome>),
}

/// A stored object with the revision it was last written at.
#[derive(Debug, Clone)]
pub struct Stored {
    /// The object, `metadata.resourceVersion` included.
    pub value: Arc<Value>,
    /// Revision of the last write.
    pub revision: u64,
    /// The object as the JSON that was stored.
    pub json: bytes::Bytes,
}

/// Kinds of change a watcher sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// The key was created.
    Added,
    /// The key was replaced.
    Modified,
    /// The key was removed.
    Deleted,
}

/// One applied change, in revision order.
#[derive(Debug, Clone)]
pub struct Event {
    /// Revision of the change.
    pub revision: u64,
    /// What happened.
    pub kind: EventKind,
    /// The key.
    pub key: String,
    /// The object after the change; for a delete, the last state.
    pub object: Arc<Value>,
    /// The object before the change, if any.
    pub prev: Option<Arc<Value>>,
    /// `object` serialized, once for every watch that sends it.
    pub json: std::sync::OnceLock<bytes::Bytes>,
}

impl Event {
    /// The object as JSON, serialized on first use.
    pub fn object_json(&self) -> &bytes::Bytes {
        self.json
            .get_or_init(|| shoal_wire::gotypes::json::to_vec(&self.object).into())
    }
}

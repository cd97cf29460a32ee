//! Views of the store's objects at one revision: what lists and backups
//! read, without holding the store's locks.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::Arc;

use imbl::OrdMap;

use super::seal::Sealer;
use super::types::Stored;

/// The objects as they were at one revision, read without holding the
/// store's locks: a snapshot of the map (its structure shared with the
/// live one, taken in O(1)) and, for an older revision, what the changes
/// since replaced. Reading a page of it costs the page, not the whole
/// range.
#[derive(Clone)]
pub struct View {
    objects: OrdMap<String, Stored>,
    /// The keys under the view's prefix changed after its revision, with
    /// what they held at it (`None`: absent then).
    undo: Arc<BTreeMap<String, Option<Stored>>>,
    revision: u64,
}

impl View {
    /// A view of `objects` with `undo` laid over them, at `revision`.
    pub(crate) fn new(
        objects: OrdMap<String, Stored>,
        undo: Arc<BTreeMap<String, Option<Stored>>>,
        revision: u64,
    ) -> Self {
        Self {
            objects,
            undo,
            revision,
        }
    }

    /// The revision the objects are read at.
    pub fn revision(&self) -> u64 {
        self.revision
    }

    /// The objects whose keys start with `prefix`, in key order, beginning
    /// after the key `after` (from the first when `None`).
    pub fn range<'a>(
        &'a self,
        prefix: &'a str,
        after: Option<&str>,
    ) -> impl Iterator<Item = &'a Stored> + use<'a> {
        self.entries(prefix, after).map(|(_, v)| v)
    }

    /// As [`View::range`], with each object's key.
    pub fn entries<'a>(
        &'a self,
        prefix: &'a str,
        after: Option<&str>,
    ) -> impl Iterator<Item = (&'a str, &'a Stored)> + use<'a> {
        let start = match after {
            Some(a) if a >= prefix => Bound::Excluded(a),
            _ => Bound::Included(prefix),
        };
        let under = move |k: &String| k.starts_with(prefix);
        Merged {
            current: self
                .objects
                .range::<_, str>((start, Bound::Unbounded))
                .take_while(move |(k, _)| under(k))
                .peekable(),
            undo: self
                .undo
                .range::<str, _>((start, Bound::Unbounded))
                .take_while(move |(k, _)| under(k))
                .peekable(),
        }
    }
}

/// The current objects of a range with the undone changes laid over them.
struct Merged<A: Iterator, B: Iterator> {
    current: std::iter::Peekable<A>,
    undo: std::iter::Peekable<B>,
}

impl<'a, A, B> Iterator for Merged<A, B>
where
    A: Iterator<Item = (&'a String, &'a Stored)>,
    B: Iterator<Item = (&'a String, &'a Option<Stored>)>,
{
    type Item = (&'a str, &'a Stored);

    fn next(&mut self) -> Option<(&'a str, &'a Stored)> {
        use std::cmp::Ordering;
        loop {
            let order = match (self.current.peek(), self.undo.peek()) {
                (None, None) => return None,
                (Some(_), None) => Ordering::Less,
                (None, Some(_)) => Ordering::Greater,
                (Some((a, _)), Some((b, _))) => a.cmp(b),
            };
            if order == Ordering::Less {
                return self.current.next().map(|(k, v)| (k.as_str(), v));
            }
            if order == Ordering::Equal {
                self.current.next();
            }
            if let Some((k, Some(then))) = self.undo.next() {
                return Some((k.as_str(), then));
            }
        }
    }
}

/// A backup as written: what a snapshot's body holds but the Raft state.
#[derive(serde::Serialize)]
struct BackupRef<'a> {
    revision: u64,
    objects: BTreeMap<&'a str, std::borrow::Cow<'a, serde_json::Value>>,
}

/// A backup of the objects of `view`, with the values `sealer` seals
/// sealed: a snapshot body without the Raft state.
pub fn backup_body(view: &View, sealer: Option<&Sealer>) -> Vec<u8> {
    let body = BackupRef {
        revision: view.revision(),
        objects: view
            .entries("", None)
            .map(|(key, s)| {
                let value = match sealer.and_then(|x| x.seal_for_snapshot(key, &s.value)) {
                    Some(sealed) => std::borrow::Cow::Owned(sealed),
                    None => std::borrow::Cow::Borrowed(&*s.value),
                };
                (key, value)
            })
            .collect(),
    };
    serde_json::to_vec(&body).unwrap_or_default()
}

//! A linearizability checker for histories of registers (one per key)
//! whose writes carry unique values: it checks the history against the
//! order the store's revisions give its writes, which must agree with
//! every real-time constraint. Writes ordered by revision, each read put
//! after the write it saw, is then a linearization: one exists exactly
//! when no check below fails.
//!
//! Checked, for operations on one key where `a` completed before `b` was
//! invoked: two writes keep their revision order; a read after a write
//! sees it or a later one (no stale read, no lost acknowledged write); a
//! read before a write does not see it or anything after it (no read
//! from the future); a read after a read sees no older write. Every
//! value read was written, with the revision it was written at. A write
//! whose outcome is unknown (an error, a timeout) may have happened: it
//! has no completion, and a revision only if a read saw it.

use std::collections::HashMap;

/// What an operation did.
#[derive(Debug, Clone)]
pub(super) enum Kind {
    /// Wrote `value`; the revision it got, if it was acknowledged.
    Write { value: u64, revision: Option<u64> },
    /// Read `value` at `revision` (`None`, 0: the key was absent).
    Read { value: Option<u64>, revision: u64 },
}

/// One operation: its key, when it was invoked and (if it was answered)
/// completed, in nanoseconds on one clock.
#[derive(Debug, Clone)]
pub(super) struct Op {
    pub(super) key: String,
    pub(super) kind: Kind,
    pub(super) invoked: u64,
    /// `None` when the outcome is unknown (a write) or the op failed (a
    /// read, which is then left out).
    pub(super) completed: Option<u64>,
}

/// A write as the checker places it.
struct Placed {
    revision: u64,
    invoked: u64,
    /// `u64::MAX` for a write whose outcome is unknown.
    completed: u64,
}

/// The violations found in `history` (empty: linearizable).
pub(super) fn check(history: &[Op]) -> Vec<String> {
    let mut by_key: HashMap<&str, Vec<&Op>> = HashMap::new();
    for op in history {
        by_key.entry(&op.key).or_default().push(op);
    }
    let mut violations = Vec::new();
    for (key, ops) in by_key {
        check_key(key, &ops, &mut violations);
    }
    violations
}

fn check_key(key: &str, ops: &[&Op], violations: &mut Vec<String>) {
    // Each value's write, and the revision it got (acknowledged, or seen).
    let mut writes: HashMap<u64, (&Op, Option<u64>)> = HashMap::new();
    for op in ops {
        if let Kind::Write { value, revision } = op.kind
            && writes.insert(value, (op, revision)).is_some()
        {
            violations.push(format!("{key}: value {value} written twice"));
        }
    }
    let reads: Vec<(&Op, Option<u64>, u64, u64)> = ops
        .iter()
        .filter_map(|op| match (&op.kind, op.completed) {
            (Kind::Read { value, revision }, Some(done)) => Some((*op, *value, *revision, done)),
            _ => None,
        })
        .collect();
    for (read, value, revision, done) in &reads {
        let Some(value) = value else {
            if *revision != 0 {
                violations.push(format!("{key}: an absent key read at revision {revision}"));
            }
            continue;
        };
        let Some((write, known)) = writes.get_mut(value) else {
            violations.push(format!("{key}: read {value}, which nobody wrote"));
            continue;
        };
        if write.invoked > *done {
            violations.push(format!(
                "{key}: read {value} before its write was invoked (read at {}..{done})",
                read.invoked
            ));
        }
        match known {
            Some(r) if *r != *revision => violations.push(format!(
                "{key}: value {value} read at revision {revision}, written at {r}"
            )),
            Some(_) => {}
            None => *known = Some(*revision),
        }
    }
    let placed: Vec<Placed> = writes
        .values()
        .filter_map(|(op, revision)| {
            Some(Placed {
                revision: (*revision)?,
                invoked: op.invoked,
                completed: op.completed.unwrap_or(u64::MAX),
            })
        })
        .collect();
    for a in &placed {
        for b in &placed {
            if a.completed < b.invoked && a.revision >= b.revision {
                violations.push(format!(
                    "{key}: a write at revision {} completed before one at revision {} was invoked",
                    a.revision, b.revision
                ));
            }
        }
    }
    for (read, _, seen, done) in &reads {
        for w in &placed {
            if w.completed < read.invoked && *seen < w.revision {
                violations.push(format!(
                    "{key}: a stale read: revision {seen} read after the write at {} was acknowledged",
                    w.revision
                ));
            }
            if *done < w.invoked && *seen >= w.revision {
                violations.push(format!(
                    "{key}: revision {seen} read before the write at {} was invoked",
                    w.revision
                ));
            }
        }
        for (_, _, other_seen, other_done) in &reads {
            if *other_done < read.invoked && seen < other_seen {
                violations.push(format!(
                    "{key}: revision {seen} read after revision {other_seen} was (read at {}..{done}, the other done at {other_done})",
                    read.invoked
                ));
            }
        }
    }
}

#[cfg(test)]
mod checker_tests {
    use super::*;

    fn write(value: u64, revision: Option<u64>, invoked: u64, completed: Option<u64>) -> Op {
        Op {
            key: "k".into(),
            kind: Kind::Write { value, revision },
            invoked,
            completed,
        }
    }

    fn read(value: Option<u64>, revision: u64, invoked: u64, completed: u64) -> Op {
        Op {
            key: "k".into(),
            kind: Kind::Read { value, revision },
            invoked,
            completed: Some(completed),
        }
    }

    #[test]
    fn concurrent_operations_may_take_either_order() {
        let history = [
            write(1, Some(5), 0, Some(10)),
            // Overlaps the write: may see it or not.
            read(None, 0, 2, 4),
            read(Some(1), 5, 3, 12),
            write(2, Some(7), 11, Some(20)),
            read(Some(2), 7, 21, 22),
            // A write never answered, seen by a read.
            write(3, None, 23, None),
            read(Some(3), 9, 30, 31),
        ];
        assert_eq!(check(&history), Vec::<String>::new());
    }

    #[test]
    fn stale_lost_future_and_backward_reads_are_caught() {
        let stale = [write(1, Some(5), 0, Some(10)), read(None, 0, 11, 12)];
        assert!(check(&stale)[0].contains("stale"), "{:?}", check(&stale));
        let lost = [
            write(1, Some(5), 0, Some(1)),
            write(2, Some(6), 2, Some(3)),
            read(Some(1), 5, 4, 5),
        ];
        assert!(!check(&lost).is_empty());
        let future = [read(Some(1), 5, 0, 1), write(1, Some(5), 2, Some(3))];
        assert!(!check(&future).is_empty());
        let backward = [
            write(1, Some(5), 0, Some(1)),
            write(2, Some(6), 0, Some(1)),
            read(Some(2), 6, 2, 3),
            read(Some(1), 5, 4, 5),
        ];
        assert!(!check(&backward).is_empty());
        let reordered = [write(1, Some(6), 0, Some(1)), write(2, Some(5), 2, Some(3))];
        assert!(!check(&reordered).is_empty());
        let phantom = [read(Some(9), 5, 0, 1)];
        assert!(!check(&phantom).is_empty());
    }
}

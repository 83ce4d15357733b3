//! Noticing a storage server that rolls the repository back or hides snapshots. Each user
//! remembers the snapshot files and tombstones they have seen ([`vault_repo::state`]).
//! A key holder removes a snapshot only by writing a tombstone first (spec §14.3), and
//! tombstones are never deleted; so a snapshot seen before that is gone now with no
//! tombstone naming it, or a tombstone seen before that is gone, was removed by someone
//! without the key: the storage lost it, hid it, or was reset to an older copy.
//!
//! Listing order keeps this honest beside a running `forget`: snapshots are listed before
//! tombstones, so a snapshot deleted before the first listing had its tombstone stored
//! before the second.

use std::collections::HashSet;

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

use super::error::Result;
use super::select::time_of;
use vault_format::snapshot::Snapshot;
use vault_format::tombstone::Tombstone;
use vault_format::{Id, SnapshotId};
use vault_repo::state::{LocalState, Seen};
use vault_repo::{Repository, StoredKind};

/// How far ahead of this computer's clock a snapshot may be dated before it is flagged (and
/// passed over as a backup's parent): more than any clock skew, less than a forger wants.
pub(crate) const FUTURE_TOLERANCE: Duration = Duration::hours(1);

/// What changed since this user last looked that no key holder did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct History {
    /// Snapshots seen before, gone now, and named by no tombstone.
    pub missing_snapshots: Vec<SnapshotId>,
    /// Tombstones seen before and gone now.
    pub missing_tombstones: Vec<Id>,
}

impl History {
    /// Whether anything vanished.
    pub fn is_tampered(&self) -> bool {
        !self.missing_snapshots.is_empty() || !self.missing_tombstones.is_empty()
    }

    /// One line for the user.
    pub fn describe(&self) -> String {
        let ids = |v: Vec<String>| {
            let more = if v.len() > 5 { format!(" and {} more", v.len() - 5) } else { String::new() };
            format!("{}{more}", v.into_iter().take(5).collect::<Vec<_>>().join(", "))
        };
        let mut parts = Vec::new();
        if !self.missing_snapshots.is_empty() {
            parts.push(format!(
                "{} snapshot(s) seen before are gone without a forget ({})",
                self.missing_snapshots.len(),
                ids(self.missing_snapshots.iter().map(|s| s.short()).collect())
            ));
        }
        if !self.missing_tombstones.is_empty() {
            parts.push(format!(
                "{} tombstone(s) seen before are gone ({})",
                self.missing_tombstones.len(),
                ids(self.missing_tombstones.iter().map(|s| s.short()).collect())
            ));
        }
        format!(
            "{}: the storage lost or hid them, or was reset to an older copy (run `vault check`; `vault check --accept-missing` takes the repository as it is now)",
            parts.join("; ")
        )
    }
}

/// The snapshot files and tombstones stored now, and the snapshots the tombstones name.
struct Now {
    snapshots: Vec<SnapshotId>,
    tombstones: Vec<Id>,
    forgotten: HashSet<SnapshotId>,
}

fn list_now(repo: &Repository) -> Result<Now> {
    // Snapshots first, tombstones second (see the module comment).
    let snapshots = repo.list_snapshots()?;
    let stones = repo.load_documents::<Tombstone>(StoredKind::Tombstone)?;
    let tombstones = stones.iter().map(|(id, _)| *id).collect();
    let forgotten = crate::forget::named_by(&stones);
    Ok(Now { snapshots, tombstones, forgotten })
}

/// Compares the repository with what this user saw last, and remembers what is there now.
/// What vanished stays remembered, so every later command reports it too, until
/// [`accept`].
pub fn observe(repo: &Repository, state: &LocalState) -> Result<History> {
    // Only what was remembered before the listings began is judged by them: another
    // process may remember a snapshot it has just written (or a tombstone it has just
    // listed) while these listings run, too late for them to show it.
    let before = state.seen(&repo.config().id);
    let now = list_now(repo)?;
    let mut history = History::default();
    let result = state.update_seen(&repo.config().id, |seen| {
        let present: HashSet<SnapshotId> = now.snapshots.iter().copied().collect();
        let stones: HashSet<Id> = now.tombstones.iter().copied().collect();
        history.missing_snapshots = seen
            .snapshots
            .iter()
            .filter(|s| before.snapshots.contains(s) && !present.contains(s) && !now.forgotten.contains(s))
            .copied()
            .collect();
        history.missing_tombstones =
            seen.tombstones.iter().filter(|t| before.tombstones.contains(t) && !stones.contains(t)).copied().collect();
        seen.snapshots.extend(now.snapshots.iter().copied());
        seen.snapshots.retain(|s| !now.forgotten.contains(s));
        seen.tombstones.extend(now.tombstones.iter().copied());
    });
    // The memory is a safety net: a failure to keep it only weakens the next comparison.
    if let Err(e) = result {
        return Err(super::error::OpError::LocalState(e.to_string()));
    }
    Ok(history)
}

/// Adds a snapshot this process wrote, so that a rollback right after it is noticed.
pub fn remember_snapshot(repo: &Repository, state: &LocalState, id: SnapshotId) -> std::io::Result<()> {
    state.update_seen(&repo.config().id, |seen| {
        seen.snapshots.insert(id);
    })
}

/// Takes the repository as it is now as what this user has seen (after a reported loss was
/// looked into). Returns what is no longer reported.
pub fn accept(repo: &Repository, state: &LocalState) -> Result<History> {
    let now = list_now(repo)?;
    let mut dropped = History::default();
    state
        .update_seen(&repo.config().id, |seen| {
            let old = std::mem::take(seen);
            let fresh = Seen {
                snapshots: now.snapshots.iter().copied().filter(|s| !now.forgotten.contains(s)).collect(),
                tombstones: now.tombstones.iter().copied().collect(),
            };
            dropped.missing_snapshots =
                old.snapshots.difference(&fresh.snapshots).filter(|s| !now.forgotten.contains(s)).copied().collect();
            dropped.missing_tombstones = old.tombstones.difference(&fresh.tombstones).copied().collect();
            *seen = fresh;
        })
        .map_err(|e| super::error::OpError::LocalState(e.to_string()))?;
    Ok(dropped)
}

/// Whether a snapshot is dated further ahead of `now` than clocks drift.
pub fn is_future(s: &Snapshot, now: DateTime<Utc>) -> bool {
    time_of(s) > now + FUTURE_TOLERANCE
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::forget::remove_snapshots;
    use crate::tests::memory_repo;
    use vault_repo::StoredObject;

    fn snapshot(time: &str) -> Snapshot {
        Snapshot {
            version: 1,
            time: time.into(),
            tree: Default::default(),
            paths: vec!["/x".into()],
            hostname: "h".into(),
            username: "u".into(),
            uid: 0,
            gid: 0,
            tags: Vec::new(),
            parent: None,
            program_version: "test".into(),
            summary: None,
            filters: None,
            original: None,
            written_by: None,
        }
    }

    fn commit_empty_snapshot(repo: &Repository, time: &str) -> SnapshotId {
        repo.save_snapshot(&snapshot(time)).unwrap()
    }

    #[test]
    fn a_snapshot_gone_without_a_tombstone_is_reported_a_forgotten_one_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let state = LocalState::open(dir.path()).unwrap();
        let repo = memory_repo("rollback");
        let a = commit_empty_snapshot(&repo, "2026-01-01T00:00:00Z");
        let b = commit_empty_snapshot(&repo, "2026-01-02T00:00:00Z");
        let c = commit_empty_snapshot(&repo, "2026-01-03T00:00:00Z");
        assert!(!observe(&repo, &state).unwrap().is_tampered());
        // A forget: tombstone, then the file goes. Not tampering.
        remove_snapshots(&repo, &[a], "forget").unwrap();
        assert!(!observe(&repo, &state).unwrap().is_tampered());
        // The storage drops b: reported, and again next time.
        repo.delete_file(StoredObject::Snapshot(b)).unwrap();
        for _ in 0..2 {
            let h = observe(&repo, &state).unwrap();
            assert_eq!(h.missing_snapshots, vec![b]);
            assert!(h.describe().contains(&b.short()));
        }
        // A tombstone vanishing (a rollback past a forget) is reported too.
        let stones = repo.list_files(StoredKind::Tombstone).unwrap();
        repo.delete_file(StoredObject::Record(StoredKind::Tombstone, stones[0].0)).unwrap();
        let h = observe(&repo, &state).unwrap();
        assert_eq!(h.missing_tombstones, vec![stones[0].0]);
        // Accepting makes it quiet; c is still tracked.
        let dropped = accept(&repo, &state).unwrap();
        assert_eq!(dropped.missing_snapshots, vec![b]);
        assert!(!observe(&repo, &state).unwrap().is_tampered());
        repo.delete_file(StoredObject::Snapshot(c)).unwrap();
        assert_eq!(observe(&repo, &state).unwrap().missing_snapshots, vec![c]);
    }

    #[test]
    fn future_dates() {
        let now = Utc::now();
        let mut s = snapshot("");
        s.time = (now + Duration::minutes(30)).to_rfc3339();
        assert!(!is_future(&s, now));
        s.time = (now + Duration::days(30)).to_rfc3339();
        assert!(is_future(&s, now));
    }
}

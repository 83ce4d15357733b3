//! Choosing snapshots: `latest`, a full id or a unique prefix, and filters.

use chrono::{DateTime, Utc};

use super::error::{OpError, Result};
use vault_format::SnapshotId;
use vault_format::file::Origin;
use vault_format::snapshot::Snapshot;
use vault_repo::Repository;
use vault_repo::repository::SnapshotList;

#[derive(Clone, Debug, Default)]
/// Which snapshots a command looks at (`--host`, `--tag`, `--path`).
pub struct SnapshotFilter {
    /// Any of these hosts (empty: any host).
    pub hosts: Vec<String>,
    /// A snapshot matches when it has every tag of any one entry (`--tag a,b --tag c`).
    pub tags: Vec<Vec<String>>,
    /// Snapshots whose source paths include all of these (empty: any).
    pub paths: Vec<String>,
}

impl SnapshotFilter {
    /// Whether `s` passes the filter.
    pub fn matches(&self, s: &Snapshot) -> bool {
        (self.hosts.is_empty() || self.hosts.contains(&s.hostname))
            && (self.tags.is_empty() || self.tags.iter().any(|set| set.iter().all(|t| s.tags.contains(t))))
            && (self.paths.is_empty() || self.paths.iter().all(|p| s.paths.contains(p)))
    }
}

/// A snapshot's time; one that does not parse counts as the epoch.
pub fn time_of(s: &Snapshot) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(&s.time).map(|t| t.with_timezone(&Utc)).unwrap_or_default()
}

/// The newest of `snaps`.
pub fn newest(snaps: impl Iterator<Item = (SnapshotId, Snapshot)>) -> Option<(SnapshotId, Snapshot)> {
    snaps.max_by(|a, b| time_of(&a.1).cmp(&time_of(&b.1)).then(a.0.cmp(&b.0)))
}

/// The snapshots that others among `snaps` replace (`original`, written by `repair
/// snapshots`, `tag` and `rewrite`). A replacement counts only when a full key wrote it,
/// or the write-only key that wrote the original: no write-only key can hide another's
/// snapshots by naming them.
pub fn replaced(snaps: &[(SnapshotId, Snapshot)]) -> std::collections::HashSet<SnapshotId> {
    let origin: std::collections::HashMap<SnapshotId, Option<Origin>> =
        snaps.iter().map(|(id, s)| (*id, s.written_by)).collect();
    snaps
        .iter()
        .filter_map(|(_, s)| {
            let o = s.original?;
            let allowed = match s.written_by {
                Some(Origin::Full) | None => true,
                Some(w @ Origin::Writer(_)) => origin.get(&o) == Some(&Some(w)),
                Some(Origin::Unverified) => false,
            };
            allowed.then_some(o)
        })
        .collect()
}

/// All readable snapshots matching the filter, oldest first (without those replaced by a
/// repair), and the damaged ones.
pub fn list(repo: &Repository, filter: &SnapshotFilter) -> Result<(SnapshotList, Vec<String>)> {
    let (snaps, bad) = repo.load_all_snapshots()?;
    // A snapshot replaced by its repaired version stays in the repository (and can be
    // named by id) but no longer shows up in listings or as `latest`; nor does one that a
    // tombstone names (a forget that was interrupted before it deleted the file).
    let mut hidden = crate::forget::forgotten(repo)?;
    hidden.extend(replaced(&snaps));
    let mut v: Vec<_> = snaps.into_iter().filter(|(id, s)| filter.matches(s) && !hidden.contains(id)).collect();
    v.sort_by(|a, b| time_of(&a.1).cmp(&time_of(&b.1)).then(a.0.cmp(&b.0)));
    Ok((v, bad.iter().map(|(_, e)| e.to_string()).collect()))
}

/// Resolves `latest`, a full id or a unique id prefix.
pub fn find(repo: &Repository, spec: &str, filter: &SnapshotFilter) -> Result<(SnapshotId, Snapshot)> {
    if spec == "latest" {
        let (snaps, _) = list(repo, filter)?;
        return snaps.into_iter().last().ok_or_else(|| OpError::SnapshotNotFound("latest".into()));
    }
    let lower = spec.to_ascii_lowercase();
    if lower.is_empty() || lower.len() > 64 || !lower.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(OpError::SnapshotNotFound(spec.to_string()));
    }
    let matches: Vec<SnapshotId> =
        repo.list_snapshots()?.into_iter().filter(|id| id.to_hex().starts_with(&lower)).collect();
    match matches.as_slice() {
        [] => Err(OpError::SnapshotNotFound(spec.to_string())),
        [id] => Ok((*id, repo.load_snapshot(id)?)),
        many => Err(OpError::AmbiguousSnapshot {
            prefix: spec.to_string(),
            matches: many.iter().map(|i| i.short()).collect::<Vec<_>>().join(", "),
        }),
    }
}

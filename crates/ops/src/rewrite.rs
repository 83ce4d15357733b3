//! `tag` and `rewrite`: new snapshots made from existing ones.
//!
//! Snapshots are immutable, so changing one means writing a new snapshot that names the
//! old one in `original` (which hides the old one from listings) and, for `tag` always and
//! for `rewrite --forget`, removing the old one with a tombstone. The new snapshot is
//! written before the old one is removed, so no moment exists without either.
//!
//! `rewrite` purges paths (a secret backed up by mistake): it walks the snapshot's tree
//! with paths, leaves out what the patterns match and stores the directories that changed
//! as new trees. Unchanged directories give the same tree ids (trees are canonical), so
//! they cost nothing.

use std::path::Path;

use serde::Serialize;

use super::error::Result;
use super::forget::remove_snapshots;
use super::pattern::PatternSet;
use super::walk::{Flow, Visit, subtree, walk_tree};
use vault_format::SnapshotId;
use vault_format::snapshot::Snapshot;
use vault_format::tree::{Node, Tree};
use vault_repo::{IndexedRepository, PackWriter};

/// How tags change.
#[derive(Clone, Debug, Default)]
pub struct TagChange {
    /// Tags to add.
    pub add: Vec<String>,
    /// Tags to remove.
    pub remove: Vec<String>,
    /// Replace all tags with these (`None`: keep, then add and remove).
    pub set: Option<Vec<String>>,
}

impl TagChange {
    /// Whether it changes nothing.
    pub fn is_empty(&self) -> bool {
        self.add.is_empty() && self.remove.is_empty() && self.set.is_none()
    }

    fn apply(&self, tags: &[String]) -> Vec<String> {
        let mut out: Vec<String> = self.set.clone().unwrap_or_else(|| tags.to_vec());
        for t in &self.add {
            if !out.contains(t) {
                out.push(t.clone());
            }
        }
        out.retain(|t| !self.remove.contains(t));
        out.sort();
        out.dedup();
        out
    }
}

/// One snapshot replaced by a new one.
#[derive(Clone, Debug, Serialize)]
pub struct Replaced {
    /// The snapshot replaced.
    pub original: SnapshotId,
    /// `None` in a dry run.
    pub new: Option<SnapshotId>,
    /// Entries left out (rewrite).
    pub removed_entries: u64,
    /// Up to 100 of the paths left out (rewrite).
    pub removed_paths: Vec<String>,
}

/// What tag or rewrite did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct RewriteReport {
    /// Snapshots replaced.
    pub replaced: Vec<Replaced>,
    /// Snapshots that needed no change.
    pub unchanged: u64,
    /// The tombstone of the replaced snapshots, when they were removed.
    pub tombstone: Option<vault_format::Id>,
}

/// Changes the tags of `snapshots`: each changed one is replaced, and the old ones are
/// removed. The caller has announced itself as a writer.
pub fn tag(
    repo: &IndexedRepository,
    snapshots: &[(SnapshotId, Snapshot)],
    change: &TagChange,
    dry_run: bool,
) -> Result<RewriteReport> {
    let mut report = RewriteReport::default();
    let mut new_snaps = Vec::new();
    for (id, s) in snapshots {
        let tags = change.apply(&s.tags);
        let mut old = s.tags.clone();
        old.sort();
        old.dedup();
        if tags == old {
            report.unchanged += 1;
            continue;
        }
        new_snaps.push((*id, Snapshot { tags, original: Some(*id), ..s.clone() }, 0, Vec::new()));
    }
    commit(repo, new_snaps, dry_run, &mut report)?;
    finish(repo, &mut report, dry_run, true, "tag")?;
    Ok(report)
}

/// Seals again, with the current key epoch, every snapshot of `snapshots` an older epoch
/// sealed (`prune --reencrypt`): each is replaced by the same snapshot under a new id, and
/// the old ones are removed. The caller has announced itself as a writer.
pub fn reencrypt_snapshots(
    repo: &IndexedRepository,
    snapshots: &[(SnapshotId, Snapshot)],
    dry_run: bool,
) -> Result<RewriteReport> {
    let mut report = RewriteReport::default();
    let mut new_snaps = Vec::new();
    for (id, s) in snapshots {
        if repo.repo().snapshot_sealed_before_current_epoch(id)? {
            new_snaps.push((*id, Snapshot { original: Some(*id), ..s.clone() }, 0, Vec::new()));
        } else {
            report.unchanged += 1;
        }
    }
    commit(repo, new_snaps, dry_run, &mut report)?;
    finish(repo, &mut report, dry_run, true, "reencrypt")?;
    Ok(report)
}

/// Options of [`rewrite`].
#[derive(Clone, Debug, Default)]
pub struct RewriteOptions {
    /// Patterns of paths to leave out (as for restore: paths inside the snapshot).
    pub excludes: Vec<String>,
    /// Remove the original snapshots (else they stay stored, hidden from listings).
    pub forget: bool,
    /// Report what would change, store nothing.
    pub dry_run: bool,
}

/// Paths listed per rewritten snapshot (the count covers all).
const MAX_LISTED: usize = 100;

/// Writes each snapshot again without the paths `opts.excludes` match. The caller has
/// announced itself as a writer.
pub fn rewrite(
    repo: &IndexedRepository,
    snapshots: &[(SnapshotId, Snapshot)],
    opts: &RewriteOptions,
) -> Result<RewriteReport> {
    let excludes = PatternSet::new(&opts.excludes)?;
    let writer = if opts.dry_run { None } else { Some(repo.writer()?) };
    let mut report = RewriteReport::default();
    let mut new_snaps = Vec::new();
    for (id, s) in snapshots {
        let (tree, removed, paths) = filter_tree(repo, s.tree, &excludes, writer.as_ref())?;
        if removed == 0 {
            report.unchanged += 1;
            continue;
        }
        let mut tags = s.tags.clone();
        if !tags.iter().any(|t| t == "rewrite") {
            tags.push("rewrite".into());
        }
        new_snaps.push((*id, Snapshot { tree, tags, original: Some(*id), summary: None, ..s.clone() }, removed, paths));
    }
    // Trees (packs and index) first; the snapshots are the commit point.
    if let Some(w) = writer {
        w.finish()?;
    }
    commit(repo, new_snaps, opts.dry_run, &mut report)?;
    finish(repo, &mut report, opts.dry_run, opts.forget, "rewrite")?;
    Ok(report)
}

/// Writes the new snapshots (after storing again any blob a prune condemned meanwhile)
/// and records them in the report.
fn commit(
    repo: &IndexedRepository,
    new_snaps: Vec<(SnapshotId, Snapshot, u64, Vec<String>)>,
    dry_run: bool,
    report: &mut RewriteReport,
) -> Result<()> {
    if !dry_run {
        let roots: Vec<vault_format::BlobId> = new_snaps.iter().map(|(_, s, _, _)| s.tree).collect();
        crate::commit::keep_referenced_live(repo.repo(), repo.index(), &roots)?;
    }
    for (id, snap, removed, paths) in new_snaps {
        let new = if dry_run { None } else { Some(repo.save_snapshot(&snap)?) };
        report.replaced.push(Replaced { original: id, new, removed_entries: removed, removed_paths: paths });
    }
    Ok(())
}

fn finish(repo: &IndexedRepository, report: &mut RewriteReport, dry_run: bool, forget: bool, cmd: &str) -> Result<()> {
    if forget && !dry_run && !report.replaced.is_empty() {
        let old: Vec<SnapshotId> = report.replaced.iter().map(|r| r.original).collect();
        report.tombstone = Some(remove_snapshots(repo, &old, cmd)?);
    }
    Ok(())
}

/// The tree `root` without the entries `excludes` matches (stored through `writer`, or
/// only counted without one), the number of entries left out and some of their paths.
fn filter_tree(
    repo: &IndexedRepository,
    root: vault_format::BlobId,
    excludes: &PatternSet,
    writer: Option<&PackWriter>,
) -> Result<(vault_format::BlobId, u64, Vec<String>)> {
    // One frame per directory being rebuilt: its kept entries, and its node (the root has none).
    let mut frames: Vec<(Option<Node>, Vec<Node>)> = vec![(None, Vec::new())];
    let mut removed = 0u64;
    let mut paths = Vec::new();
    let save = |nodes: Vec<Node>| -> Result<Option<vault_format::BlobId>> {
        match writer {
            Some(w) => Ok(Some(w.save_tree(Tree { nodes })?)),
            None => Ok(None),
        }
    };
    walk_tree(repo, root, "", &mut |v| match v {
        Visit::Entry { path, item } => {
            if excludes.matches(Path::new(path)) {
                removed += 1;
                if paths.len() < MAX_LISTED {
                    paths.push(path.to_string());
                }
                return Ok(Flow::Skip);
            }
            match subtree(item) {
                Some(_) => frames.push((Some(item.clone()), Vec::new())),
                None => {
                    if let Some(f) = frames.last_mut() {
                        f.1.push(item.clone());
                    }
                }
            }
            Ok(Flow::Continue)
        }
        Visit::Leave => {
            if let Some((Some(mut dir), nodes)) = frames.pop() {
                if let Some(id) = save(nodes)? {
                    dir.subtree = Some(id);
                }
                if let Some(parent) = frames.last_mut() {
                    parent.1.push(dir);
                }
            }
            Ok(Flow::Continue)
        }
    })?;
    let nodes = frames.pop().map(|f| f.1).unwrap_or_default();
    let tree = save(nodes)?.unwrap_or(root);
    Ok((tree, removed, paths))
}

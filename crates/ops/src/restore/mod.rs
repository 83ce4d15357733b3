//! `restore`: recreate a snapshot (or part of it) in a directory.
//!
//! The tree is walked once into a plan; directories and special files are created first,
//! regular files are then written pack by pack (`fill.rs`: each pack's blobs go into
//! every file that needs them), hard links are made, and directory metadata is applied
//! last, deepest first, so that writing into a directory does not change its restored
//! mtime. Every step goes through the target's open descriptor (`beneath.rs`) and, for
//! metadata, the entry's own: another user who can write in the target cannot redirect
//! a step outside it by swapping a directory for a link. Every blob is verified against
//! its id after decryption; a file whose data fails is reported and the rest of the
//! restore goes on.
//!
//! Into a target that holds files already (`overwrite`), each file is decided first
//! (`existing.rs`), so that only the data still missing is fetched: rerun with
//! `IfChanged`, an interrupted restore redoes only what it had not finished.

mod beneath;
mod existing;
mod fill;
mod plan;
mod write;

use std::collections::HashMap;
use std::ffi::OsStr;
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use parking_lot::Mutex;
use rayon::prelude::*;
use serde::Serialize;

use super::error::{OpError, Result};
use super::fsmeta::{ApplyOptions, XattrFilter, apply_at, apply_to_open, is_privileged_xattr};
use super::ls::{Located, locate};
use super::pattern::PatternSet;
use super::progress::Progress;
use beneath::Beneath;
pub use existing::Overwrite;
use existing::{FileAction, Wanted, decide_file, keep_other, verify_file};
use fill::{FileJob, Filler, Finished, Opening, first_location};
use plan::{Plan, Selector, plan_leaf, plan_tree};
use vault_format::BlobId;
use vault_format::tree::NodeKind;
use vault_repo::IndexedRepository;
use write::{WriteError, create_special};

#[derive(Clone, Debug, Default)]
/// What to restore where.
pub struct RestoreOptions {
    /// Directory to restore into.
    pub target: PathBuf,
    /// Path inside the snapshot to restore (`/` or empty for everything).
    pub subpath: String,
    /// Patterns of entries to restore (empty: all).
    pub includes: Vec<String>,
    /// Patterns of entries to leave out.
    pub excludes: Vec<String>,
    /// Restore uid/gid (needs root).
    pub ownership: bool,
    /// Restore into a target that another user owns or can write to (or whose path runs
    /// through such a directory without the sticky bit): they could swap directories
    /// for links while the restore runs.
    pub insecure_target: bool,
    /// Do not create device nodes, FIFOs and sockets.
    pub no_special: bool,
    /// Clear setuid and setgid bits of files.
    pub no_setuid: bool,
    /// Which extended attributes to set.
    pub xattrs: XattrFilter,
    /// What to do with entries the target holds already; `None`: the target must be
    /// empty or new.
    pub overwrite: Option<Overwrite>,
    /// Remove entries the snapshot does not have from the directories restored (never
    /// entries that an exclude pattern matches).
    pub delete: bool,
    /// Decide and count, change nothing.
    pub dry_run: bool,
    /// Read every file back after writing it and compare it with the snapshot.
    pub verify: bool,
}

/// Objects a restore made that give privileges: named in its summary, so that a root
/// restore of someone else's snapshot does not plant them unnoticed.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Privileged {
    /// Character and block devices created.
    pub devices: u64,
    /// Files restored with the setuid or setgid bit.
    pub setuid_files: u64,
    /// Files given `security.capability`.
    pub capabilities: u64,
    /// Entries given `trusted.*` attributes.
    pub trusted_xattrs: u64,
    /// Devices, FIFOs and sockets not created (`no_special`).
    pub special_skipped: u64,
    /// Privileged attributes left out (not included by the xattr filter).
    pub xattrs_skipped: u64,
}

#[derive(Clone, Debug, Serialize)]
/// An entry that could not be restored.
pub struct RestoreProblem {
    /// Its path below the target.
    pub path: PathBuf,
    /// What went wrong.
    pub message: String,
}

#[derive(Clone, Debug, Default, Serialize)]
/// What a restore wrote.
pub struct RestoreReport {
    /// Files written (created, replaced or updated).
    pub files: u64,
    /// Of those, files updated in place: only the chunks that differed were written.
    pub files_updated: u64,
    /// Files and other entries the target held already and that were left as they were.
    pub unchanged: u64,
    /// Entries removed from the target (`delete`, and entries replaced by another type).
    pub deleted: u64,
    /// Files written or kept that were read back and found equal to the snapshot
    /// (`verify`).
    pub verified: u64,
    /// Nothing was changed (`dry_run`): the counts say what a restore would do.
    pub dry_run: bool,
    /// Directories created.
    pub dirs: u64,
    /// Symlinks, devices, FIFOs and sockets created.
    pub other: u64,
    /// Hard links made.
    pub hard_links: u64,
    /// File bytes written.
    pub bytes: u64,
    /// File bytes the target held already.
    pub bytes_unchanged: u64,
    /// Entries that could not be restored.
    pub problems: Vec<RestoreProblem>,
    /// Problems that are damaged repository data (as opposed to, say, a failed chown).
    pub integrity_errors: u64,
    /// Files whose data the storage failed to deliver (not damage: a rerun may succeed).
    pub storage_errors: u64,
    /// What it made that gives privileges, and what it left out.
    pub privileged: Privileged,
}

/// Restores the snapshot tree `tree` (named `snapshot_label` in errors) as `opts` say.
pub fn restore(
    repo: &IndexedRepository,
    tree: BlobId,
    snapshot_label: &str,
    opts: &RestoreOptions,
    progress: &dyn Progress,
) -> Result<RestoreReport> {
    let (created, target) = prepare_target(&opts.target, opts)?;
    let result = restore_into(repo, &target, tree, snapshot_label, opts, progress);
    if result.is_err() && created {
        // A restore that failed as a whole leaves no empty target behind (a target that
        // holds something stays).
        let _ = std::fs::remove_dir(&opts.target);
    }
    result
}

/// What a restore problem is about, for the exit code.
#[derive(Clone, Copy)]
enum ProblemClass {
    Damage,
    Storage,
    Local,
}

fn restore_into(
    repo: &IndexedRepository,
    beneath: &Beneath,
    tree: BlobId,
    snapshot_label: &str,
    opts: &RestoreOptions,
    progress: &dyn Progress,
) -> Result<RestoreReport> {
    let target = &opts.target;
    let sel = Selector { includes: PatternSet::new(&opts.includes)?, excludes: PatternSet::new(&opts.excludes)? };
    if opts.delete && !sel.includes.is_empty() {
        return Err(OpError::Usage("--delete cannot be combined with --include".into()));
    }
    let mut plan = Plan::new(opts.delete);
    let mut seen_inodes: HashMap<(u64, u64), PathBuf> = HashMap::new();
    match locate(repo, tree, &opts.subpath, snapshot_label)? {
        Located::Dir { tree, .. } => plan_tree(repo, tree, target, &sel, &mut plan, &mut seen_inodes)?,
        Located::File(node) => {
            let name = OsStr::from_bytes(&node.name).to_owned();
            let snap_path = format!("/{}", node.name_lossy());
            if sel.selected(&snap_path, false) {
                plan_leaf(target.join(name), node, &mut plan, &mut seen_inodes);
            }
        }
    }
    let mut privileged = Privileged::default();
    if opts.no_special {
        privileged.special_skipped = plan.special.iter().filter(|(_, n)| n.kind != NodeKind::Symlink).count() as u64;
        plan.special.retain(|(_, n)| n.kind == NodeKind::Symlink);
    }
    count_privileged(&plan, opts, &mut privileged);

    let report = Mutex::new(RestoreReport { dry_run: opts.dry_run, ..RestoreReport::default() });
    let problem = |path: &Path, message: String, class: ProblemClass| {
        progress.warn(path, &message);
        let mut r = report.lock();
        match class {
            ProblemClass::Damage => r.integrity_errors += 1,
            ProblemClass::Storage => r.storage_errors += 1,
            ProblemClass::Local => {}
        }
        r.problems.push(RestoreProblem { path: path.to_path_buf(), message });
    };
    let apply = ApplyOptions { ownership: opts.ownership, clear_setuid: opts.no_setuid, xattrs: &opts.xattrs };
    let overwrite = opts.overwrite;
    let dry = opts.dry_run;
    let wanted = Wanted { ownership: opts.ownership, clear_setuid: opts.no_setuid };

    // Every directory is this user's alone (0700) until all it holds is in place; then
    // the snapshot's modes are applied deepest first. So no other user can swap a
    // directory on the way for a link while paths below it are worked on.
    let mut dirs_made = 0u64;
    for (path, _) in &plan.dirs {
        match make_dir(beneath, path, overwrite, dry) {
            Ok(DirOutcome { created, replaced }) => {
                dirs_made += u64::from(created);
                report.lock().deleted += u64::from(replaced);
            }
            Err(e) => problem(path, e, ProblemClass::Local),
        }
    }

    // Each file is decided before any data is fetched, so that only the data still
    // missing is read from the repository. Decisions name the plan's files by place:
    // moving the nodes into a list of their own (which rayon's collection from a filter
    // holds twice on the way) cost 60 MB more at the peak for 100,000 files.
    let mut files = std::mem::take(&mut plan.files);
    let decided: Vec<Option<(FileAction, Vec<write::Piece>)>> = files
        .par_iter()
        .map(|(path, node)| match decide_file(repo, beneath, path, node, overwrite, wanted) {
            Ok(action) => {
                let needed = action.needed(node);
                Some((action, needed))
            }
            Err(e) => {
                problem(path, format!("cannot compare with the file there: {e}"), ProblemClass::Local);
                None
            }
        })
        .collect();
    let mut jobs: Vec<(usize, FileAction, Vec<write::Piece>)> =
        decided.into_iter().enumerate().filter_map(|(f, d)| d.map(|(action, needed)| (f, action, needed))).collect();
    progress.set_totals(jobs.len() as u64, jobs.iter().map(|(f, _, _)| files[*f].1.size).sum());
    jobs.sort_by_cached_key(|(_, _, needed)| first_location(repo, needed));
    if !opts.verify {
        // The pieces to write are decided; only `--verify` reads the content lists again.
        files.iter_mut().for_each(|(_, node)| node.content = Vec::new());
    }

    for (path, node) in &plan.special {
        // Without `overwrite` the target was empty: nothing to look at.
        let found = if overwrite.is_some() { beneath.lstat(path) } else { Ok(None) };
        match found {
            Ok(Some(m)) if keep_other(beneath, path, &m, node, overwrite) => {
                report.lock().unchanged += 1;
                continue;
            }
            Ok(Some(_)) if !dry => {
                if let Err(e) = beneath.remove(path) {
                    problem(path, format!("cannot remove what is there: {e}"), ProblemClass::Local);
                    continue;
                }
            }
            Ok(_) => {}
            Err(e) => {
                problem(path, format!("cannot look at what is there: {e}"), ProblemClass::Local);
                continue;
            }
        }
        report.lock().other += 1;
        if dry {
            continue;
        }
        let made = beneath.at(path).and_then(|at| create_special(&at, node).map(|()| at));
        match made {
            Ok(at) => {
                for p in apply_at(at.dir.as_fd(), &at.name, node, apply) {
                    problem(path, p, ProblemClass::Local);
                }
            }
            Err(e) => problem(path, format!("cannot create {:?}: {e}", node.kind), ProblemClass::Local),
        }
    }

    let finish = |i: usize, result: Finished| {
        let (f, action, needed) = &jobs[i];
        let (path, node) = &files[*f];
        let written: u64 = needed.iter().map(|(_, _, len)| len).sum();
        progress.add_bytes(node.size.saturating_sub(written));
        progress.add_files(1);
        match result {
            Ok(file) => {
                {
                    let mut r = report.lock();
                    match action {
                        FileAction::Keep { .. } => {
                            r.unchanged += 1;
                            r.bytes_unchanged += node.size;
                        }
                        FileAction::Update { .. } => {
                            r.files += 1;
                            r.files_updated += 1;
                            r.bytes += written;
                            r.bytes_unchanged += node.size.saturating_sub(written);
                        }
                        FileAction::Replace | FileAction::Create => {
                            r.files += 1;
                            r.bytes += written;
                            r.deleted += u64::from(*action == FileAction::Replace);
                        }
                    }
                }
                if dry {
                    return;
                }
                let (metadata, verify) = match action {
                    FileAction::Keep { metadata, equal } => (*metadata, opts.verify && *equal),
                    _ => (true, opts.verify),
                };
                if metadata {
                    let problems = match file {
                        Some(f) => apply_to_open(&f, node, apply),
                        // Kept as it was: changed by name in its directory, not read.
                        None => match beneath.at(path) {
                            Ok(at) => apply_at(at.dir.as_fd(), &at.name, node, apply),
                            Err(e) => vec![format!("cannot open its directory: {e}")],
                        },
                    };
                    for p in problems {
                        problem(path, p, ProblemClass::Local);
                    }
                }
                if verify {
                    match verify_file(repo, beneath, path, node) {
                        Ok(()) => report.lock().verified += 1,
                        Err(m) => problem(path, m, ProblemClass::Local),
                    }
                }
            }
            Err(WriteError::Integrity(m)) => problem(path, m, ProblemClass::Damage),
            Err(WriteError::Storage(m)) => problem(path, m, ProblemClass::Storage),
            Err(WriteError::Io(m)) => problem(path, m, ProblemClass::Local),
        }
    };
    // Files whose data is all there (or not to be written) are done first; the others
    // are written pack by pack.
    let (writes, done): (Vec<usize>, Vec<usize>) =
        (0..jobs.len()).partition(|&i| !dry && !matches!(jobs[i].1, FileAction::Keep { .. }));
    done.into_par_iter().for_each(|i| finish(i, Ok(None)));
    let file_jobs: Vec<FileJob> = writes
        .iter()
        .map(|&i| {
            let (f, action, needed) = &jobs[i];
            let (path, node) = &files[*f];
            let opening = match action {
                FileAction::Replace => Opening::Replace,
                FileAction::Update { .. } => Opening::InPlace,
                _ => Opening::Create,
            };
            FileJob { path, size: node.size, pieces: needed, opening }
        })
        .collect();
    Filler::new(repo, beneath, &file_jobs, progress).run(&|k, result| finish(writes[k], result));

    for (path, first) in &plan.links {
        match link(beneath, path, first, overwrite, dry) {
            Ok(LinkOutcome::Unchanged) => report.lock().unchanged += 1,
            Ok(LinkOutcome::Linked) => report.lock().hard_links += 1,
            Err(e) => problem(path, e, ProblemClass::Local),
        }
    }
    if opts.delete {
        for listing in &plan.listings {
            match delete_extra(beneath, listing, &sel, dry) {
                Ok(n) => report.lock().deleted += n,
                Err((path, e)) => problem(&path, e, ProblemClass::Local),
            }
        }
    }
    if !dry {
        for (path, node) in plan.dirs.iter().rev() {
            match beneath.at(path) {
                Ok(at) => {
                    for p in apply_at(at.dir.as_fd(), &at.name, node, apply) {
                        problem(path, p, ProblemClass::Local);
                    }
                }
                Err(e) => problem(path, format!("cannot open its directory: {e}"), ProblemClass::Local),
            }
        }
    }
    let mut r = report.into_inner();
    r.dirs = dirs_made;
    r.privileged = privileged;
    Ok(r)
}

struct DirOutcome {
    created: bool,
    /// Something else was there and was removed.
    replaced: bool,
}

/// Creates the directory `path` (0700 until its metadata is applied), or takes the one
/// there.
fn make_dir(target: &Beneath, path: &Path, overwrite: Option<Overwrite>, dry: bool) -> Result<DirOutcome, String> {
    // Without `overwrite` the target was empty: nothing to look at.
    let found = match overwrite {
        Some(_) => target.lstat(path).map_err(|e| format!("cannot look at what is there: {e}"))?,
        None => None,
    };
    let mut replaced = false;
    if let Some(m) = found {
        if m.file_type().is_dir() {
            if !dry {
                target.chmod_dir(path, 0o700).map_err(|e| format!("cannot take the directory there: {e}"))?;
            }
            return Ok(DirOutcome { created: false, replaced: false });
        }
        if overwrite == Some(Overwrite::Never) {
            return Err("is not a directory in the target; kept (--overwrite never)".into());
        }
        if !dry {
            target.remove(path).map_err(|e| format!("cannot remove what is there: {e}"))?;
        }
        replaced = true;
    }
    if !dry {
        target.mkdir(path, 0o700).map_err(|e| format!("cannot create directory: {e}"))?;
    }
    Ok(DirOutcome { created: true, replaced })
}

enum LinkOutcome {
    Unchanged,
    Linked,
}

/// Makes `path` a hard link to `first`.
fn link(
    target: &Beneath,
    path: &Path,
    first: &Path,
    overwrite: Option<Overwrite>,
    dry: bool,
) -> Result<LinkOutcome, String> {
    use std::os::unix::fs::MetadataExt;
    let found = match overwrite {
        Some(_) => target.lstat(path).map_err(|e| format!("cannot look at what is there: {e}"))?,
        None => None,
    };
    if let Some(m) = found {
        let same = target.lstat(first).ok().flatten().is_some_and(|f| f.ino() == m.ino() && f.dev() == m.dev());
        if same || overwrite == Some(Overwrite::Never) {
            return Ok(LinkOutcome::Unchanged);
        }
        if !dry {
            target.remove(path).map_err(|e| format!("cannot remove what is there: {e}"))?;
        }
    }
    if !dry {
        target.hard_link(first, path).map_err(|e| format!("cannot create hard link to {}: {e}", first.display()))?;
    }
    Ok(LinkOutcome::Linked)
}

/// Removes the entries of a restored directory that the snapshot does not have, except
/// those an exclude pattern matches. Returns how many it removed.
fn delete_extra(
    target: &Beneath,
    listing: &plan::Listing,
    sel: &Selector,
    dry: bool,
) -> Result<u64, (PathBuf, String)> {
    let names = match target.names(&listing.dest) {
        Ok(names) => names,
        // In a dry run the directory may not exist yet.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err((listing.dest.clone(), format!("cannot list for --delete: {e}"))),
    };
    let mut removed = 0;
    for name in names {
        if listing.names.contains(&name) {
            continue;
        }
        let snap_path = format!("{}/{}", listing.snap_path, name.to_string_lossy());
        if sel.excludes.matches(Path::new(&snap_path)) {
            continue;
        }
        let path = listing.dest.join(&name);
        if !dry {
            target.remove(&path).map_err(|e| (path.clone(), format!("cannot remove: {e}")))?;
        }
        removed += 1;
    }
    Ok(removed)
}

fn count_privileged(plan: &Plan, opts: &RestoreOptions, p: &mut Privileged) {
    let nodes = plan.dirs.iter().chain(&plan.files).chain(&plan.special).map(|(_, n)| n);
    for n in nodes {
        if matches!(n.kind, NodeKind::CharDev | NodeKind::BlockDev) {
            p.devices += 1;
        }
        if n.kind == NodeKind::File && n.mode & 0o6000 != 0 && !opts.no_setuid {
            p.setuid_files += 1;
        }
        for (k, _) in &n.xattrs {
            let set = opts.xattrs.allows(k);
            if k == b"security.capability" && set {
                p.capabilities += 1;
            } else if k.starts_with(b"trusted.") && set {
                p.trusted_xattrs += 1;
            } else if !set && is_privileged_xattr(k) {
                p.xattrs_skipped += 1;
            }
        }
    }
}

/// Whether other users could swap the target, or anything on the path to it, during the
/// restore: a directory on the path that another user (other than root) owns, or that
/// others may write to without the sticky bit; the target itself writable by others.
fn insecure_path(target: &Path) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let me = nix::unistd::geteuid().as_raw();
    let abs = std::path::absolute(target).ok()?;
    let mut dir = Some(abs.as_path());
    let mut is_target = true;
    while let Some(d) = dir {
        // A link planted by another user (in /tmp, say) would lead the restore elsewhere.
        if let Ok(l) = std::fs::symlink_metadata(d)
            && l.file_type().is_symlink()
            && l.uid() != me
            && l.uid() != 0
        {
            return Some(format!("{} is a symbolic link of user {}", d.display(), l.uid()));
        }
        if let Ok(m) = std::fs::metadata(d) {
            let mode = m.mode();
            if m.uid() != me && m.uid() != 0 {
                return Some(format!("{} belongs to user {}", d.display(), m.uid()));
            }
            let writable = mode & 0o022 != 0;
            if writable && (is_target || mode & 0o1000 == 0) {
                return Some(format!("{} can be written by other users", d.display()));
            }
        }
        is_target = false;
        dir = d.parent();
    }
    None
}

/// Checks the target, creates it if needed (not in a dry run) and opens it; `true` when
/// it was created.
fn prepare_target(target: &Path, opts: &RestoreOptions) -> Result<(bool, Beneath)> {
    let err = |reason: String| OpError::Target { path: target.to_path_buf(), reason };
    if !opts.insecure_target
        && let Some(why) = insecure_path(target)
    {
        return Err(err(format!(
            "{why}: they could redirect the restore while it runs; choose another target or pass --insecure-target"
        )));
    }
    let created = match std::fs::read_dir(target) {
        Ok(mut rd) => {
            if opts.overwrite.is_none() && rd.next().is_some() {
                return Err(err("is not empty; restore into an empty or new directory, or choose what happens \
                     to the files there with --overwrite always|if-changed|if-newer|never"
                    .into()));
            }
            false
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && opts.dry_run => {
            return Ok((false, Beneath::missing(target)));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(target)
                .map_err(|e| err(format!("cannot create: {e}")))?;
            true
        }
        Err(e) => return Err(err(e.to_string())),
    };
    let beneath = Beneath::open(target).map_err(|e| err(format!("cannot open: {e}")))?;
    if opts.dry_run {
        return Ok((false, beneath));
    }
    // Prove it is writable before doing any work: a new file of a random name, never
    // through a link.
    let mut tag = [0u8; 8];
    getrandom::fill(&mut tag).map_err(|e| err(e.to_string()))?;
    let probe = target.join(format!(".vault-restore-probe-{}", hex::encode(tag)));
    beneath.create_file(&probe).and_then(|_| beneath.remove(&probe)).map_err(|e| err(format!("not writable: {e}")))?;
    Ok((created, beneath))
}

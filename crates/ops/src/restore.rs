//! `restore`: recreate a snapshot (or part of it) in an empty directory.
//!
//! The tree is walked once into a plan; directories and special files are created first,
//! regular files are then written in parallel, hard links are made, and directory
//! metadata is applied last, deepest first, so that writing into a directory does not
//! change its restored mtime. Every blob is verified against its id after decryption; a
//! file whose data fails is reported and the rest of the restore goes on.

use std::collections::{HashMap, HashSet, VecDeque};
use std::ffi::OsStr;
use std::fs::OpenOptions;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use parking_lot::Mutex;

use nix::sys::stat::{Mode, SFlag, mknod};
use rayon::prelude::*;
use serde::Serialize;

use super::error::{OpError, Result};
use super::fsmeta::{ApplyOptions, XattrFilter, apply_metadata, is_privileged_xattr};
use super::ls::{Located, locate};
use super::pattern::PatternSet;
use super::progress::Progress;
use super::walk::{Flow, Visit, subtree, walk_tree};
use vault_format::pack::BlobKind;
use vault_format::tree::{ContentItem, Node, NodeKind};
use vault_format::{BlobId, PackId};
use vault_repo::{IndexedRepository, ObjectBytes, RepoError};

#[derive(Clone, Debug, Default)]
pub struct RestoreOptions {
    pub target: PathBuf,
    /// Path inside the snapshot to restore (`/` or empty for everything).
    pub subpath: String,
    pub includes: Vec<String>,
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
pub struct RestoreProblem {
    pub path: PathBuf,
    pub message: String,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct RestoreReport {
    pub files: u64,
    pub dirs: u64,
    pub other: u64,
    pub hard_links: u64,
    pub bytes: u64,
    pub problems: Vec<RestoreProblem>,
    /// Problems that are damaged repository data (as opposed to, say, a failed chown).
    pub integrity_errors: u64,
    /// Files whose data the storage failed to deliver (not damage: a rerun may succeed).
    pub storage_errors: u64,
    /// What it made that gives privileges, and what it left out.
    pub privileged: Privileged,
}

struct Plan {
    /// Directories in creation order (parents first), with their nodes.
    dirs: Vec<(PathBuf, Node)>,
    files: Vec<(PathBuf, Node)>,
    links: Vec<(PathBuf, PathBuf)>,
    special: Vec<(PathBuf, Node)>,
}

struct Selector {
    includes: PatternSet,
    excludes: PatternSet,
}

pub fn total_bytes(plan_files: &[(PathBuf, Node)]) -> u64 {
    plan_files.iter().map(|(_, n)| n.size).sum()
}

/// Restores the snapshot tree `tree` (named `snapshot_label` in errors) as `opts` say.
pub fn restore(
    repo: &IndexedRepository,
    tree: BlobId,
    snapshot_label: &str,
    opts: &RestoreOptions,
    progress: &dyn Progress,
) -> Result<RestoreReport> {
    let target = &opts.target;
    prepare_target(target, opts.insecure_target)?;
    let sel = Selector { includes: PatternSet::new(&opts.includes)?, excludes: PatternSet::new(&opts.excludes)? };
    let mut plan = Plan { dirs: Vec::new(), files: Vec::new(), links: Vec::new(), special: Vec::new() };
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
    progress.set_totals(plan.files.len() as u64, total_bytes(&plan.files));
    let mut privileged = Privileged::default();
    if opts.no_special {
        privileged.special_skipped = plan.special.iter().filter(|(_, n)| n.kind != NodeKind::Symlink).count() as u64;
        plan.special.retain(|(_, n)| n.kind == NodeKind::Symlink);
    }
    count_privileged(&plan, opts, &mut privileged);

    let report = Mutex::new(RestoreReport::default());
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

    // Every directory is this user's alone (0700) until all it holds is in place; then
    // the snapshot's modes are applied deepest first. So no other user can swap a
    // directory on the way for a link while paths below it are worked on.
    for (path, _) in &plan.dirs {
        if let Err(e) = std::fs::DirBuilder::new().mode(0o700).create(path) {
            problem(path, format!("cannot create directory: {e}"), ProblemClass::Local);
        }
    }
    for (path, node) in &plan.special {
        if let Err(e) = create_special(path, node) {
            problem(path, format!("cannot create {:?}: {e}", node.kind), ProblemClass::Local);
            continue;
        }
        for p in apply_metadata(path, node, apply) {
            problem(path, p, ProblemClass::Local);
        }
    }
    let source = BlobSource::new(repo, &mut plan.files);
    plan.files.par_iter().for_each(|(path, node)| {
        match write_file(&source, path, node, progress) {
            Ok(()) => {
                for p in apply_metadata(path, node, apply) {
                    problem(path, p, ProblemClass::Local);
                }
            }
            Err(WriteError::Integrity(m)) => problem(path, m, ProblemClass::Damage),
            Err(WriteError::Storage(m)) => problem(path, m, ProblemClass::Storage),
            Err(WriteError::Io(m)) => problem(path, m, ProblemClass::Local),
        }
        progress.add_files(1);
    });
    for (path, first) in &plan.links {
        if let Err(e) = std::fs::hard_link(first, path) {
            problem(path, format!("cannot create hard link to {}: {e}", first.display()), ProblemClass::Local);
        }
    }
    for (path, node) in plan.dirs.iter().rev() {
        for p in apply_metadata(path, node, apply) {
            problem(path, p, ProblemClass::Local);
        }
    }
    let mut r = report.into_inner();
    r.files = plan.files.len() as u64;
    r.dirs = plan.dirs.len() as u64;
    r.other = plan.special.len() as u64;
    r.hard_links = plan.links.len() as u64;
    r.bytes = total_bytes(&plan.files);
    r.privileged = privileged;
    Ok(r)
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

fn prepare_target(target: &Path, insecure_ok: bool) -> Result<()> {
    let err = |reason: String| OpError::Target { path: target.to_path_buf(), reason };
    if !insecure_ok && let Some(why) = insecure_path(target) {
        return Err(err(format!(
            "{why}: they could redirect the restore while it runs; choose another target or pass --insecure-target"
        )));
    }
    match std::fs::read_dir(target) {
        Ok(mut rd) => {
            if rd.next().is_some() {
                return Err(err("is not empty; restore only into an empty or new directory".into()));
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(target)
                .map_err(|e| err(format!("cannot create: {e}")))?;
        }
        Err(e) => return Err(err(e.to_string())),
    }
    // Prove it is writable before doing any work: a new file of a random name, never
    // through a link.
    let mut tag = [0u8; 8];
    getrandom::fill(&mut tag).map_err(|e| err(e.to_string()))?;
    let probe = target.join(format!(".vault-restore-probe-{}", hex::encode(tag)));
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .custom_flags(libc::O_NOFOLLOW)
        .mode(0o600)
        .open(&probe)
        .and_then(|_| std::fs::remove_file(&probe))
        .map_err(|e| err(format!("not writable: {e}")))
}

impl Selector {
    /// `inherited`: an ancestor directory matched an include pattern.
    fn selected(&self, snap_path: &str, inherited: bool) -> bool {
        let p = Path::new(snap_path);
        !self.excludes.matches(p) && (self.includes.is_empty() || inherited || self.includes.matches(p))
    }
}

/// A directory of the plan whose entries are being planned.
struct OpenDir {
    /// Its place in `plan.dirs`.
    pos: usize,
    dest: PathBuf,
    /// It, or an ancestor, matched an include pattern: everything below is selected.
    included: bool,
    /// Something below it was selected.
    any: bool,
}

/// Plans the entries below `tree` into `target`. A directory stays in the plan when it
/// matched an include pattern or holds something selected (or nothing is included
/// explicitly, so everything not excluded is).
fn plan_tree(
    repo: &IndexedRepository,
    tree: BlobId,
    target: &Path,
    sel: &Selector,
    plan: &mut Plan,
    seen: &mut HashMap<(u64, u64), PathBuf>,
) -> Result<()> {
    let mut open: Vec<OpenDir> = Vec::new();
    walk_tree(repo, tree, "", &mut |v| {
        let (snap_path, node) = match v {
            Visit::Leave => {
                if let Some(d) = open.pop() {
                    let keep = d.included || d.any || sel.includes.is_empty();
                    if keep {
                        if let Some(parent) = open.last_mut() {
                            parent.any = true;
                        }
                    } else {
                        // Nothing below was kept, so this directory is the plan's last.
                        plan.dirs.truncate(d.pos);
                    }
                }
                return Ok(Flow::Continue);
            }
            Visit::Entry { path, item } => (path, item),
        };
        let p = Path::new(snap_path);
        if sel.excludes.matches(p) {
            return Ok(Flow::Skip);
        }
        let (inherited, parent_dest) = match open.last() {
            Some(d) => (d.included, d.dest.as_path()),
            None => (false, target),
        };
        let dest = parent_dest.join(OsStr::from_bytes(&node.name));
        if subtree(node).is_some() {
            open.push(OpenDir {
                pos: plan.dirs.len(),
                dest: dest.clone(),
                included: inherited || sel.includes.matches(p),
                any: false,
            });
            plan.dirs.push((dest, node.clone()));
            return Ok(Flow::Continue);
        }
        if sel.selected(snap_path, inherited) {
            plan_leaf(dest, node.clone(), plan, seen);
            if let Some(parent) = open.last_mut() {
                parent.any = true;
            }
        }
        Ok(Flow::Continue)
    })
}

fn plan_leaf(dest: PathBuf, node: Node, plan: &mut Plan, seen: &mut HashMap<(u64, u64), PathBuf>) {
    if node.links > 1 && node.kind != NodeKind::Dir {
        if let Some(first) = seen.get(&(node.device, node.inode)) {
            plan.links.push((dest, first.clone()));
            return;
        }
        seen.insert((node.device, node.inode), dest.clone());
    }
    match node.kind {
        NodeKind::File => plan.files.push((dest, node)),
        _ => plan.special.push((dest, node)),
    }
}

fn create_special(path: &Path, node: &Node) -> std::io::Result<()> {
    let perm = Mode::from_bits_truncate(node.mode & 0o777);
    let nix_err = |e: nix::Error| std::io::Error::from_raw_os_error(e as i32);
    match node.kind {
        NodeKind::Symlink => std::os::unix::fs::symlink(OsStr::from_bytes(&node.target), path),
        NodeKind::Fifo => nix::unistd::mkfifo(path, perm).map_err(nix_err),
        NodeKind::CharDev => mknod(path, SFlag::S_IFCHR, perm, node.rdev as libc::dev_t).map_err(nix_err),
        NodeKind::BlockDev => mknod(path, SFlag::S_IFBLK, perm, node.rdev as libc::dev_t).map_err(nix_err),
        // A socket cannot be meaningfully recreated; an inode of the same type keeps `ls` right.
        NodeKind::Socket => mknod(path, SFlag::S_IFSOCK, perm, 0).map_err(nix_err),
        NodeKind::File | NodeKind::Dir => Ok(()),
    }
}

enum WriteError {
    Integrity(String),
    /// The storage failed to deliver data (an error of the backend, not damage).
    Storage(String),
    Io(String),
}

/// What a restore problem is about, for the exit code.
#[derive(Clone, Copy)]
enum ProblemClass {
    Damage,
    Storage,
    Local,
}

fn write_file(source: &BlobSource<'_>, path: &Path, node: &Node, progress: &dyn Progress) -> Result<(), WriteError> {
    let io = |what: &str, e: std::io::Error| WriteError::Io(format!("{what}: {e}"));
    let f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .custom_flags(libc::O_NOFOLLOW)
        .mode(0o600)
        .open(path)
        .map_err(|e| io("cannot create file", e))?;
    // Where each data blob goes; a large file's blobs are fetched, verified and written
    // in parallel (pwrite to distinct offsets of one descriptor).
    let mut offset = 0u64;
    let mut pieces = Vec::with_capacity(node.content.len());
    for item in &node.content {
        if let ContentItem::Data { id, length } = item {
            pieces.push((offset, *id, u64::from(*length)));
        }
        offset += item.len();
    }
    // A piece that failed: its message, and whether the storage (not damage) failed.
    let write_piece = |&(offset, id, length): &(u64, BlobId, u64)| -> Result<Option<(String, bool)>, WriteError> {
        let r = match source.read(&id) {
            Ok(data) => {
                // A blob of another length than the content list says would shift or
                // overlap the pieces after it.
                let len = u32::try_from(length).unwrap_or(u32::MAX);
                if let Err(e) = vault_repo::indexed::check_item_length(&id, &data, len, None) {
                    return Err(WriteError::Integrity(format!("bytes {offset}..{}: {e}", offset + length)));
                }
                f.write_all_at(&data, offset).map_err(|e| io("cannot write", e))?;
                None
            }
            Err(e) => {
                let storage =
                    matches!(&e, RepoError::Backend(b) if b.kind != vault_repo::backend::BackendErrorKind::NotFound);
                Some((format!("bytes {offset}..{}: {e}", offset + length), storage))
            }
        };
        progress.add_bytes(length);
        Ok(r)
    };
    let results: Vec<Result<Option<(String, bool)>, WriteError>> = if pieces.len() > 2 {
        pieces.par_iter().map(write_piece).collect()
    } else {
        pieces.iter().map(write_piece).collect()
    };
    let mut damaged = Vec::new();
    let mut unread = Vec::new();
    for r in results {
        match r? {
            Some((m, true)) => unread.push(m),
            Some((m, false)) => damaged.push(m),
            None => {}
        }
    }
    // Holes (and damaged ranges) stay unallocated: extending the length creates them.
    f.set_len(node.size).map_err(|e| io("cannot set length", e))?;
    if !damaged.is_empty() {
        return Err(WriteError::Integrity(format!("data could not be restored, {}", damaged.join("; "))));
    }
    if !unread.is_empty() {
        return Err(WriteError::Storage(format!("data could not be read from storage, {}", unread.join("; "))));
    }
    Ok(())
}

/// Where restore gets blobs from. Packs that the plan needs mostly are downloaded once,
/// whole, and kept in a small LRU; blobs of other packs are fetched by range. A pack
/// that cannot be read whole falls back to range reads, so its intact blobs still restore.
struct BlobSource<'a> {
    repo: &'a IndexedRepository,
    whole: HashSet<PackId>,
    packs: Mutex<PackLru>,
    /// The index loaded again after a pack vanished (a prune moved its blobs meanwhile).
    fresh: std::sync::OnceLock<Option<IndexedRepository>>,
}

/// Packs kept in memory at once (16 MiB each by default).
const PACKS_IN_MEMORY: usize = 4;

/// A pack being fetched or fetched: `None` when it could not be read whole.
type PackSlot = Arc<OnceLock<Option<ObjectBytes>>>;

#[derive(Default)]
struct PackLru {
    slots: HashMap<PackId, PackSlot>,
    order: VecDeque<PackId>,
}

impl<'a> BlobSource<'a> {
    /// Also sorts `files` by where their data starts, so that each pack is used while it
    /// is in memory.
    fn new(repo: &'a IndexedRepository, files: &mut [(PathBuf, Node)]) -> Self {
        let first = |n: &Node| {
            n.content.iter().find_map(|c| match c {
                ContentItem::Data { id, .. } => repo.locate(BlobKind::Data, id).map(|l| (l.pack, l.offset)),
                ContentItem::Hole { .. } => None,
            })
        };
        files.sort_by_cached_key(|(_, n)| first(n));
        let mut needed: HashMap<PackId, u64> = HashMap::new();
        let mut seen: HashSet<BlobId> = HashSet::new();
        for (_, n) in files.iter() {
            for c in &n.content {
                if let ContentItem::Data { id, .. } = c
                    && seen.insert(*id)
                    && let Some(l) = repo.locate(BlobKind::Data, id)
                {
                    *needed.entry(l.pack).or_insert(0) += u64::from(l.length);
                }
            }
        }
        let sizes: HashMap<PackId, u64> =
            repo.index().packs().iter().chain(repo.condemned().packs()).map(|p| (p.id, p.size)).collect();
        let whole =
            needed.into_iter().filter(|(p, n)| sizes.get(p).is_some_and(|s| n * 2 >= *s)).map(|(p, _)| p).collect();
        BlobSource { repo, whole, packs: Mutex::default(), fresh: std::sync::OnceLock::new() }
    }

    fn pack(&self, kind: BlobKind, id: PackId) -> Option<ObjectBytes> {
        let slot = {
            let mut lru = self.packs.lock();
            let slot = lru.slots.entry(id).or_default().clone();
            if !lru.order.contains(&id) {
                lru.order.push_back(id);
                while lru.order.len() > PACKS_IN_MEMORY {
                    if let Some(old) = lru.order.pop_front() {
                        lru.slots.remove(&old);
                    }
                }
            }
            slot
        };
        slot.get_or_init(|| self.repo.read_pack(kind, &id).ok()).clone()
    }

    fn read(&self, id: &BlobId) -> Result<Vec<u8>, RepoError> {
        let loc = self.repo.locate(BlobKind::Data, id).ok_or_else(|| RepoError::BlobNotIndexed(id.to_hex()))?;
        if self.whole.contains(&loc.pack)
            && let Some(data) = self.pack(loc.kind, loc.pack)
        {
            return self.repo.open_blob_in(&loc, id, &data);
        }
        match self.repo.repo().read_blob_at(&loc, id) {
            Err(RepoError::Backend(e)) if e.kind == vault_repo::backend::BackendErrorKind::NotFound => {
                // A prune deleted the pack after this restore loaded the index: the index
                // as it is now says where the blob went (repacked, or kept for rescue).
                let fresh = self.fresh.get_or_init(|| IndexedRepository::load(self.repo.repo().clone()).ok());
                match fresh {
                    Some(f) => f.read_blob(BlobKind::Data, id),
                    None => Err(RepoError::Backend(e)),
                }
            }
            r => r,
        }
    }
}

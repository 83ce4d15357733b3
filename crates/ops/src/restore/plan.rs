//! The restore plan: the snapshot's tree walked once into the directories, files, hard
//! links and special files to create, with the names each directory holds (for
//! `--delete`).

use std::collections::{HashMap, HashSet};
use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use super::super::error::Result;
use super::super::pattern::PatternSet;
use super::super::walk::{Flow, Visit, subtree, walk_tree};
use vault_format::BlobId;
use vault_format::tree::{Node, NodeKind};
use vault_repo::IndexedRepository;

pub(super) struct Plan {
    /// Directories in creation order (parents first), with their nodes.
    pub(super) dirs: Vec<(PathBuf, Node)>,
    pub(super) files: Vec<(PathBuf, Node)>,
    pub(super) links: Vec<(PathBuf, PathBuf)>,
    pub(super) special: Vec<(PathBuf, Node)>,
    /// Every directory the plan restores whole (the target first): where it goes, its
    /// path in the snapshot, and (with `keep_names`) the names the snapshot gives it,
    /// excluded ones too.
    pub(super) listings: Vec<Listing>,
    /// Whether listings hold names (`--delete` needs them; 100,000 names are ~6 MB).
    keep_names: bool,
}

/// One directory's names in the snapshot.
pub(super) struct Listing {
    pub(super) dest: PathBuf,
    pub(super) snap_path: String,
    pub(super) names: HashSet<OsString>,
}

pub(super) struct Selector {
    pub(super) includes: PatternSet,
    pub(super) excludes: PatternSet,
}

impl Selector {
    /// `inherited`: an ancestor directory matched an include pattern.
    pub(super) fn selected(&self, snap_path: &str, inherited: bool) -> bool {
        let p = Path::new(snap_path);
        !self.excludes.matches(p) && (self.includes.is_empty() || inherited || self.includes.matches(p))
    }
}

impl Plan {
    /// An empty plan; `keep_names`: its listings record every directory's names.
    pub(super) fn new(keep_names: bool) -> Plan {
        Plan {
            dirs: Vec::new(),
            files: Vec::new(),
            links: Vec::new(),
            special: Vec::new(),
            listings: Vec::new(),
            keep_names,
        }
    }
}

/// A directory of the plan whose entries are being planned.
struct OpenDir {
    /// Its place in `plan.dirs`.
    pos: usize,
    dest: PathBuf,
    /// Its place in `plan.listings`.
    listing: usize,
    /// It, or an ancestor, matched an include pattern: everything below is selected.
    included: bool,
    /// Something below it was selected.
    any: bool,
}

/// Plans the entries below `tree` into `target`. A directory stays in the plan when it
/// matched an include pattern or holds something selected (or nothing is included
/// explicitly, so everything not excluded is).
pub(super) fn plan_tree(
    repo: &IndexedRepository,
    tree: BlobId,
    target: &Path,
    sel: &Selector,
    plan: &mut Plan,
    seen: &mut HashMap<(u64, u64), PathBuf>,
) -> Result<()> {
    let mut open: Vec<OpenDir> = Vec::new();
    plan.listings.push(Listing { dest: target.to_path_buf(), snap_path: String::new(), names: HashSet::new() });
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
                        plan.listings.truncate(d.listing);
                    }
                }
                return Ok(Flow::Continue);
            }
            Visit::Entry { path, item } => (path, item),
        };
        let name = OsStr::from_bytes(&node.name);
        let listing = open.last().map_or(0, |d| d.listing);
        if plan.keep_names {
            plan.listings[listing].names.insert(name.to_owned());
        }
        let p = Path::new(snap_path);
        if sel.excludes.matches(p) {
            return Ok(Flow::Skip);
        }
        let (inherited, parent_dest) = match open.last() {
            Some(d) => (d.included, d.dest.as_path()),
            None => (false, target),
        };
        let dest = parent_dest.join(name);
        if subtree(node).is_some() {
            open.push(OpenDir {
                pos: plan.dirs.len(),
                dest: dest.clone(),
                listing: plan.listings.len(),
                included: inherited || sel.includes.matches(p),
                any: false,
            });
            plan.listings.push(Listing { dest: dest.clone(), snap_path: snap_path.to_string(), names: HashSet::new() });
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

pub(super) fn plan_leaf(dest: PathBuf, node: Node, plan: &mut Plan, seen: &mut HashMap<(u64, u64), PathBuf>) {
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

//! `ls`: locating a path inside a snapshot, and listing what lies below it.

use vault_format::BlobId;
use vault_format::tree::Node;
use vault_repo::IndexedRepository;

use super::error::{OpError, Result};
use super::walk::{Flow, Visit, subtree, walk_tree};

/// Splits a snapshot path into its components (`/home/u` → `home`, `u`).
pub fn components(path: &str) -> Vec<&str> {
    path.split('/').filter(|c| !c.is_empty() && *c != ".").collect()
}

/// What a path inside a snapshot points at.
pub enum Located {
    /// The root, or a directory: its tree.
    Dir {
        /// The directory's tree.
        tree: BlobId,
        /// Its node (`None` for the root).
        node: Option<Node>,
    },
    /// Anything else.
    File(Node),
}

/// Follows `path` from the snapshot root `root`; `snapshot` names the snapshot in errors.
pub fn locate(repo: &IndexedRepository, root: BlobId, path: &str, snapshot: &str) -> Result<Located> {
    let mut cur = Located::Dir { tree: root, node: None };
    let not_found = || OpError::PathNotInSnapshot { path: path.into(), snapshot: snapshot.into() };
    for comp in components(path) {
        let Located::Dir { tree: tree_id, .. } = &cur else { return Err(not_found()) };
        let tree = repo.load_tree(tree_id)?;
        let node = tree.find(comp.as_bytes()).cloned().ok_or_else(not_found)?;
        cur = match subtree(&node) {
            Some(t) => Located::Dir { tree: t, node: Some(node) },
            None => Located::File(node),
        };
    }
    Ok(cur)
}

/// Calls `visit` for every node below `tree` in depth-first, name order, with its path
/// (`prefix/…/name`). The walk is bounded (see [`super::walk::WalkLimits`]).
pub fn list(repo: &IndexedRepository, tree: BlobId, prefix: &str, visit: &mut dyn FnMut(&str, &Node)) -> Result<()> {
    walk_tree(repo, tree, prefix, &mut |v| {
        if let Visit::Entry { path, item } = v {
            visit(path, item);
        }
        Ok(Flow::Continue)
    })
}

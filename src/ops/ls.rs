//! Walking a snapshot's tree: `ls`, and locating a path inside a snapshot.

use crate::format::BlobId;
use crate::format::tree::{Node, NodeKind};
use crate::repo::{MasterIndex, Repository};

use super::error::{OpError, Result};

/// Splits a snapshot path into its components (`/home/u` → `home`, `u`).
pub fn components(path: &str) -> Vec<&str> {
    path.split('/').filter(|c| !c.is_empty() && *c != ".").collect()
}

/// What a path inside a snapshot points at.
pub enum Located {
    /// The root, or a directory: its tree.
    Dir {
        tree: BlobId,
        node: Option<Node>,
    },
    File(Node),
}

pub fn locate(repo: &Repository, index: &MasterIndex, root: BlobId, path: &str, snapshot: &str) -> Result<Located> {
    let mut cur = Located::Dir { tree: root, node: None };
    for comp in components(path) {
        let tree_id = match &cur {
            Located::Dir { tree, .. } => *tree,
            Located::File(_) => {
                return Err(OpError::PathNotInSnapshot { path: path.into(), snapshot: snapshot.into() });
            }
        };
        let tree = repo.load_tree(index, &tree_id)?;
        let node = tree
            .find(comp.as_bytes())
            .cloned()
            .ok_or_else(|| OpError::PathNotInSnapshot { path: path.into(), snapshot: snapshot.into() })?;
        cur = match (node.kind, node.subtree) {
            (NodeKind::Dir, Some(t)) => Located::Dir { tree: t, node: Some(node) },
            _ => Located::File(node),
        };
    }
    Ok(cur)
}

/// Calls `visit` for every node below `tree` in depth-first, name order, with its path
/// (starting with `/`, relative to the snapshot root).
pub fn walk(
    repo: &Repository,
    index: &MasterIndex,
    tree: BlobId,
    prefix: &str,
    visit: &mut dyn FnMut(&str, &Node),
) -> Result<()> {
    let t = repo.load_tree(index, &tree)?;
    for n in &t.nodes {
        let path = format!("{}/{}", prefix.trim_end_matches('/'), n.name_lossy());
        visit(&path, n);
        if let (NodeKind::Dir, Some(sub)) = (n.kind, n.subtree) {
            walk(repo, index, sub, &path, visit)?;
        }
    }
    Ok(())
}

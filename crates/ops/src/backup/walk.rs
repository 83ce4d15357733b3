//! The backup's walk of the file system: the virtual root built from the sources, then
//! each directory's entries in parallel (rayon), compared with the parent snapshot's
//! tree. Every directory becomes a tree blob, children first.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::atomic::Ordering;

use rayon::prelude::*;

use super::file::archive_file;
use super::{Ctx, MAX_DIR_DEPTH};
use crate::error::Result;
use crate::fsmeta::node_from_metadata;
use crate::source::{VirtualDir, VirtualNode};
use vault_format::BlobId;
use vault_format::tree::{Node, NodeKind, Tree};

pub(super) fn archive_virtual(ctx: &Ctx<'_>, vdir: &VirtualDir, parent: Option<&Tree>) -> Result<BlobId> {
    let mut nodes: Vec<Node> = vdir
        .children
        .par_iter()
        .map(|(name, child)| -> Result<Option<Node>> {
            let parent_node = parent.and_then(|t| t.find(name.as_bytes()));
            match child {
                VirtualNode::Source(path) => {
                    let dev = std::fs::symlink_metadata(path).map(|m| m.dev()).unwrap_or(0);
                    archive_entry(ctx, path, name, parent_node, dev, 0)
                }
                VirtualNode::Dir(sub) => {
                    let mut node = match sub.meta_path.as_deref().map(|p| (p, std::fs::symlink_metadata(p))) {
                        Some((p, Ok(m))) if m.is_dir() => node_from_metadata(name, p, &m, &ctx.owners),
                        _ => {
                            let mut n = Node::new(name.as_bytes().to_vec(), NodeKind::Dir);
                            n.mode = 0o755;
                            n
                        }
                    };
                    let ptree = ctx.parent_subtree(parent_node);
                    node.subtree = Some(archive_virtual(ctx, sub, ptree.as_ref())?);
                    ctx.counters.dirs.fetch_add(1, Ordering::Relaxed);
                    Ok(Some(node))
                }
            }
        })
        .collect::<Result<Vec<_>>>()?
        .into_iter()
        .flatten()
        .collect();
    if let Some(dir) = &vdir.contents {
        let dev = std::fs::symlink_metadata(dir).map(|m| m.dev()).unwrap_or(0);
        let extra = archive_dir_entries(ctx, dir, parent, dev, 0)?;
        nodes.extend(extra.into_iter().filter(|n| !vdir.children.contains_key(OsStr::from_bytes(&n.name))));
    }
    Ok(ctx.writer.save_tree(Tree { nodes })?)
}

/// The entries of `dir`, which lies `depth` levels below its source.
fn archive_dir_entries(ctx: &Ctx<'_>, dir: &Path, parent: Option<&Tree>, dev: u64, depth: usize) -> Result<Vec<Node>> {
    let names: Vec<OsString> = match std::fs::read_dir(dir) {
        Ok(rd) => rd
            .filter_map(|e| match e {
                Ok(e) => Some(e.file_name()),
                Err(err) => {
                    ctx.problem(dir, format!("cannot list directory: {err}"));
                    None
                }
            })
            .collect(),
        Err(e) => {
            ctx.problem(dir, format!("cannot list directory: {e}"));
            Vec::new()
        }
    };
    Ok(names
        .par_iter()
        .map(|name| {
            let parent_node = parent.and_then(|t| t.find(name.as_bytes()));
            archive_entry(ctx, &dir.join(name), name, parent_node, dev, depth + 1)
        })
        .collect::<Result<Vec<_>>>()?
        .into_iter()
        .flatten()
        .collect())
}

/// One entry, `depth` levels below its source; `None` when it is excluded or unreadable.
fn archive_entry(
    ctx: &Ctx<'_>,
    path: &Path,
    name: &OsStr,
    parent: Option<&Node>,
    dev: u64,
    depth: usize,
) -> Result<Option<Node>> {
    if ctx.excludes.matches(path) {
        return Ok(None);
    }
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) => {
            ctx.problem(path, format!("cannot stat: {e}"));
            return Ok(None);
        }
    };
    if meta.is_dir() && ctx.leaves_out(path, &meta) {
        return Ok(None);
    }
    let mut node = node_from_metadata(name, path, &meta, &ctx.owners);
    match node.kind {
        NodeKind::Dir if depth >= MAX_DIR_DEPTH => {
            ctx.problem(path, format!("directory nested more than {MAX_DIR_DEPTH} levels deep; left out"));
            return Ok(None);
        }
        NodeKind::Dir => {
            let entries = if ctx.one_file_system && meta.dev() != dev {
                // A mount point: kept as an empty directory so that restore recreates it.
                Vec::new()
            } else {
                let ptree = ctx.parent_subtree(parent);
                archive_dir_entries(ctx, path, ptree.as_ref(), dev, depth)?
            };
            node.subtree = Some(ctx.writer.save_tree(Tree { nodes: entries })?);
            ctx.counters.dirs.fetch_add(1, Ordering::Relaxed);
        }
        NodeKind::File => return archive_file(ctx, path, node, parent),
        NodeKind::Symlink => match std::fs::read_link(path) {
            Ok(t) => {
                node.target = t.into_os_string().into_vec();
                ctx.counters.other.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                ctx.problem(path, format!("cannot read symlink: {e}"));
                return Ok(None);
            }
        },
        _ => {
            ctx.counters.other.fetch_add(1, Ordering::Relaxed);
        }
    }
    Ok(Some(node))
}

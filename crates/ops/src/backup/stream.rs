//! Backing up a stream (`--stdin`, `--stdin-from-command`) as one file at the root of
//! the snapshot.

use std::io::Read;
use std::sync::atomic::Ordering;
use std::time::Instant;

use super::file::store_stream;
use super::{BackupOptions, BackupReport, Committing, choose_parent, commit, new_ctx};
use crate::error::{OpError, Result};
use crate::progress::Progress;
use vault_format::tree::{Node, NodeKind, Timestamp, Tree};
use vault_repo::IndexedRepository;

/// Backs up everything `reader` yields as the file `name` at the snapshot's root, whose
/// path is `/name`. A read error (or a command that failed, which its reader reports as
/// one) fails the backup: no snapshot holds part of a stream.
pub fn backup_stream(
    repo: &IndexedRepository,
    opts: &BackupOptions,
    name: &str,
    reader: &mut dyn Read,
    progress: &dyn Progress,
) -> Result<BackupReport> {
    let started = Instant::now();
    if name.is_empty() || name.contains('/') || name == "." || name == ".." || name.contains('\0') {
        return Err(OpError::Usage(format!("--stdin-filename {name:?}: expected a file name without '/'")));
    }
    let paths = vec![format!("/{name}")];
    let parent = choose_parent(repo, opts, &paths)?;
    let ctx = new_ctx(repo, opts, progress)?;
    let mut content = Vec::new();
    let size = match store_stream(&ctx, reader, u64::MAX, &mut content) {
        Ok(Ok(n)) => n,
        Ok(Err(e)) => return Err(OpError::Source { path: name.into(), reason: e.to_string() }),
        Err(OpError::Interrupted) => return Err(super::keep_what_is_stored(ctx)),
        Err(e) => return Err(e),
    };
    let now = chrono::Utc::now();
    let time = Timestamp { sec: now.timestamp(), nsec: now.timestamp_subsec_nanos() };
    let mut node = Node::new(name.as_bytes().to_vec(), NodeKind::File);
    node.mode = 0o600;
    node.uid = nix::unistd::getuid().as_raw();
    node.gid = nix::unistd::getgid().as_raw();
    node.user = ctx.owners.user(node.uid);
    node.group = ctx.owners.group(node.gid);
    node.mtime = time;
    node.ctime = time;
    node.links = 1;
    node.size = size;
    node.content = content;
    ctx.counters.files_new.fetch_add(1, Ordering::Relaxed);
    ctx.counters.total_bytes.fetch_add(size, Ordering::Relaxed);
    progress.add_files(1);
    let tree_id = ctx.writer.save_tree(Tree { nodes: vec![node] })?;
    commit(repo, opts, ctx, Committing { tree_id, paths, parent, started })
}

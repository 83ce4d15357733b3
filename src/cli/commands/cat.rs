use anyhow::{Result, anyhow, bail};

use super::open_repo;
use crate::cli::ExitCode;
use crate::cli::args::{CatArgs, GlobalArgs};
use crate::cli::output::print_json_pretty;
use vault_format::{BlobId, Id, IndexId, KeyId};
use vault_ops::cat::{config_json, index_json, tree_json};
use vault_ops::select::{self, SnapshotFilter};
use vault_repo::{IndexedRepository, Repository, StoredKind};

/// A full id, or the one file of `kind` whose name starts with `prefix`.
fn resolve(repo: &Repository, kind: StoredKind, prefix: &str) -> Result<Id> {
    let dir = kind.dir();
    let p = prefix.to_ascii_lowercase();
    let ids: Vec<Id> =
        repo.list_files(kind)?.into_iter().map(|(id, _)| id).filter(|id| id.to_hex().starts_with(&p)).collect();
    match ids.as_slice() {
        [id] if !p.is_empty() => Ok(*id),
        [] | [_] => bail!("no {dir} file matches {prefix:?}"),
        _ => bail!("{prefix:?} is ambiguous: {} {dir} files match", ids.len()),
    }
}

pub(crate) fn run(g: &GlobalArgs, a: &CatArgs) -> Result<ExitCode> {
    let repo = open_repo(g)?;
    let need_id = || a.id.clone().ok_or_else(|| anyhow!("`cat {}` needs an id", a.kind));
    let value = match a.kind.as_str() {
        "config" => config_json(&repo)?,
        "snapshot" => {
            let (id, s) = select::find(&repo, &need_id()?, &SnapshotFilter::default())?;
            let mut v = serde_json::to_value(s)?;
            if let Some(m) = v.as_object_mut() {
                m.insert("id".into(), serde_json::json!(id));
            }
            v
        }
        "tree" => {
            let id: BlobId = need_id()?.parse().map_err(|e| anyhow!("tree id: {e}"))?;
            tree_json(&IndexedRepository::load(repo)?.load_tree(&id)?)
        }
        "index" => {
            let id = IndexId(resolve(&repo, StoredKind::Index, &need_id()?)?);
            index_json(&repo.load_index_file(&id)?)
        }
        "key" => {
            let id = KeyId(resolve(&repo, StoredKind::Key, &need_id()?)?);
            serde_json::to_value(repo.read_key_file(&id)?)?
        }
        other => bail!("unknown object kind {other:?}"),
    };
    print_json_pretty(&value)?;
    Ok(ExitCode::Ok)
}

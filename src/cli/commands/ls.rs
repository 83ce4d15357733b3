use std::io::Write;

use anyhow::Result;
use serde_json::json;

use super::{filter, open_repo};
use crate::cli::ExitCode;
use crate::cli::args::{GlobalArgs, LsArgs};
use crate::cli::output::{local_time, mode_string, printable};
use vault_format::tree::{Node, NodeKind};
use vault_ops::cat::node_json;
use vault_ops::ls::{Located, components, list, locate};
use vault_ops::select;
use vault_repo::IndexedRepository;

pub(crate) fn run(g: &GlobalArgs, a: &LsArgs) -> Result<ExitCode> {
    let repo = open_repo(g)?;
    let (id, snap) = select::find(&repo, &a.snapshot, &filter(&a.filter))?;
    let repo = IndexedRepository::load(repo)?;
    let path = a.path.clone().unwrap_or_default();
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let mut failed: Option<std::io::Error> = None;
    {
        let mut emit = |p: &str, n: &Node| {
            if failed.is_some() {
                return;
            }
            let r = if g.json {
                let mut v = node_json(n);
                if let Some(m) = v.as_object_mut() {
                    m.insert("message_type".into(), json!("node"));
                    m.insert("struct_type".into(), json!("node"));
                    m.insert("path".into(), json!(p));
                    m.insert("mtime".into(), json!(vault_ops::time::timestamp(n.mtime)));
                    m.insert("ctime".into(), json!(vault_ops::time::timestamp(n.ctime)));
                }
                writeln!(out, "{v}")
            } else if a.long {
                let t = chrono::DateTime::from_timestamp(n.mtime.sec, n.mtime.nsec).unwrap_or_default();
                let user =
                    if n.user.is_empty() { n.uid.to_string() } else { String::from_utf8_lossy(&n.user).into_owned() };
                let group =
                    if n.group.is_empty() { n.gid.to_string() } else { String::from_utf8_lossy(&n.group).into_owned() };
                let link = if n.kind == NodeKind::Symlink {
                    format!(" -> {}", String::from_utf8_lossy(&n.target))
                } else {
                    String::new()
                };
                writeln!(
                    out,
                    "{} {:>8} {:>8} {:>12} {} {}{}",
                    mode_string(n),
                    printable(&user),
                    printable(&group),
                    n.size,
                    local_time(t),
                    printable(p),
                    printable(&link)
                )
            } else {
                writeln!(out, "{}", printable(p))
            };
            if let Err(e) = r {
                failed = Some(e);
            }
        };
        if g.json {
            writeln!(
                std::io::stdout(),
                "{}",
                json!({"message_type": "snapshot", "struct_type": "snapshot", "id": id, "time": snap.time, "tree": snap.tree, "paths": snap.paths, "hostname": snap.hostname})
            )?;
        }
        let prefix = format!("/{}", components(&path).join("/"));
        match locate(&repo, snap.tree, &path, &a.snapshot)? {
            Located::Dir { tree, node } => {
                if let Some(n) = &node {
                    emit(&prefix, n);
                }
                list(&repo, tree, &prefix, &mut emit)?;
            }
            Located::File(n) => emit(&prefix, &n),
        }
    }
    if let Some(e) = failed
        && e.kind() != std::io::ErrorKind::BrokenPipe
    {
        return Err(e.into());
    }
    out.flush().ok();
    Ok(ExitCode::Ok)
}

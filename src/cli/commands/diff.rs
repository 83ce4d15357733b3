use std::path::PathBuf;

use anyhow::Result;
use serde_json::json;

use super::open_repo;
use crate::cli::ExitCode;
use crate::cli::args::{DiffArgs, GlobalArgs};
use crate::cli::output::{print_json, print_message, printable};
use crate::cli::progress::bytes;
use vault_ops::diff::{Change, DiffReport, Differ, Side};
use vault_ops::ls::{Located, locate};
use vault_ops::select::{self, SnapshotFilter};
use vault_ops::source;

pub(crate) fn run(g: &GlobalArgs, a: &DiffArgs) -> Result<ExitCode> {
    let repo = open_repo(g)?;
    let repo = vault_repo::IndexedRepository::load(repo)?;
    let (id1, s1) = select::find(&repo, &a.snapshot, &SnapshotFilter::default())?;
    let live = PathBuf::from(&a.other);
    let is_dir = live.is_dir() || a.other.contains('/');
    let tree_at = |root, path: &str, label: &str| -> Result<Side> {
        Ok(match locate(&repo, root, path, label) {
            Ok(Located::Dir { tree, .. }) => Side::Tree(Some(tree)),
            Ok(Located::File(_)) | Err(vault_ops::OpError::PathNotInSnapshot { .. }) => Side::Tree(None),
            Err(e) => return Err(e.into()),
        })
    };
    let differ = Differ::new(&repo, a.content);
    // Against a live directory, what the snapshot's backup left out is left out here too.
    let differ = match (&s1.filters, live.is_dir()) {
        (Some(f), true) => differ.with_live_filters(f)?,
        _ => differ,
    };
    let mut report = DiffReport::default();
    let (label, prefix) = if is_dir {
        if !live.is_dir() {
            anyhow::bail!("{} is not a directory", live.display());
        }
        // Inside the snapshot: the given PATH, else where a backup of the directory would
        // have stored it when the snapshot has that path, else the snapshot's root.
        // Where a backup of this directory would have put it (restic's path rules).
        let cwd = std::env::current_dir()?;
        let mapped = source::snapshot_components(&live, &cwd)
            .iter()
            .map(|c| c.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join("/");
        let path = match &a.path {
            Some(p) => p.clone(),
            None if matches!(tree_at(s1.tree, &mapped, &id1.short())?, Side::Tree(Some(_))) => format!("/{mapped}"),
            None => String::new(),
        };
        let old = tree_at(s1.tree, &path, &id1.short())?;
        differ.diff(old, Side::Dir(live.clone()), "", &mut report)?;
        (format!("{} → {}", id1.short(), live.display()), path)
    } else {
        let (id2, s2) = select::find(&repo, &a.other, &SnapshotFilter::default())?;
        let path = a.path.clone().unwrap_or_default();
        let (old, new) = (tree_at(s1.tree, &path, &id1.short())?, tree_at(s2.tree, &path, &id2.short())?);
        differ.diff(old, new, "", &mut report)?;
        (format!("{} → {}", id1.short(), id2.short()), path)
    };
    let prefix = prefix.trim_end_matches('/').to_string();
    for c in &mut report.changes {
        c.path = format!("{prefix}{}", c.path);
    }
    if g.json {
        for c in &report.changes {
            print_message("change", &c)?;
        }
        print_json(&json!({"message_type": "summary", "compared": label, "summary": report.summary}))?;
    } else {
        if !a.summary {
            for c in &report.changes {
                let sign = match c.change {
                    Change::Added => "+",
                    Change::Removed => "-",
                    Change::Modified => "M",
                    Change::Metadata => "U",
                    Change::TypeChanged => "T",
                };
                let size = match (c.old_size, c.new_size) {
                    (Some(o), Some(n)) if o != n => format!("  ({} → {})", bytes(o), bytes(n)),
                    (_, Some(n)) if c.change == Change::Added && n > 0 => format!("  ({})", bytes(n)),
                    (Some(o), None) if o > 0 => format!("  ({})", bytes(o)),
                    _ => String::new(),
                };
                println!("{sign}    {}{size}", printable(&c.path));
            }
        }
        let s = &report.summary;
        println!(
            "{label}: {} added, {} removed, {} modified, {} metadata only, {} type changed; {} added, {} removed",
            s.added,
            s.removed,
            s.modified,
            s.metadata,
            s.type_changed,
            bytes(s.bytes_added),
            bytes(s.bytes_removed)
        );
    }
    Ok(ExitCode::Ok)
}

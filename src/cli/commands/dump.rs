use std::io::Write;

use anyhow::{Context, Result};

use super::{filter, open_repo};
use crate::cli::ExitCode;
use crate::cli::args::{DumpArgs, GlobalArgs};
use vault_format::tree::NodeKind;
use vault_ops::dump::{Archive, ContentReader, dump_dir};
use vault_ops::ls::{Located, components, locate};
use vault_ops::select;

pub(crate) fn run(g: &GlobalArgs, a: &DumpArgs) -> Result<ExitCode> {
    match dump(g, a) {
        // The reader went away (`vault dump … | head`): not an error.
        Err(e) if is_broken_pipe(&e) => Ok(ExitCode::Ok),
        r => r,
    }
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>().is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
            || matches!(c.downcast_ref::<vault_ops::OpError>(), Some(vault_ops::OpError::Output(e)) if e.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// The output file: new (unless `overwrite`), readable by its owner only (it may hold a
/// 0600 file's content), and never a symbolic link's target.
fn create_target(p: &std::path::Path, overwrite: bool) -> Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut o = std::fs::OpenOptions::new();
    o.write(true).mode(0o600).custom_flags(nix::libc::O_NOFOLLOW);
    if overwrite {
        o.create(true).truncate(true);
    } else {
        o.create_new(true);
    }
    o.open(p).map_err(|e| match e.kind() {
        std::io::ErrorKind::AlreadyExists => {
            anyhow::anyhow!("cannot create {}: it exists (--overwrite replaces it)", p.display())
        }
        _ => anyhow::Error::new(e).context(format!("cannot create {}", p.display())),
    })
}

fn dump(g: &GlobalArgs, a: &DumpArgs) -> Result<ExitCode> {
    use std::io::IsTerminal;
    if g.json {
        return Err(vault_ops::OpError::Usage(
            "dump writes the file or archive itself: --json is not available here".into(),
        )
        .into());
    }
    // An archive (or a file's raw bytes, with whatever escape sequences it holds) is no
    // use on a terminal and may reprogram it.
    if a.target.is_none() && std::io::stdout().is_terminal() {
        return Err(vault_ops::OpError::Usage(
            "standard output is a terminal: redirect it (`> FILE`, `| tar -t`) or name a file with --target".into(),
        )
        .into());
    }
    let repo = open_repo(g)?;
    let (id, snap) = select::find(&repo, &a.snapshot, &filter(&a.filter))?;
    let repo = vault_repo::IndexedRepository::load(repo)?;
    let out: Box<dyn Write + Send> = match &a.target {
        Some(p) => Box::new(std::io::BufWriter::new(create_target(p, a.overwrite)?)),
        None => Box::new(std::io::BufWriter::with_capacity(1 << 20, std::io::stdout())),
    };
    let archive = if a.archive == "zip" { Archive::Zip } else { Archive::Tar };
    match locate(&repo, snap.tree, &a.path, &id.short())? {
        Located::File(n) if n.kind == NodeKind::File => {
            let mut out = out;
            std::io::copy(&mut ContentReader::new(&repo, &n), &mut out).context("cannot write the file's content")?;
            out.flush()?;
        }
        Located::File(n) => anyhow::bail!("{} is a {:?}, not a file or directory", a.path, n.kind),
        Located::Dir { tree, node } => {
            let root = components(&a.path).last().map(|s| s.to_string()).unwrap_or_default();
            let mut out = dump_dir(&repo, tree, node.as_ref(), &root, archive, out)?;
            out.flush()?;
        }
    }
    Ok(ExitCode::Ok)
}

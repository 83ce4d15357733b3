use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use nix::sys::signal::{SigSet, Signal};

use super::open_repo;
use crate::cli::ExitCode;
use crate::cli::args::{GlobalArgs, MountArgs};
use crate::cli::mount::VaultFs;
use vault_ops::browse::Browser;

pub(crate) fn run(g: &GlobalArgs, a: &MountArgs) -> Result<ExitCode> {
    if g.json {
        return Err(vault_ops::OpError::Usage("mount prints no JSON: --json is not available here".into()).into());
    }
    if !std::path::Path::new("/dev/fuse").exists() {
        bail!("FUSE is not available: /dev/fuse does not exist (load the fuse kernel module, or install fuse3)");
    }
    match std::fs::metadata(&a.mountpoint) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => bail!("mount point {} is not a directory", a.mountpoint.display()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            bail!("mount point {} does not exist (create it first: mkdir -p {0})", a.mountpoint.display())
        }
        Err(e) => bail!("mount point {}: {e}", a.mountpoint.display()),
    }
    let repo = open_repo(g)?;
    let browser = Arc::new(Browser::new(repo, a.cache_mib.max(8) << 20, Duration::from_secs(2))?);
    // Block the signals before any thread starts, so that only this thread receives them.
    let mut signals = SigSet::empty();
    for s in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
        signals.add(s);
    }
    signals.thread_block().context("cannot block signals")?;
    let mut config = fuser::Config::default();
    config.mount_options = vec![
        fuser::MountOption::RO,
        fuser::MountOption::FSName("vault".into()),
        fuser::MountOption::Subtype("vault".into()),
        // The kernel checks each file's owner and mode as the snapshot recorded them, so
        // that with --allow-other another user cannot read root's 0600 files.
        fuser::MountOption::DefaultPermissions,
    ];
    if a.allow_other {
        config.acl = fuser::SessionACL::All;
    }
    config.n_threads = Some(4);
    let fs = VaultFs { browser };
    let session = fuser::spawn_mount(fs, &a.mountpoint, &config).with_context(|| {
        format!(
            "cannot mount at {} (is FUSE usable here? non-root users need fuse3's fusermount3)",
            a.mountpoint.display()
        )
    })?;
    if !g.quiet {
        eprintln!("repository mounted at {}; press Ctrl-C (or send SIGTERM) to unmount", a.mountpoint.display());
    }
    // A signal ends the mount, and so does an unmount from outside (`fusermount3 -u`,
    // `umount`), which ends the session's thread.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(signals.wait());
    });
    let why = loop {
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(sig) => break format!("{}", sig.context("waiting for a signal")?),
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) if session.guard.is_finished() => {
                break "unmounted from outside".to_string();
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => bail!("waiting for a signal failed"),
        }
    };
    drop(session);
    if !g.quiet {
        eprintln!("unmounted {} ({why})", a.mountpoint.display());
    }
    Ok(ExitCode::Ok)
}

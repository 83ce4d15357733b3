//! Where the repository password comes from, in order: `--password-command`,
//! `--password-file` (or `VAULT_PASSWORD_FILE`), `VAULT_PASSWORD`, a prompt on a terminal.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use zeroize::Zeroizing;

#[derive(Clone, Debug, Default)]
pub(crate) struct PasswordSource {
    pub command: Option<String>,
    pub file: Option<PathBuf>,
    pub role: PasswordRole,
}

/// Which password is asked for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum PasswordRole {
    /// The repository's (`-r`).
    #[default]
    Repository,
    /// A new one (`vault key add/passwd`).
    New,
    /// The source repository's of `vault copy` (`--from-repo`).
    From,
}

impl PasswordSource {
    fn env_var(&self) -> &'static str {
        match self.role {
            PasswordRole::Repository => "VAULT_PASSWORD",
            PasswordRole::New => "VAULT_NEW_PASSWORD",
            PasswordRole::From => "VAULT_FROM_PASSWORD",
        }
    }

    fn prompt(&self) -> &'static str {
        match self.role {
            PasswordRole::Repository => "enter password for repository: ",
            PasswordRole::New => "enter the new password: ",
            PasswordRole::From => "enter password for the repository to copy from: ",
        }
    }

    /// Where this password can be given, for the error when none was.
    fn sources(&self) -> &'static str {
        match self.role {
            PasswordRole::Repository => "VAULT_PASSWORD, VAULT_PASSWORD_FILE, --password-file or --password-command",
            PasswordRole::New => {
                "VAULT_NEW_PASSWORD, VAULT_NEW_PASSWORD_FILE, --new-password-file or --new-password-command"
            }
            PasswordRole::From => {
                "VAULT_FROM_PASSWORD, VAULT_FROM_PASSWORD_FILE, --from-password-file or --from-password-command"
            }
        }
    }
}

/// Whether to ask twice (for a new key).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Confirm {
    Once,
    Twice,
}

fn strip_newline(mut s: String) -> String {
    if s.ends_with('\n') {
        s.pop();
        if s.ends_with('\r') {
            s.pop();
        }
    }
    s
}

/// How long a password command may take (`VAULT_PASSWORD_TIMEOUT`, seconds; default 60).
fn password_timeout() -> Duration {
    let secs = std::env::var("VAULT_PASSWORD_TIMEOUT").ok().and_then(|v| v.parse::<u64>().ok()).unwrap_or(60);
    Duration::from_secs(secs.max(1))
}

/// Runs the password command in a process group of its own and returns its output. A
/// command that hangs, or leaves a background child holding its output open, is killed
/// (the whole group) when the timeout ends, with a one-line error.
fn run_password_command(cmd: &str) -> Result<Vec<u8>> {
    use std::io::Read;
    use std::os::unix::process::CommandExt;
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .stdin(Stdio::inherit())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .process_group(0)
        .spawn()
        .with_context(|| format!("cannot run password command {cmd:?}"))?;
    let mut out = child.stdout.take().ok_or_else(|| anyhow!("password command {cmd:?}: no output pipe"))?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        // A password is short: more than 64 KiB is not one.
        let r = (&mut out).take(64 * 1024).read_to_end(&mut buf).map(|_| buf);
        let _ = tx.send(r);
    });
    let timeout = password_timeout();
    let kill_group = |child: &std::process::Child| {
        if let Ok(pid) = i32::try_from(child.id()) {
            let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
        }
    };
    let output = match rx.recv_timeout(timeout) {
        Ok(r) => r.with_context(|| format!("cannot read the output of password command {cmd:?}"))?,
        Err(_) => {
            kill_group(&child);
            let _ = child.wait();
            bail!(
                "password command {cmd:?} did not finish within {} s (or a background process kept its output open); set VAULT_PASSWORD_TIMEOUT to allow longer",
                timeout.as_secs()
            );
        }
    };
    let status = child.wait().with_context(|| format!("cannot wait for password command {cmd:?}"))?;
    if !status.success() {
        bail!("password command {cmd:?} failed with {status}");
    }
    Ok(output)
}

pub(crate) fn read_password(src: &PasswordSource, confirm: Confirm) -> Result<Zeroizing<String>> {
    let pw = if let Some(cmd) = &src.command {
        let stdout = run_password_command(cmd)?;
        Zeroizing::new(strip_newline(
            String::from_utf8(stdout).map_err(|_| anyhow!("password command {cmd:?} printed invalid UTF-8"))?,
        ))
    } else if let Some(file) = &src.file {
        let text =
            std::fs::read_to_string(file).with_context(|| format!("cannot read password file {}", file.display()))?;
        Zeroizing::new(strip_newline(text))
    } else if let Ok(pw) = std::env::var(src.env_var()) {
        Zeroizing::new(pw)
    } else if std::io::stdin().is_terminal() {
        let first =
            Zeroizing::new(rpassword::prompt_password(src.prompt()).context("cannot read password from terminal")?);
        if confirm == Confirm::Twice {
            let again = Zeroizing::new(
                rpassword::prompt_password("enter the password again: ")
                    .context("cannot read password from terminal")?,
            );
            if *first != *again {
                bail!("the two passwords differ");
            }
        }
        first
    } else {
        bail!(
            "no {}password given: set {} (standard input is not a terminal, so vault cannot prompt)",
            if src.role == PasswordRole::New { "new " } else { "" },
            src.sources()
        );
    };
    if pw.is_empty() {
        bail!("the {}password is empty", if src.role == PasswordRole::New { "new " } else { "" });
    }
    Ok(pw)
}

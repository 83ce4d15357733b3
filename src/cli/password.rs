//! Where the repository password comes from, in order: `--password-command`,
//! `--password-file` (or `VAULT_PASSWORD_FILE`), `VAULT_PASSWORD`, a prompt on a terminal.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use anyhow::{Context, Result, anyhow, bail};
use zeroize::Zeroizing;

#[derive(Clone, Debug, Default)]
pub(crate) struct PasswordSource {
    pub command: Option<String>,
    pub file: Option<PathBuf>,
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

pub(crate) fn read_password(src: &PasswordSource, confirm: Confirm) -> Result<Zeroizing<String>> {
    let pw = if let Some(cmd) = &src.command {
        let out = Command::new("sh")
            .arg("-c")
            .arg(cmd)
            .stdin(Stdio::inherit())
            .stderr(Stdio::inherit())
            .output()
            .with_context(|| format!("cannot run password command {cmd:?}"))?;
        if !out.status.success() {
            bail!("password command {cmd:?} failed with {}", out.status);
        }
        Zeroizing::new(strip_newline(
            String::from_utf8(out.stdout).map_err(|_| anyhow!("password command {cmd:?} printed invalid UTF-8"))?,
        ))
    } else if let Some(file) = &src.file {
        let text =
            std::fs::read_to_string(file).with_context(|| format!("cannot read password file {}", file.display()))?;
        Zeroizing::new(strip_newline(text))
    } else if let Ok(pw) = std::env::var("VAULT_PASSWORD") {
        Zeroizing::new(pw)
    } else if std::io::stdin().is_terminal() {
        let first = Zeroizing::new(
            rpassword::prompt_password("enter password for repository: ")
                .context("cannot read password from terminal")?,
        );
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
            "no password given: set VAULT_PASSWORD, VAULT_PASSWORD_FILE, --password-file or --password-command (standard input is not a terminal, so vault cannot prompt)"
        );
    };
    if pw.is_empty() {
        bail!("the password is empty");
    }
    Ok(pw)
}

//! `vault generate completions|man` and `vault version`: what packagers and scripts ask of
//! the binary itself, without a repository.

use anyhow::{Context, Result};
use clap::CommandFactory;
use serde_json::json;

use crate::cli::ExitCode;
use crate::cli::args::{Cli, Generate, GenerateArgs, GlobalArgs};
use crate::cli::output::print_json;

pub(crate) fn run(g: &GlobalArgs, a: &GenerateArgs) -> Result<ExitCode> {
    if g.json {
        return Err(vault_ops::OpError::Usage(
            "generate writes scripts and pages: --json is not available here".into(),
        )
        .into());
    }
    let cmd = Cli::command();
    match &a.what {
        Generate::Completions { shell } => {
            clap_complete::generate(*shell, &mut cmd.clone(), "vault", &mut std::io::stdout().lock());
        }
        Generate::Man { dir: None } => {
            clap_mangen::Man::new(cmd).render(&mut std::io::stdout().lock()).context("cannot write the manual page")?;
        }
        Generate::Man { dir: Some(dir) } => {
            std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
            clap_mangen::generate_to(cmd, dir)
                .with_context(|| format!("cannot write manual pages into {}", dir.display()))?;
            if !g.quiet {
                eprintln!("wrote manual pages into {}", dir.display());
            }
        }
    }
    Ok(ExitCode::Ok)
}

pub(crate) fn version(g: &GlobalArgs) -> Result<ExitCode> {
    let version = env!("CARGO_PKG_VERSION");
    let storage = vault_repo::storage_services();
    if g.json {
        print_json(&json!({
            "message_type": "version",
            "version": version,
            "repository_format": vault_format::FORMAT_VERSION,
            "config_versions": [vault_format::config::VERSION_DERIVED, vault_format::config::VERSION_SHARED_CONTENT],
            "storage": storage,
            "os": std::env::consts::OS,
            "arch": std::env::consts::ARCH,
        }))?;
    } else {
        println!("vault {version}");
        println!(
            "repository format {} (config versions {} and {}); storage: {}; {}/{}",
            vault_format::FORMAT_VERSION,
            vault_format::config::VERSION_DERIVED,
            vault_format::config::VERSION_SHARED_CONTENT,
            storage.join(", "),
            std::env::consts::OS,
            std::env::consts::ARCH
        );
    }
    Ok(ExitCode::Ok)
}

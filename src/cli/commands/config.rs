//! `vault config show`: the settings a command would run with, after the profile, the
//! environment and the flags, with secrets left out.

use anyhow::Result;
use serde_json::json;

use crate::cli::ExitCode;
use crate::cli::args::GlobalArgs;
use crate::cli::output::print_json;
use crate::cli::profile::Loaded;

/// Backend option keys whose values are secrets.
fn secret_option(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    ["secret", "password", "token", "credential", "session"].iter().any(|s| k.contains(s))
}

pub(crate) fn show(g: &GlobalArgs, profile: Option<&Loaded>) -> Result<ExitCode> {
    let password = if g.password_command.is_some() {
        "command (not shown)".to_string()
    } else if let Some(f) = &g.password_file {
        format!("file {}", f.display())
    } else if std::env::var_os("VAULT_PASSWORD").is_some() {
        "VAULT_PASSWORD (not shown)".to_string()
    } else {
        "prompt".to_string()
    };
    let options: Vec<String> = g
        .options
        .iter()
        .map(|o| match o.split_once('=') {
            Some((k, _)) if secret_option(k) => format!("{k}=(not shown)"),
            _ => o.clone(),
        })
        .collect();
    let p = profile.map(|l| &l.profile);
    let v = json!({
        "message_type": "config",
        "profile": profile.map(|l| json!({"name": l.name, "path": l.path})),
        "repository": g.repo,
        "password": password,
        "options": options,
        "cache_dir": g.cache_dir,
        "limit_upload_kib": g.limit_upload,
        "limit_download_kib": g.limit_download,
        "backup": p.map(|p| &p.backup),
        "forget": p.map(|p| &p.forget),
        "check": p.map(|p| &p.check),
        "hooks": p.map(|p| &p.hooks),
        "schedule": p.map(|p| &p.schedule),
    });
    if g.json {
        print_json(&v)?;
        return Ok(ExitCode::Ok);
    }
    match profile {
        Some(l) => println!("profile:     {} ({})", l.name, l.path.display()),
        None => println!("profile:     none (--profile NAME or VAULT_PROFILE)"),
    }
    println!("repository:  {}", g.repo.as_deref().unwrap_or("not set (-r, VAULT_REPOSITORY or a profile)"));
    println!("password:    {password}");
    if !options.is_empty() {
        println!("options:     {}", options.join(" "));
    }
    if let Some(c) = &g.cache_dir {
        println!("cache:       {}", c.display());
    }
    if let Some(p) = p {
        let section = |name: &str, value: serde_json::Value| {
            let set: Vec<String> = value
                .as_object()
                .into_iter()
                .flatten()
                .filter(|(_, v)| !(v.is_null() || **v == json!(false) || **v == json!([])))
                .map(|(k, v)| format!("{k} = {v}"))
                .collect();
            if !set.is_empty() {
                println!("[{name}]\n  {}", set.join("\n  "));
            }
        };
        section("backup", serde_json::to_value(&p.backup)?);
        section("forget", serde_json::to_value(&p.forget)?);
        section("check", serde_json::to_value(&p.check)?);
        section("hooks", serde_json::to_value(&p.hooks)?);
        section("schedule", serde_json::to_value(&p.schedule)?);
    }
    Ok(ExitCode::Ok)
}

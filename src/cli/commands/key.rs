//! `vault key`: list, add and remove key files, change the password.

use anyhow::Result;
use serde_json::json;

use super::{by_prefix, hostname, open_repo_with, username};
use crate::cli::ExitCode;
use crate::cli::args::{GlobalArgs, KeyAction, KeyArgs, NewKeyArgs};
use crate::cli::output::{print_json, table};
use crate::cli::password::{Confirm, PasswordRole, PasswordSource, read_password};
use vault_format::KeyId;
use vault_format::keyfile::{KdfParams, KeyMeta};
use vault_ops::OpError;
use vault_repo::epochs::{RotateOptions, Rotated};
use vault_repo::{KdfLimit, KeyInfo, Repository};

pub(crate) fn run(g: &GlobalArgs, a: &KeyArgs) -> Result<ExitCode> {
    let repo = open_repo_with(g, false)?;
    let limit = KdfLimit::from_memory_mib(g.kdf_max_memory);
    match &a.action {
        None | Some(KeyAction::List) => list(g, &repo, &limit)?,
        Some(KeyAction::Add(n)) => {
            repo.require_full("`vault key add`")?;
            let labels = (hostname(), username());
            let (pw, kdf, meta) = new_key(g, &n.key, KdfParams::default(), labels, &limit)?;
            if n.write_only {
                let added = repo.add_write_only_key(pw.as_bytes(), kdf, meta)?;
                if g.json {
                    print_json(&json!({
                        "message_type": "key_added",
                        "id": added.key_file,
                        "write_only": true,
                        "writer": added.writer.to_hex(),
                        "index_files_resealed": added.index_files_resealed,
                    }))?;
                } else if !g.quiet {
                    println!(
                        "added write-only key file {} (key {}): it can back up and list its own snapshots, nothing else; {} index files sealed again for it",
                        added.key_file.short(),
                        added.writer.to_hex(),
                        added.index_files_resealed
                    );
                }
            } else {
                let id = repo.add_key(pw.as_bytes(), kdf, meta)?;
                if g.json {
                    print_json(&json!({ "message_type": "key_added", "id": id, "write_only": false }))?;
                } else if !g.quiet {
                    println!("added key file {}", id.short());
                }
            }
        }
        Some(KeyAction::Remove { id }) => {
            repo.require_full("`vault key remove`")?;
            let target = resolve(&repo, id)?;
            repo.remove_key(target)?;
            report(g, "key_removed", target, &format!("removed key file {}", target.short()))?;
        }
        Some(KeyAction::Rotate(r)) => {
            let mut repo = std::sync::Arc::try_unwrap(repo)
                .map_err(|_| anyhow::anyhow!("internal: the repository handle is shared"))?;
            let opts = RotateOptions { leave_out_ungranted: r.leave_out, dry_run: r.dry_run };
            let done = repo.rotate_key(&opts)?;
            rotated(g, &done, r.dry_run)?;
        }
        Some(KeyAction::Passwd(n)) => {
            // The new key file is the old one with another password: same cost, same labels.
            let current = repo.read_key_file(&repo.key_id())?;
            let labels = (current.host, current.username);
            let (pw, kdf, meta) = new_key(g, n, current.kdf.params, labels, &limit)?;
            let mut repo = std::sync::Arc::try_unwrap(repo)
                .map_err(|_| anyhow::anyhow!("internal: the repository handle is shared"))?;
            let old = repo.key_id();
            let id = repo.change_password(pw.as_bytes(), kdf, meta)?;
            report(
                g,
                "password_changed",
                id,
                &format!("changed the password: key file {} replaces {}", id.short(), old.short()),
            )?;
        }
    }
    Ok(ExitCode::Ok)
}

fn report(g: &GlobalArgs, what: &str, id: KeyId, text: &str) -> Result<()> {
    if g.json {
        print_json(&json!({ "message_type": what, "id": id }))?;
    } else if !g.quiet {
        println!("{text}");
    }
    Ok(())
}

/// The new password, the KDF cost (raised or kept) and the new key file's labels
/// (`labels`: host and user unless given).
fn new_key(
    g: &GlobalArgs,
    n: &NewKeyArgs,
    base: KdfParams,
    labels: (String, String),
    limit: &KdfLimit,
) -> Result<(zeroize::Zeroizing<String>, KdfParams, KeyMeta)> {
    let kdf = KdfParams {
        memory_kib: n.kdf_memory.map_or(base.memory_kib, |m| m * 1024),
        iterations: n.kdf_iterations.unwrap_or(base.iterations),
        parallelism: base.parallelism,
    };
    if !limit.allows(&kdf) {
        return Err(OpError::Usage(format!(
            "a key file with Argon2id {} MiB × {} passes would be skipped when opening (--kdf-max-memory is {} MiB, and memory × passes may be 4 times that); raise --kdf-max-memory everywhere this key is used",
            kdf.memory_kib / 1024,
            kdf.iterations,
            g.kdf_max_memory
        ))
        .into());
    }
    let src = PasswordSource {
        command: n.new_password_command.clone(),
        file: n.new_password_file.clone(),
        role: PasswordRole::New,
    };
    let pw = read_password(&src, Confirm::Twice)?;
    let meta = KeyMeta {
        created: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        host: n.host.clone().unwrap_or(labels.0),
        username: n.user.clone().unwrap_or(labels.1),
    };
    Ok((pw, kdf, meta))
}

/// A key file named by its id or a unique prefix (from the listing: no key file is read).
fn rotated(g: &GlobalArgs, r: &Rotated, dry_run: bool) -> Result<()> {
    if g.json {
        return print_json(&json!({
            "message_type": "key_rotated",
            "dry_run": dry_run,
            "epoch": r.epoch,
            "granted": r.granted.iter().map(|(k, full)| json!({ "id": k, "full": full })).collect::<Vec<_>>(),
            "left_out": r.left_out,
            "grants": r.grants,
        }));
    }
    if g.quiet {
        return Ok(());
    }
    let names = |v: Vec<String>| if v.is_empty() { "none".to_string() } else { v.join(", ") };
    let granted = names(
        r.granted
            .iter()
            .map(|(k, full)| format!("{}{}", k.short(), if *full { "" } else { " (write-only)" }))
            .collect(),
    );
    let verb = if dry_run { "would make" } else { "made" };
    println!("{verb} key epoch {}, given to key files: {granted}", r.epoch);
    if !r.left_out.is_empty() {
        println!(
            "left out (they read only what was written before): {}",
            names(r.left_out.iter().map(|k| k.short()).collect())
        );
    }
    if !dry_run {
        println!(
            "new data is sealed with the new key from now on; run `vault prune --reencrypt` to rewrite what older keys sealed"
        );
    }
    Ok(())
}

fn resolve(repo: &Repository, spec: &str) -> Result<KeyId> {
    let ids = repo.key_ids()?;
    Ok(*by_prefix(spec, &ids, |k| k.0, "key file", " (see `vault key list`)")?)
}

fn list(g: &GlobalArgs, repo: &Repository, limit: &KdfLimit) -> Result<()> {
    // Publishes this key file's agreement key once, so `key rotate` can reach it; storage
    // that refuses writes only costs that.
    if let Err(e) = repo.ensure_member_record()
        && !g.quiet
    {
        eprintln!("warning: could not store this key file's member record: {e}");
    }
    let reachable: Vec<KeyId> = if repo.is_full() {
        let epoch = repo.epoch();
        repo.load_member_records()?.into_iter().filter(|m| m.epoch == Some(epoch)).map(|m| m.record.key_file).collect()
    } else {
        Vec::new()
    };
    let keys = repo.list_keys()?;
    let status = |k: &KeyInfo| match &k.file {
        Ok(f) if !limit.allows(&f.kdf.params) => "over the KDF limit: skipped when opening".to_string(),
        Ok(_) if repo.is_full() && !reachable.contains(&k.id) => {
            "no member record: `key rotate` cannot reach it until its holder runs `vault key list`".to_string()
        }
        Ok(_) => String::new(),
        Err(e) => format!("unreadable: {e}"),
    };
    if g.json {
        let v: Vec<_> = keys
            .iter()
            .map(|k| {
                let f = k.file.as_ref().ok();
                json!({
                    "message_type": "key",
                    "id": k.id,
                    "current": k.current,
                    "access": f.map(|f| if f.is_write_only() { "write-only" } else { "full" }),
                    "created": f.map(|f| f.created.clone()),
                    "host": f.map(|f| f.host.clone()),
                    "username": f.map(|f| f.username.clone()),
                    "kdf": f.map(|f| json!({
                        "memory_kib": f.kdf.params.memory_kib,
                        "iterations": f.kdf.params.iterations,
                        "parallelism": f.kdf.params.parallelism,
                    })),
                    "within_kdf_limit": f.map(|f| limit.allows(&f.kdf.params)),
                    "reachable_by_rotate": repo.is_full().then(|| reachable.contains(&k.id)),
                    "epoch": k.current.then(|| repo.epoch()),
                    "error": k.file.as_ref().err().map(|e| e.to_string()),
                })
            })
            .collect();
        print_json(&v)?;
        return Ok(());
    }
    let rows: Vec<Vec<String>> = keys
        .iter()
        .map(|k| {
            let f = k.file.as_ref().ok();
            vec![
                format!("{}{}", if k.current { "*" } else { " " }, k.id.short()),
                f.map(|f| f.host.clone()).unwrap_or_default(),
                f.map(|f| f.username.clone()).unwrap_or_default(),
                f.map(|f| f.created.clone()).unwrap_or_default(),
                f.map(|f| format!("{} MiB × {}", f.kdf.params.memory_kib / 1024, f.kdf.params.iterations))
                    .unwrap_or_default(),
                f.map(|f| if f.is_write_only() { "write-only" } else { "full" }).unwrap_or_default().to_string(),
                status(k),
            ]
        })
        .collect();
    print!("{}", table(&[" ID", "Host", "User", "Created", "Argon2id", "Access", "Status"], &rows));
    println!("{} key files (* opened this run, key epoch {})", keys.len(), repo.epoch());
    Ok(())
}

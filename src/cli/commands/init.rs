use anyhow::Result;
use serde_json::json;

use super::{backend_options, hostname, local_state, location, open_from_repo, password_source, username};
use crate::cli::ExitCode;
use crate::cli::args::{GlobalArgs, InitArgs};
use crate::cli::output::print_json;
use crate::cli::password::{Confirm, read_password};
use vault_format::blob::Padding;
use vault_format::keyfile::KeyMeta;
use vault_repo::backend::OpenMode;
use vault_repo::{Backend, InitOptions, Repository};

pub(crate) fn run(g: &GlobalArgs, a: &InitArgs) -> Result<ExitCode> {
    let loc = location(g)?;
    // The other repository first: a wrong password for it must not leave a new one.
    let from = match &a.from_repo {
        Some(r) if a.copy_chunker_params => Some(open_from_repo(g, r, &a.from_password, false)?),
        _ => None,
    };
    let backend = Backend::open(&loc, &backend_options(g)?, OpenMode::Create)?;
    let pw = read_password(&password_source(g), Confirm::Twice)?;
    let mut opts = InitOptions {
        compression: a.compression.compression(),
        padding: if a.padding == "padme" { Padding::Padme } else { Padding::None },
        ..Default::default()
    };
    if let Some(from) = &from {
        opts.chunker = from.config().chunker;
        opts.content_keys = Some(from.content_keys());
    }
    let meta = KeyMeta {
        created: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        host: hostname(),
        username: username(),
    };
    let repo = Repository::init(backend, pw.as_bytes(), &opts, meta)?;
    if let Some(state) = local_state() {
        let _ = state.remember_key(&loc.to_string(), repo.key_id());
        let _ = state.remember_config(&repo.config().id, &repo.config().to_json());
    }
    if g.json {
        print_json(&json!({
            "message_type": "initialized",
            "id": repo.config().id,
            "repository": loc.to_string(),
            "chunker_params_from": from.as_ref().map(|f| f.config().id),
        }))?;
    } else if !g.quiet {
        println!("created vault repository {} at {loc}", repo.config().id.short());
        if let Some(from) = &from {
            println!(
                "it chunks and names data as repository {} does: copies between them store no data twice",
                from.config().id.short()
            );
        }
        println!("Keep the password safe: without it the data cannot be recovered.");
    }
    Ok(ExitCode::Ok)
}

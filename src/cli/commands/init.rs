use anyhow::Result;
use serde_json::json;

use super::{backend_options, hostname, local_state, location, password_source, username};
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
    let backend = Backend::open(&loc, &backend_options(g)?, OpenMode::Create)?;
    let pw = read_password(&password_source(g), Confirm::Twice)?;
    let opts = InitOptions {
        compression: a.compression.compression(),
        padding: if a.padding == "padme" { Padding::Padme } else { Padding::None },
        ..Default::default()
    };
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
        print_json(&json!({ "message_type": "initialized", "id": repo.config().id, "repository": loc.to_string() }))?;
    } else if !g.quiet {
        println!("created vault repository {} at {loc}", repo.config().id.short());
        println!("Keep the password safe: without it the data cannot be recovered.");
    }
    Ok(ExitCode::Ok)
}

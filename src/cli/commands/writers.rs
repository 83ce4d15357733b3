use anyhow::Result;
use serde_json::json;

use super::{by_prefix, open_repo};
use crate::cli::ExitCode;
use crate::cli::args::{GlobalArgs, WritersAction, WritersArgs};
use crate::cli::output::{count, print_json, table};
use vault_ops::OpError;
use vault_repo::writers::{self, WriterStatus};

pub(crate) fn run(g: &GlobalArgs, a: &WritersArgs) -> Result<ExitCode> {
    let repo = open_repo(g)?;
    let list = writers::list_writers(&repo)?;
    match &a.action {
        None | Some(WritersAction::List) => {
            let status = |s: &WriterStatus| match s {
                WriterStatus::Running => "running".to_string(),
                WriterStatus::Dead(why) => format!("dead: {why}"),
                WriterStatus::Remote => "another host: may be running".to_string(),
                WriterStatus::Unreadable(e) => format!("unreadable: {e}"),
            };
            if g.json {
                let v: Vec<_> = list
                    .iter()
                    .map(|w| json!({"message_type": "writer", "id": w.id, "announcement": w.record, "status": status(&w.status)}))
                    .collect();
                print_json(&v)?;
            } else {
                let rows: Vec<Vec<String>> = list
                    .iter()
                    .map(|w| {
                        let r = w.record.as_ref();
                        vec![
                            w.id.short(),
                            r.map(|r| r.command.clone()).unwrap_or_default(),
                            r.map(|r| r.hostname.clone()).unwrap_or_default(),
                            r.map(|r| r.pid.to_string()).unwrap_or_default(),
                            r.map(|r| r.time.clone()).unwrap_or_default(),
                            status(&w.status),
                        ]
                    })
                    .collect();
                print!("{}", table(&["ID", "Command", "Host", "PID", "Started", "Status"], &rows));
                println!("{}", count(list.len(), "writer", "writers"));
            }
        }
        Some(WritersAction::Remove { id }) => {
            let w = by_prefix(id, &list, |w| w.id, "announced writer", "")?;
            if w.status == WriterStatus::Running {
                return Err(OpError::Usage(format!(
                    "writer {} is running on this host (pid {}); it removes its announcement when it ends",
                    w.id.short(),
                    w.record.as_ref().map(|r| r.pid).unwrap_or(0)
                ))
                .into());
            }
            writers::remove_writer(&repo, w.id)?;
            if !g.quiet && !g.json {
                println!("removed the announcement of {}", w.describe());
            }
        }
    }
    Ok(ExitCode::Ok)
}

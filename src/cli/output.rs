//! Small rendering helpers shared by commands.

use std::io::Write;

use chrono::{DateTime, Local, Utc};

use vault_format::tree::{Node, NodeKind};

/// The command's result as JSON, for a profile's hooks (on their standard input).
static RESULT: std::sync::Mutex<Option<String>> = std::sync::Mutex::new(None);

/// Keeps `v` as the command's result for the hooks (the last one kept wins).
pub(crate) fn keep_result(v: &impl serde::Serialize) {
    if let Ok(text) = serde_json::to_string(v) {
        *RESULT.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(text);
    }
}

/// The command's result as one JSON line, if it had one.
pub(crate) fn kept_result() -> Option<String> {
    RESULT.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
}

pub(crate) fn print_json(v: &impl serde::Serialize) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer(&mut out, v)?;
    writeln!(out)?;
    keep_result(v);
    Ok(())
}

/// `v` (which serialises to an object) with its `message_type`, as one line: the one
/// shape of every JSON object vault prints (docs/json.md).
pub(crate) fn message(message_type: &str, v: &impl serde::Serialize) -> serde_json::Value {
    let mut v = serde_json::to_value(v).unwrap_or_default();
    if let Some(m) = v.as_object_mut() {
        m.insert("message_type".into(), serde_json::Value::from(message_type));
    }
    v
}

/// Prints `v` with its `message_type`.
pub(crate) fn print_message(message_type: &str, v: &impl serde::Serialize) -> anyhow::Result<()> {
    print_json(&message(message_type, v))
}

/// Prints a list as one JSON array whose objects carry `message_type` (the shape restic
/// prints lists in).
pub(crate) fn print_messages<T: serde::Serialize>(message_type: &str, items: &[T]) -> anyhow::Result<()> {
    print_json(&items.iter().map(|i| message(message_type, i)).collect::<Vec<_>>())
}

pub(crate) fn print_json_pretty(v: &impl serde::Serialize) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, v)?;
    writeln!(out)?;
    Ok(())
}

/// `n` and the noun for it: "1 snapshot", "2 snapshots", "0 snapshots".
pub(crate) fn count(n: impl TryInto<u64>, one: &str, many: &str) -> String {
    let n: u64 = n.try_into().unwrap_or(u64::MAX);
    format!("{n} {}", if n == 1 { one } else { many })
}

pub(crate) fn local_time(t: DateTime<Utc>) -> String {
    t.with_timezone(&Local).format("%Y-%m-%d %H:%M:%S %:z").to_string()
}

/// `drwxr-xr-x`-style mode string.
pub(crate) fn mode_string(n: &Node) -> String {
    let t = match n.kind {
        NodeKind::Dir => 'd',
        NodeKind::Symlink => 'l',
        NodeKind::Fifo => 'p',
        NodeKind::CharDev => 'c',
        NodeKind::BlockDev => 'b',
        NodeKind::Socket => 's',
        NodeKind::File => '-',
    };
    let m = n.mode;
    let bit = |mask: u32, c: char| if m & mask != 0 { c } else { '-' };
    let exec = |x: u32, special: u32, set: char, unset: char| match (m & x != 0, m & special != 0) {
        (true, true) => set,
        (false, true) => unset,
        (true, false) => 'x',
        (false, false) => '-',
    };
    format!(
        "{t}{}{}{}{}{}{}{}{}{}",
        bit(0o400, 'r'),
        bit(0o200, 'w'),
        exec(0o100, 0o4000, 's', 'S'),
        bit(0o040, 'r'),
        bit(0o020, 'w'),
        exec(0o010, 0o2000, 's', 'S'),
        bit(0o004, 'r'),
        bit(0o002, 'w'),
        exec(0o001, 0o1000, 't', 'T'),
    )
}

/// Text from the repository or the file system made safe for a terminal: control
/// characters (escape sequences, carriage returns, newlines) and bidirectional overrides
/// are shown as `\x1b`-style escapes instead of acting on the terminal.
pub(crate) fn printable(text: &str) -> std::borrow::Cow<'_, str> {
    let unsafe_char = |c: char| {
        c.is_control() || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
    };
    if !text.chars().any(unsafe_char) {
        return text.into();
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            c if !unsafe_char(c) => out.push(c),
            c if (c as u32) < 0x100 => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
        }
    }
    out.into()
}

/// Prints rows as a left-aligned table with a header and a rule. Cells are made
/// [`printable`]: they hold names and labels that storage or other users chose.
pub(crate) fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let rows: Vec<Vec<String>> = rows.iter().map(|r| r.iter().map(|c| printable(c).into_owned()).collect()).collect();
    let rows = rows.as_slice();
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            widths[i] = widths[i].max(c.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        cells
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<w$}", w = widths[i]))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_string()
    };
    let mut out = line(header.iter().map(|s| s.to_string()).collect());
    out.push('\n');
    out.push_str(&"-".repeat(widths.iter().sum::<usize>() + 2 * (widths.len().saturating_sub(1))));
    out.push('\n');
    for r in rows {
        out.push_str(&line(r.clone()));
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminal_controls_are_shown_not_obeyed() {
        assert_eq!(printable("host-1"), "host-1");
        assert_eq!(printable("a\x1b]0;pwned\x07b"), "a\\x1b]0;pwned\\x07b");
        assert_eq!(printable("x\ry\n"), "x\\x0dy\\x0a");
        assert_eq!(printable("\u{9b}31m"), "\\x9b31m");
        assert_eq!(printable("abc\u{202e}fdp.exe"), "abc\\u{202e}fdp.exe");
        let t = table(&["H"], &[vec!["\x1b[2J".into()]]);
        assert!(!t.contains('\x1b'), "{t:?}");
    }
}

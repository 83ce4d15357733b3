//! The command lines in README.md and docs/ checked against the real command-line
//! definition, so that a renamed command or flag fails the tests instead of misleading a
//! reader. Complete commands (in code blocks, and inline code without placeholders) must
//! parse; synopses (`vault check [--read-data | …]`) must name only flags that exist.
//! `tests/docs_examples.rs` runs the README's tour for real.

use std::path::{Path, PathBuf};

use clap::CommandFactory;

use super::args::Cli;

/// One command line found in the docs, with where it was found.
struct Example {
    place: String,
    words: Vec<String>,
    /// A synopsis (placeholders, alternatives, optional parts) rather than a command.
    synopsis: bool,
    /// Inline code in prose, which may name a command without all it needs.
    inline: bool,
}

fn doc_files() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = vec![root.join("README.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(root.join("docs"))
        .expect("docs/")
        .map(|e| e.expect("docs/ entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    docs.sort();
    files.extend(docs);
    files
}

/// Splits a shell line into words as `sh` would (quotes, backslashes, comments); `None`
/// for an unterminated quote.
fn shell_words(line: &str) -> Option<Vec<String>> {
    let mut words = Vec::new();
    let mut word: Option<String> = None;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                let w = word.get_or_insert_with(String::new);
                loop {
                    match chars.next()? {
                        '\'' => break,
                        c => w.push(c),
                    }
                }
            }
            '"' => {
                let w = word.get_or_insert_with(String::new);
                loop {
                    match chars.next()? {
                        '"' => break,
                        '\\' => w.push(chars.next()?),
                        c => w.push(c),
                    }
                }
            }
            '\\' => word.get_or_insert_with(String::new).push(chars.next().unwrap_or(' ')),
            '#' if word.is_none() => break,
            c if c.is_whitespace() => words.extend(word.take()),
            c => word.get_or_insert_with(String::new).push(c),
        }
    }
    words.extend(word);
    Some(words)
}

/// The `vault …` command in a line of shell, without what surrounds it: environment
/// assignments before it, pipes and redirections after it.
fn vault_command(words: &[String]) -> Option<Vec<String>> {
    // The first word that is no `NAME=value` assignment.
    let start = words.iter().position(|w| !w.contains('=') || w.starts_with('-'))?;
    if words[start] != "vault" {
        return None;
    }
    let ends = |w: &String| ["|", "||", "&&", ";", "&"].contains(&w.as_str()) || w.starts_with('>') || w == "2>&1";
    let end = words[start..].iter().position(ends).map_or(words.len(), |i| start + i);
    Some(words[start..end].to_vec())
}

/// Placeholders and alternatives mark a synopsis: `[…]`, `A | B`, `…`, `PATH`, `ID`.
fn is_synopsis(text: &str, words: &[String]) -> bool {
    text.contains('[')
        || text.contains(" | ")
        || text.contains('…')
        || text.contains("...")
        || words.iter().any(|w| {
            let w = w.trim_start_matches('-');
            w.len() >= 2 && w.chars().all(|c| c.is_ascii_uppercase() || c == '_' || c == ',')
        })
}

fn examples() -> Vec<Example> {
    let mut out = Vec::new();
    for file in doc_files() {
        let text = std::fs::read_to_string(&file).expect("read doc");
        let name = file.file_name().unwrap_or_default().to_string_lossy().into_owned();
        let mut fence: Option<String> = None;
        let mut pending = String::new();
        for (n, line) in text.lines().enumerate() {
            let place = format!("{name}:{}", n + 1);
            if let Some(info) = line.trim_start().strip_prefix("```") {
                fence = match fence {
                    None => Some(info.trim().to_string()),
                    Some(_) => None,
                };
                continue;
            }
            match &fence {
                // Shell blocks hold commands; text blocks hold output, except prompted lines.
                Some(info) if matches!(info.as_str(), "sh" | "bash" | "shell" | "console" | "text" | "") => {
                    let prompted = line.trim_start().strip_prefix("$ ");
                    if prompted.is_none() && matches!(info.as_str(), "text" | "") {
                        continue;
                    }
                    let line = prompted.unwrap_or(line.trim_start());
                    if let Some(joined) = line.strip_suffix('\\') {
                        pending.push_str(joined);
                        continue;
                    }
                    let full = std::mem::take(&mut pending) + line;
                    let Some(words) = shell_words(&full) else { continue };
                    if let Some(cmd) = vault_command(&words) {
                        let synopsis = is_synopsis(&full, &cmd);
                        out.push(Example { place, words: cmd, synopsis, inline: false });
                    }
                }
                Some(_) => {}
                None => {
                    for span in line.split('`').skip(1).step_by(2) {
                        if !span.starts_with("vault ") {
                            continue;
                        }
                        let Some(words) = shell_words(span) else { continue };
                        // In a synopsis `|` separates alternatives; it is no pipe.
                        let synopsis = is_synopsis(span, &words);
                        let cmd = if synopsis { Some(words) } else { vault_command(&words) };
                        if let Some(cmd) = cmd {
                            out.push(Example { place: place.clone(), synopsis, words: cmd, inline: true });
                        }
                    }
                }
            }
        }
    }
    out
}

/// Every complete command in the docs parses; `--help` and `--version` stand for
/// themselves. A fragment in prose may leave out a required argument.
#[test]
fn documented_commands_parse() {
    let all = examples();
    let commands: Vec<&Example> = all.iter().filter(|e| !e.synopsis).collect();
    assert!(commands.len() >= 50, "found only {} documented commands: is the extraction broken?", commands.len());
    let mut bad = Vec::new();
    for e in &commands {
        if let Err(err) = Cli::try_parse_from_words(&e.words) {
            use clap::error::ErrorKind::*;
            match err.kind() {
                DisplayHelp | DisplayVersion | DisplayHelpOnMissingArgumentOrSubcommand => {}
                MissingRequiredArgument if e.inline => {}
                _ => bad.push(format!("{}: {}\n    {}", e.place, e.words.join(" "), err.render().to_string().trim())),
            }
        }
    }
    assert!(bad.is_empty(), "documented commands that vault rejects:\n{}", bad.join("\n"));
}

/// Every flag a synopsis names exists on the command it names.
#[test]
fn documented_synopses_name_real_flags() {
    let all = examples();
    let synopses: Vec<&Example> = all.iter().filter(|e| e.synopsis).collect();
    assert!(synopses.len() >= 20, "found only {} synopses", synopses.len());
    let mut root = Cli::command();
    root.build();
    let mut bad = Vec::new();
    for e in &synopses {
        // The command: subcommand names after `vault` (global options may stand between).
        let mut cmd = &root;
        let mut flags = Vec::new();
        for w in &e.words[1..] {
            let w = w.trim_matches(|c| c == '[' || c == ']' || c == '(' || c == ')');
            if w == "|" {
                continue;
            } else if let Some(sub) = cmd.find_subcommand(w) {
                cmd = sub;
            } else if w.starts_with('-') && w.len() > 1 && w != "--" {
                flags.push(w.split('=').next().unwrap_or(w).trim_end_matches(['…', '.']).to_string());
            }
        }
        for flag in flags {
            if flag.contains('*') {
                // `--keep-*`: some flag of that family.
                let stem = flag.trim_start_matches('-').trim_end_matches('*');
                if !cmd.get_arguments().any(|a| a.get_long().is_some_and(|l| l.starts_with(stem))) {
                    bad.push(format!("{}: no {flag} on `{}`", e.place, cmd.get_name()));
                }
                continue;
            }
            let known = cmd.get_arguments().chain(root.get_arguments()).any(|a| match flag.strip_prefix("--") {
                Some(long) => a.get_long() == Some(long) || a.get_all_aliases().is_some_and(|al| al.contains(&long)),
                None => flag.len() == 2 && a.get_short() == flag.chars().nth(1),
            });
            if !known {
                bad.push(format!(
                    "{}: `{}` names {flag}, which `{}` lacks",
                    e.place,
                    e.words.join(" "),
                    cmd.get_name()
                ));
            }
        }
    }
    assert!(bad.is_empty(), "documented synopses with flags vault lacks:\n{}", bad.join("\n"));
}

#[test]
fn shell_words_split_as_sh_does() {
    assert_eq!(
        shell_words(r#"A=1 vault backup --exclude '*.tmp' "a b" c\ d # comment"#).unwrap(),
        ["A=1", "vault", "backup", "--exclude", "*.tmp", "a b", "c d"]
    );
    let w = shell_words("vault backup ~ --json | tail -n 1").unwrap();
    assert_eq!(vault_command(&w).unwrap(), ["vault", "backup", "~", "--json"]);
    assert!(shell_words("vault 'open").is_none());
    assert!(vault_command(&shell_words("echo vault").unwrap()).is_none());
    assert!(is_synopsis("vault ls SNAPSHOT", &shell_words("vault ls SNAPSHOT").unwrap()));
    assert!(!is_synopsis("vault ls latest", &shell_words("vault ls latest").unwrap()));
}

impl Cli {
    fn try_parse_from_words(words: &[String]) -> Result<Cli, clap::Error> {
        <Cli as clap::Parser>::try_parse_from(words)
    }
}

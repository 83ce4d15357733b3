//! Glob patterns for `--exclude`/`--include`.
//!
//! A pattern without `/` matches an entry's name at any depth (`*.tmp`, `node_modules`).
//! A pattern with `/` matches the whole path: anchored at the root when it starts with `/`,
//! otherwise at any depth. `**` crosses directories.

use std::path::Path;

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};

use super::error::{OpError, Result};

#[derive(Clone, Debug)]
pub(crate) struct PatternSet {
    names: GlobSet,
    paths: GlobSet,
    empty: bool,
}

impl PatternSet {
    pub fn new<S: AsRef<str>>(patterns: &[S]) -> Result<PatternSet> {
        Self::build(patterns, false)
    }

    /// Patterns that match regardless of case (`--iexclude`).
    pub fn new_case_insensitive<S: AsRef<str>>(patterns: &[S]) -> Result<PatternSet> {
        Self::build(patterns, true)
    }

    fn build<S: AsRef<str>>(patterns: &[S], case_insensitive: bool) -> Result<PatternSet> {
        let mut names = GlobSetBuilder::new();
        let mut paths = GlobSetBuilder::new();
        for p in patterns {
            let p = p.as_ref().trim_end_matches('/');
            if p.is_empty() {
                continue;
            }
            let bad = |e: globset::Error| OpError::Pattern { pattern: p.to_string(), reason: e.kind().to_string() };
            let glob = |s: &str| GlobBuilder::new(s).case_insensitive(case_insensitive).build().map_err(bad);
            if p.contains('/') {
                let anchored = if p.starts_with('/') { p.to_string() } else { format!("**/{p}") };
                paths.add(glob(&anchored)?);
            } else {
                names.add(glob(p)?);
            }
        }
        let bad = |e: globset::Error| OpError::Pattern {
            pattern: patterns.iter().map(|p| p.as_ref()).collect::<Vec<_>>().join(", "),
            reason: e.to_string(),
        };
        let names = names.build().map_err(bad)?;
        let paths = paths.build().map_err(bad)?;
        let empty = names.is_empty() && paths.is_empty();
        Ok(PatternSet { names, paths, empty })
    }

    pub fn is_empty(&self) -> bool {
        self.empty
    }

    /// `path` is absolute (a source path, or a snapshot path starting at `/`).
    pub fn matches(&self, path: &Path) -> bool {
        if self.empty {
            return false;
        }
        if let Some(name) = path.file_name()
            && self.names.is_match(Path::new(name))
        {
            return true;
        }
        self.paths.is_match(path)
    }
}

/// Reads patterns from an exclude file: one per line, `#` comments and blank lines skipped.
pub fn read_pattern_file(text: &str) -> Vec<String> {
    text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).map(String::from).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn semantics() {
        let p = PatternSet::new(&["*.tmp", "/home/*/cache", "build/out"]).unwrap();
        assert!(p.matches(Path::new("/a/b/x.tmp")));
        assert!(!p.matches(Path::new("/a/b/x.tmpl")));
        assert!(p.matches(Path::new("/home/u/cache")));
        assert!(!p.matches(Path::new("/x/home/u/cache")));
        assert!(p.matches(Path::new("/src/build/out")));
        assert!(!PatternSet::new::<&str>(&[]).unwrap().matches(Path::new("/x")));
        assert!(PatternSet::new(&["a[b"]).is_err());
    }
}

//! Where a repository lives, parsed from a repository string.

use std::fmt;
use std::path::PathBuf;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Location {
    /// A directory on a local file system.
    Local(PathBuf),
    /// Process memory (tests only); the name keeps distinct repositories apart in output.
    Memory(String),
}

#[derive(Debug, thiserror::Error)]
#[error("invalid repository {input:?}: {reason}")]
pub struct LocationError {
    pub input: String,
    pub reason: String,
}

impl Location {
    pub fn parse(s: &str) -> Result<Location, LocationError> {
        let err = |reason: &str| LocationError {
            input: s.to_string(),
            reason: reason.to_string(),
        };
        if s.is_empty() {
            return Err(err("empty repository string"));
        }
        if let Some(rest) = s.strip_prefix("local:") {
            if rest.is_empty() {
                return Err(err("local: needs a path"));
            }
            return Ok(Location::Local(PathBuf::from(rest)));
        }
        if let Some(rest) = s.strip_prefix("memory:") {
            return Ok(Location::Memory(rest.to_string()));
        }
        if let Some((scheme, _)) = s.split_once("://") {
            return Err(err(&format!(
                "unsupported scheme {scheme:?} (supported: a local path or local:PATH)"
            )));
        }
        Ok(Location::Local(PathBuf::from(s)))
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Local(p) => write!(f, "local:{}", p.display()),
            Location::Memory(n) => write!(f, "memory:{n}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses() {
        assert_eq!(
            Location::parse("/a/b").unwrap(),
            Location::Local("/a/b".into())
        );
        assert_eq!(
            Location::parse("local:rel").unwrap(),
            Location::Local("rel".into())
        );
        assert!(Location::parse("ftp://x").is_err());
        assert!(Location::parse("").is_err());
    }
}

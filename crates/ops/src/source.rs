//! How backup sources map into a snapshot's tree, as restic does it: an absolute source
//! keeps its full path (`/home/u/docs` → `home/u/docs`), a relative one its relative path
//! with leading `..` removed, and `.` puts the directory's contents at the root.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Component, Path, PathBuf};

use super::error::{OpError, Result};

/// A directory of the snapshot that exists because of the sources' paths.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct VirtualDir {
    /// The real directory that gives this directory its metadata (and, for `contents`, its
    /// entries).
    pub meta_path: Option<PathBuf>,
    /// When set, the real directory's entries are part of this directory too.
    pub contents: Option<PathBuf>,
    /// Entries named on the command line below this directory.
    pub children: BTreeMap<OsString, VirtualNode>,
}

#[derive(Debug, PartialEq, Eq)]
/// One entry of the virtual root a backup of several sources starts from.
pub enum VirtualNode {
    /// A directory on the way to a source.
    Dir(VirtualDir),
    /// A source given on the command line: archived from the real file system.
    Source(PathBuf),
}

/// Lexically normalised absolute path (no `.`/`..`, symlinks not resolved, like restic).
pub fn absolute(path: &Path, cwd: &Path) -> PathBuf {
    let joined = if path.is_absolute() { path.to_path_buf() } else { cwd.join(path) };
    let mut out = PathBuf::from("/");
    for c in joined.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::Normal(n) => out.push(n),
            _ => {}
        }
    }
    out
}

/// The components a source occupies inside the snapshot: those of its absolute path, so
/// that the paths a snapshot records are where its tree holds them, however the source
/// was named (`docs`, `./docs/`, `/home/me/docs`).
pub fn snapshot_components(path: &Path, cwd: &Path) -> Vec<OsString> {
    absolute(path, cwd)
        .components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_os_string()),
            _ => None,
        })
        .collect()
}

/// Builds the virtual root from the sources. `sources` must exist (checked by the caller).
pub fn build(sources: &[PathBuf], cwd: &Path) -> Result<VirtualDir> {
    let mut root = VirtualDir { meta_path: None, contents: None, children: BTreeMap::new() };
    for src in sources {
        let abs = absolute(src, cwd);
        let comps = snapshot_components(src, cwd);
        if comps.is_empty() {
            if root.contents.as_ref().is_some_and(|c| c != &abs) {
                return Err(OpError::Source {
                    path: src.clone(),
                    reason: "two sources map to the snapshot's root".into(),
                });
            }
            root.meta_path = Some(abs.clone());
            root.contents = Some(abs);
            continue;
        }
        // The real directory behind each intermediate component is the source's ancestor
        // at the same depth from the end.
        let mut dir = &mut root;
        let depth = comps.len();
        for (i, name) in comps.iter().enumerate() {
            let real = ancestor(&abs, depth - 1 - i);
            if i + 1 == depth {
                match dir.children.get(name) {
                    Some(VirtualNode::Source(p)) if p == &abs => {}
                    Some(_) => {
                        return Err(OpError::Source {
                            path: src.clone(),
                            reason: format!("overlaps another source at {:?} in the snapshot", name),
                        });
                    }
                    None => {
                        dir.children.insert(name.clone(), VirtualNode::Source(abs.clone()));
                    }
                }
            } else {
                let entry = dir.children.entry(name.clone()).or_insert_with(|| {
                    VirtualNode::Dir(VirtualDir { meta_path: Some(real.clone()), ..Default::default() })
                });
                dir = match entry {
                    VirtualNode::Dir(d) => d,
                    VirtualNode::Source(_) => {
                        return Err(OpError::Source {
                            path: src.clone(),
                            reason: "lies inside another source; give only the outer one".into(),
                        });
                    }
                };
            }
        }
    }
    Ok(root)
}

fn ancestor(p: &Path, up: usize) -> PathBuf {
    let mut a = p.to_path_buf();
    for _ in 0..up {
        a.pop();
    }
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mapping() {
        let cwd = Path::new("/work/x");
        assert_eq!(snapshot_components(Path::new("/home/u/docs"), cwd), vec!["home", "u", "docs"]);
        assert_eq!(snapshot_components(Path::new("."), cwd), vec!["work", "x"]);
        assert_eq!(snapshot_components(Path::new("../y/z/"), cwd), vec!["work", "y", "z"]);
        assert_eq!(snapshot_components(Path::new("/"), cwd), Vec::<OsString>::new());
        assert_eq!(absolute(Path::new("../y/./z"), cwd), PathBuf::from("/work/y/z"));
    }

    #[test]
    fn virtual_tree() {
        let cwd = Path::new("/c");
        let root = build(&[PathBuf::from("/a/b"), PathBuf::from("/a/c"), PathBuf::from("d")], cwd).unwrap();
        let VirtualNode::Dir(a) = &root.children[&OsString::from("a")] else { panic!() };
        assert_eq!(a.meta_path.as_deref(), Some(Path::new("/a")));
        assert_eq!(a.children[&OsString::from("b")], VirtualNode::Source("/a/b".into()));
        let VirtualNode::Dir(c) = &root.children[&OsString::from("c")] else { panic!() };
        assert_eq!(c.children[&OsString::from("d")], VirtualNode::Source("/c/d".into()));
        assert!(build(&[PathBuf::from("/a"), PathBuf::from("/a/b")], cwd).is_err());
        // `.` and its absolute name are one source, stored where its absolute path says.
        let dot = build(&[PathBuf::from("."), PathBuf::from("/c")], cwd).unwrap();
        assert_eq!(dot.children[&OsString::from("c")], VirtualNode::Source("/c".into()));
        let root_dir = build(&[PathBuf::from("/")], cwd).unwrap();
        assert_eq!(root_dir.contents.as_deref(), Some(Path::new("/")));
    }
}

//! Decoded views of stored objects for `cat` (debugging), as JSON values.

use serde::Serialize;
use serde_json::{Value, json};

use super::error::Result;
use vault_format::index::IndexFile;
use vault_format::tree::{Node, Tree};
use vault_repo::Repository;

#[derive(Serialize)]
struct NodeView<'a> {
    name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    name_hex: Option<String>,
    #[serde(rename = "type")]
    kind: vault_format::tree::NodeKind,
    mode: String,
    uid: u32,
    gid: u32,
    user: String,
    group: String,
    mtime: vault_format::tree::Timestamp,
    ctime: vault_format::tree::Timestamp,
    inode: u64,
    device: u64,
    links: u64,
    size: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    rdev: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    target: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    subtree: Option<String>,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    content: &'a [vault_format::tree::ContentItem],
    #[serde(skip_serializing_if = "Vec::is_empty")]
    xattrs: Vec<(String, String)>,
}

/// A node as JSON (`cat tree`).
pub fn node_json(n: &Node) -> Value {
    let lossy = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    let v = NodeView {
        name: lossy(&n.name),
        name_hex: std::str::from_utf8(&n.name).is_err().then(|| hex::encode(&n.name)),
        kind: n.kind,
        mode: format!("{:04o}", n.mode),
        uid: n.uid,
        gid: n.gid,
        user: lossy(&n.user),
        group: lossy(&n.group),
        mtime: n.mtime,
        ctime: n.ctime,
        inode: n.inode,
        device: n.device,
        links: n.links,
        size: n.size,
        rdev: (n.rdev != 0).then_some(n.rdev),
        target: (!n.target.is_empty()).then(|| lossy(&n.target)),
        subtree: n.subtree.map(|s| s.to_hex()),
        content: &n.content,
        xattrs: n.xattrs.iter().map(|(k, v)| (lossy(k), hex::encode(v))).collect(),
    };
    serde_json::to_value(v).unwrap_or(Value::Null)
}

/// A tree as JSON.
pub fn tree_json(t: &Tree) -> Value {
    json!({ "nodes": t.nodes.iter().map(node_json).collect::<Vec<_>>() })
}

/// An index file as JSON.
pub fn index_json(i: &IndexFile) -> Value {
    json!({
        "supersedes": i.supersedes,
        "packs": i.packs.iter().map(|p| json!({
            "id": p.id,
            "type": p.kind,
            "size": p.size,
            "blobs": p.blobs.iter().map(|b| json!({"id": b.id, "offset": b.offset, "length": b.length, "raw_length": b.raw_length})).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    })
}

/// The repository's config as JSON.
pub fn config_json(repo: &Repository) -> Result<Value> {
    Ok(serde_json::from_slice(&repo.config().to_json()).unwrap_or(Value::Null))
}

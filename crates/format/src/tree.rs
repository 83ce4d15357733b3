//! Trees: one directory's entries, encoded canonically (sorted by name bytes, every field
//! present, minimal varints) so that an unchanged directory always yields the same bytes
//! and therefore the same blob id.
//!
//! ```text
//! tree  := version:u8 | count:varint | node*
//! node  := name:bytes | kind:u8 | mode:varint | uid:varint | gid:varint | user:bytes
//!        | group:bytes | mtime_s:svarint | mtime_ns:varint | ctime_s:svarint
//!        | ctime_ns:varint | inode:varint | device:varint | links:varint | size:varint
//!        | rdev:varint | target:bytes | has_subtree:u8 | subtree[32]?
//!        | content_count:varint | item* | xattr_count:varint | (name:bytes value:bytes)*
//! item  := 0 | blob_id[32] | length:varint      (data)
//!        | 1 | length:varint                    (hole)
//! ```

use serde::{Deserialize, Serialize};

use super::FORMAT_VERSION;
use super::codec::{Reader, Writer};
use super::error::{FormatError, Result};
use super::id::BlobId;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
/// The type of a file-system entry.
pub enum NodeKind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// A symbolic link.
    Symlink,
    /// A named pipe.
    Fifo,
    /// A character device.
    CharDev,
    /// A block device.
    BlockDev,
    /// A Unix socket (restored as a socket node).
    Socket,
}

impl NodeKind {
    fn to_byte(self) -> u8 {
        match self {
            NodeKind::File => 1,
            NodeKind::Dir => 2,
            NodeKind::Symlink => 3,
            NodeKind::Fifo => 4,
            NodeKind::CharDev => 5,
            NodeKind::BlockDev => 6,
            NodeKind::Socket => 7,
        }
    }

    fn from_byte(b: u8) -> Result<Self> {
        Ok(match b {
            1 => NodeKind::File,
            2 => NodeKind::Dir,
            3 => NodeKind::Symlink,
            4 => NodeKind::Fifo,
            5 => NodeKind::CharDev,
            6 => NodeKind::BlockDev,
            7 => NodeKind::Socket,
            _ => return Err(FormatError::invalid("tree", format!("node kind {b}"))),
        })
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
/// A file time: seconds and nanoseconds since the Unix epoch.
pub struct Timestamp {
    /// Seconds (negative before 1970).
    pub sec: i64,
    /// Nanoseconds, below 10^9.
    pub nsec: u32,
}

/// A piece of a file's content in order: a stored blob or a hole of zeros.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ContentItem {
    /// A stretch of bytes stored as a data blob.
    Data {
        /// The data blob.
        id: BlobId,
        /// Its length in bytes.
        length: u32,
    },
    /// A stretch of zero bytes stored as a hole.
    Hole {
        /// Its length in bytes.
        length: u64,
    },
}

impl ContentItem {
    /// Bytes this item contributes to the file.
    pub fn len(&self) -> u64 {
        match self {
            ContentItem::Data { length, .. } => u64::from(*length),
            ContentItem::Hole { length } => *length,
        }
    }

    /// Whether it contributes none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
/// One entry of a directory with its metadata.
pub struct Node {
    /// The file name (bytes, as the file system gave them).
    pub name: Vec<u8>,
    /// Its type.
    pub kind: NodeKind,
    /// Permission bits including setuid, setgid and sticky (the low 12 bits of st_mode).
    pub mode: u32,
    /// Owner uid.
    pub uid: u32,
    /// Owner gid.
    pub gid: u32,
    /// Owner user name, if the source host knew it.
    pub user: Vec<u8>,
    /// Owner group name, if the source host knew it.
    pub group: Vec<u8>,
    /// Modification time.
    pub mtime: Timestamp,
    /// Status change time.
    pub ctime: Timestamp,
    /// Inode number on the source (for hard links and change detection).
    pub inode: u64,
    /// Device number of the source file system.
    pub device: u64,
    /// Hard link count.
    pub links: u64,
    /// File size in bytes (the sum of `content`).
    pub size: u64,
    /// Device number for character and block devices.
    pub rdev: u64,
    /// Symlink target.
    pub target: Vec<u8>,
    /// The tree of a directory.
    pub subtree: Option<BlobId>,
    /// A file's content, in order.
    pub content: Vec<ContentItem>,
    /// Sorted by name.
    pub xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

impl Node {
    /// An entry with this name and kind and every other field empty.
    pub fn new(name: Vec<u8>, kind: NodeKind) -> Node {
        Node {
            name,
            kind,
            mode: 0,
            uid: 0,
            gid: 0,
            user: Vec::new(),
            group: Vec::new(),
            mtime: Timestamp::default(),
            ctime: Timestamp::default(),
            inode: 0,
            device: 0,
            links: 0,
            size: 0,
            rdev: 0,
            target: Vec::new(),
            subtree: None,
            content: Vec::new(),
            xattrs: Vec::new(),
        }
    }

    /// Whether a file looks unchanged since `earlier` was recorded: both regular files
    /// with the same size, mtime, ctime and inode. Backup does not read such a file
    /// again, and diff counts it unchanged, by this one rule.
    pub fn same_file_stat(&self, earlier: &Node) -> bool {
        self.kind == NodeKind::File
            && earlier.kind == NodeKind::File
            && self.size == earlier.size
            && self.mtime == earlier.mtime
            && self.ctime == earlier.ctime
            && self.inode == earlier.inode
    }

    /// The name as UTF-8, with invalid bytes replaced.
    pub fn name_lossy(&self) -> String {
        String::from_utf8_lossy(&self.name).into_owned()
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
/// A directory listing: nodes sorted by name, names unique.
pub struct Tree {
    /// The entries.
    pub nodes: Vec<Node>,
}

/// The shortest node encoding: a one-byte name and every other field at its smallest.
const NODE_MIN_LEN: usize = 21;

impl Tree {
    /// Sorts entries into canonical order. Names must be unique within a directory.
    pub fn canonicalize(&mut self) {
        self.nodes.sort_by(|a, b| a.name.cmp(&b.name));
        for n in &mut self.nodes {
            n.xattrs.sort();
        }
    }

    /// The node named `name`.
    pub fn find(&self, name: &[u8]) -> Option<&Node> {
        self.nodes.binary_search_by(|n| n.name.as_slice().cmp(name)).ok().map(|i| &self.nodes[i])
    }

    /// The blob plaintext of this tree.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer { buf: Vec::with_capacity(16 + self.nodes.len() * 96) };
        w.u8(FORMAT_VERSION);
        w.varint(self.nodes.len() as u64);
        for n in &self.nodes {
            w.bytes(&n.name);
            w.u8(n.kind.to_byte());
            w.varint(u64::from(n.mode));
            w.varint(u64::from(n.uid));
            w.varint(u64::from(n.gid));
            w.bytes(&n.user);
            w.bytes(&n.group);
            w.signed(n.mtime.sec);
            w.varint(u64::from(n.mtime.nsec));
            w.signed(n.ctime.sec);
            w.varint(u64::from(n.ctime.nsec));
            w.varint(n.inode);
            w.varint(n.device);
            w.varint(n.links);
            w.varint(n.size);
            w.varint(n.rdev);
            w.bytes(&n.target);
            match &n.subtree {
                Some(id) => {
                    w.u8(1);
                    w.id(&id.0);
                }
                None => w.u8(0),
            }
            w.varint(n.content.len() as u64);
            for item in &n.content {
                match item {
                    ContentItem::Data { id, length } => {
                        w.u8(0);
                        w.id(&id.0);
                        w.varint(u64::from(*length));
                    }
                    ContentItem::Hole { length } => {
                        w.u8(1);
                        w.varint(*length);
                    }
                }
            }
            w.varint(n.xattrs.len() as u64);
            for (k, v) in &n.xattrs {
                w.bytes(k);
                w.bytes(v);
            }
        }
        w.finish()
    }

    /// Decodes a tree and rejects any non-canonical form.
    pub fn decode(bytes: &[u8]) -> Result<Tree> {
        let mut r = Reader::new(bytes, "tree");
        let v = r.u8()?;
        if v != FORMAT_VERSION {
            return Err(FormatError::UnsupportedVersion { what: "tree", version: u64::from(v) });
        }
        let count = r.count(NODE_MIN_LEN)?;
        let mut nodes: Vec<Node> = Vec::with_capacity(count);
        for _ in 0..count {
            let name = r.bytes()?.to_vec();
            if name.is_empty() || name == b"." || name == b".." || name.contains(&b'/') || name.contains(&0) {
                return Err(FormatError::invalid(
                    "tree",
                    format!("bad entry name {:?}", String::from_utf8_lossy(&name)),
                ));
            }
            if let Some(prev) = nodes.last()
                && prev.name >= name
            {
                return Err(FormatError::invalid("tree", "entries not sorted or not unique"));
            }
            let kind = NodeKind::from_byte(r.u8()?)?;
            let mut n = Node::new(name, kind);
            n.mode = r.varint_u32()?;
            n.uid = r.varint_u32()?;
            n.gid = r.varint_u32()?;
            n.user = r.bytes()?.to_vec();
            n.group = r.bytes()?.to_vec();
            n.mtime = Timestamp { sec: r.signed()?, nsec: r.varint_u32()? };
            n.ctime = Timestamp { sec: r.signed()?, nsec: r.varint_u32()? };
            n.inode = r.varint()?;
            n.device = r.varint()?;
            n.links = r.varint()?;
            n.size = r.varint()?;
            n.rdev = r.varint()?;
            n.target = r.bytes()?.to_vec();
            n.subtree = match r.u8()? {
                0 => None,
                1 => Some(BlobId(r.id()?)),
                b => return Err(FormatError::invalid("tree", format!("subtree flag {b}"))),
            };
            if n.subtree.is_some() != (kind == NodeKind::Dir) {
                return Err(FormatError::invalid("tree", "subtree present exactly for directories"));
            }
            let items = r.count(2)?;
            let mut total: u64 = 0;
            for _ in 0..items {
                let item = match r.u8()? {
                    0 => ContentItem::Data { id: BlobId(r.id()?), length: r.varint_u32()? },
                    1 => ContentItem::Hole { length: r.varint()? },
                    b => return Err(FormatError::invalid("tree", format!("content tag {b}"))),
                };
                total = total
                    .checked_add(item.len())
                    .ok_or_else(|| FormatError::invalid("tree", "content length overflows"))?;
                n.content.push(item);
            }
            if kind == NodeKind::File && total != n.size {
                return Err(FormatError::invalid(
                    "tree",
                    format!("content of {} sums to {total}, size is {}", n.name_lossy(), n.size),
                ));
            }
            let xn = r.count(2)?;
            for _ in 0..xn {
                let k = r.bytes()?.to_vec();
                let val = r.bytes()?.to_vec();
                if let Some((pk, _)) = n.xattrs.last()
                    && *pk >= k
                {
                    return Err(FormatError::invalid("tree", "xattrs not sorted or not unique"));
                }
                n.xattrs.push((k, val));
            }
            nodes.push(n);
        }
        r.expect_end()?;
        Ok(Tree { nodes })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shortest_node_decodes() {
        // A one-byte name with every other field at its smallest: 21 bytes.
        let t = Tree { nodes: vec![Node::new(b"f".to_vec(), NodeKind::File)] };
        let bytes = t.encode();
        assert_eq!(bytes.len(), 2 + 21);
        assert_eq!(Tree::decode(&bytes).unwrap(), t);
    }
    use crate::Id;
    use proptest::prelude::*;

    fn arb_node() -> impl Strategy<Value = Node> {
        (
            proptest::collection::vec(1u8..=255, 1..20)
                .prop_filter("no slash or dots", |n| !n.contains(&b'/') && n != b"." && n != b".."),
            0usize..4,
            any::<(u32, u32, u32, i64, u32, u64, u64)>(),
            proptest::collection::vec((any::<[u8; 32]>(), any::<u32>()), 0..4),
            proptest::collection::btree_map(
                proptest::collection::vec(any::<u8>(), 1..8),
                proptest::collection::vec(any::<u8>(), 0..8),
                0..3,
            ),
        )
            .prop_map(|(name, k, (mode, uid, gid, sec, nsec, inode, hole), content, xattrs)| {
                let kind = [NodeKind::File, NodeKind::Dir, NodeKind::Symlink, NodeKind::Fifo][k];
                let mut n = Node::new(name, kind);
                n.mode = mode & 0o7777;
                n.uid = uid;
                n.gid = gid;
                n.mtime = Timestamp { sec, nsec: nsec % 1_000_000_000 };
                n.inode = inode;
                n.user = b"user".to_vec();
                n.xattrs = xattrs.into_iter().collect();
                match kind {
                    NodeKind::File => {
                        n.content = content
                            .into_iter()
                            .map(|(id, length)| ContentItem::Data { id: BlobId(Id(id)), length })
                            .collect();
                        n.content.push(ContentItem::Hole { length: hole >> 4 });
                        n.size = n.content.iter().map(|c| c.len()).sum();
                    }
                    NodeKind::Dir => n.subtree = Some(BlobId(Id([7; 32]))),
                    NodeKind::Symlink => n.target = b"../x".to_vec(),
                    _ => {}
                }
                n
            })
    }

    proptest! {
        #[test]
        fn round_trip_and_canonical(nodes in proptest::collection::vec(arb_node(), 0..10)) {
            let mut t = Tree { nodes };
            t.nodes.dedup_by(|a, b| a.name == b.name);
            let mut shuffled = t.clone();
            shuffled.nodes.reverse();
            t.canonicalize();
            shuffled.canonicalize();
            let mut uniq = t.clone();
            uniq.nodes.dedup_by(|a, b| a.name == b.name);
            prop_assume!(uniq.nodes.len() == t.nodes.len());
            let bytes = t.encode();
            prop_assert_eq!(&bytes, &shuffled.encode());
            let back = Tree::decode(&bytes).unwrap();
            prop_assert_eq!(&back, &t);
            prop_assert_eq!(back.encode(), bytes);
        }

        #[test]
        fn decode_never_panics(bytes: Vec<u8>) {
            let _ = Tree::decode(&bytes);
        }
    }

    #[test]
    fn unsorted_is_rejected() {
        let mut a = Node::new(b"b".to_vec(), NodeKind::Fifo);
        a.mode = 0o644;
        let b = Node::new(b"a".to_vec(), NodeKind::Fifo);
        let t = Tree { nodes: vec![a, b] };
        assert!(Tree::decode(&t.encode()).is_err());
    }
}

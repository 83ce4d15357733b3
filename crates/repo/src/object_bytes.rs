//! An object's bytes as the backend delivered them.
//!
//! OpenDAL reads large objects in several buffers (2 MiB each on `fs`). Joining a 16 MiB
//! pack into one piece only to slice it into blobs again cost restore a tenth of its
//! time, so packs stay in pieces: a blob is handed out without a copy when it lies in one
//! piece, and copied only when it straddles two.

use std::ops::Range;

use bytes::{Bytes, BytesMut};

use vault_format::Id;

#[derive(Clone, Default)]
/// A stored object's bytes as the backend delivered them, possibly in several pieces (not copied into one buffer).
pub struct ObjectBytes(opendal::Buffer);

impl ObjectBytes {
    pub(crate) fn new(buf: opendal::Buffer) -> Self {
        ObjectBytes(buf)
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are no bytes.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The bytes in `range`, or `None` when it reaches past the end.
    pub fn slice(&self, range: Range<usize>) -> Option<Bytes> {
        if range.start > range.end || range.end > self.len() {
            return None;
        }
        Some(self.0.slice(range).to_bytes())
    }

    /// The whole object in one piece (a copy only when it came in several).
    pub fn to_bytes(&self) -> Bytes {
        self.0.to_bytes()
    }

    /// The bytes in one buffer of the caller's own, to be changed in place: no copy when
    /// they came in one piece that nothing else shares (remote ranges), one copy
    /// otherwise (local reads, whose buffer OpenDAL's pool keeps the rest of).
    pub fn into_mut(self) -> BytesMut {
        let whole = self.0.to_bytes();
        drop(self);
        whole.try_into_mut().unwrap_or_else(|shared| BytesMut::from(&shared[..]))
    }

    /// The name the object's bytes hash to (see [`Id::of_stored_bytes`]).
    pub fn stored_id(&self) -> Id {
        Id::of_stored_parts(self.0.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slices_within_and_across_pieces() {
        let parts = vec![Bytes::from_static(b"abcd"), Bytes::from_static(b"efgh"), Bytes::from_static(b"ij")];
        let o = ObjectBytes::new(opendal::Buffer::from(parts));
        assert_eq!(o.len(), 10);
        assert_eq!(&o.slice(1..3).unwrap()[..], b"bc");
        assert_eq!(&o.slice(2..9).unwrap()[..], b"cdefghi");
        assert_eq!(&o.slice(0..10).unwrap()[..], b"abcdefghij");
        assert!(o.slice(5..11).is_none());
        assert_eq!(&o.to_bytes()[..], b"abcdefghij");
        assert_eq!(o.stored_id(), Id::of_stored_bytes(b"abcdefghij"));
        assert_eq!(&o.into_mut()[..], b"abcdefghij");
    }

    #[test]
    fn one_unshared_piece_becomes_mutable_without_a_copy() {
        let v = b"0123456789".to_vec();
        let at = v.as_ptr();
        let m = ObjectBytes::new(opendal::Buffer::from(v)).into_mut();
        assert_eq!((m.as_ptr(), &m[..]), (at, &b"0123456789"[..]));
        // Shared with another holder: copied, the other's bytes untouched.
        let b = Bytes::from(b"abc".to_vec());
        let mut m = ObjectBytes::new(opendal::Buffer::from(b.clone())).into_mut();
        m[0] = b'x';
        assert_eq!((&m[..], &b[..]), (&b"xbc"[..], &b"abc"[..]));
    }
}

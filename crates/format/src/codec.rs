//! Primitive binary encoding shared by every binary stored structure: unsigned LEB128
//! varints, zig-zag signed varints, length-prefixed byte strings and fixed 32-byte ids.

use super::error::{FormatError, Result};
use super::id::Id;

/// Longest accepted byte string (names, xattr values, symlink targets): bounds allocation
/// when decoding hostile input.
pub(crate) const MAX_BYTES_LEN: u64 = 64 * 1024 * 1024;

#[derive(Default)]
pub struct Writer {
    pub buf: Vec<u8>,
}

impl Writer {
    pub fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }

    pub(crate) fn varint(&mut self, mut v: u64) {
        loop {
            let byte = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                self.buf.push(byte);
                return;
            }
            self.buf.push(byte | 0x80);
        }
    }

    pub fn signed(&mut self, v: i64) {
        self.varint(((v << 1) ^ (v >> 63)) as u64);
    }

    pub fn bytes(&mut self, b: &[u8]) {
        self.varint(b.len() as u64);
        self.buf.extend_from_slice(b);
    }

    pub fn id(&mut self, id: &Id) {
        self.buf.extend_from_slice(&id.0);
    }

    pub fn finish(self) -> Vec<u8> {
        self.buf
    }
}

pub struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
    what: &'static str,
}

impl<'a> Reader<'a> {
    pub fn new(data: &'a [u8], what: &'static str) -> Self {
        Reader { data, pos: 0, what }
    }

    pub fn remaining(&self) -> usize {
        self.data.len() - self.pos
    }

    pub fn u8(&mut self) -> Result<u8> {
        let b = *self.data.get(self.pos).ok_or(FormatError::Truncated(self.what))?;
        self.pos += 1;
        Ok(b)
    }

    pub(crate) fn varint(&mut self) -> Result<u64> {
        let mut v: u64 = 0;
        for shift in (0..64).step_by(7) {
            let b = self.u8()?;
            let bits = u64::from(b & 0x7f);
            if shift == 63 && bits > 1 {
                return Err(FormatError::invalid(self.what, "varint overflows 64 bits"));
            }
            v |= bits << shift;
            if b & 0x80 == 0 {
                // Canonical encoding only: a trailing zero group would give the same value
                // two encodings, and trees must encode one way.
                if b == 0 && shift > 0 {
                    return Err(FormatError::invalid(self.what, "non-canonical varint"));
                }
                return Ok(v);
            }
        }
        Err(FormatError::invalid(self.what, "varint longer than 10 bytes"))
    }

    pub(crate) fn varint_u32(&mut self) -> Result<u32> {
        let v = self.varint()?;
        u32::try_from(v).map_err(|_| FormatError::invalid(self.what, format!("value {v} exceeds 32 bits")))
    }

    pub fn signed(&mut self) -> Result<i64> {
        let v = self.varint()?;
        Ok(((v >> 1) as i64) ^ -((v & 1) as i64))
    }

    pub fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if self.remaining() < n {
            return Err(FormatError::Truncated(self.what));
        }
        let s = &self.data[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    pub fn bytes(&mut self) -> Result<&'a [u8]> {
        let n = self.varint()?;
        if n > MAX_BYTES_LEN {
            return Err(FormatError::invalid(self.what, format!("byte string of {n} bytes")));
        }
        self.take(n as usize)
    }

    pub fn id(&mut self) -> Result<Id> {
        let s = self.take(32)?;
        Ok(Id(s.try_into().expect("take(32) returns 32 bytes")))
    }

    /// A count of following items, bounded by the bytes left so that a hostile count cannot
    /// make the decoder allocate more than the input justifies.
    pub fn count(&mut self, min_item_len: usize) -> Result<usize> {
        let n = self.varint()?;
        if n.saturating_mul(min_item_len.max(1) as u64) > self.remaining() as u64 {
            return Err(FormatError::Truncated(self.what));
        }
        Ok(n as usize)
    }

    pub(crate) fn expect_end(&self) -> Result<()> {
        if self.remaining() != 0 {
            return Err(FormatError::invalid(self.what, format!("{} trailing bytes", self.remaining())));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn varint_round_trip(v: u64, s: i64) {
            let mut w = Writer::default();
            w.varint(v);
            w.signed(s);
            let buf = w.finish();
            let mut r = Reader::new(&buf, "test");
            prop_assert_eq!(r.varint().unwrap(), v);
            prop_assert_eq!(r.signed().unwrap(), s);
            prop_assert!(r.expect_end().is_ok());
        }

        #[test]
        fn reader_never_panics(data: Vec<u8>) {
            let mut r = Reader::new(&data, "test");
            let _ = r.varint();
            let _ = r.bytes();
            let _ = r.id();
            let _ = r.count(10);
        }
    }

    #[test]
    fn non_canonical_varint_rejected() {
        let mut r = Reader::new(&[0x80, 0x00], "test");
        assert!(r.varint().is_err());
    }
}

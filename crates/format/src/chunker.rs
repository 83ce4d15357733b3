//! Content-defined chunking: FastCDC 2020 (crate `fastcdc`, normalisation level 1) with a
//! gear table derived from the repository's chunker key instead of the public table, so
//! that chunk boundaries do not reveal content to someone without the key.

use std::io::{self, Read};

use fastcdc::v2020::{Normalization, cut_gear, select_masks};
use serde::{Deserialize, Serialize};

use super::crypto::SecretKey;
use super::error::{FormatError, Result};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
/// FastCDC chunk size bounds, in bytes; fixed per repository by its config.
pub struct ChunkerParams {
    /// No chunk is shorter, except a file's last.
    pub min_size: u32,
    /// Target average chunk size.
    pub avg_size: u32,
    /// No chunk is longer.
    pub max_size: u32,
}

impl Default for ChunkerParams {
    fn default() -> Self {
        ChunkerParams { min_size: 512 * 1024, avg_size: 1024 * 1024, max_size: 4 * 1024 * 1024 }
    }
}

impl ChunkerParams {
    /// Bounds come from the FastCDC implementation; values from a repository's config are
    /// checked here so that a garbled config gives an error instead of a panic.
    pub fn validate(&self) -> Result<()> {
        let (min, avg, max) = (self.min_size, self.avg_size, self.max_size);
        let ok = (64..=1 << 20).contains(&min)
            && (256..=1 << 22).contains(&avg)
            && (1024..=1 << 24).contains(&max)
            && min < avg
            && avg < max
            && min % 2 == 0
            && avg % 2 == 0
            && max % 2 == 0;
        if ok { Ok(()) } else { Err(FormatError::invalid("chunker parameters", format!("{self:?}"))) }
    }
}

/// A content-defined chunker whose gear table is derived from the repository key, so cut points do not reveal content to someone without the key.
pub struct Chunker {
    params: ChunkerParams,
    gear: Box<[u64; 256]>,
    gear_ls: Box<[u64; 256]>,
    mask_s: u64,
    mask_l: u64,
}

impl Chunker {
    /// A chunker with the gear table keyed by `key`; fails on invalid `params`.
    pub fn new(key: &SecretKey, params: ChunkerParams) -> Result<Self> {
        params.validate()?;
        let gear = Box::new(gear_table(key));
        let mut gear_ls = Box::new([0u64; 256]);
        for (ls, g) in gear_ls.iter_mut().zip(gear.iter()) {
            *ls = g << 1;
        }
        let (mask_s, mask_l) = select_masks(params.avg_size as usize, Normalization::Level1);
        Ok(Chunker { params, gear, gear_ls, mask_s, mask_l })
    }

    /// The size bounds this chunker cuts with.
    pub fn params(&self) -> ChunkerParams {
        self.params
    }

    /// Length of the chunk starting at `data[0]`, where `data` holds all remaining bytes of
    /// the stream or at least `max_size` of them.
    pub fn cut(&self, data: &[u8]) -> usize {
        let (_, n) = cut_gear(
            data,
            self.params.min_size as usize,
            self.params.avg_size as usize,
            self.params.max_size as usize,
            self.mask_s,
            self.mask_l,
            self.mask_s << 1,
            self.mask_l << 1,
            &self.gear[..],
            &self.gear_ls[..],
        );
        n.max(data.len().min(1))
    }

    /// Chunk lengths of an in-memory buffer.
    pub fn chunk_lengths(&self, mut data: &[u8]) -> Vec<usize> {
        let mut out = Vec::new();
        while !data.is_empty() {
            let n = self.cut(data);
            out.push(n);
            data = &data[n..];
        }
        out
    }

    /// Cuts everything `reader` yields into chunks.
    pub fn stream<R: Read>(&self, reader: R) -> ChunkStream<'_, R> {
        self.stream_sized(reader, u64::MAX)
    }

    /// Like [`Chunker::stream`], with the expected stream length: small files then get a
    /// small buffer instead of one sized for the largest chunk. The stream may be longer
    /// or shorter than expected; the buffer grows as needed.
    pub fn stream_sized<R: Read>(&self, reader: R, expected_len: u64) -> ChunkStream<'_, R> {
        let max = self.params.max_size as usize * 2;
        let cap = usize::try_from(expected_len.saturating_add(1)).unwrap_or(max).clamp(64, max);
        ChunkStream { chunker: self, reader, buf: vec![0u8; cap], start: 0, end: 0, eof: false }
    }
}

/// The gear table is derived from the chunker key (knowing it reveals chunk boundaries):
/// wiped like the key.
impl Drop for Chunker {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.gear[..]);
        zeroize::Zeroize::zeroize(&mut self.gear_ls[..]);
    }
}

/// The 256 gear values: the first 2048 bytes of BLAKE3's extendable output keyed with the
/// chunker key over the empty input, read as little-endian u64.
pub fn gear_table(key: &SecretKey) -> [u64; 256] {
    let mut bytes = [0u8; 2048];
    blake3::Hasher::new_keyed(key.expose()).finalize_xof().fill(&mut bytes);
    let mut table = [0u64; 256];
    for (v, c) in table.iter_mut().zip(bytes.chunks_exact(8)) {
        *v = u64::from_le_bytes(c.try_into().expect("chunks_exact(8)"));
    }
    zeroize::Zeroize::zeroize(&mut bytes);
    table
}

pub use crate::xorshift::xorshift_bytes;

/// Chunks of a byte stream, read through one reusable buffer.
pub struct ChunkStream<'a, R: Read> {
    chunker: &'a Chunker,
    reader: R,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    eof: bool,
}

impl<R: Read> ChunkStream<'_, R> {
    /// Reads more of the stream behind the current window. The window is moved to the
    /// front only when the buffer's tail is used up, so most bytes are never moved.
    fn fill(&mut self) -> io::Result<()> {
        if self.end == self.buf.len() {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
            if self.end == self.buf.len() {
                let want = self.chunker.params.max_size as usize * 2;
                self.buf.resize((self.buf.len() * 2).min(want).max(self.end + 1), 0);
            }
        }
        loop {
            match self.reader.read(&mut self.buf[self.end..]) {
                Ok(0) => self.eof = true,
                Ok(n) => self.end += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
            return Ok(());
        }
    }

    /// The next chunk, or `None` at the end of the stream.
    ///
    /// A cut found before the end of the bytes at hand is final even when fewer than
    /// `max_size` bytes are at hand: FastCDC decides each position from the bytes before
    /// it, so more data could only add cut points after it. Only a window without a cut
    /// point needs more data.
    pub fn next_chunk(&mut self) -> io::Result<Option<Vec<u8>>> {
        let max = self.chunker.params.max_size as usize;
        loop {
            let window = &self.buf[self.start..self.end];
            if !window.is_empty() {
                let n = self.chunker.cut(window);
                if n < window.len() || n >= max || self.eof {
                    let chunk = window[..n].to_vec();
                    self.start += n;
                    return Ok(Some(chunk));
                }
            } else if self.eof {
                return Ok(None);
            }
            self.fill()?;
        }
    }
}

impl<R: Read> Iterator for ChunkStream<'_, R> {
    type Item = io::Result<Vec<u8>>;
    fn next(&mut self) -> Option<Self::Item> {
        self.next_chunk().transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn small() -> ChunkerParams {
        ChunkerParams { min_size: 256, avg_size: 1024, max_size: 4096 }
    }

    fn chunker() -> Chunker {
        Chunker::new(&SecretKey::from_bytes([3u8; 32]), small()).unwrap()
    }

    fn pseudo_random(n: usize, seed: u64) -> Vec<u8> {
        xorshift_bytes(n, seed | 1)
    }

    /// A reader that hands out at most `step` bytes per call, like a pipe or a socket, so
    /// that cuts are searched in windows shorter than `max_size`.
    struct Trickle<'a> {
        data: &'a [u8],
        step: usize,
    }

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = buf.len().min(self.step).min(self.data.len());
            buf[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }

    #[test]
    fn gear_depends_on_key() {
        let a = gear_table(&SecretKey::from_bytes([1u8; 32]));
        let b = gear_table(&SecretKey::from_bytes([2u8; 32]));
        assert_ne!(a, b);
    }

    #[test]
    fn bad_params_are_errors() {
        let k = SecretKey::from_bytes([0u8; 32]);
        for p in [
            ChunkerParams { min_size: 0, avg_size: 1024, max_size: 4096 },
            ChunkerParams { min_size: 2048, avg_size: 1024, max_size: 4096 },
            ChunkerParams { min_size: 256, avg_size: 1 << 30, max_size: 1 << 31 },
            ChunkerParams { min_size: 257, avg_size: 1024, max_size: 4096 },
        ] {
            assert!(Chunker::new(&k, p).is_err());
        }
    }

    #[test]
    fn average_is_near_target() {
        let c = chunker();
        let data = pseudo_random(1 << 20, 9);
        let lens = c.chunk_lengths(&data);
        let avg = data.len() / lens.len();
        assert!((600..2000).contains(&avg), "avg {avg}");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn stream_matches_memory_and_respects_bounds(len in 0usize..40_000, seed: u64) {
            let c = chunker();
            let data = pseudo_random(len, seed);
            let lens = c.chunk_lengths(&data);
            let streamed: Vec<Vec<u8>> = c.stream(&data[..]).map(|r| r.unwrap()).collect();
            // A wrong length hint only changes the buffer size, never the chunks.
            for hint in [0u64, 1, len as u64 / 3, len as u64, u64::MAX] {
                let sized: Vec<Vec<u8>> = c.stream_sized(&data[..], hint).map(|r| r.unwrap()).collect();
                prop_assert_eq!(&sized, &streamed);
            }
            for step in [1usize, 7, 300, 1023, 5000] {
                let trickled: Vec<Vec<u8>> =
                    c.stream_sized(Trickle { data: &data, step }, len as u64 / 2).map(|r| r.unwrap()).collect();
                prop_assert_eq!(&trickled, &streamed);
            }
            prop_assert_eq!(streamed.iter().map(|c| c.len()).collect::<Vec<_>>(), lens.clone());
            prop_assert_eq!(streamed.concat(), data);
            for (i, l) in lens.iter().enumerate() {
                prop_assert!(*l <= 4096);
                if i + 1 < lens.len() {
                    prop_assert!(*l >= 256);
                }
            }
        }

        #[test]
        fn an_edit_moves_only_nearby_boundaries(len in 20_000usize..60_000, seed: u64, at in 0usize..1000, ins in proptest::collection::vec(any::<u8>(), 1..16)) {
            let c = chunker();
            let data = pseudo_random(len, seed);
            let mut edited = data[..at].to_vec();
            edited.extend_from_slice(&ins);
            edited.extend_from_slice(&data[at..]);
            let cuts = |d: &[u8]| {
                let mut pos = 0usize;
                c.chunk_lengths(d).into_iter().map(|l| { pos += l; pos }).collect::<Vec<_>>()
            };
            let before = cuts(&data);
            let after: Vec<usize> = cuts(&edited).into_iter().map(|p| p - ins.len()).collect();
            // Boundaries well past the edit must resynchronise.
            let far = at + 3 * 4096;
            let tail_before: Vec<_> = before.iter().filter(|&&p| p > far).collect();
            let tail_after: Vec<_> = after.iter().filter(|&&p| p > far).collect();
            prop_assert_eq!(tail_before, tail_after);
        }
    }
}

//! The plaintext envelope inside every sealed object: a codec byte, the payload length,
//! the (possibly compressed) payload and optional zero padding.
//!
//! ```text
//! envelope := codec:u8 | payload_len:varint | payload | zero bytes (padding)
//! codec    := 0 (stored) | 1 (zstd frame)
//! ```

use std::io::Read;

use serde::{Deserialize, Serialize};

use super::codec::{Reader, Writer};
use super::error::{FormatError, Result};

pub(crate) const CODEC_STORED: u8 = 0;
pub(crate) const CODEC_ZSTD: u8 = 1;

/// How payloads are compressed. `Auto` keeps the stored form when zstd does not shrink it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// Stored as is.
    Off,
    /// zstd at the given level, kept only when it shrinks the payload.
    Zstd {
        /// zstd compression level.
        level: i32,
    },
}

impl Default for Compression {
    fn default() -> Self {
        Compression::Zstd { level: 3 }
    }
}

/// Size padding of sealed blobs, which hides exact chunk lengths from the storage provider.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Padding {
    #[default]
    /// Exact lengths.
    None,
    /// Padmé (Nikitin et al., 2019): at most 12 % overhead, leaks O(log log n) bits of length.
    Padme,
}

/// The Padmé length a payload of `len` bytes is padded up to.
pub fn padme_len(len: u64) -> u64 {
    if len < 2 {
        return len;
    }
    let e = 63 - u64::from(len.leading_zeros());
    let s = 64 - u64::from(e.leading_zeros());
    let last_bits = e - s;
    let mask = (1u64 << last_bits) - 1;
    (len + mask) & !mask
}

/// The envelope of `raw` (codec byte, length, payload, padding) before sealing.
pub fn encode(raw: &[u8], compression: Compression, padding: Padding) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len() + 12);
    encode_into(&mut out, raw, compression, padding);
    out
}

/// Appends the envelope of `raw` to `out`, so that a caller can build it where it will be
/// encrypted: the payload is copied once (or compressed straight from `raw`).
pub(crate) fn encode_into(out: &mut Vec<u8>, raw: &[u8], compression: Compression, padding: Padding) {
    let start = out.len();
    let mut w = Writer { buf: std::mem::take(out) };
    match compression {
        Compression::Off => {
            w.u8(CODEC_STORED);
            w.bytes(raw);
        }
        Compression::Zstd { level } => SCRATCH.with_borrow_mut(|s| match s.compress(raw, level) {
            Some(c) => {
                w.u8(CODEC_ZSTD);
                w.bytes(c);
            }
            None => {
                w.u8(CODEC_STORED);
                w.bytes(raw);
            }
        }),
    }
    if padding == Padding::Padme {
        let target = padme_len((w.buf.len() - start) as u64) as usize;
        w.buf.resize(start + target, 0);
    }
    *out = w.finish();
}

/// Per-thread zstd state: a compression context and an output buffer, both reused, since
/// creating a context and faulting in a fresh megabyte for every chunk showed in profiles.
#[derive(Default)]
struct Scratch {
    ctx: Slot,
    probe: Slot,
    out: Vec<u8>,
}

thread_local! {
    static SCRATCH: std::cell::RefCell<Scratch> = std::cell::RefCell::default();
    static DECOMPRESSOR: std::cell::RefCell<Option<zstd::bulk::Decompressor<'static>>> =
        const { std::cell::RefCell::new(None) };
}

/// Levels below this probe a chunk before compressing it (see [`Scratch::compress`]);
/// `max` (19) always tries the whole chunk.
pub(crate) const PROBE_BELOW_LEVEL: i32 = 10;
/// Chunks shorter than this are compressed without a probe: trying costs little there.
const PROBE_MIN_LEN: usize = 64 * 1024;
const PROBE_SAMPLE: usize = 8 * 1024;

impl Scratch {
    /// The compressed form of `raw`, when it is smaller than `raw`.
    ///
    /// At fast levels, three 8 KiB samples (start, middle, end) are compressed first; when
    /// they shrink by less than 3 % the chunk is stored as it is. On incompressible data
    /// (media, archives, encrypted files) this saves a fifth of a backup's CPU time, and
    /// costs at most the few percent such data would have shrunk.
    fn compress(&mut self, raw: &[u8], level: i32) -> Option<&[u8]> {
        if level < PROBE_BELOW_LEVEL && raw.len() >= PROBE_MIN_LEN && !self.probe_compresses(raw) {
            return None;
        }
        let want = raw.len().saturating_sub(1);
        let ctx = context(&mut self.ctx, level)?;
        let out = &mut self.out;
        out.clear();
        // Room for less than `raw` only: zstd gives up as soon as the output would not
        // be smaller.
        out.reserve(want);
        match ctx.compress_to_buffer(raw, out) {
            Ok(n) if n <= want && n > 0 => Some(&out[..n]),
            _ => None,
        }
    }

    fn probe_compresses(&mut self, raw: &[u8]) -> bool {
        let mid = raw.len() / 2 - PROBE_SAMPLE / 2;
        let mut sample = Vec::with_capacity(3 * PROBE_SAMPLE);
        for at in [0, mid, raw.len() - PROBE_SAMPLE] {
            sample.extend_from_slice(&raw[at..at + PROBE_SAMPLE]);
        }
        let Some(ctx) = context(&mut self.probe, 1) else { return true };
        let mut out = Vec::with_capacity(sample.len());
        match ctx.compress_to_buffer(&sample, &mut out) {
            Ok(n) => n * 100 < sample.len() * 97,
            Err(_) => false,
        }
    }
}

type Slot = Option<(i32, zstd::bulk::Compressor<'static>)>;

fn context(slot: &mut Slot, level: i32) -> Option<&mut zstd::bulk::Compressor<'static>> {
    if !matches!(slot, Some((l, _)) if *l == level) {
        *slot = Some((level, zstd::bulk::Compressor::new(level).ok()?));
    }
    slot.as_mut().map(|(_, c)| c)
}

/// A decoded blob's bytes, within the buffer that holds them: a stored payload stays
/// where decryption left it in its envelope (restore and check open gigabytes of
/// incompressible blobs, each copied out once more otherwise).
#[derive(Debug, PartialEq, Eq)]
pub struct BlobBytes {
    buf: Vec<u8>,
    range: std::ops::Range<usize>,
}

impl BlobBytes {
    /// The bytes as a vector of their own length.
    pub fn into_vec(mut self) -> Vec<u8> {
        if self.range.start > 0 {
            self.buf.copy_within(self.range.clone(), 0);
        }
        self.buf.truncate(self.range.len());
        self.buf
    }
}

impl From<Vec<u8>> for BlobBytes {
    fn from(buf: Vec<u8>) -> Self {
        BlobBytes { range: 0..buf.len(), buf }
    }
}

impl std::ops::Deref for BlobBytes {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        // The range lies within the buffer by construction.
        self.buf.get(self.range.clone()).unwrap_or_default()
    }
}

/// [`decode`] of an envelope the caller owns: a stored payload is not copied.
pub fn decode_owned(envelope: Vec<u8>, max_len: usize) -> Result<BlobBytes> {
    match stored_payload(&envelope, max_len) {
        Some(range) => Ok(BlobBytes { buf: envelope, range }),
        // Compressed, or refused (and `decode` says why).
        None => decode(&envelope, max_len).map(BlobBytes::from),
    }
}

/// [`decode`] of an envelope where it lies: a stored payload is borrowed, not copied.
pub fn decode_borrowed(envelope: &[u8], max_len: usize) -> Result<std::borrow::Cow<'_, [u8]>> {
    match stored_payload(envelope, max_len) {
        Some(range) => Ok(std::borrow::Cow::Borrowed(&envelope[range])),
        None => decode(envelope, max_len).map(std::borrow::Cow::Owned),
    }
}

/// Where the payload of a well-formed stored (uncompressed) envelope lies in it.
fn stored_payload(envelope: &[u8], max_len: usize) -> Option<std::ops::Range<usize>> {
    let mut r = Reader::new(envelope, "envelope");
    if r.u8().ok()? != CODEC_STORED {
        return None;
    }
    let payload = r.bytes().ok()?;
    let zeros = r.take(r.remaining()).ok()?.iter().all(|&b| b == 0);
    let at = payload.as_ptr() as usize - envelope.as_ptr() as usize;
    (zeros && payload.len() <= max_len).then_some(at..at + payload.len())
}

/// Decodes an envelope; `max_len` bounds the decompressed size so that a hostile frame
/// cannot exhaust memory.
pub fn decode(envelope: &[u8], max_len: usize) -> Result<Vec<u8>> {
    let mut r = Reader::new(envelope, "envelope");
    let codec = r.u8()?;
    let payload = r.bytes()?;
    let padding = r.take(r.remaining())?;
    if padding.iter().any(|&b| b != 0) {
        return Err(FormatError::invalid("envelope", "non-zero padding"));
    }
    match codec {
        CODEC_STORED => {
            if payload.len() > max_len {
                return Err(FormatError::invalid(
                    "envelope",
                    format!("payload of {} bytes exceeds {max_len}", payload.len()),
                ));
            }
            Ok(payload.to_vec())
        }
        CODEC_ZSTD => {
            // Frames that state their size (vault's do) are decompressed in one call with a
            // reused context: creating a context per blob took 40 % of `check` on small files.
            if let Ok(Some(size)) = zstd::zstd_safe::get_frame_content_size(payload) {
                if size > max_len as u64 {
                    return Err(FormatError::Decompression(format!("output exceeds {max_len} bytes")));
                }
                let mut out = Vec::with_capacity(size as usize);
                DECOMPRESSOR
                    .with_borrow_mut(|d| {
                        if d.is_none() {
                            *d = Some(zstd::bulk::Decompressor::new()?);
                        }
                        match d.as_mut() {
                            Some(d) => d.decompress_to_buffer(payload, &mut out),
                            None => Ok(0),
                        }
                    })
                    .map_err(|e| FormatError::Decompression(e.to_string()))?;
                if out.len() as u64 != size {
                    return Err(FormatError::Decompression(format!("{} bytes, the frame says {size}", out.len())));
                }
                return Ok(out);
            }
            let dec =
                zstd::stream::read::Decoder::new(payload).map_err(|e| FormatError::Decompression(e.to_string()))?;
            let mut out = Vec::new();
            dec.take(max_len as u64 + 1)
                .read_to_end(&mut out)
                .map_err(|e| FormatError::Decompression(e.to_string()))?;
            if out.len() > max_len {
                return Err(FormatError::Decompression(format!("output exceeds {max_len} bytes")));
            }
            Ok(out)
        }
        other => Err(FormatError::invalid("envelope", format!("unknown codec {other}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn padme_values() {
        assert_eq!(padme_len(0), 0);
        assert_eq!(padme_len(1), 1);
        assert_eq!(padme_len(9), 10);
        assert_eq!(padme_len(1000), 1024);
        assert!(padme_len(1_000_001) <= 1_000_001 * 112 / 100);
    }

    #[test]
    fn compressible_data_shrinks_and_random_data_is_stored() {
        let text = vec![b'a'; 100_000];
        let env = encode(&text, Compression::default(), Padding::None);
        assert_eq!(env[0], CODEC_ZSTD);
        assert!(env.len() < 1000);
        let noise: Vec<u8> = (0..4096u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect();
        let env = encode(&noise, Compression::Off, Padding::None);
        assert_eq!(env[0], CODEC_STORED);
    }

    #[test]
    fn the_probe_skips_incompressible_chunks_only() {
        let noise = crate::chunker::xorshift_bytes(1 << 20, 77);
        let text: Vec<u8> =
            b"the quick brown fox jumps over the lazy dog ".iter().copied().cycle().take(1 << 20).collect();
        // Mostly noise, but compressible where a sample looks (the middle): still compressed.
        let mut mixed = noise.clone();
        let mid = mixed.len() / 2;
        mixed[mid - 200_000..mid + 200_000].copy_from_slice(&text[..400_000]);
        for level in [1, 3, 19] {
            let c = Compression::Zstd { level };
            assert_eq!(encode(&noise, c, Padding::None)[0], CODEC_STORED, "level {level}");
            assert_eq!(encode(&text, c, Padding::None)[0], CODEC_ZSTD, "level {level}");
            let env = encode(&mixed, c, Padding::None);
            assert_eq!(env[0], CODEC_ZSTD, "level {level}");
            assert_eq!(decode(&env, mixed.len()).unwrap(), mixed);
        }
    }

    #[test]
    fn frames_without_a_stated_size_decode_too() {
        let raw = b"streamed frames do not state their size ".repeat(100);
        let mut frame = Vec::new();
        let mut enc = zstd::stream::write::Encoder::new(&mut frame, 3).unwrap();
        std::io::Write::write_all(&mut enc, &raw).unwrap();
        enc.finish().unwrap();
        assert_eq!(zstd::zstd_safe::get_frame_content_size(&frame).ok().flatten(), None);
        let mut env = vec![CODEC_ZSTD];
        let mut w = Writer { buf: Vec::new() };
        w.bytes(&frame);
        env.extend_from_slice(&w.finish());
        assert_eq!(decode(&env, raw.len()).unwrap(), raw);
        assert!(decode(&env, raw.len() - 1).is_err());
    }

    #[test]
    fn bomb_is_refused() {
        let zeros = vec![0u8; 1 << 20];
        let env = encode(&zeros, Compression::default(), Padding::None);
        assert!(decode(&env, 1000).is_err());
        assert_eq!(decode(&env, 1 << 20).unwrap(), zeros);
    }

    proptest! {
        #[test]
        fn round_trip(data: Vec<u8>, compress: bool, pad: bool) {
            let c = if compress { Compression::default() } else { Compression::Off };
            let p = if pad { Padding::Padme } else { Padding::None };
            let env = encode(&data, c, p);
            prop_assert_eq!(decode(&env, data.len()).unwrap(), data.clone());
            prop_assert_eq!(decode_owned(env, data.len()).unwrap().into_vec(), data);
        }

        #[test]
        fn decode_never_panics(data: Vec<u8>) {
            let _ = decode(&data, 1 << 16);
        }

        /// Whatever the bytes, the owned decoding says what the borrowed one says.
        #[test]
        fn decode_owned_agrees(data: Vec<u8>, max_len in 0usize..1 << 12) {
            let borrowed = decode(&data, max_len).map_err(|e| e.to_string());
            let in_place = decode_borrowed(&data, max_len).map(|b| b.into_owned()).map_err(|e| e.to_string());
            prop_assert_eq!(&in_place, &borrowed);
            prop_assert_eq!(decode_owned(data, max_len).map(BlobBytes::into_vec).map_err(|e| e.to_string()), borrowed);
        }
    }
}

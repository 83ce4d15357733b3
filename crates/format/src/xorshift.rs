//! xorshift64: the one small deterministic pseudo-random generator vault uses where
//! quality is irrelevant but speed and reproducibility matter (choosing an open pack,
//! shuffling the packs `check` samples, test and benchmark data, the chunker vectors).
//! Never used for anything secret: keys and nonces come from the OS.

/// A xorshift64 generator (`x ^= x << 13; x ^= x >> 7; x ^= x << 17`).
#[derive(Clone, Debug)]
pub struct Xorshift64(u64);

impl Xorshift64 {
    /// A generator from `seed` (zero, the one fixed point, is replaced by one).
    pub fn new(seed: u64) -> Self {
        Xorshift64(if seed == 0 { 1 } else { seed })
    }

    /// A generator seeded by the operating system, so that two hosts do not make the
    /// same choices.
    pub fn from_os() -> Result<Self, getrandom::Error> {
        let mut seed = [0u8; 8];
        getrandom::fill(&mut seed)?;
        Ok(Self::new(u64::from_le_bytes(seed)))
    }

    /// The next value.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// Fills `out` with successive values as little-endian bytes.
    pub fn fill(&mut self, out: &mut [u8]) {
        for chunk in out.chunks_mut(8) {
            let v = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }

    /// Shuffles `items` (Fisher–Yates).
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            items.swap(i, (self.next_u64() % (i as u64 + 1)) as usize);
        }
    }
}

/// Deterministic pseudo-random bytes: each xorshift64 step appends its value as 8
/// little-endian bytes. The spec's chunker vectors use it for their inputs; tests and
/// benchmarks use it for incompressible data.
pub fn xorshift_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut v = vec![0u8; len];
    Xorshift64(seed).fill(&mut v);
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_spec_sequence() {
        // The chunker vectors in repo-format/ depend on these exact bytes.
        let mut x = 1u64;
        let mut expect = Vec::new();
        for _ in 0..3 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            expect.extend_from_slice(&x.to_le_bytes());
        }
        assert_eq!(xorshift_bytes(20, 1), expect[..20]);
    }

    #[test]
    fn shuffle_is_a_permutation() {
        let mut v: Vec<u32> = (0..100).collect();
        Xorshift64::new(7).shuffle(&mut v);
        let mut s = v.clone();
        s.sort();
        assert_eq!(s, (0..100).collect::<Vec<_>>());
        assert_ne!(v, s);
    }
}

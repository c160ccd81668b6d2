//! Randomness comes in from outside, so that the core is deterministic under test.

/// A source of random bytes. The daemon's shell fills from the operating system; tests use
/// [`SeededEntropy`].
pub trait Entropy {
    fn fill(&mut self, destination: &mut [u8]);
}

/// A deterministic generator (SplitMix64) for tests and simulations. Not for production:
/// nonce keys made from it are predictable.
#[derive(Debug, Clone)]
pub struct SeededEntropy {
    state: u64,
}

impl SeededEntropy {
    pub fn new(seed: u64) -> SeededEntropy {
        SeededEntropy { state: seed }
    }

    fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

impl Entropy for SeededEntropy {
    fn fill(&mut self, destination: &mut [u8]) {
        for chunk in destination.chunks_mut(8) {
            let bytes = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
    }
}

/// A random index below `bound` (which must be non-zero), with negligible bias for the
/// small bounds used here.
pub(crate) fn below(entropy: &mut dyn Entropy, bound: usize) -> usize {
    let mut bytes = [0u8; 8];
    entropy.fill(&mut bytes);
    let value = u64::from_le_bytes(bytes);
    usize::try_from(value % u64::try_from(bound.max(1)).unwrap_or(u64::MAX)).unwrap_or(0)
}

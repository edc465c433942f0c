//! SplitMix64, the host's one small deterministic generator: generated data, the shuffles
//! and row samples of the row-wise checks, the feature logger's sampling. The same seed
//! gives the same numbers on every machine.

/// SplitMix64's increment.
const GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

/// A SplitMix64 stream; the field is its state (the seed to start with).
#[derive(Debug, Clone)]
pub struct SplitMix64(pub u64);

impl SplitMix64 {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(GAMMA);
        mix(self.0)
    }

    /// An index in `0..bound` (`bound` > 0).
    pub fn index(&mut self, bound: usize) -> usize {
        (self.next_u64() % bound as u64) as usize
    }
}

/// The `n`-th number (from 0) of the stream seeded with `seed`, without the stream: for
/// draws counted by an atomic.
pub fn nth(seed: u64, n: u64) -> u64 {
    mix(seed.wrapping_add(GAMMA.wrapping_mul(n.wrapping_add(1))))
}

fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nth_is_the_streams_nth_number() {
        let mut stream = SplitMix64(42);
        for n in 0..10 {
            assert_eq!(stream.next_u64(), nth(42, n));
        }
    }
}

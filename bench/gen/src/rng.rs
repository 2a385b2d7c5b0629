//! A tiny deterministic random number generator (splitmix64), so that a seed always yields the
//! same library on every machine and every version of every dependency.

/// The seed used when `--seed` is not given.
pub const DEFAULT_SEED: u64 = 0x6d65_6469_6164_6221; // "mediadb!"

/// Sebastiano Vigna's splitmix64: 64 bits of state, full period, good enough statistics for
/// picking names and shapes, and trivially reproducible.
#[derive(Debug, Clone)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    /// A generator starting from `seed`.
    pub fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    /// An independent generator for item `index` of a run seeded with `seed`: the same
    /// `(seed, index)` always gives the same stream, whatever order items are processed in.
    pub fn derive(seed: u64, index: u64) -> Self {
        let mut g = Self::new(seed ^ index.wrapping_mul(0xA076_1D64_78BD_642F));
        Self::new(g.next_u64())
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n > 0`), by Lemire's multiply-shift (bias below 2^-32 for the
    /// small `n` used here).
    pub fn below(&mut self, n: u64) -> u64 {
        debug_assert!(n > 0);
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// A number in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }

    /// True with probability `pct` percent.
    pub fn chance(&mut self, pct: u64) -> bool {
        self.below(100) < pct
    }

    /// One element of a non-empty slice.
    pub fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reproducible_and_reference_values() {
        // Reference output of splitmix64 seeded with 0 (Vigna's C implementation).
        let mut g = SplitMix64::new(0);
        assert_eq!(g.next_u64(), 0xE220_A839_7B1D_CDAF);
        assert_eq!(g.next_u64(), 0x6E78_9E6A_A1B9_65F4);
        let a: Vec<u64> = (0..8)
            .map(|_| SplitMix64::derive(7, 3).next_u64())
            .collect();
        assert!(a.windows(2).all(|w| w[0] == w[1]));
        assert_ne!(
            SplitMix64::derive(7, 3).next_u64(),
            SplitMix64::derive(7, 4).next_u64()
        );
    }

    #[test]
    fn ranges_stay_in_bounds() {
        let mut g = SplitMix64::new(1);
        for _ in 0..10_000 {
            let v = g.range(10, 20);
            assert!((10..=20).contains(&v));
        }
    }
}

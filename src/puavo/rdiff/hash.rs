//! The block hash: a polynomial rolling hash over a block of bytes, and a mixing step that
//! spreads it over all 32 bits before it picks a bucket.

/// Spreads a rolling hash over all 32 bits (murmur3's finalizer, a bijection): the rolling
/// hash's low bits depend on few input bits, and buckets are taken from the top.
#[inline]
pub(super) fn mix(mut h: u32) -> u32 {
    h ^= h >> 16;
    h = h.wrapping_mul(0x85eb_ca6b);
    h ^= h >> 13;
    h = h.wrapping_mul(0xc2b2_ae35);
    h ^ (h >> 16)
}

const MULTIPLIER: u32 = 0x01000193;

/// Weights of the bytes of a window: `MULTIPLIER^(len-1-i)`. With them the window hash is a
/// sum of independent products, which the compiler turns into vector code; rolling it by one
/// byte stays two multiplications.
pub(super) struct Weights(Vec<u32>);

impl Weights {
    pub(super) fn new(block: usize) -> Weights {
        let mut weights = vec![1u32; block];
        for i in (0..block.saturating_sub(1)).rev() {
            weights[i] = weights[i + 1].wrapping_mul(MULTIPLIER);
        }
        Weights(weights)
    }

    /// Same value as rolling `h = h * MULTIPLIER + (byte + 1)` over the window.
    #[inline]
    pub(super) fn hash(&self, window: &[u8]) -> u32 {
        window.iter().zip(&self.0).fold(0u32, |h, (b, w)| {
            h.wrapping_add((u32::from(*b) + 1).wrapping_mul(*w))
        })
    }

    /// The hash of the window one byte on: `leaving` drops out, `entering` comes in.
    #[inline]
    pub(super) fn roll(&self, h: u32, leaving: u8, entering: u8) -> u32 {
        h.wrapping_sub((u32::from(leaving) + 1).wrapping_mul(self.0[0]))
            .wrapping_mul(MULTIPLIER)
            .wrapping_add(u32::from(entering) + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weighted_hash_equals_the_rolling_one() {
        let data: Vec<u8> = (0..1000u32).map(|i| (i * 7 + 3) as u8).collect();
        let weights = Weights::new(128);
        let rolling = |w: &[u8]| {
            w.iter().fold(0u32, |h, b| {
                h.wrapping_mul(MULTIPLIER).wrapping_add(u32::from(*b) + 1)
            })
        };
        let mut h = weights.hash(&data[..128]);
        for p in 0..(1000 - 128) {
            assert_eq!(h, rolling(&data[p..p + 128]));
            h = weights.roll(h, data[p], data[p + 128]);
        }
    }
}

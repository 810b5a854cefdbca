//! NumPy's `Generator(PCG64(seed)).shuffle(x)` for 1-D arrays, bit for bit, so the data order equals
//! OLMo-core's (`get_rng(seed + epoch).shuffle(arange(N))`). Three pieces, each as NumPy implements it:
//! `SeedSequence(seed).generate_state(4, uint64)` (numpy/random/bit_generator.pyx), PCG64 XSL-RR 128/64
//! with its 32-bit output buffer (numpy/random/src/pcg64), and Fisher–Yates with `random_interval`'s
//! masked rejection sampling (numpy/random/_generator.pyx `_shuffle_raw`, distributions.c).

const INIT_A: u32 = 0x43b0_d7e5;
const MULT_A: u32 = 0x931e_8875;
const INIT_B: u32 = 0x8b51_f9dd;
const MULT_B: u32 = 0x58f3_8ded;
const MIX_MULT_L: u32 = 0xca01_f9dd;
const MIX_MULT_R: u32 = 0x4973_f715;
const XSHIFT: u32 = 16;
const POOL_SIZE: usize = 4;

/// `SeedSequence(entropy)` with no spawn key: its pool, from which state words are drawn.
struct SeedSequence {
    pool: [u32; POOL_SIZE],
}

fn hashmix(value: u32, hash_const: &mut u32) -> u32 {
    let mut v = value ^ *hash_const;
    *hash_const = hash_const.wrapping_mul(MULT_A);
    v = v.wrapping_mul(*hash_const);
    v ^ (v >> XSHIFT)
}

fn mix(x: u32, y: u32) -> u32 {
    let r = MIX_MULT_L
        .wrapping_mul(x)
        .wrapping_sub(MIX_MULT_R.wrapping_mul(y));
    r ^ (r >> XSHIFT)
}

impl SeedSequence {
    fn new(seed: u64) -> Self {
        // `_int_to_uint32_array`: little-endian 32-bit words, `[0]` for zero.
        let entropy: Vec<u32> = if seed == 0 {
            vec![0]
        } else {
            let mut words = Vec::new();
            let mut n = seed;
            while n > 0 {
                words.push((n & 0xFFFF_FFFF) as u32);
                n >>= 32;
            }
            words
        };
        let mut pool = [0u32; POOL_SIZE];
        let mut hash_const = INIT_A;
        for (i, slot) in pool.iter_mut().enumerate() {
            *slot = hashmix(entropy.get(i).copied().unwrap_or(0), &mut hash_const);
        }
        for i_src in 0..POOL_SIZE {
            for i_dst in 0..POOL_SIZE {
                if i_src != i_dst {
                    pool[i_dst] = mix(pool[i_dst], hashmix(pool[i_src], &mut hash_const));
                }
            }
        }
        for &word in entropy.iter().skip(POOL_SIZE) {
            for slot in pool.iter_mut() {
                *slot = mix(*slot, hashmix(word, &mut hash_const));
            }
        }
        Self { pool }
    }

    /// `generate_state(n, np.uint64)`: 2n 32-bit words, paired little-endian into 64-bit words.
    fn generate_state_u64(&self, n: usize) -> Vec<u64> {
        let mut hash_const = INIT_B;
        let words: Vec<u32> = (0..2 * n)
            .map(|i| {
                let mut v = self.pool[i % POOL_SIZE] ^ hash_const;
                hash_const = hash_const.wrapping_mul(MULT_B);
                v = v.wrapping_mul(hash_const);
                v ^ (v >> XSHIFT)
            })
            .collect();
        words
            .chunks(2)
            .map(|w| u64::from(w[0]) | (u64::from(w[1]) << 32))
            .collect()
    }
}

const PCG_MULTIPLIER: u128 = 0x2360_ed05_1fc6_5da4_4385_df64_9fcc_f645;

/// NumPy's `PCG64` bit generator.
pub struct Pcg64 {
    state: u128,
    inc: u128,
    /// The high half of the last 64-bit output, served by the next 32-bit draw.
    buffered: Option<u32>,
}

impl Pcg64 {
    /// `np.random.PCG64(seed)` for a non-negative integer seed.
    pub fn new(seed: u64) -> Self {
        let words = SeedSequence::new(seed).generate_state_u64(4);
        let initstate = (u128::from(words[0]) << 64) | u128::from(words[1]);
        let initseq = (u128::from(words[2]) << 64) | u128::from(words[3]);
        let mut rng = Self {
            state: 0,
            inc: (initseq << 1) | 1,
            buffered: None,
        };
        rng.step();
        rng.state = rng.state.wrapping_add(initstate);
        rng.step();
        rng
    }

    fn step(&mut self) {
        self.state = self
            .state
            .wrapping_mul(PCG_MULTIPLIER)
            .wrapping_add(self.inc);
    }

    pub fn next_u64(&mut self) -> u64 {
        self.step();
        let hi = (self.state >> 64) as u64;
        let lo = self.state as u64;
        (hi ^ lo).rotate_right((self.state >> 122) as u32)
    }

    pub fn next_u32(&mut self) -> u32 {
        if let Some(v) = self.buffered.take() {
            return v;
        }
        let next = self.next_u64();
        self.buffered = Some((next >> 32) as u32);
        next as u32
    }

    /// `random_interval(max)`: uniform in `[0, max]` by masked rejection.
    fn random_interval(&mut self, max: u64) -> u64 {
        if max == 0 {
            return 0;
        }
        let mut mask = max;
        for shift in [1, 2, 4, 8, 16, 32] {
            mask |= mask >> shift;
        }
        if max <= u64::from(u32::MAX) {
            loop {
                let v = u64::from(self.next_u32()) & mask;
                if v <= max {
                    return v;
                }
            }
        }
        loop {
            let v = self.next_u64() & mask;
            if v <= max {
                return v;
            }
        }
    }

    /// `Generator.shuffle` of a 1-D array, in place.
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.random_interval(i as u64) as usize;
            items.swap(i, j);
        }
    }
}

/// OLMo-core's epoch permutation: `get_rng(seed).shuffle(arange(n, dtype=uint32))`.
pub fn shuffled_range(n: u32, seed: u64) -> Vec<u32> {
    let mut v: Vec<u32> = (0..n).collect();
    Pcg64::new(seed).shuffle(&mut v);
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `np.random.PCG64(seed).random_raw(3)` from NumPy 2.4.
    #[test]
    fn raw_outputs_match_numpy() {
        let cases: [(u64, [u64; 3]); 3] = [
            (
                0,
                [0xa30febcfd9c2825f, 0x4510bdf882d9d721, 0x0a7d3da94ecde8b8],
            ),
            (
                42,
                [0xc621fbcd16d92688, 0x705a5661a791ffc1, 0xdbcd12c26eda1624],
            ),
            (
                (1 << 40) + 7,
                [0xd46e9e2034de21aa, 0x415badc99c087675, 0x275ed40f045acb84],
            ),
        ];
        for (seed, want) in cases {
            let mut rng = Pcg64::new(seed);
            assert_eq!(
                [rng.next_u64(), rng.next_u64(), rng.next_u64()],
                want,
                "seed {seed}"
            );
        }
    }

    /// `Generator(PCG64(seed)).shuffle(arange(n, dtype=uint32))` from NumPy 2.4.
    #[test]
    fn shuffle_matches_numpy() {
        assert_eq!(shuffled_range(10, 5), [7, 6, 1, 3, 2, 4, 0, 9, 5, 8]);
        assert_eq!(
            shuffled_range(20, 123_456_789_012),
            [3, 16, 15, 0, 11, 12, 17, 9, 13, 14, 5, 10, 19, 1, 4, 6, 7, 8, 2, 18]
        );
    }

    #[test]
    fn shuffle_is_a_permutation_and_depends_on_the_seed() {
        let a = shuffled_range(1000, 1);
        let mut sorted = a.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..1000).collect::<Vec<_>>());
        assert_ne!(a, shuffled_range(1000, 2));
        assert_eq!(a, shuffled_range(1000, 1));
    }
}

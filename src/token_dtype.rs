//! The unsigned integer width of token ids on disk (OLMo-core's `NumpyDatasetDType`, dolma's `--dtype`).
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum TokenDType {
    Uint8,
    Uint16,
    Uint32,
    Uint64,
}

impl TokenDType {
    pub fn bytes(self) -> usize {
        match self {
            Self::Uint8 => 1,
            Self::Uint16 => 2,
            Self::Uint32 => 4,
            Self::Uint64 => 8,
        }
    }

    pub fn max_id(self) -> u64 {
        match self {
            Self::Uint8 => u8::MAX as u64,
            Self::Uint16 => u16::MAX as u64,
            Self::Uint32 => u32::MAX as u64,
            Self::Uint64 => u64::MAX,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Uint8 => "uint8",
            Self::Uint16 => "uint16",
            Self::Uint32 => "uint32",
            Self::Uint64 => "uint64",
        }
    }

    /// OLMo-core's `get_dtype()`: the smallest width that holds `vocab_size - 1`.
    pub fn for_vocab(vocab_size: u64) -> Self {
        let max = vocab_size.saturating_sub(1);
        [Self::Uint8, Self::Uint16, Self::Uint32]
            .into_iter()
            .find(|d| d.max_id() >= max)
            .unwrap_or(Self::Uint64)
    }

    /// Appends `id` in little-endian at this width (the caller checked that it fits).
    pub fn push_le(self, id: u64, out: &mut Vec<u8>) {
        match self {
            Self::Uint8 => out.push(id as u8),
            Self::Uint16 => out.extend_from_slice(&(id as u16).to_le_bytes()),
            Self::Uint32 => out.extend_from_slice(&(id as u32).to_le_bytes()),
            Self::Uint64 => out.extend_from_slice(&id.to_le_bytes()),
        }
    }

    /// Widens the little-endian ids in `bytes` into `out` (same count) and returns the largest one,
    /// so callers check the vocabulary without a second pass. This is the data loader's inner loop: the
    /// maximum is taken at the source width (vectorizes where an i64 maximum does not), and on x86-64
    /// with AVX2 the same code runs compiled for it (8 ids a step instead of 2).
    pub fn widen_into(self, bytes: &[u8], out: &mut [i64]) -> i64 {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2 (checked just above), the only requirement of this function.
            return unsafe { widen_avx2(self, bytes, out) };
        }
        widen(self, bytes, out)
    }

    /// Reads every little-endian id of `bytes` at this width, widened to i64 (what tensors take).
    pub fn extend_i64(self, bytes: &[u8], out: &mut Vec<i64>) {
        match self {
            Self::Uint8 => out.extend(bytes.iter().map(|&b| i64::from(b))),
            Self::Uint16 => out.extend(
                bytes
                    .chunks_exact(2)
                    .map(|c| i64::from(u16::from_le_bytes([c[0], c[1]]))),
            ),
            Self::Uint32 => out.extend(
                bytes
                    .chunks_exact(4)
                    .map(|c| i64::from(u32::from_le_bytes([c[0], c[1], c[2], c[3]]))),
            ),
            Self::Uint64 => out.extend(
                bytes
                    .chunks_exact(8)
                    .map(|c| i64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]])),
            ),
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn widen_avx2(dtype: TokenDType, bytes: &[u8], out: &mut [i64]) -> i64 {
    widen(dtype, bytes, out)
}

#[inline(always)]
fn widen(dtype: TokenDType, bytes: &[u8], out: &mut [i64]) -> i64 {
    #[inline(always)]
    fn go<const W: usize, T: Ord + Copy + Into<i64> + Default>(
        bytes: &[u8],
        out: &mut [i64],
        f: impl Fn([u8; W]) -> T,
    ) -> i64 {
        let mut max = T::default();
        for (o, c) in out.iter_mut().zip(bytes.chunks_exact(W)) {
            let mut a = [0u8; W];
            a.copy_from_slice(c);
            let v = f(a);
            *o = v.into();
            max = max.max(v);
        }
        if out.is_empty() || bytes.is_empty() {
            i64::MIN
        } else {
            max.into()
        }
    }
    match dtype {
        TokenDType::Uint8 => go::<1, u8>(bytes, out, |a| a[0]),
        TokenDType::Uint16 => go::<2, u16>(bytes, out, u16::from_le_bytes),
        TokenDType::Uint32 => go::<4, u32>(bytes, out, u32::from_le_bytes),
        // u64 ids above i64::MAX wrap negative here; token files never hold them (vocabularies are small).
        TokenDType::Uint64 => go::<8, i64>(bytes, out, i64::from_le_bytes),
    }
}

#[cfg(test)]
mod widen_tests {
    use super::*;

    #[test]
    fn widening_returns_every_id_and_the_largest() {
        let ids: Vec<u32> = (0..1000).map(|i| (i * 7919) % 70_000).collect();
        for dtype in [TokenDType::Uint16, TokenDType::Uint32, TokenDType::Uint64] {
            let mut bytes = Vec::new();
            for &id in &ids {
                dtype.push_le(u64::from(id % 65_536), &mut bytes);
            }
            let mut out = vec![0i64; ids.len()];
            let max = dtype.widen_into(&bytes, &mut out);
            let want: Vec<i64> = ids.iter().map(|&i| i64::from(i % 65_536)).collect();
            assert_eq!(out, want, "{dtype:?}");
            assert_eq!(max, *want.iter().max().unwrap(), "{dtype:?}");
        }
        assert_eq!(TokenDType::Uint32.widen_into(&[], &mut []), i64::MIN);
    }
}

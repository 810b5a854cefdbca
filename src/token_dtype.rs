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
    /// so callers check the vocabulary without a second pass.
    pub fn widen_into(self, bytes: &[u8], out: &mut [i64]) -> i64 {
        fn go<const W: usize>(bytes: &[u8], out: &mut [i64], f: impl Fn([u8; W]) -> i64) -> i64 {
            let mut max = i64::MIN;
            for (o, c) in out.iter_mut().zip(bytes.chunks_exact(W)) {
                let mut a = [0u8; W];
                a.copy_from_slice(c);
                *o = f(a);
                max = max.max(*o);
            }
            max
        }
        match self {
            Self::Uint8 => go::<1>(bytes, out, |a| i64::from(a[0])),
            Self::Uint16 => go::<2>(bytes, out, |a| i64::from(u16::from_le_bytes(a))),
            Self::Uint32 => go::<4>(bytes, out, |a| i64::from(u32::from_le_bytes(a))),
            Self::Uint64 => go::<8>(bytes, out, i64::from_le_bytes),
        }
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

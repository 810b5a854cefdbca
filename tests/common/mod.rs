//! Helpers shared by the end-to-end tests.
use std::path::{Path, PathBuf};

/// A learnable raw uint16 token file (vocab < 100): a repeating "text" with EOS (0) every 50 tokens.
pub fn learnable_tokens(dir: &Path, n: usize) -> PathBuf {
    let path = dir.join("tokens.npy");
    let ids: Vec<u8> = (0..n)
        .map(|i| {
            if i % 50 == 49 {
                0u16
            } else {
                1 + ((i * 7 + i / 300) % 97) as u16
            }
        })
        .flat_map(|t| t.to_le_bytes())
        .collect();
    std::fs::write(&path, ids).unwrap();
    path
}

//! Document boundaries inside token arrays, as OLMo-core finds them (`src/olmo_core/data/utils.py`):
//! per-instance document lengths (`get_document_lengths`) and a file's document ranges
//! (`iter_document_indices` on a local array).
use super::token_file::TokenFile;
use crate::error::Result;

/// `get_document_lengths`: with no BOS, a document ends at (and includes) every EOS and a trailing
/// partial document counts; with a BOS, boundaries are only where EOS is followed by BOS.
pub fn document_lengths(ids: &[i64], eos: u64, bos: Option<u64>) -> Vec<i64> {
    let n = ids.len() as i64;
    if n == 0 {
        return Vec::new();
    }
    let eos = eos as i64;
    let mut boundaries = vec![-1i64];
    match bos {
        None => {
            boundaries.extend(
                ids.iter()
                    .enumerate()
                    .filter(|(_, &t)| t == eos)
                    .map(|(i, _)| i as i64),
            );
            if ids[ids.len() - 1] != eos {
                boundaries.push(n - 1);
            }
        }
        Some(bos) => {
            let bos = bos as i64;
            boundaries.extend(
                ids.windows(2)
                    .enumerate()
                    .filter(|(_, w)| w[0] == eos && w[1] == bos)
                    .map(|(i, _)| i as i64),
            );
            boundaries.push(n - 1);
        }
    }
    boundaries.windows(2).map(|w| w[1] - w[0]).collect()
}

/// `iter_document_indices` (no BOS): `[start, end)` of every document that ends with EOS, in order.
/// Tokens after the last EOS belong to no document.
pub fn document_ranges(file: &TokenFile, eos: u64) -> Result<Vec<(u64, u64)>> {
    let mut ranges = Vec::new();
    let mut start = 0u64;
    const CHUNK: u64 = 1 << 20;
    let mut buf = Vec::new();
    let mut offset = 0u64;
    while offset < file.len() {
        let end = (offset + CHUNK).min(file.len());
        buf.clear();
        file.read_into(offset, end, &mut buf)?;
        for (i, &t) in buf.iter().enumerate() {
            if t as u64 == eos {
                let stop = offset + i as u64 + 1;
                ranges.push((start, stop));
                start = stop;
            }
        }
        offset = end;
    }
    Ok(ranges)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_split_after_each_eos_and_keep_the_tail() {
        assert_eq!(
            document_lengths(&[5, 1, 0, 7, 0, 3, 3], 0, None),
            vec![3, 2, 2]
        );
        assert_eq!(document_lengths(&[5, 1, 0, 7, 0], 0, None), vec![3, 2]);
    }

    #[test]
    fn with_bos_only_eos_followed_by_bos_splits() {
        // eos 0, bos 9: the first 0 is not followed by 9, so it does not split.
        assert_eq!(
            document_lengths(&[9, 1, 0, 2, 0, 9, 4, 0], 0, Some(9)),
            vec![5, 3]
        );
    }
}

//! A memory-mapped token file: the raw headerless little-endian arrays that dolma and OLMo-core write
//! (despite the `.npy` name), or a real NPY file (its header detected and checked by ndarray-npy).
use std::fs::File;
use std::path::{Path, PathBuf};

use memmap2::Mmap;
use ndarray::ArrayView1;
use ndarray_npy::ViewNpyExt;

use crate::error::{Error, Result};
use crate::token_dtype::TokenDType;

const NPY_MAGIC: &[u8] = b"\x93NUMPY";

pub struct TokenFile {
    path: PathBuf,
    map: Option<Mmap>,
    /// Byte offset of the first element (0 for raw files, past the header for NPY files).
    data_offset: usize,
    len: u64,
    dtype: TokenDType,
}

impl TokenFile {
    pub fn open(path: &Path, dtype: TokenDType) -> Result<Self> {
        let file = File::open(path).map_err(|e| Error::io(path, e))?;
        let size = file.metadata().map_err(|e| Error::io(path, e))?.len();
        if size == 0 {
            return Ok(Self {
                path: path.to_path_buf(),
                map: None,
                data_offset: 0,
                len: 0,
                dtype,
            });
        }
        // SAFETY: the mapping is read-only; token files are not modified while a run reads them
        // (the same contract OLMo-core's np.memmap relies on).
        let map = unsafe { Mmap::map(&file) }.map_err(|e| Error::io(path, e))?;
        let (data_offset, len) = if map.starts_with(NPY_MAGIC) {
            npy_data_range(path, &map, dtype)?
        } else {
            if size % dtype.bytes() as u64 != 0 {
                return Err(Error::Input {
                    path: path.to_path_buf(),
                    reason: format!(
                        "size {size} bytes is not a multiple of {} ({}); wrong dataset.dtype, or a truncated file?",
                        dtype.bytes(),
                        dtype.name()
                    ),
                });
            }
            (0, size / dtype.bytes() as u64)
        };
        Ok(Self {
            path: path.to_path_buf(),
            map: Some(map),
            data_offset,
            len,
            dtype,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Number of tokens.
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn dtype(&self) -> TokenDType {
        self.dtype
    }

    /// The raw little-endian bytes of tokens `[start, end)`.
    pub fn bytes(&self, start: u64, end: u64) -> &[u8] {
        let w = self.dtype.bytes();
        let end = end.min(self.len);
        let start = start.min(end);
        match &self.map {
            Some(m) => {
                &m[self.data_offset + start as usize * w..self.data_offset + end as usize * w]
            }
            None => &[],
        }
    }

    /// Appends tokens `[start, end)` widened to i64.
    pub fn read_into(&self, start: u64, end: u64, out: &mut Vec<i64>) {
        self.dtype.extend_i64(self.bytes(start, end), out);
    }

    /// Positions `i` in `[start, end)` whose token equals `id`, in order.
    pub fn positions_of(&self, id: u64, start: u64, end: u64) -> Vec<u64> {
        let mut tokens = Vec::new();
        self.read_into(start, end, &mut tokens);
        tokens
            .iter()
            .enumerate()
            .filter(|(_, &t)| t as u64 == id)
            .map(|(i, _)| start + i as u64)
            .collect()
    }
}

/// Where an NPY file's 1-D data lies, checking that its element type is `dtype`.
fn npy_data_range(path: &Path, map: &[u8], dtype: TokenDType) -> Result<(usize, u64)> {
    fn range<T: ndarray_npy::ViewElement>(map: &[u8]) -> std::result::Result<(usize, u64), String> {
        let view = ArrayView1::<T>::view_npy(map).map_err(|e| e.to_string())?;
        Ok((
            view.as_ptr() as usize - map.as_ptr() as usize,
            view.len() as u64,
        ))
    }
    let r = match dtype {
        TokenDType::Uint8 => range::<u8>(map),
        TokenDType::Uint16 => range::<u16>(map),
        TokenDType::Uint32 => range::<u32>(map),
        TokenDType::Uint64 => range::<u64>(map),
    };
    r.map_err(|e| Error::Input {
        path: path.to_path_buf(),
        reason: format!(
            "NPY file is not a 1-D little-endian {} array: {e}",
            dtype.name()
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_and_npy_files_read_the_same_tokens() {
        let dir = tempfile::tempdir().unwrap();
        let raw = dir.path().join("raw.npy");
        let ids: Vec<u16> = (0..1000).map(|i| (i * 7 % 65535) as u16).collect();
        std::fs::write(
            &raw,
            ids.iter()
                .flat_map(|x| x.to_le_bytes())
                .collect::<Vec<u8>>(),
        )
        .unwrap();
        let npy = dir.path().join("real.npy");
        ndarray_npy::write_npy(&npy, &ndarray::Array1::from(ids.clone())).unwrap();
        for p in [&raw, &npy] {
            let f = TokenFile::open(p, TokenDType::Uint16).unwrap();
            assert_eq!(f.len(), 1000);
            let mut out = Vec::new();
            f.read_into(10, 20, &mut out);
            assert_eq!(
                out,
                ids[10..20]
                    .iter()
                    .map(|&x| i64::from(x))
                    .collect::<Vec<_>>()
            );
        }
        let err = TokenFile::open(&npy, TokenDType::Uint32)
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("real.npy") && err.contains("uint32"), "{err}");
    }

    #[test]
    fn a_size_that_is_not_a_multiple_of_the_dtype_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("odd.npy");
        std::fs::write(&p, [1u8, 2, 3]).unwrap();
        let err = TokenFile::open(&p, TokenDType::Uint16)
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains("odd.npy") && err.contains("not a multiple of 2"),
            "{err}"
        );
    }
}

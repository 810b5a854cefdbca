//! A token file: the raw headerless little-endian arrays that dolma and OLMo-core write (despite the
//! `.npy` name), or a real NPY file (its header detected and checked by ndarray-npy). Local files are
//! memory-mapped; remote ones (`http(s)://`, `s3://`, `gs://`, ...) are read by byte range.
use std::borrow::Cow;
use std::fs::File;
use std::path::{Path, PathBuf};

use memmap2::Mmap;
use ndarray::ArrayView1;
use ndarray_npy::ViewNpyExt;

use super::remote::{RemoteObject, RemoteUrl};
use crate::error::{Error, Result};
use crate::token_dtype::TokenDType;

const NPY_MAGIC: &[u8] = b"\x93NUMPY";

/// Where a file's bytes come from.
enum Backing {
    Empty,
    Mapped(Mmap),
    Remote(RemoteObject),
}

pub struct TokenFile {
    path: PathBuf,
    backing: Backing,
    /// Size of the whole file in bytes (header included).
    file_size: u64,
    /// Byte offset of the first element (0 for raw files, past the header for NPY files).
    data_offset: usize,
    len: u64,
    dtype: TokenDType,
    /// What a local file was when opened, to notice it changing under the run.
    identity: Option<FileIdentity>,
}

/// A local file's size, inode and modification time.
#[derive(Debug, Clone, PartialEq, Eq)]
struct FileIdentity {
    size: u64,
    device: u64,
    inode: u64,
    modified: Option<std::time::SystemTime>,
}

impl FileIdentity {
    fn of(meta: &std::fs::Metadata) -> Self {
        use std::os::unix::fs::MetadataExt;
        Self {
            size: meta.len(),
            device: meta.dev(),
            inode: meta.ino(),
            modified: meta.modified().ok(),
        }
    }
}

impl TokenFile {
    /// Opens a local path or, when `path` is a URL, the remote object (its size read up front).
    pub fn open(path: &Path, dtype: TokenDType) -> Result<Self> {
        match RemoteUrl::of_path(path)? {
            Some(url) => Self::open_remote(path, &url, dtype),
            None => Self::open_local(path, dtype),
        }
    }

    fn open_local(path: &Path, dtype: TokenDType) -> Result<Self> {
        let file = File::open(path).map_err(|e| Error::io(path, e))?;
        let meta = file.metadata().map_err(|e| Error::io(path, e))?;
        let size = meta.len();
        if size == 0 {
            return Ok(Self::raw(path, Backing::Empty, 0, dtype));
        }
        // SAFETY: the mapping is read-only; token files are not modified while a run reads them
        // (the same contract OLMo-core's np.memmap relies on; `check_unchanged` catches a file that
        // was replaced, truncated or rewritten between batches).
        let map = unsafe { Mmap::map(&file) }.map_err(|e| Error::io(path, e))?;
        let mut opened = if map.starts_with(NPY_MAGIC) {
            let (data_offset, len) = npy_data_range(path, &map, dtype)?;
            Self {
                path: path.to_path_buf(),
                backing: Backing::Mapped(map),
                file_size: size,
                data_offset,
                len,
                dtype,
                identity: None,
            }
        } else {
            check_raw_size(path, size, dtype)?;
            Self::raw(path, Backing::Mapped(map), size, dtype)
        };
        opened.identity = Some(FileIdentity::of(&meta));
        Ok(opened)
    }

    /// An error naming the file when the local file at its path is no longer the one mapped (another
    /// size, inode or modification time): reading a truncated mapping would crash the process with
    /// SIGBUS, and a replaced one would silently feed other tokens. Remote files are not re-checked.
    pub fn check_unchanged(&self) -> Result<()> {
        let Some(was) = &self.identity else {
            return Ok(());
        };
        let now = std::fs::metadata(&self.path).map_err(|e| Error::io(&self.path, e))?;
        if FileIdentity::of(&now) == *was {
            return Ok(());
        }
        Err(Error::Input {
            path: self.path.clone(),
            reason: format!(
                "the token file changed while the run was reading it (now {} bytes, {} when opened; replaced, truncated or rewritten): restore it, or restart the run to use the new contents",
                now.len(),
                was.size
            ),
        })
    }

    /// OLMo-core reads remote files as raw arrays; a real NPY file is refused rather than read with
    /// its header as tokens.
    fn open_remote(path: &Path, url: &RemoteUrl, dtype: TokenDType) -> Result<Self> {
        let object = RemoteObject::new(url)?;
        let size = object.size()?;
        check_raw_size(path, size, dtype)?;
        if size >= NPY_MAGIC.len() as u64 && object.read(0..NPY_MAGIC.len() as u64)? == NPY_MAGIC {
            return Err(Error::Input {
                path: path.to_path_buf(),
                reason: "an NPY file with a header: remote token files must be raw arrays (as OLMo-core reads them); download it or strip the header".into(),
            });
        }
        Ok(Self::raw(path, Backing::Remote(object), size, dtype))
    }

    fn raw(path: &Path, backing: Backing, size: u64, dtype: TokenDType) -> Self {
        Self {
            path: path.to_path_buf(),
            backing,
            file_size: size,
            data_offset: 0,
            len: size / dtype.bytes() as u64,
            dtype,
            identity: None,
        }
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

    /// Size of the file in bytes, as the file system or the server reports it.
    pub fn file_size(&self) -> u64 {
        self.file_size
    }

    pub fn dtype(&self) -> TokenDType {
        self.dtype
    }

    /// The raw little-endian bytes of tokens `[start, end)`: borrowed from the map for local files,
    /// fetched with one ranged request for remote ones.
    pub fn bytes(&self, start: u64, end: u64) -> Result<Cow<'_, [u8]>> {
        let w = self.dtype.bytes();
        let end = end.min(self.len);
        let start = start.min(end);
        let (lo, hi) = (
            self.data_offset + start as usize * w,
            self.data_offset + end as usize * w,
        );
        Ok(match &self.backing {
            Backing::Mapped(m) => Cow::Borrowed(&m[lo..hi]),
            Backing::Remote(r) => Cow::Owned(r.read(lo as u64..hi as u64)?),
            Backing::Empty => Cow::Borrowed(&[]),
        })
    }

    /// Appends tokens `[start, end)` widened to i64.
    pub fn read_into(&self, start: u64, end: u64, out: &mut Vec<i64>) -> Result<()> {
        self.dtype.extend_i64(&self.bytes(start, end)?, out);
        Ok(())
    }
}

fn check_raw_size(path: &Path, size: u64, dtype: TokenDType) -> Result<()> {
    if size % dtype.bytes() as u64 == 0 {
        return Ok(());
    }
    Err(Error::Input {
        path: path.to_path_buf(),
        reason: format!(
            "size {size} bytes is not a multiple of {} ({}); wrong dataset.dtype, or a truncated file?",
            dtype.bytes(),
            dtype.name()
        ),
    })
}

/// Where an NPY file's 1-D data lies, checking that its element type is `dtype`.
fn npy_data_range(path: &Path, map: &[u8], dtype: TokenDType) -> Result<(usize, u64)> {
    fn range<T: ndarray_npy::ViewElement>(map: &[u8]) -> std::result::Result<(usize, u64), String> {
        // ndarray-npy's header errors quote the header over several lines; the first says what is wrong.
        let view = ArrayView1::<T>::view_npy(map).map_err(|e| {
            e.to_string()
                .lines()
                .next()
                .unwrap_or_default()
                .trim()
                .to_string()
        })?;
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
            f.read_into(10, 20, &mut out).unwrap();
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

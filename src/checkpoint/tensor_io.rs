//! safetensors files written straight from tensor memory and read straight into it (one copy each way,
//! through the page cache), instead of tch's helpers, which stage every tensor in an extra buffer.
use std::borrow::Cow;
use std::path::Path;

use memmap2::Mmap;
use safetensors::tensor::{Dtype, SafeTensors, View};
use tch::{Device, Kind, Tensor};

use crate::error::{Error, Result};

fn dtype(kind: Kind) -> Option<Dtype> {
    Some(match kind {
        Kind::Float => Dtype::F32,
        Kind::Double => Dtype::F64,
        Kind::BFloat16 => Dtype::BF16,
        Kind::Half => Dtype::F16,
        Kind::Int64 => Dtype::I64,
        Kind::Int => Dtype::I32,
        Kind::Int16 => Dtype::I16,
        Kind::Int8 => Dtype::I8,
        Kind::Uint8 => Dtype::U8,
        Kind::Bool => Dtype::BOOL,
        _ => return None,
    })
}

fn kind(dtype: Dtype) -> Option<Kind> {
    Some(match dtype {
        Dtype::F32 => Kind::Float,
        Dtype::F64 => Kind::Double,
        Dtype::BF16 => Kind::BFloat16,
        Dtype::F16 => Kind::Half,
        Dtype::I64 => Kind::Int64,
        Dtype::I32 => Kind::Int,
        Dtype::I16 => Kind::Int16,
        Dtype::I8 => Kind::Int8,
        Dtype::U8 => Kind::Uint8,
        Dtype::BOOL => Kind::Bool,
        _ => return None,
    })
}

/// The raw bytes of a contiguous CPU tensor.
pub(crate) fn bytes(t: &Tensor) -> &[u8] {
    let len = t.numel() * t.kind().elt_size_in_bytes();
    if len == 0 {
        return &[];
    }
    // SAFETY: callers pass contiguous CPU tensors (checked in `write`), which own `len` bytes at
    // `data_ptr`; the slice borrows `t` and so cannot outlive it.
    unsafe { std::slice::from_raw_parts(t.data_ptr() as *const u8, len) }
}

struct TensorView<'a> {
    tensor: &'a Tensor,
    dtype: Dtype,
    shape: Vec<usize>,
}

impl View for TensorView<'_> {
    fn dtype(&self) -> Dtype {
        self.dtype
    }
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn data(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(bytes(self.tensor))
    }
    fn data_len(&self) -> usize {
        self.tensor.numel() * self.tensor.kind().elt_size_in_bytes()
    }
}

/// Writes contiguous CPU tensors to `path` and fsyncs it.
pub fn write(path: &Path, tensors: &[(String, Tensor)]) -> Result<()> {
    let mut views = Vec::with_capacity(tensors.len());
    for (name, t) in tensors {
        if t.device() != Device::Cpu || !t.is_contiguous() {
            return Err(Error::Input {
                path: path.to_path_buf(),
                reason: format!("internal: {name} is not a contiguous CPU tensor"),
            });
        }
        let dtype = dtype(t.kind()).ok_or_else(|| Error::Input {
            path: path.to_path_buf(),
            reason: format!("{name}: unsupported dtype {:?}", t.kind()),
        })?;
        let shape = t.size().iter().map(|&d| d as usize).collect();
        views.push((
            name.as_str(),
            TensorView {
                tensor: t,
                dtype,
                shape,
            },
        ));
    }
    safetensors::tensor::serialize_to_file(views, &None, path).map_err(|e| match e {
        safetensors::SafeTensorError::IoError(io) => Error::io(path, io),
        other => Error::Input {
            path: path.to_path_buf(),
            reason: other.to_string(),
        },
    })?;
    std::fs::File::open(path)
        .and_then(|f| f.sync_all())
        .map_err(|e| Error::io(path, e))
}

/// A safetensors file mapped into memory, its header checked.
pub struct TensorFile {
    path: std::path::PathBuf,
    map: Mmap,
}

/// One stored tensor's description.
pub struct Stored<'a> {
    pub kind: Kind,
    pub shape: Vec<i64>,
    pub data: &'a [u8],
}

impl TensorFile {
    pub fn open(path: &Path) -> Result<Self> {
        let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
        // SAFETY: read-only map of a checkpoint file that nothing modifies while it is loaded.
        let map = unsafe { Mmap::map(&file) }.map_err(|e| Error::io(path, e))?;
        SafeTensors::deserialize(&map).map_err(|e| Error::Input {
            path: path.to_path_buf(),
            reason: format!("not a readable safetensors file ({e:?}): truncated or corrupt?"),
        })?;
        Ok(Self {
            path: path.to_path_buf(),
            map,
        })
    }

    /// Every tensor by name.
    pub fn tensors(&self) -> Result<Vec<(String, Stored<'_>)>> {
        let st = SafeTensors::deserialize(&self.map).map_err(|e| Error::Input {
            path: self.path.clone(),
            reason: format!("{e:?}"),
        })?;
        st.tensors()
            .into_iter()
            .map(|(name, v)| {
                let kind = kind(v.dtype()).ok_or_else(|| Error::Input {
                    path: self.path.clone(),
                    reason: format!("{name}: unsupported dtype {:?}", v.dtype()),
                })?;
                let shape = v.shape().iter().map(|&d| d as i64).collect();
                // The view borrows the parsed header; re-slice the map itself so the data outlives it.
                let offset = v.data().as_ptr() as usize - self.map.as_ptr() as usize;
                let data = &self.map[offset..offset + v.data().len()];
                Ok((name, Stored { kind, shape, data }))
            })
            .collect()
    }
}

impl Stored<'_> {
    /// Copies the stored bytes into `target` (same shape and dtype, checked by the caller).
    pub fn copy_into(&self, target: &Tensor) {
        tch::no_grad(|| {
            if target.device() == Device::Cpu && target.is_contiguous() {
                let len = self
                    .data
                    .len()
                    .min(target.numel() * target.kind().elt_size_in_bytes());
                // SAFETY: `target` is a contiguous CPU tensor of the same byte size; no other reference
                // reads or writes it during the copy (training is not running).
                let dst =
                    unsafe { std::slice::from_raw_parts_mut(target.data_ptr() as *mut u8, len) };
                dst.copy_from_slice(&self.data[..len]);
            } else {
                target.shallow_clone().copy_(&self.to_tensor());
            }
        });
    }

    /// A new CPU tensor holding the stored values.
    pub fn to_tensor(&self) -> Tensor {
        Tensor::from_data_size(self.data, &self.shape, self.kind)
    }
}

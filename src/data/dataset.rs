//! OLMo-core's fixed-sequence-length datasets over memory-mapped token files:
//! `NumpyFSLDataset` (instances cut per file, file tails dropped, optionally in chunks of
//! `max_target_sequence_length`) and `NumpyPaddedFSLDataset` (one right-padded instance per document,
//! truncated at the sequence length; used by LM evaluation).
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use sha2::{Digest, Sha256};

use super::documents::{document_lengths, document_ranges};
use super::repetition::is_valid_instance;
use super::token_file::TokenFile;
use crate::config::data::InstanceFilterConfig;
use crate::error::{Error, Result};
use crate::token_dtype::TokenDType;

/// `NumpyDatasetBase.fingerprint_version`.
pub const FINGERPRINT_VERSION: &str = "v2.0";

/// One instance as the collator receives it.
#[derive(Debug, Clone, PartialEq)]
pub struct Instance {
    pub input_ids: Vec<i64>,
    /// Per-token loss mask (from label-mask files, or marking real tokens of a padded instance).
    pub label_mask: Option<Vec<bool>>,
    /// False when the instance filter masks the whole instance.
    pub instance_mask: Option<bool>,
    pub doc_lens: Option<Vec<i64>>,
    /// Which path the instance came from (its metadata, e.g. an eval label, is `metadata[file]`).
    pub file: usize,
}

/// What both dataset kinds share: token ids, special tokens and per-file settings.
#[derive(Debug, Clone)]
pub struct DatasetSpec {
    pub paths: Vec<PathBuf>,
    pub label_mask_paths: Option<Vec<PathBuf>>,
    pub dtype: TokenDType,
    pub sequence_length: u64,
    pub vocab_size: u64,
    pub eos_token_id: u64,
    pub pad_token_id: u64,
    pub bos_token_id: Option<u64>,
    pub instance_filter: Option<InstanceFilterConfig>,
    pub generate_doc_lengths: bool,
    pub work_dir: PathBuf,
}

/// Where each instance of a dataset comes from.
enum Layout {
    /// Instance `j` of a file is tokens `[j*seq, (j+1)*seq)`.
    Fixed {
        max_target_sequence_length: Option<u64>,
    },
    /// Instance `j` of a file is its `j`-th document, truncated: `[start, end)` per file.
    Padded { ranges: Vec<Vec<(u64, u64)>> },
}

pub struct FslDataset {
    spec: DatasetSpec,
    files: Vec<TokenFile>,
    label_masks: Option<Vec<TokenFile>>,
    /// Global `[start, end)` instance indices of each file.
    offsets: Vec<(u64, u64)>,
    layout: Layout,
    fingerprint: String,
}

impl FslDataset {
    /// `NumpyFSLDataset`: `n_i = tokens_i // seq`, or with `max_target_sequence_length = M`,
    /// `(tokens_i // M) * (M // seq)` so chunk boundaries survive a later change of `seq`.
    pub fn fixed(spec: DatasetSpec, max_target_sequence_length: Option<u64>) -> Result<Self> {
        let seq = spec.sequence_length;
        if seq == 0 {
            return Err(Error::InvalidValue {
                path: "dataset.sequence_length".into(),
                reason: "must be positive".into(),
            });
        }
        if let Some(m) = max_target_sequence_length {
            if m < seq || m % seq != 0 {
                return Err(Error::InvalidValue {
                    path: "dataset.max_target_sequence_length".into(),
                    reason: format!("{m} must be a multiple of sequence_length ({seq})"),
                });
            }
        }
        let (files, label_masks) = open_files(&spec)?;
        let counts = files.iter().map(|f| match max_target_sequence_length {
            Some(m) if m > seq => (f.len() / m) * (m / seq),
            _ => f.len() / seq,
        });
        let offsets = cumulative(counts);
        let fingerprint = fingerprint(
            "NumpyFSLDataset",
            &spec,
            &files,
            max_target_sequence_length,
            false,
        );
        Ok(Self {
            spec,
            files,
            label_masks,
            offsets,
            layout: Layout::Fixed {
                max_target_sequence_length,
            },
            fingerprint,
        })
    }

    /// `NumpyPaddedFSLDataset`: one instance per document (documents end at EOS), with its instance
    /// indices cached in `work_dir/dataset-common/` under OLMo-core's file name and format.
    pub fn padded(spec: DatasetSpec) -> Result<Self> {
        let (files, label_masks) = open_files(&spec)?;
        let mut ranges = Vec::with_capacity(files.len());
        for (file, path) in files.iter().zip(&spec.paths) {
            ranges.push(instance_ranges(file, path, &spec)?);
        }
        let offsets = cumulative(ranges.iter().map(|r| r.len() as u64));
        let fingerprint = fingerprint("NumpyPaddedFSLDataset", &spec, &files, None, true);
        Ok(Self {
            spec,
            files,
            label_masks,
            offsets,
            layout: Layout::Padded { ranges },
            fingerprint,
        })
    }

    pub fn len(&self) -> u64 {
        self.offsets.last().map_or(0, |o| o.1)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn spec(&self) -> &DatasetSpec {
        &self.spec
    }

    pub fn sequence_length(&self) -> u64 {
        self.spec.sequence_length
    }

    pub fn max_target_sequence_length(&self) -> Option<u64> {
        match self.layout {
            Layout::Fixed {
                max_target_sequence_length,
            } => max_target_sequence_length,
            Layout::Padded { .. } => None,
        }
    }

    /// sha256 over the class, settings, file names and sizes (OLMo-core's `fingerprint`).
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// Total tokens per file (for logging and `data_paths.txt`).
    pub fn file_token_counts(&self) -> Vec<u64> {
        self.files.iter().map(TokenFile::len).collect()
    }

    /// An error naming the first file holding any of `indices` that changed since it was opened
    /// (`TokenFile::check_unchanged`), checked once per file.
    pub fn check_files_unchanged(&self, indices: &[u64]) -> Result<()> {
        let mut files: Vec<usize> = indices
            .iter()
            .map(|&i| self.offsets.partition_point(|o| o.1 <= i))
            .filter(|&f| f < self.files.len())
            .collect();
        files.sort_unstable();
        files.dedup();
        for f in files {
            self.files[f].check_unchanged()?;
            if let Some(masks) = &self.label_masks {
                masks[f].check_unchanged()?;
            }
        }
        Ok(())
    }

    /// Instance `index`, with token ids checked against the vocabulary.
    pub fn get(&self, index: u64) -> Result<Instance> {
        let mut input_ids = vec![0i64; self.spec.sequence_length as usize];
        let meta = self.read_into(index, &mut input_ids)?;
        Ok(Instance { input_ids, ..meta })
    }

    /// Writes instance `index` into `out` (exactly `sequence_length` long, padded for padded datasets)
    /// and returns everything else about it (its `input_ids` field left empty). Batches use this to
    /// fill their tensor in place.
    pub fn read_into(&self, index: u64, out: &mut [i64]) -> Result<Instance> {
        let file = self.offsets.partition_point(|o| o.1 <= index);
        if file >= self.files.len() {
            return Err(Error::InvalidValue {
                path: "dataset".into(),
                reason: format!(
                    "instance {index} is out of range (the dataset has {})",
                    self.len()
                ),
            });
        }
        let local = index - self.offsets[file].0;
        let seq = self.spec.sequence_length as usize;
        let (start, end) = match &self.layout {
            Layout::Fixed { .. } => (local * seq as u64, (local + 1) * seq as u64),
            Layout::Padded { ranges } => ranges[file][local as usize],
        };
        let real = (end - start) as usize;
        let max = self.files[file]
            .dtype()
            .widen_into(&self.files[file].bytes(start, end)?, &mut out[..real]);
        if max >= self.spec.vocab_size as i64 {
            return Err(self.vocab_error(file, start, &out[..real]));
        }
        out[real..].fill(self.spec.pad_token_id as i64);
        let ids = &out[..real];
        let mut label_mask = match &self.label_masks {
            Some(m) => Some(m[file].bytes(start, end)?.iter().map(|&b| b != 0).collect()),
            None => None,
        };
        let instance_mask = self
            .spec
            .instance_filter
            .as_ref()
            .map(|cfg| is_valid_instance(ids, cfg));
        let doc_lens = self
            .spec
            .generate_doc_lengths
            .then(|| document_lengths(ids, self.spec.eos_token_id, self.spec.bos_token_id));
        if let Layout::Padded { .. } = self.layout {
            let mask = label_mask.get_or_insert_with(|| vec![true; real]);
            mask.resize(seq, false);
        }
        Ok(Instance {
            input_ids: Vec::new(),
            label_mask,
            instance_mask,
            doc_lens,
            file,
        })
    }

    /// A token id at or above the vocabulary would become a device-side assert in the embedding.
    fn vocab_error(&self, file: usize, start: u64, ids: &[i64]) -> Error {
        let vocab = self.spec.vocab_size as i64;
        let pos = ids.iter().position(|&t| t >= vocab).unwrap_or(0);
        Error::Input {
            path: self.spec.paths[file].clone(),
            reason: format!(
                "token id {} at offset {} is not below the tokenizer's vocab size {vocab}: tokenized with another tokenizer, or another dtype? (`--tokenizer NAME` sets the dataset's, the evaluators' and the model's; `--dataset.dtype` the width)",
                ids[pos],
                start + pos as u64
            ),
        }
    }
}

fn open_files(spec: &DatasetSpec) -> Result<(Vec<TokenFile>, Option<Vec<TokenFile>>)> {
    // In parallel: a remote file's size is a round trip.
    let files = spec
        .paths
        .par_iter()
        .map(|p| TokenFile::open(p, spec.dtype))
        .collect::<Result<Vec<_>>>()?;
    let Some(mask_paths) = &spec.label_mask_paths else {
        return Ok((files, None));
    };
    if mask_paths.len() != files.len() {
        return Err(Error::InvalidValue {
            path: "dataset.label_mask_paths".into(),
            reason: format!(
                "{} label-mask files for {} token files; there must be one per token file",
                mask_paths.len(),
                files.len()
            ),
        });
    }
    let opened = mask_paths
        .par_iter()
        .map(|p| TokenFile::open(p, TokenDType::Uint8))
        .collect::<Result<Vec<_>>>()?;
    let mut masks = Vec::with_capacity(files.len());
    for ((mask_path, file), mask) in mask_paths.iter().zip(&files).zip(opened) {
        if mask.len() != file.len() {
            return Err(Error::Input {
                path: mask_path.clone(),
                reason: format!(
                    "label mask has {} entries but its token file {} has {} tokens",
                    mask.len(),
                    file.path().display(),
                    file.len()
                ),
            });
        }
        masks.push(mask);
    }
    Ok((files, Some(masks)))
}

fn cumulative(counts: impl Iterator<Item = u64>) -> Vec<(u64, u64)> {
    let mut start = 0;
    counts
        .map(|n| {
            let o = (start, start + n);
            start += n;
            o
        })
        .collect()
}

/// Python's `str()` of the values OLMo-core hashes.
fn py_opt(v: Option<u64>) -> String {
    v.map_or_else(|| "None".to_string(), |x| x.to_string())
}

fn fingerprint(
    class: &str,
    spec: &DatasetSpec,
    files: &[TokenFile],
    max_target: Option<u64>,
    padded: bool,
) -> String {
    let mut h = Sha256::new();
    h.update(format!("class={class}").as_bytes());
    let mut fields = vec![
        ("vocab_size", spec.vocab_size.to_string()),
        ("pad_token_id", spec.pad_token_id.to_string()),
        ("eos_token_id", spec.eos_token_id.to_string()),
        ("dtype", format!("<class 'numpy.{}'>", spec.dtype.name())),
        ("max_target_sequence_length", py_opt(max_target)),
        ("bos_token_id", py_opt(spec.bos_token_id)),
    ];
    if padded {
        fields.push(("sequence_length", spec.sequence_length.to_string()));
    }
    for (name, value) in fields {
        h.update(format!("{name}={value},").as_bytes());
    }
    for (path, file) in spec.paths.iter().zip(files) {
        let base = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let size = file.len() * spec.dtype.bytes() as u64;
        h.update(format!("path={base},size={size},").as_bytes());
    }
    format!("{:x}", h.finalize())
}

/// A padded dataset's per-file instance ranges, read from or written to OLMo-core's cache file
/// `work_dir/dataset-common/instance-indices-{seq}-{sha256(path, size)}.npy` (raw uint32 pairs).
fn instance_ranges(file: &TokenFile, path: &Path, spec: &DatasetSpec) -> Result<Vec<(u64, u64)>> {
    let size = file.file_size();
    let mut h = Sha256::new();
    h.update(path.to_string_lossy().as_bytes());
    h.update(size.to_string().as_bytes());
    let cache = spec.work_dir.join("dataset-common").join(format!(
        "instance-indices-{}-{:x}.npy",
        spec.sequence_length,
        h.finalize()
    ));
    if let Ok(bytes) = std::fs::read(&cache) {
        if bytes.len() % 8 == 0 && !bytes.is_empty() {
            let words: Vec<u64> = bytes
                .chunks_exact(4)
                .map(|c| u64::from(u32::from_le_bytes([c[0], c[1], c[2], c[3]])))
                .collect();
            return Ok(words.chunks_exact(2).map(|p| (p[0], p[1])).collect());
        }
    }
    let seq = spec.sequence_length;
    let ranges: Vec<(u64, u64)> = document_ranges(file, spec.eos_token_id)?
        .into_iter()
        .map(|(s, e)| (s, s + (e - s).min(seq)))
        .collect();
    if ranges.is_empty() {
        return Err(Error::Input {
            path: path.to_path_buf(),
            reason: "no document (no EOS token) in this file".into(),
        });
    }
    if ranges.last().is_some_and(|r| r.1 > u64::from(u32::MAX)) {
        return Err(Error::Input {
            path: path.to_path_buf(),
            reason: "file too large for uint32 instance indices".into(),
        });
    }
    let mut bytes = Vec::with_capacity(ranges.len() * 8);
    for (s, e) in &ranges {
        bytes.extend_from_slice(&(*s as u32).to_le_bytes());
        bytes.extend_from_slice(&(*e as u32).to_le_bytes());
    }
    super::cache_file::write_atomically(&cache, &bytes)?;
    Ok(ranges)
}

//! Datasets and loaders from their config sections (`dataset`, `data_loader`, the LM evaluator's
//! `eval_dataset`): paths expanded, dtype resolved, special tokens taken from the tokenizer.
use std::path::PathBuf;
use std::sync::Arc;

use serde_yaml::Value;

use super::dataset::{DatasetSpec, FslDataset};
use super::loader::{DataLoader, LoaderOptions};
use super::remote::{expand_remote_glob, RemoteUrl};
use crate::config::data::{
    NumpyDataLoaderConfig, NumpyFSLDatasetConfig, NumpyPaddedFSLDatasetConfig, TokenizerConfig,
};
use crate::error::{Error, Result};
use crate::token_dtype::TokenDType;

/// A path list with globs expanded (sorted, as OLMo-core's `deterministic_glob_directory`) and, per
/// resulting file, the index of the configured path it came from (for its metadata). URLs stay as
/// they are (kept in a `PathBuf`, which `TokenFile::open` recognises), patterns on buckets list them.
pub fn expand_paths(
    key: &str,
    paths: &[String],
    expand_glob: bool,
) -> Result<Vec<(PathBuf, usize)>> {
    let mut out = Vec::new();
    for (i, p) in paths.iter().enumerate() {
        if let Some(url) = RemoteUrl::parse(p)? {
            // Remote files are checked when opened (their size is read up front).
            if expand_glob || url.key.contains('*') {
                let matched = expand_remote_glob(&format!("{key}.{i}"), &url)?;
                out.extend(matched.iter().map(|u| (PathBuf::from(u.to_string()), i)));
            } else {
                out.push((PathBuf::from(p), i));
            }
            continue;
        }
        let is_pattern = p.contains(['*', '?', '[']);
        if expand_glob || is_pattern {
            let mut matched: Vec<PathBuf> = glob::glob(p)
                .map_err(|e| Error::InvalidValue {
                    path: format!("{key}.{i}"),
                    reason: format!("bad glob '{p}': {e}"),
                })?
                .filter_map(|r| r.ok())
                .collect();
            if matched.is_empty() {
                return Err(Error::InvalidValue {
                    path: format!("{key}.{i}"),
                    reason: format!("no file matches '{p}'"),
                });
            }
            matched.sort();
            out.extend(matched.into_iter().map(|m| (m, i)));
        } else {
            let path = PathBuf::from(p);
            if !path.is_file() {
                return Err(Error::InvalidValue {
                    path: format!("{key}.{i}"),
                    reason: format!("token file '{p}' does not exist"),
                });
            }
            out.push((path, i));
        }
    }
    Ok(out)
}

struct Common<'a> {
    key: &'a str,
    tokenizer: &'a TokenizerConfig,
    paths: &'a Option<Vec<String>>,
    expand_glob: bool,
    dtype: Option<TokenDType>,
    metadata: &'a Option<Vec<Value>>,
    label_mask_paths: &'a Option<Vec<String>>,
    work_dir: &'a Option<String>,
    sequence_length: u64,
}

fn spec(
    c: Common<'_>,
    generate_doc_lengths: bool,
    filter: Option<crate::config::data::InstanceFilterConfig>,
) -> Result<(DatasetSpec, Vec<Value>)> {
    let paths = c
        .paths
        .as_ref()
        .filter(|p| !p.is_empty())
        .ok_or_else(|| Error::InvalidValue {
            path: format!("{}.paths", c.key),
            reason: "no token files given; pass --dataset.paths='[\"/data/*.npy\"]'".into(),
        })?;
    let expanded = expand_paths(&format!("{}.paths", c.key), paths, c.expand_glob)?;
    let metadata = match c.metadata {
        Some(m) if m.len() != paths.len() => {
            return Err(Error::InvalidValue {
                path: format!("{}.metadata", c.key),
                reason: format!(
                    "{} entries for {} paths; give one per path",
                    m.len(),
                    paths.len()
                ),
            })
        }
        Some(m) => expanded.iter().map(|(_, i)| m[*i].clone()).collect(),
        None => vec![Value::Mapping(Default::default()); expanded.len()],
    };
    let label_mask_paths = match c.label_mask_paths {
        Some(masks) => Some(
            expand_paths(&format!("{}.label_mask_paths", c.key), masks, c.expand_glob)?
                .into_iter()
                .map(|(p, _)| p)
                .collect(),
        ),
        None => None,
    };
    let t = c.tokenizer;
    let spec = DatasetSpec {
        paths: expanded.into_iter().map(|(p, _)| p).collect(),
        label_mask_paths,
        dtype: c
            .dtype
            .unwrap_or_else(|| TokenDType::for_vocab(t.vocab_size)),
        sequence_length: c.sequence_length,
        vocab_size: t.vocab_size,
        eos_token_id: t.eos_token_id,
        pad_token_id: t.pad_token_id,
        bos_token_id: t.bos_token_id,
        instance_filter: filter,
        generate_doc_lengths,
        work_dir: c
            .work_dir
            .as_deref()
            .map(PathBuf::from)
            .unwrap_or_else(std::env::temp_dir),
    };
    Ok((spec, metadata))
}

/// The training dataset (`NumpyFSLDatasetConfig`), with each file's metadata.
pub fn build_fsl_dataset(cfg: &NumpyFSLDatasetConfig) -> Result<(FslDataset, Vec<Value>)> {
    let (s, metadata) = spec(
        Common {
            key: "dataset",
            tokenizer: &cfg.tokenizer,
            paths: &cfg.paths,
            expand_glob: cfg.expand_glob,
            dtype: cfg.dtype,
            metadata: &cfg.metadata,
            label_mask_paths: &cfg.label_mask_paths,
            work_dir: &cfg.work_dir,
            sequence_length: cfg.sequence_length,
        },
        cfg.generate_doc_lengths,
        cfg.instance_filter_config.clone(),
    )?;
    Ok((
        FslDataset::fixed(s, cfg.max_target_sequence_length)?,
        metadata,
    ))
}

/// An evaluation dataset (`NumpyPaddedFSLDatasetConfig`), with each file's metadata (its `label`).
pub fn build_padded_dataset(
    key: &str,
    cfg: &NumpyPaddedFSLDatasetConfig,
) -> Result<(FslDataset, Vec<Value>)> {
    let (s, metadata) = spec(
        Common {
            key,
            tokenizer: &cfg.tokenizer,
            paths: &cfg.paths,
            expand_glob: cfg.expand_glob,
            dtype: cfg.dtype,
            metadata: &cfg.metadata,
            label_mask_paths: &cfg.label_mask_paths,
            work_dir: &cfg.work_dir,
            sequence_length: cfg.sequence_length,
        },
        false,
        cfg.instance_filter_config.clone(),
    )?;
    Ok((FslDataset::padded(s)?, metadata))
}

/// The training loader for `dataset` on rank `rank` of `world`.
pub fn build_loader(
    cfg: &NumpyDataLoaderConfig,
    dataset: Arc<FslDataset>,
    rank: u64,
    world: u64,
) -> Result<DataLoader> {
    let work_dir = cfg
        .work_dir
        .as_deref()
        .map(PathBuf::from)
        .unwrap_or_else(|| dataset.spec().work_dir.clone());
    DataLoader::new(
        dataset,
        LoaderOptions {
            global_batch_size: cfg.global_batch_size,
            seed: cfg.seed,
            work_dir,
            dp_rank: rank,
            dp_world_size: world,
            num_workers: cfg.num_workers as usize,
            // OLMo-core: without worker processes, 4 reader threads; inside workers, none.
            num_threads: cfg
                .num_threads
                .unwrap_or(if cfg.num_workers == 0 { 4 } else { 1 })
                as usize,
            prefetch_factor: cfg.prefetch_factor.unwrap_or(2) as usize,
            ignore_fingerprint_mismatch: cfg.ignore_fingerprint_mismatch,
            shuffle: true,
        },
    )
}

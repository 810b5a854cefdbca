//! `dataset` and `data_loader`: OLMo-core's `NumpyFSLDatasetConfig`, `NumpyPaddedFSLDatasetConfig`,
//! `TokenizerConfig` and `NumpyDataLoaderConfig` (`src/olmo_core/data/`).
use serde::{Deserialize, Serialize};
use serde_yaml::Value;

pub use crate::token_dtype::TokenDType;

/// OLMo-core's `TokenizerConfig`, with its presets (`src/olmo_core/data/tokenizer.py`). As there, a
/// tokenizer given as a mapping needs the three ids and sizes; `bos_token_id` and `identifier` default to
/// null (not to a preset's).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenizerConfig {
    pub vocab_size: u64,
    pub eos_token_id: u64,
    pub pad_token_id: u64,
    #[serde(default)]
    pub bos_token_id: Option<u64>,
    #[serde(default)]
    pub identifier: Option<String>,
}

impl Default for TokenizerConfig {
    fn default() -> Self {
        Self::dolma2()
    }
}

/// The preset names `TokenizerConfig::preset` accepts, for error messages and `--help`.
pub const TOKENIZER_PRESETS: &[&str] = &[
    "dolma2",
    "dolma2_sigdig",
    "gpt2",
    "gpt_neox_olmo_dolma_v1_5",
];

impl TokenizerConfig {
    pub fn dolma2() -> Self {
        Self {
            vocab_size: 100_278,
            eos_token_id: 100_257,
            pad_token_id: 100_277,
            bos_token_id: None,
            identifier: Some("allenai/dolma2-tokenizer".into()),
        }
    }

    pub fn dolma2_sigdig() -> Self {
        Self {
            bos_token_id: Some(100_257),
            identifier: Some("allenai/dolma2-tokenizer-sigdig".into()),
            ..Self::dolma2()
        }
    }

    pub fn gpt2() -> Self {
        Self {
            vocab_size: 50_257,
            eos_token_id: 50_256,
            pad_token_id: 50_256,
            bos_token_id: Some(50_256),
            identifier: Some("gpt2".into()),
        }
    }

    pub fn gpt_neox_olmo_dolma_v1_5() -> Self {
        Self {
            vocab_size: 50_280,
            eos_token_id: 50_279,
            pad_token_id: 1,
            bos_token_id: None,
            identifier: Some("allenai/gpt-neox-olmo-dolma-v1_5".into()),
        }
    }

    /// A preset by its OLMo-core classmethod name.
    pub fn preset(name: &str) -> Option<Self> {
        match name {
            "dolma2" => Some(Self::dolma2()),
            "dolma2_sigdig" => Some(Self::dolma2_sigdig()),
            "gpt2" => Some(Self::gpt2()),
            "gpt_neox_olmo_dolma_v1_5" => Some(Self::gpt_neox_olmo_dolma_v1_5()),
            _ => None,
        }
    }

    /// `padded_vocab_size(pad_multiple=128)`: the embedding size models are built with.
    pub fn padded_vocab_size(&self) -> u64 {
        self.vocab_size.div_ceil(128) * 128
    }
}

/// `InstanceFilterConfig`: masks instances with highly repetitive n-grams.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct InstanceFilterConfig {
    pub repetition_max_period: u64,
    pub repetition_min_period: u64,
    pub repetition_max_count: u64,
}

impl Default for InstanceFilterConfig {
    fn default() -> Self {
        Self {
            repetition_max_period: 13,
            repetition_min_period: 1,
            repetition_max_count: 32,
        }
    }
}

/// `NumpyFSLDatasetConfig`: fixed-sequence-length training instances.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NumpyFSLDatasetConfig {
    pub tokenizer: TokenizerConfig,
    pub paths: Option<Vec<String>>,
    pub mix: Option<String>,
    pub mix_base_dir: Option<String>,
    pub expand_glob: bool,
    pub dtype: Option<TokenDType>,
    pub metadata: Option<Vec<Value>>,
    pub include_instance_metadata: bool,
    pub instance_filter_config: Option<InstanceFilterConfig>,
    pub source_permutation_seed: Option<u64>,
    pub work_dir: Option<String>,
    pub ignore_fingerprint_mismatch: bool,
    pub sequence_length: u64,
    pub max_target_sequence_length: Option<u64>,
    pub generate_doc_lengths: bool,
    pub label_mask_paths: Option<Vec<String>>,
    pub source_mixture_config: Option<Value>,
}

impl Default for NumpyFSLDatasetConfig {
    fn default() -> Self {
        Self {
            tokenizer: TokenizerConfig::default(),
            paths: None,
            mix: None,
            mix_base_dir: None,
            expand_glob: false,
            dtype: None,
            metadata: None,
            include_instance_metadata: true,
            instance_filter_config: None,
            source_permutation_seed: None,
            work_dir: None,
            ignore_fingerprint_mismatch: false,
            sequence_length: 2048,
            max_target_sequence_length: None,
            generate_doc_lengths: false,
            label_mask_paths: None,
            source_mixture_config: None,
        }
    }
}

/// `NumpyPaddedFSLDatasetConfig`: one right-padded instance per document (LM evaluation).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NumpyPaddedFSLDatasetConfig {
    pub tokenizer: TokenizerConfig,
    pub paths: Option<Vec<String>>,
    pub mix: Option<String>,
    pub mix_base_dir: Option<String>,
    pub expand_glob: bool,
    pub dtype: Option<TokenDType>,
    pub metadata: Option<Vec<Value>>,
    pub include_instance_metadata: bool,
    pub instance_filter_config: Option<InstanceFilterConfig>,
    pub source_permutation_seed: Option<u64>,
    pub work_dir: Option<String>,
    pub ignore_fingerprint_mismatch: bool,
    pub sequence_length: u64,
    pub label_mask_paths: Option<Vec<String>>,
}

impl Default for NumpyPaddedFSLDatasetConfig {
    fn default() -> Self {
        Self {
            tokenizer: TokenizerConfig::default(),
            paths: None,
            mix: None,
            mix_base_dir: None,
            expand_glob: false,
            dtype: None,
            metadata: None,
            include_instance_metadata: true,
            instance_filter_config: None,
            source_permutation_seed: None,
            work_dir: None,
            ignore_fingerprint_mismatch: false,
            sequence_length: 2048,
            label_mask_paths: None,
        }
    }
}

/// `NumpyDataLoaderConfig` (registered as `numpy`). `global_batch_size` is in tokens.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct NumpyDataLoaderConfig {
    pub global_batch_size: u64,
    pub seed: u64,
    pub work_dir: Option<String>,
    pub num_threads: Option<u64>,
    pub num_workers: u64,
    pub prefetch_factor: Option<u64>,
    pub target_device_type: Option<String>,
    pub ignore_fingerprint_mismatch: bool,
}

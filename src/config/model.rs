//! `model`: OLMo-core's `TransformerConfig` tree (`src/olmo_core/nn/transformer/config.py`), field for
//! field and in OLMo-core's order, so a dumped config reads like OLMo-core's and overrides address the
//! same paths.
use serde::{Deserialize, Serialize};
use serde_yaml::Value;

use super::moe::MoEConfig;
use super::DType;

/// `TransformerBlockType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum BlockName {
    #[default]
    Default,
    ReorderedNorm,
    DefaultScaled,
    PeriNorm,
    Normalized,
    Moe,
    MoeReorderedNorm,
    MoeHybrid,
    MoeHybridReorderedNorm,
}

/// `LayerNormType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum LayerNormName {
    Default,
    #[default]
    Rms,
    FusedRms,
    L2Norm,
    QwenRms,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LayerNormConfig {
    pub name: LayerNormName,
    pub eps: Option<f64>,
    pub elementwise_affine: Option<bool>,
    pub bias: Option<bool>,
    pub full_precision: Option<bool>,
    pub dtype: DType,
}

impl Default for LayerNormConfig {
    fn default() -> Self {
        Self {
            name: LayerNormName::Default,
            eps: None,
            elementwise_affine: None,
            bias: None,
            full_precision: None,
            dtype: DType::Float32,
        }
    }
}

impl LayerNormConfig {
    /// The eps of an optional norm (OLMo-core's default, 1e-5, when unset).
    pub fn eps_of(norm: Option<&LayerNormConfig>) -> f64 {
        norm.and_then(|n| n.eps).unwrap_or(1e-5)
    }

    /// Parameters of one norm over `size` features (weight, plus bias when enabled).
    pub fn num_params(&self, size: u64) -> u64 {
        let affine = self.elementwise_affine.unwrap_or(true);
        if !affine || self.name == LayerNormName::L2Norm {
            return 0;
        }
        let bias = self.bias.unwrap_or(self.name == LayerNormName::Default);
        if bias {
            2 * size
        } else {
            size
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RoPEConfig {
    pub name: String,
    pub theta: u64,
    pub full_precision: bool,
    pub no_global_rope: bool,
    pub scaling: Option<Value>,
    pub partial_rotary_factor: f64,
}

impl Default for RoPEConfig {
    fn default() -> Self {
        Self {
            name: "default".into(),
            theta: 500_000,
            full_precision: true,
            no_global_rope: false,
            scaling: None,
            partial_rotary_factor: 1.0,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SlidingWindowAttentionConfig {
    pub pattern: Vec<i64>,
    pub force_full_attention_on_first_layer: bool,
    pub force_full_attention_on_last_layer: bool,
}

impl Default for SlidingWindowAttentionConfig {
    fn default() -> Self {
        Self {
            pattern: Vec::new(),
            force_full_attention_on_first_layer: true,
            force_full_attention_on_last_layer: true,
        }
    }
}

impl SlidingWindowAttentionConfig {
    /// The window of layer `layer` out of `n_layers`; `None` means full attention (OLMo-core's -1).
    pub fn window_for_layer(&self, layer: usize, n_layers: usize) -> Option<u64> {
        if (self.force_full_attention_on_first_layer && layer == 0)
            || (self.force_full_attention_on_last_layer && layer + 1 == n_layers)
            || self.pattern.is_empty()
        {
            return None;
        }
        let w = self.pattern[layer % self.pattern.len()];
        u64::try_from(w).ok()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AttentionConfig {
    pub name: String,
    pub n_heads: u64,
    pub n_kv_heads: Option<u64>,
    pub head_dim: Option<u64>,
    pub bias: Option<bool>,
    pub gate: Option<Value>,
    pub rope: Option<RoPEConfig>,
    pub clip_qkv: Option<f64>,
    pub qk_norm: Option<LayerNormConfig>,
    pub dropout: Option<f64>,
    pub use_flash: Option<bool>,
    pub backend: Option<String>,
    pub dtype: DType,
    pub sliding_window: Option<SlidingWindowAttentionConfig>,
    pub use_head_qk_norm: Option<bool>,
    // ai2-olmo-core 3.0.0 additions.
    pub scalable_softmax: bool,
    pub qk_norm_per_head_gains: Option<Value>,
    pub attention_sinks: bool,
    pub mxfp8_projections: Option<Value>,
    pub mxfp8_qkv_projection: Option<Value>,
    pub mxfp8_out_projection: Option<Value>,
    pub use_recompute_qkv_prep: Option<bool>,
    pub mxfp8_save_qkv_for_backward: Option<bool>,
}

impl Default for AttentionConfig {
    fn default() -> Self {
        Self {
            name: "default".into(),
            n_heads: 16,
            n_kv_heads: None,
            head_dim: None,
            bias: None,
            gate: None,
            rope: None,
            clip_qkv: None,
            qk_norm: None,
            dropout: None,
            use_flash: None,
            backend: None,
            dtype: DType::Float32,
            sliding_window: None,
            use_head_qk_norm: None,
            scalable_softmax: false,
            qk_norm_per_head_gains: None,
            attention_sinks: false,
            mxfp8_projections: None,
            mxfp8_qkv_projection: None,
            mxfp8_out_projection: None,
            use_recompute_qkv_prep: None,
            mxfp8_save_qkv_for_backward: None,
        }
    }
}

impl AttentionConfig {
    pub fn n_kv_heads(&self) -> u64 {
        self.n_kv_heads.unwrap_or(self.n_heads)
    }

    pub fn head_dim(&self, d_model: u64) -> u64 {
        self.head_dim.unwrap_or(d_model / self.n_heads.max(1))
    }

    /// OLMo-core's `AttentionConfig.num_params` for the dense attention kinds we build.
    pub fn num_params(&self, d_model: u64) -> u64 {
        let hd = self.head_dim(d_model);
        let q = self.n_heads * hd;
        let kv = self.n_kv_heads() * hd;
        let bias = self.bias.unwrap_or(self.name != "normalized");
        let mut params = d_model * (q + 2 * kv) + q * d_model;
        if bias {
            params += q + 2 * kv + d_model;
        }
        if let Some(norm) = &self.qk_norm {
            if self.use_head_qk_norm.unwrap_or(false) {
                params += 2 * norm.num_params(hd);
            } else {
                params += norm.num_params(q) + norm.num_params(kv);
            }
        }
        params
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FeedForwardConfig {
    pub hidden_size: u64,
    pub name: String,
    pub bias: Option<bool>,
    pub dtype: Option<DType>,
    pub activation: String,
}

impl Default for FeedForwardConfig {
    fn default() -> Self {
        Self {
            hidden_size: 0,
            name: "default".into(),
            bias: None,
            dtype: None,
            activation: "silu".into(),
        }
    }
}

impl FeedForwardConfig {
    /// Whether the projections have biases: `bias`, which OLMo-core reads as true when null.
    pub fn has_bias(&self) -> bool {
        self.bias.unwrap_or(true)
    }

    pub fn num_params(&self, d_model: u64) -> u64 {
        let mut params = 3 * d_model * self.hidden_size;
        if self.has_bias() {
            params += 2 * self.hidden_size + d_model;
        }
        params
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TransformerBlockConfig {
    /// `attention` is OLMo-core's deprecated alias for this field.
    #[serde(alias = "attention")]
    pub sequence_mixer: AttentionConfig,
    pub layer_norm: Option<LayerNormConfig>,
    pub feed_forward: Option<FeedForwardConfig>,
    pub feed_forward_moe: Option<MoEConfig>,
    pub name: BlockName,
    pub dropout: Option<f64>,
    pub attention_residual_alpha: Option<f64>,
    pub feed_forward_residual_alpha: Option<f64>,
}

impl Default for TransformerBlockConfig {
    fn default() -> Self {
        Self {
            sequence_mixer: AttentionConfig::default(),
            layer_norm: None,
            feed_forward: None,
            feed_forward_moe: None,
            name: BlockName::Default,
            dropout: None,
            attention_residual_alpha: None,
            feed_forward_residual_alpha: None,
        }
    }
}

impl TransformerBlockConfig {
    /// OLMo-core's `TransformerBlockConfig.num_params`: attention and its norm, then each
    /// feed-forward present (dense, mixture of experts) with its norm.
    pub fn num_params(&self, d_model: u64) -> u64 {
        let norm = self
            .layer_norm
            .as_ref()
            .map_or(0, |n| n.num_params(d_model));
        let ff = self
            .feed_forward
            .as_ref()
            .map_or(0, |f| f.num_params(d_model) + norm);
        let moe = self
            .feed_forward_moe
            .as_ref()
            .map_or(0, |m| m.num_params(d_model) + norm);
        self.sequence_mixer.num_params(d_model) + norm + ff + moe
    }

    /// What one token uses: `num_params` less the experts the router does not pick.
    pub fn num_active_params(&self, d_model: u64) -> u64 {
        let inactive = self
            .feed_forward_moe
            .as_ref()
            .map_or(0, |m| m.num_params(d_model) - m.num_active_params(d_model));
        self.num_params(d_model) - inactive
    }

    /// Whether the block kind routes its feed-forward through experts.
    pub fn is_moe(&self) -> bool {
        self.name.is_moe()
    }
}

impl BlockName {
    pub fn is_moe(self) -> bool {
        matches!(
            self,
            Self::Moe | Self::MoeReorderedNorm | Self::MoeHybrid | Self::MoeHybridReorderedNorm
        )
    }

    /// The hybrid kinds run a dense feed-forward beside the experts.
    pub fn is_hybrid(self) -> bool {
        matches!(self, Self::MoeHybrid | Self::MoeHybridReorderedNorm)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LMHeadConfig {
    pub name: String,
    pub layer_norm: Option<LayerNormConfig>,
    pub bias: Option<bool>,
    pub dtype: DType,
    pub loss_implementation: String,
}

impl Default for LMHeadConfig {
    fn default() -> Self {
        Self {
            name: "default".into(),
            layer_norm: None,
            bias: None,
            dtype: DType::Float32,
            loss_implementation: "default".into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TransformerConfig {
    pub d_model: u64,
    pub vocab_size: u64,
    pub n_layers: u64,
    pub block: TransformerBlockConfig,
    pub lm_head: LMHeadConfig,
    pub embedding_norm: Option<LayerNormConfig>,
    pub name: String,
    pub dtype: DType,
    pub init_method: String,
    pub init_seed: u64,
    pub init_std: f64,
    pub embedding_init_std: Option<f64>,
    pub freeze_params: Option<Vec<String>>,
    pub block_pattern: Option<Value>,
    pub block_overrides: Option<Value>,
    pub embed_scale: Option<f64>,
    pub tie_word_embeddings: bool,
}

impl Default for TransformerConfig {
    fn default() -> Self {
        Self {
            d_model: 0,
            vocab_size: 0,
            n_layers: 0,
            block: TransformerBlockConfig::default(),
            lm_head: LMHeadConfig::default(),
            embedding_norm: None,
            name: "default".into(),
            dtype: DType::Float32,
            init_method: "normal".into(),
            init_seed: 0,
            init_std: 0.02,
            embedding_init_std: None,
            freeze_params: None,
            block_pattern: None,
            block_overrides: None,
            embed_scale: None,
            tie_word_embeddings: false,
        }
    }
}

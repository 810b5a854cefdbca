//! OLMo-core's `TransformerConfig` classmethods: the dense ones (`llama2_*`, `llama3_*`, `olmo2_*`,
//! `olmo3_*`) as one table over one builder, `llama_like`, which mirrors OLMo-core's
//! `TransformerConfig.llama_like`, and the mixtures of experts (`smallmoe`, `small_hybrid_moe`,
//! `olmoe_1B_7B`) on top of it.
use crate::config::model::{
    AttentionConfig, BlockName, FeedForwardConfig, LMHeadConfig, LayerNormConfig, LayerNormName,
    RoPEConfig, SlidingWindowAttentionConfig, TransformerBlockConfig, TransformerConfig,
};
use crate::config::moe::{MoEConfig, MoERouterConfig, MoEType};
use crate::config::DType;
use crate::error::{Error, Result};

/// The architecture family a factory belongs to; it fixes norm placement, QK-norm, eps and RoPE theta.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    /// Llama 2 (RoPE theta 10k) and Llama 3 (theta 500k): pre-norm blocks, eps 1e-5, no QK-norm.
    Llama { rope_theta: u64 },
    /// OLMo 2: reordered-norm blocks, QK-norm over the full projection, eps 1e-6, theta 500k.
    Olmo2,
    /// OLMo 3: OLMo 2 plus sliding-window attention `[4096, 4096, 4096, -1]`.
    Olmo3,
}

/// One row of the factory table: the arguments each classmethod passes to `llama_like`.
#[derive(Debug, Clone, Copy)]
struct Factory {
    name: &'static str,
    family: Family,
    d_model: u64,
    n_layers: u64,
    n_heads: u64,
    n_kv_heads: Option<u64>,
    head_dim: Option<u64>,
    hidden_size_multiplier: Option<f64>,
    hidden_size_multiple_of: u64,
}

const fn row(
    name: &'static str,
    family: Family,
    d_model: u64,
    n_layers: u64,
    n_heads: u64,
) -> Factory {
    Factory {
        name,
        family,
        d_model,
        n_layers,
        n_heads,
        n_kv_heads: None,
        head_dim: None,
        hidden_size_multiplier: None,
        hidden_size_multiple_of: 256,
    }
}

const fn kv(f: Factory, n_kv_heads: u64) -> Factory {
    Factory {
        n_kv_heads: Some(n_kv_heads),
        ..f
    }
}

const fn mult(f: Factory, multiplier: f64) -> Factory {
    Factory {
        hidden_size_multiplier: Some(multiplier),
        ..f
    }
}

const fn of(f: Factory, multiple_of: u64) -> Factory {
    Factory {
        hidden_size_multiple_of: multiple_of,
        ..f
    }
}

const fn hd(f: Factory, head_dim: u64) -> Factory {
    Factory {
        head_dim: Some(head_dim),
        ..f
    }
}

const L2: Family = Family::Llama { rope_theta: 10_000 };
const L3: Family = Family::Llama {
    rope_theta: 500_000,
};
const O2: Family = Family::Olmo2;
const O3: Family = Family::Olmo3;

/// `olmo2_32B`'s multiplier is written in OLMo-core as `27648 / (8 * d_model / 3)`.
const OLMO_32B_MULT: f64 = 27648.0 / (8.0 * 5120.0 / 3.0);

/// Every dense factory, in OLMo-core's naming.
const FACTORIES: &[Factory] = &[
    row("llama2_271M", L2, 1024, 16, 8),
    row("llama2_1B", L2, 2048, 18, 16),
    row("llama2_7B", L2, 4096, 32, 32),
    row("llama2_13B", L2, 5120, 40, 40),
    row("llama2_26B", L2, 5120, 80, 40),
    of(mult(kv(row("llama2_70B", L2, 8192, 80, 64), 8), 1.3), 4096),
    mult(kv(row("llama3_1B", L3, 2048, 16, 32), 8), 1.5),
    of(mult(kv(row("llama3_8B", L3, 4096, 32, 32), 8), 1.3), 1024),
    // 8196 (sic) is OLMo-core's value.
    of(mult(kv(row("llama3_70B", L3, 8196, 80, 64), 8), 1.3), 4096),
    of(
        mult(kv(row("llama3_405B", L3, 16384, 126, 128), 8), 1.2),
        4096,
    ),
    hd(mult(row("olmo2_1M", O2, 12, 4, 4), 1.0), 4),
    row("olmo2_14M", O2, 128, 4, 8),
    row("olmo2_30M", O2, 256, 4, 8),
    mult(row("olmo2_60M", O2, 384, 8, 8), 1.5),
    mult(row("olmo2_100M", O2, 512, 12, 8), 1.5),
    mult(row("olmo2_190M", O2, 768, 12, 12), 1.5),
    mult(row("olmo2_370M", O2, 1024, 16, 16), 1.5),
    mult(row("olmo2_600M", O2, 1344, 16, 16), 1.5),
    mult(row("olmo2_760M", O2, 1536, 16, 16), 1.5),
    mult(row("olmo2_1B", O2, 2048, 18, 16), 1.5),
    mult(row("olmo2_1B_v2", O2, 2048, 16, 16), 1.5),
    mult(row("olmo2_3B", O2, 3328, 16, 16), 1.5),
    row("olmo2_7B", O2, 4096, 32, 32),
    row("olmo2_13B", O2, 5120, 40, 40),
    of(
        mult(kv(row("olmo2_32B", O2, 5120, 64, 40), 8), OLMO_32B_MULT),
        512,
    ),
    hd(mult(row("olmo3_1M", O3, 12, 4, 4), 1.0), 4),
    row("olmo3_14M", O3, 128, 4, 8),
    row("olmo3_30M", O3, 256, 4, 8),
    mult(row("olmo3_60M", O3, 384, 8, 8), 1.5),
    mult(row("olmo3_100M", O3, 512, 12, 8), 1.5),
    mult(row("olmo3_190M", O3, 768, 12, 12), 1.5),
    mult(row("olmo3_370M", O3, 1024, 16, 16), 1.5),
    mult(row("olmo3_600M", O3, 1280, 16, 16), 1.5),
    mult(row("olmo3_760M", O3, 1536, 16, 16), 1.5),
    // olmo3_1B is built from olmo2_1B_v2.
    mult(row("olmo3_1B", O3, 2048, 16, 16), 1.5),
    mult(row("olmo3_3B", O3, 3328, 16, 16), 1.5),
    row("olmo3_7B", O3, 4096, 32, 32),
    row("olmo3_13B", O3, 5120, 40, 40),
    of(
        mult(kv(row("olmo3_32B", O3, 5120, 64, 40), 8), OLMO_32B_MULT),
        512,
    ),
];

/// The names of every factory, in table order (the dense ones, then the mixtures of experts).
pub fn factory_names() -> impl Iterator<Item = &'static str> {
    FACTORIES
        .iter()
        .map(|f| f.name)
        .chain(MOE_FACTORIES.iter().map(|m| m.name))
}

/// Builds the named factory's config for an (already padded) vocabulary size.
pub fn build_factory(name: &str, vocab_size: u64) -> Result<TransformerConfig> {
    if let Some(factory) = FACTORIES.iter().find(|f| f.name == name) {
        return Ok(build(factory, vocab_size));
    }
    if let Some(moe) = MOE_FACTORIES.iter().find(|m| m.name == name) {
        return Ok(build_moe(moe, vocab_size));
    }
    Err(Error::UnknownFactory {
        name: name.to_string(),
        valid: factory_names().collect::<Vec<_>>().join(", "),
    })
}

/// One of OLMo-core's mixture-of-experts classmethods: an OLMo 2 `llama_like` base (QK-norm, eps
/// 1e-6, theta 500k) whose feed-forward is routed through experts.
struct MoEFactory {
    name: &'static str,
    d_model: u64,
    n_layers: u64,
    n_heads: u64,
    kind: MoEType,
    num_experts: u64,
    top_k: u64,
    /// A shared expert (`shared_mlp`) of `2 x d_model` (smallmoe).
    shared_expert: bool,
    /// A dense feed-forward of `2 x d_model` beside the experts (`moe_hybrid_reordered_norm`).
    hybrid: bool,
}

const MOE_FACTORIES: &[MoEFactory] = &[
    MoEFactory {
        name: "smallmoe",
        d_model: 768,
        n_layers: 12,
        n_heads: 12,
        kind: MoEType::Default,
        num_experts: 32,
        top_k: 4,
        shared_expert: true,
        hybrid: false,
    },
    MoEFactory {
        name: "small_hybrid_moe",
        d_model: 768,
        n_layers: 12,
        n_heads: 12,
        kind: MoEType::Default,
        num_experts: 32,
        top_k: 4,
        shared_expert: false,
        hybrid: true,
    },
    MoEFactory {
        name: "olmoe_1B_7B",
        d_model: 2048,
        n_layers: 16,
        n_heads: 16,
        kind: MoEType::Dropless,
        num_experts: 64,
        top_k: 8,
        shared_expert: false,
        hybrid: false,
    },
];

fn build_moe(m: &MoEFactory, vocab_size: u64) -> TransformerConfig {
    let mut cfg = build(
        &row(m.name, O2, m.d_model, m.n_layers, m.n_heads),
        vocab_size,
    );
    cfg.name = "moe".into();
    cfg.block.name = if m.hybrid {
        BlockName::MoeHybridReorderedNorm
    } else {
        BlockName::MoeReorderedNorm
    };
    cfg.block.feed_forward = m.hybrid.then(|| FeedForwardConfig {
        hidden_size: 2 * m.d_model,
        bias: Some(false),
        ..FeedForwardConfig::default()
    });
    cfg.block.feed_forward_moe = Some(MoEConfig {
        name: m.kind,
        num_experts: m.num_experts,
        hidden_size: m.d_model / 2,
        router: MoERouterConfig {
            top_k: m.top_k,
            ..MoERouterConfig::default()
        },
        // OLMo-core leaves the shared expert's bias at FeedForwardConfig's default.
        shared_mlp: m.shared_expert.then(|| FeedForwardConfig {
            hidden_size: 2 * m.d_model,
            ..FeedForwardConfig::default()
        }),
        lb_loss_weight: Some(0.01),
        z_loss_weight: Some(0.001),
        ..MoEConfig::default()
    });
    cfg
}

/// A Llama-2-style config that no factory names (tests and experiments): OLMo-core's `llama_like` with
/// `rope_theta=10_000` and default block, norm and FFN sizing.
pub fn llama_like(
    d_model: u64,
    n_layers: u64,
    n_heads: u64,
    n_kv_heads: Option<u64>,
    vocab_size: u64,
) -> TransformerConfig {
    let f = Factory {
        n_kv_heads,
        ..row("llama_like", L2, d_model, n_layers, n_heads)
    };
    build(&f, vocab_size)
}

/// `ensure_multiple_of(x, of) = of * ceil(x / of)`.
fn ensure_multiple_of(x: u64, of: u64) -> u64 {
    x.div_ceil(of) * of
}

/// OLMo-core's FFN sizing, in the same floating-point steps: `int(8*d/3)`, then `int(mult*hidden)`.
fn ffn_hidden_size(d_model: u64, multiplier: Option<f64>, multiple_of: u64) -> u64 {
    let mut hidden = (8.0 * d_model as f64 / 3.0) as u64;
    if let Some(m) = multiplier {
        hidden = (m * hidden as f64) as u64;
    }
    ensure_multiple_of(hidden, multiple_of)
}

fn build(f: &Factory, vocab_size: u64) -> TransformerConfig {
    let (rope_theta, eps, qk_norm, block_name) = match f.family {
        Family::Llama { rope_theta } => (rope_theta, 1e-5, false, BlockName::Default),
        Family::Olmo2 | Family::Olmo3 => (500_000, 1e-6, true, BlockName::ReorderedNorm),
    };
    let (sliding_window, backend) = match f.family {
        Family::Olmo3 => (
            Some(SlidingWindowAttentionConfig {
                pattern: vec![4096, 4096, 4096, -1],
                force_full_attention_on_first_layer: false,
                force_full_attention_on_last_layer: true,
            }),
            Some("flash_2".to_string()),
        ),
        _ => (None, None),
    };
    let layer_norm = LayerNormConfig {
        name: LayerNormName::Rms,
        eps: Some(eps),
        bias: Some(false),
        dtype: DType::Float32,
        ..LayerNormConfig::default()
    };
    let attention = AttentionConfig {
        n_heads: f.n_heads,
        n_kv_heads: f.n_kv_heads,
        head_dim: f.head_dim,
        bias: Some(false),
        rope: Some(RoPEConfig {
            theta: rope_theta,
            ..RoPEConfig::default()
        }),
        qk_norm: qk_norm.then(|| layer_norm.clone()),
        use_head_qk_norm: qk_norm.then_some(false),
        backend,
        sliding_window,
        ..AttentionConfig::default()
    };
    let feed_forward = FeedForwardConfig {
        hidden_size: ffn_hidden_size(
            f.d_model,
            f.hidden_size_multiplier,
            f.hidden_size_multiple_of,
        ),
        bias: Some(false),
        dtype: Some(DType::Float32),
        ..FeedForwardConfig::default()
    };
    TransformerConfig {
        d_model: f.d_model,
        vocab_size,
        n_layers: f.n_layers,
        block: TransformerBlockConfig {
            sequence_mixer: attention,
            layer_norm: Some(layer_norm.clone()),
            feed_forward: Some(feed_forward),
            name: block_name,
            ..TransformerBlockConfig::default()
        },
        lm_head: LMHeadConfig {
            layer_norm: Some(layer_norm),
            bias: Some(false),
            ..LMHeadConfig::default()
        },
        ..TransformerConfig::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn olmo2_7b_with_dolma2_matches_olmo_core() {
        let c = build_factory("olmo2_7B", 100_352).unwrap();
        assert_eq!(c.num_params(), 7_298_617_344);
        assert_eq!(c.block.feed_forward.unwrap().hidden_size, 11008);
    }

    #[test]
    fn olmo2_32b_hidden_size_uses_the_float_multiplier() {
        let c = build_factory("olmo2_32B", 100_352).unwrap();
        assert_eq!(c.block.feed_forward.unwrap().hidden_size, 27648);
    }

    #[test]
    fn unknown_factory_lists_the_valid_ones() {
        let err = build_factory("olmo9_1T", 100).unwrap_err().to_string();
        assert!(
            err.contains("olmo9_1T") && err.contains("olmo2_1M") && err.contains("llama3_405B"),
            "{err}"
        );
    }
}

//! The model's settings that olmo-train does not honour yet: the block, attention, feed-forward and
//! mixture-of-experts fields.
use super::{Checker, LEAVE_NULL};
use crate::config::model::{BlockName, FeedForwardConfig, LayerNormName};
use crate::config::moe::{GatingFunction, MoEConfig};
use crate::config::{DType, ExperimentConfig};

pub(super) fn check_model(c: &mut Checker, config: &ExperimentConfig) {
    let m = &config.model;
    let b = &m.block;
    let a = &b.sequence_mixer;
    c.flag(
        m.name != "default" && m.name != "moe",
        "model.name",
        &m.name,
        "transformers built: default, moe",
    );
    c.flag(
        !matches!(b.name, BlockName::Default | BlockName::ReorderedNorm) && !b.name.is_moe(),
        "model.block.name",
        b.name,
        "block kinds built: default, reordered_norm, moe, moe_reordered_norm, moe_hybrid, moe_hybrid_reordered_norm",
    );
    c.flag(
        b.feed_forward.is_none() && (!b.name.is_moe() || b.name.is_hybrid()),
        "model.block.feed_forward",
        "null",
        "this block kind needs a dense feed-forward",
    );
    c.flag(
        b.name.is_moe() && b.feed_forward_moe.is_none(),
        "model.block.feed_forward_moe",
        "null",
        "a mixture-of-experts block needs its experts",
    );
    c.flag(
        !b.name.is_moe() && b.feed_forward_moe.is_some(),
        "model.block.feed_forward_moe",
        "{...}",
        "experts need a moe block kind (model.block.name: moe, moe_reordered_norm, ...)",
    );
    if let Some(moe) = &b.feed_forward_moe {
        check_moe(c, moe);
    }
    c.flag(
        b.name.is_moe() && config.train_module.ac_config.is_some(),
        "train_module.ac_config",
        "{...}",
        "activation checkpointing of mixture-of-experts blocks is not built yet: leave it null",
    );
    c.set(&b.dropout, "model.block.dropout", LEAVE_NULL);
    c.set(
        &b.attention_residual_alpha,
        "model.block.attention_residual_alpha",
        LEAVE_NULL,
    );
    c.set(
        &b.feed_forward_residual_alpha,
        "model.block.feed_forward_residual_alpha",
        LEAVE_NULL,
    );
    c.set(&m.embedding_norm, "model.embedding_norm", LEAVE_NULL);
    c.set(&m.block_pattern, "model.block_pattern", LEAVE_NULL);
    c.set(&m.block_overrides, "model.block_overrides", LEAVE_NULL);
    c.set(&m.embed_scale, "model.embed_scale", LEAVE_NULL);
    c.set(&m.freeze_params, "model.freeze_params", LEAVE_NULL);
    c.flag(
        m.tie_word_embeddings,
        "model.tie_word_embeddings",
        true,
        "the LM head is untied",
    );
    c.flag(
        m.init_method != "normal",
        "model.init_method",
        &m.init_method,
        "init methods built: normal",
    );
    c.flag(
        m.dtype != super::DType::Float32,
        "model.dtype",
        m.dtype,
        "weights are fp32 masters",
    );
    c.flag(
        a.name != "default",
        "model.block.sequence_mixer.name",
        &a.name,
        "attention kinds built: default",
    );
    // OLMo-core reads a null `bias` as true for this attention kind.
    c.flag(
        a.bias.unwrap_or(true),
        "model.block.sequence_mixer.bias",
        a.bias,
        "attention projections have no bias: set it to false",
    );
    c.set(&a.gate, "model.block.sequence_mixer.gate", LEAVE_NULL);
    c.set(
        &a.clip_qkv,
        "model.block.sequence_mixer.clip_qkv",
        LEAVE_NULL,
    );
    c.set(&a.dropout, "model.block.sequence_mixer.dropout", LEAVE_NULL);
    c.flag(
        a.use_head_qk_norm == Some(true),
        "model.block.sequence_mixer.use_head_qk_norm",
        true,
        "QK-norm is over the full projection",
    );
    c.flag(
        a.scalable_softmax,
        "model.block.sequence_mixer.scalable_softmax",
        true,
        "leave it false",
    );
    c.flag(
        a.attention_sinks,
        "model.block.sequence_mixer.attention_sinks",
        true,
        "leave it false",
    );
    c.set(
        &a.qk_norm_per_head_gains,
        "model.block.sequence_mixer.qk_norm_per_head_gains",
        LEAVE_NULL,
    );
    c.set(
        &a.mxfp8_projections,
        "model.block.sequence_mixer.mxfp8_projections",
        LEAVE_NULL,
    );
    c.set(
        &a.mxfp8_qkv_projection,
        "model.block.sequence_mixer.mxfp8_qkv_projection",
        LEAVE_NULL,
    );
    c.set(
        &a.mxfp8_out_projection,
        "model.block.sequence_mixer.mxfp8_out_projection",
        LEAVE_NULL,
    );
    if let Some(rope) = &a.rope {
        c.flag(
            rope.name != "default",
            "model.block.sequence_mixer.rope.name",
            &rope.name,
            "RoPE kinds built: default",
        );
        c.set(
            &rope.scaling,
            "model.block.sequence_mixer.rope.scaling",
            LEAVE_NULL,
        );
        c.flag(
            rope.no_global_rope,
            "model.block.sequence_mixer.rope.no_global_rope",
            true,
            "leave it false",
        );
        c.flag(
            rope.partial_rotary_factor != 1.0,
            "model.block.sequence_mixer.rope.partial_rotary_factor",
            rope.partial_rotary_factor,
            "use 1.0",
        );
    }
    let norms = [
        ("model.block.layer_norm", b.layer_norm.as_ref()),
        ("model.block.sequence_mixer.qk_norm", a.qk_norm.as_ref()),
        ("model.lm_head.layer_norm", m.lm_head.layer_norm.as_ref()),
    ];
    for (path, norm) in norms.into_iter().filter_map(|(p, n)| n.map(|n| (p, n))) {
        c.flag(
            !matches!(norm.name, LayerNormName::Rms | LayerNormName::FusedRms),
            &format!("{path}.name"),
            norm.name,
            "norms built: rms, fused_rms",
        );
        c.flag(
            norm.bias == Some(true),
            &format!("{path}.bias"),
            true,
            "RMSNorm has no bias",
        );
    }
    if let Some(ff) = &b.feed_forward {
        check_feed_forward(c, ff, "model.block.feed_forward");
    }
    c.flag(
        m.lm_head.name != "default",
        "model.lm_head.name",
        &m.lm_head.name,
        "use 'default'",
    );
    c.flag(
        m.lm_head.bias == Some(true),
        "model.lm_head.bias",
        true,
        "the LM head has no bias",
    );
}

/// A dense feed-forward (the block's or a shared expert) as built: SwiGLU, with or without biases
/// (OLMo-core's `bias: null` means biases).
fn check_feed_forward(c: &mut Checker, ff: &FeedForwardConfig, path: &str) {
    c.flag(
        ff.name != "default",
        &format!("{path}.name"),
        &ff.name,
        "feed-forward kinds built: default",
    );
    c.flag(
        ff.activation != "silu",
        &format!("{path}.activation"),
        &ff.activation,
        "SwiGLU uses silu",
    );
}

fn check_moe(c: &mut Checker, moe: &MoEConfig) {
    const P: &str = "model.block.feed_forward_moe";
    let r = &moe.router;
    c.flag(
        moe.num_experts == 0,
        &format!("{P}.num_experts"),
        moe.num_experts,
        "at least one expert",
    );
    c.flag(
        r.top_k == 0 || r.top_k > moe.num_experts,
        &format!("{P}.router.top_k"),
        r.top_k,
        "between 1 and num_experts",
    );
    c.flag(
        r.name != "default",
        &format!("{P}.router.name"),
        &r.name,
        "routers built: default (linear)",
    );
    c.flag(
        r.gating_function == GatingFunction::TopkSoftmax,
        &format!("{P}.router.gating_function"),
        r.gating_function,
        "gating functions built: softmax, sigmoid (OLMo-core 3.0.0 does not implement topk_softmax either)",
    );
    c.set(
        &r.bias_gamma,
        &format!("{P}.router.bias_gamma"),
        "auxiliary-loss-free balancing is not built yet: leave it null",
    );
    c.flag(
        r.random_expert_assignment,
        &format!("{P}.router.random_expert_assignment"),
        true,
        "a benchmarking aid not built: leave it false",
    );
    c.flag(
        r.dtype.is_some_and(|d| d != DType::Float32) || moe.dtype != DType::Float32,
        &format!("{P}.dtype"),
        moe.dtype,
        "experts keep fp32 master weights",
    );
    c.set(
        &moe.latent_moe,
        &format!("{P}.latent_moe"),
        "latent experts are not built yet: leave it null",
    );
    if let Some(shared) = &moe.shared_mlp {
        check_feed_forward(c, shared, &format!("{P}.shared_mlp"));
    }
}

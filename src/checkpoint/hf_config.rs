//! The model config both ways between OLMo-core's `TransformerConfig` and a Hugging Face `config.json`:
//! which architecture a model is (Llama, OLMo 2, OLMo 3, OLMoE) and the fields each one names.
use std::path::Path;

use serde_json::{json, Value};
use tch::Kind;

use super::hf_experts as experts;
use crate::config::factories::llama_like;
use crate::config::model::{
    BlockName, LayerNormConfig, SlidingWindowAttentionConfig, TransformerConfig,
};
use crate::error::{Error, Result};

/// Which Hugging Face architecture a model config corresponds to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Family {
    Llama,
    Olmo2,
    Olmo3,
    /// `OlmoeForCausalLM`: pre-norm blocks (OLMo-core's `moe`) with QK-norm and routed experts.
    Olmoe,
}

pub(super) fn family_of(cfg: &TransformerConfig) -> Result<Family> {
    if cfg
        .block
        .feed_forward
        .as_ref()
        .is_some_and(|f| f.has_bias())
    {
        return Err(Error::NotSupported {
            path: "model.block.feed_forward.bias".into(),
            value: "true".into(),
            hint: "HF conversion covers feed-forwards without biases".into(),
        });
    }
    match (
        cfg.block.name,
        cfg.block.sequence_mixer.sliding_window.is_some(),
    ) {
        (BlockName::Default, false) => Ok(Family::Llama),
        (BlockName::ReorderedNorm, false) => Ok(Family::Olmo2),
        (BlockName::ReorderedNorm, true) => Ok(Family::Olmo3),
        (BlockName::Moe, false) => {
            experts::check_convertible(cfg)?;
            Ok(Family::Olmoe)
        }
        (other, _) => Err(Error::NotSupported {
            path: "model.block.name".into(),
            value: format!("{other:?}"),
            hint: "HF conversion covers default (Llama), reordered_norm (OLMo 2/3) and moe (OLMoE) blocks"
                .into(),
        }),
    }
}

fn field(cfg: &Value, key: &str, path: &Path) -> Result<u64> {
    cfg[key].as_u64().ok_or_else(|| Error::Input {
        path: path.to_path_buf(),
        reason: format!("missing or non-integer '{key}'"),
    })
}

/// The model config a Hugging Face `config.json` describes.
pub fn model_config_from_hf(cfg: &Value, path: &Path) -> Result<TransformerConfig> {
    let family = match cfg["model_type"].as_str() {
        Some("llama") => Family::Llama,
        Some("olmo2") => Family::Olmo2,
        Some("olmo3") => Family::Olmo3,
        Some("olmoe") => Family::Olmoe,
        other => {
            return Err(Error::Input {
                path: path.to_path_buf(),
                reason: format!(
                    "model_type {other:?}: conversion covers llama, olmo2, olmo3 and olmoe"
                ),
            })
        }
    };
    let d = field(cfg, "hidden_size", path)?;
    let heads = field(cfg, "num_attention_heads", path)?;
    let kv = cfg["num_key_value_heads"].as_u64().unwrap_or(heads);
    let bad = |reason: String| Error::Input {
        path: path.to_path_buf(),
        reason,
    };
    if heads == 0 || kv == 0 || heads % kv != 0 {
        return Err(bad(format!(
            "num_attention_heads {heads} and num_key_value_heads {kv}: expected positive counts, the first a multiple of the second"
        )));
    }
    if cfg["head_dim"].is_null() && d % heads != 0 {
        return Err(bad(format!(
            "hidden_size {d} is not a multiple of num_attention_heads {heads} (and no head_dim is given)"
        )));
    }
    let mut m = llama_like(
        d,
        field(cfg, "num_hidden_layers", path)?,
        heads,
        (kv != heads).then_some(kv),
        field(cfg, "vocab_size", path)?,
    );
    let eps = cfg["rms_norm_eps"].as_f64().unwrap_or(1e-5);
    let theta = cfg["rope_theta"]
        .as_f64()
        .or_else(|| cfg["rope_parameters"]["rope_theta"].as_f64())
        .unwrap_or(10_000.0);
    let head_dim = cfg["head_dim"].as_u64().filter(|&h| h != d / heads);
    m.block.sequence_mixer.head_dim = head_dim;
    if let Some(rope) = m.block.sequence_mixer.rope.as_mut() {
        rope.theta = theta as u64;
    }
    if family == Family::Olmoe {
        experts::olmoe_config(&mut m, cfg, path)?;
    } else if let Some(ff) = m.block.feed_forward.as_mut() {
        ff.hidden_size = field(cfg, "intermediate_size", path)?;
    }
    for norm in [m.block.layer_norm.as_mut(), m.lm_head.layer_norm.as_mut()]
        .into_iter()
        .flatten()
    {
        norm.eps = Some(eps);
    }
    if family != Family::Llama {
        if family != Family::Olmoe {
            m.block.name = BlockName::ReorderedNorm;
        }
        let qk = m.block.layer_norm.clone();
        m.block.sequence_mixer.qk_norm = qk;
        m.block.sequence_mixer.use_head_qk_norm = Some(false);
    }
    if family == Family::Olmo3 {
        let window = cfg["sliding_window"].as_i64().unwrap_or(4097);
        if window < 1 {
            return Err(bad(format!(
                "sliding_window {window}: expected a positive size"
            )));
        }
        let pattern = cfg["layer_types"]
            .as_array()
            .map(|t| {
                t.iter()
                    .map(|l| {
                        if l == "sliding_attention" {
                            window - 1
                        } else {
                            -1
                        }
                    })
                    .collect()
            })
            .unwrap_or_else(|| vec![window - 1, window - 1, window - 1, -1]);
        m.block.sequence_mixer.sliding_window = Some(SlidingWindowAttentionConfig {
            pattern,
            force_full_attention_on_first_layer: false,
            force_full_attention_on_last_layer: false,
        });
    }
    Ok(m)
}

pub(super) fn hf_config(m: &TransformerConfig, family: Family, dtype: Kind) -> Result<Value> {
    let att = &m.block.sequence_mixer;
    let eps = LayerNormConfig::eps_of(m.block.layer_norm.as_ref());
    let theta = att.rope.as_ref().map_or(10_000, |r| r.theta);
    let (arch, model_type) = match family {
        Family::Llama => ("LlamaForCausalLM", "llama"),
        Family::Olmo2 => ("Olmo2ForCausalLM", "olmo2"),
        Family::Olmo3 => ("Olmo3ForCausalLM", "olmo3"),
        Family::Olmoe => ("OlmoeForCausalLM", "olmoe"),
    };
    let mut c = json!({
        "architectures": [arch],
        "model_type": model_type,
        "vocab_size": m.vocab_size,
        "hidden_size": m.d_model,
        "intermediate_size": m.block.feed_forward.as_ref().map_or(0, |f| f.hidden_size),
        "num_hidden_layers": m.n_layers,
        "num_attention_heads": att.n_heads,
        "num_key_value_heads": att.n_kv_heads(),
        "head_dim": att.head_dim(m.d_model),
        "hidden_act": "silu",
        "max_position_embeddings": 65536,
        "attention_bias": false,
        "rope_theta": theta,
        "rope_parameters": {"rope_theta": theta, "rope_type": "default"},
        "rms_norm_eps": eps,
        "tie_word_embeddings": false,
        "pad_token_id": null, "bos_token_id": null, "eos_token_id": null,
        "torch_dtype": if dtype == Kind::BFloat16 { "bfloat16" } else { "float32" },
    });
    if family == Family::Llama {
        c["mlp_bias"] = json!(false);
    }
    if family == Family::Olmoe {
        experts::olmoe_hf_config(m, &mut c);
    }
    if let (Family::Olmo3, Some(sw)) = (family, &att.sliding_window) {
        let window = sw
            .pattern
            .iter()
            .copied()
            .filter(|&w| w > 0)
            .max()
            .unwrap_or(4096);
        let types: Vec<&str> = (0..m.n_layers as usize)
            .map(|i| {
                if sw.window_for_layer(i, m.n_layers as usize).is_some() {
                    "sliding_attention"
                } else {
                    "full_attention"
                }
            })
            .collect();
        c["sliding_window"] = json!(window + 1);
        c["layer_types"] = json!(types);
    }
    Ok(c)
}

//! Conversion between olmo-train checkpoints and Hugging Face folders (`config.json` + safetensors, one
//! file or shards with `model.safetensors.index.json`) for Llama, OLMo 2, OLMo 3 and OLMoE, with
//! OLMo-core's name mapping (`src/olmo_core/nn/hf/convert.py`). The RoPE layouts agree, so dense
//! tensors pass unchanged; OLMoE's per-expert projections are stacked into OLMo-core's expert tensors
//! (`hf_experts.rs`) and its router (`mlp.gate`) flattened. Both directions write a staging folder and
//! rename it into place.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};
use tch::{Kind, Tensor};

use super::hf_experts as experts;
use super::{layout, tensor_io};
use crate::config::factories::{build_factory, llama_like};
use crate::config::model::{
    BlockName, LayerNormConfig, SlidingWindowAttentionConfig, TransformerConfig,
};
use crate::config::{ExampleOptions, ExperimentConfig};
use crate::error::{Error, Result};

/// Which Hugging Face architecture a model config corresponds to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    Llama,
    Olmo2,
    Olmo3,
    /// `OlmoeForCausalLM`: pre-norm blocks (OLMo-core's `moe`) with QK-norm and routed experts.
    Olmoe,
}

/// `(olmo-train name, Hugging Face name)` for every weight of `cfg`.
fn name_map(cfg: &TransformerConfig, family: Family) -> Vec<(String, String)> {
    let mut m = vec![
        (
            "embeddings.weight".to_string(),
            "model.embed_tokens.weight".to_string(),
        ),
        ("lm_head.norm.weight".into(), "model.norm.weight".into()),
        ("lm_head.w_out.weight".into(), "lm_head.weight".into()),
    ];
    let qk = cfg.block.sequence_mixer.qk_norm.is_some();
    for i in 0..cfg.n_layers {
        let (p, q) = (format!("blocks.{i}."), format!("model.layers.{i}."));
        let mut pairs = vec![
            ("attention.w_q", "self_attn.q_proj"),
            ("attention.w_k", "self_attn.k_proj"),
            ("attention.w_v", "self_attn.v_proj"),
            ("attention.w_out", "self_attn.o_proj"),
        ];
        if qk {
            pairs.extend([
                ("attention.q_norm", "self_attn.q_norm"),
                ("attention.k_norm", "self_attn.k_norm"),
            ]);
        }
        match family {
            Family::Olmoe => pairs.push(("feed_forward_moe.router", "mlp.gate")),
            _ => pairs.extend([
                ("feed_forward.w1", "mlp.gate_proj"),
                ("feed_forward.w2", "mlp.down_proj"),
                ("feed_forward.w3", "mlp.up_proj"),
            ]),
        }
        match family {
            Family::Llama | Family::Olmoe => pairs.extend([
                ("attention_norm", "input_layernorm"),
                ("feed_forward_norm", "post_attention_layernorm"),
            ]),
            Family::Olmo2 | Family::Olmo3 => pairs.extend([
                ("attention_norm", "post_attention_layernorm"),
                ("feed_forward_norm", "post_feedforward_layernorm"),
            ]),
        }
        m.extend(
            pairs
                .into_iter()
                .map(|(a, b)| (format!("{p}{a}.weight"), format!("{q}{b}.weight"))),
        );
    }
    m
}

fn family_of(cfg: &TransformerConfig) -> Result<Family> {
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

/// Reads every tensor of a Hugging Face folder (single file or index + shards).
fn read_hf_tensors(dir: &Path) -> Result<BTreeMap<String, Tensor>> {
    let index = dir.join("model.safetensors.index.json");
    let files: Vec<PathBuf> = if index.is_file() {
        let text = std::fs::read_to_string(&index).map_err(|e| Error::io(&index, e))?;
        let v: Value = serde_json::from_str(&text).map_err(|e| Error::Input {
            path: index.clone(),
            reason: e.to_string(),
        })?;
        let mut shards: Vec<String> = v["weight_map"]
            .as_object()
            .ok_or_else(|| Error::Input {
                path: index.clone(),
                reason: "no weight_map".into(),
            })?
            .values()
            .filter_map(|s| s.as_str().map(String::from))
            .collect();
        shards.sort();
        shards.dedup();
        shards.into_iter().map(|s| dir.join(s)).collect()
    } else {
        vec![dir.join("model.safetensors")]
    };
    let mut out = BTreeMap::new();
    for f in files {
        let file = tensor_io::TensorFile::open(&f)?;
        for (name, stored) in file.tensors()? {
            out.insert(name, stored.to_tensor());
        }
    }
    Ok(out)
}

fn read_json(path: &Path) -> Result<Value> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    serde_json::from_str(&text).map_err(|e| Error::Input {
        path: path.to_path_buf(),
        reason: format!("not valid JSON: {e}"),
    })
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

/// `olmo-train convert from-hf`: a Hugging Face folder to an olmo-train checkpoint (weights in fp32,
/// no optimizer or trainer state) that `--load-path` accepts. With `factory`, the derived model must
/// equal that factory's (with the folder's vocabulary).
pub fn from_hf(hf_dir: &Path, out: &Path, factory: Option<&str>) -> Result<PathBuf> {
    let cfg_path = hf_dir.join("config.json");
    let hf_cfg = read_json(&cfg_path)?;
    let model = model_config_from_hf(&hf_cfg, &cfg_path)?;
    if let Some(name) = factory {
        let want = build_factory(name, model.vocab_size)?;
        if want.num_params() != model.num_params()
            || want.n_layers != model.n_layers
            || want.d_model != model.d_model
        {
            return Err(Error::Input {
                path: cfg_path,
                reason: format!(
                    "does not describe {name}: {} layers x {} wide vs {} x {}",
                    model.n_layers, model.d_model, want.n_layers, want.d_model
                ),
            });
        }
    }
    let family = family_of(&model)?;
    let mut stored = read_hf_tensors(hf_dir)?;
    let mut tensors = Vec::new();
    for (ours, theirs) in name_map(&model, family) {
        let t = stored.remove(&theirs).ok_or_else(|| Error::Input {
            path: hf_dir.to_path_buf(),
            reason: format!("missing tensor {theirs}"),
        })?;
        let t = experts::router_from_hf(&ours, t);
        tensors.push((ours, t.to_kind(Kind::Float).contiguous()));
    }
    if family == Family::Olmoe {
        tensors.extend(experts::from_hf(&model, &mut stored, hf_dir)?);
    }
    let mut experiment =
        crate::config::example::build_example_config(&ExampleOptions::new("converted"))?;
    experiment.model = model;
    write_folder(out, |tmp| {
        std::fs::create_dir_all(tmp.join("model_and_optim")).map_err(|e| Error::io(tmp, e))?;
        tensor_io::write(&tmp.join(layout::MODEL), &tensors)?;
        let config = serde_json::to_string_pretty(&experiment)
            .map_err(|e| Error::Internal(format!("not JSON: {e}")))?;
        std::fs::write(tmp.join(layout::CONFIG), config)
            .map_err(|e| Error::io(tmp.join(layout::CONFIG), e))?;
        // The model's own tokenizer travels with it (`olmo-train generate` uses it).
        let tokenizer = hf_dir.join("tokenizer.json");
        if tokenizer.is_file() {
            std::fs::copy(&tokenizer, tmp.join("tokenizer.json"))
                .map_err(|e| Error::io(&tokenizer, e))?;
        }
        let meta = json!({"ephemeral": false, "version": env!("CARGO_PKG_VERSION"), "format": "olmo-train/1", "source": hf_dir.display().to_string()});
        std::fs::write(tmp.join(layout::METADATA), meta.to_string())
            .map_err(|e| Error::io(tmp.join(layout::METADATA), e))
    })
}

/// `olmo-train convert to-hf`: a checkpoint (or the latest in a folder) to a Hugging Face folder
/// (`Olmo2ForCausalLM`, `Olmo3ForCausalLM` or `LlamaForCausalLM`) in `dtype`.
pub fn to_hf(ckpt: &Path, out: &Path, dtype: Kind) -> Result<PathBuf> {
    let dir = layout::resolve(ckpt).ok_or_else(|| Error::Input {
        path: ckpt.to_path_buf(),
        reason: "not a checkpoint and holds none".into(),
    })?;
    let cfg_path = dir.join(layout::CONFIG);
    let experiment: ExperimentConfig =
        serde_json::from_value(read_json(&cfg_path)?).map_err(|e| Error::Input {
            path: cfg_path.clone(),
            reason: format!("not an olmo-train config: {e}"),
        })?;
    let model = &experiment.model;
    let family = family_of(model)?;
    let stored: BTreeMap<String, Tensor> = super::read_model_tensors(&dir)?.into_iter().collect();
    let mut tensors = Vec::new();
    for (ours, theirs) in name_map(model, family) {
        let t = stored.get(&ours).ok_or_else(|| Error::Input {
            path: dir.join(layout::MODEL),
            reason: format!("missing tensor {ours}"),
        })?;
        let t = experts::router_to_hf(model, &ours, t);
        tensors.push((theirs, t.to_kind(dtype).contiguous()));
    }
    if family == Family::Olmoe {
        for (name, t) in experts::to_hf(model, &stored, &dir.join(layout::MODEL))? {
            tensors.push((name, t.to_kind(dtype).contiguous()));
        }
    }
    let hf_config = hf_config(model, family, dtype)?;
    write_folder(out, |tmp| {
        tensor_io::write(&tmp.join("model.safetensors"), &tensors)?;
        let text = serde_json::to_string_pretty(&hf_config)
            .map_err(|e| Error::Internal(format!("not JSON: {e}")))?;
        std::fs::write(tmp.join("config.json"), text)
            .map_err(|e| Error::io(tmp.join("config.json"), e))
    })
}

fn hf_config(m: &TransformerConfig, family: Family, dtype: Kind) -> Result<Value> {
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

/// Writes a folder through `fill` into a staging folder beside `out`, then renames it into place.
pub(super) fn write_folder(out: &Path, fill: impl FnOnce(&Path) -> Result<()>) -> Result<PathBuf> {
    if out.exists() {
        return Err(Error::Input {
            path: out.to_path_buf(),
            reason: "already exists; choose a new output folder".into(),
        });
    }
    let parent = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
    let name = out
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = parent.join(format!(".{name}.tmp-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).map_err(|e| Error::io(&tmp, e))?;
    if let Err(e) = fill(&tmp) {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(e);
    }
    std::fs::rename(&tmp, out).map_err(|e| Error::io(out, e))?;
    Ok(out.to_path_buf())
}

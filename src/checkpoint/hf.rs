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

pub use super::hf_config::model_config_from_hf;
use super::hf_config::{family_of, hf_config, Family};
use super::hf_experts as experts;
use super::{layout, tensor_io};
use crate::config::factories::build_factory;
use crate::config::model::TransformerConfig;
use crate::config::{ExampleOptions, ExperimentConfig};
use crate::error::{Error, Result};

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

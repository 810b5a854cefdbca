//! OLMoE's experts between Hugging Face's layout and OLMo-core's: transformers saves each expert's
//! `mlp.experts.{e}.gate_proj` / `up_proj` (`[hidden, d_model]`) and `down_proj` (`[d_model, hidden]`)
//! and the router as `mlp.gate` (`[num_experts, d_model]`); OLMo-core stacks the experts into
//! `feed_forward_moe.experts.mlp.w1` / `w2` / `w3` (dropless: all `[E x hidden, d_model]`, w2 holding
//! each `down_proj` transposed; the capacity kind: w1, w3 `[E x d_model, hidden]`) and keeps the
//! router flat (`[E x d_model]`), as OLMo-core's own conversion does.
use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{json, Value};
use tch::Tensor;

use crate::config::model::TransformerConfig;
use crate::config::moe::{GatingFunction, MoEConfig, MoERouterConfig, MoEType};
use crate::error::{Error, Result};

fn moe_of(cfg: &TransformerConfig) -> Result<&MoEConfig> {
    cfg.block
        .feed_forward_moe
        .as_ref()
        .ok_or_else(|| Error::NotSupported {
            path: "model.block.feed_forward_moe".into(),
            value: "null".into(),
            hint: "a moe block needs its experts".into(),
        })
}

/// OLMoE's routing is softmax top-k with the weights optionally renormalized to sum 1, without a
/// shared expert: other mixtures have no `OlmoeForCausalLM` equivalent.
pub fn check_convertible(cfg: &TransformerConfig) -> Result<()> {
    let moe = moe_of(cfg)?;
    let refuse = |path: &str, value: String, hint: &str| {
        Err(Error::NotSupported {
            path: format!("model.block.feed_forward_moe.{path}"),
            value,
            hint: format!("OlmoeForCausalLM {hint}"),
        })
    };
    if moe.shared_mlp.is_some() {
        return refuse("shared_mlp", "{...}".into(), "has no shared expert");
    }
    if moe.router.gating_function != GatingFunction::Softmax {
        return refuse(
            "router.gating_function",
            format!("{:?}", moe.router.gating_function),
            "gates with softmax",
        );
    }
    match moe.router.normalize_expert_weights {
        None => Ok(()),
        Some(1.0) => Ok(()),
        Some(p) => refuse(
            "router.normalize_expert_weights",
            p.to_string(),
            "renormalizes the top-k weights to sum 1 (normalize_expert_weights: 1.0) or not at all",
        ),
    }
}

/// The experts of an OLMoE `config.json`: dropless (transformers drops no token), top-k softmax,
/// `norm_topk_prob` as a 1-norm, the load-balancing weight from `router_aux_loss_coef`.
pub fn olmoe_config(m: &mut TransformerConfig, cfg: &Value, path: &Path) -> Result<()> {
    let bad = |reason: String| Error::Input {
        path: path.to_path_buf(),
        reason,
    };
    let int = |key: &str| {
        cfg[key]
            .as_u64()
            .ok_or_else(|| bad(format!("missing or non-integer '{key}'")))
    };
    let (experts, top_k) = (int("num_experts")?, int("num_experts_per_tok")?);
    if experts == 0 || top_k == 0 || top_k > experts {
        return Err(bad(format!(
            "num_experts {experts} and num_experts_per_tok {top_k}: expected 1 <= top-k <= experts"
        )));
    }
    if !cfg["clip_qkv"].is_null() {
        return Err(bad(
            "clip_qkv is set: olmo-train's attention does not clip".into()
        ));
    }
    m.name = "moe".into();
    m.block.name = crate::config::model::BlockName::Moe;
    m.block.feed_forward = None;
    m.block.feed_forward_moe = Some(MoEConfig {
        name: MoEType::Dropless,
        num_experts: experts,
        hidden_size: int("intermediate_size")?,
        router: MoERouterConfig {
            top_k,
            normalize_expert_weights: cfg["norm_topk_prob"]
                .as_bool()
                .unwrap_or(false)
                .then_some(1.0),
            ..MoERouterConfig::default()
        },
        lb_loss_weight: Some(cfg["router_aux_loss_coef"].as_f64().unwrap_or(0.01)),
        ..MoEConfig::default()
    });
    Ok(())
}

/// The `config.json` fields OLMoE adds.
pub fn olmoe_hf_config(m: &TransformerConfig, c: &mut Value) {
    if let Some(moe) = &m.block.feed_forward_moe {
        c["intermediate_size"] = json!(moe.hidden_size);
        c["num_experts"] = json!(moe.num_experts);
        c["num_experts_per_tok"] = json!(moe.router.top_k);
        c["norm_topk_prob"] = json!(moe.router.normalize_expert_weights.is_some());
        c["router_aux_loss_coef"] = json!(moe.lb_loss_weight.unwrap_or(0.0));
        c["output_router_logits"] = json!(false);
        c["clip_qkv"] = Value::Null;
    }
}

fn is_router(name: &str) -> bool {
    name.ends_with(".feed_forward_moe.router.weight")
}

/// `mlp.gate.weight` `[E, d]` as OLMo-core's flat router.
pub fn router_from_hf(ours: &str, t: Tensor) -> Tensor {
    if is_router(ours) {
        t.reshape([-1])
    } else {
        t
    }
}

/// OLMo-core's flat router as `mlp.gate.weight` `[E, d]`.
pub fn router_to_hf(m: &TransformerConfig, ours: &str, t: &Tensor) -> Tensor {
    match (&m.block.feed_forward_moe, is_router(ours)) {
        (Some(moe), true) => t.reshape([moe.num_experts as i64, m.d_model as i64]),
        _ => t.shallow_clone(),
    }
}

/// The three projections of one expert as HF names them, with whether OLMo-core keeps the expert's
/// slice transposed, for the given kind: `(olmo-core tensor, HF projection, transposed)`.
fn projections(kind: MoEType) -> [(&'static str, &'static str, bool); 3] {
    let capacity = kind == MoEType::Default;
    [
        ("w1", "gate_proj", capacity),
        ("w2", "down_proj", true),
        ("w3", "up_proj", capacity),
    ]
}

/// Every layer's stacked expert tensors from the per-expert HF tensors in `stored` (taken out of it).
pub fn from_hf(
    m: &TransformerConfig,
    stored: &mut BTreeMap<String, Tensor>,
    dir: &Path,
) -> Result<Vec<(String, Tensor)>> {
    let moe = moe_of(m)?;
    let mut out = Vec::new();
    for layer in 0..m.n_layers {
        for (ours, theirs, transposed) in projections(moe.name) {
            let parts = (0..moe.num_experts)
                .map(|e| {
                    let name = format!("model.layers.{layer}.mlp.experts.{e}.{theirs}.weight");
                    let t = stored.remove(&name).ok_or_else(|| Error::Input {
                        path: dir.to_path_buf(),
                        reason: format!("missing tensor {name}"),
                    })?;
                    Ok(if transposed { t.tr() } else { t })
                })
                .collect::<Result<Vec<_>>>()?;
            out.push((
                format!("blocks.{layer}.feed_forward_moe.experts.mlp.{ours}"),
                Tensor::cat(&parts, 0)
                    .to_kind(tch::Kind::Float)
                    .contiguous(),
            ));
        }
    }
    Ok(out)
}

/// Every layer's per-expert HF tensors from the stacked ones in `stored`.
pub fn to_hf(
    m: &TransformerConfig,
    stored: &BTreeMap<String, Tensor>,
    file: &Path,
) -> Result<Vec<(String, Tensor)>> {
    let moe = moe_of(m)?;
    let e = moe.num_experts as i64;
    let mut out = Vec::new();
    for layer in 0..m.n_layers {
        for (ours, theirs, transposed) in projections(moe.name) {
            let name = format!("blocks.{layer}.feed_forward_moe.experts.mlp.{ours}");
            let t = stored.get(&name).ok_or_else(|| Error::Input {
                path: file.to_path_buf(),
                reason: format!("missing tensor {name}"),
            })?;
            let rows = t.size()[0] / e.max(1);
            for expert in 0..e {
                let slice = t.narrow(0, expert * rows, rows);
                let slice = if transposed { slice.tr() } else { slice };
                out.push((
                    format!("model.layers.{layer}.mlp.experts.{expert}.{theirs}.weight"),
                    slice.contiguous(),
                ));
            }
        }
    }
    Ok(out)
}

//! OLMo-core's `Transformer` (and `MoETransformer`, whose blocks route through experts): embeddings,
//! blocks, final RMSNorm and an untied LM head, with OLMo-core's state-dict names
//! (`blocks.0.attention.w_q.weight`, ...) and parameter order, fp32 master weights, and its `normal`
//! initialization.
use tch::nn;
use tch::{Device, Kind, Tensor};

use super::block::Block;
use super::context::{DocLens, ForwardContext};
use super::moe::RouterRecord;
use super::norm::RmsNorm;
use super::params::{Draw, ParamBuilder};
use super::rope::Rope;
use super::units::Unit;
use crate::config::model::{LayerNormConfig, TransformerConfig};
use crate::error::Result;

pub struct Transformer {
    pub vs: nn::VarStore,
    pub(super) embeddings: Tensor,
    pub(super) blocks: Vec<Block>,
    pub(super) head_norm: RmsNorm,
    w_out: Tensor,
    rope: Rope,
    /// Parameters in OLMo-core's `named_parameters()` order.
    params: Vec<(String, Tensor)>,
    /// Weights in initialization order (indices into `params`) with their draw (OLMo-core's
    /// `init_weights`).
    init_order: Vec<(usize, Draw)>,
    /// With sharded parameters: brings each unit's weights in before it runs and frees them after.
    gate: Option<std::sync::Arc<dyn UnitGate>>,
}

/// What a forward outside training (evaluation, generation) calls around each unit when the weights
/// are sharded: `open` gathers the unit's weights, `close` frees them. Errors are kept by the gate and
/// reported by its owner, since a forward returns tensors, not results.
pub trait UnitGate: Send + Sync {
    fn open(&self, unit: Unit);
    fn close(&self, unit: Unit);
}

impl Transformer {
    /// Builds the model on `device` with all weights zero (call `init_weights` or load a state).
    pub fn new(cfg: &TransformerConfig, device: Device) -> Result<Self> {
        let model = Self::build(cfg, device, false)?;
        model.reset_norms();
        Ok(model)
    }

    /// The model with every parameter shaped but holding no memory, for sharded training to place
    /// unit by unit (`fsdp`): using it before then is a bug.
    pub fn new_deferred(cfg: &TransformerConfig, device: Device) -> Result<Self> {
        Self::build(cfg, device, true)
    }

    fn build(cfg: &TransformerConfig, device: Device, deferred: bool) -> Result<Self> {
        let vs = nn::VarStore::new(device);
        let mut p = ParamBuilder::new(&vs, deferred);
        let d = cfg.d_model as i64;
        let embeddings = p.weight("", "embeddings", &[cfg.vocab_size as i64, d]);
        p.init(&embeddings, cfg.embedding_init_std.unwrap_or(cfg.init_std));
        let blocks = (0..cfg.n_layers as usize)
            .map(|i| Block::new(&mut p, cfg, i))
            .collect::<Result<Vec<_>>>()?;
        let head_norm = RmsNorm {
            weight: p.weight("lm_head", "norm", &[d]),
            eps: LayerNormConfig::eps_of(cfg.lm_head.layer_norm.as_ref()),
        };
        let w_out = p.weight("lm_head", "w_out", &[cfg.vocab_size as i64, d]);
        p.init(&w_out, cfg.init_std);
        let attention = &cfg.block.sequence_mixer;
        let theta = attention.rope.as_ref().map_or(500_000, |r| r.theta) as f64;
        let rope = Rope::new(attention.head_dim(cfg.d_model) as i64, theta);
        let (params, init_order) = (p.params, p.init_order);
        Ok(Self {
            vs,
            embeddings,
            blocks,
            head_norm,
            w_out,
            rope,
            params,
            init_order,
            gate: None,
        })
    }

    /// RMSNorm weights start at 1 (`reset_parameters`).
    fn reset_norms(&self) {
        for u in self.units() {
            self.reset_unit_norms(u);
        }
    }

    fn reset_unit_norms(&self, unit: Unit) {
        tch::no_grad(|| {
            for (name, t) in self.unit_parameters(unit) {
                if name.ends_with("norm.weight") {
                    let _ = t.shallow_clone().fill_(1.0);
                }
            }
        });
    }

    /// Whether forwards gather sharded weights (every rank must then run as many as the others).
    pub fn is_sharded(&self) -> bool {
        self.gate.is_some()
    }

    /// Installs the gate every later forward calls around each unit (sharded training does).
    pub fn set_gate(&mut self, gate: std::sync::Arc<dyn UnitGate>) {
        self.gate = Some(gate);
    }

    /// OLMo-core's `normal` init: one generator seeded with `seed`, consumed in module order
    /// (embeddings; per block w_q, w_k, w_v, w_out, w1, w3, w2; the LM head), each weight drawn from a
    /// normal truncated at ±3σ exactly as `torch.nn.init.trunc_normal_` does.
    pub fn init_weights(&self, seed: u64) {
        let _ = self.init_weights_by_unit(seed, |_, init| {
            init();
            Ok(())
        });
    }

    /// `init_weights` one unit at a time, in unit order (which is also the initialization order):
    /// `around(unit, init)` must call `init` once, with the unit's weights in place (sharded training
    /// gathers memory for them first and keeps its own part after). The draws are those of
    /// `init_weights`, so the weights do not depend on how they are sharded.
    pub fn init_weights_by_unit(
        &self,
        seed: u64,
        mut around: impl FnMut(Unit, &dyn Fn()) -> Result<()>,
    ) -> Result<()> {
        // libtorch's default generator is process-wide: hold it for the whole sequence of draws.
        static GENERATOR: std::sync::Mutex<()> = std::sync::Mutex::new(());
        let _guard = GENERATOR.lock().unwrap_or_else(|e| e.into_inner());
        tch::manual_seed(seed as i64);
        for unit in self.units() {
            let prefix = Self::unit_prefix(unit);
            around(unit, &|| {
                self.reset_unit_norms(unit);
                tch::no_grad(|| {
                    for &(i, draw) in &self.init_order {
                        if self.params[i].0.starts_with(&prefix) {
                            match draw {
                                Draw::TruncNormal(std) => trunc_normal(&self.params[i].1, std),
                                Draw::Uniform(bound) => {
                                    let _ =
                                        self.params[i].1.shallow_clone().uniform_(-bound, bound);
                                }
                                Draw::Zeros => {
                                    let _ = self.params[i].1.shallow_clone().zero_();
                                }
                            }
                        }
                    }
                });
            })?;
        }
        Ok(())
    }

    /// Parameters in OLMo-core's order, under OLMo-core's names.
    pub fn named_parameters(&self) -> &[(String, Tensor)] {
        &self.params
    }

    pub fn num_params(&self) -> i64 {
        self.params.iter().map(|(_, t)| t.numel() as i64).sum()
    }

    /// Logits `[B, T, vocab]` for token ids `[B, T]`; with `doc_lens`, attention stays within documents
    /// and RoPE positions restart per document.
    pub fn forward(&self, input_ids: &Tensor, doc_lens: Option<&DocLens>) -> Tensor {
        self.forward_hidden(input_ids, doc_lens)
            .linear::<Tensor>(&self.w_out, None)
    }

    /// The final-norm hidden states `[B, T, d_model]`: everything but the LM head's projection, so
    /// training can compute the loss in chunks without materializing all logits.
    pub fn forward_hidden(&self, input_ids: &Tensor, doc_lens: Option<&DocLens>) -> Tensor {
        self.fold_units(input_ids, &self.context(input_ids, doc_lens))
    }

    /// The final-norm hidden states for packed sequences with explicit RoPE `positions` (`[B, T]`) and
    /// an attention `mask` (`[B, 1, T, T]` bool, true where allowed): downstream evaluation packs one
    /// context with all its continuations this way, each continuation seeing only the context and itself.
    pub fn forward_hidden_masked(
        &self,
        input_ids: &Tensor,
        positions: &Tensor,
        mask: &Tensor,
    ) -> Tensor {
        let ctx = ForwardContext::with_mask(positions, mask.shallow_clone(), &self.rope);
        self.fold_units(input_ids, &ctx)
    }

    /// The context every unit of a forward over `input_ids` (`[B, T]`) shares.
    pub fn context(&self, input_ids: &Tensor, doc_lens: Option<&DocLens>) -> ForwardContext {
        let (b, t) = input_ids.size2().unwrap_or((0, 0));
        ForwardContext::new(b, t, doc_lens, input_ids.device(), &self.rope)
    }

    /// Every unit in order, each on the previous one's output.
    fn fold_units(&self, input_ids: &Tensor, ctx: &ForwardContext) -> Tensor {
        self.units()
            .into_iter()
            .fold(input_ids.shallow_clone(), |x, u| match &self.gate {
                Some(gate) => {
                    gate.open(u);
                    let y = self.run_unit(u, &x, ctx);
                    gate.close(u);
                    y
                }
                None => self.run_unit(u, &x, ctx),
            })
    }

    /// Whether any block routes through experts.
    pub fn is_moe(&self) -> bool {
        self.blocks
            .iter()
            .any(|b| b.feed_forward.experts().is_some())
    }

    /// What every mixture-of-experts layer recorded in the training forwards since the last call, by
    /// block index (empty for dense models).
    pub fn take_router_records(&self) -> Vec<(usize, Vec<RouterRecord>)> {
        self.blocks
            .iter()
            .enumerate()
            .filter_map(|(i, b)| b.feed_forward.experts().map(|m| (i, m.take_records())))
            .collect()
    }

    /// What block `block`'s mixture of experts recorded since the last call (nothing for a dense
    /// block).
    pub fn take_block_router_records(&self, block: usize) -> Vec<RouterRecord> {
        self.blocks
            .get(block)
            .and_then(|b| b.feed_forward.experts())
            .map_or_else(Vec::new, |m| m.take_records())
    }

    /// The number of transformer blocks.
    pub fn n_blocks(&self) -> usize {
        self.blocks.len()
    }

    /// Whether any layer uses sliding-window attention (whose window follows sequence order, so packed
    /// sequences with their own positions cannot use it).
    pub fn has_sliding_window(&self) -> bool {
        self.blocks.iter().any(|b| b.attention.window.is_some())
    }

    /// Hidden states `[B, T, d_model]` of token ids `[B, T]` (the embeddings unit).
    pub fn embed(&self, input_ids: &Tensor) -> Tensor {
        Tensor::embedding(&self.embeddings, input_ids, -1, false, false)
    }

    /// Logits `[B, T, vocab]` of the last block's output: the LM head's norm and projection.
    pub fn head_logits(&self, x: &Tensor) -> Tensor {
        self.head_norm
            .forward(x)
            .linear::<Tensor>(&self.w_out, None)
    }

    /// The transformer blocks, in order (generation runs them over its key/value cache).
    pub fn blocks(&self) -> &[Block] {
        &self.blocks
    }

    /// The rotary embedding every block's attention uses.
    pub fn rope(&self) -> &Rope {
        &self.rope
    }

    /// The LM head's projection `[vocab, d_model]` (`lm_head.w_out.weight`).
    pub fn lm_head_weight(&self) -> &Tensor {
        &self.w_out
    }
}

/// `torch.nn.init.trunc_normal_(t, mean=0, std, a=-3std, b=3std)`, step for step, drawing from
/// libtorch's default CPU generator.
fn trunc_normal(t: &Tensor, std: f64) {
    let norm_cdf = |x: f64| (1.0 + libm_erf(x / std::f64::consts::SQRT_2)) / 2.0;
    let (a, b) = (-3.0 * std, 3.0 * std);
    let l = norm_cdf(a / std);
    let u = norm_cdf(b / std);
    let mut t = t.shallow_clone();
    let _ = t.uniform_(2.0 * l - 1.0, 2.0 * u - 1.0);
    let _ = t.erfinv_();
    let _ = t.g_mul_scalar_(std * std::f64::consts::SQRT_2);
    let _ = t.g_add_scalar_(0.0);
    let _ = t.clamp_(a, b);
}

/// Python's `math.erf` (IEEE double; the same value CPython's libm gives).
fn libm_erf(x: f64) -> f64 {
    crate::device::read_scalar(&Tensor::from(x).to_kind(Kind::Double).erf())
}

//! OLMo-core's mixture-of-experts feed-forward (`MoE` and `DroplessMoE` with `MoELinearRouter`,
//! `src/olmo_core/nn/moe/`): a linear router scores the experts, each token goes to its `top_k`, and
//! their SwiGLU outputs come back weighted by the router's scores. Tokens are sorted by expert and
//! every expert multiplies its contiguous group in one matrix product; the `default` kind keeps the
//! first `capacity` tokens of each group (in token order, as OLMo-core's binned gather) and drops the
//! rest, `dropless` keeps all. During training each forward records its router's auxiliary-loss terms
//! (load balancing, router Z) for the train module, which scales them by the step's token count and
//! adds them to the loss, and its tokens per expert for the load-imbalance metric.
use std::sync::Mutex;

use tch::{Kind, Tensor};

use super::block::{FeedForward, FeedForwardInit};
use super::params::ParamBuilder;
use crate::config::moe::{GatingFunction, LoadBalancingGranularity, MoEConfig, MoEType};

/// What one training forward of one MoE layer leaves for the train module.
pub struct RouterRecord {
    /// `num_experts / top_k x Σ tokens_per_expert x mean score` (OLMo-core's load-balancing loss
    /// before its division by the step's token count), with its graph.
    pub load_balancing: Option<Tensor>,
    /// `Σ logsumexp(router logits)²` (the router Z-loss before that division), with its graph.
    pub z: Option<Tensor>,
    /// Tokens routed to each expert (`[num_experts]`, float, no graph).
    pub tokens_per_expert: Tensor,
    /// The layer's (load-balancing, router Z) weights, already divided by the number of layers when
    /// `scale_loss_by_num_layers` is set.
    pub weights: (f64, f64),
}

/// How the experts' weights are laid out (OLMo-core's two MLP classes differ).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ExpertLayout {
    /// `MoEMLP`: w1, w3 `[E x d_model, hidden]`, w2 `[E x hidden, d_model]`.
    Capacity,
    /// `DroplessMoEMLP`: w1, w2, w3 all `[E x hidden, d_model]`.
    Dropless,
}

pub struct MoE {
    /// `[num_experts x d_model]`, flat as OLMo-core keeps it (so FSDP can shard it).
    pub router: Tensor,
    pub w1: Tensor,
    pub w2: Tensor,
    pub w3: Tensor,
    pub shared: Option<FeedForward>,
    layout: ExpertLayout,
    num_experts: i64,
    top_k: i64,
    d_model: i64,
    hidden: i64,
    gating: GatingFunction,
    normalize: Option<f64>,
    jitter: Option<f64>,
    uniform: bool,
    capacity_factor: f64,
    granularity: LoadBalancingGranularity,
    lb_weight: Option<f64>,
    z_weight: Option<f64>,
    records: Mutex<Vec<RouterRecord>>,
}

impl MoE {
    /// `{prefix}.router.weight`, `{prefix}.experts.mlp.w1`/`w2`/`w3` (and `{prefix}.shared_mlp.*`),
    /// queued for initialization in OLMo-core's order (router, w1, w2, w3, all with `std`). The shared
    /// MLP keeps `torch.nn.Linear`'s default initialization, as in OLMo-core, whose `init_weights` does
    /// not touch it.
    pub fn new(
        p: &mut ParamBuilder,
        prefix: &str,
        cfg: &MoEConfig,
        dims: (i64, u64),
        std: f64,
    ) -> Self {
        let (d_model, n_layers) = dims;
        let (lb_weight, z_weight) = cfg.layer_loss_weights(n_layers);
        let (e, h, d) = (cfg.num_experts as i64, cfg.hidden_size as i64, d_model);
        let layout = match cfg.name {
            MoEType::Default => ExpertLayout::Capacity,
            MoEType::Dropless => ExpertLayout::Dropless,
        };
        let router = p.param(&format!("{prefix}.router"), "weight", &[e * d]);
        let experts = format!("{prefix}.experts.mlp");
        let (w1, w2, w3) = match layout {
            ExpertLayout::Capacity => (
                p.param(&experts, "w1", &[e * d, h]),
                p.param(&experts, "w2", &[e * h, d]),
                p.param(&experts, "w3", &[e * d, h]),
            ),
            ExpertLayout::Dropless => (
                p.param(&experts, "w1", &[e * h, d]),
                p.param(&experts, "w2", &[e * h, d]),
                p.param(&experts, "w3", &[e * h, d]),
            ),
        };
        for w in [&router, &w1, &w2, &w3] {
            p.init(w, std);
        }
        let shared = cfg.shared_mlp.as_ref().map(|f| {
            FeedForward::new(
                p,
                &format!("{prefix}.shared_mlp"),
                (d, f.hidden_size as i64),
                f.has_bias(),
                FeedForwardInit::LinearDefault,
            )
        });
        Self {
            router,
            w1,
            w2,
            w3,
            shared,
            layout,
            num_experts: e,
            top_k: cfg.router.top_k as i64,
            d_model: d,
            hidden: h,
            gating: cfg.router.gating_function,
            normalize: cfg.router.normalize_expert_weights,
            jitter: cfg.router.jitter_eps,
            uniform: cfg.router.uniform_expert_assignment,
            capacity_factor: cfg.capacity_factor(),
            granularity: cfg.lb_loss_granularity,
            lb_weight,
            z_weight,
            records: Mutex::new(Vec::new()),
        }
    }

    /// The records of the training forwards since the last call, oldest first.
    pub fn take_records(&self) -> Vec<RouterRecord> {
        let mut records = self.records.lock().unwrap_or_else(|e| e.into_inner());
        std::mem::take(&mut *records)
    }

    /// The layer on hidden states `[B, S, d_model]`.
    pub fn forward(&self, x: &Tensor) -> Tensor {
        let shape = x.size();
        let (b, d) = (shape[0], self.d_model);
        let flat = x.reshape([-1, d]);
        let training = self.recording();
        let routed_input = match (self.jitter, training) {
            (Some(eps), true) => &flat * (flat.rand_like() * (2.0 * eps) + (1.0 - eps)),
            _ => flat.shallow_clone(),
        };
        let logits = routed_input.to_kind(Kind::Float).linear::<Tensor>(
            &self.router.view([self.num_experts, d]).to_kind(Kind::Float),
            None,
        );
        let scores = match self.gating {
            GatingFunction::Sigmoid => logits.sigmoid() + 1e-7,
            _ => logits.softmax(-1, Kind::Float),
        };
        let (weights, indices) = self.top_k(&scores);
        let weights = match self.normalize {
            Some(p) => {
                let norm = weights.norm_scalaropt_dim(p, [-1], true);
                weights / norm
            }
            None => weights,
        };
        let flat_indices = indices.reshape([-1]);
        let tokens_per_expert = tch::no_grad(|| {
            flat_indices
                .bincount::<Tensor>(None, self.num_experts)
                .to_kind(Kind::Float)
        });
        if training {
            self.record(b, &logits, &scores, &indices, &tokens_per_expert);
        }
        let routed = self.experts(&flat, &weights.reshape([-1]), &flat_indices);
        let out = match &self.shared {
            Some(shared) => {
                let k = self.top_k as f64;
                shared.forward(&flat) / (k + 1.0) + routed * (k / (k + 1.0))
            }
            None => routed,
        };
        out.to_kind(x.kind()).reshape(shape.as_slice())
    }

    /// OLMo-core's `get_top_k`: the `top_k` largest scores and their experts (`max` for one).
    fn top_k(&self, scores: &Tensor) -> (Tensor, Tensor) {
        if self.uniform {
            let n = scores.size()[0];
            let indices = Tensor::arange(n * self.top_k, (Kind::Int64, scores.device()))
                .remainder(self.num_experts)
                .view([n, self.top_k]);
            return (scores.gather(-1, &indices, false), indices);
        }
        if self.top_k == 1 {
            scores.max_dim(-1, true)
        } else {
            scores.topk(self.top_k, -1, true, true)
        }
    }

    /// The auxiliary-loss terms and expert counts of one training forward over `batch` instances.
    fn record(
        &self,
        batch: i64,
        logits: &Tensor,
        scores: &Tensor,
        indices: &Tensor,
        tokens_per_expert: &Tensor,
    ) {
        let (e, k) = (self.num_experts, self.top_k);
        let scale = e as f64 / k as f64;
        let load_balancing = self.lb_weight.is_some().then(|| {
            let scores = match self.gating {
                GatingFunction::Sigmoid => {
                    scores / scores.sum_dim_intlist([-1i64].as_slice(), true, Kind::Float)
                }
                _ => scores.shallow_clone(),
            };
            match self.granularity {
                LoadBalancingGranularity::LocalBatch => {
                    tokens_per_expert.dot(&scores.mean_dim([0i64].as_slice(), false, Kind::Float))
                        * scale
                }
                LoadBalancingGranularity::Instance => {
                    let per_instance = tch::no_grad(|| {
                        let idx = indices.reshape([batch, -1]);
                        Tensor::zeros([batch, e], (Kind::Float, idx.device())).scatter_add(
                            1,
                            &idx,
                            &idx.ones_like().to_kind(Kind::Float),
                        )
                    });
                    let mean = scores.reshape([batch, -1, e]).mean_dim(
                        [1i64].as_slice(),
                        false,
                        Kind::Float,
                    );
                    (mean * per_instance).sum(Kind::Float) * scale
                }
            }
        });
        let z = self
            .z_weight
            .is_some()
            .then(|| logits.logsumexp([-1], false).square().sum(Kind::Float));
        let mut records = self.records.lock().unwrap_or_else(|e| e.into_inner());
        records.push(RouterRecord {
            load_balancing,
            z,
            tokens_per_expert: tokens_per_expert.shallow_clone(),
            weights: (self.lb_weight.unwrap_or(0.0), self.z_weight.unwrap_or(0.0)),
        });
    }

    /// The experts' weighted outputs `[N, d_model]` for tokens `x` `[N, d_model]`, each routed to
    /// `top_k` experts (`indices`, `weights`: `[N x top_k]`, token-major).
    fn experts(&self, x: &Tensor, weights: &Tensor, indices: &Tensor) -> Tensor {
        let n = x.size()[0];
        let k = self.top_k;
        // Sorting by expert (stably, so each group stays in token order) makes every expert's
        // tokens contiguous.
        let (_, order) = indices.sort_stable(true, 0, false);
        let counts: Vec<i64> = Vec::try_from(
            indices
                .bincount::<Tensor>(None, self.num_experts)
                .to_device(tch::Device::Cpu),
        )
        .unwrap_or_default();
        let capacity = match self.layout {
            ExpertLayout::Dropless => i64::MAX,
            ExpertLayout::Capacity => self.capacity(n),
        };
        let token_of = order.floor_divide_scalar(k);
        let mut kept_rows = Vec::new();
        let mut outputs = Vec::new();
        let mut start = 0;
        for (expert, &count) in counts.iter().enumerate() {
            let kept = count.min(capacity);
            if kept > 0 {
                let rows = order.narrow(0, start, kept);
                let tokens = token_of.narrow(0, start, kept);
                let y = self.expert(expert as i64, &x.index_select(0, &tokens));
                outputs.push(
                    y * weights
                        .index_select(0, &rows)
                        .unsqueeze(1)
                        .to_kind(x.kind()),
                );
                kept_rows.push(tokens);
            }
            start += count;
        }
        let out = Tensor::zeros([n, self.d_model], (x.kind(), x.device()));
        if outputs.is_empty() {
            return out;
        }
        out.index_add(0, &Tensor::cat(&kept_rows, 0), &Tensor::cat(&outputs, 0))
    }

    /// Whether this forward trains: autograd records it (OLMo-core computes the auxiliary losses, and
    /// jitters, only then). A view of the router weight answers without a device read.
    fn recording(&self) -> bool {
        self.router
            .narrow(0, 0, 1)
            .g_mul_scalar(1.0)
            .requires_grad()
    }

    /// `MoE`'s expert capacity for `n` tokens: `capacity_factor x top_k x n / num_experts`, rounded
    /// up to a multiple of 8.
    fn capacity(&self, n: i64) -> i64 {
        let ideal = self.top_k as f64 * n as f64 / self.num_experts as f64;
        let allowed = (self.capacity_factor * ideal) as i64;
        (allowed + 7) / 8 * 8
    }

    /// Expert `e`'s SwiGLU on its tokens `x` `[n, d_model]`.
    fn expert(&self, e: i64, x: &Tensor) -> Tensor {
        let (h, d) = (self.hidden, self.d_model);
        let pick = |w: &Tensor, rows: i64, cols: i64| {
            w.view([self.num_experts, rows, cols])
                .select(0, e)
                .to_kind(x.kind())
        };
        match self.layout {
            ExpertLayout::Capacity => {
                let (w1, w3, w2) = (
                    pick(&self.w1, d, h),
                    pick(&self.w3, d, h),
                    pick(&self.w2, h, d),
                );
                (x.matmul(&w1).silu() * x.matmul(&w3)).matmul(&w2)
            }
            ExpertLayout::Dropless => {
                let (w1, w3, w2) = (
                    pick(&self.w1, h, d),
                    pick(&self.w3, h, d),
                    pick(&self.w2, h, d),
                );
                (x.matmul(&w1.tr()).silu() * x.matmul(&w3.tr())).matmul(&w2)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use tch::nn::VarStore;
    use tch::Device;

    use super::*;
    use crate::config::moe::MoERouterConfig;

    fn layer(vs: &VarStore, kind: MoEType, capacity_factor: Option<f64>) -> MoE {
        let mut p = ParamBuilder::new(vs, false);
        let cfg = MoEConfig {
            name: kind,
            num_experts: 4,
            hidden_size: 6,
            capacity_factor,
            router: MoERouterConfig {
                top_k: 2,
                ..MoERouterConfig::default()
            },
            z_loss_weight: Some(0.001),
            ..MoEConfig::default()
        };
        let moe = MoE::new(&mut p, "moe", &cfg, (8, 2), 0.02);
        tch::no_grad(|| {
            for (_, t) in &p.params {
                let _ = t.shallow_clone().normal_(0.0, 0.5);
            }
        });
        moe
    }

    /// Token by token: softmax over the router logits, the two best experts, their SwiGLU outputs
    /// weighted by their scores, summed.
    fn naive(moe: &MoE, x: &Tensor) -> Tensor {
        let rows: Vec<Tensor> = (0..x.size()[0])
            .map(|i| {
                let xi = x.narrow(0, i, 1);
                let logits = xi.linear::<Tensor>(&moe.router.view([4, 8]), None);
                let (w, idx) = logits.softmax(-1, Kind::Float).topk(2, -1, true, true);
                let mut out = Tensor::zeros([1, 8], (Kind::Float, Device::Cpu));
                for j in 0..2 {
                    let e = idx.int64_value(&[0, j]);
                    out += moe.expert(e, &xi) * w.double_value(&[0, j]);
                }
                out
            })
            .collect();
        Tensor::cat(&rows, 0)
    }

    #[test]
    fn dropless_routing_equals_the_token_by_token_sum() {
        let vs = VarStore::new(Device::Cpu);
        let moe = layer(&vs, MoEType::Dropless, None);
        let x = Tensor::randn([3, 5, 8], (Kind::Float, Device::Cpu));
        let y = tch::no_grad(|| moe.forward(&x));
        let want = tch::no_grad(|| naive(&moe, &x.reshape([-1, 8])));
        assert!(y.reshape([-1, 8]).allclose(&want, 1e-5, 1e-6, false));
        assert!(moe.take_records().is_empty(), "no records outside training");
    }

    #[test]
    fn the_capacity_kind_drops_the_tokens_past_each_experts_capacity() {
        let vs = VarStore::new(Device::Cpu);
        // 64 tokens x top-2 / 4 experts = 32 per expert ideally; a factor of 0.25 keeps 8.
        let moe = layer(&vs, MoEType::Default, Some(0.25));
        assert_eq!(moe.capacity(64), 8);
        let x = Tensor::randn([64, 8], (Kind::Float, Device::Cpu));
        let y = tch::no_grad(|| moe.forward(&x));
        let full = tch::no_grad(|| naive(&moe, &x));
        // At most 4 experts x 8 slots = 32 of the 128 assignments survive: many tokens lose one or
        // both of their experts, and the first tokens of each expert's group never do.
        let changed = (&y - &full).abs().amax([1i64].as_slice(), false).gt(1e-5);
        let n_changed = changed.sum(Kind::Int64).int64_value(&[]);
        assert!(n_changed > 16, "{n_changed} tokens changed");
        assert!(y
            .narrow(0, 0, 1)
            .allclose(&full.narrow(0, 0, 1), 1e-5, 1e-6, false));
    }

    /// smallmoe's shared expert: OLMo-core's `FeedForwardConfig(hidden_size=...)`, biases included,
    /// mixed in as `shared / (k+1) + experts x k/(k+1)`.
    #[test]
    fn a_shared_expert_with_biases_is_mixed_in() {
        let vs = VarStore::new(Device::Cpu);
        let mut p = ParamBuilder::new(&vs, false);
        let cfg = MoEConfig {
            name: MoEType::Dropless,
            num_experts: 4,
            hidden_size: 6,
            router: MoERouterConfig {
                top_k: 2,
                ..MoERouterConfig::default()
            },
            shared_mlp: Some(crate::config::model::FeedForwardConfig {
                hidden_size: 10,
                ..Default::default()
            }),
            ..MoEConfig::default()
        };
        let moe = MoE::new(&mut p, "moe", &cfg, (8, 1), 0.02);
        let names: Vec<&str> = p.params.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names[4..],
            [
                "moe.shared_mlp.w1.weight",
                "moe.shared_mlp.w1.bias",
                "moe.shared_mlp.w2.weight",
                "moe.shared_mlp.w2.bias",
                "moe.shared_mlp.w3.weight",
                "moe.shared_mlp.w3.bias",
            ]
        );
        tch::no_grad(|| {
            for (_, t) in &p.params {
                let _ = t.shallow_clone().normal_(0.0, 0.5);
            }
        });
        let x = Tensor::randn([7, 8], (Kind::Float, Device::Cpu));
        let shared = moe.shared.as_ref().unwrap();
        let [b1, b2, b3] = shared.biases.as_ref().unwrap();
        let h = (x.matmul(&shared.w1.tr()) + b1).silu() * (x.matmul(&shared.w3.tr()) + b3);
        let shared_out = h.matmul(&shared.w2.tr()) + b2;
        let want = tch::no_grad(|| shared_out / 3.0 + naive(&moe, &x) * (2.0 / 3.0));
        let y = tch::no_grad(|| moe.forward(&x));
        assert!(y.allclose(&want, 1e-5, 1e-6, false));
    }

    #[test]
    fn training_forwards_record_the_router_terms() {
        let vs = VarStore::new(Device::Cpu);
        let moe = layer(&vs, MoEType::Dropless, None);
        let x = Tensor::randn([2, 5, 8], (Kind::Float, Device::Cpu));
        let _ = moe.forward(&x);
        let records = moe.take_records();
        assert_eq!(records.len(), 1);
        let r = &records[0];
        assert_eq!(r.tokens_per_expert.sum(Kind::Float).double_value(&[]), 20.0);
        let lb = r.load_balancing.as_ref().unwrap();
        assert!(lb.requires_grad());
        assert!(lb.double_value(&[]) > 0.0);
        assert!(r.z.as_ref().unwrap().double_value(&[]) > 0.0);
        assert!(moe.take_records().is_empty());
    }
}

//! `model.block.feed_forward_moe`: OLMo-core's `MoEConfig` and `MoERouterConfig`
//! (`src/olmo_core/nn/moe/{moe,router}.py`), field for field, with their parameter counts.
use serde::{Deserialize, Serialize};
use serde_yaml::Value;

use super::model::FeedForwardConfig;
use super::DType;

/// `MoEType`: `default` drops the tokens past each expert's capacity, `dropless` keeps every token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum MoEType {
    #[default]
    Default,
    Dropless,
}

/// `MoELoadBalancingLossGranularity`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum LoadBalancingGranularity {
    /// Over the rank's micro-batch as a whole.
    #[default]
    LocalBatch,
    /// Per instance (sequence), then summed.
    Instance,
}

/// `MoERouterGatingFunction`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum GatingFunction {
    #[default]
    Softmax,
    TopkSoftmax,
    Sigmoid,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MoERouterConfig {
    pub name: String,
    pub top_k: u64,
    pub jitter_eps: Option<f64>,
    pub normalize_expert_weights: Option<f64>,
    pub uniform_expert_assignment: bool,
    pub random_expert_assignment: bool,
    pub bias_gamma: Option<f64>,
    pub gating_function: GatingFunction,
    pub dtype: Option<DType>,
}

impl Default for MoERouterConfig {
    fn default() -> Self {
        Self {
            name: "default".into(),
            top_k: 1,
            jitter_eps: None,
            normalize_expert_weights: None,
            uniform_expert_assignment: false,
            random_expert_assignment: false,
            bias_gamma: None,
            gating_function: GatingFunction::Softmax,
            dtype: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MoEConfig {
    pub name: MoEType,
    pub num_experts: u64,
    pub hidden_size: u64,
    pub capacity_factor: Option<f64>,
    pub router: MoERouterConfig,
    pub shared_mlp: Option<FeedForwardConfig>,
    /// ai2-olmo-core 3.0.0's `LatentMoEConfig` (routed experts in a smaller dimension).
    pub latent_moe: Option<Value>,
    pub lb_loss_weight: Option<f64>,
    pub lb_loss_granularity: LoadBalancingGranularity,
    pub z_loss_weight: Option<f64>,
    pub scale_loss_by_num_layers: bool,
    pub dtype: DType,
}

impl Default for MoEConfig {
    fn default() -> Self {
        Self {
            name: MoEType::Default,
            num_experts: 1,
            hidden_size: 256,
            capacity_factor: None,
            router: MoERouterConfig::default(),
            shared_mlp: None,
            latent_moe: None,
            lb_loss_weight: Some(0.01),
            lb_loss_granularity: LoadBalancingGranularity::LocalBatch,
            z_loss_weight: None,
            scale_loss_by_num_layers: true,
            dtype: DType::Float32,
        }
    }
}

/// `MoE`'s capacity factor when the config leaves it null (the `default` kind only).
pub const DEFAULT_CAPACITY_FACTOR: f64 = 1.2;

impl MoEConfig {
    /// Router, every expert and the shared MLP.
    pub fn num_params(&self, d_model: u64) -> u64 {
        let router = d_model * self.num_experts;
        let experts = 3 * d_model * self.hidden_size * self.num_experts;
        let shared = self
            .shared_mlp
            .as_ref()
            .map_or(0, |f| f.num_params(d_model));
        router + experts + shared
    }

    /// What one token uses: the router, `top_k` experts and the shared MLP.
    pub fn num_active_params(&self, d_model: u64) -> u64 {
        self.num_params(d_model) - 3 * d_model * self.hidden_size * self.num_experts
            + 3 * d_model * self.hidden_size * self.router.top_k
    }

    /// OLMo-core's `MoE.num_flops_per_token`: 6 x (router + shared MLP parameters) + 6 x the experts'
    /// parameters scaled by `top_k / num_experts`.
    pub fn flops_per_token(&self, d_model: u64) -> u64 {
        let router = d_model * self.num_experts;
        let shared = self
            .shared_mlp
            .as_ref()
            .map_or(0, |f| f.num_params(d_model));
        let experts = 3 * d_model * self.hidden_size * self.num_experts;
        6 * (router + shared) + 6 * (experts * self.router.top_k / self.num_experts.max(1))
    }

    /// The capacity factor the `default` kind uses.
    pub fn capacity_factor(&self) -> f64 {
        self.capacity_factor.unwrap_or(DEFAULT_CAPACITY_FACTOR)
    }

    /// The (load-balancing, router Z) loss weights each layer applies: divided by the number of
    /// layers when `scale_loss_by_num_layers` is set.
    pub fn layer_loss_weights(&self, n_layers: u64) -> (Option<f64>, Option<f64>) {
        let scale = if self.scale_loss_by_num_layers {
            n_layers.max(1) as f64
        } else {
            1.0
        };
        (
            self.lb_loss_weight.map(|w| w / scale),
            self.z_loss_weight.map(|w| w / scale),
        )
    }
}

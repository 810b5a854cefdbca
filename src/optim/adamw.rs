//! AdamW as `torch.optim.AdamW` computes it on CPU (the single-tensor path), with OLMo-core's parameter
//! groups: one group per `group_overrides` entry (fnmatch patterns over parameter names) followed by a
//! default group with the rest. The state (step, exp_avg, exp_avg_sq) is ours, so checkpoints can hold it.
//! `fused: true` runs torch's fused kernel over the same state instead.
use std::collections::HashMap;

use tch::Tensor;

use super::fused_adamw::{DeviceSteps, FusedBatch};
use super::skip_step::SkipStep;
use crate::config::train_module::AdamWConfig;
use crate::error::{Error, Result};

#[derive(Debug, Clone, PartialEq)]
pub struct ParamGroup {
    /// Indices into the optimizer's parameter list.
    pub params: Vec<usize>,
    pub lr: f64,
    pub initial_lr: f64,
    pub weight_decay: f64,
    pub betas: (f64, f64),
    pub eps: f64,
}

pub(super) struct ParamState {
    pub(super) step: f64,
    pub(super) exp_avg: Tensor,
    pub(super) exp_avg_sq: Tensor,
}

pub struct AdamW {
    pub(super) params: Vec<(String, Tensor)>,
    pub(super) groups: Vec<ParamGroup>,
    /// Only through `state_dict` / `load_state_dict` from outside.
    pub(super) state: Vec<Option<ParamState>>,
    /// `fused: true`: torch's fused kernel, one call per group.
    fused: bool,
    /// By group index, the step counts the fused kernel reads, kept on the parameters' device.
    pub(super) fused_steps: HashMap<usize, DeviceSteps>,
    /// `skip_step_adamw`: the rule that may skip a step, and whether the last step was skipped.
    skip: Option<SkipStep>,
    step_skipped: Option<Tensor>,
}

impl AdamW {
    pub fn new(params: Vec<(String, Tensor)>, cfg: &AdamWConfig) -> Result<Self> {
        let mut assigned = vec![false; params.len()];
        let mut groups = Vec::new();
        for (i, o) in cfg.group_overrides.iter().flatten().enumerate() {
            let members: Vec<usize> = (0..params.len())
                .filter(|&p| {
                    !assigned[p] && o.params.iter().any(|pat| glob_match(pat, &params[p].0))
                })
                .collect();
            if members.is_empty() {
                return Err(Error::InvalidValue {
                    path: format!("train_module.optim.group_overrides.{i}.params"),
                    reason: format!(
                        "{:?} matches no parameter (names look like 'embeddings.weight')",
                        o.params
                    ),
                });
            }
            members.iter().for_each(|&p| assigned[p] = true);
            let mut group = default_group(cfg, members);
            for (k, v) in &o.opts {
                let key = k.as_str().ok_or_else(|| Error::InvalidValue {
                    path: format!("train_module.optim.group_overrides.{i}.opts"),
                    reason: format!("option names are strings, not {k:?}"),
                })?;
                let num = v.as_f64().ok_or_else(|| Error::InvalidValue {
                    path: format!("train_module.optim.group_overrides.{i}.opts.{key}"),
                    reason: "expected a number".into(),
                })?;
                match key {
                    "weight_decay" => group.weight_decay = num,
                    "lr" => {
                        group.lr = num;
                        group.initial_lr = num;
                    }
                    "eps" => group.eps = num,
                    other => {
                        return Err(Error::NotSupported {
                            path: format!("train_module.optim.group_overrides.{i}.opts.{other}"),
                            value: num.to_string(),
                            hint: "per-group options built: lr, weight_decay, eps".into(),
                        })
                    }
                }
            }
            groups.push(group);
        }
        let rest: Vec<usize> = (0..params.len()).filter(|&p| !assigned[p]).collect();
        if !rest.is_empty() {
            groups.push(default_group(cfg, rest));
        }
        let state = (0..params.len()).map(|_| None).collect();
        let on_cuda = params.first().is_some_and(|p| p.1.device().is_cuda());
        Ok(Self {
            params,
            groups,
            state,
            // Unset, torch picks a multi-tensor path on CUDA (foreach); the fused kernel is the
            // fewest kernels with the same update up to rounding.
            fused: cfg.fused.unwrap_or(on_cuda),
            fused_steps: HashMap::new(),
            skip: None,
            step_skipped: None,
        })
    }

    /// Makes this `SkipStepAdamW`: `step` consults `rule`, whose loss and gradient norm the train
    /// module records before each step.
    pub fn with_skip_step(mut self, rule: SkipStep) -> Self {
        self.skip = Some(rule);
        self
    }

    pub fn skip_step_mut(&mut self) -> Option<&mut SkipStep> {
        self.skip.as_mut()
    }

    /// 1.0 if the last step was skipped, else 0.0 (`optim/step skipped`); `None` for plain AdamW.
    pub fn step_skipped(&self) -> Option<&Tensor> {
        self.step_skipped.as_ref()
    }

    /// The parameters, by name, in the order they were given.
    pub fn params(&self) -> &[(String, Tensor)] {
        &self.params
    }

    /// Bytes of the moments held so far (counted without building a state dict: it runs every step).
    pub fn state_bytes(&self) -> i64 {
        self.state
            .iter()
            .flatten()
            .map(|st| {
                let bytes = |t: &Tensor| (t.numel() * t.kind().elt_size_in_bytes()) as i64;
                bytes(&st.exp_avg) + bytes(&st.exp_avg_sq)
            })
            .sum()
    }

    /// The parameter groups, whose LRs the scheduler sets before each step.
    pub fn groups_mut(&mut self) -> &mut [ParamGroup] {
        &mut self.groups
    }

    /// One AdamW update of every parameter that has a gradient, unless the skip-step rule skips it.
    pub fn step(&mut self) -> Result<()> {
        if let Some(rule) = &self.skip {
            // OLMo-core multiplies every term of the update by the factor on the device; a skipped step
            // changes nothing either way, so the factor is read once here (one host read a step, for
            // this optimizer only) and a skipped step does no work.
            let factor = rule.step_factor();
            let take = crate::device::read_scalar(&factor) > 0.5;
            self.step_skipped = Some(1.0 - factor);
            if !take {
                return Ok(());
            }
        }
        tch::no_grad(|| {
            for gi in 0..self.groups.len() {
                if self.fused {
                    self.fused_group_step(gi)?;
                } else {
                    self.single_tensor_group_step(gi);
                }
            }
            Ok::<(), Error>(())
        })?;
        if self.skip.as_ref().is_some_and(|r| !r.count_steps) {
            // Without `step_increment_bugfix` OLMo-core never advances the count: every step is
            // bias-corrected as the first.
            self.state.iter_mut().flatten().for_each(|st| st.step = 0.0);
        }
        Ok(())
    }

    /// The state of parameter `p`, created (zero moments) on its first update.
    fn state_of<'a>(
        state: &'a mut [Option<ParamState>],
        p: usize,
        param: &Tensor,
    ) -> &'a mut ParamState {
        state[p].get_or_insert_with(|| ParamState {
            step: 0.0,
            exp_avg: param.zeros_like(),
            exp_avg_sq: param.zeros_like(),
        })
    }

    /// torch's single-tensor AdamW (its CPU default), operation for operation.
    fn single_tensor_group_step(&mut self, gi: usize) {
        let g = &self.groups[gi];
        let (beta1, beta2) = g.betas;
        for &p in &g.params {
            let mut param = self.params[p].1.shallow_clone();
            let grad = param.grad();
            if !grad.defined() {
                continue;
            }
            let st = Self::state_of(&mut self.state, p, &param);
            st.step += 1.0;
            let _ = param.g_mul_scalar_(1.0 - g.lr * g.weight_decay);
            let _ = st.exp_avg.lerp_(&grad, 1.0 - beta1);
            // `addcmul_(grad, grad, value=1-beta2)`: the kernel computes (value*grad)*grad.
            let _ = st.exp_avg_sq.g_mul_scalar_(beta2);
            let _ = st.exp_avg_sq.addcmul_(&(&grad * (1.0 - beta2)), &grad);
            let bias_correction1 = 1.0 - beta1.powf(st.step);
            let bias_correction2 = 1.0 - beta2.powf(st.step);
            let step_size = g.lr / bias_correction1;
            // The same operations as torch, in its order, but in place on one temporary: each
            // extra parameter-sized temporary is another pass over memory.
            let mut denom = st.exp_avg_sq.sqrt();
            let _ = denom.g_div_scalar_(bias_correction2.sqrt());
            let _ = denom.g_add_scalar_(g.eps);
            // `addcdiv_(exp_avg, denom, value=-step_size)`: (value*exp_avg)/denom.
            let _ = param.addcdiv_(&(&st.exp_avg * -step_size), &denom);
        }
    }

    /// torch's fused AdamW over the group's parameters that have gradients.
    fn fused_group_step(&mut self, gi: usize) -> Result<()> {
        let g = &self.groups[gi];
        let mut batch = FusedBatch::default();
        let mut step = 0.0;
        for &p in &g.params {
            let param = &self.params[p].1;
            let grad = param.grad();
            if !grad.defined() {
                continue;
            }
            let st = Self::state_of(&mut self.state, p, param);
            st.step += 1.0;
            step = st.step;
            batch.push(param, grad, &st.exp_avg, &st.exp_avg_sq, st.step);
        }
        batch
            .apply(
                self.fused_steps.entry(gi).or_default(),
                g.lr,
                g.betas,
                g.weight_decay,
                g.eps,
            )
            .map_err(|reason| Error::Training {
                step: step as u64,
                reason,
            })
    }

    /// `zero_grad(set_to_none=True)`: every gradient is dropped, so a parameter that gets none in the
    /// next backward is skipped by the next step, as in torch.
    pub fn zero_grad(&mut self) {
        for (_, p) in &self.params {
            super::grads::drop_grad(p);
        }
    }
}

fn default_group(cfg: &AdamWConfig, params: Vec<usize>) -> ParamGroup {
    ParamGroup {
        params,
        lr: cfg.lr,
        initial_lr: cfg.lr,
        weight_decay: cfg.weight_decay,
        betas: cfg.betas,
        eps: cfg.eps,
    }
}

/// Python's `fnmatch` on parameter names: `*` and `?`, no path semantics.
pub fn glob_match(pattern: &str, name: &str) -> bool {
    glob::Pattern::new(pattern).is_ok_and(|p| {
        p.matches_with(
            name,
            glob::MatchOptions {
                require_literal_separator: false,
                ..Default::default()
            },
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::train_module::OptimGroupOverride;
    use tch::{Device, Kind};

    fn optimizer(fused: bool) -> AdamW {
        tch::manual_seed(11);
        let params = vec![
            (
                "embeddings.weight".to_string(),
                Tensor::randn([7, 5], (Kind::Float, Device::Cpu)),
            ),
            (
                "blocks.0.w".to_string(),
                Tensor::randn([5], (Kind::Float, Device::Cpu)),
            ),
        ];
        let cfg = AdamWConfig {
            lr: 0.01,
            weight_decay: 0.1,
            fused: Some(fused),
            group_overrides: Some(vec![OptimGroupOverride {
                params: vec!["embeddings.weight".into()],
                opts: serde_yaml::from_str("{weight_decay: 0.0}").unwrap(),
            }]),
            ..Default::default()
        };
        AdamW::new(params, &cfg).unwrap()
    }

    /// `fused: true` follows the single-tensor path's trajectory (only rounding differs) over steps
    /// with two groups (weight decay on one only).
    #[test]
    fn fused_matches_single_tensor() {
        let (mut a, mut b) = (optimizer(false), optimizer(true));
        let start = b.params[0].1.copy();
        for _ in 0..4 {
            let grads: Vec<Tensor> = a.params.iter().map(|(_, p)| p.randn_like() * 0.1).collect();
            for opt in [&mut a, &mut b] {
                for (i, (_, p)) in opt.params.iter().enumerate() {
                    let _ = p.shallow_clone().set_requires_grad(true);
                    let mut g = p.grad();
                    if !g.defined() {
                        (p * 0.0).sum(Kind::Float).backward();
                        g = p.grad();
                    }
                    g.copy_(&grads[i]);
                }
                opt.step().unwrap();
                opt.zero_grad();
            }
        }
        for ((_, pa), (_, pb)) in a.params.iter().zip(&b.params) {
            assert!(pa.allclose(pb, 1e-5, 1e-7, false), "{pa} vs {pb}");
        }
        assert_eq!(b.state[1].as_ref().map(|s| s.step), Some(4.0));
        assert!(!b.params[0].1.allclose(&start, 1e-3, 1e-3, false));
    }

    #[test]
    fn fused_kernel_errors_come_back_as_errors() {
        let p = Tensor::zeros([4], (Kind::Float, Device::Cpu));
        let mut batch = FusedBatch::default();
        let wrong = Tensor::zeros([4], (Kind::Double, Device::Cpu));
        batch.push(
            &p,
            wrong.shallow_clone(),
            &p.zeros_like(),
            &p.zeros_like(),
            1.0,
        );
        let err = batch
            .apply(&mut DeviceSteps::default(), 1e-3, (0.9, 0.999), 0.0, 1e-8)
            .unwrap_err();
        assert!(err.starts_with("fused AdamW: "), "{err}");
    }
}

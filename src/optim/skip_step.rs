//! OLMo-core's skip-step rule (`SkipStepOptimizer`): a step whose loss, or gradient norm when
//! gradients are clipped, lies more than `sigma_factor` standard deviations above the mean of the
//! previous `rolling_interval_length` steps is skipped: no weight decay, no moment update, no step
//! count. The rule waits for `max(2, rolling_interval_length / 2)` recorded losses before it skips
//! anything, and a non-finite loss or norm always fails the comparison, so it is skipped too.
//!
//! As in OLMo-core the history is not part of a checkpoint: a resumed run fills its window afresh.
use std::collections::VecDeque;

use tch::{Kind, Tensor};

use crate::config::train_module::SkipStepAdamWConfig;

pub struct SkipStep {
    window: usize,
    sigma_factor: f64,
    /// Whether a step that is taken counts towards bias correction (OLMo-core's
    /// `step_increment_bugfix`; without it every step is corrected as the first).
    pub count_steps: bool,
    losses: VecDeque<Tensor>,
    grad_norms: VecDeque<Tensor>,
}

impl SkipStep {
    pub fn new(cfg: &SkipStepAdamWConfig) -> Self {
        Self {
            window: cfg.rolling_interval_length as usize,
            sigma_factor: cfg.sigma_factor as f64,
            count_steps: cfg.step_increment_bugfix,
            losses: VecDeque::new(),
            grad_norms: VecDeque::new(),
        }
    }

    /// The step's loss (the CE loss averaged over ranks), before `step_factor`.
    pub fn record_loss(&mut self, loss: &Tensor) {
        push_bounded(&mut self.losses, loss, self.window + 1);
    }

    /// The step's total gradient norm (before clipping), before `step_factor`.
    pub fn record_grad_norm(&mut self, norm: &Tensor) {
        push_bounded(&mut self.grad_norms, norm, self.window + 1);
    }

    /// 1.0 to take the step, 0.0 to skip it, as a device scalar (OLMo-core's `get_step_factor`).
    pub fn step_factor(&self) -> Tensor {
        let (Some(latest), true) = (
            self.losses.back(),
            self.losses.len() >= 2.max(self.window / 2),
        ) else {
            return Tensor::from(1.0f32);
        };
        let mut take = self.within_bounds(&self.losses, latest);
        if let Some(norm) = self.grad_norms.back() {
            take = take.logical_and(&self.within_bounds(&self.grad_norms, norm));
        }
        take.to_kind(Kind::Float)
    }

    /// `latest - mean <= sigma * std` over the values before it (torch's unbiased std).
    fn within_bounds(&self, history: &VecDeque<Tensor>, latest: &Tensor) -> Tensor {
        let before: Vec<&Tensor> = history.iter().take(history.len() - 1).collect();
        let (std, mean) = Tensor::stack(&before, 0).std_mean(true);
        (latest - mean).le_tensor(&(std * self.sigma_factor))
    }
}

fn push_bounded(values: &mut VecDeque<Tensor>, value: &Tensor, cap: usize) {
    values.push_back(value.detach().to_kind(Kind::Float));
    while values.len() > cap {
        values.pop_front();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(window: u64) -> SkipStep {
        SkipStep::new(&SkipStepAdamWConfig {
            rolling_interval_length: window,
            sigma_factor: 6,
            ..SkipStepAdamWConfig::default()
        })
    }

    fn factor(s: &SkipStep) -> f64 {
        f64::try_from(s.step_factor()).unwrap()
    }

    #[test]
    fn skips_a_spike_only_after_half_a_window() {
        let mut s = rule(8);
        for (i, loss) in [3.0f32, 3.1, 2.9].iter().enumerate() {
            s.record_loss(&Tensor::from(*loss));
            assert_eq!(factor(&s), 1.0, "step {i}: too few losses to judge");
        }
        s.record_loss(&Tensor::from(3.05f32));
        assert_eq!(factor(&s), 1.0);
        s.record_loss(&Tensor::from(30.0f32));
        assert_eq!(factor(&s), 0.0, "a spike far above the window is skipped");
        s.record_loss(&Tensor::from(f32::NAN));
        assert_eq!(factor(&s), 0.0, "a NaN loss is skipped");
    }

    #[test]
    fn a_gradient_norm_spike_alone_skips_the_step() {
        let mut s = rule(4);
        for (loss, norm) in [(3.0f32, 1.0f32), (3.1, 1.1), (2.9, 0.9), (3.0, 50.0)] {
            s.record_loss(&Tensor::from(loss));
            s.record_grad_norm(&Tensor::from(norm));
        }
        assert_eq!(factor(&s), 0.0);
    }

    #[test]
    fn the_window_keeps_the_last_values_only() {
        let mut s = rule(2);
        for v in 0..10 {
            s.record_loss(&Tensor::from(v as f32));
        }
        assert_eq!(s.losses.len(), 3);
    }
}

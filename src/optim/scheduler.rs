//! OLMo-core's LR schedulers (`src/olmo_core/optim/scheduler.py`) as pure functions of
//! (initial LR, current step or token, total). The trainer sets each group's LR from this before every
//! optimizer step, with `current` the 1-based global step (or tokens seen, for `units: tokens`).
use std::f64::consts::PI;

use crate::config::train_module::SchedulerConfig;
use crate::error::{Error, Result};

fn linear_warmup(lr: f64, current: u64, warmup: u64, min_lr: f64) -> f64 {
    min_lr + (lr - min_lr) * current.min(warmup) as f64 / warmup as f64
}

fn linear_decay(lr: f64, from_end: u64, decay: u64, min_lr: f64) -> f64 {
    min_lr + (lr - min_lr) * from_end.min(decay) as f64 / decay as f64
}

/// `warmup`, or Python's `round(t_max * warmup_fraction)` (ties to even).
fn resolve(count: Option<u64>, fraction: Option<f64>, t_max: u64, name: &str) -> Result<u64> {
    match (count, fraction) {
        (Some(w), None) => Ok(w),
        (None, Some(f)) if (0.0..=1.0).contains(&f) => {
            Ok((t_max as f64 * f).round_ties_even() as u64)
        }
        _ => Err(Error::InvalidValue {
            path: format!("train_module.scheduler.{name}"),
            reason: format!(
                "give exactly one of '{name}' and '{name}_fraction' (a fraction in [0, 1])"
            ),
        }),
    }
}

/// OLMo-core's shape shared by `LinearWithWarmup` and `CosWithWarmup`: linear warmup while
/// `current < warmup`, `alpha_f * lr` from `t_max` on, and in between `decay(eta_min, done, span)` with
/// the steps done of the decay phase and its length (kept apart so the float operations run in
/// OLMo-core's order).
fn warmup_then_decay(
    lr: f64,
    current: u64,
    t_max: u64,
    alpha_f: f64,
    (warmup, warmup_fraction, warmup_min_lr): (Option<u64>, Option<f64>, f64),
    decay: impl Fn(f64, f64, f64) -> f64,
) -> Result<f64> {
    let eta_min = lr * alpha_f;
    let w = resolve(warmup, warmup_fraction, t_max, "warmup")?;
    Ok(if current < w {
        linear_warmup(lr, current, w, warmup_min_lr)
    } else if current >= t_max {
        eta_min
    } else {
        decay(eta_min, (current - w) as f64, (t_max - w) as f64)
    })
}

/// Checks a scheduler's settings once, before training starts.
pub fn validate(s: &SchedulerConfig, t_max: u64) -> Result<()> {
    lr_at(s, 1.0, 1, t_max.max(1)).map(|_| ())
}

/// The LR at `current` of `t_max` for a group whose initial LR is `lr`.
pub fn lr_at(s: &SchedulerConfig, lr: f64, current: u64, t_max: u64) -> Result<f64> {
    Ok(match s {
        SchedulerConfig::Constant(_) => lr,
        SchedulerConfig::ConstantWithWarmup(c) => {
            let w = resolve(c.warmup, c.warmup_fraction, t_max, "warmup")?;
            if current <= w {
                linear_warmup(lr, current, w, c.warmup_min_lr)
            } else {
                lr
            }
        }
        SchedulerConfig::Wsd(c) => {
            let w = resolve(c.warmup, c.warmup_fraction, t_max, "warmup")?;
            if current <= w {
                return Ok(linear_warmup(lr, current, w, c.warmup_min_lr));
            }
            let d = resolve(c.decay, c.decay_fraction, t_max, "decay")?;
            if current >= t_max.saturating_sub(d) {
                linear_decay(lr, t_max.saturating_sub(current), d, c.decay_min_lr)
            } else {
                lr
            }
        }
        SchedulerConfig::LinearWithWarmup(c) => {
            let w = (c.warmup, c.warmup_fraction, c.warmup_min_lr);
            warmup_then_decay(
                lr,
                current,
                c.t_max.unwrap_or(t_max),
                c.alpha_f,
                w,
                |eta_min, done, span| lr - (lr - eta_min) * (done / span),
            )?
        }
        SchedulerConfig::CosWithWarmup(c) => {
            let w = (c.warmup, c.warmup_fraction, c.warmup_min_lr);
            warmup_then_decay(
                lr,
                current,
                c.t_max.unwrap_or(t_max),
                c.alpha_f,
                w,
                |eta_min, done, span| {
                    eta_min + (lr - eta_min) * (1.0 + (PI * done / span).cos()) / 2.0
                },
            )?
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::train_module::CosWithWarmup;

    #[test]
    fn cosine_with_warmup_matches_olmo_core_formula() {
        let s = SchedulerConfig::CosWithWarmup(CosWithWarmup::with_warmup(5));
        assert!((lr_at(&s, 1e-3, 1, 20).unwrap() - 2e-4).abs() < 1e-15);
        assert!((lr_at(&s, 1e-3, 5, 20).unwrap() - 1e-3).abs() < 1e-15);
        assert!((lr_at(&s, 1e-3, 20, 20).unwrap() - 1e-4).abs() < 1e-15);
        let mid = lr_at(&s, 1e-3, 12, 20).unwrap();
        let want = 1e-4 + 9e-4 * (1.0 + (PI * 7.0 / 15.0).cos()) / 2.0;
        assert!((mid - want).abs() < 1e-15);
    }

    #[test]
    fn fractions_round_half_to_even_like_python() {
        let mut c = CosWithWarmup::with_warmup(0);
        c.warmup = None;
        c.warmup_fraction = Some(0.25);
        // round(10 * 0.25) = round(2.5) = 2 in Python.
        let s = SchedulerConfig::CosWithWarmup(c);
        assert!((lr_at(&s, 1.0, 1, 10).unwrap() - 0.5).abs() < 1e-12);
    }
}

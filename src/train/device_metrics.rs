//! A step's metrics that live on the device (loss, gradient norm, ...), recorded by name and brought to
//! the host only when the trainer collects: many steps' values in one transfer (one host sync), reduced
//! over the data-parallel ranks in one collective.
use std::borrow::Cow;

use tch::{Kind, Tensor};

use super::metrics::StepMetrics;
use crate::device::host_copy;
use crate::dist::ProcessGroup;
use crate::error::{Error, Result};

/// How a metric combines over the data-parallel ranks (OLMo-core's `ReduceType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reduce {
    Mean,
    Max,
}

/// Scalar device tensors by metric name, in recording order.
#[derive(Default)]
pub struct DeviceMetrics(Vec<(Cow<'static, str>, Reduce, Tensor)>);

impl DeviceMetrics {
    /// Records `value` (a scalar tensor) under `name`, averaged over the ranks, replacing an earlier
    /// value of that name.
    pub fn record(&mut self, name: impl Into<Cow<'static, str>>, value: Tensor) {
        self.record_with(name, Reduce::Mean, value);
    }

    /// Records `value` under `name`, combined over the ranks by `reduce`.
    pub fn record_with(
        &mut self,
        name: impl Into<Cow<'static, str>>,
        reduce: Reduce,
        value: Tensor,
    ) {
        let name = name.into();
        self.0.retain(|(n, _, _)| *n != name);
        self.0.push((name, reduce, value));
    }

    pub fn get(&self, name: &str) -> Option<&Tensor> {
        self.0.iter().find(|(n, _, _)| n == name).map(|(_, _, t)| t)
    }

    /// The host values of every step's metrics, in one device-to-host copy; with `group`, each
    /// combined over its ranks (the mean, one all-reduce; the maximum, one all-gather), as OLMo-core
    /// reduces collected metrics. `step` names the step in an error.
    pub fn to_host(
        steps: &[&DeviceMetrics],
        group: Option<&ProcessGroup>,
        step: u64,
    ) -> Result<Vec<StepMetrics>> {
        let gather = |reduce: Reduce| -> Option<Tensor> {
            let scalars: Vec<Tensor> = steps
                .iter()
                .flat_map(|m| m.0.iter().filter(move |(_, r, _)| *r == reduce))
                .map(|(_, _, t)| t.to_kind(Kind::Double).view([1]))
                .collect();
            (!scalars.is_empty()).then(|| Tensor::cat(&scalars, 0))
        };
        let (means, maxes) = (gather(Reduce::Mean), gather(Reduce::Max));
        if means.is_none() && maxes.is_none() {
            return Ok(steps.iter().map(|_| StepMetrics::new()).collect());
        }
        let means = match (means, group) {
            (Some(t), Some(pg)) => {
                pg.all_reduce_sum(&[t.shallow_clone()])?;
                Some(t / pg.world_size as f64)
            }
            (t, _) => t,
        };
        let maxes = match (maxes, group) {
            (Some(t), Some(pg)) => {
                let n = t.size()[0];
                let all = t.new_zeros([pg.world_size as i64 * n], (Kind::Double, t.device()));
                pg.all_gather_into(&all, &t)?.wait()?;
                Some(all.view([-1, n]).amax([0i64].as_slice(), false))
            }
            (t, _) => t,
        };
        let n_means = means.as_ref().map_or(0, |t| t.size()[0] as usize);
        let both: Vec<Tensor> = means.into_iter().chain(maxes).collect();
        let values = Vec::<f64>::try_from(host_copy(&Tensor::cat(&both, 0))).map_err(|e| {
            Error::Training {
                step,
                reason: format!("reading the step metrics back: {e}"),
            }
        })?;
        let (means, maxes) = values.split_at(n_means.min(values.len()));
        let (mut means, mut maxes) = (means.iter().copied(), maxes.iter().copied());
        Ok(steps
            .iter()
            .map(|m| {
                m.0.iter()
                    .map(|(name, reduce, _)| {
                        let next = match reduce {
                            Reduce::Mean => means.next(),
                            Reduce::Max => maxes.next(),
                        };
                        (name.to_string(), next.unwrap_or(f64::NAN))
                    })
                    .collect()
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_come_back_by_name_for_every_step() {
        let mut a = DeviceMetrics::default();
        a.record("x", Tensor::from(1.5f32));
        a.record("y", Tensor::from(2.0f64));
        let mut b = DeviceMetrics::default();
        b.record("y", Tensor::from(7i64));
        b.record("y", Tensor::from(8i64));
        a.record_with("z", Reduce::Max, Tensor::from(3.0f32));
        let host = DeviceMetrics::to_host(&[&a, &b], None, 1).unwrap();
        assert_eq!(host[0]["z"], 3.0);
        assert_eq!(host[0]["x"], 1.5);
        assert_eq!(host[0]["y"], 2.0);
        assert_eq!(host[1].len(), 1);
        assert_eq!(host[1]["y"], 8.0);
    }
}

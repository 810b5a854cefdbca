//! A step's metrics that live on the device (loss, gradient norm, ...), recorded by name and brought to
//! the host only when the trainer collects: many steps' values in one transfer (one host sync), reduced
//! over the data-parallel ranks in one collective.
use tch::{Kind, Tensor};

use super::metrics::StepMetrics;
use crate::device::host_copy;
use crate::dist::ProcessGroup;
use crate::error::{Error, Result};

/// Scalar device tensors by metric name, in recording order.
#[derive(Default)]
pub struct DeviceMetrics(Vec<(&'static str, Tensor)>);

impl DeviceMetrics {
    /// Records `value` (a scalar tensor) under `name`, replacing an earlier value of that name.
    pub fn record(&mut self, name: &'static str, value: Tensor) {
        self.0.retain(|(n, _)| *n != name);
        self.0.push((name, value));
    }

    pub fn get(&self, name: &str) -> Option<&Tensor> {
        self.0.iter().find(|(n, _)| *n == name).map(|(_, t)| t)
    }

    /// The host values of every step's metrics, in one device-to-host copy; with `group`, the mean over
    /// its ranks (OLMo-core's reduction of collected metrics). `step` names the step in an error.
    pub fn to_host(
        steps: &[&DeviceMetrics],
        group: Option<&ProcessGroup>,
        step: u64,
    ) -> Result<Vec<StepMetrics>> {
        let scalars: Vec<Tensor> = steps
            .iter()
            .flat_map(|m| m.0.iter().map(|(_, t)| t.to_kind(Kind::Float).view([1])))
            .collect();
        if scalars.is_empty() {
            return Ok(steps.iter().map(|_| StepMetrics::new()).collect());
        }
        let mut all = host_copy(&Tensor::cat(&scalars, 0).to_kind(Kind::Double));
        if let Some(pg) = group {
            pg.all_reduce_sum(&[all.shallow_clone()])?;
            all /= pg.world_size as f64;
        }
        let values = Vec::<f64>::try_from(all).map_err(|e| Error::Training {
            step,
            reason: format!("reading the step metrics back: {e}"),
        })?;
        let mut values = values.into_iter();
        Ok(steps
            .iter()
            .map(|m| {
                m.0.iter()
                    .map(|(name, _)| (name.to_string(), values.next().unwrap_or(f64::NAN)))
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
        let host = DeviceMetrics::to_host(&[&a, &b], None, 1).unwrap();
        assert_eq!(host[0]["x"], 1.5);
        assert_eq!(host[0]["y"], 2.0);
        assert_eq!(host[1].len(), 1);
        assert_eq!(host[1]["y"], 8.0);
    }
}

//! Metric collection: the pending steps' device metrics come to the host in one transfer (reduced over
//! the ranks in one collective), get their host-side companions (PPL, LRs, throughput, evaluations) and
//! go to every sink, step by step. A non-finite loss stops the run, naming the step.
use super::Trainer;
use crate::error::{Error, Result};
use crate::train::device_metrics::DeviceMetrics;
use crate::train::metric_names as names;

/// OLMo-core logs the perplexity only while it is a readable number.
const PPL_MAX_LOSS: f64 = 10.0;

impl Trainer {
    pub(super) fn collect(&mut self) -> Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let pending = std::mem::take(&mut self.pending);
        let device: Vec<&DeviceMetrics> = pending.iter().map(|p| &p.out.metrics).collect();
        let values = DeviceMetrics::to_host(&device, self.dp.as_deref(), self.progress.step)?;
        for (p, device_values) in pending.iter().zip(values) {
            let mut m = p.host.clone();
            m.extend(device_values);
            let ce = m.get(names::CE_LOSS).copied().unwrap_or(f64::NAN);
            if ce < PPL_MAX_LOSS {
                m.insert(names::PPL.into(), ce.exp());
            }
            for (i, lr) in p.out.lrs.iter().enumerate() {
                m.insert(names::lr(i), *lr);
            }
            if self.is_main {
                for s in &mut self.sinks {
                    s.log(p.step, p.epoch, &m)?;
                }
            }
            self.losses.push(ce);
            if !ce.is_finite() {
                return Err(Error::Training {
                    step: p.step,
                    reason: format!("{ce} loss encountered"),
                });
            }
        }
        Ok(())
    }
}

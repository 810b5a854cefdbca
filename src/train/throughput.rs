//! OLMo-core's speed monitor: per-step throughput on the host clock, with averages that leave out the
//! first step (start-up and warm-up), as OLMo-core's do.
use std::time::Instant;

use super::metric_names as names;
use super::metrics::StepMetrics;

#[derive(Default)]
pub struct SpeedMonitor {
    /// When the first step ended.
    first_step_end: Option<Instant>,
    tokens_after_first: u64,
    steps_after_first: u64,
}

impl SpeedMonitor {
    /// The throughput metrics of a step that processed `rank_tokens` in `step_seconds`, of which
    /// `data_seconds` waiting for data; `total_tokens` is the run's global count so far.
    pub fn step(
        &mut self,
        rank_tokens: u64,
        total_tokens: u64,
        step_seconds: f64,
        data_seconds: f64,
    ) -> StepMetrics {
        let step_seconds = step_seconds.max(1e-9);
        let mut m = StepMetrics::new();
        m.insert(names::TOTAL_TOKENS.into(), total_tokens as f64);
        m.insert(names::DATA_LOADING_SECONDS.into(), data_seconds);
        m.insert(
            names::DATA_LOADING_PERCENT.into(),
            100.0 * data_seconds / step_seconds,
        );
        let Some(t0) = self.first_step_end else {
            self.first_step_end = Some(Instant::now());
            return m;
        };
        self.tokens_after_first += rank_tokens;
        self.steps_after_first += 1;
        let avg_time = t0.elapsed().as_secs_f64().max(1e-9);
        m.insert(names::TPS.into(), rank_tokens as f64 / step_seconds);
        m.insert(names::BPS.into(), 1.0 / step_seconds);
        m.insert(
            names::TPS_AVG.into(),
            self.tokens_after_first as f64 / avg_time,
        );
        m.insert(
            names::BPS_AVG.into(),
            self.steps_after_first as f64 / avg_time,
        );
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_step_has_no_rates_and_later_ones_average_after_it() {
        let mut s = SpeedMonitor::default();
        let first = s.step(100, 200, 0.5, 0.1);
        assert!(!first.contains_key(names::TPS));
        assert!((first[names::DATA_LOADING_PERCENT] - 20.0).abs() < 1e-9);
        std::thread::sleep(std::time::Duration::from_millis(20));
        let second = s.step(100, 400, 0.25, 0.0);
        assert_eq!(second[names::TPS], 400.0);
        assert!(second[names::TPS_AVG] > 0.0 && second[names::TPS_AVG] < 100.0 / 0.02);
    }
}

//! Where metrics go: the trainer hands every logged step to each sink (the console and `metrics.jsonl`,
//! in `train::sinks`; W&B's offline run format and TensorBoard event files, here) and closes them with the
//! run's exit code.
pub mod proto;
pub mod tensorboard;
pub mod wandb;

use std::collections::BTreeMap;

use crate::error::Result;

pub trait MetricSink: Send {
    /// Training is about to start (clocks that time the run start here).
    fn on_fit_start(&mut self) {}
    /// The metrics of `step`, reached in `epoch`.
    fn log(&mut self, step: u64, epoch: u64, metrics: &BTreeMap<String, f64>) -> Result<()>;
    /// 0 when training finished, 1 on failure or interruption.
    fn finish(&mut self, exit_code: i32) -> Result<()>;
    /// A line telling the user where the output is and what to do with it.
    fn describe(&self) -> String;
}

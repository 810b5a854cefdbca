//! Where metrics go besides the console and `metrics.jsonl`: W&B's offline run format and TensorBoard
//! event files. Each sink gets every logged step and a final exit code.
pub mod proto;
pub mod tensorboard;
pub mod wandb;

use std::collections::BTreeMap;

use crate::error::Result;

pub trait MetricSink: Send {
    fn log(&mut self, step: u64, metrics: &BTreeMap<String, f64>) -> Result<()>;
    /// 0 when training finished, 1 on failure or interruption.
    fn finish(&mut self, exit_code: i32) -> Result<()>;
    /// A line telling the user where the output is and what to do with it.
    fn describe(&self) -> String;
}

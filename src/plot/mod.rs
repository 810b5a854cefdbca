//! `olmo-train plot`: loss, learning rate, throughput and eval metrics of one or more runs against step
//! (or tokens), from their `metrics.jsonl`, as an SVG or PNG picture (no Python, no server).
mod draw;
mod series;

use std::path::{Path, PathBuf};

pub use draw::{series_in_svg, to_svg, write_picture};
pub use series::{distinct, metrics_file, read_series, Series, XAxis};

use crate::error::Result;

/// The metrics drawn when none are named.
pub const DEFAULT_METRICS: &[&str] = &[
    "train/CE loss",
    "optim/LR (group 0)",
    "throughput/device/TPS",
    "eval/*",
];

/// Draws `patterns` of the runs at `paths` into `output`; returns the series drawn.
pub fn plot(
    paths: &[PathBuf],
    patterns: &[String],
    x: XAxis,
    output: &Path,
) -> Result<Vec<Series>> {
    let series = read_series(paths, patterns, x)?;
    write_picture(output, &to_svg(&series, x)?)?;
    Ok(series)
}

//! `olmo-train plot RUN_DIR|metrics.jsonl... [--metrics PATTERN]... [--output FILE.svg|.png]`.
use std::path::PathBuf;

use crate::error::Result;
use crate::plot::{distinct, metrics_file, plot, XAxis, DEFAULT_METRICS};

#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "olmo-train plot",
    about = "Draw metrics of one or more runs (loss, learning rate, throughput, evaluations) against step or tokens"
)]
pub struct PlotArgs {
    /// Run folders (their metrics.jsonl) or metrics.jsonl files; several runs are overlaid.
    #[arg(required = true)]
    pub runs: Vec<PathBuf>,
    /// Metrics to draw, one panel each: a name or a pattern with * (repeatable;
    /// default: train/CE loss, optim/LR (group 0), throughput/device/TPS, eval/*).
    #[arg(long = "metrics")]
    pub metrics: Vec<String>,
    /// The picture: .svg or .png (default: plot.svg beside the first run's metrics.jsonl).
    #[arg(long)]
    pub output: Option<PathBuf>,
    /// What the x axis counts.
    #[arg(long, value_parser = ["step", "tokens"], default_value = "step")]
    pub x: String,
}

/// Draws the picture and says where it is and what it shows.
pub fn run(args: &PlotArgs) -> Result<String> {
    let patterns: Vec<String> = if args.metrics.is_empty() {
        DEFAULT_METRICS.iter().map(|s| s.to_string()).collect()
    } else {
        args.metrics.clone()
    };
    let output = args.output.clone().unwrap_or_else(|| {
        metrics_file(&args.runs[0])
            .parent()
            .map(|p| p.join("plot.svg"))
            .unwrap_or_else(|| PathBuf::from("plot.svg"))
    });
    let x = if args.x == "tokens" {
        XAxis::Tokens
    } else {
        XAxis::Step
    };
    let series = plot(&args.runs, &patterns, x, &output)?;
    let metrics = distinct(series.iter().map(|s| s.metric.as_str()));
    Ok(format!(
        "wrote {} ({})\n",
        output.display(),
        metrics.join(", ")
    ))
}

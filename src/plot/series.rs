//! The series a plot draws: from each run's `metrics.jsonl` (a run folder or the file itself), every
//! metric whose name matches a pattern, as (step or tokens, value) points in file order.
use std::path::{Path, PathBuf};

use regex::Regex;

use crate::error::{Error, Result};

/// What the x axis counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum XAxis {
    Step,
    /// `throughput/total tokens` of the row (rows without it are skipped).
    Tokens,
}

impl XAxis {
    pub fn label(self) -> &'static str {
        match self {
            Self::Step => "step",
            Self::Tokens => "tokens",
        }
    }
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Series {
    /// The run's name (its folder's).
    pub run: String,
    pub metric: String,
    pub x: Vec<f64>,
    pub y: Vec<f64>,
}

/// The distinct names of `names`, in first-seen order (metrics of panels, runs of a legend).
pub fn distinct<'a>(names: impl Iterator<Item = &'a str>) -> Vec<&'a str> {
    let mut out: Vec<&str> = Vec::new();
    for n in names {
        if !out.contains(&n) {
            out.push(n);
        }
    }
    out
}

/// `metrics.jsonl` of a run folder, or the file itself.
pub fn metrics_file(path: &Path) -> PathBuf {
    if path.is_dir() {
        path.join("metrics.jsonl")
    } else {
        path.to_path_buf()
    }
}

/// A run's name: its folder's.
fn run_name(file: &Path) -> String {
    file.parent()
        .and_then(|p| p.file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| file.display().to_string())
}

/// A metric name, or a pattern where `*` matches anything.
fn matcher(pattern: &str) -> Result<Regex> {
    let re = format!("^{}$", regex::escape(pattern).replace(r"\*", ".*"));
    Regex::new(&re).map_err(|e| Error::Usage(format!("--metrics '{pattern}': {e}")))
}

/// Every matching metric of every run, runs in the order given, metrics in pattern order then name.
pub fn read_series(paths: &[PathBuf], patterns: &[String], x: XAxis) -> Result<Vec<Series>> {
    let matchers = patterns
        .iter()
        .map(|p| matcher(p))
        .collect::<Result<Vec<_>>>()?;
    let mut out = Vec::new();
    let mut seen_names = std::collections::BTreeSet::new();
    for path in paths {
        let file = metrics_file(path);
        if !file.is_file() {
            return Err(Error::Input {
                path: file,
                reason: "no such file: pass a run's save folder or its metrics.jsonl".into(),
            });
        }
        let text = std::fs::read_to_string(&file).map_err(|e| Error::io(&file, e))?;
        let mut run: Vec<Series> = Vec::new();
        for (i, line) in text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
        {
            let row: serde_json::Map<String, serde_json::Value> = serde_json::from_str(line)
                .map_err(|e| Error::Input {
                    path: file.clone(),
                    reason: format!("line {}: not a JSON object: {e}", i + 1),
                })?;
            let xv = match x {
                XAxis::Step => row.get("step").and_then(|v| v.as_f64()),
                XAxis::Tokens => row.get("throughput/total tokens").and_then(|v| v.as_f64()),
            };
            let Some(xv) = xv else { continue };
            for (name, value) in &row {
                seen_names.insert(name.clone());
                let Some(v) = value.as_f64() else { continue };
                if name == "step" || !matchers.iter().any(|m| m.is_match(name)) {
                    continue;
                }
                match run.iter_mut().find(|s| &s.metric == name) {
                    Some(s) => {
                        s.x.push(xv);
                        s.y.push(v);
                    }
                    None => run.push(Series {
                        run: run_name(&file),
                        metric: name.clone(),
                        x: vec![xv],
                        y: vec![v],
                    }),
                }
            }
        }
        run.sort_by_key(|s| {
            (
                matchers.iter().position(|m| m.is_match(&s.metric)),
                s.metric.clone(),
            )
        });
        out.extend(run);
    }
    if out.is_empty() {
        let files: Vec<String> = paths
            .iter()
            .map(|p| metrics_file(p).display().to_string())
            .collect();
        return Err(Error::Usage(format!(
            "no metric in {} matches {} (its metrics: {})",
            files.join(", "),
            patterns.join(", "),
            seen_names.into_iter().collect::<Vec<_>>().join(", ")
        )));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_select_metrics_and_rows_give_points() {
        let dir = tempfile::tempdir().unwrap();
        let run = dir.path().join("run-a");
        std::fs::create_dir_all(&run).unwrap();
        std::fs::write(
            run.join("metrics.jsonl"),
            "{\"step\":1,\"train/CE loss\":5.0,\"optim/LR (group 0)\":0.1}\n{\"step\":2,\"train/CE loss\":4.0}\n{\"step\":2,\"eval/lm/x/CE loss\":4.5}\n",
        )
        .unwrap();
        let s = read_series(
            std::slice::from_ref(&run),
            &["train/CE loss".into(), "eval/*".into()],
            XAxis::Step,
        )
        .unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(
            (s[0].metric.as_str(), s[0].run.as_str()),
            ("train/CE loss", "run-a")
        );
        assert_eq!(
            (s[0].x.clone(), s[0].y.clone()),
            (vec![1.0, 2.0], vec![5.0, 4.0])
        );
        assert_eq!(s[1].metric, "eval/lm/x/CE loss");
        let err = read_series(&[run], &["nothing".into()], XAxis::Step)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("nothing") && err.contains("train/CE loss"),
            "{err}"
        );
    }
}

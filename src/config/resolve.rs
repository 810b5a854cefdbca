//! From defaults, a `--config` file and dotted overrides to one typed `ExperimentConfig`, with one-line
//! errors that name the dotted key at fault and, for a misspelt key, the closest valid one.
use std::path::Path;

use serde_yaml::Value;

use super::example::{build_example_config, ExampleOptions};
use super::overrides::{merge_tree, set_nested, Override};
use super::train_module::{UNSUPPORTED_OPTIMIZERS, UNSUPPORTED_SCHEDULERS};
use super::ExperimentConfig;
use crate::error::{Error, Result};

/// Paths of polymorphic sub-configs, tagged by OLMo-core's registered name in a `type` key.
const TAGGED_PATHS: &[&str] = &["train_module.optim", "train_module.scheduler"];

/// OLMo-core class names (`_CLASS_`) of the tagged sub-configs, with their registered names.
const CLASS_TYPES: &[(&str, &str)] = &[
    ("AdamWConfig", "adamw"),
    ("AdamConfig", "adam"),
    ("SkipStepAdamWConfig", "skip_step_adamw"),
    ("LionConfig", "lion"),
    ("SkipStepLionConfig", "skip_step_lion"),
    ("ConstantScheduler", "constant"),
    ("ConstantWithWarmup", "constant_with_warmup"),
    ("WSD", "wsd"),
    ("LinearWithWarmup", "linear_with_warmup"),
    ("CosWithWarmup", "cos_with_warmup"),
    ("HalfCosWithWarmup", "half_cos_with_warmup"),
    ("InvSqrtWithWarmup", "inv_sqrt_with_warmup"),
];

/// Builds the run's config: the example's defaults, then `config_file` merged in, then `overrides`.
pub fn resolve_config(
    opts: &ExampleOptions,
    config_file: Option<&Path>,
    overrides: &[Override],
) -> Result<ExperimentConfig> {
    let defaults = build_example_config(opts)?;
    let mut tree = serde_yaml::to_value(&defaults).map_err(|e| Error::InvalidValue {
        path: String::new(),
        reason: format!("cannot represent the default config: {e}"),
    })?;
    if let Some(path) = config_file {
        merge_tree(&mut tree, read_config_file(path)?);
        // Flags given on the command line win over the file (the file only replaces defaults).
        for (path, value) in explicit_flag_values(opts) {
            set_nested(&mut tree, &path, value)?;
        }
    }
    for o in overrides {
        set_nested(&mut tree, &o.path, o.value.clone())?;
    }
    normalize_class_keys(&mut tree, "");
    let mut config = deserialize_tree(tree)?;
    if let Some(s) = config.train_module.scheduler.as_mut() {
        s.normalize_deprecated();
    }
    Ok(config)
}

/// The config keys that `--save-folder` and `--work-dir` set, when given.
fn explicit_flag_values(opts: &ExampleOptions) -> Vec<(Vec<String>, Value)> {
    let key = |s: &str| s.split('.').map(String::from).collect::<Vec<_>>();
    let mut out = Vec::new();
    if let Some(f) = &opts.save_folder {
        out.push((key("trainer.save_folder"), Value::from(f.as_str())));
    }
    if let Some(w) = &opts.work_dir {
        out.push((key("dataset.work_dir"), Value::from(w.as_str())));
    }
    out
}

/// A whole or partial config tree in YAML or JSON (a checkpoint's `config.json` works too).
fn read_config_file(path: &Path) -> Result<Value> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::ConfigFile {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    let value: Value = serde_yaml::from_str(&text).map_err(|e| Error::ConfigFile {
        path: path.to_path_buf(),
        reason: format!(
            "not valid YAML/JSON: {}",
            e.to_string().lines().next().unwrap_or_default()
        ),
    })?;
    match value {
        Value::Mapping(_) => Ok(value),
        Value::Null => Ok(Value::Mapping(Default::default())),
        _ => Err(Error::ConfigFile {
            path: path.to_path_buf(),
            reason: "expected a mapping of config keys at the top level".into(),
        }),
    }
}

/// OLMo-core's serialized configs carry `_CLASS_` on every node and `type` on registrables. Keep
/// `type` only where it selects a variant (deriving it from `_CLASS_` when missing); drop the rest.
fn normalize_class_keys(node: &mut Value, path: &str) {
    match node {
        Value::Mapping(map) => {
            let class = map.remove("_CLASS_");
            if TAGGED_PATHS.contains(&path) {
                // `{name: skip_step_adamw}` reads as the registered name too (no optimizer or
                // scheduler config has a field of that name).
                if !map.contains_key("type") && map.get("name").is_some_and(Value::is_string) {
                    if let Some(name) = map.remove("name") {
                        map.insert("type".into(), name);
                    }
                }
                if !map.contains_key("type") {
                    if let Some(ty) = class
                        .as_ref()
                        .and_then(Value::as_str)
                        .and_then(registered_name)
                    {
                        map.insert("type".into(), ty.into());
                    }
                }
            } else if map.get("type").is_some_and(Value::is_string) {
                map.remove("type");
            }
            for (k, v) in map.iter_mut() {
                let key = k.as_str().unwrap_or_default();
                let child = if path.is_empty() {
                    key.to_string()
                } else {
                    format!("{path}.{key}")
                };
                normalize_class_keys(v, &child);
            }
        }
        Value::Sequence(items) => items.iter_mut().for_each(|v| normalize_class_keys(v, path)),
        _ => {}
    }
}

fn registered_name(class: &str) -> Option<&'static str> {
    let short = class.rsplit('.').next().unwrap_or(class);
    CLASS_TYPES
        .iter()
        .find(|(c, _)| *c == short)
        .map(|(_, t)| *t)
}

fn deserialize_tree(tree: Value) -> Result<ExperimentConfig> {
    serde_path_to_error::deserialize(tree).map_err(|e| {
        let path = e.path().to_string();
        let message = e.inner().to_string();
        classify_error(&path, &message)
    })
}

/// Turns serde's message into our error kinds, adding the closest valid key for a misspelling.
fn classify_error(path: &str, message: &str) -> Error {
    let message = message.lines().next().unwrap_or_default();
    let path = if path == "." {
        String::new()
    } else {
        path.to_string()
    };
    if let Some(rest) = message.strip_prefix("unknown field `") {
        let field = rest.split('`').next().unwrap_or_default();
        let full = join(&parent_of(&path, field), field);
        let suggestion =
            closest(field, &expected_names(message)).map(|s| join(&parent_of(&path, field), &s));
        return Error::UnknownKey {
            path: full,
            suggestion,
        };
    }
    if let Some(rest) = message.strip_prefix("unknown variant `") {
        let variant = rest.split('`').next().unwrap_or_default();
        if UNSUPPORTED_SCHEDULERS.contains(&variant) || UNSUPPORTED_OPTIMIZERS.contains(&variant) {
            return Error::NotSupported {
                path: join(&path, "type"),
                value: variant.to_string(),
                hint: format!("available: {}", expected_names(message).join(", ")),
            };
        }
        let hint = closest(variant, &expected_names(message))
            .map(|s| format!("; did you mean '{s}'?"))
            .unwrap_or_default();
        return Error::InvalidValue {
            path,
            reason: format!(
                "unknown value '{variant}', expected one of {}{hint}",
                expected_names(message).join(", ")
            ),
        };
    }
    if message == "missing field `type`" {
        return Error::InvalidValue {
            path,
            reason:
                "a replacement needs its registered name, e.g. {type: cos_with_warmup, warmup: 100}"
                    .into(),
        };
    }
    Error::InvalidValue {
        path,
        reason: plain_type_names(message),
    }
}

/// serde names Rust types ("expected u64"); users think in YAML kinds.
fn plain_type_names(message: &str) -> String {
    let mut m = message.to_string();
    for (rust, plain) in [
        ("expected u64", "expected a non-negative integer"),
        ("expected i64", "expected an integer"),
        ("expected f64", "expected a number"),
        ("expected a boolean", "expected true or false"),
    ] {
        m = m.replace(rust, plain);
    }
    m
}

/// serde_path_to_error puts the unknown key itself at the end of the path; strip it to get the parent.
fn parent_of(path: &str, field: &str) -> String {
    path.strip_suffix(field)
        .map(|p| p.trim_end_matches('.').to_string())
        .unwrap_or_else(|| path.to_string())
}

fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_string()
    } else {
        format!("{parent}.{key}")
    }
}

/// The names serde lists after "expected" (`expected one of `a`, `b``, or `expected `a` or `b``).
fn expected_names(message: &str) -> Vec<String> {
    let Some((_, tail)) = message.split_once("expected") else {
        return Vec::new();
    };
    tail.split('`')
        .skip(1)
        .step_by(2)
        .map(String::from)
        .collect()
}

/// The candidate closest to `word` by edit distance, if it is plausibly a misspelling of it.
fn closest(word: &str, candidates: &[String]) -> Option<String> {
    candidates
        .iter()
        .map(|c| (strsim::damerau_levenshtein(word, c), c))
        .filter(|(d, c)| *d <= (c.len().max(word.len()) / 2).max(2))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expected_names_parses_both_serde_forms() {
        assert_eq!(
            expected_names("unknown field `x`, expected one of `a`, `bc`"),
            vec!["a", "bc"]
        );
        assert_eq!(
            expected_names("unknown field `x`, expected `a` or `b`"),
            vec!["a", "b"]
        );
    }

    #[test]
    fn closest_picks_the_nearest_plausible_name() {
        let c = vec![
            "no_checkpoints".to_string(),
            "no_evals".to_string(),
            "device".to_string(),
        ];
        assert_eq!(
            closest("no_checkpoint", &c).as_deref(),
            Some("no_checkpoints")
        );
        assert_eq!(closest("zzzzzzzzzzzzzzzzzz", &c), None);
    }
}

//! Dotted overrides exactly as OLMo-core's `Config.merge` reads them (`src/olmo_core/config.py`):
//! `--a.b.c=<yaml>`; a bare `--flag` means `true`; every dash in the key becomes an underscore; an
//! empty value is the empty string; integer components index lists; `null` clears a field.
use serde_yaml::{Mapping, Value};

use crate::error::{Error, Result};

/// One parsed `--a.b.c=<yaml>` argument.
#[derive(Debug, Clone, PartialEq)]
pub struct Override {
    /// The argument as the user typed it, for error messages.
    pub arg: String,
    pub path: Vec<String>,
    pub value: Value,
}

impl Override {
    /// OLMo-core's `_clean_opt`: strip leading dashes and spaces, dashes to underscores, YAML value.
    pub fn parse(arg: &str) -> Result<Self> {
        let (name, raw) = match arg.split_once('=') {
            Some((name, raw)) => (name, Some(raw)),
            None => (arg, None),
        };
        let key = name
            .trim_matches(|c| c == ' ' || c == '-')
            .replace('-', "_");
        if key.is_empty() || key.split('.').any(str::is_empty) {
            return Err(Error::Usage(format!(
                "override '{arg}': expected --a.b.c=<value> with a non-empty dotted key"
            )));
        }
        let value = match raw {
            None => Value::Bool(true),
            Some(raw) if raw.trim().is_empty() => Value::String(String::new()),
            Some(raw) => parse_yaml_value(raw).map_err(|reason| Error::OverrideYaml {
                arg: arg.to_string(),
                reason,
            })?,
        };
        Ok(Self {
            arg: arg.to_string(),
            path: key.split('.').map(String::from).collect(),
            value,
        })
    }

    pub fn dotted(&self) -> String {
        self.path.join(".")
    }
}

/// Parses a scalar or flow value the way PyYAML's `safe_load` would for the inputs people type.
fn parse_yaml_value(raw: &str) -> std::result::Result<Value, String> {
    let value: Value = serde_yaml::from_str(raw).map_err(|e| first_line(&e.to_string()))?;
    // PyYAML follows YAML 1.1, where these words are booleans; serde_yaml (YAML 1.2) keeps them as text.
    Ok(match raw.trim() {
        "yes" | "Yes" | "YES" | "on" | "On" | "ON" => Value::Bool(true),
        "no" | "No" | "NO" | "off" | "Off" | "OFF" => Value::Bool(false),
        _ => value,
    })
}

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or_default().to_string()
}

/// Sets `value` at `path` inside `root`, creating mappings for missing or null intermediate keys.
/// List components must index an existing element, as in OLMo-core.
pub fn set_nested(root: &mut Value, path: &[String], value: Value) -> Result<()> {
    let Some((last, parents)) = path.split_last() else {
        return Ok(());
    };
    let mut node = root;
    for (depth, key) in parents.iter().enumerate() {
        node = child_mut(node, key, &path[..=depth])?;
    }
    match node {
        Value::Sequence(items) => {
            let slot = index_mut(items, last, path)?;
            *slot = value;
        }
        Value::Mapping(map) => {
            map.insert(Value::String(last.clone()), value);
        }
        Value::Null => {
            let mut map = Mapping::new();
            map.insert(Value::String(last.clone()), value);
            *node = Value::Mapping(map);
        }
        other => return Err(not_a_container(path, other)),
    }
    Ok(())
}

fn child_mut<'a>(node: &'a mut Value, key: &str, at: &[String]) -> Result<&'a mut Value> {
    if node.is_null() {
        *node = Value::Mapping(Mapping::new());
    }
    match node {
        Value::Mapping(map) => {
            let k = Value::String(key.to_string());
            if !map.contains_key(&k) {
                map.insert(k.clone(), Value::Mapping(Mapping::new()));
            }
            map.get_mut(&k)
                .ok_or_else(|| not_a_container(at, &Value::Null))
        }
        Value::Sequence(items) => index_mut(items, key, at),
        other => Err(not_a_container(at, other)),
    }
}

fn index_mut<'a>(items: &'a mut [Value], key: &str, at: &[String]) -> Result<&'a mut Value> {
    let len = items.len();
    let index: usize = key.parse().map_err(|_| Error::InvalidValue {
        path: at.join("."),
        reason: format!("'{key}' is not a list index (the value there is a list of {len})"),
    })?;
    items.get_mut(index).ok_or_else(|| Error::InvalidValue {
        path: at.join("."),
        reason: format!("list index {index} is out of range (the list has {len} elements)"),
    })
}

fn not_a_container(at: &[String], found: &Value) -> Error {
    let parent = at[..at.len().saturating_sub(1)].join(".");
    Error::InvalidValue {
        path: at.join("."),
        reason: format!(
            "cannot set a key inside '{parent}', which holds {}",
            describe(found)
        ),
    }
}

/// A short description of a YAML value's kind, for error messages.
pub fn describe(value: &Value) -> String {
    match value {
        Value::Null => "null".into(),
        Value::Bool(b) => format!("the boolean {b}"),
        Value::Number(n) => format!("the number {n}"),
        Value::String(s) => format!("the string '{s}'"),
        Value::Sequence(_) => "a list".into(),
        Value::Mapping(_) => "a mapping".into(),
        Value::Tagged(_) => "a tagged value".into(),
    }
}

/// Deep-merges `overlay` into `base`: mappings merge key by key, anything else replaces.
pub fn merge_tree(base: &mut Value, overlay: Value) {
    match (base, overlay) {
        (Value::Mapping(base_map), Value::Mapping(over_map)) => {
            for (k, v) in over_map {
                match base_map.get_mut(&k) {
                    Some(existing) => merge_tree(existing, v),
                    None => {
                        base_map.insert(k, v);
                    }
                }
            }
        }
        (slot, other) => *slot = other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn yaml(s: &str) -> Value {
        serde_yaml::from_str(s).unwrap()
    }

    #[test]
    fn bare_flag_means_true_and_dashes_become_underscores() {
        let o = Override::parse("--trainer.no-checkpoints").unwrap();
        assert_eq!(o.path, vec!["trainer", "no_checkpoints"]);
        assert_eq!(o.value, Value::Bool(true));
        let o = Override::parse("--data_loader.global-batch-size=131072").unwrap();
        assert_eq!(o.dotted(), "data_loader.global_batch_size");
        assert_eq!(o.value, yaml("131072"));
    }

    #[test]
    fn values_are_yaml() {
        assert_eq!(Override::parse("--a=null").unwrap().value, Value::Null);
        assert_eq!(
            Override::parse("--a=").unwrap().value,
            Value::String(String::new())
        );
        assert_eq!(
            Override::parse("--a=3e-4").unwrap().value.as_f64(),
            Some(3e-4)
        );
        assert_eq!(Override::parse("--a=on").unwrap().value, Value::Bool(true));
        assert_eq!(
            Override::parse("--a='on'").unwrap().value,
            Value::String("on".into())
        );
        let m = Override::parse("--trainer.hard_stop={value: 100, unit: steps}")
            .unwrap()
            .value;
        assert_eq!(m, yaml("{value: 100, unit: steps}"));
        let l = Override::parse(r#"--dataset.paths=["/data/*.npy"]"#)
            .unwrap()
            .value;
        assert_eq!(l, yaml("['/data/*.npy']"));
    }

    #[test]
    fn malformed_yaml_is_an_error_naming_the_argument() {
        let err = Override::parse("--dataset.paths=[a, b")
            .unwrap_err()
            .to_string();
        assert!(err.contains("--dataset.paths=[a, b"), "{err}");
        assert!(!err.contains('\n'));
    }

    #[test]
    fn set_nested_creates_maps_and_indexes_lists() {
        let mut root = yaml("{a: {b: null, l: [1, 2]}}");
        set_nested(&mut root, &["a".into(), "b".into(), "c".into()], yaml("5")).unwrap();
        set_nested(&mut root, &["a".into(), "l".into(), "1".into()], yaml("9")).unwrap();
        assert_eq!(root, yaml("{a: {b: {c: 5}, l: [1, 9]}}"));
        let err =
            set_nested(&mut root, &["a".into(), "l".into(), "5".into()], yaml("0")).unwrap_err();
        assert!(err.to_string().contains("out of range"), "{err}");
        let err =
            set_nested(&mut root, &["a".into(), "l".into(), "x".into()], yaml("0")).unwrap_err();
        assert!(err.to_string().contains("not a list index"), "{err}");
    }

    #[test]
    fn merge_tree_merges_mappings_and_replaces_the_rest() {
        let mut base = yaml("{a: {x: 1, y: 2}, l: [1, 2]}");
        merge_tree(&mut base, yaml("{a: {y: 3}, l: [7]}"));
        assert_eq!(base, yaml("{a: {x: 1, y: 3}, l: [7]}"));
    }
}

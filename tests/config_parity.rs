//! The resolved config equals OLMo-core's own for the same command line. Fixture:
//! `tests/fixtures/olmo_core_configs.json`, made by `scripts/reference/olmo_core_config.py cases` with
//! ai2-olmo-core 3.0.0 (its `Config.merge` applied the overrides).
use olmo_train::cli::{parse_args, Command};
use olmo_train::config::resolve::resolve_config;
use serde_json::Value;

/// Defaults olmo-train changes on purpose (README, "Differences from OLMo-core"), with our value: none
/// today (the example's tokenizer, `compile_model` and `dp_config` are OLMo-core's).
const DIFFERENCES: &[(&str, &str)] = &[];

fn ours(args: &[String]) -> Value {
    let Command::Train(train) = parse_args(args, None).unwrap() else {
        panic!("not a train command")
    };
    let config = resolve_config(&train.opts, None, &train.overrides).unwrap();
    let mut v = serde_json::to_value(&config).unwrap();
    // olmo-train's one key outside OLMo-core's tree (OLMo-core's prepare_training_environment argument).
    if let Value::Object(m) = &mut v {
        m.remove("dist_timeout");
    }
    // OLMo-core's dump omits the registered-name tag that selects the optimizer/scheduler class.
    for path in ["train_module.optim", "train_module.scheduler"] {
        if let Some(Value::Object(m)) = pointer_mut(&mut v, path) {
            m.remove("type");
        }
    }
    v
}

fn pointer_mut<'a>(v: &'a mut Value, dotted: &str) -> Option<&'a mut Value> {
    v.pointer_mut(&format!("/{}", dotted.replace('.', "/")))
}

/// Every leaf path where `a` and `b` differ.
fn diff(a: &Value, b: &Value, path: &str, out: &mut Vec<String>) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            for k in x.keys().chain(y.keys().filter(|k| !x.contains_key(*k))) {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                diff(
                    x.get(k).unwrap_or(&Value::Null),
                    y.get(k).unwrap_or(&Value::Null),
                    &p,
                    out,
                );
                if x.contains_key(k) != y.contains_key(k) {
                    out.push(format!("{p} (present on one side only)"));
                }
            }
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            for (i, (p, q)) in x.iter().zip(y).enumerate() {
                diff(p, q, &format!("{path}.{i}"), out);
            }
        }
        (Value::Number(x), Value::Number(y)) if x.as_f64() == y.as_f64() => {}
        _ if a == b => {}
        _ => out.push(format!("{path}: ours {a} vs OLMo-core {b}")),
    }
}

#[test]
fn every_case_resolves_like_olmo_core() {
    let cases: Vec<Value> =
        serde_json::from_str(include_str!("fixtures/olmo_core_configs.json")).unwrap();
    assert!(cases.len() >= 7);
    for case in cases {
        let args: Vec<String> = serde_json::from_value(case["args"].clone()).unwrap();
        let mut expected = case["config"].clone();
        let mut got = ours(&args);
        for (path, our_value) in DIFFERENCES {
            let ours_at = pointer_mut(&mut got, path).unwrap();
            assert_eq!(
                *ours_at,
                serde_json::from_str::<Value>(our_value).unwrap(),
                "{path} for {args:?}"
            );
            *pointer_mut(&mut expected, path).unwrap() = ours_at.clone();
        }
        let mut diffs = Vec::new();
        diff(&got, &expected, "", &mut diffs);
        assert!(diffs.is_empty(), "{args:?}:\n{}", diffs.join("\n"));
    }
}

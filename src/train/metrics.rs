//! Metric values as OLMo-core names and prints them (`train/CE loss`, `optim/LR (group 0)`, ...):
//! the console's number format, the console block of a step, and `metrics.jsonl` lines.
use std::collections::BTreeMap;

/// One step's metrics, in a stable order.
pub type StepMetrics = BTreeMap<String, f64>;

/// OLMo-core's `format_float`.
pub fn format_float(value: f64) -> String {
    if value.is_nan() {
        return "nan".into();
    }
    if value.is_infinite() {
        return if value > 0.0 {
            "inf".into()
        } else {
            "-inf".into()
        };
    }
    let abs = value.abs();
    if abs == 0.0 {
        return "0.0".into();
    }
    if abs >= 1e9 {
        for (suffix, factor) in [("E", 1e18), ("P", 1e15), ("T", 1e12), ("B", 1e9)] {
            if abs >= factor {
                let scaled = value / factor;
                let a = scaled.abs();
                let decimals = if a > 100.0 {
                    1
                } else if a > 10.0 {
                    2
                } else if a > 1.0 {
                    3
                } else {
                    4
                };
                return format!("{}{suffix}", with_commas(&format!("{scaled:.decimals$}")));
            }
        }
    }
    if abs < 1e-4 {
        python_e(value)
    } else if abs >= 1000.0 {
        with_commas(&format!("{}", value.trunc() as i64))
    } else if abs > 100.0 {
        format!("{value:.1}")
    } else if abs > 10.0 {
        format!("{value:.2}")
    } else if abs > 1.0 {
        format!("{value:.3}")
    } else {
        format!("{value:.4}")
    }
}

/// Python's `f"{v:.2E}"`: two decimals and a signed, at-least-two-digit exponent.
fn python_e(v: f64) -> String {
    let s = format!("{v:.2E}");
    let (mantissa, exp) = s.split_once('E').unwrap_or((&s, "0"));
    let e: i32 = exp.parse().unwrap_or(0);
    format!("{mantissa}E{}{:02}", if e < 0 { '-' } else { '+' }, e.abs())
}

/// Thousands separators on the integer part, as Python's `,` format.
fn with_commas(s: &str) -> String {
    let (sign, rest) = s.strip_prefix('-').map_or(("", s), |r| ("-", r));
    let (int, frac) = rest
        .split_once('.')
        .map_or((rest, None), |(i, f)| (i, Some(f)));
    let mut out = String::new();
    for (i, c) in int.chars().enumerate() {
        if i > 0 && (int.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    match frac {
        Some(f) => format!("{sign}{out}.{f}"),
        None => format!("{sign}{out}"),
    }
}

/// OLMo-core's `format_timedelta` without separators: `1h2m3s`, `0s`.
pub fn format_eta(seconds: f64) -> String {
    let s = seconds.max(0.0) as u64;
    let (d, h, m, sec) = (s / 86_400, (s % 86_400) / 3600, (s % 3600) / 60, s % 60);
    let mut out = String::new();
    for (v, unit) in [(d, "d"), (h, "h"), (m, "m"), (sec, "s")] {
        if v > 0 {
            out.push_str(&format!("{v}{unit}"));
        }
    }
    if out.is_empty() {
        "0s".into()
    } else {
        out
    }
}

/// The console block of one step: `[step=1/20,epoch=1,eta=1m]` then `    name=value` lines.
pub fn console_block(header: &str, metrics: &StepMetrics, patterns: &[String]) -> String {
    let mut s = header.to_string();
    for (name, value) in metrics {
        if patterns
            .iter()
            .any(|p| crate::optim::adamw::glob_match(p, name))
        {
            s.push_str(&format!("\n    {name}={}", format_float(*value)));
        }
    }
    s
}

/// One `metrics.jsonl` line: `{"step": N, "<metric>": value, ...}`; non-finite values as strings
/// ("NaN", "Infinity"), since JSON has no such numbers.
pub fn jsonl_line(step: u64, metrics: &StepMetrics) -> String {
    let mut obj = serde_json::Map::new();
    obj.insert("step".into(), step.into());
    for (k, v) in metrics {
        let value = if v.is_finite() {
            serde_json::Number::from_f64(*v)
                .map_or(serde_json::Value::Null, serde_json::Value::Number)
        } else if v.is_nan() {
            "NaN".into()
        } else if *v > 0.0 {
            "Infinity".into()
        } else {
            "-Infinity".into()
        };
        obj.insert(k.clone(), value);
    }
    serde_json::Value::Object(obj).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_float_matches_olmo_core() {
        assert_eq!(format_float(10.8265), "10.83");
        assert_eq!(format_float(0.0002), "0.0002");
        assert_eq!(format_float(0.00002), "2.00E-05");
        assert_eq!(format_float(123456.7), "123,456");
        assert_eq!(format_float(2.5e9), "2.500B");
        assert_eq!(format_float(4.56789), "4.568");
        assert_eq!(format_float(150.25), "150.2");
        assert_eq!(format_float(f64::NAN), "nan");
    }

    #[test]
    fn eta_format() {
        assert_eq!(format_eta(3725.0), "1h2m5s");
        assert_eq!(format_eta(0.4), "0s");
    }
}

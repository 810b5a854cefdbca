//! OLMo-core's `train_module.ac_config` (`TransformerActivationCheckpointingConfig`): which blocks give
//! up their saved activations and are recomputed in backward. The config tree keeps it as written (it
//! round-trips verbatim); this reads it.
use serde::Deserialize;

use crate::error::{Error, Result};

const KEY: &str = "train_module.ac_config";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Fields {
    #[serde(default = "full")]
    mode: String,
    block_interval: Option<u64>,
    modules: Option<Vec<String>>,
    activation_memory_budget: Option<f64>,
    #[serde(default)]
    determinism_check: Option<String>,
}

fn full() -> String {
    "full".into()
}

/// The modes olmo-train runs: every block, or every `block_interval`-th from block 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AcMode {
    Full,
    SelectedBlocks { block_interval: u64 },
}

impl AcMode {
    /// Reads `ac_config`; `Ok(None)` when it is null. Modes not built are an error naming the mode.
    pub fn from_config(value: Option<&serde_yaml::Value>) -> Result<Option<Self>> {
        let Some(v) = value.filter(|v| !v.is_null()) else {
            return Ok(None);
        };
        let f: Fields = serde_yaml::from_value(v.clone()).map_err(|e| Error::InvalidValue {
            path: KEY.into(),
            reason: format!("{e} (fields: mode, block_interval, modules, activation_memory_budget, determinism_check)"),
        })?;
        let _ = (&f.modules, f.activation_memory_budget, &f.determinism_check);
        match f.mode.as_str() {
            "full" => Ok(Some(Self::Full)),
            "selected_blocks" => match f.block_interval {
                Some(n) if n > 0 => Ok(Some(Self::SelectedBlocks { block_interval: n })),
                _ => Err(Error::InvalidValue {
                    path: format!("{KEY}.block_interval"),
                    reason: "a positive integer is required for 'selected_blocks' activation checkpointing".into(),
                }),
            },
            m @ ("selected_modules" | "selected_ops" | "budget") => Err(Error::NotSupported {
                path: format!("{KEY}.mode"),
                value: format!("\"{m}\""),
                hint: "only 'full' and 'selected_blocks' are built".into(),
            }),
            m => Err(Error::InvalidValue {
                path: format!("{KEY}.mode"),
                reason: format!("'{m}': expected full, selected_blocks, selected_modules, selected_ops or budget"),
            }),
        }
    }

    /// Which of `n_blocks` blocks are checkpointed (OLMo-core: all, or those with `index % interval == 0`).
    pub fn blocks(&self, n_blocks: usize) -> Vec<bool> {
        (0..n_blocks as u64)
            .map(|i| match self {
                Self::Full => true,
                Self::SelectedBlocks { block_interval } => i % block_interval == 0,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> Result<Option<AcMode>> {
        AcMode::from_config(Some(&serde_yaml::from_str(yaml).unwrap()))
    }

    #[test]
    fn olmo_cores_modes_and_defaults() {
        assert_eq!(AcMode::from_config(None).unwrap(), None);
        assert_eq!(parse("null").unwrap(), None);
        assert_eq!(parse("{}").unwrap(), Some(AcMode::Full));
        let every_other = parse("{mode: selected_blocks, block_interval: 2}")
            .unwrap()
            .unwrap();
        assert_eq!(every_other.blocks(5), vec![true, false, true, false, true]);
        assert_eq!(AcMode::Full.blocks(3), vec![true; 3]);
    }

    #[test]
    fn bad_or_unbuilt_settings_name_their_key() {
        let cases = [
            ("{mode: selected_blocks}", "ac_config.block_interval"),
            (
                "{mode: selected_blocks, block_interval: 0}",
                "ac_config.block_interval",
            ),
            (
                "{mode: budget, activation_memory_budget: 0.5}",
                "only 'full' and 'selected_blocks'",
            ),
            ("{mode: everything}", "'everything': expected full"),
            ("{mode: full, interval: 2}", "unknown field `interval`"),
        ];
        for (v, want) in cases {
            let e = parse(v).unwrap_err().to_string();
            assert!(e.contains(want), "{v}: {e}");
        }
    }
}

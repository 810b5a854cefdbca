//! AdamW's checkpointable state, split as torch's `Optimizer.state_dict()` is: the moments as named
//! tensors (`{param}.exp_avg`, `{param}.exp_avg_sq`) and everything else as JSON (the parameter groups
//! by parameter name, and each parameter's step count). The checkpoint module stores the two parts
//! without knowing what they mean.
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use tch::Tensor;

use super::adamw::{AdamW, ParamState};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupState {
    pub params: Vec<String>,
    pub lr: f64,
    pub initial_lr: f64,
    pub weight_decay: f64,
    pub betas: (f64, f64),
    pub eps: f64,
}

/// The JSON part of the state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OptimState {
    pub param_groups: Vec<GroupState>,
    /// AdamW's step count per parameter (absent: no update yet).
    pub steps: BTreeMap<String, f64>,
}

/// Both parts; the tensors are the optimizer's own (not copies): the caller copies what it keeps.
pub struct OptimStateDict {
    pub tensors: Vec<(String, Tensor)>,
    pub json: serde_json::Value,
}

impl AdamW {
    pub fn state_dict(&self) -> OptimStateDict {
        let mut tensors = Vec::new();
        let mut steps = BTreeMap::new();
        for ((name, _), st) in self.params.iter().zip(&self.state) {
            if let Some(st) = st {
                tensors.push((format!("{name}.exp_avg"), st.exp_avg.shallow_clone()));
                tensors.push((format!("{name}.exp_avg_sq"), st.exp_avg_sq.shallow_clone()));
                steps.insert(name.clone(), st.step);
            }
        }
        let param_groups = self
            .groups
            .iter()
            .map(|g| GroupState {
                params: g.params.iter().map(|&i| self.params[i].0.clone()).collect(),
                lr: g.lr,
                initial_lr: g.initial_lr,
                weight_decay: g.weight_decay,
                betas: g.betas,
                eps: g.eps,
            })
            .collect();
        let json = serde_json::json!(OptimState {
            param_groups,
            steps
        });
        OptimStateDict { tensors, json }
    }

    /// Restores the moments and step counts; the LRs come from the config and schedule (OLMo-core's
    /// `fixed_fields = ("initial_lr",)`). A parameter with no step count starts afresh. Errors say what
    /// is missing or mismatched; the caller names the file.
    pub fn load_state_dict(
        &mut self,
        tensors: &BTreeMap<String, Tensor>,
        json: &serde_json::Value,
    ) -> Result<(), String> {
        let state: OptimState = serde_json::from_value(json.clone())
            .map_err(|e| format!("not a valid optimizer state: {e}"))?;
        let mut restored = Vec::with_capacity(self.params.len());
        for (name, p) in &self.params {
            let Some(&step) = state.steps.get(name) else {
                restored.push(None);
                continue;
            };
            let get = |suffix: &str| -> Result<Tensor, String> {
                let key = format!("{name}.{suffix}");
                let t = tensors
                    .get(&key)
                    .ok_or_else(|| format!("missing tensor {key}"))?;
                if t.size() != p.size() {
                    return Err(format!(
                        "{key}: shape {:?}, the parameter has {:?}",
                        t.size(),
                        p.size()
                    ));
                }
                Ok(t.to_device(p.device()).to_kind(p.kind()))
            };
            restored.push(Some(ParamState {
                step,
                exp_avg: get("exp_avg")?,
                exp_avg_sq: get("exp_avg_sq")?,
            }));
        }
        self.state = restored;
        // The fused kernel's device-side step counts follow the restored ones on its next step.
        self.fused_steps.clear();
        Ok(())
    }
}

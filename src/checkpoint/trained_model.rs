//! A saved model ready for inference (`olmo-train eval`, `olmo-train generate`): the checkpoint folder
//! (or a save folder's latest), its config, and the transformer it describes with the saved weights.
use std::path::{Path, PathBuf};

use tch::Device;

use super::layout;
use crate::config::ExperimentConfig;
use crate::error::{Error, Result};
use crate::model::transformer::Transformer;

pub struct TrainedModel {
    pub dir: PathBuf,
    pub config: ExperimentConfig,
    pub model: Transformer,
}

/// Loads the checkpoint at `path` (a `step{N}` folder, or a save folder whose latest checkpoint is
/// used) onto `device`, in either checkpoint layout.
pub fn load_trained_model(path: &Path, device: Device) -> Result<TrainedModel> {
    let dir = layout::resolve(path).ok_or_else(|| Error::Input {
        path: path.to_path_buf(),
        reason: "not a checkpoint (no .metadata.json and model weights) and holds none".into(),
    })?;
    let config = read_config(&dir)?;
    let model = Transformer::new(&config.model, device)?;
    super::load_model(&dir, model.named_parameters())?;
    Ok(TrainedModel { dir, config, model })
}

/// The `config.json` a checkpoint was saved with.
pub fn read_config(dir: &Path) -> Result<ExperimentConfig> {
    let cfg_path = dir.join(layout::CONFIG);
    let text = std::fs::read_to_string(&cfg_path).map_err(|e| Error::io(&cfg_path, e))?;
    serde_json::from_str(&text).map_err(|e| Error::Input {
        path: cfg_path.clone(),
        reason: format!("not an olmo-train config: {e}"),
    })
}

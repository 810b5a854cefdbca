//! The data loader's checkpointable state (OLMo-core's `state_dict` keys), and changing the global batch
//! size mid-run as OLMo-core's setter does.
use serde::{Deserialize, Serialize};

use super::DataLoader;
use crate::data::dataset::FINGERPRINT_VERSION;
use crate::error::{Error, Result};

/// What a checkpoint records to resume the data order (OLMo-core's `state_dict` keys).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoaderState {
    pub dataset_fingerprint_version: String,
    pub dataset_fingerprint: String,
    pub batches_processed: u64,
    pub tokens_processed: u64,
    pub seed: u64,
    pub epoch: Option<u64>,
    pub dataset_type: String,
    pub sequence_length: u64,
    pub max_target_sequence_length: Option<u64>,
}

impl DataLoader {
    /// What a checkpoint records to resume exactly here.
    pub fn state(&self) -> LoaderState {
        LoaderState {
            dataset_fingerprint_version: FINGERPRINT_VERSION.into(),
            dataset_fingerprint: self.dataset.fingerprint().into(),
            batches_processed: self.batches_processed,
            tokens_processed: self.tokens_processed,
            seed: self.opts.seed,
            epoch: self.epoch,
            dataset_type: "fsl".into(),
            sequence_length: self.dataset.sequence_length(),
            max_target_sequence_length: self.dataset.max_target_sequence_length(),
        }
    }

    /// Restores a checkpointed state. As OLMo-core: the checkpoint's seed wins, the batch position is
    /// recomputed from tokens (so the batch size may differ), and a different dataset is an error
    /// unless `ignore_fingerprint_mismatch`. Call `reshuffle(state.epoch)` afterwards.
    pub fn load_state(&mut self, state: &LoaderState) -> Result<()> {
        if state.dataset_type != "fsl" {
            return Err(Error::InvalidValue {
                path: "dataset".into(),
                reason: format!(
                    "cannot resume a '{}' data loader state into a fixed-sequence-length loader",
                    state.dataset_type
                ),
            });
        }
        if state.dataset_fingerprint_version != FINGERPRINT_VERSION {
            tracing::warn!("dataset fingerprint version differs from the checkpoint's; the data may have changed");
        } else if state.dataset_fingerprint != self.dataset.fingerprint() {
            if !self.opts.ignore_fingerprint_mismatch {
                return Err(Error::InvalidValue {
                    path: "data_loader.ignore_fingerprint_mismatch".into(),
                    reason: format!(
                    "dataset fingerprint {} does not match the checkpoint's {}: the data files, their sizes or the \
                     tokenizer settings changed; set --data_loader.ignore_fingerprint_mismatch=true to resume anyway \
                     (the data order will differ)",
                    self.dataset.fingerprint(),
                    state.dataset_fingerprint
                ),
                });
            }
            tracing::warn!("dataset fingerprint mismatch ignored; the data order will differ");
        }
        if state.max_target_sequence_length != self.dataset.max_target_sequence_length() {
            return Err(Error::InvalidValue {
                path: "dataset.max_target_sequence_length".into(),
                reason: "differs from the checkpoint's; a resumed run needs the same".into(),
            });
        }
        if state.seed != self.opts.seed {
            tracing::warn!(
                "resuming with the checkpoint's data seed {} instead of {}",
                state.seed,
                self.opts.seed
            );
            self.opts.seed = state.seed;
        }
        self.pipeline = None;
        self.tokens_processed = state.tokens_processed;
        self.batches_processed = state.tokens_processed / self.opts.global_batch_size;
        self.epoch = state.epoch.or(self.epoch);
        tracing::info!(
            "data loader will resume from batch {}/{} based on batch size of {} tokens",
            self.batches_processed,
            self.total_batches(),
            self.opts.global_batch_size
        );
        Ok(())
    }

    /// Changes the global batch size by an integer factor, rescaling the position (OLMo-core's setter).
    pub fn set_global_batch_size(&mut self, new: u64) -> Result<()> {
        let old = self.opts.global_batch_size;
        if new > old {
            if new % old != 0 {
                return Err(Error::InvalidValue {
                    path: "data_loader.global_batch_size".into(),
                    reason: "can only be increased by an integer factor".into(),
                });
            }
            let ratio = new / old;
            if self.batches_processed % ratio != 0 {
                return Err(Error::InvalidValue {
                    path: "data_loader.global_batch_size".into(),
                    reason: format!(
                        "increasing it by {ratio}x needs a multiple of {ratio} batches processed, not {}",
                        self.batches_processed
                    ),
                });
            }
            self.batches_processed /= ratio;
        } else if new < old {
            if old % new != 0 {
                return Err(Error::InvalidValue {
                    path: "data_loader.global_batch_size".into(),
                    reason: "can only be decreased by an integer factor".into(),
                });
            }
            self.batches_processed *= old / new;
        }
        self.pipeline = None;
        self.opts.global_batch_size = new;
        Ok(())
    }
}

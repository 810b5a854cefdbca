//! OLMo-core's `LMEvaluator`: one right-padded instance per document from the `eval_dataset` paths, read
//! in OLMo-core's deterministic order (its loader with seed 0, epoch 1; the partial last batch dropped),
//! per-token CE where each document's tokens are selected by its label mask (which, as in OLMo-core,
//! includes the last real token whose target is padding, a zero term), averaged per path `label`.
//! Metrics: `eval/lm/{label}/CE loss` and `eval/lm/{label}/PPL`. With several ranks each reads its share
//! of every batch (as OLMo-core's loader deals them) and one all-reduce sums the per-label totals.
//!
//! Small sets: in the training loop the evaluator keeps OLMo-core's numbers (the partial last batch is
//! left out, with a warning saying how many documents; a set smaller than one batch gives NaN, as
//! OLMo-core logs). Standalone `olmo-train eval` reads every document, the partial batch included.
use std::collections::BTreeMap;
use std::sync::Arc;

use crate::device::upload;
use tch::{Device, Kind, Tensor};

use super::InLoopEvaluator;
use crate::config::callbacks::LMEvaluatorCallbackConfig;
use crate::config::trainer::DurationUnit;
use crate::data::batch::{collate, Batch};
use crate::data::build::build_padded_dataset;
use crate::data::dataset::FslDataset;
use crate::data::{DataLoader, LoaderOptions};
use crate::dist::ProcessGroup;
use crate::error::{Error, Result};
use crate::loss::{eval_token_losses, labels};
use crate::model::autocast::AutocastGuard;
use crate::model::Transformer;

/// What happens to the documents after the last whole batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PartialBatch {
    /// Left out, as OLMo-core's loader does (the in-loop evaluator).
    Drop,
    /// Evaluated as one last, smaller batch (standalone `olmo-train eval`, one rank).
    Keep,
}

pub struct LmEvaluator {
    dataset: Arc<FslDataset>,
    /// `None` when the set holds fewer documents than one batch.
    loader: Option<DataLoader>,
    partial: PartialBatch,
    /// Documents read by the last `run`, per label (in `labels` order).
    documents: Vec<u64>,
    /// The distinct labels, sorted: the order of the reduced totals.
    labels: Vec<String>,
    /// Each dataset file's index into `labels`.
    file_label: Vec<usize>,
    max_batches: Option<u64>,
    ignore_index: i64,
    /// The run's `autocast_precision: bfloat16`: the forward and the head's products in bf16.
    bf16_autocast: bool,
}

impl LmEvaluator {
    /// From the `lm_evaluator` callback config; `batch_tokens` is OLMo-core's
    /// `rank_microbatch_size * world_size`; `rank` and `world` deal each batch over the ranks.
    pub fn new(
        cfg: &LMEvaluatorCallbackConfig,
        batch_tokens: u64,
        rank: u64,
        world: u64,
        partial: PartialBatch,
    ) -> Result<Self> {
        if partial == PartialBatch::Keep && world > 1 {
            return Err(Error::Internal(
                "the partial last batch is evaluated on one rank only".into(),
            ));
        }
        let key = "trainer.callbacks.lm_evaluator.eval_dataset";
        let ds_cfg = cfg
            .eval_dataset
            .as_ref()
            .ok_or_else(|| Error::InvalidValue {
                path: key.into(),
                reason:
                    "the LM evaluator needs an eval_dataset (padded dataset with a label per path)"
                        .into(),
            })?;
        let (dataset, metadata) = build_padded_dataset(key, ds_cfg)?;
        let file_labels = metadata
            .iter()
            .enumerate()
            .map(|(i, m)| {
                m.get("label").and_then(|l| l.as_str()).map(String::from).ok_or_else(|| Error::InvalidValue {
                    path: format!("{key}.metadata"),
                    reason: format!("path {} has no 'label' (give metadata: [{{label: name}}, ...], one per path)", i),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let mut labels = file_labels.clone();
        labels.sort();
        labels.dedup();
        let file_label = file_labels
            .iter()
            .map(|l| labels.partition_point(|x| x < l))
            .collect();
        let work_dir = dataset.spec().work_dir.clone();
        let dataset = Arc::new(dataset);
        let documents = dataset.len();
        let per_batch = batch_tokens / dataset.sequence_length().max(1);
        let left_out = documents % per_batch.max(1);
        let warn = partial == PartialBatch::Drop && rank == 0;
        if warn && documents < per_batch {
            tracing::warn!(
                "{key}: {documents} documents, fewer than one evaluation batch of {per_batch}: its metrics are NaN, as OLMo-core logs them (olmo-train eval reads every document)"
            );
        } else if warn && left_out > 0 {
            tracing::warn!(
                "{key}: {left_out} of {documents} documents are left out, the partial last batch, as OLMo-core does (olmo-train eval reads every document)"
            );
        }
        let loader = (documents >= per_batch)
            .then(|| {
                DataLoader::new(
                    dataset.clone(),
                    LoaderOptions {
                        global_batch_size: batch_tokens,
                        seed: 0,
                        work_dir,
                        dp_rank: rank,
                        dp_world_size: world,
                        num_workers: 0,
                        num_threads: 1,
                        prefetch_factor: 2,
                        ignore_fingerprint_mismatch: true,
                        shuffle: true,
                    },
                )
            })
            .transpose()?;
        // Standalone evaluation reads every document, whatever the in-loop `eval_duration`.
        let max_batches = match cfg.eval_duration.unit {
            _ if partial == PartialBatch::Keep => None,
            DurationUnit::Steps => Some(cfg.eval_duration.value),
            DurationUnit::Epochs => None,
            DurationUnit::Tokens => Some(cfg.eval_duration.value.div_ceil(batch_tokens.max(1))),
        };
        Ok(Self {
            dataset,
            loader,
            partial,
            documents: vec![0; labels.len()],
            labels,
            file_label,
            max_batches,
            ignore_index: -100,
            bf16_autocast: false,
        })
    }

    /// Evaluates under the run's bf16 autocast (OLMo-core evaluates inside the train module's autocast).
    pub fn with_bf16_autocast(mut self, on: bool) -> Self {
        self.bf16_autocast = on;
        self
    }

    /// Documents the last `run` read, by label.
    pub fn documents_read(&self) -> BTreeMap<String, u64> {
        self.labels
            .iter()
            .cloned()
            .zip(self.documents.iter().copied())
            .collect()
    }

    /// Adds one batch's per-label loss sums and token counts to `totals`, and its documents.
    fn accumulate(
        &mut self,
        model: &Transformer,
        device: Device,
        batch: &Batch,
        totals: &mut [f64],
    ) -> Result<()> {
        let ids = upload(&batch.input_ids, device);
        let mask = batch.label_mask.as_ref().map(|m| upload(m, device));
        let lab = labels(&ids, mask.as_ref(), None, self.ignore_index);
        let head_kind = self.bf16_autocast.then_some(Kind::BFloat16);
        let losses = tch::no_grad(|| {
            let autocast = self.bf16_autocast.then(|| AutocastGuard::bf16(device));
            let hidden = model.forward_hidden(&ids, None);
            drop(autocast);
            eval_token_losses(
                &hidden,
                model.lm_head_weight(),
                &lab,
                self.ignore_index,
                head_kind,
            )
        });
        // Per instance: the sum and count of the selected token losses (one host transfer per batch).
        let mask = mask.unwrap_or_else(|| ids.ones_like().to_kind(Kind::Bool));
        let masked = losses.to_kind(Kind::Double) * mask.to_kind(Kind::Double);
        let stats = Tensor::stack(
            &[
                masked.sum_dim_intlist(1, false, Kind::Double),
                mask.sum_dim_intlist(1, false, Kind::Double),
            ],
            1,
        );
        let stats: Vec<Vec<f64>> =
            crate::device::read_back::<Vec<Vec<f64>>>(&stats).map_err(|e| Error::Training {
                step: 0,
                reason: format!("evaluation: {e}"),
            })?;
        for (file, s) in batch.files.iter().zip(stats) {
            let i = self.file_label[*file];
            totals[2 * i] += s[0];
            totals[2 * i + 1] += s[1];
            self.documents[i] += 1;
        }
        Ok(())
    }

    /// OLMo-core's pass over the whole batches, in its order, up to `eval_duration`.
    fn whole_batches(
        &mut self,
        loader: &mut DataLoader,
        model: &Transformer,
        device: Device,
        totals: &mut [f64],
    ) -> Result<()> {
        loader.reset();
        loader.reshuffle(Some(1))?;
        let mut n = 0u64;
        while let Some(batch) = loader.next_batch() {
            if self.max_batches.is_some_and(|m| n >= m) {
                break;
            }
            self.accumulate(model, device, &batch?, totals)?;
            n += 1;
        }
        Ok(())
    }

    /// The documents after the last whole batch (all of them when there is no whole batch).
    fn partial_batch(&self) -> Result<Option<Batch>> {
        let rest = match &self.loader {
            Some(loader) => loader.left_out_indices()?,
            None => (0..self.dataset.len()).collect(),
        };
        if rest.is_empty() {
            return Ok(None);
        }
        collate(&self.dataset, &rest).map(Some)
    }
}

impl InLoopEvaluator for LmEvaluator {
    /// One evaluation pass (always the same batches, in the same order); with `group`, this rank's share
    /// and one reduction of the per-label totals.
    fn run(
        &mut self,
        model: &Transformer,
        device: Device,
        group: Option<&ProcessGroup>,
    ) -> Result<BTreeMap<String, f64>> {
        let mut totals = vec![0.0f64; 2 * self.labels.len()];
        self.documents.iter_mut().for_each(|d| *d = 0);
        if let Some(mut loader) = self.loader.take() {
            let result = self.whole_batches(&mut loader, model, device, &mut totals);
            self.loader = Some(loader);
            result?;
        }
        if self.partial == PartialBatch::Keep {
            if let Some(batch) = self.partial_batch()? {
                self.accumulate(model, device, &batch, &mut totals)?;
            }
        }
        if let Some(pg) = group {
            let t = Tensor::from_slice(&totals);
            pg.all_reduce_sum(std::slice::from_ref(&t))?;
            totals = crate::device::read_back::<Vec<f64>>(&t).map_err(|e| Error::Training {
                step: 0,
                reason: format!("evaluation: {e}"),
            })?;
        }
        let mut out = BTreeMap::new();
        for (i, label) in self.labels.iter().enumerate() {
            let (sum, count) = (totals[2 * i], totals[2 * i + 1]);
            if count == 0.0 && self.loader.is_some() {
                continue;
            }
            // No whole batch (a set smaller than one): 0/0, the NaN OLMo-core logs.
            let ce = sum / count;
            out.insert(format!("eval/lm/{label}/CE loss"), ce);
            out.insert(format!("eval/lm/{label}/PPL"), ce.exp());
        }
        Ok(out)
    }
}

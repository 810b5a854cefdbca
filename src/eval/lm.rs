//! OLMo-core's `LMEvaluator`: one right-padded instance per document from the `eval_dataset` paths, read
//! in OLMo-core's deterministic order (its loader with seed 0, epoch 1; the partial last batch dropped),
//! per-token CE where each document's tokens are selected by its label mask (which, as in OLMo-core,
//! includes the last real token whose target is padding, a zero term), averaged per path `label`.
//! Metrics: `eval/lm/{label}/CE loss` and `eval/lm/{label}/PPL`. With several ranks each reads its share
//! of every batch (as OLMo-core's loader deals them) and one all-reduce sums the per-label totals.
use std::collections::BTreeMap;
use std::sync::Arc;

use crate::device::upload;
use tch::{Device, Kind, Tensor};

use super::InLoopEvaluator;
use crate::config::callbacks::LMEvaluatorCallbackConfig;
use crate::config::trainer::DurationUnit;
use crate::data::build::build_padded_dataset;
use crate::data::{DataLoader, LoaderOptions};
use crate::dist::ProcessGroup;
use crate::error::{Error, Result};
use crate::loss::{eval_token_losses, labels};
use crate::model::autocast::AutocastGuard;
use crate::model::Transformer;

pub struct LmEvaluator {
    loader: DataLoader,
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
    ) -> Result<Self> {
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
        let loader = DataLoader::new(
            Arc::new(dataset),
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
        )?;
        let max_batches = match cfg.eval_duration.unit {
            DurationUnit::Steps => Some(cfg.eval_duration.value),
            DurationUnit::Epochs => None,
            DurationUnit::Tokens => Some(cfg.eval_duration.value.div_ceil(batch_tokens.max(1))),
        };
        Ok(Self {
            loader,
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
        self.loader.reset();
        self.loader.reshuffle(Some(1))?;
        // Per label: summed token losses and token count.
        let mut totals = vec![0.0f64; 2 * self.labels.len()];
        let mut n = 0u64;
        while let Some(batch) = self.loader.next_batch() {
            if self.max_batches.is_some_and(|m| n >= m) {
                break;
            }
            let batch = batch?;
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
            }
            n += 1;
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
            if count == 0.0 {
                continue;
            }
            let ce = sum / count;
            out.insert(format!("eval/lm/{label}/CE loss"), ce);
            out.insert(format!("eval/lm/{label}/PPL"), ce.exp());
        }
        Ok(out)
    }
}

//! OLMo-core's `TransformerTrainModule` for one rank: owns the model, the optimizer and the LR
//! schedule. `train_batch` splits the rank batch into micro-batches of `rank_microbatch_size` tokens,
//! each loss divided by the whole rank batch's loss-token count, and accumulates gradients;
//! `optim_step` clips, sets each group's LR and steps. Metrics stay on the device as tensors.
use std::sync::{Arc, Mutex};

use crate::device::upload;
use tch::{Device, Kind, Tensor};

use super::device_metrics::DeviceMetrics;
use super::metric_names as names;
use super::router_losses::RouterLosses;
use crate::config::activation_checkpointing::AcMode;
use crate::config::train_module::{OptimConfig, SchedulerConfig, TransformerTrainModuleConfig};
use crate::config::DType;
use crate::data::Batch;
use crate::dist::reducer::Reducer;
use crate::dist::ProcessGroup;
use crate::error::{Error, Result};
use crate::fsdp::{lock, Gate, ShardedModel, SharedModel};
use crate::loss::{labels, lm_loss, HeadScratch, LossSettings};
use crate::model::autocast::AutocastGuard;
use crate::model::checkpointing::Recomputes;
use crate::model::{Transformer, Unit};
use crate::optim::clip::{clip_grad_norm, grad_norm};
use crate::optim::scheduler::lr_at;
use crate::optim::skip_step::SkipStep;
use crate::optim::AdamW;

mod replicas;
mod state;

/// What one step leaves behind for the trainer's metrics.
pub struct StepOutputs {
    /// Device scalars by metric name (CE, z-loss, masked shares; the gradient norm once `optim_step` ran),
    /// read back to the host only when the trainer collects metrics.
    pub metrics: DeviceMetrics,
    /// Each group's LR as set for this step.
    pub lrs: Vec<f64>,
}

pub struct TrainModule {
    /// Data-parallel group, and DDP's Reducer on it: gradients are averaged over the ranks during the
    /// backward of each rank batch's last micro-batch, bucket by bucket.
    dp: Option<Arc<ProcessGroup>>,
    reducer: Option<Reducer>,
    pub model: Transformer,
    pub optim: AdamW,
    scheduler: Option<SchedulerConfig>,
    microbatch_instances: i64,
    max_grad_norm: Option<f64>,
    /// `autocast_precision: bfloat16`: the forward pass (and the LM head's products) in bf16.
    bf16_autocast: bool,
    z_loss_multiplier: Option<f64>,
    ignore_index: i64,
    device: Device,
    /// The chunked LM loss's buffers, reused by every micro-batch of every step.
    head_scratch: HeadScratch,
    /// `ac_config`: per block, whether it is recomputed in backward (`None`: no checkpointing).
    checkpointed: Option<Vec<bool>>,
    /// What the backward of checkpointed blocks needs, held from a micro-batch's forward to its backward.
    recomputes: Recomputes,
    /// `dp_config: fsdp | hsdp`: the model's shards, driven unit by unit (also at world size 1).
    sharded: Option<SharedModel>,
    /// A mixture of experts' auxiliary losses and router metrics over the current step.
    router_losses: RouterLosses,
}

impl TrainModule {
    pub fn new(
        cfg: &TransformerTrainModuleConfig,
        model: Transformer,
        sequence_length: u64,
        device: Device,
    ) -> Result<Self> {
        // `validate` has checked the micro-batch against the sequence lengths; this only guards the
        // division below.
        if cfg.rank_microbatch_size < sequence_length || sequence_length == 0 {
            return Err(Error::Internal(format!(
                "a {}-token micro-batch holds no {sequence_length}-token instance",
                cfg.rank_microbatch_size
            )));
        }
        let params = model
            .named_parameters()
            .iter()
            .map(|(n, t)| (n.clone(), t.shallow_clone()))
            .collect();
        let optim = build_optimizer(params, &cfg.optim)?;
        let checkpointed =
            AcMode::from_config(cfg.ac_config.as_ref())?.map(|m| m.blocks(model.n_blocks()));
        Ok(Self {
            dp: None,
            reducer: None,
            model,
            optim,
            scheduler: cfg.scheduler.clone(),
            microbatch_instances: (cfg.rank_microbatch_size / sequence_length) as i64,
            max_grad_norm: cfg.max_grad_norm,
            bf16_autocast: cfg.autocast_precision == Some(DType::Bfloat16),
            z_loss_multiplier: cfg.z_loss_multiplier,
            ignore_index: cfg.label_ignore_index,
            device,
            head_scratch: HeadScratch::default(),
            checkpointed,
            recomputes: Recomputes::default(),
            sharded: None,
            router_losses: RouterLosses::default(),
        })
    }

    /// Trains `sharded` (the model's shards) instead of the whole model: the optimizer steps the fp32
    /// shards and every forward outside training gathers the units it runs.
    pub fn with_sharding(
        &mut self,
        cfg: &TransformerTrainModuleConfig,
        sharded: ShardedModel,
    ) -> Result<()> {
        self.optim = build_optimizer(sharded.optimizer_params(), &cfg.optim)?;
        let shared: SharedModel = Arc::new(Mutex::new(sharded));
        self.model.set_gate(Arc::new(Gate(shared.clone())));
        self.sharded = Some(shared);
        Ok(())
    }

    /// The sharded model, when training sharded.
    pub fn sharded(&self) -> Option<&SharedModel> {
        self.sharded.as_ref()
    }

    /// After forwards outside training (evaluation): frees what they left gathered and reports the
    /// first collective that failed during them.
    pub fn after_forwards(&self) -> Result<()> {
        let Some(s) = &self.sharded else {
            return Ok(());
        };
        let mut m = lock(s);
        if let Some(e) = m.take_gate_error() {
            return Err(e);
        }
        m.reshard_all()
    }

    /// Forward and backward over the rank batch, in micro-batches; gradients accumulate (and with data
    /// parallelism are averaged over the ranks during the last micro-batch's backward, as DDP's `no_sync`
    /// accumulation does).
    pub fn train_batch(&mut self, batch: &Batch) -> Result<StepOutputs> {
        let input_ids = upload(&batch.input_ids, self.device);
        let label_mask = batch.label_mask.as_ref().map(|m| upload(m, self.device));
        let instance_mask = batch.instance_mask.as_ref().map(|m| upload(m, self.device));
        let labels = labels(
            &input_ids,
            label_mask.as_ref(),
            instance_mask.as_ref(),
            self.ignore_index,
        );
        let (n, t) = input_ids.size2().unwrap_or((0, 0));
        let mut div = labels.ne(self.ignore_index).sum(Kind::Int64);
        let masked_labels =
            (labels.eq(self.ignore_index).sum(Kind::Float) / (n * t) as f64).detach();
        let masked_instances = instance_mask
            .as_ref()
            .map(|m| m.logical_not().to_kind(Kind::Float).mean(Kind::Float));
        if let Some(m) = &instance_mask {
            // OLMo-core counts a masked instance's tokens in the denominator.
            div += m.logical_not().sum(Kind::Int64) * t;
        }
        let div = div.to_kind(Kind::Float);
        let mut ce_total = Tensor::zeros([], (Kind::Float, self.device));
        let mut z_total = self
            .z_loss_multiplier
            .map(|_| Tensor::zeros([], (Kind::Float, self.device)));
        let bf16_params = self
            .sharded
            .as_ref()
            .is_some_and(|s| lock(s).settings().param_kind == Kind::BFloat16);
        let settings = LossSettings {
            ignore: self.ignore_index,
            z_loss_multiplier: self.z_loss_multiplier,
            head_kind: (self.bf16_autocast || bf16_params).then_some(Kind::BFloat16),
        };
        let mut start = 0;
        while start < n {
            let len = self.microbatch_instances.min(n - start);
            let ids = input_ids.narrow(0, start, len);
            let lab = labels.narrow(0, start, len);
            let docs = batch
                .doc_lens
                .as_ref()
                .map(|d| &d[start as usize..(start + len) as usize]);
            let autocast = self.bf16_autocast.then(|| AutocastGuard::bf16(self.device));
            let last = start + len >= n;
            if let Some(shared) = &self.sharded {
                let mut sharded = lock(shared);
                let flags = self.checkpointed.as_deref().unwrap_or(&[]);
                let (model, losses) = (&self.model, &mut self.router_losses);
                let mut aux_of_unit = |unit: Unit| match unit {
                    Unit::Block(i) => losses.add_block(model, i, &div),
                    _ => None,
                };
                let (hidden, tape) = sharded.forward(
                    &self.model,
                    &ids,
                    docs,
                    flags,
                    &mut self.recomputes,
                    &mut aux_of_unit,
                )?;
                let head = self.model.lm_head_weight();
                let parts = lm_loss(&hidden, head, &lab, &div, &settings, &mut self.head_scratch);
                drop(autocast);
                ce_total += &parts.ce;
                if let (Some(total), Some(z)) = (z_total.as_mut(), &parts.z) {
                    *total += z;
                }
                // Each block's auxiliary loss goes back with that block's own backward.
                backward(&parts.backward)?;
                sharded.backward(tape, last)?;
                self.recomputes.clear();
                start += len;
                continue;
            }
            let hidden = match &self.checkpointed {
                Some(flags) => self
                    .model
                    .forward_hidden_checkpointed(&ids, docs, flags, &mut self.recomputes)
                    .map_err(|reason| Error::Training { step: 0, reason })?,
                None => self.model.forward_hidden(&ids, docs),
            };
            let head = self.model.lm_head_weight();
            let parts = lm_loss(&hidden, head, &lab, &div, &settings, &mut self.head_scratch);
            drop(autocast);
            ce_total += &parts.ce;
            if let (Some(total), Some(z)) = (z_total.as_mut(), &parts.z) {
                *total += z;
            }
            let aux = self.router_losses.add_microbatch(&self.model, &div);
            if last {
                if let Some(r) = &self.reducer {
                    r.prepare_for_backward()?;
                }
            }
            backward(&with_aux(parts.backward, aux))?;
            self.recomputes.clear();
            start += len;
        }
        let mut metrics = DeviceMetrics::default();
        metrics.record(names::CE_LOSS, ce_total);
        if let Some(z) = z_total {
            metrics.record(names::Z_LOSS, z);
        }
        metrics.record(names::MASKED_LABELS, masked_labels);
        if let Some(m) = masked_instances {
            metrics.record(names::MASKED_INSTANCES, m);
        }
        self.router_losses.record_metrics(&mut metrics);
        Ok(StepOutputs {
            metrics,
            lrs: Vec::new(),
        })
    }

    /// Hands the skip-step rule the step's CE loss, averaged over the ranks right away as OLMo-core
    /// does (one small all-reduce a step), and the total gradient norm when gradients are clipped.
    fn record_for_skip_step(&mut self, out: &StepOutputs, norm: Option<&Tensor>) -> Result<()> {
        let loss = out
            .metrics
            .get(names::CE_LOSS)
            .ok_or_else(|| Error::Internal("the step recorded no CE loss".into()))?
            .detach()
            .copy();
        if let Some(pg) = &self.dp {
            pg.all_reduce_sum(std::slice::from_ref(&loss))?;
        }
        let world = self.dp.as_ref().map_or(1, |pg| pg.world_size) as f64;
        let Some(rule) = self.optim.skip_step_mut() else {
            return Ok(());
        };
        rule.record_loss(&(loss / world));
        if let Some(n) = norm {
            rule.record_grad_norm(n);
        }
        Ok(())
    }

    /// Clip, set the LR of every group for `current` of `t_max` (steps or tokens), step, zero grads.
    pub fn optim_step(&mut self, out: &mut StepOutputs, current: u64, t_max: u64) -> Result<()> {
        let norm = match (&self.sharded, self.max_grad_norm) {
            (Some(s), max) => lock(s).clip_grad_norm(self.optim.params(), max)?,
            (None, Some(max)) => clip_grad_norm(self.optim.params(), max),
            (None, None) => grad_norm(self.optim.params()),
        };
        if self.optim.skip_step_mut().is_some() {
            self.record_for_skip_step(out, (self.max_grad_norm.is_some()).then_some(&norm))?;
        }
        out.metrics.record(names::GRAD_NORM, norm);
        for g in self.optim.groups_mut() {
            if let Some(s) = &self.scheduler {
                g.lr = lr_at(s, g.initial_lr, current, t_max)?;
            }
            out.lrs.push(g.lr);
        }
        self.optim.step()?;
        if let Some(skipped) = self.optim.step_skipped() {
            out.metrics
                .record(names::STEP_SKIPPED, skipped.shallow_clone());
        }
        self.optim.zero_grad();
        if let Some(s) = &self.sharded {
            let mut m = lock(s);
            // Shards, gradient shards and AdamW's two moments of every local part.
            let persistent = m.persistent_bytes() + self.optim.state_bytes();
            m.zero_grad();
            out.metrics.record(
                names::SHARDED_PERSISTENT_MIB,
                Tensor::from(persistent as f64 / (1 << 20) as f64),
            );
            out.metrics.record(
                names::SHARDED_PEAK_UNSHARDED_MIB,
                Tensor::from(m.take_peak_unsharded_bytes() as f64 / (1 << 20) as f64),
            );
        }
        Ok(())
    }

    pub fn device(&self) -> Device {
        self.device
    }

    /// Whether the schedule counts tokens rather than steps.
    pub fn schedule_in_tokens(&self) -> bool {
        use crate::config::train_module::SchedulerUnits;
        self.scheduler
            .as_ref()
            .is_some_and(|s| s.units() == SchedulerUnits::Tokens)
    }
}

/// The tensor to back-propagate: the LM loss's, plus a mixture of experts' auxiliary loss.
fn with_aux(backward: Tensor, aux: Option<Tensor>) -> Tensor {
    match aux {
        Some(aux) => backward + aux,
        None => backward,
    }
}

/// Backward from `loss`. Under DDP the gradient all-reduce runs inside it (torch's Reducer hooks), so a
/// peer that died or froze surfaces here: as an error naming the collective, not a panic.
fn backward(loss: &Tensor) -> Result<()> {
    loss.f_backward().map_err(|e| {
        let cause = e.to_string();
        let cause = cause.lines().next().unwrap_or_default().to_string();
        let collective = ["gloo", "nccl", "NCCL", "Timed out", "Connection"];
        if collective.iter().any(|c| cause.contains(c)) {
            let hint = if cause.contains("Timed out") {
                " did not complete within dist_timeout (a rank frozen, stopped or gone?)"
            } else {
                " failed: a peer is gone"
            };
            Error::Distributed(format!("the gradient all-reduce (DDP){hint}: {cause}"))
        } else {
            // The trainer puts in the step.
            Error::Training {
                step: 0,
                reason: format!("backward failed: {cause}"),
            }
        }
    })
}

/// AdamW, or AdamW with OLMo-core's skip-step rule.
fn build_optimizer(params: Vec<(String, Tensor)>, cfg: &OptimConfig) -> Result<AdamW> {
    let optim = AdamW::new(params, &cfg.adamw())?;
    Ok(match cfg {
        OptimConfig::AdamW(_) => optim,
        OptimConfig::SkipStepAdamW(c) => optim.with_skip_step(SkipStep::new(c)),
    })
}

#[cfg(test)]
mod host_read_tests {
    use super::*;
    use crate::config::factories::build_factory;
    use crate::config::train_module::CosWithWarmup;
    use crate::device::host_reads;
    use crate::train::device_metrics::DeviceMetrics;

    /// A training step (micro-batches with intra-document masking, clipping, the optimizer) reads
    /// nothing back to the host: on a GPU each read would stall the queue. Only metric collection does.
    #[test]
    fn a_training_step_makes_no_host_read() {
        let cfg = TransformerTrainModuleConfig {
            rank_microbatch_size: 16,
            max_sequence_length: 8,
            max_grad_norm: Some(1.0),
            z_loss_multiplier: Some(1e-4),
            scheduler: Some(SchedulerConfig::CosWithWarmup(CosWithWarmup::with_warmup(
                2,
            ))),
            ..Default::default()
        };
        let model = Transformer::new(&build_factory("olmo2_1M", 64).unwrap(), Device::Cpu).unwrap();
        model.init_weights(0);
        let mut module = TrainModule::new(&cfg, model, 8, Device::Cpu).unwrap();
        let batch = Batch {
            input_ids: Tensor::randint(64, [4, 8], (Kind::Int64, Device::Cpu)),
            label_mask: None,
            instance_mask: Some(Tensor::from_slice(&[true, true, false, true])),
            doc_lens: Some(vec![vec![3, 5], vec![8], vec![2, 2, 4], vec![8]]),
            max_doc_lens: None,
            index: vec![0, 1, 2, 3],
            files: vec![0; 4],
        };
        let before = host_reads();
        let mut out = module.train_batch(&batch).unwrap();
        module.optim_step(&mut out, 1, 10).unwrap();
        assert_eq!(
            host_reads(),
            before,
            "the step read tensors back to the host"
        );
        // The counter does count: collecting the step's metrics is one read.
        let values = DeviceMetrics::to_host(&[&out.metrics], None, 1).unwrap();
        assert_eq!(host_reads(), before + 1);
        assert!(values[0][names::CE_LOSS].is_finite());
    }
}

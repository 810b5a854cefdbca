//! `olmo-train RUN_NAME ...` without `--dry-run`: OLMo-core's `train(config)` for one rank. Every part
//! is built by a named builder; the trainer is assembled from them and fits.
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use tch::Device;

use super::checkpointer::Checkpointer;
use super::group::join_group;
use super::outputs::{build_sinks, save_config};
use super::start_state::{load_start_state, StartState};
use super::train_module::TrainModule;
use super::trainer::{TrainSummary, Trainer, TrainerOptions, TrainerParts};
use crate::config::support::{compile_model_note, unsupported_settings};
use crate::config::ExperimentConfig;
use crate::data::build::{build_fsl_dataset, build_loader};
use crate::data::DataLoader;
use crate::device::{device_name, for_rank, RankSlot};
use crate::dist::{DistEnv, ProcessGroup};
use crate::error::{Error, Result};
use crate::eval::in_loop::build_schedules;
use crate::fsdp::{ShardedModel, ShardingSettings};
use crate::model::Transformer;

/// Trains with `config`; `stop` is set by SIGINT/SIGTERM.
pub fn train(config: &ExperimentConfig, stop: Arc<AtomicBool>) -> Result<TrainSummary> {
    let dist = DistEnv::from_process_env()?;
    check_config(config, &dist)?;
    if let Some(note) = compile_model_note(config) {
        tracing::info!("{note}");
    }
    let slot = RankSlot {
        local_rank: dist.local_rank,
        local_world_size: dist.local_world_size,
    };
    let (device, why) = for_rank("trainer.device", config.trainer.device.as_deref(), slot)?;
    tracing::info!("training on {}: {why}", device_name(device));
    let group = (dist.world_size > 1)
        .then(|| join_group(&dist, config, device))
        .transpose()?;
    let loader = build_data_loader(config, &dist)?;
    let seq = config.dataset.sequence_length;
    let mut module = match sharding_settings(config, &dist)? {
        Some(settings) => build_sharded_module(config, device, group.as_ref(), settings)?,
        None => {
            let model = build_model(config, device, group.as_deref())?;
            TrainModule::new(&config.train_module, model, seq, device)?
        }
    };
    let start = load_start_state(config, &mut module, dist.rank == 0)?;
    if let Some(pg) = &group {
        // Every rank has loaded its start state before rank 0 may write the step-0 checkpoint.
        pg.barrier()?;
    }
    save_config(config, &trainer_save_folder(config), &data_paths(&loader))?;
    let mut trainer = build_trainer(config, module, loader, start, group, &dist, stop)?;
    if let Some(s) = &config.train_module.scheduler {
        crate::optim::scheduler::validate(s, trainer.max_steps())?;
    }
    let result = trainer.fit();
    trainer.close_sinks(i32::from(!matches!(&result, Ok(s) if !s.interrupted)));
    result
}

/// The config's problems (all at once) and the settings olmo-train cannot honour yet.
fn check_config(config: &ExperimentConfig, dist: &DistEnv) -> Result<()> {
    crate::validate::validate(config, dist.world_size)?;
    match unsupported_settings(config).into_iter().next() {
        Some(u) => Err(u.into()),
        None => Ok(()),
    }
}

/// The model with OLMo-core's initialization; with several ranks, rank 0's weights everywhere.
fn build_model(
    config: &ExperimentConfig,
    device: Device,
    group: Option<&ProcessGroup>,
) -> Result<Transformer> {
    tch::manual_seed(config.init_seed as i64);
    let model = Transformer::new(&config.model, device)?;
    model.init_weights(config.model.init_seed);
    if let Some(pg) = group {
        // Identical anyway with the same seed; this makes it so.
        let params: Vec<tch::Tensor> = model
            .named_parameters()
            .iter()
            .map(|(_, p)| p.shallow_clone())
            .collect();
        tch::no_grad(|| pg.broadcast(&params, 0))?;
    }
    // OLMo-core seeds everything with `init_seed`; the model's own generator is separate.
    tch::manual_seed(config.init_seed as i64);
    tracing::info!(
        "built model with {} parameters, {} training FLOPs per token at sequence length {}",
        model.num_params(),
        config.model.flops_per_token(config.dataset.sequence_length),
        config.dataset.sequence_length
    );
    Ok(model)
}

/// `dp_config: fsdp | hsdp`: how the model is sharded over this run's ranks.
fn sharding_settings(
    config: &ExperimentConfig,
    dist: &DistEnv,
) -> Result<Option<ShardingSettings>> {
    use crate::config::train_module::DataParallelType;
    let Some(dp) = config
        .train_module
        .dp_config
        .as_ref()
        .filter(|d| d.name != DataParallelType::Ddp)
    else {
        return Ok(None);
    };
    let nodes = std::env::var("NUM_NODES")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(dist.world_size / dist.local_world_size.max(1));
    ShardingSettings::from_config(dp, dist.rank, dist.world_size, nodes).map(Some)
}

/// The train module over a sharded model: built without memory, then initialized unit by unit, each
/// rank keeping its shards (the same weights at any world size, with no broadcast).
fn build_sharded_module(
    config: &ExperimentConfig,
    device: Device,
    group: Option<&Arc<ProcessGroup>>,
    settings: ShardingSettings,
) -> Result<TrainModule> {
    tch::manual_seed(config.init_seed as i64);
    let model = Transformer::new_deferred(&config.model, device)?;
    let sharded = ShardedModel::new(&model, group, settings, device, config.model.init_seed)?;
    tch::manual_seed(config.init_seed as i64);
    tracing::info!(
        "built model with {} parameters, sharded over {} x {} ranks (replicas x shard), gathered in {:?}",
        model.num_params(),
        settings.mesh.replicas,
        settings.mesh.shard,
        settings.param_kind
    );
    let seq = config.dataset.sequence_length;
    let mut module = TrainModule::new(&config.train_module, model, seq, device)?;
    module.with_sharding(&config.train_module, sharded)?;
    Ok(module)
}

/// The dataset and this rank's loader over it.
fn build_data_loader(config: &ExperimentConfig, dist: &DistEnv) -> Result<DataLoader> {
    let (dataset, _) = build_fsl_dataset(&config.dataset)?;
    let loader = build_loader(
        &config.data_loader,
        Arc::new(dataset),
        dist.rank,
        dist.world_size,
    )?;
    tracing::info!(
        "dataset: {} instances of {} tokens, {} batches of {} tokens per epoch",
        loader.dataset().len(),
        config.dataset.sequence_length,
        loader.total_batches(),
        loader.global_batch_size()
    );
    Ok(loader)
}

fn data_paths(loader: &DataLoader) -> Vec<String> {
    loader
        .dataset()
        .spec()
        .paths
        .iter()
        .map(|p| p.display().to_string())
        .collect()
}

/// The trainer from its parts: options, checkpointer, evaluators, metric sinks, resume point.
fn build_trainer(
    config: &ExperimentConfig,
    module: TrainModule,
    loader: DataLoader,
    start: StartState,
    group: Option<Arc<ProcessGroup>>,
    dist: &DistEnv,
    stop: Arc<AtomicBool>,
) -> Result<Trainer> {
    let t = &config.trainer;
    let opts = TrainerOptions {
        max_duration: t.max_duration,
        hard_stop: t.hard_stop,
        metrics_collect_interval: t.metrics_collect_interval,
        config_json: serde_json::to_string_pretty(config)
            .map_err(|e| Error::Internal(format!("the config is not JSON: {e}")))?,
        data_paths: data_paths(&loader),
        check_replicas: check_replicas_requested(group.is_some()),
        gpu_monitor: t.callbacks.gpu_monitor.is_some(),
    };
    let max_steps = super::duration::max_steps(
        &t.max_duration,
        loader.global_batch_size(),
        loader.total_batches(),
    );
    Trainer::new(TrainerParts {
        opts,
        module,
        loader,
        checkpointer: build_checkpointer(config, start.saved),
        evals: build_schedules(config, dist.rank as usize, dist.world_size as usize)?,
        // Only rank 0 logs and writes the metric files.
        sinks: match dist.rank {
            0 => build_sinks(config, start.resume.as_ref().map(|r| r.step), max_steps)?,
            _ => Vec::new(),
        },
        group,
        resume: start.resume,
        stop,
    })
}

/// `OLMO_TRAIN_CHECK_REPLICAS=1` with several ranks: compare every rank's weights after each step.
fn check_replicas_requested(distributed: bool) -> bool {
    let on = distributed && std::env::var_os("OLMO_TRAIN_CHECK_REPLICAS").is_some_and(|v| v == "1");
    if on {
        tracing::info!(
            "OLMO_TRAIN_CHECK_REPLICAS=1: comparing every rank's parameters with rank 0's after each step"
        );
    }
    on
}

/// The checkpointer callback, or none with `no_checkpoints` / `enabled: false`.
fn build_checkpointer(config: &ExperimentConfig, saved: Vec<(u64, bool)>) -> Checkpointer {
    let checkpointing = (!config.trainer.no_checkpoints)
        .then(|| config.trainer.callbacks.checkpointer.clone())
        .flatten()
        .filter(|c| c.enabled);
    Checkpointer::new(
        checkpointing,
        trainer_save_folder(config),
        config.trainer.save_overwrite,
        saved,
    )
}

pub(super) fn trainer_save_folder(config: &ExperimentConfig) -> PathBuf {
    PathBuf::from(&config.trainer.save_folder)
}

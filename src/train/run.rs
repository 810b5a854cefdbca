//! `olmo-train RUN_NAME ...` without `--dry-run`: OLMo-core's `train(config)` for one process:
//! seed, build the model, data and train module, then fit.
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use tch::Device;

use super::checkpointer::Checkpointer;
use super::train_module::TrainModule;
use super::trainer::{TrainSummary, Trainer, TrainerOptions};
use crate::checkpoint::{self, layout, TrainerState};
use crate::config::callbacks::ConsoleLoggerCallback;
use crate::config::support::unsupported_settings;
use crate::config::trainer::LoadStrategy;
use crate::config::ExperimentConfig;
use crate::data::build::{build_fsl_dataset, build_loader};
use crate::dist::{DistEnv, ProcessGroup};
use crate::error::{Error, Result};
use crate::eval::in_loop::build_schedules;
use crate::model::Transformer;

/// `trainer.device`, or CUDA when present, else CPU.
pub fn select_device(requested: Option<&str>) -> Result<Device> {
    match requested {
        None => Ok(Device::cuda_if_available()),
        Some("cpu") => Ok(Device::Cpu),
        Some(s) if s == "cuda" || s.starts_with("cuda:") => {
            let index = s
                .strip_prefix("cuda:")
                .map_or(Ok(0), |i| i.parse::<usize>())
                .map_err(|_| bad_device(s))?;
            if !tch::Cuda::is_available() || index >= tch::Cuda::device_count() as usize {
                return Err(Error::InvalidValue {
                    path: "trainer.device".into(),
                    reason: format!(
                        "'{s}' requested but this machine has {} CUDA device(s)",
                        tch::Cuda::device_count()
                    ),
                });
            }
            Ok(Device::Cuda(index))
        }
        Some(s) => Err(bad_device(s)),
    }
}

/// With several ranks on a GPU machine and no explicit `trainer.device`, each rank takes the GPU of its
/// `LOCAL_RANK` (as torchrun users expect), wrapping around when there are fewer GPUs than ranks.
fn rank_device(device: Device, automatic: bool, dist: &DistEnv) -> Device {
    match device {
        Device::Cuda(_) if automatic && dist.world_size > 1 => {
            let count = tch::Cuda::device_count().max(1) as u64;
            Device::Cuda((dist.local_rank % count) as usize)
        }
        d => d,
    }
}

fn bad_device(s: &str) -> Error {
    Error::InvalidValue {
        path: "trainer.device".into(),
        reason: format!("'{s}': expected cpu, cuda or cuda:N"),
    }
}

/// Trains with `config`; `stop` is set by SIGINT/SIGTERM.
pub fn train(config: &ExperimentConfig, stop: Arc<AtomicBool>) -> Result<TrainSummary> {
    if let Some(u) = unsupported_settings(config).into_iter().next() {
        return Err(u.into());
    }
    let dist = DistEnv::from_process_env()?;
    let device = rank_device(
        select_device(config.trainer.device.as_deref())?,
        config.trainer.device.is_none(),
        &dist,
    );
    let seq = config.dataset.sequence_length;
    if config.train_module.max_sequence_length < seq {
        return Err(Error::InvalidValue {
            path: "train_module.max_sequence_length".into(),
            reason: format!(
                "{} is shorter than dataset.sequence_length ({seq})",
                config.train_module.max_sequence_length
            ),
        });
    }
    if config.model.vocab_size < config.dataset.tokenizer.vocab_size {
        return Err(Error::InvalidValue {
            path: "model.vocab_size".into(),
            reason: format!(
                "{} is smaller than the tokenizer's vocab size {}",
                config.model.vocab_size, config.dataset.tokenizer.vocab_size
            ),
        });
    }
    tracing::info!("training on {device:?}");
    let group = (dist.world_size > 1)
        .then(|| join_group(&dist, config, device))
        .transpose()?;
    tch::manual_seed(config.init_seed as i64);
    let model = Transformer::new(&config.model, device)?;
    model.init_weights(config.model.init_seed);
    if let Some(pg) = &group {
        // Every rank starts from rank 0's weights (identical anyway with the same seed; this makes it so).
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
        "built model with {} parameters, {} training FLOPs per token at sequence length {seq}",
        model.num_params(),
        config.model.flops_per_token(seq)
    );
    let (dataset, _) = build_fsl_dataset(&config.dataset)?;
    let loader = build_loader(
        &config.data_loader,
        Arc::new(dataset),
        dist.rank,
        dist.world_size,
    )?;
    tracing::info!(
        "dataset: {} instances of {seq} tokens, {} batches of {} tokens per epoch",
        loader.dataset().len(),
        loader.total_batches(),
        loader.global_batch_size()
    );
    let data_paths: Vec<String> = loader
        .dataset()
        .spec()
        .paths
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    let loader_paths = data_paths.clone();
    let mut module = TrainModule::new(&config.train_module, model, seq, device)?;
    let save_folder = PathBuf::from(&config.trainer.save_folder);
    let loaded = load_start_state(config, &save_folder, &mut module, dist.rank == 0)?;
    if let Some(pg) = &group {
        // Every rank has loaded its start state before rank 0 may write the step-0 checkpoint.
        pg.barrier()?;
    }
    let console = config
        .trainer
        .callbacks
        .console_logger
        .clone()
        .unwrap_or_default();
    let opts = TrainerOptions {
        max_duration: config.trainer.max_duration,
        hard_stop: config.trainer.hard_stop,
        metrics_collect_interval: config.trainer.metrics_collect_interval,
        console_metrics: console_patterns(&console),
        console_log_interval: console.metrics_log_interval.unwrap_or(console.log_interval),
        save_folder: save_folder.clone(),
        config_json: serde_json::to_string_pretty(config).unwrap_or_default(),
        data_paths,
    };
    let checkpointing = (!config.trainer.no_checkpoints)
        .then(|| config.trainer.callbacks.checkpointer.clone())
        .flatten()
        .filter(|c| c.enabled);
    let saved = Checkpointer::saved_from_state(
        loaded
            .as_ref()
            .and_then(|s| s.callbacks.get("checkpointer")),
    );
    let checkpointer = Checkpointer::new(
        checkpointing,
        save_folder,
        config.trainer.save_overwrite,
        saved,
    );
    let mut trainer = Trainer::new(opts, module, loader, stop, checkpointer)?;
    if let Some(pg) = &group {
        trainer.with_data_parallel(pg.clone())?;
    }
    for eval in build_schedules(config, dist.rank as usize, dist.world_size as usize)? {
        trainer.with_eval(eval);
    }
    if let Some(state) = &loaded {
        trainer.resume(state)?;
    }
    if let Some(s) = &config.train_module.scheduler {
        crate::optim::scheduler::validate(s, trainer.max_steps())?;
    }
    save_config(config, &trainer_save_folder(config), &loader_paths)?;
    if let Some(w) = build_wandb(config, loaded.is_some())? {
        trainer.add_sink(Box::new(w));
    }
    if let Some(tb) = config
        .trainer
        .callbacks
        .tensorboard
        .as_ref()
        .filter(|t| t.enabled)
    {
        let dir = tb
            .log_dir
            .as_ref()
            .map(PathBuf::from)
            .unwrap_or_else(|| trainer_save_folder(config).join("tb"));
        trainer.add_sink(Box::new(
            crate::logging::tensorboard::TensorBoardWriter::create(&dir)?,
        ));
    }
    let result = trainer.fit();
    trainer.close_sinks(if matches!(&result, Ok(s) if !s.interrupted) {
        0
    } else {
        1
    });
    result
}

fn trainer_save_folder(config: &ExperimentConfig) -> PathBuf {
    PathBuf::from(&config.trainer.save_folder)
}

/// `config_saver`: `config.json` and `data_paths.txt` in the save folder.
fn save_config(config: &ExperimentConfig, folder: &Path, data_paths: &[String]) -> Result<()> {
    let Some(cs) = config.trainer.callbacks.config_saver.as_ref() else {
        return Ok(());
    };
    std::fs::create_dir_all(folder).map_err(|e| Error::io(folder, e))?;
    let json = serde_json::to_string_pretty(config).map_err(|e| Error::Usage(e.to_string()))?;
    let path = folder.join(&cs.fname);
    std::fs::write(&path, json).map_err(|e| Error::io(&path, e))?;
    if cs.save_data_paths.unwrap_or(true) {
        let name = cs
            .data_paths_fname
            .clone()
            .unwrap_or_else(|| "data_paths.txt".into());
        let path = folder.join(name);
        std::fs::write(&path, format!("{}\n", data_paths.join("\n")))
            .map_err(|e| Error::io(&path, e))?;
    }
    Ok(())
}

/// The `wandb` callback as a native offline writer (rank 0), honouring wandb's environment variables.
fn build_wandb(
    config: &ExperimentConfig,
    resumed: bool,
) -> Result<Option<crate::logging::wandb::WandbWriter>> {
    use crate::logging::wandb::{sanitize_run_id, WandbOptions, WandbWriter};
    let Some(cb) = config
        .trainer
        .callbacks
        .wandb
        .as_ref()
        .filter(|c| c.enabled)
    else {
        return Ok(None);
    };
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    if env("WANDB_MODE").as_deref() == Some("disabled") {
        return Ok(None);
    }
    let name = cb.name.clone().unwrap_or_else(|| "olmo-train".into());
    let base_dir = env("WANDB_DIR")
        .map(PathBuf::from)
        .or_else(|| config.trainer.work_dir.as_ref().map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from(&config.trainer.save_folder));
    let opts = WandbOptions {
        base_dir,
        run_id: env("WANDB_RUN_ID").unwrap_or_else(|| sanitize_run_id(&name)),
        display_name: Some(name),
        project: cb.project.clone().or_else(|| env("WANDB_PROJECT")),
        entity: cb.entity.clone().or_else(|| env("WANDB_ENTITY")),
        group: cb.group.clone(),
        tags: cb.tags.clone().unwrap_or_default(),
        notes: cb.notes.clone(),
        config: match &cb.config {
            Some(c) => serde_json::to_value(c).unwrap_or_default(),
            None => serde_json::to_value(config).unwrap_or_default(),
        },
    };
    if resumed {
        tracing::info!(
            "W&B: a new offline segment with run id {} (sync appends it to the same run)",
            opts.run_id
        );
    }
    WandbWriter::create(&opts).map(Some)
}

/// Joins the data-parallel group and checks that every rank resolved the same config (a hash of it,
/// broadcast from rank 0, compared everywhere, and the verdict summed so all ranks agree).
fn join_group(
    env: &DistEnv,
    config: &ExperimentConfig,
    device: Device,
) -> Result<Arc<ProcessGroup>> {
    use sha2::{Digest, Sha256};
    tracing::info!(
        "rank {} of {}: joining the group at {}:{}",
        env.rank,
        env.world_size,
        env.master_addr,
        env.master_port
    );
    let cuda = match device {
        Device::Cuda(i) => Some(i),
        _ => None,
    };
    let pg = ProcessGroup::with_cuda(env, 900, cuda)?;
    let digest = Sha256::digest(serde_json::to_vec(config).unwrap_or_default());
    let words: Vec<i64> = digest
        .chunks(8)
        .map(|c| i64::from_le_bytes(c.try_into().unwrap_or([0; 8])))
        .collect();
    let (_, differing) = pg.compare_with_root(&words)?;
    if differing > 0 {
        return Err(Error::Distributed(format!(
            "{differing} rank(s) resolved a different config than rank 0: give every rank the same command line and files"
        )));
    }
    Ok(Arc::new(pg))
}

/// What the run starts from (OLMo-core's `maybe_load_checkpoint` then `load_path`): the latest
/// checkpoint in the save folder (weights, optimizer and trainer state), unless `load_strategy: never`
/// or `no_checkpoints`; else `load_path` (weights, and the optimizer state when present; trainer state
/// only with `load_trainer_state`). Returns the trainer state to resume, if any.
fn load_start_state(
    config: &ExperimentConfig,
    save_folder: &Path,
    module: &mut TrainModule,
    is_main: bool,
) -> Result<Option<TrainerState>> {
    let t = &config.trainer;
    // Only rank 0 cleans up: another rank's "stale" folder could be rank 0's save in progress.
    for stale in layout::stale_temp_dirs(save_folder)
        .into_iter()
        .filter(|_| is_main)
    {
        tracing::warn!(
            "removing the unfinished checkpoint {} (a save was interrupted)",
            stale.display()
        );
        let _ = std::fs::remove_dir_all(&stale);
    }
    let started = std::time::Instant::now();
    if !t.no_checkpoints && t.load_strategy != LoadStrategy::Never {
        if let Some((_, dir)) = layout::latest_checkpoint(save_folder) {
            tracing::info!("loading checkpoint from {}", dir.display());
            checkpoint::load_model(&dir, module.model.named_parameters())?;
            checkpoint::load_optim(&dir, &mut module.optim)?;
            let state = checkpoint::load_trainer_state(&dir)?;
            tracing::info!(
                "checkpoint/load_duration_s={:.3}",
                started.elapsed().as_secs_f64()
            );
            return Ok(Some(state));
        }
    }
    let Some(load_path) = config.load_path.as_deref().or(t.load_path.as_deref()) else {
        if t.load_strategy == LoadStrategy::Always {
            return Err(Error::Usage(format!(
                "trainer.load_strategy is 'always' but {} has no checkpoint and no load_path is set",
                save_folder.display()
            )));
        }
        return Ok(None);
    };
    let dir = layout::resolve(Path::new(load_path)).ok_or_else(|| Error::InvalidValue {
        path: "load_path".into(),
        reason: format!("'{load_path}' is not a checkpoint (no .metadata.json and model weights) and holds none"),
    })?;
    tracing::info!(
        "loading checkpoint from {} (no checkpoint in the save folder)",
        dir.display()
    );
    checkpoint::load_model(&dir, module.model.named_parameters())?;
    if t.load_optim_state.unwrap_or(true) && dir.join(layout::OPTIM_STATE).is_file() {
        checkpoint::load_optim(&dir, &mut module.optim)?;
    }
    let with_trainer = config.load_trainer_state || t.load_trainer_state.unwrap_or(false);
    let state = if with_trainer && dir.join(layout::TRAINER_STATE).is_file() {
        Some(checkpoint::load_trainer_state(&dir)?)
    } else {
        None
    };
    tracing::info!(
        "checkpoint/load_duration_s={:.3}",
        started.elapsed().as_secs_f64()
    );
    // A fine-tuning run manages its own checkpoints: the source's list stays with the source.
    Ok(state.map(|mut s| {
        s.callbacks.remove("checkpointer");
        s
    }))
}

fn console_patterns(c: &ConsoleLoggerCallback) -> Vec<String> {
    c.metrics.clone()
}

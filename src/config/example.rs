//! The config that OLMo-core's `src/examples/llm/train.py` builds before overrides (`build_config`),
//! with the few defaults olmo-train changes on purpose (README, "Differences from OLMo-core").
use super::callbacks::{
    Callbacks, CheckpointerCallback, CometCallback, ConfigSaverCallback,
    DownstreamEvaluatorCallbackConfig, GapMonitorCallback, GpuMemoryMonitorCallback,
    LMEvaluatorCallbackConfig, ProfilerCallback, WandBCallback,
};
use super::data::{
    NumpyDataLoaderConfig, NumpyFSLDatasetConfig, NumpyPaddedFSLDatasetConfig, TokenizerConfig,
};
use super::train_module::{
    AdamWConfig, CosWithWarmup, DataParallelConfig, DataParallelType, OptimConfig,
    OptimGroupOverride, SchedulerConfig, TransformerTrainModuleConfig,
};
use super::trainer::{Duration, TrainerConfig};
use super::{DType, ExperimentConfig};
use crate::config::factories::build_factory;
use crate::error::Result;

/// Where the example's data lives unless `OLMO_DATA_ROOT` says otherwise (as in OLMo-core).
pub const DEFAULT_DATA_ROOT: &str = "http://olmo-data.org/examples/c4-en/gpt2";

/// The example script's own flags (everything else is a dotted override).
#[derive(Debug, Clone, PartialEq)]
pub struct ExampleOptions {
    pub run_name: String,
    pub model_factory: String,
    pub sequence_length: u64,
    pub save_folder: Option<String>,
    pub work_dir: Option<String>,
    /// `OLMO_DATA_ROOT`, read by the binary.
    pub data_root: Option<String>,
    /// The tokenizer of the dataset, both evaluators and (padded) the model's vocabulary: OLMo-core's
    /// `TokenizerConfig.gpt2()` unless `--tokenizer` names another.
    pub tokenizer: TokenizerConfig,
}

impl ExampleOptions {
    pub fn new(run_name: &str) -> Self {
        Self {
            run_name: run_name.to_string(),
            model_factory: "llama2_271M".into(),
            sequence_length: 2048,
            save_folder: None,
            work_dir: None,
            data_root: None,
            tokenizer: TokenizerConfig::gpt2(),
        }
    }
}

/// `build_config` of OLMo-core's example, before overrides.
pub fn build_example_config(opts: &ExampleOptions) -> Result<ExperimentConfig> {
    let save_folder = opts
        .save_folder
        .clone()
        .unwrap_or_else(|| format!("/tmp/{}", opts.run_name));
    let work_dir = opts
        .work_dir
        .clone()
        .unwrap_or_else(|| "/tmp/dataset-cache".into());
    let data_root = opts
        .data_root
        .as_deref()
        .unwrap_or(DEFAULT_DATA_ROOT)
        .trim_end_matches('/')
        .to_string();
    let tokenizer = opts.tokenizer.clone();
    let seq = opts.sequence_length;

    let model = build_factory(&opts.model_factory, tokenizer.padded_vocab_size())?;
    let dataset = NumpyFSLDatasetConfig {
        paths: Some(vec![format!("{data_root}/c4-train.00000-00099.npy")]),
        sequence_length: seq,
        tokenizer: tokenizer.clone(),
        work_dir: Some(work_dir.clone()),
        ..NumpyFSLDatasetConfig::default()
    };
    let data_loader = NumpyDataLoaderConfig {
        global_batch_size: 256 * 1024,
        seed: 0,
        num_workers: 4,
        ..Default::default()
    };
    let train_module = TransformerTrainModuleConfig {
        rank_microbatch_size: 16 * 1024,
        max_sequence_length: seq,
        optim: OptimConfig::AdamW(AdamWConfig {
            lr: 1e-3,
            group_overrides: Some(vec![OptimGroupOverride {
                params: vec!["embeddings.weight".into()],
                opts: [("weight_decay".into(), serde_yaml::Value::from(0.0))]
                    .into_iter()
                    .collect(),
            }]),
            ..AdamWConfig::default()
        }),
        // libtorch has no graph compiler: accepted, and the run says it runs eager kernels.
        compile_model: true,
        dp_config: Some(DataParallelConfig {
            name: DataParallelType::Fsdp,
            param_dtype: Some(DType::Bfloat16),
            reduce_dtype: DType::Float32,
            ..DataParallelConfig::default()
        }),
        max_grad_norm: Some(1.0),
        scheduler: Some(SchedulerConfig::CosWithWarmup(CosWithWarmup::with_warmup(
            100,
        ))),
        ..TransformerTrainModuleConfig::default()
    };
    let callbacks = Callbacks {
        gpu_monitor: Some(GpuMemoryMonitorCallback::default()),
        checkpointer: Some(CheckpointerCallback {
            save_interval: 1000,
            ephemeral_save_interval: Some(100),
            save_async: Some(true),
            ..Default::default()
        }),
        comet: Some(CometCallback {
            name: Some(opts.run_name.clone()),
            cancel_check_interval: Some(10),
            enabled: false,
            ..Default::default()
        }),
        wandb: Some(WandBCallback {
            name: Some(opts.run_name.clone()),
            cancel_check_interval: Some(10),
            enabled: false,
            ..Default::default()
        }),
        config_saver: Some(ConfigSaverCallback::default()),
        profiler: Some(ProfilerCallback {
            enabled: false,
            ..Default::default()
        }),
        lm_evaluator: Some(LMEvaluatorCallbackConfig {
            eval_dataset: Some(NumpyPaddedFSLDatasetConfig {
                paths: Some(vec![format!("{data_root}/c4-validation.00000-00008.npy")]),
                metadata: Some(vec![label_metadata("c4-validation")]),
                sequence_length: seq,
                tokenizer: tokenizer.clone(),
                work_dir: Some(work_dir),
                ..Default::default()
            }),
            eval_interval: 250,
            eval_duration: Duration::steps(50),
            ..Default::default()
        }),
        downstream_evaluator: Some(DownstreamEvaluatorCallbackConfig {
            tasks: vec!["hellaswag".into()],
            tokenizer,
            eval_interval: 250,
            ..Default::default()
        }),
        gap_monitor: Some(GapMonitorCallback {
            enabled: false,
            dump_gradients: Some(false),
            ..Default::default()
        }),
        ..Callbacks::default()
    };
    let trainer = TrainerConfig {
        save_folder,
        save_overwrite: true,
        metrics_collect_interval: 5,
        cancel_check_interval: 5,
        callbacks,
        ..TrainerConfig::default()
    };
    Ok(ExperimentConfig {
        model,
        dataset,
        data_loader,
        trainer,
        train_module,
        init_seed: 12536,
        load_path: None,
        load_trainer_state: false,
        dist_timeout: super::default_dist_timeout(),
    })
}

/// A dataset path's metadata entry `{label: ...}`, which the LM evaluator reports metrics under.
fn label_metadata(label: &str) -> serde_yaml::Value {
    let mut map = serde_yaml::Mapping::new();
    map.insert("label".into(), label.into());
    serde_yaml::Value::Mapping(map)
}

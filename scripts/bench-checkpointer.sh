#!/usr/bin/env bash
# What OLMo-core's default checkpointer (save_interval 1000, ephemeral_save_interval 100, save_async true)
# costs in steps where no save is due, against `--trainer.no_checkpoints`: FACTORY (default olmo2_14M) on
# the tokenized demo corpus, PAIRS interleaved pairs (the order alternates), each side run for 1 and for
# STEPS+1 steps. Reports per side the median steady tokens/s (wall clock, OLMo-core's speed-monitor
# average) and the median CPU seconds per step ((user+sys of the long run - the short run) / STEPS: the
# saves at step 0 and at the end cancel out, and a shared VM's stolen time does not count), and the median
# of the per-pair ratios (the two runs of a pair are adjacent, so they share most of a noisy VM's drift).
# CONTROL=1 runs both sides with --trainer.no_checkpoints: what the same pairs show when nothing differs.
set -euo pipefail
cd "$(dirname "$0")/.."
FACTORY=${FACTORY:-olmo2_14M}
STEPS=${STEPS:-20}
PAIRS=${PAIRS:-4}
THREADS=${THREADS:-2}
OUT=${OUT:-/tmp/olmo-train-bench-checkpointer}
CONTROL=${CONTROL:-0}
scripts/setup.sh
cargo build --release --quiet
TOKENS=$(scripts/demo-tokens.sh "$OUT/tokens")
export OMP_NUM_THREADS=$THREADS MKL_NUM_THREADS=$THREADS

# run MODE STEPS: prints "tokens/s cpu_seconds" of one run (MODE: off or default).
run() {
    local checkpoints=(--trainer.no_checkpoints)
    [ "$1" = default ] && [ "$CONTROL" != 1 ] &&
        checkpoints=(--trainer.callbacks.checkpointer="{save_interval: 1000, ephemeral_save_interval: 100, save_async: true}")
    rm -rf "$OUT/run"
    /usr/bin/time -f "%U %S" -o "$OUT/time" target/release/olmo-train bench --model-factory="$FACTORY" --tokenizer dolma2 \
        --config configs/olmo2-1M-cpu.yaml --dataset.paths="[$TOKENS]" "${checkpoints[@]}" \
        --trainer.max_duration="{value: $2, unit: steps}" --trainer.metrics_collect_interval=1 \
        --save-folder="$OUT/run" --work-dir="$OUT/run/cache" >/dev/null 2>"$OUT/log" ||
        { tail -1 "$OUT/log" >&2; exit 1; }
    python3 - "$OUT/run/metrics.jsonl" "$OUT/time" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
user, system = map(float, open(sys.argv[2]).read().split()[-2:])
print(rows[-1].get("throughput/device/TPS (actual avg)", 0), user + system)
PY
}

declare -A tps cpu
for i in $(seq "$PAIRS"); do
    order=(off default)
    [ $((i % 2)) = 0 ] && order=(default off)
    for mode in "${order[@]}"; do
        read -r _ short <<<"$(run "$mode" 1)"
        read -r t long <<<"$(run "$mode" $((STEPS + 1)))"
        tps[$mode]+="$t "
        cpu[$mode]+="$(python3 -c "print(($long - $short) / $STEPS)") "
    done
done
python3 - "${tps[off]}" "${cpu[off]}" "${tps[default]}" "${cpu[default]}" "$FACTORY" "$PAIRS" "$STEPS" "$CONTROL" <<'PY'
import statistics, sys
def vals(s): return [float(v) for v in s.split()]
off_t, off_c, on_t, on_c = (vals(a) for a in sys.argv[1:5])
factory, pairs, steps, control = sys.argv[5:9]
m = statistics.median
control = " (CONTROL: both sides --trainer.no_checkpoints)" if control == "1" else ""
print(f"{factory}, {pairs} interleaved pairs of {steps} steps{control}:")
print(f"  --trainer.no_checkpoints: {m(off_t):.0f} tokens/s, {m(off_c):.3f} CPU s/step   (runs: {' '.join(f'{v:.0f}' for v in off_t)})")
print(f"  default checkpointer:     {m(on_t):.0f} tokens/s, {m(on_c):.3f} CPU s/step   (runs: {' '.join(f'{v:.0f}' for v in on_t)})")
print(f"  default / off: tokens/s {m(on_t) / m(off_t):.3f}, CPU per step {m(on_c) / m(off_c):.3f}")
pair_t = [a / b for a, b in zip(on_t, off_t)]
pair_c = [a / b for a, b in zip(on_c, off_c)]
print(f"  median per-pair ratio: tokens/s {m(pair_t):.3f}, CPU per step {m(pair_c):.3f}"
      f"   (tokens/s ratios: {' '.join(f'{v:.3f}' for v in pair_t)})")
PY

#!/usr/bin/env bash
# One command, one table: olmo-train against ai2-olmo-core 3.0.0 (and the Dolma toolkit for tokenization) on
# this machine, the reference environments installed from scripts/reference/requirements/*.lock when missing.
# Each benchmark script runs both sides (alternating where it loops); this runs each script REPS times and
# prints the median of every number with the ratio (scripts/bench-table.py). Sections: --dry-run wall time,
# tokenization, data loading, training (olmo2_1M and olmo2_14M: tokens/s, time to first step, peak RSS,
# start-up), checkpoint save/load (against a plain copy), downstream evaluation (olmo-eval path).
# A side that fails shows its reason in the table, and the suite exits 1; the logs stay in LOG.
set -euo pipefail
cd "$(dirname "$0")/.."
REPS=${REPS:-3}
LOG=${LOG:-$(mktemp -d /tmp/olmo-train-bench-suite.XXXXXX)}
mkdir -p "$LOG"
START=$(date +%s)
scripts/setup.sh
scripts/reference/setup-ref.sh ref dolma
cargo build --release --quiet

# bench NAME [VAR=value...] SCRIPT: stdout appended to LOG/NAME, stderr to LOG/NAME.err. A failing script
# does not stop the suite: its failure reaches the table through those logs.
bench() {
    local name=$1
    shift
    env "$@" >>"$LOG/$name" 2>>"$LOG/$name.err" || echo "bench-vs-olmo-core: $* failed (log $LOG/$name)" >&2
}
for _ in $(seq "$REPS"); do
    bench dry N=5 scripts/bench-dry-run.sh
    bench tok COPIES=4 scripts/bench-tokenize.sh
    bench data scripts/bench-data.sh
    bench train STEPS=12 scripts/bench-train.sh
done
bench ckpt scripts/bench-checkpoint.sh
bench downstream scripts/bench-downstream.sh
python3 scripts/bench-table.py "$LOG" "$(($(date +%s) - START))" "$REPS"

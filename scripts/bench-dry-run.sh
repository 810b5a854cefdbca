#!/usr/bin/env bash
# Wall time of `--dry-run` (process start to exit): olmo-train's release binary against OLMo-core's
# example dry-run (the same build + merge + print, run by scripts/reference/olmo_core_config.py on
# ai2-olmo-core 3.0.0), alternating, N runs each; prints the medians and the ratio.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-10}
ARGS=(tutorial-run-01 --data_loader.prefetch_factor=4 --trainer.callbacks.wandb.enabled=true)
scripts/setup.sh
scripts/reference/setup-ref.sh
cargo build --release --quiet

now() { date +%s.%N; }
ours=(); ref=()
for _ in $(seq "$N"); do
    t0=$(now); target/release/olmo-train "${ARGS[@]}" --dry-run >/dev/null; t1=$(now)
    ours+=("$(awk "BEGIN{print $t1 - $t0}")")
    t0=$(now); .venv-ref/bin/python scripts/reference/olmo_core_config.py dry-run "${ARGS[@]}" >/dev/null 2>&1; t1=$(now)
    ref+=("$(awk "BEGIN{print $t1 - $t0}")")
done
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
mo=$(median "${ours[@]}"); mr=$(median "${ref[@]}")
printf 'dry-run wall time, median of %d (s): olmo-train %.3f   OLMo-core %.3f   speed-up %.1fx\n' "$N" "$mo" "$mr" "$(awk "BEGIN{print $mr / $mo}")"

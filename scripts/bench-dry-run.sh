#!/usr/bin/env bash
# Wall time of `--dry-run` (process start to exit): olmo-train's release binary against OLMo-core's
# example dry-run (the same build + merge + print, run by scripts/reference/olmo_core_config.py on
# ai2-olmo-core 3.0.0), alternating, N runs each; prints each side's median and the ratio.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/bench-side.sh
N=${N:-10}
ARGS=(tutorial-run-01 --data_loader.prefetch_factor=4 --trainer.callbacks.wandb.enabled=true)
scripts/setup.sh
scripts/reference/setup-ref.sh
cargo build --release --quiet

now() { date +%s.%N; }
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
ours=(); ref=(); ours_ok=1; ref_ok=1
for _ in $(seq "$N"); do
    if [ "$ours_ok" = 1 ]; then
        t0=$(now); side "olmo-train dry-run" target/release/olmo-train "${ARGS[@]}" --dry-run >/dev/null; t1=$(now)
        ours_ok=$SIDE_OK; [ "$ours_ok" = 1 ] && ours+=("$(awk "BEGIN{print $t1 - $t0}")")
    fi
    if [ "$ref_ok" = 1 ]; then
        t0=$(now); side "OLMo-core dry-run" .venv-ref/bin/python scripts/reference/olmo_core_config.py dry-run "${ARGS[@]}" >/dev/null; t1=$(now)
        ref_ok=$SIDE_OK; [ "$ref_ok" = 1 ] && ref+=("$(awk "BEGIN{print $t1 - $t0}")")
    fi
done
[ "$ours_ok" = 1 ] && printf 'olmo-train dry-run: %.3f s (median of %d)\n' "$(median "${ours[@]}")" "$N"
[ "$ref_ok" = 1 ] && printf 'OLMo-core dry-run: %.3f s (median of %d)\n' "$(median "${ref[@]}")" "$N"
if [ "$ours_ok" = 1 ] && [ "$ref_ok" = 1 ]; then
    printf 'speed-up %.1fx\n' "$(awk "BEGIN{print $(median "${ref[@]}") / $(median "${ours[@]}")}")"
fi
bench_exit

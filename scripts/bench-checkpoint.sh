#!/usr/bin/env bash
# Checkpoint save and load throughput for a 1B-parameter fp32 model state (4 GB), against a plain file
# copy (plus fsync) of the same bytes on the same disk: rounds alternate, each timed part starts after
# `sync`, medians (ROUNDS, default 3).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/bench-side.sh
scripts/setup.sh
DIR=${DIR:-/tmp/olmo-train-bench-ckpt}
PARAMS=${PARAMS:-1000000000}
# The checkpoint and its plain copy need about 8 bytes per parameter; say so instead of filling the disk.
mkdir -p "$DIR"
need_kb=$(( PARAMS * 9 / 1024 ))
free_kb=$(df -Pk "$DIR" | awk 'NR == 2 {print $4}')
if [ "$free_kb" -lt "$need_kb" ]; then
    echo "bench-checkpoint: $DIR has $((free_kb / 1048576)) GiB free, $((need_kb / 1048576)) GiB needed; set DIR or PARAMS" >&2
    exit 1
fi
side "checkpoint" cargo bench --quiet --bench checkpoint_io -- "$DIR" "$PARAMS"
bench_exit

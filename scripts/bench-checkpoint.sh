#!/usr/bin/env bash
# Checkpoint save and load throughput for a 1B-parameter fp32 model state (4 GB), against a plain file
# copy (plus fsync) of the same bytes on the same disk.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo bench --quiet --bench checkpoint_io -- "${DIR:-/tmp/olmo-train-bench-ckpt}" "${PARAMS:-1000000000}" 2>/dev/null

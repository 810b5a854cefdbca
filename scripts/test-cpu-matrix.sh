#!/usr/bin/env bash
# Runs every test under each arithmetic path that differs between x86-64 CPUs (MKL's code branch, ATen's
# kernel capability), so one machine exercises what AMD and Intel machines would compute. The tests that
# compare against stored reference numbers pin their own arithmetic (tests/common/pinned.rs); this checks
# that they do and that no other test depends on the CPU.
#     scripts/test-cpu-matrix.sh            # the five settings below, then a summary; exit 1 if any failed
set -uo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh wandb==0.31.0 tensorboard==2.21.0 >/dev/null
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
settings=("" "MKL_CBWR=AVX2" "MKL_CBWR=AVX512" "ATEN_CPU_CAPABILITY=avx2" "ATEN_CPU_CAPABILITY=default")
grep -q avx512f /proc/cpuinfo || settings=("${settings[@]/MKL_CBWR=AVX512}")
cargo test --no-run --lib --bins --tests --examples --quiet || exit 1
failed=0
summary=()
for s in "${settings[@]}"; do
    label=${s:-"(no pinning variables)"}
    echo "== $label"
    if env $s cargo test --lib --bins --tests --examples --quiet -- --test-threads=2 >"target/cpu-matrix.log" 2>&1; then
        summary+=("ok      $label")
    else
        summary+=("FAILED  $label (see below)")
        grep -E "^test .* FAILED|panicked" target/cpu-matrix.log | head -5
        failed=1
    fi
done
printf '%s\n' "${summary[@]}"
exit $failed

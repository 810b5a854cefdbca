#!/usr/bin/env bash
# GPU throughput of the release binary, for a machine that has python3 with torch 2.11.0 and no network
# (build here, carry target/release/olmo-train there). For olmo2_190M and olmo2_1B at sequence length 4096
# with bf16 autocast (OLMo-core's `autocast_precision: bfloat16`) on synthetic tokens it prints tokens/s per
# device, MFU (OLMo-core's formula: num_flops_per_token x TPS / (0.5 x the GPU's dense bf16 peak)), peak GPU
# memory (nvidia-smi) and the data-loading share; with several GPUs, one DDP run over all of them (NCCL).
# About 4 minutes on one H100. Smoke test on a CPU: DEVICE=cpu FACTORIES=olmo2_1M SEQ=256 STEPS=3 MICRO=1.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-target/release/olmo-train}
OUT=${OUT:-/tmp/olmo-train-gpu-bench}
FACTORIES=${FACTORIES:-olmo2_190M olmo2_1B}
SEQ=${SEQ:-4096}
STEPS=${STEPS:-20}
DEVICE=${DEVICE:-cuda}
MICRO=${MICRO:-2}          # instances per micro-batch
BATCH=${BATCH:-16}         # instances per rank batch
PY=${PYTHON:-python3}
TORCH_LIB=$($PY -c "import os, torch; print(os.path.join(os.path.dirname(torch.__file__), 'lib'))")
export LD_LIBRARY_PATH="$TORCH_LIB:${LD_LIBRARY_PATH:-}"
mkdir -p "$OUT"
# uint16 ids are all below dolma2's vocabulary (100278): random bytes are valid tokens.
[ -f "$OUT/tokens.npy" ] || head -c $((2 * 64 * 1024 * 1024)) /dev/urandom >"$OUT/tokens.npy"
NGPU=0
if [ "$DEVICE" = cuda ]; then
    NGPU=$($PY -c "import torch; print(torch.cuda.device_count())")
    GPU=$($PY -c "import torch; print(torch.cuda.get_device_name(0))")
    # OLMo-core's SpeedMonitor peaks (dense bf16, halved); H200 has H100 SXM's compute.
    PEAK=$(python3 -c "
n = '''$GPU'''
p = 1979e12
if 'H100' in n and 'NVL' in n: p = 1671e12
elif 'H100' in n and 'PCIe' in n: p = 1513e12
elif 'B200' in n: p = 4.5e15
elif 'H100' not in n and 'H200' not in n: p = 624e12
print(p * 0.5)")
    echo "device: $NGPU x $GPU (MFU peak $PEAK FLOP/s)"
fi

run() { # name ranks factory
    local name=$1 ranks=$2 factory=$3
    local args=("$name" --model-factory="$factory" --sequence-length="$SEQ" --dataset.paths="[$OUT/tokens.npy]"
        --dataset.dtype=uint16 --train_module.autocast_precision=bfloat16
        --train_module.max_sequence_length="$SEQ" --data_loader.global_batch_size=$((SEQ * BATCH * ranks))
        --train_module.rank_microbatch_size=$((SEQ * MICRO)) --trainer.max_duration="{value: $STEPS, unit: steps}"
        --trainer.metrics_collect_interval=5 --trainer.no_checkpoints --data_loader.num_workers=4
        --trainer.callbacks.lm_evaluator.enabled=false --trainer.callbacks.downstream_evaluator.enabled=false
        --save-folder="$OUT/$name" --work-dir="$OUT/cache")
    # On GPUs each rank takes cuda:LOCAL_RANK by itself.
    if [ "$DEVICE" = cpu ]; then args+=(--trainer.device=cpu); fi
    if [ "$ranks" -gt 1 ]; then args=(launch --nproc-per-node="$ranks" "${args[@]}"); fi
    rm -rf "${OUT:?}/$name"
    local smi=""
    if command -v nvidia-smi >/dev/null; then
        nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 500 >"$OUT/$name.mem" &
        smi=$!
    fi
    "$BIN" "${args[@]}" >"$OUT/$name.log" 2>&1 || { echo "$name failed:"; tail -5 "$OUT/$name.log"; }
    if [ -n "$smi" ]; then kill "$smi" 2>/dev/null || true; fi
    python3 - "$OUT" "$name" "$ranks" "${PEAK:-0}" <<'PY'
import json, re, sys
out, name, ranks, peak = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
try:
    rows = [json.loads(l) for l in open(f"{out}/{name}/metrics.jsonl")]
except OSError:
    sys.exit(0)
last = rows[-1]
tps = last.get("throughput/device/TPS (actual avg)", float("nan"))
dl = sum(r.get("throughput/device/data loading (%)", 0) for r in rows[1:]) / max(1, len(rows) - 1)
m = re.search(r"([\d]+) training FLOPs per token", open(f"{out}/{name}.log").read())
flops = int(m.group(1)) if m else 0
mfu = f"{100 * flops * tps / peak:.1f}%" if peak and flops else "n/a (CPU)"
mem = "n/a"
try:
    vals = [int(v) for line in open(f"{out}/{name}.mem") for v in line.split(",") if v.strip().isdigit()]
    mem = f"{max(vals) / 1024:.1f} GiB" if vals else "n/a"
except OSError:
    pass
print(f"{name}: {tps:,.0f} tokens/s per device, MFU {mfu}, peak GPU memory {mem}, data loading {dl:.2f}%, {ranks} rank(s)")
PY
}

for f in $FACTORIES; do
    run "$f-bf16-seq$SEQ" 1 "$f"
done
if [ "$NGPU" -gt 1 ]; then
    run "olmo2_190M-ddp$NGPU" "$NGPU" olmo2_190M
fi

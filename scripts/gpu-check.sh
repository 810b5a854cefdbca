#!/usr/bin/env bash
# The GPU script: correctness and throughput of a carried release binary on a machine with a GPU and
# python3's torch 2.11.0 (no build, no network). Every check prints one summary line, OK, FAIL with the
# reason, or SKIP, and runs under its own timeout inside one time budget, so a crash, an OOM or a hang
# costs one line, never the report. Results: $OUT/summary.txt, logs beside it.
#
#   GPU:  OUT=/tmp/gpu-check scripts/gpu-check.sh          (BIN defaults to target/release/olmo-train)
#   CPU:  DEVICE=cpu scripts/gpu-check.sh                  (the same checks, tiny; `make test` runs it)
#
# Checks: the binary's libraries (ldd); CUDA against CPU losses over STEPS steps from one step-0
# checkpoint written by the CUDA run (CUDA draws its initial weights from its own generator, as OLMo-core
# does), fp32 and bf16 autocast; resume from a CUDA checkpoint; `olmo-train eval` on CUDA against CPU;
# which SDPA kernel torch picks for our shapes; activation checkpointing against none; tokens/s, MFU and
# peak memory of olmo2_190M and olmo2_1B at 4096 in bf16 (olmo2_1B also with every block checkpointed,
# and under OLMo-core's default `dp_config`, FSDP with bf16 parameters); sharded data parallel (fsdp) on
# one rank against the plain path (fp32: the same losses) and with bf16 parameters against the CPU;
# 2-rank data parallel, DDP and FSDP, against one process (Gloo on the CPU, NCCL with 2+ GPUs) and, with
# 2+ GPUs, its throughput. The plain checks name `dp_config: null` (one process, no sharding), since the
# example's default is OLMo-core's FSDP.
set -uo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-target/release/olmo-train}
OUT=${OUT:-/tmp/olmo-train-gpu-check}
DEVICE=${DEVICE:-cuda}
PY=${PYTHON:-python3}
BUDGET_S=${BUDGET_S:-480}
START=$SECONDS
mkdir -p "$OUT"
SUMMARY="$OUT/summary.txt"
: >"$SUMMARY"
FAILED=0

if [ "$DEVICE" = cpu ]; then
    FACTORY=olmo2_1M SEQ=${SEQ:-128} STEPS=${STEPS:-6} SPEED_FACTORIES=${SPEED_FACTORIES:-olmo2_1M}
    SPEED_SEQ=${SPEED_SEQ:-128} SPEED_STEPS=${SPEED_STEPS:-3} MICRO=1 BATCH=2 NGPU=0 PEAK=0
else
    FACTORY=olmo2_14M SEQ=${SEQ:-512} STEPS=${STEPS:-20} SPEED_FACTORIES=${SPEED_FACTORIES:-olmo2_190M olmo2_1B}
    SPEED_SEQ=${SPEED_SEQ:-4096} SPEED_STEPS=${SPEED_STEPS:-20} MICRO=${MICRO:-2} BATCH=${BATCH:-16}
    TORCH_LIB=$($PY -c "import os, torch; print(os.path.join(os.path.dirname(torch.__file__), 'lib'))")
    export LD_LIBRARY_PATH="$TORCH_LIB:${LD_LIBRARY_PATH:-}"
    NGPU=$($PY -c "import torch; print(torch.cuda.device_count())" 2>/dev/null || echo 0)
    GPU=$($PY -c "import torch; print(torch.cuda.get_device_name(0))" 2>/dev/null || echo none)
    # OLMo-core's SpeedMonitor peaks (dense bf16), halved as its MFU formula does; H200 has H100 SXM's compute.
    case "$GPU" in
        *H100*NVL*) PEAK=1671e12 ;; *H100*PCIe*) PEAK=1513e12 ;; *H100* | *H200*) PEAK=1979e12 ;;
        *B200*) PEAK=4500e12 ;; *) PEAK=624e12 ;;
    esac
    PEAK=$($PY -c "print($PEAK * 0.5)")
    echo "device: $NGPU x $GPU, torch $($PY -c 'import torch; print(torch.__version__, torch.version.cuda)')," \
        "driver $(nvidia-smi --query-gpu=driver_version --format=csv,noheader 2>/dev/null | head -1)" | tee -a "$SUMMARY"
fi
RESUME_AT=$((STEPS / 2))
LAUNCH=() # `launch --nproc-per-node=N` for a data-parallel run

report() { # name status detail
    printf '%-22s %-4s %s\n' "$1" "$2" "$3" | tee -a "$SUMMARY"
    [ "$2" = FAIL ] && FAILED=1
    return 0
}

# Runs a command under the check's timeout, clipped to what is left of the budget; its output goes to
# $OUT/NAME.log. Returns 0, the command's status, or 124 on timeout; 125 when the budget is spent.
timed() { # name limit_s cmd...
    local name=$1 limit=$2
    shift 2
    local left=$((BUDGET_S - (SECONDS - START)))
    if [ "$left" -lt 15 ]; then return 125; fi
    [ "$limit" -gt "$left" ] && limit=$left
    timeout --kill-after=10 "$limit" "$@" >"$OUT/$name.log" 2>&1
}

why() { # name status: the reason a run failed, from its log
    local name=$1 rc=$2
    case $rc in
        124 | 137) echo "timed out ($(tail -1 "$OUT/$name.log" | cut -c1-150))" ;;
        125) echo "time budget spent" ;;
        *) echo "exit $rc: $(grep -v '^\s*$' "$OUT/$name.log" | tail -1 | cut -c1-200)" ;;
    esac
}

train() { # name limit_s device factory seq steps extra-args...
    local name=$1 limit=$2 dev=$3 factory=$4 seq=$5 steps=$6
    shift 6
    rm -rf "${OUT:?}/$name"
    timed "$name" "$limit" "$BIN" ${LAUNCH[@]+"${LAUNCH[@]}"} "$name" --model-factory="$factory" --tokenizer dolma2 --trainer.device="$dev" \
        --sequence-length="$seq" --dataset.paths="[$OUT/tokens.npy]" --dataset.dtype=uint16 \
        --train_module.max_sequence_length="$seq" --trainer.max_duration="{value: $steps, unit: steps}" \
        --trainer.callbacks.lm_evaluator.enabled=false --trainer.callbacks.downstream_evaluator.enabled=false \
        --save-folder="$OUT/$name" --work-dir="$OUT/cache" "$@"
}

run_check() { # name: report a failed run, or return 0 when it ran
    local name=$1 rc=$2
    if [ "$rc" -eq 125 ]; then report "$name" SKIP "time budget spent"; return 1; fi
    if [ "$rc" -ne 0 ]; then report "$name" FAIL "$(why "$name" "$rc")"; return 1; fi
    return 0
}

compare() { # name subcommand args...
    local name=$1 detail
    shift
    if detail=$($PY scripts/gpu_check_compare.py "$@" 2>&1); then report "$name" OK "$detail"
    else report "$name" FAIL "$detail"; fi
}

# --- the binary's libraries ---
if ldd_out=$(ldd "$BIN" 2>&1) && ! grep -q "not found" <<<"$ldd_out"; then
    report ldd OK "all libraries found; needs up to $(objdump -T "$BIN" 2>/dev/null |
        grep -oE 'GLIBC_[0-9.]+' | sort -uV | tail -1), host has $(ldd --version | head -1 | grep -oE '[0-9.]+$')"
else
    report ldd FAIL "$(grep -E 'not found|version' <<<"$ldd_out" | head -2 | tr '\n' ' ')"
fi

# Throughput reads random uint16 ids (all below dolma2's vocabulary, 100278). The correctness runs read
# documents a model can learn (a noisy walk over 512 ids, dolma2's EOS between them; uint32 as dolma2 needs)
# so that their losses move.
[ -f "$OUT/tokens.npy" ] || head -c $((2 * 32 * 1024 * 1024)) /dev/urandom >"$OUT/tokens.npy"
$PY - "$OUT" <<'PY'
import array, random, sys
for name, n, seed in (("docs.npy", 1 << 20, 1), ("val.npy", 1 << 16, 2)):
    rng, ids = random.Random(seed), array.array("I")
    while len(ids) < n:
        x = rng.randrange(512)
        for _ in range(rng.randrange(50, 300)):
            x = (7 * x + 3 + rng.randrange(4)) % 512
            ids.append(1000 + x)
        ids.append(100257)
    open(f"{sys.argv[1]}/{name}", "wb").write(ids[:n].tobytes())
PY
[ $? -eq 0 ] || report data FAIL "could not write the token files under $OUT"

# --- correctness: one step-0 checkpoint, then CUDA against CPU ---
SMALL=(--train_module.dp_config=null --dataset.paths="[$OUT/docs.npy]" --dataset.dtype=uint32
    --data_loader.global_batch_size=$((SEQ * 8))
    --train_module.rank_microbatch_size=$((SEQ * 4)) --train_module.scheduler=null
    --train_module.optim.lr=0.002 --trainer.metrics_collect_interval=1 --data_loader.num_workers=1)
CKPT=(--trainer.callbacks.checkpointer.save_interval="$RESUME_AT"
    --trainer.callbacks.checkpointer.ephemeral_save_interval=null)
BASE=dev-fp32
train "$BASE" 240 "$DEVICE" "$FACTORY" "$SEQ" "$STEPS" "${SMALL[@]}" "${CKPT[@]}"
if run_check "$BASE" $?; then
    report "$BASE" OK "$FACTORY, $STEPS steps, step0/step$RESUME_AT/step$STEPS saved"
    train cpu-fp32 240 cpu "$FACTORY" "$SEQ" "$STEPS" "${SMALL[@]}" --trainer.no_checkpoints \
        --load-path="$OUT/$BASE/step0"
    run_check cpu-fp32 $? && compare "fp32 vs cpu" losses "$OUT/$BASE/metrics.jsonl" "$OUT/cpu-fp32/metrics.jsonl" 1e-3

    train dev-bf16 240 "$DEVICE" "$FACTORY" "$SEQ" "$STEPS" "${SMALL[@]}" --trainer.no_checkpoints \
        --train_module.autocast_precision=bfloat16 --load-path="$OUT/$BASE/step0"
    run_check dev-bf16 $? &&
        compare "bf16 vs cpu fp32" losses "$OUT/dev-bf16/metrics.jsonl" "$OUT/cpu-fp32/metrics.jsonl" 3e-3

    # Activation checkpointing (every block recomputed in backward) against the same bf16 run without.
    train ac-bf16 240 "$DEVICE" "$FACTORY" "$SEQ" "$STEPS" "${SMALL[@]}" --trainer.no_checkpoints \
        --train_module.autocast_precision=bfloat16 --load-path="$OUT/$BASE/step0" \
        --train_module.ac_config="{mode: full}"
    run_check ac-bf16 $? &&
        compare "ac vs no ac" losses "$OUT/ac-bf16/metrics.jsonl" "$OUT/dev-bf16/metrics.jsonl" 1e-4

    train resume 240 "$DEVICE" "$FACTORY" "$SEQ" "$STEPS" "${SMALL[@]}" --trainer.no_checkpoints \
        --load-path="$OUT/$BASE/step$RESUME_AT" --trainer.load_trainer_state=true
    run_check resume $? &&
        compare "resume from step$RESUME_AT" losses "$OUT/resume/metrics.jsonl" "$OUT/$BASE/metrics.jsonl" 1e-5 $((RESUME_AT + 1))

    # Documents and sliding windows: variable-length flash attention (the default on a GPU) against
    # SDPA with the explicit mask (`backend: torch`), bf16, from the same step-0 checkpoint.
    MASKED=(--dataset.generate_doc_lengths=true
        --model.block.sequence_mixer.sliding_window="{pattern: [$((SEQ / 4)), -1], force_full_attention_on_first_layer: false, force_full_attention_on_last_layer: true}"
        --train_module.autocast_precision=bfloat16 --trainer.no_checkpoints --load-path="$OUT/$BASE/step0")
    train docs-flash 240 "$DEVICE" "$FACTORY" "$SEQ" "$STEPS" "${SMALL[@]}" "${MASKED[@]}"
    flash_rc=$?
    train docs-masked 240 "$DEVICE" "$FACTORY" "$SEQ" "$STEPS" "${SMALL[@]}" "${MASKED[@]}" \
        --model.block.sequence_mixer.backend=torch
    if run_check docs-flash $flash_rc && run_check docs-masked $?; then
        if [ "$DEVICE" = cpu ] || grep -q "variable-length flash" "$OUT/docs-flash.log"; then
            compare "varlen vs masked" losses "$OUT/docs-flash/metrics.jsonl" "$OUT/docs-masked/metrics.jsonl" 5e-3
        else
            report "varlen vs masked" FAIL "the flash run never took variable-length flash attention"
        fi
    fi

    # Sharded data parallel on one rank: fp32 takes the plain path's arithmetic unit by unit (the same
    # losses); bf16 parameters (OLMo-core's default dp_config) follow the CPU's fp32 losses as autocast does.
    train fsdp-fp32 240 "$DEVICE" "$FACTORY" "$SEQ" "$STEPS" "${SMALL[@]}" --trainer.no_checkpoints \
        --train_module.dp_config="{name: fsdp}" --load-path="$OUT/$BASE/step0"
    run_check fsdp-fp32 $? &&
        compare "fsdp vs plain" losses "$OUT/fsdp-fp32/metrics.jsonl" "$OUT/$BASE/metrics.jsonl" 1e-6
    train fsdp-bf16 240 "$DEVICE" "$FACTORY" "$SEQ" "$STEPS" "${SMALL[@]}" --trainer.no_checkpoints \
        --train_module.dp_config="{name: fsdp, param_dtype: bfloat16}" --load-path="$OUT/$BASE/step0"
    run_check fsdp-bf16 $? &&
        compare "fsdp bf16 vs cpu fp32" losses "$OUT/fsdp-bf16/metrics.jsonl" "$OUT/cpu-fp32/metrics.jsonl" 3e-3

    for d in dev cpu; do
        rm -f "$OUT/eval-$d.json"
        timed "eval-$d" 180 "$BIN" eval "$OUT/$BASE/step$STEPS" --lm-sets "val=$OUT/val.npy" \
            --device "$([ $d = dev ] && echo "$DEVICE" || echo cpu)" --output "$OUT/eval-$d.json"
        run_check "eval-$d" $? || continue
    done
    if [ -f "$OUT/eval-dev.json" ] && [ -f "$OUT/eval-cpu.json" ]; then
        compare "eval vs cpu" eval "$OUT/eval-dev.json" "$OUT/eval-cpu.json" 1e-4
    fi

    # Greedy generation from the trained checkpoint, on the device and on the CPU: the same tokens.
    printf '%s\n' "In the beginning" "And the LORD spake unto Moses, saying" >"$OUT/prompts.txt"
    for d in dev cpu; do
        rm -f "$OUT/generate-$d.jsonl"
        timed "generate-$d" 120 "$BIN" generate "$OUT/$BASE/step$STEPS" --prompts-file "$OUT/prompts.txt" \
            --max-new-tokens 32 --device "$([ $d = dev ] && echo "$DEVICE" || echo cpu)" --output "$OUT/generate-$d.jsonl"
        run_check "generate-$d" $? || continue
    done
    if [ -f "$OUT/generate-dev.jsonl" ] && [ -f "$OUT/generate-cpu.jsonl" ]; then
        compare "generate vs cpu" generate "$OUT/generate-dev.jsonl" "$OUT/generate-cpu.jsonl" 8
    fi

    # Data parallel against one process: the same global batch over 2 ranks (NCCL on GPUs, Gloo on the
    # CPU), from the same step-0 checkpoint.
    if [ "$DEVICE" = cpu ] || [ "$NGPU" -gt 1 ]; then
        LAUNCH=(launch --nproc-per-node=2 --master-port=$((20000 + RANDOM % 20000)))
        train ddp2 240 "$DEVICE" "$FACTORY" "$SEQ" "$STEPS" "${SMALL[@]}" --trainer.no_checkpoints \
            --load-path="$OUT/$BASE/step0"
        ddp_rc=$?
        LAUNCH=()
        run_check ddp2 $ddp_rc &&
            compare "ddp2 vs one process" losses "$OUT/ddp2/metrics.jsonl" "$OUT/$BASE/metrics.jsonl" 1e-4
        LAUNCH=(launch --nproc-per-node=2 --master-port=$((20000 + RANDOM % 20000)))
        train fsdp2 240 "$DEVICE" "$FACTORY" "$SEQ" "$STEPS" "${SMALL[@]}" --trainer.no_checkpoints \
            --train_module.dp_config="{name: fsdp}" --load-path="$OUT/$BASE/step0"
        fsdp_rc=$?
        LAUNCH=()
        run_check fsdp2 $fsdp_rc &&
            compare "fsdp2 vs one process" losses "$OUT/fsdp2/metrics.jsonl" "$OUT/$BASE/metrics.jsonl" 1e-4
    else
        report "ddp2 vs one process" SKIP "needs 2 GPUs, found $NGPU"
        report "fsdp2 vs one process" SKIP "needs 2 GPUs, found $NGPU"
    fi
fi

# --- a mixture of experts: the device against the CPU from the same step-0 checkpoint (fp32) ---
MOE=(--model.name=moe --model.block.name=moe_reordered_norm --model.block.feed_forward=null
    "--model.block.feed_forward_moe={name: dropless, num_experts: 4, hidden_size: 32, router: {top_k: 2}, z_loss_weight: 0.001}")
train moe-dev 240 "$DEVICE" "$FACTORY" "$SEQ" "$STEPS" "${SMALL[@]}" "${MOE[@]}" \
    --trainer.callbacks.checkpointer.save_interval=1000 --trainer.callbacks.checkpointer.ephemeral_save_interval=null
if run_check moe-dev $?; then
    train moe-cpu 240 cpu "$FACTORY" "$SEQ" "$STEPS" "${SMALL[@]}" "${MOE[@]}" --trainer.no_checkpoints \
        --load-path="$OUT/moe-dev/step0"
    run_check moe-cpu $? && compare "moe vs cpu" losses "$OUT/moe-dev/metrics.jsonl" "$OUT/moe-cpu/metrics.jsonl" 1e-3
fi

# --- which attention kernel ---
if [ "$DEVICE" = cpu ]; then
    report sdpa SKIP "no GPU"
else
    timed sdpa 90 "$PY" scripts/gpu_check_sdpa.py "$SPEED_SEQ" "$MICRO"
    rc=$?
    if [ $rc -eq 125 ]; then report sdpa SKIP "time budget spent"
    else
        while read -r line; do report sdpa "$([ $rc -eq 0 ] && echo OK || echo FAIL)" "$line"; done \
            < <(grep -E '^(olmo|gqa)' "$OUT/sdpa.log" || why sdpa $rc)
    fi
fi

# --- throughput, bf16 autocast, OLMo-core's callbacks except the checkpointer: a final save of olmo2_1B
# (19 GB with its optimizer state) would cost a lent GPU more than the training rows themselves ---
speed() { # name ranks factory [extra-args...]
    local name=$1 ranks=$2 factory=$3 smi="" rc
    shift 3
    # Later settings win: a row's own arguments come last.
    local args=(--train_module.dp_config=null --train_module.autocast_precision=bfloat16 --trainer.no_checkpoints
        --data_loader.global_batch_size=$((SPEED_SEQ * BATCH * ranks))
        --train_module.rank_microbatch_size=$((SPEED_SEQ * MICRO)) --trainer.metrics_collect_interval=5
        --data_loader.num_workers=4 "$@")
    if command -v nvidia-smi >/dev/null && [ "$DEVICE" != cpu ]; then
        nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 500 >"$OUT/$name.mem" &
        smi=$!
    fi
    if [ "$ranks" -gt 1 ]; then
        rm -rf "${OUT:?}/$name"
        timed "$name" 200 "$BIN" launch --nproc-per-node="$ranks" --master-port=$((20000 + RANDOM % 20000)) "$name" --model-factory="$factory" --tokenizer dolma2 \
            --trainer.device="$DEVICE" --sequence-length="$SPEED_SEQ" --dataset.paths="[$OUT/tokens.npy]" \
            --dataset.dtype=uint16 --train_module.max_sequence_length="$SPEED_SEQ" \
            --trainer.max_duration="{value: $SPEED_STEPS, unit: steps}" \
            --trainer.callbacks.lm_evaluator.enabled=false --trainer.callbacks.downstream_evaluator.enabled=false \
            --save-folder="$OUT/$name" --work-dir="$OUT/cache" "${args[@]}"
    else
        train "$name" 200 "$DEVICE" "$factory" "$SPEED_SEQ" "$SPEED_STEPS" "${args[@]}"
    fi
    rc=$?
    [ -n "$smi" ] && kill "$smi" 2>/dev/null
    if [ $rc -eq 125 ]; then report "$name" SKIP "time budget spent"; return; fi
    local detail
    if detail=$($PY scripts/gpu_check_compare.py speed "$OUT/$name/metrics.jsonl" "$OUT/$name.log" \
        "$OUT/$name.mem" "$PEAK" "$ranks" 2>&1) && [ $rc -eq 0 ]; then
        report "$name" OK "$detail"
    else
        report "$name" FAIL "$(why "$name" $rc); $detail"
    fi
}
for f in $SPEED_FACTORIES; do
    speed "$f-bf16-seq$SPEED_SEQ" 1 "$f"
done
# The largest factory again with every block checkpointed: the memory it saves, the time it costs.
LARGEST=${SPEED_FACTORIES##* }
speed "$LARGEST-bf16-seq$SPEED_SEQ-ac" 1 "$LARGEST" --train_module.ac_config="{mode: full}"
# OLMo-core's default dp_config: FSDP, parameters gathered in bf16, no autocast.
speed "$LARGEST-fsdp-bf16-seq$SPEED_SEQ" 1 "$LARGEST" \
    --train_module.dp_config="{name: fsdp, param_dtype: bfloat16}" --train_module.autocast_precision=null
if [ "$NGPU" -gt 1 ]; then
    speed "olmo2_190M-ddp$NGPU" "$NGPU" olmo2_190M
else
    report ddp SKIP "needs 2 GPUs, found $NGPU"
fi

echo "total $((SECONDS - START)) s; summary in $SUMMARY"
exit $FAILED

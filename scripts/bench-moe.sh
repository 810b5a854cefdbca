#!/usr/bin/env bash
# Mixture-of-experts training throughput on this CPU: olmo-train against ai2-olmo-core 3.0.0 on the same
# model, olmo2_14M (dolma2 vocabulary) with its feed-forward replaced by OLMo-core's dropless experts
# (8 experts of hidden size 256, top-2, load-balancing weight 0.01, router Z weight 0.001), the tokenized
# demo corpus, sequence 256, 2048 tokens a step, fp32, AdamW + cosine, clipping, the same torch threads.
# OLMo-core's dropless MoE needs CUDA for its token gather/scatter (Triton); its side runs them as plain
# torch (scripts/reference/olmo_core_moe.py) and loops over experts, as it does without grouped_gemm.
# olmo-train runs with OLMo-core's default checkpointer (it saves at step 0 and after the last step,
# never in the timed steps). Prints tokens/s after the first step for each side.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/bench-side.sh
STEPS=${STEPS:-20}
THREADS=${THREADS:-2}
OUT=${OUT:-/tmp/olmo-train-bench-moe}
# Keep in step with MOE in scripts/reference/olmo_core_train_bench.py.
EXPERTS="{name: dropless, num_experts: 8, hidden_size: 256, router: {top_k: 2}, lb_loss_weight: 0.01, z_loss_weight: 0.001}"
scripts/setup.sh
scripts/reference/setup-ref.sh
cargo build --release --quiet
TOKENS=$(scripts/demo-tokens.sh "$OUT/tokens")
export OMP_NUM_THREADS=$THREADS MKL_NUM_THREADS=$THREADS

ours() {
    rm -rf "$OUT/run"
    target/release/olmo-train bench-moe --model-factory=olmo2_14M --tokenizer dolma2 \
        --config configs/olmo2-1M-cpu.yaml --dataset.paths="[$TOKENS]" \
        --model.name=moe --model.block.name=moe_reordered_norm --model.block.feed_forward=null \
        --model.block.feed_forward_moe="$EXPERTS" \
        --trainer.callbacks.checkpointer="{save_interval: 1000, ephemeral_save_interval: 100, save_async: true}" \
        --trainer.max_duration="{value: $STEPS, unit: steps}" --trainer.metrics_collect_interval=1 \
        --save-folder="$OUT/run" --work-dir="$OUT/run/cache" >/dev/null 2>"$OUT/log" ||
        { tail -1 "$OUT/log" >&2; return 1; }
    python3 -c "import json; r = [json.loads(l) for l in open('$OUT/run/metrics.jsonl')][-1]; print(f\"olmo-train olmo2_14M+moe: {r['throughput/device/TPS (actual avg)']:.0f} tokens/s, load balancing loss {r['train/load balancing loss']:.4f}\")"
}

side "olmo-train olmo2_14M+moe" ours
side "olmo-core olmo2_14M+moe" env PYTHONPATH=scripts/reference \
    .venv-ref/bin/python scripts/reference/olmo_core_train_bench.py olmo2_14M "$TOKENS" "$STEPS" moe
bench_exit

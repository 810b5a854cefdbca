#!/usr/bin/env bash
# The quickstart: what a new user runs first. It tokenizes the bundled demo corpus with the dolma2
# tokenizer (as OLMo-core's README does with `dolma tokens`), shows OLMo-core's tutorial dry-run pointed
# at that data, then trains olmo2_1M on it for 200 steps on the CPU (a few minutes on 2 cores) with
# OLMo-core's console lines, shows the loss falling, samples text from the model it trained, and draws
# the run's loss curve.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=target/release/olmo-train
# Tests use one torch thread (shared CI cores); the quickstart has the machine to itself.
export OMP_NUM_THREADS=${QUICKSTART_THREADS:-$(nproc)}
OUT=${QUICKSTART_DIR:-/tmp/olmo-train-quickstart}
rm -rf "$OUT/tokens"

echo "== olmo-train tokenize (the demo corpus, dolma2 tokenizer)"
"$BIN" tokenize --documents "examples/data/kjv-train.jsonl.gz" --destination "$OUT/tokens/train" \
    --tokenizer.name_or_path allenai/dolma2-tokenizer --tokenizer.eos_token_id 100257 \
    --tokenizer.pad_token_id 100277 --tokenizer.encode_special_tokens --processes 2 --dtype uint32
"$BIN" tokenize --documents "examples/data/kjv-validation.jsonl.gz" --destination "$OUT/tokens/validation" \
    --tokenizer.name_or_path allenai/dolma2-tokenizer --tokenizer.eos_token_id 100257 \
    --tokenizer.pad_token_id 100277 --tokenizer.encode_special_tokens --processes 2 --dtype uint32

echo
echo "== olmo-train tutorial-run-01 --dry-run --model-factory=olmo2_1M ... (on the tokenized demo corpus)"
"$BIN" tutorial-run-01 --dry-run --model-factory=olmo2_1M --tokenizer dolma2 --config configs/olmo2-1M-cpu.yaml \
    --dataset.paths="[$OUT/tokens/train/part-0-00000.npy]" \
    --trainer.callbacks.lm_evaluator.eval_dataset.paths="[$OUT/tokens/validation/part-0-00000.npy]" \
    --data_loader.prefetch_factor=4 --trainer.callbacks.wandb.enabled=true

echo
echo "== olmo-train quickstart --model-factory=olmo2_1M --tokenizer dolma2 --config configs/olmo2-1M-cpu.yaml ... (200 steps on CPU)"
rm -rf "$OUT/run"
"$BIN" quickstart --model-factory=olmo2_1M --tokenizer dolma2 --config configs/olmo2-1M-cpu.yaml \
    --dataset.paths="[$OUT/tokens/train/part-0-00000.npy]" \
    --save-folder="$OUT/run" --work-dir="$OUT/run/dataset-cache"
python3 - "$OUT/run/metrics.jsonl" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
first, last = rows[0]["train/CE loss"], sum(r["train/CE loss"] for r in rows[-10:]) / 10
print(f"train/CE loss: step 1 {first:.3f} -> mean of the last 10 steps {last:.3f}")
if not last < first - 1.0:
    sys.exit("quickstart: the loss did not fall")
PY

echo
echo "== olmo-train generate $OUT/run --prompt 'And God said' (greedy, from the checkpoint just saved)"
"$BIN" generate "$OUT/run" --prompt "And God said" --max-new-tokens 40

echo
echo "== olmo-train plot $OUT/run"
"$BIN" plot "$OUT/run" --output "$OUT/run/loss.png"
echo "the loss curve: $OUT/run/loss.png (and $OUT/run/metrics.jsonl)"

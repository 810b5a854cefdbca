#!/usr/bin/env bash
# Decoding speed, olmo-train generate vs transformers' generate, greedy, on the CPU with the same threads:
# an olmo2_14M model (dolma2 vocabulary, 2 training steps on the demo corpus, converted to Hugging Face
# format for transformers), prompts of 32 tokens, 128 new tokens each, batch 1 and 8. Both sides decode
# the same prompt ids with a key/value cache; tokens/s counts new tokens over the generate call
# (prefill included, model loading excluded); medians of REPS runs.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/bench-side.sh
DIR=${DIR:-/tmp/olmo-train-bench-generate}
REPS=${REPS:-3}
THREADS=${THREADS:-2}
BIN=target/release/olmo-train
scripts/setup.sh
scripts/reference/setup-ref.sh
cargo build --release --quiet
mkdir -p "$DIR"
TOKENS=$(scripts/demo-tokens.sh "$DIR/tokens")
if [ ! -d "$DIR/hf" ]; then
    rm -rf "$DIR/run"
    OMP_NUM_THREADS=$THREADS "$BIN" bench-generate --model-factory=olmo2_14M --tokenizer dolma2 \
        --config configs/olmo2-1M-cpu.yaml --sequence-length=256 --dataset.paths="[$TOKENS]" \
        --data_loader.global_batch_size=2048 --train_module.rank_microbatch_size=2048 \
        --trainer.max_duration='{value: 2, unit: steps}' --trainer.callbacks.lm_evaluator.enabled=false \
        --trainer.callbacks.downstream_evaluator.enabled=false \
        --save-folder="$DIR/run" --work-dir="$DIR/cache" >/dev/null
    "$BIN" convert to-hf "$DIR/run" "$DIR/hf" >/dev/null
fi
# Prompts: 32-token windows of the demo corpus's text, as text for olmo-train (whose JSON output gives
# their ids back to the transformers side).
python3 - "$DIR" <<'PY'
import gzip, json, sys
d = sys.argv[1]
texts = [json.loads(l)["text"] for l in gzip.open("examples/data/kjv-validation.jsonl.gz", "rt")]
words = " ".join(texts).split()
for b in (1, 8):
    with open(f"{d}/prompts-{b}.txt", "w") as f:
        for i in range(b):
            f.write(" ".join(words[i * 40:i * 40 + 24]) + "\n")
PY
for b in 1 8; do
    for r in $(seq "$REPS"); do
        side "olmo-train generate, batch $b" env OMP_NUM_THREADS=$THREADS "$BIN" generate "$DIR/run" \
            --prompts-file "$DIR/prompts-$b.txt" --max-new-tokens 128 --device cpu --output "$DIR/ours-$b-$r.jsonl"
    done
    side "transformers generate, batch $b" .venv-ref/bin/python - "$DIR" "$b" "$REPS" "$THREADS" <<'PY'
import json, statistics, sys, time
import torch
from transformers import AutoModelForCausalLM
d, b, reps, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
torch.set_num_threads(threads)
model = AutoModelForCausalLM.from_pretrained(f"{d}/hf", dtype=torch.float32).eval()
ours = []
for r in range(1, reps + 1):
    rows = [json.loads(l) for l in open(f"{d}/ours-{b}-{r}.jsonl")]
    ours.append(sum(len(x["token_ids"]) for x in rows) / rows[0]["seconds"])
prompts = [x["prompt_token_ids"] for x in rows]
longest = max(map(len, prompts))
ids = torch.tensor([[0] * (longest - len(p)) + p for p in prompts])
mask = torch.tensor([[0] * (longest - len(p)) + [1] * len(p) for p in prompts])
theirs = []
for _ in range(reps):
    t = time.perf_counter()
    with torch.no_grad():
        out = model.generate(ids, attention_mask=mask, do_sample=False, max_new_tokens=128, min_new_tokens=128, pad_token_id=0)
    theirs.append((out.shape[1] - longest) * b / (time.perf_counter() - t))
o, h = statistics.median(ours), statistics.median(theirs)
print(f"batch {b}: olmo-train {o:.0f} tokens/s, transformers {h:.0f} tokens/s, ratio {o / h:.2f}x")
PY
done
bench_exit

#!/usr/bin/env bash
# Tokenization throughput: olmo-train tokenize (release build) against the Dolma toolkit's `dolma tokens`
# (PyPI dolma 1.2.1, in .venv-dolma) doing the same work: the demo corpus copied COPIES times, the dolma2
# tokenizer (cl100k_base; dolma gets it as a tokenizer.json converted from the same ranks file), EOS
# appended, uint32 output, 1 and 2 processes. Prints tokens/s (wall clock, start-up included).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/bench-side.sh
COPIES=${COPIES:-8}
work=${WORK:-/tmp/olmo-train-bench-tokenize}
scripts/setup.sh
scripts/reference/setup-ref.sh ref dolma
cargo build --release --quiet

rm -rf "$work" && mkdir -p "$work/docs"
for i in $(seq "$COPIES"); do
    for f in examples/data/kjv-*.jsonl.gz; do
        # Distinct ids per copy, so every copy is its own documents.
        zcat "$f" | sed "s/\"id\": \"kjv-/\"id\": \"c$i-kjv-/" | gzip -1 > "$work/docs/c$i-$(basename "$f")"
    done
done
.venv-ref/bin/python - "$work/dolma2-tokenizer.json" <<'PY'
import glob, os, sys
from transformers.convert_slow_tokenizer import TikTokenConverter
assets = sorted(glob.glob(os.path.expanduser("~/.cargo/registry/src/*/tiktoken-rs-0.12*/assets")))[-1]
pat = r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+|\s++$|\s*[\r\n]|\s+(?!\S)|\s"""
TikTokenConverter(vocab_file=f"{assets}/cl100k_base.tiktoken", pattern=pat).converted().save(sys.argv[1])
# dolma 1.2.1 pins an older tokenizers that reads merges as "a b" strings, not ["a", "b"] pairs.
import json
tok = json.load(open(sys.argv[1]))
tok["model"]["merges"] = [" ".join(m) if isinstance(m, list) else m for m in tok["model"]["merges"]]
json.dump(tok, open(sys.argv[1], "w"))
PY

common=(--documents "$work/docs/*.jsonl.gz" --tokenizer.eos_token_id 100257 --tokenizer.pad_token_id 100277
        --tokenizer.encode_special_tokens --dtype uint32)
tokens=0
run() { # name procs command...
    local name=$1 procs=$2; shift 2
    rm -rf "$work/out"
    local t0 t1; t0=$(date +%s.%N); side "$name processes=$procs" "$@" >/dev/null; t1=$(date +%s.%N)
    [ "$SIDE_OK" = 1 ] || return 0
    tokens=$(( $(cat "$work"/out/*.npy | wc -c) / 4 ))
    awk -v n="$name" -v p="$procs" -v t="$tokens" -v s="$(awk "BEGIN{print $t1-$t0}")" \
        'BEGIN{printf "%-12s processes=%d  %10d tokens  %7.2f s  %9.0f tokens/s\n", n, p, t, s, t/s}'
}
for p in 1 2; do
    run olmo-train "$p" target/release/olmo-train tokenize "${common[@]}" --destination "$work/out" \
        --tokenizer.name_or_path allenai/dolma2-tokenizer --processes "$p"
    run dolma "$p" .venv-dolma/bin/dolma tokens "${common[@]}" --destination "$work/out" \
        --tokenizer.name_or_path "$work/dolma2-tokenizer.json" --processes "$p"
done
bench_exit

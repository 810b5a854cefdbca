#!/usr/bin/env bash
# Prints the path of the demo corpus tokenized with dolma2 (uint32) under DIR, tokenizing it first when
# missing. Shared by the benchmark scripts: `TOKENS=$(scripts/demo-tokens.sh "$OUT/tokens")`.
set -euo pipefail
cd "$(dirname "$0")/.."
DIR=$1
TOKENS=$DIR/part-0-00000.npy
if [ ! -f "$TOKENS" ]; then
    target/release/olmo-train tokenize --documents examples/data/kjv-train.jsonl.gz --destination "$DIR" \
        --tokenizer.name_or_path allenai/dolma2-tokenizer --tokenizer.eos_token_id 100257 \
        --tokenizer.pad_token_id 100277 --tokenizer.encode_special_tokens --dtype uint32 >/dev/null
fi
echo "$TOKENS"

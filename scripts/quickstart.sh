#!/usr/bin/env bash
# The quickstart: what a new user runs first. Until training lands it shows OLMo-core's tutorial
# dry-run and the model table; later issues extend it to tokenizing and training on the demo corpus.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=target/release/olmo-train

echo "== olmo-train tutorial-run-01 --dry-run --data_loader.prefetch_factor=4 --trainer.callbacks.wandb.enabled=true"
"$BIN" tutorial-run-01 --dry-run --data_loader.prefetch_factor=4 --trainer.callbacks.wandb.enabled=true

echo
echo "== olmo-train list-models"
"$BIN" list-models

#!/usr/bin/env python3
"""Per-GPU memory of sharded training (dp_config fsdp, bf16 parameters) for OLMo 2 factories, as README's
table shows it: computed from each factory's shapes (read from `olmo-train --dry-run`), not measured.

    scripts/fsdp-memory.py [BIN]      (BIN defaults to target/release/olmo-train)

- persistent: fp32 shard + fp32 gradient shard + AdamW's two fp32 moments = 16 bytes a parameter / W;
- transient: the gathered bf16 units (the LM head, which stays gathered through the loss, plus the block
  being run and the one prefetched) and the LM head's gradients while they are reduced (bf16 plus the
  fp32 reduce buffer);
- activations per micro-batch of T tokens: 80 d bytes a token a layer without activation checkpointing
  (measured: on an H200, olmo2_1B at 8192 tokens a micro-batch peaked at 52.5 GiB active without and 30.5
  GiB with `ac_config.mode: full`, 78 d bytes a token a layer; README "GPU"), and with full AC the
  blocks' bf16 inputs (2 d) plus one block's activations while it is recomputed.
"""
import re
import subprocess
import sys

BIN = sys.argv[1] if len(sys.argv) > 1 else "target/release/olmo-train"
GIB = 1 << 30


def shape(factory):
    out = subprocess.run([BIN, "x", "--dry-run", f"--model-factory={factory}"], capture_output=True, text=True,
                         check=True).stdout
    get = lambda key: int(re.search(rf"^\s*{key}: (\d+)", out, re.M).group(1))
    params = int(re.search(r"^# parameters: (\d+)", out, re.M).group(1))
    return params, get("d_model"), get("n_layers"), get("vocab_size")


def main():
    print("| model | parameters | persistent, 1 GPU | 8 GPUs | 16 GPUs | transient units | activations / 4096 tokens, no AC | with full AC | 8 x 80 GB |")
    print("|---|---|---|---|---|---|---|---|---|")
    for factory in ["olmo2_1B", "olmo2_7B", "olmo2_13B", "olmo2_32B"]:
        n, d, layers, vocab = shape(factory)
        block = (n - 2 * vocab * d) / layers
        head = vocab * d
        transient = (head + 2 * block) * 2 + head * (2 + 4)
        tokens = 4096
        no_ac = 80 * d * tokens * layers
        ac = 2 * d * tokens * layers + 80 * d * tokens
        w8 = 16 * n / 8
        budget = 80e9 * 0.95  # what the allocator can hand out, roughly
        fits = ("without AC" if w8 + transient + no_ac <= budget
                else "with full AC" if w8 + transient + ac <= budget else "no (use 16+ GPUs)")
        print(f"| {factory} | {n / 1e9:.2f} B | {16 * n / GIB:.1f} GiB | {w8 / GIB:.1f} GiB | {16 * n / 16 / GIB:.1f} GiB "
              f"| {transient / GIB:.1f} GiB | {no_ac / GIB:.1f} GiB | {ac / GIB:.1f} GiB | {fits} |")


if __name__ == "__main__":
    main()

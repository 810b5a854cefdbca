"""OLMo-core's `num_flops_per_token(seq_len)` (the MFU numerator) for a few factories, as a test fixture.

    .venv-ref/bin/python scripts/reference/olmo_core_flops.py   # writes tests/fixtures/flops.json
"""
import json

from olmo_core.nn.transformer import TransformerConfig

CASES = [("olmo2_1M", 256), ("olmo2_14M", 2048), ("olmo2_190M", 4096), ("olmo2_1B", 4096), ("olmo3_7B", 8192), ("smallmoe", 2048),
         ("small_hybrid_moe", 2048), ("olmoe_1B_7B", 4096)]


def main():
    out = []
    for name, seq in CASES:
        model = getattr(TransformerConfig, name)(vocab_size=100352).build(init_device="meta")
        out.append({"factory": name, "vocab_size": 100352, "seq_len": seq, "flops_per_token": model.num_flops_per_token(seq)})
        print(out[-1])
    with open("tests/fixtures/flops.json", "w") as f:
        json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()

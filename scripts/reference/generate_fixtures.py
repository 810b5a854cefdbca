"""Greedy-generation fixtures for `olmo-train generate` (transformers 5.x on CPU, fp32).

    scripts/reference/setup-ref.sh
    scripts/reference/pinned.sh .venv-ref/bin/python scripts/reference/generate_fixtures.py   # writes tests/fixtures/generate/expected.json

For the two tiny Hugging Face models of tests/fixtures/hf (Olmo2ForCausalLM, and LlamaForCausalLM with
grouped-query attention; see hf_fixtures.py), records `generate(do_sample=False)` for prompts of different
lengths, one prompt at a time (no padding), with the margin between the two best logits at every step so a
test can tell a real difference from an fp32 near-tie.
"""
import json

import torch
from transformers import AutoModelForCausalLM

import pinned

PROMPTS = [[1, 2, 3, 4, 5], [100, 7], [42, 17, 300, 5, 9, 11, 250, 3, 77], [511]]
NEW_TOKENS = 16


def main():
    pinned.require()
    out = {"max_new_tokens": NEW_TOKENS, "models": {}}
    for name in ["olmo2", "llama2"]:
        model = AutoModelForCausalLM.from_pretrained(f"tests/fixtures/hf/{name}", dtype=torch.float32).eval()
        rows = []
        for prompt in PROMPTS:
            ids = torch.tensor([prompt])
            with torch.no_grad():
                res = model.generate(ids, do_sample=False, max_new_tokens=NEW_TOKENS, min_new_tokens=NEW_TOKENS,
                                     output_scores=True, return_dict_in_generate=True, pad_token_id=0)
            new = res.sequences[0, len(prompt):].tolist()
            margins = []
            for s in res.scores:
                top = torch.topk(s[0].float(), 2).values
                margins.append(float(top[0] - top[1]))
            rows.append({"prompt": prompt, "completion": new, "min_margin": min(margins)})
        out["models"][name] = rows
    with open("tests/fixtures/generate/expected.json", "w") as f:
        json.dump(out, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()

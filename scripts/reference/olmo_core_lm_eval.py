"""Expected in-loop LM evaluation values from OLMo-core's own LMEvaluator (ai2-olmo-core 3.0.0, CPU, fp32).

    scripts/reference/pinned.sh .venv-ref/bin/python scripts/reference/olmo_core_lm_eval.py   # writes tests/fixtures/eval/*

Two held-out token files (uint16, vocab 512, EOS 0) with labels "alpha" and "beta", the padded dataset
OLMo-core builds over them (sequence length 64), its NumpyFSLDataLoader (batches of 4 instances), and
OLMo-core's olmo2_1M model with the parity fixture weights (tests/fixtures/train/olmo2-init.safetensors).
Per-token CE as TransformerTrainModule.eval_batch computes it; metrics from LMEvaluator.
"""
import json
import tempfile

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from olmo_core.data import DataCollator, NumpyPaddedFSLDatasetConfig, TokenizerConfig
from olmo_core.data.utils import get_labels
from olmo_core.eval.lm_evaluator import LMEvaluator
from olmo_core.nn.transformer import TransformerConfig

import pinned

OUT = "tests/fixtures/eval"
TOK = TokenizerConfig(vocab_size=500, eos_token_id=0, pad_token_id=499)


def make_files():
    rng = np.random.default_rng(99)
    for name, n in (("alpha", 3000), ("beta", 2000)):
        out = []
        while len(out) < n:
            out += list(rng.integers(1, 499, size=int(rng.integers(5, 120)))) + [0]
        np.array(out[:n], dtype=np.uint16).tofile(f"{OUT}/{name}.npy")


def main():
    pinned.require()
    make_files()
    torch.set_num_threads(1)
    model = TransformerConfig.olmo2_1M(vocab_size=512).build(init_device="cpu")
    model.load_state_dict(load_file("tests/fixtures/train/olmo2-init.safetensors"))
    model.eval()
    ds = NumpyPaddedFSLDatasetConfig(paths=[f"{OUT}/alpha.npy", f"{OUT}/beta.npy"], metadata=[{"label": "alpha"}, {"label": "beta"}],
                                     sequence_length=64, tokenizer=TOK, work_dir=tempfile.mkdtemp()).build()
    ev = LMEvaluator.from_numpy_dataset(ds, name="lm", global_batch_size=4 * 64, collator=DataCollator(pad_token_id=499), device=torch.device("cpu"))
    ev.reset_metrics()
    n = 0
    for batch in ev:
        labels = get_labels(batch)
        with torch.no_grad():
            logits = model(batch["input_ids"])
        ce = F.cross_entropy(logits.view(-1, logits.shape[-1]), labels.view(-1), ignore_index=-100, reduction="none").view(labels.shape)
        ev.update_metrics(batch, ce, None)
        n += 1
    metrics = {k: float(v) for k, v in ev.compute_metrics().items()}
    json.dump({"batches": n, "metrics": metrics}, open(f"{OUT}/expected.json", "w"), indent=1)
    print(n, metrics)


if __name__ == "__main__":
    main()

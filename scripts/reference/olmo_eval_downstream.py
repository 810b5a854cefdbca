"""Downstream-evaluation parity fixture from the reference (ai2-olmo-eval 0.9.0 + ai2-olmo-core 3.0.0, CPU).

    scripts/reference/setup-ref.sh
    scripts/reference/pinned.sh .venv-ref/bin/python scripts/reference/olmo_eval_downstream.py   # writes tests/fixtures/downstream/*

For a few tasks it exports the first DOCS documents in olmo-train's task format (through
scripts/eval/export_tasks.py), then evaluates them the way OLMo-core's `DownstreamEvaluator` does:
`olmo_eval.build_task(task, tokenizer, model_ctx_len=CTX)` with the dolma2 tokenizer (tiktoken built from
the ranks tiktoken-rs ships, OLMo's special tokens, no BOS as in `TokenizerConfig.dolma2()`), batches from
the task's own `collate_fn`, logits from OLMo-core's olmo2_1M with `init_weights()` (init_seed 0, which
olmo-train reproduces bit for bit), and `olmo_eval.ICLMetric` for the metrics, named with OLMo-core's
labels. It records every request's summed continuation log-probability, sliced as ICLMetric slices it.
CTX is small enough that some hellaswag requests are truncated from the left.
"""
import json
import os
import sys

import torch
import torch.nn.functional as F
from olmo_eval import ICLMetric, build_task
from olmo_eval.tokenizer import Tokenizer

from olmo_core.nn.transformer import TransformerConfig
from olmo_core.train.callbacks.evaluator_callback import DownstreamEvaluator

sys.path.insert(0, os.path.join(os.path.dirname(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "eval"))
from export_tasks import export  # noqa: E402
from tokenizer_reference import encodings  # noqa: E402
import pinned  # noqa: E402

OUT = "tests/fixtures/downstream"
TASKS = ["hellaswag", "arc_easy", "winogrande"]
DOCS = 24
CTX = 40
VOCAB = 100352  # dolma2's 100278 padded to a multiple of 128, as OLMo-core's example does
BATCH = 8


class Dolma2(Tokenizer):
    def __init__(self):
        self.enc, _ = encodings()["dolma2"]

    @property
    def vocab_size(self):
        return 100278

    @property
    def pad_token_id(self):
        return 100277

    @property
    def eos_token_id(self):
        return 100257

    def encode_batch(self, inputs, add_special_tokens=True):
        assert not add_special_tokens
        return [self.enc.encode(s, allowed_special="all") for s in inputs]

    def decode_batch(self, batch_token_ids, skip_special_tokens=True):
        return [self.enc.decode(ids) for ids in batch_token_ids]


def main():
    pinned.require()
    torch.set_num_threads(1)
    model = TransformerConfig.olmo2_1M(vocab_size=VOCAB).build(init_device="cpu")
    model.init_weights(device=torch.device("cpu"))
    model.eval()
    tok = Dolma2()
    out = {"factory": "olmo2_1M", "vocab_size": VOCAB, "max_sequence_length": CTX, "tasks": {}}
    for name in TASKS:
        export(name, f"{OUT}/tasks", limit_docs=DOCS)
        with open(f"{OUT}/tasks/{name}/requests.jsonl") as f:
            kept = {json.loads(line)["id"] for line in f}
        task = build_task(name, tok, model_ctx_len=CTX)
        task.samples = [s for s in task.samples if s["doc_id"] in kept]
        task._max_sequence_length = None
        metric = ICLMetric(metric_type=task.metric_type)
        requests, truncated = [], 0
        for s in task.samples:
            truncated += len(s["query"]) < len(s["ctx"]) + len(s["continuation"]) - 1
        for i in range(0, len(task.samples), BATCH):
            batch = task.collate_fn(task.samples[i : i + BATCH])
            with torch.no_grad():
                logits = model(batch["input_ids"])
            metric.update(batch, logits)
            for j in range(len(batch["doc_id"])):
                ctx_len, cont_len = batch["ctx_len"][j], batch["cont_len"][j]
                cont = batch["continuation"][j][:cont_len]
                ll = -F.cross_entropy(logits[j][ctx_len - 1 : ctx_len + cont_len - 1], cont, reduction="sum")
                requests.append([int(batch["doc_id"][j]), int(batch["cont_id"][j]), float(ll)])
        metrics = {
            f"eval/downstream/{name} ({DownstreamEvaluator.metric_type_to_label[k]})": float(v)
            for k, v in metric.compute().items()
        }
        out["tasks"][name] = {
            "metric_type": task.metric_type,
            "truncated_requests": truncated,
            "requests": requests,
            "metrics": metrics,
        }
        print(name, task.metric_type, f"{len(requests)} requests, {truncated} truncated", metrics)
    with open(f"{OUT}/expected.json", "w") as f:
        json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()

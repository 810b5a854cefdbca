"""Sharded-training fixture from the reference implementation (ai2-olmo-core 3.0.0, FSDP2, CPU, Gloo).

    scripts/reference/pinned.sh .venv-ref/bin/torchrun --nproc-per-node=2 scripts/reference/olmo_core_fsdp.py

OLMo-core's `olmo2_1M` (vocabulary 512) from the weights of `tests/fixtures/train/olmo2-init.safetensors`,
sharded by OLMo-core's own `Transformer.apply_fsdp` with `param_dtype=bfloat16, reduce_dtype=float32`
(OLMo-core's example `dp_config`), and again with fp32 parameters, over 2 Gloo processes, trains 20 steps on fixed batches as its
`TransformerTrainModule` does under FSDP: each rank takes its half of the global batch, micro-batches
with the loss summed and divided by the rank batch's loss tokens, `max_grad_norm` clipping over the
sharded gradients (pre-clip norm recorded), the LR from the scheduler, AdamW on the fp32 shards. Rank 0
writes `tests/fixtures/train/olmo2-fsdp-{bf16,fp32}.json` (batches, per-step CE loss and grad norm) and
the gathered final weights `olmo2-fsdp-{bf16,fp32}-final.safetensors`. The fp32 run measures how far bf16
alone moves OLMo-core's own numbers: the tolerance the bf16 comparison gets.
"""
import json
import os

import torch
import torch.distributed as dist
from safetensors.torch import load_file, save_file
from torch.distributed.device_mesh import init_device_mesh

from olmo_core.data.utils import get_labels
from olmo_core.nn.transformer import TransformerConfig
from olmo_core.optim import AdamWConfig, CosWithWarmup, OptimGroupOverride

import pinned

OUT = "tests/fixtures/train"
VOCAB = 512
STEPS = 20
GLOBAL, SEQ, MICRO = 8, 32, 2  # instances per global batch, tokens per instance, instances per micro-batch


def main():
    pinned.require()
    torch.set_num_threads(1)
    dist.init_process_group("gloo")
    for name, param_dtype in [("bf16", torch.bfloat16), ("fp32", torch.float32)]:
        run(name, param_dtype)
    dist.destroy_process_group()


def run(name, param_dtype):
    rank, world = dist.get_rank(), dist.get_world_size()
    mesh = init_device_mesh("cpu", (world,))
    model = TransformerConfig.olmo2_1M(vocab_size=VOCAB).build(init_device="cpu")
    model.load_state_dict(load_file(f"{OUT}/olmo2-init.safetensors"))
    model.apply_fsdp(dp_mesh=mesh, param_dtype=param_dtype, reduce_dtype=torch.float32)
    optim = AdamWConfig(
        lr=3e-3, betas=(0.9, 0.95), weight_decay=0.1,
        group_overrides=[OptimGroupOverride(params=["embeddings.weight"], opts=dict(weight_decay=0.0))],
    ).build(model)
    sched = CosWithWarmup(warmup=5)
    g = torch.Generator().manual_seed(11)
    per_rank = GLOBAL // world
    steps, batches = [], []
    for step in range(1, STEPS + 1):
        ids = torch.randint(0, VOCAB - 12, (GLOBAL, SEQ), generator=g)
        batches.append(ids.tolist())
        mine = ids[rank * per_rank:(rank + 1) * per_rank]
        labels = get_labels({"input_ids": mine})
        div = (labels != -100).sum()
        ce_total = torch.tensor(0.0)
        for start in range(0, per_rank, MICRO):
            model.set_is_last_backward(start + MICRO >= per_rank)
            out = model(mine[start:start + MICRO], labels=labels[start:start + MICRO], loss_reduction="sum",
                        loss_div_factor=div, return_logits=False)
            ce_total += out.ce_loss.detach().float()
            out.loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        if hasattr(grad_norm, "full_tensor"):
            grad_norm = grad_norm.full_tensor()
        for group in optim.param_groups:
            group["lr"] = sched.get_lr(group["initial_lr"], step, STEPS)
        optim.step()
        optim.zero_grad(set_to_none=True)
        # OLMo-core logs the CE loss averaged over the data-parallel ranks.
        dist.all_reduce(ce_total)
        steps.append({"step": step, "ce_loss": (ce_total / world).item(), "grad_norm": grad_norm.item()})
    final = {k: (v.full_tensor() if hasattr(v, "full_tensor") else v).detach().clone().contiguous()
             for k, v in model.state_dict().items()}
    if rank == 0:
        save_file(final, f"{OUT}/olmo2-fsdp-{name}-final.safetensors")
        with open(f"{OUT}/olmo2-fsdp-{name}.json", "w") as f:
            json.dump({"global_batch": GLOBAL, "micro_batch": MICRO, "batches": batches, "steps": steps}, f)
        print(name, [round(s["ce_loss"], 4) for s in steps])


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    main()

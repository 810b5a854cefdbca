"""Mixture-of-experts training fixtures from the reference implementation (ai2-olmo-core 3.0.0, CPU, fp32).

    scripts/reference/pinned.sh .venv-ref/bin/python scripts/reference/olmo_core_moe.py   # writes tests/fixtures/train/moe*

OLMo-core's dropless MoE (`DroplessMoE`, the kind `olmoe_1B_7B` uses) runs on CUDA only: its token
gather and weighted scatter are Triton kernels (`olmo_core.kernels.moe`), and its grouped matrix products
fall back to a loop over experts without `grouped_gemm`. Here those two kernels are replaced by the same
operations in plain torch (row gather by `indices // top_k`; scatter-add of each row times its
expert weight), which run on CPU and keep autograd; everything else (router, top-k, load-balancing and
router Z losses, `loss_div_factor`, per-layer loss scaling, metrics, the expert loop) is OLMo-core's own.

The capacity-factor kind (`MoE`) has the same problem with its binned gather and scatter (each expert's
first `capacity` tokens in sorted order, the rest dropped); they are replaced the same way. Its factor
is 2.0, where an expert's capacity (top_k * tokens / experts * factor) is every token, so nothing is
dropped. Which tokens OLMo-core drops past capacity follows `torch.sort`'s order of equal expert ids,
which is not stable on CPU (it differs by kernel and device), so no implementation can match it
token for token; dropping itself is a unit test in src/model/moe.rs.

Two models. `moe`: a tiny `llama_like_moe` (d_model 16, 2 `moe_reordered_norm` blocks, 4 experts, top-2,
expert hidden 8, load-balancing weight 0.01, router Z weight 0.001, vocabulary 512). `moe-capacity`: the
same with pre-norm `moe` blocks and the capacity kind at factor 2.0, sigmoid gating,
the top-k weights renormalized to sum 1, and the load-balancing loss per instance. Each is initialized by OLMo-core's
`init_weights` (seed 0) and trained 20 steps on fixed random batches as `TransformerTrainModule` does:
2 micro-batches, loss summed and divided by the batch's loss tokens, the auxiliary losses attached,
`max_grad_norm` 1.0, CosWithWarmup, AdamW. Written: the config, the initial and final weights, and
per step the CE loss, grad norm and OLMo-core's auxiliary metrics (`compute_auxiliary_metrics`).
"""
import json

import torch
from safetensors.torch import save_file

import olmo_core.ops.moe as moe_ops
from olmo_core.data.utils import get_labels
from olmo_core.nn.transformer import TransformerConfig
from olmo_core.optim import AdamWConfig, CosWithWarmup, OptimGroupOverride

import pinned

OUT = "tests/fixtures/train"
VOCAB = 512
STEPS = 20
BATCH, SEQ, MICRO = 4, 32, 2


def gather(x, indices, bin_ids, bins, top_k):
    return x[indices.long() // top_k]


def weighted(rows, idx, weights):
    return rows if weights is None else rows * weights[idx].unsqueeze(1).to(rows.dtype)


def scatter(x, indices, bin_ids, weights, bins, top_k):
    idx = indices.long()
    out = torch.zeros(idx.numel() // top_k, x.shape[1], dtype=x.dtype)
    return out.index_add(0, idx // top_k, weighted(x, idx, weights))


def binned_gather(x, indices, bins, bin_size, top_k):
    out = torch.zeros(bins.numel(), bin_size, x.shape[1], dtype=x.dtype)
    start = 0
    for e, end in enumerate(bins.tolist()):
        n = min(end - start, bin_size)
        out[e, :n] = x[indices[start:start + n].long() // top_k]
        start = end
    return out


def binned_scatter(x, indices, weights, bins, top_k):
    out = torch.zeros(indices.numel() // top_k, x.shape[2], dtype=x.dtype)
    start = 0
    for e, end in enumerate(bins.tolist()):
        n = min(end - start, x.shape[1])
        idx = indices[start:start + n].long()
        out = out.index_add(0, idx // top_k, weighted(x[e, :n], idx, weights))
        start = end
    return out


def config(variant):
    dropless = variant == "moe"
    cfg = TransformerConfig.llama_like_moe(
        d_model=16, vocab_size=VOCAB, n_layers=2, n_heads=4, num_experts=4, top_k=2, expert_hidden_size=8,
        lb_loss_weight=0.01, z_loss_weight=0.001, dropless=dropless, reordered_norm=dropless,
        capacity_factor=None if dropless else 2.0,
    )
    if not dropless:
        moe = cfg.block.feed_forward_moe
        moe.router.gating_function = "sigmoid"
        moe.router.normalize_expert_weights = 1.0
        moe.lb_loss_granularity = "instance"
    return cfg


def main():
    pinned.require()
    torch.set_num_threads(1)
    moe_ops.gather, moe_ops.scatter = gather, scatter
    moe_ops.binned_gather, moe_ops.binned_scatter = binned_gather, binned_scatter
    for variant in ("moe", "moe-capacity"):
        train(variant)


def train(variant):
    cfg = config(variant)
    model = cfg.build(init_device="cpu")
    model.init_weights(device=torch.device("cpu"))
    model.train()
    init = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}
    save_file(init, f"{OUT}/{variant}-init.safetensors")
    optim = AdamWConfig(
        lr=1e-2, betas=(0.9, 0.95), weight_decay=0.1,
        group_overrides=[OptimGroupOverride(params=["embeddings.weight"], opts=dict(weight_decay=0.0))],
    ).build(model)
    sched = CosWithWarmup(warmup=2)
    g = torch.Generator().manual_seed(5)
    steps, batches = [], []
    for step in range(1, STEPS + 1):
        ids = torch.randint(0, VOCAB, (BATCH, SEQ), generator=g)
        batches.append(ids.tolist())
        labels = get_labels({"input_ids": ids})
        div = (labels != -100).sum()
        ce_total = torch.tensor(0.0)
        for start in range(0, BATCH, MICRO):
            out = model(ids[start:start + MICRO], labels=labels[start:start + MICRO], loss_reduction="sum",
                        loss_div_factor=div, return_logits=False)
            ce_total += out.ce_loss.detach()
            out.loss.backward()
        model.post_batch()
        metrics = {k: v.item() for k, (v, _) in model.compute_auxiliary_metrics(reset=True).items()}
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        for group in optim.param_groups:
            group["lr"] = sched.get_lr(group["initial_lr"], step, STEPS)
        optim.step()
        optim.zero_grad(set_to_none=True)
        steps.append({"step": step, "ce_loss": ce_total.item(), "grad_norm": grad_norm.item(),
                      "metrics": {f"train/{k}": v for k, v in metrics.items()}})
    final = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}
    save_file(final, f"{OUT}/{variant}-final.safetensors")
    with open(f"{OUT}/{variant}-train.json", "w") as f:
        json.dump({"model": cfg.as_dict(include_class_name=False), "micro_batch": MICRO, "batches": batches,
                   "steps": steps}, f)
    print(variant, [(s["step"], round(s["ce_loss"], 4), round(s["metrics"]["train/load balancing loss"], 5)) for s in steps])


if __name__ == "__main__":
    main()

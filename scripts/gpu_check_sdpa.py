"""Which kernel torch's scaled_dot_product_attention runs for olmo-train's attention shapes on this GPU
(scripts/gpu-check.sh). olmo-train calls the same ATen op through libtorch, so the dispatcher's choice is
the same; the profiler names the kernel. One line per shape; exits 1 when a causal, unmasked shape falls
to the math path (the [B, H, T, T] scores that run out of memory at long sequences)."""
import sys

import torch
import torch.nn.functional as F
from torch.profiler import ProfilerActivity, profile

SHAPES = [  # name, heads, kv heads, head dim
    ("olmo2_190M", 12, 12, 64),
    ("olmo2_1B", 16, 16, 128),
    ("gqa 32/8 x128", 32, 8, 128),
]


def kernel(q, k, v, **kw):
    def step():
        out = F.scaled_dot_product_attention(q, k, v, **kw)
        out.sum().backward()

    step()  # warm-up: the first call may autotune
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        step()
        torch.cuda.synchronize()
    names = [e.key for e in prof.key_averages()]
    attn = [n for n in names if any(s in n.lower() for s in ("flash", "fmha", "efficient", "attention"))]
    if attn:
        return "fused: " + ", ".join(sorted({n[:60] for n in attn})[:2])
    if any("softmax" in n.lower() for n in names):
        return "math (softmax kernels)"
    return "unknown: " + ", ".join(names[:3])


def main():
    seq, batch = int(sys.argv[1]), int(sys.argv[2])
    bad = 0
    for name, h, kvh, d in SHAPES:
        mk = lambda n: torch.randn(batch, n, seq, d, device="cuda", dtype=torch.bfloat16, requires_grad=True)
        q, k, v = mk(h), mk(kvh), mk(kvh)
        gqa = {"enable_gqa": True} if kvh != h else {}
        causal = kernel(q, k, v, is_causal=True, **gqa)
        mask = torch.ones(seq, seq, device="cuda", dtype=torch.bool).tril()
        masked = kernel(q, k, v, attn_mask=mask, **gqa)
        print(f"{name} [B={batch}, H={h}/{kvh}, T={seq}, D={d}] bf16: causal -> {causal}; explicit mask -> {masked}")
        bad += causal.startswith("math")
        del q, k, v
        torch.cuda.empty_cache()
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())

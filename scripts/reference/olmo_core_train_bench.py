"""OLMo-core's side of scripts/bench-train.sh: train FACTORY on the tokenized demo corpus for STEPS steps
on CPU in fp32, doing what TransformerTrainModule.train_batch + optim_step do (OLMo-core's model, loss,
AdamWConfig param groups, CosWithWarmup, max_grad_norm 1.0), batches from OLMo-core's own data loader.
Prints time to first step (from LAUNCH, the wall-clock time at which the shell started this process, to
the end of step 1), start-up (until the first batch is in hand, before any step compute) and tokens/s
over the steps after the first (as its speed monitor does).

    .venv-ref/bin/python scripts/reference/olmo_core_train_bench.py FACTORY TOKENS_NPY STEPS [moe]

With `moe` the factory's feed-forward becomes MOE (below: OLMo-core's dropless experts, as olmoe_1B_7B),
with its two CUDA-only Triton kernels replaced by the plain-torch gather and scatter of
olmo_core_moe.py; scripts/bench-moe.sh gives olmo-train the same model through overrides.
"""
import os
import sys
import tempfile
import time

T0 = float(os.environ.get("LAUNCH", time.time()))
import torch  # noqa: E402

from olmo_core.data import DataCollator, NumpyFSLDatasetConfig, TokenizerConfig  # noqa: E402
from olmo_core.data.data_loader import NumpyDataLoaderBase  # noqa: E402
from olmo_core.data.utils import get_labels  # noqa: E402
from olmo_core.nn.transformer import TransformerConfig  # noqa: E402
from olmo_core.optim import AdamWConfig, CosWithWarmup, OptimGroupOverride  # noqa: E402

factory, path, steps = sys.argv[1], sys.argv[2], int(sys.argv[3])
moe = sys.argv[4:5] == ["moe"]
SEQ, GBS, MICRO = 256, 2048, 2048
# Keep in step with scripts/bench-moe.sh.
MOE = dict(num_experts=8, hidden_size=256, top_k=2, lb_loss_weight=0.01, z_loss_weight=0.001)
tok = TokenizerConfig.dolma2()
config = getattr(TransformerConfig, factory)(vocab_size=tok.padded_vocab_size())
if moe:
    import olmo_core.ops.moe as moe_ops  # noqa: E402
    from olmo_core.nn.moe import MoEConfig, MoERouterConfig, MoEType  # noqa: E402
    from olmo_core.nn.transformer import TransformerBlockType, TransformerType  # noqa: E402
    from olmo_core_moe import gather, scatter  # noqa: E402

    moe_ops.gather, moe_ops.scatter = gather, scatter
    config.name = TransformerType.moe
    config.block.name = TransformerBlockType.moe_reordered_norm
    config.block.feed_forward = None
    config.block.feed_forward_moe = MoEConfig(
        name=MoEType.dropless, num_experts=MOE["num_experts"], hidden_size=MOE["hidden_size"],
        router=MoERouterConfig(top_k=MOE["top_k"]), lb_loss_weight=MOE["lb_loss_weight"],
        z_loss_weight=MOE["z_loss_weight"])
model = config.build(init_device="cpu")
model.init_weights(device=torch.device("cpu"))
optim = AdamWConfig(lr=0.01, weight_decay=0.01, group_overrides=[OptimGroupOverride(params=["embeddings.weight"], opts=dict(weight_decay=0.0))]).build(model)
sched = CosWithWarmup(warmup=10)
ds = NumpyFSLDatasetConfig(paths=[path], sequence_length=SEQ, tokenizer=tok, work_dir=tempfile.mkdtemp()).build()
ds.prepare()
dl = NumpyDataLoaderBase.wrap_numpy_dataset(ds, global_batch_size=GBS, collator=DataCollator(pad_token_id=tok.pad_token_id), work_dir=tempfile.mkdtemp(), seed=0, fs_local_rank=0)
dl.reshuffle(epoch=1)
first_step_end, startup, losses = None, None, []
for step, batch in enumerate(dl, start=1):
    if startup is None:
        startup = time.time() - T0
    labels = get_labels(batch)
    div = (labels != -100).sum()
    ids = batch["input_ids"]
    n = MICRO // SEQ
    for s in range(0, ids.shape[0], n):
        out = model(ids[s:s + n], labels=labels[s:s + n], loss_reduction="sum", loss_div_factor=div, return_logits=False)
        out.loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    for g in optim.param_groups:
        g["lr"] = sched.get_lr(g["initial_lr"], step, steps)
    optim.step()
    optim.zero_grad(set_to_none=True)
    losses.append(out.ce_loss.item())
    if first_step_end is None:
        first_step_end = time.time()
    if step == steps:
        break
elapsed = time.time() - first_step_end
print(f"olmo-core {factory}{'+moe' if moe else ''}: time to first step {first_step_end - T0:.2f} s, {(steps - 1) * GBS / elapsed:.0f} tokens/s, start-up {startup:.2f} s")

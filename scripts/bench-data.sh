#!/usr/bin/env bash
# Data-loading throughput in instances/s: olmo-train's loader (OLMo-core's example settings,
# num_workers=4), a raw memory-mapped read of the same instances, and OLMo-core 3.0.0's
# NumpyFSLDataLoader on the same files with num_workers=0 (4 reader threads) and num_workers=4
# (worker processes), at sequence lengths 256 and 4096, 64 instances a batch; then olmo-train's loader
# at seq 2048 on the same files read locally and from a local HTTP server by byte range (remote data).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/bench-side.sh
DIR=${DIR:-/tmp/olmo-train-bench-data}
scripts/setup.sh
scripts/reference/setup-ref.sh
if [ ! -f "$DIR/tokens-3.npy" ]; then
    mkdir -p "$DIR"
    .venv-ref/bin/python -c "
import numpy as np
rng = np.random.default_rng(0)
for i in range(4):
    rng.integers(0, 100257, size=16_000_000, dtype=np.uint32).tofile('$DIR/tokens-%d.npy' % i)
"
fi
for seq in 256 4096; do
    batches=$(( seq == 256 ? 2000 : 200 ))
    side "seq $seq: olmo-train loader" cargo bench --quiet --bench data_loader -- "$DIR" "$seq" "$batches"
    for workers in 0 4; do
    side "seq $seq: OLMo-core loader (num_workers=$workers)" .venv-ref/bin/python - "$DIR" "$seq" "$batches" "$workers" <<'PY'
import glob, sys, tempfile, time
from olmo_core.data import DataCollator, NumpyFSLDatasetConfig, TokenizerConfig
from olmo_core.data.data_loader import NumpyDataLoaderBase
d, seq, batches, workers = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
ds = NumpyFSLDatasetConfig(paths=sorted(glob.glob(f"{d}/*.npy")), sequence_length=seq, tokenizer=TokenizerConfig.dolma2(), work_dir=tempfile.mkdtemp()).build()
ds.prepare()
dl = NumpyDataLoaderBase.wrap_numpy_dataset(ds, global_batch_size=seq * 64, collator=DataCollator(pad_token_id=100277), work_dir=tempfile.mkdtemp(), seed=0, fs_local_rank=0, num_workers=workers)
dl.reshuffle(epoch=1)
t = time.perf_counter(); n = 0
for i, b in enumerate(dl):
    n += b["input_ids"].shape[0]
    if i + 1 == batches: break
print(f"seq {seq}: OLMo-core loader (num_workers={workers}) {n / (time.perf_counter() - t):.0f} instances/s")
PY
    done
done
side "seq 2048: olmo-train loader, local files" cargo bench --quiet --bench data_loader -- "$DIR" 2048 200
side "seq 2048: olmo-train loader, local HTTP server" cargo bench --quiet --bench data_loader -- "$DIR" 2048 200 http
bench_exit

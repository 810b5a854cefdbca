"""Reads `olmo-train tokenize` output the way OLMo-core and pandas do, and checks it.

    .venv-ref/bin/python scripts/reference/check_tokenized.py DEST_DIR DTYPE EOS_ID

Asserts: every part-*.npy is a raw little-endian array of DTYPE (numpy.memmap); its part-*.csv.gz
(pandas.read_csv, no header) has rows start,end,id,src,loc that tile the array and end at EOS; and
OLMo-core's own NumpyFSLDataset (ai2-olmo-core 3.0.0) over the parts yields instances equal to the
array cut per file. Prints one line per file and exits non-zero on the first mismatch.
"""
import glob
import sys

import numpy as np
import pandas as pd

dest, dtype, eos = sys.argv[1], np.dtype(sys.argv[2]), int(sys.argv[3])
parts = sorted(glob.glob(f"{dest}/part-*.npy"))
assert parts, f"no part files in {dest}"
for path in parts:
    arr = np.memmap(path, dtype=dtype, mode="r")
    meta = pd.read_csv(path.replace(".npy", ".csv.gz"), header=None, names=["start", "end", "id", "src", "loc"])
    assert meta["start"].iloc[0] == 0 and meta["end"].iloc[-1] == len(arr), path
    assert (meta["start"].values[1:] == meta["end"].values[:-1]).all(), path
    assert (arr[meta["end"].values - 1] == eos).all(), path
    assert (meta["loc"] >= 1).all(), path
    print(f"{path}: {len(arr)} tokens, {len(meta)} documents")

from olmo_core.data import NumpyFSLDatasetConfig, TokenizerConfig  # noqa: E402

seq = 64
tok = TokenizerConfig(vocab_size=int(np.iinfo(dtype).max), eos_token_id=eos, pad_token_id=eos)
ds = NumpyFSLDatasetConfig(paths=parts, sequence_length=seq, tokenizer=tok, dtype=dtype.name, work_dir="/tmp/olmo-core-check").build()
ds.prepare()
expected = np.concatenate([np.memmap(p, dtype=dtype, mode="r")[: (len(np.memmap(p, dtype=dtype, mode="r")) // seq) * seq] for p in parts])
assert len(ds) == len(expected) // seq, (len(ds), len(expected) // seq)
for i in range(0, len(ds), max(1, len(ds) // 50)):
    got = ds[i]["input_ids"].numpy()
    assert (got == expected[i * seq : (i + 1) * seq]).all(), i
print(f"OLMo-core NumpyFSLDataset: {len(ds)} instances of {seq} tokens match")

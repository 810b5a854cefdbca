"""Expected data-pipeline values from the reference implementation (ai2-olmo-core 3.0.0's own dataset and
loader classes), for tests/data_parity.rs.

    .venv-ref/bin/python scripts/reference/olmo_core_data.py make-files   # once: tests/fixtures/data/*.npy
    .venv-ref/bin/python scripts/reference/olmo_core_data.py > tests/fixtures/data/expected.json

The token files are small raw uint16 arrays (vocab 1000, EOS 0, BOS 1 in the BOS file) with documents of
random lengths and, in one file, long repeated n-grams for the instance filter.
"""
import json
import sys
import tempfile

import numpy as np
from olmo_core.data import (
    DataCollator,
    NumpyFSLDatasetConfig,
    NumpyPaddedFSLDatasetConfig,
    TokenizerConfig,
)
from olmo_core.data.data_loader import NumpyDataLoaderBase
from olmo_core.data.numpy_dataset import InstanceFilterConfig

DIR = "tests/fixtures/data"
FILES = [f"{DIR}/tokens-a.npy", f"{DIR}/tokens-b.npy", f"{DIR}/tokens-c.npy"]
BOS_FILE = f"{DIR}/tokens-bos.npy"
MASK_FILE = f"{DIR}/mask-a.npy"
TOK = TokenizerConfig(vocab_size=1000, eos_token_id=0, pad_token_id=999, bos_token_id=None, identifier=None)
TOK_BOS = TokenizerConfig(vocab_size=1000, eos_token_id=0, pad_token_id=999, bos_token_id=1, identifier=None)


def make_files():
    rng = np.random.default_rng(1234)

    def docs(n_tokens, bos=False, repeat=False):
        out = []
        while len(out) < n_tokens:
            n = int(rng.integers(5, 150))
            doc = list(rng.integers(2, 999, size=n))
            if repeat and rng.random() < 0.3:
                doc = [7, 8, 9] * 40 + doc
            out += ([1] if bos else []) + doc + [0]
        return np.array(out[:n_tokens], dtype=np.uint16)

    docs(5000).tofile(FILES[0])
    docs(3333, repeat=True).tofile(FILES[1])
    docs(7001).tofile(FILES[2])
    docs(4000, bos=True).tofile(BOS_FILE)
    (rng.random(5000) < 0.8).astype(np.bool_).tofile(MASK_FILE)


def ids(t):
    return [int(x) for x in t.tolist()]


def fsl(seq, **kw):
    return NumpyFSLDatasetConfig(paths=FILES, sequence_length=seq, tokenizer=TOK, work_dir=tempfile.mkdtemp(), **kw).build()


def loader(ds, gbs, seed, rank=0, world=1, work_dir=None):
    return NumpyDataLoaderBase.wrap_numpy_dataset(
        ds, global_batch_size=gbs, collator=DataCollator(pad_token_id=999), work_dir=work_dir or tempfile.mkdtemp(),
        seed=seed, dp_world_size=world, dp_rank=rank, fs_local_rank=0, num_threads=1,
    )


def main():
    out = {}
    ds = fsl(64)
    ds.prepare()
    out["fsl"] = {"len": len(ds), "fingerprint": ds.fingerprint, "instances": [ids(ds[i]["input_ids"]) for i in range(len(ds))]}

    mt = fsl(64, max_target_sequence_length=256)
    mt.prepare()
    out["fsl_max_target_256"] = {"len": len(mt), "fingerprint": mt.fingerprint, "instances": [ids(mt[i]["input_ids"]) for i in range(len(mt))]}

    out["permutations"] = []
    for name, d in [("fsl", ds), ("fsl_max_target_256", mt)]:
        for seed in (0, 1, 42):
            for epoch in (1, 2, 3):
                dl = loader(d, 64 * 8, seed)
                dl.reshuffle(epoch=epoch)
                out["permutations"].append({"dataset": name, "seed": seed, "epoch": epoch, "indices": [int(i) for i in dl.get_global_indices()]})

    out["rank_batches"] = []
    for world in (1, 2, 4):
        for rank in range(world):
            dl = loader(ds, 64 * 8, 3, rank=rank, world=world)
            dl.reshuffle(epoch=1)
            batches = [{"index": [int(i) for i in b["index"]], "input_ids": [ids(r) for r in b["input_ids"]]} for b in dl]
            out["rank_batches"].append({"world": world, "rank": rank, "total_batches": dl.total_batches, "batches": batches})

    dl = loader(ds, 64 * 8, 3)
    dl.reshuffle(epoch=1)
    for i, _ in enumerate(dl):
        if i == 4:
            break
    out["state_after_5"] = dl.state_dict()

    docs = NumpyFSLDatasetConfig(paths=FILES, sequence_length=64, tokenizer=TOK, generate_doc_lengths=True, work_dir=tempfile.mkdtemp()).build()
    docs.prepare()
    out["doc_lens"] = [ids(docs[i]["doc_lens"]) for i in range(len(docs))]
    bos = NumpyFSLDatasetConfig(paths=[BOS_FILE], sequence_length=64, tokenizer=TOK_BOS, generate_doc_lengths=True, work_dir=tempfile.mkdtemp()).build()
    bos.prepare()
    out["doc_lens_bos"] = [ids(bos[i]["doc_lens"]) for i in range(len(bos))]

    filt = NumpyFSLDatasetConfig(paths=FILES, sequence_length=64, tokenizer=TOK, work_dir=tempfile.mkdtemp(),
                                 instance_filter_config=InstanceFilterConfig(repetition_max_period=13, repetition_min_period=1, repetition_max_count=16)).build()
    filt.prepare()
    out["instance_mask"] = [bool(filt[i]["instance_mask"]) for i in range(len(filt))]

    masked = NumpyFSLDatasetConfig(paths=[FILES[0]], label_mask_paths=[MASK_FILE], sequence_length=64, tokenizer=TOK, work_dir=tempfile.mkdtemp()).build()
    masked.prepare()
    out["label_mask"] = [[bool(x) for x in masked[i]["label_mask"]] for i in range(len(masked))]

    padded = NumpyPaddedFSLDatasetConfig(paths=FILES, sequence_length=64, tokenizer=TOK, work_dir=tempfile.mkdtemp(),
                                         metadata=[{"label": "a"}, {"label": "b"}, {"label": "c"}]).build()
    padded.prepare()
    out["padded"] = {
        "len": len(padded),
        "fingerprint": padded.fingerprint,
        "instances": [ids(padded[i]["input_ids"]) for i in range(len(padded))],
        "label_mask": [[bool(x) for x in padded[i]["label_mask"]] for i in range(len(padded))],
    }
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    if sys.argv[1:] == ["make-files"]:
        make_files()
    else:
        main()

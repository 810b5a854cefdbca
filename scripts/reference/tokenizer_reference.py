"""Expected token ids for `olmo-train tokenize`, from an independent implementation: Python `tiktoken`
built from the same BPE ranks files that the tiktoken-rs crate ships (no download), with OLMo's dolma2
special tokens, applied the way `dolma tokens` does (text.strip(), empty documents skipped, EOS appended
unless already last).

    scripts/reference/setup-ref.sh
    .venv-ref/bin/python scripts/reference/tokenizer_reference.py > tests/fixtures/tokenize/expected.json

Output: for each tokenizer (dolma2, gpt2) and each `encode_special_tokens` setting, the full ids of every
hard case, and for the bundled demo corpus a sha256 and length per document id. It also covers the
`tokenizer.json` route: `tiny-bpe` is a small byte-level BPE trained on the demo corpus with HF `tokenizers`
(`train-tiny` writes tests/fixtures/tokenize/tiny-bpe/tokenizer.json once), encoded by HF `tokenizers`.
"""
import glob
import gzip
import hashlib
import json
import os

import tiktoken
from tiktoken.load import load_tiktoken_bpe

CL100K_PAT = r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+|\s++$|\s*[\r\n]|\s+(?!\S)|\s"""
GPT2_PAT = r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}++| ?\p{N}++| ?[^\s\p{L}\p{N}]++|\s++$|\s+(?!\S)|\s"""


def assets_dir():
    home = os.path.expanduser(os.environ.get("CARGO_HOME", "~/.cargo"))
    found = sorted(glob.glob(f"{home}/registry/src/*/tiktoken-rs-0.12*/assets"))
    if not found:
        raise SystemExit("tiktoken-rs assets not found: run `cargo fetch` first")
    return found[-1]


def encodings():
    assets = assets_dir()
    dolma2 = tiktoken.Encoding(
        "dolma2",
        pat_str=CL100K_PAT,
        mergeable_ranks=load_tiktoken_bpe(f"{assets}/cl100k_base.tiktoken"),
        special_tokens={
            "<|endoftext|>": 100257,
            "<|fim_prefix|>": 100258,
            "<|fim_middle|>": 100259,
            "<|fim_suffix|>": 100260,
            "<|endofprompt|>": 100276,
            "<|pad|>": 100277,
        },
    )
    gpt2 = tiktoken.Encoding(
        "gpt2",
        pat_str=GPT2_PAT,
        mergeable_ranks=load_tiktoken_bpe(f"{assets}/r50k_base.tiktoken"),
        special_tokens={"<|endoftext|>": 50256},
    )
    return {"dolma2": (dolma2, 100257), "gpt2": (gpt2, 50256)}


def dolma_ids(enc, eos, text, encode_special_tokens):
    text = text.strip()
    if not text:
        return None
    ids = enc.encode_ordinary(text) if encode_special_tokens else enc.encode(text, allowed_special="all")
    if not ids or ids[-1] != eos:
        ids.append(eos)
    return ids


def read_docs(pattern):
    for path in sorted(glob.glob(pattern)):
        opener = gzip.open if path.endswith(".gz") else open
        with opener(path, "rt", encoding="utf-8") as f:
            for line in f:
                try:
                    doc = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if isinstance(doc.get("text"), str) and isinstance(doc.get("id"), str) and isinstance(doc.get("source"), str):
                    yield doc


def digest(ids):
    return hashlib.sha256(",".join(map(str, ids)).encode()).hexdigest()


TINY = "tests/fixtures/tokenize/tiny-bpe/tokenizer.json"


def train_tiny():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=1000, special_tokens=["<|endoftext|>", "<|pad|>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator((d["text"] for d in read_docs("examples/data/kjv-*.jsonl.gz")), trainer)
    tok.save(TINY)


def tiny_bpe_cases():
    from tokenizers import Tokenizer

    out = {}
    for special in (False, True):
        tok = Tokenizer.from_file(TINY)
        tok.encode_special_tokens = special
        eos = tok.token_to_id("<|endoftext|>")
        hard = {}
        for d in read_docs("tests/fixtures/tokenize/hard_cases.jsonl"):
            text = d["text"].strip()
            if not text:
                hard[d["id"]] = None
                continue
            ids = tok.encode(text, add_special_tokens=False).ids
            if not ids or ids[-1] != eos:
                ids.append(eos)
            hard[d["id"]] = ids
        out[f"tiny-bpe/encode_special_tokens={str(special).lower()}"] = {"hard_cases": hard, "corpus": {}, "eos": eos}
    return out


def main():
    if __import__("sys").argv[1:] == ["train-tiny"]:
        return train_tiny()
    out = tiny_bpe_cases()
    for name, (enc, eos) in encodings().items():
        for special in (False, True):
            key = f"{name}/encode_special_tokens={str(special).lower()}"
            hard = {d["id"]: dolma_ids(enc, eos, d["text"], special) for d in read_docs("tests/fixtures/tokenize/hard_cases.jsonl")}
            corpus = {}
            for d in read_docs("examples/data/kjv-*.jsonl.gz"):
                ids = dolma_ids(enc, eos, d["text"], special)
                corpus[d["id"]] = {"len": len(ids), "sha256": digest(ids)}
            out[key] = {"hard_cases": hard, "corpus": corpus}
    json.dump(out, __import__("sys").stdout, indent=0, sort_keys=True, ensure_ascii=False)


if __name__ == "__main__":
    main()

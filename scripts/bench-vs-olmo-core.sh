#!/usr/bin/env bash
# One command, one table: olmo-train against ai2-olmo-core 3.0.0 (installed into .venv-ref when missing)
# on this machine. Each benchmark script runs both sides (alternating where it loops); this runs each
# script REPS times and prints the median of every number with the ratio. Sections: --dry-run wall
# time, tokenization, data loading, training (olmo2_1M and olmo2_14M: tokens/s, time to first step, peak
# RSS, start-up), checkpoint save/load (against a plain copy), downstream evaluation (olmo-eval path).
set -euo pipefail
cd "$(dirname "$0")/.."
REPS=${REPS:-3}
LOG=$(mktemp -d)/bench
mkdir -p "$LOG"
scripts/setup.sh
scripts/reference/setup-ref.sh
# A failed repetition (OLMo-core's worker processes have aborted now and then) leaves its rows out of
# the medians instead of ending the whole run.
for i in $(seq "$REPS"); do
    N=5 scripts/bench-dry-run.sh >>"$LOG/dry" 2>/dev/null || echo "bench-dry-run failed (repetition $i)" >&2
    COPIES=4 scripts/bench-tokenize.sh >>"$LOG/tok" 2>/dev/null || echo "bench-tokenize failed (repetition $i)" >&2
    scripts/bench-data.sh >>"$LOG/data" 2>/dev/null || echo "bench-data failed (repetition $i)" >&2
    STEPS=12 scripts/bench-train.sh >>"$LOG/train" 2>/dev/null || echo "bench-train failed (repetition $i)" >&2
done
scripts/bench-checkpoint.sh >>"$LOG/ckpt" 2>/dev/null || true
scripts/bench-downstream.sh >>"$LOG/downstream" 2>/dev/null || true
python3 - "$LOG" <<'PY'
import re, statistics, sys, os, datetime, platform
d = sys.argv[1]
def grab(name, pattern):
    text = open(os.path.join(d, name)).read() if os.path.exists(os.path.join(d, name)) else ""
    vals = [float(m.replace(",", "")) for m in re.findall(pattern, text)]
    return statistics.median(vals) if vals else float("nan")
rows = []
def row(what, ours, theirs, unit, better="higher"):
    ratio = (ours / theirs) if better == "higher" else (theirs / ours)
    rows.append((what, f"{ours:,.3g} {unit}", f"{theirs:,.3g} {unit}", f"{ratio:.2f}x"))
row("--dry-run wall time", grab("dry", r"olmo-train ([\d.]+)"), grab("dry", r"OLMo-core ([\d.]+)"), "s", "lower")
for p in (1, 2):
    row(f"tokenize, {p} process(es)", grab("tok", rf"olmo-train\s+processes={p}\s+\d+ tokens\s+[\d.]+ s\s+(\d+) tokens/s"),
        grab("tok", rf"dolma\s+processes={p}\s+\d+ tokens\s+[\d.]+ s\s+(\d+) tokens/s"), "tok/s")
for seq in (256, 4096):
    row(f"data loader, seq {seq}", grab("data", rf"seq {seq}: olmo-train loader (\d+)"),
        max(grab("data", rf"seq {seq}: OLMo-core loader \(num_workers=0\) (\d+)"), grab("data", rf"seq {seq}: OLMo-core loader \(num_workers=4\) (\d+)")), "inst/s")
for f in ("olmo2_1M", "olmo2_14M"):
    row(f"train {f} tokens/s", grab("train", rf"olmo-train {f}: time to first step [\d.]+ s, (\d+) tokens/s"),
        grab("train", rf"olmo-core {f}: time to first step [\d.]+ s, (\d+) tokens/s"), "tok/s")
    row(f"train {f} time to first step", grab("train", rf"olmo-train {f}: time to first step ([\d.]+)"),
        grab("train", rf"olmo-core {f}: time to first step ([\d.]+)"), "s", "lower")
    row(f"train {f} start-up (to first batch)", grab("train", rf"olmo-train {f}: .* start-up ([\d.]+) s"),
        grab("train", rf"olmo-core {f}: .* start-up ([\d.]+) s"), "s", "lower")
    row(f"train {f} peak RSS", grab("train", rf"olmo-train {f}: .* peak RSS (\d+) MiB"), grab("train", rf"olmo-core {f}: peak RSS (\d+) MiB"), "MiB", "lower")
row("checkpoint save, 1B fp32 (vs plain copy)", grab("ckpt", r"save ([\d.]+) s"), grab("ckpt", r"plain copy \+ fsync ([\d.]+) s"), "s", "lower")
row("checkpoint load, 1B fp32 (vs plain copy)", grab("ckpt", r"load ([\d.]+) s"), grab("ckpt", r"plain copy \+ fsync ([\d.]+) s"), "s", "lower")
for t in ("arc_easy", "winogrande"):
    row(f"downstream eval {t}, olmo2_14M", grab("downstream", rf"olmo-train {t}: ([\d.]+) s"),
        grab("downstream", rf"olmo-core {t}: ([\d.]+) s"), "s", "lower")
print(f"olmo-train vs ai2-olmo-core 3.0.0 — {datetime.date.today()} — {platform.machine()}, {os.cpu_count()} cores; medians of the runs; ratio > 1 means olmo-train is better")
w = [max(len(r[i]) for r in rows + [("what", "olmo-train", "OLMo-core / reference", "ratio")]) for i in range(4)]
for r in [("what", "olmo-train", "OLMo-core / reference", "ratio")] + rows:
    print("  ".join(c.ljust(w[i]) for i, c in enumerate(r)))
PY

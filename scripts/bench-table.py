"""The table of scripts/bench-vs-olmo-core.sh, from the logs its bench scripts wrote into LOG:
    python3 scripts/bench-table.py LOG WALL_SECONDS REPS
Each cell is the median of that side's numbers over the repetitions. A side with no number shows why: the
"TAG: FAILED: reason" line its bench script printed (scripts/bench-side.sh), else the last line the script
wrote to stderr. Exits 1 when any cell has no number.
"""
import datetime
import os
import re
import statistics
import sys

LOG, WALL, REPS = sys.argv[1], int(sys.argv[2]), sys.argv[3]
REASON_CHARS = 110


def read(name):
    path = os.path.join(LOG, name)
    return open(path, errors="replace").read() if os.path.exists(path) else ""


def side(log, tags, *patterns):
    """(median or None, failure reasons) of one side: the best (largest) of the patterns' medians."""
    text = read(log)
    medians = []
    for pattern in patterns:
        values = [float(v.replace(",", "")) for v in re.findall(pattern, text)]
        if values:
            medians.append(statistics.median(values))
    reasons = [r for t in tags for r in re.findall(rf"^{re.escape(t)}: FAILED: (.*)$", text, re.M)]
    if medians:
        return max(medians), reasons
    if not reasons:
        err = [line for line in read(log + ".err").splitlines() if line.strip()]
        reasons = [err[-1] if err else f"{log}: no output and nothing on stderr"]
    return None, reasons


rows, notes, empty = [], [], 0


def number(value):
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"


def row(what, ours, theirs, unit, better="higher"):
    global empty
    cells = []
    for who, (value, reasons) in (("olmo-train", ours), ("reference", theirs)):
        if value is None:
            empty += 1
            cells.append("failed: " + reasons[-1][:REASON_CHARS])
        else:
            cells.append(f"{number(value)} {unit}")
            if reasons:
                notes.append(f"{what}, {who}: {len(reasons)} of {REPS} runs failed: {reasons[-1][:REASON_CHARS]}")
    (o, _), (t, _) = ours, theirs
    ratio = "-" if o is None or t is None else f"{(o / t) if better == 'higher' else (t / o):.2f}x"
    rows.append((what, *cells, ratio))


row("--dry-run wall time", side("dry", ["olmo-train dry-run"], r"olmo-train dry-run: ([\d.]+) s"),
    side("dry", ["OLMo-core dry-run"], r"OLMo-core dry-run: ([\d.]+) s"), "s", "lower")
for p in (1, 2):
    row(f"tokenize, {p} process(es)",
        side("tok", [f"olmo-train processes={p}"], rf"olmo-train\s+processes={p}\s+\d+ tokens\s+[\d.]+ s\s+(\d+) tokens/s"),
        side("tok", [f"dolma processes={p}"], rf"dolma\s+processes={p}\s+\d+ tokens\s+[\d.]+ s\s+(\d+) tokens/s"), "tok/s")
for seq in (256, 4096):
    ref = f"seq {seq}: OLMo-core loader (num_workers="
    row(f"data loader, seq {seq}",
        side("data", [f"seq {seq}: olmo-train loader"], rf"seq {seq}: olmo-train loader (\d+)"),
        side("data", [ref + "0)", ref + "4)"], re.escape(ref) + r"0\) (\d+)", re.escape(ref) + r"4\) (\d+)"), "inst/s")
for f in ("olmo2_1M", "olmo2_14M"):
    ours, theirs = [f"olmo-train {f}"], [f"olmo-core {f}"]
    row(f"train {f} tokens/s (checkpointer off on both sides)",
        side("train", ours, rf"olmo-train {f}: time to first step [\d.]+ s, (\d+) tokens/s"),
        side("train", theirs, rf"olmo-core {f}: time to first step [\d.]+ s, (\d+) tokens/s"), "tok/s")
    # OLMo-core's default checkpointer, no save due in the timed steps, against olmo-train without one.
    row(f"train {f} tokens/s, default checkpointer (vs olmo-train without)",
        side("train", [f"olmo-train {f} default checkpointer"], rf"olmo-train {f} default checkpointer: ([\d.]+) tokens/s"),
        side("train", ours, rf"olmo-train {f} default checkpointer: [\d.]+ tokens/s \(no checkpointer: ([\d.]+) tokens/s"),
        "tok/s")
    row(f"train {f} time to first step", side("train", ours, rf"olmo-train {f}: time to first step ([\d.]+)"),
        side("train", theirs, rf"olmo-core {f}: time to first step ([\d.]+)"), "s", "lower")
    row(f"train {f} start-up (to first batch)", side("train", ours, rf"olmo-train {f}: .* start-up ([\d.]+) s"),
        side("train", theirs, rf"olmo-core {f}: .* start-up ([\d.]+) s"), "s", "lower")
    row(f"train {f} peak RSS", side("train", ours, rf"olmo-train {f}: .* peak RSS (\d+) MiB"),
        side("train", theirs, rf"olmo-core {f}: peak RSS (\d+) MiB"), "MiB", "lower")
copy = side("ckpt", ["checkpoint"], r"plain copy \+ fsync ([\d.]+) s")
row("checkpoint save, 1B fp32 (vs plain copy)", side("ckpt", ["checkpoint"], r"save ([\d.]+) s"), copy, "s", "lower")
row("checkpoint load, 1B fp32 (vs plain copy)", side("ckpt", ["checkpoint"], r"load ([\d.]+) s"), copy, "s", "lower")
for t in ("arc_easy", "winogrande"):
    row(f"downstream eval {t}, olmo2_14M", side("downstream", [f"olmo-train {t}"], rf"olmo-train {t}: ([\d.]+) s"),
        side("downstream", [f"olmo-core {t}"], rf"olmo-core {t}: ([\d.]+) s"), "s", "lower")


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return "unknown CPU"


print(f"olmo-train vs ai2-olmo-core 3.0.0 - {datetime.date.today()} - {cpu_model()}, {os.cpu_count()} cores - "
      f"suite wall time {WALL // 60}m{WALL % 60:02d}s, REPS={REPS}; medians; ratio > 1 means olmo-train is better")
header = ("what", "olmo-train", "OLMo-core / reference", "ratio")
widths = [max(len(r[i]) for r in rows + [header]) for i in range(4)]
for r in [header] + rows:
    print("  ".join(c.ljust(widths[i]) for i, c in enumerate(r)).rstrip())
for note in notes:
    print("note:", note)
if empty:
    print(f"{empty} cell(s) without a number: see the reasons above and the logs in {LOG}", file=sys.stderr)
sys.exit(1 if empty else 0)

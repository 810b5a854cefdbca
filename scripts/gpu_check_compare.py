"""Comparisons for scripts/gpu-check.sh. Each subcommand prints one detail line and exits 0 (within
tolerance) or 1 (with the reason), so the shell script can turn it into an OK/FAIL summary line.

  losses  A_METRICS B_METRICS REL_TOL [FIRST_STEP]   train/CE loss of every common step from FIRST_STEP
  eval    A_JSON B_JSON REL_TOL                      every metric of two `olmo-train eval` reports
  speed   METRICS LOG MEM_FILE PEAK RANKS            tokens/s, MFU, peak GPU memory, data loading share
"""
import json
import re
import sys

CE = "train/CE loss"


def rows(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def losses(a_path, b_path, tol, first=1):
    a = {r["step"]: r[CE] for r in rows(a_path) if CE in r}
    b = {r["step"]: r[CE] for r in rows(b_path) if CE in r}
    steps = sorted(s for s in a.keys() & b.keys() if s >= first)
    if not steps:
        return fail(f"no common steps with {CE} (A has {len(a)}, B has {len(b)})")
    worst = max(steps, key=lambda s: abs(a[s] - b[s]) / abs(b[s]))
    rel = abs(a[worst] - b[worst]) / abs(b[worst])
    detail = (f"{len(steps)} steps, max rel diff {rel:.2e} at step {worst} "
              f"({a[worst]:.6f} vs {b[worst]:.6f}), last {a[steps[-1]]:.6f} vs {b[steps[-1]]:.6f}")
    return ok(detail) if rel <= tol else fail(f"{detail} > tolerance {tol:g}")


def evals(a_path, b_path, tol):
    a = json.load(open(a_path))["metrics"]
    b = json.load(open(b_path))["metrics"]
    keys = sorted(a.keys() & b.keys())
    if not keys:
        return fail(f"no common metrics ({sorted(a)} vs {sorted(b)})")
    worst = max(keys, key=lambda k: abs(a[k] - b[k]) / max(abs(b[k]), 1e-12))
    rel = abs(a[worst] - b[worst]) / max(abs(b[worst]), 1e-12)
    detail = f"{len(keys)} metrics, max rel diff {rel:.2e} ({worst}: {a[worst]:.6f} vs {b[worst]:.6f})"
    return ok(detail) if rel <= tol else fail(f"{detail} > tolerance {tol:g}")


def speed(metrics_path, log_path, mem_path, peak, ranks):
    try:
        r = rows(metrics_path)
    except OSError:
        r = []
    if not r:
        return fail("no metrics logged")
    tps_rows = [x for x in r if "throughput/device/TPS (actual avg)" in x]
    if not tps_rows:
        return fail(f"no throughput metric in {len(r)} logged steps")
    last = tps_rows[-1]
    tps = last["throughput/device/TPS (actual avg)"]
    dl = [x.get("throughput/device/data loading (%)", 0.0) for x in r[1:]] or [0.0]
    m = re.search(r"(\d+) training FLOPs per token", open(log_path, errors="replace").read())
    flops = int(m.group(1)) if m else 0
    mfu = f"{100 * flops * tps / peak:.1f}%" if peak > 0 and flops else "n/a"
    mem = "n/a"
    try:
        vals = [int(v) for line in open(mem_path) for v in line.split(",") if v.strip().isdigit()]
        if vals:
            mem = f"{max(vals) / 1024:.1f} GiB"
    except OSError:
        pass
    active = [x["gpu_memory/GPU active mem (GiB)"] for x in r if "gpu_memory/GPU active mem (GiB)" in x]
    if active:
        mem += f" (allocator: {max(active):.1f} GiB active)"
    return ok(f"{tps:,.0f} tokens/s per device, MFU {mfu}, peak GPU memory {mem}, "
              f"data loading {sum(dl) / len(dl):.2f}%, {ranks} rank(s), to step {last['step']}")


def generated(a_path, b_path, min_prefix):
    """Greedy completions on the device against the CPU's: the first `min_prefix` tokens of every row
    must agree (later ones may part at an fp32 near-tie); reports the device's tokens/s."""
    a = [json.loads(line) for line in open(a_path)]
    b = [json.loads(line) for line in open(b_path)]
    if len(a) != len(b) or not a:
        return fail(f"{len(a)} completions vs {len(b)}")
    same = []
    for x, y in zip(a, b):
        n = 0
        for s, t in zip(x["token_ids"], y["token_ids"]):
            if s != t:
                break
            n += 1
        same.append(n)
    tps = sum(len(x["token_ids"]) for x in a) / a[0]["seconds"]
    detail = f"{len(a)} prompts, tokens equal to the CPU's for the first {min(same)}-{max(same)}, {tps:,.0f} tokens/s on the device"
    return ok(detail) if min(same) >= min_prefix else fail(f"{detail} < {min_prefix}")


def ok(detail):
    print(detail)
    return 0


def fail(reason):
    print(reason)
    return 1


def main(argv):
    cmd, args = argv[1], argv[2:]
    try:
        if cmd == "losses":
            return losses(args[0], args[1], float(args[2]), int(args[3]) if len(args) > 3 else 1)
        if cmd == "eval":
            return evals(args[0], args[1], float(args[2]))
        if cmd == "generate":
            return generated(args[0], args[1], int(args[2]))
        if cmd == "speed":
            return speed(args[0], args[1], args[2], float(args[3]), int(args[4]))
    except (OSError, ValueError, KeyError) as e:
        return fail(f"{type(e).__name__}: {e}")
    return fail(f"unknown subcommand {cmd}")


if __name__ == "__main__":
    sys.exit(main(sys.argv))

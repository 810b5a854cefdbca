"""The pinned arithmetic of tests/fixtures/pinned-arithmetic.env, enforced: every script that writes stored
reference numbers calls `require()` before computing any, so no fixture is ever made with the CPU's own
kernel choice (the tests would then fail on the other CPU family). Run such scripts through
scripts/reference/pinned.sh.
"""
import os
import sys

ENV_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "fixtures", "pinned-arithmetic.env")


def variables():
    with open(ENV_FILE) as f:
        lines = [line.strip() for line in f]
    return dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))


def require():
    wrong = [f"{k}={os.environ.get(k)!r} (want {v})" for k, v in variables().items() if os.environ.get(k) != v]
    if wrong:
        sys.exit(f"{sys.argv[0]}: not pinned ({', '.join(wrong)}); run it through scripts/reference/pinned.sh")

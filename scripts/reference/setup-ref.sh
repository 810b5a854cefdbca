#!/usr/bin/env bash
# Installs the reference implementation (ai2-olmo-core 3.0.0 on the CPU torch 2.11.0 wheel) into
# .venv-ref, only when missing. Used to regenerate test fixtures and for side-by-side benchmarks;
# the test suite itself never needs it.
set -euo pipefail
cd "$(dirname "$0")/../.."
if ! .venv-ref/bin/python -c 'import olmo_core, importlib.metadata as m; assert m.version("ai2-olmo-core") == "3.0.0"' 2>/dev/null; then
    echo "setup-ref: installing ai2-olmo-core==3.0.0 into .venv-ref"
    [ -x .venv-ref/bin/python ] || python3 -m venv .venv-ref
    .venv-ref/bin/pip install --quiet --disable-pip-version-check "torch==2.11.0" "ai2-olmo-core==3.0.0" "$@"
fi

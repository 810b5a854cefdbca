#!/usr/bin/env bash
# Runs a command (a fixture script) with the pinned arithmetic of tests/fixtures/pinned-arithmetic.env, so
# that the numbers it writes are the ones the tests reproduce on any x86-64 CPU:
#     scripts/reference/pinned.sh .venv-ref/bin/python scripts/reference/olmo_core_train.py
set -euo pipefail
set -a
# shellcheck source=../../tests/fixtures/pinned-arithmetic.env
. "$(dirname "$0")/../../tests/fixtures/pinned-arithmetic.env"
set +a
exec "$@"

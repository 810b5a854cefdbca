#!/usr/bin/env bash
# The reference environments for fixtures and side-by-side benchmarks, installed from lock files so every
# machine gets the same versions and pip's resolver never runs (it once backtracked for over ten minutes on
# dolma's dependencies):
#   ref    .venv-ref    ai2-olmo-core 3.0.0, ai2-olmo-eval 0.9.0, transformers, tiktoken on torch 2.11.0
#   dolma  .venv-dolma  dolma 1.2.1 (`dolma tokens`)
# An environment is installed when its venv is missing or was installed from another version of its lock
# file (the venv keeps the lock's sha256); otherwise nothing runs. The test suite never needs these.
#     scripts/reference/setup-ref.sh [NAME...]     # default: ref
#     scripts/reference/setup-ref.sh --relock NAME # resolve requirements/NAME.in afresh, rewrite NAME.lock
set -euo pipefail
cd "$(dirname "$0")/../.."
REQ=scripts/reference/requirements
PY=${PYTHON:-python3}
PIP_FLAGS=(--quiet --disable-pip-version-check)

venv_of() {
    case $1 in
    ref) echo .venv-ref ;;
    dolma) echo .venv-dolma ;;
    *) echo "setup-ref: unknown environment '$1' (expected ref or dolma)" >&2; exit 2 ;;
    esac
}

install() {
    local name=$1 venv lock want
    venv=$(venv_of "$name")
    lock=$REQ/$name.lock
    want=$(sha256sum "$lock" | cut -d' ' -f1)
    if [ -x "$venv/bin/python" ] && [ "$(cat "$venv/.lock-sha256" 2>/dev/null)" = "$want" ]; then
        return 0
    fi
    echo "setup-ref: installing $lock into $venv" >&2
    [ -x "$venv/bin/python" ] || "$PY" -m venv "$venv"
    rm -f "$venv/.lock-sha256"
    # Every package is pinned in the lock, so nothing is left to resolve.
    "$venv/bin/pip" install "${PIP_FLAGS[@]}" --no-deps -r "$lock"
    "$venv/bin/pip" check >&2 || { echo "setup-ref: $venv does not satisfy $lock; remove $venv and retry" >&2; exit 1; }
    echo "$want" >"$venv/.lock-sha256"
}

relock() {
    local name=$1
    venv_of "$name" >/dev/null
    scratch=$(mktemp -d) # global: the EXIT trap reads it
    trap 'rm -rf "$scratch"' EXIT
    "$PY" -m venv "$scratch/venv"
    "$scratch/venv/bin/pip" install "${PIP_FLAGS[@]}" -r "$REQ/$name.in"
    {
        echo "# Resolved from $name.in by \`setup-ref.sh --relock $name\` on $(date -u +%F), $("$scratch/venv/bin/python" -V), $(uname -m) Linux."
        "$scratch/venv/bin/pip" freeze
    } >"$REQ/$name.lock"
    echo "setup-ref: wrote $REQ/$name.lock" >&2
}

if [ "${1:-}" = "--relock" ]; then
    relock "${2:?usage: setup-ref.sh --relock NAME}"
    exit 0
fi
for name in "${@:-ref}"; do
    install "$name"
done

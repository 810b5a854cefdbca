#!/usr/bin/env bash
# Installs what a fresh machine lacks to build and test olmo-train, and nothing it already has:
# torch==2.11.0 (the libtorch tch 0.24 links) and numpy into the project-local .venv. Idempotent and
# quiet; nothing is installed outside the project folder.
set -euo pipefail
cd "$(dirname "$0")/.."

TORCH_VERSION=2.11.0
PY=${PYTHON:-python3}

torch_ok() {
    [ -x .venv/bin/python ] && [ -e .venv/torch/lib/libtorch_cpu.so ] &&
        grep -q "__version__ = '${TORCH_VERSION}" .venv/torch/version.py 2>/dev/null
}

if ! torch_ok; then
    echo "setup: installing torch==${TORCH_VERSION} into .venv (one time, about a minute)"
    [ -x .venv/bin/python ] || "$PY" -m venv .venv
    .venv/bin/pip install --quiet --disable-pip-version-check "torch==${TORCH_VERSION}" numpy
    site=$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
    ln -sfn "$site/torch" .venv/torch
fi
torch_ok || { echo "setup: .venv/torch is not torch ${TORCH_VERSION}; remove .venv and retry" >&2; exit 1; }

# gloo's headers for the c10d shim (the torch wheel ships none): Debian's libgloo-dev, unpacked into
# .deps/gloo without installing anything system-wide.
if [ ! -f .deps/gloo/usr/include/gloo/config.h ]; then
    echo "setup: unpacking Debian's libgloo-dev headers into .deps/gloo"
    mkdir -p .deps && rm -rf .deps/gloo .deps/gloo-deb && mkdir -p .deps/gloo-deb
    (cd .deps/gloo-deb && { apt-get download -qq libgloo-dev 2>/dev/null || { apt-get update -qq >/dev/null && apt-get download -qq libgloo-dev; }; }) >/dev/null
    dpkg -x .deps/gloo-deb/libgloo-dev_*.deb .deps/gloo
    rm -rf .deps/gloo-deb
fi

# CUDA's header-only pieces that torch's NCCL header needs and the CUDA runtime wheel lacks (crt/, nv/target),
# so build.rs can compile the c10d shim with NCCL for GPU data parallelism. Only for CUDA builds of torch.
cuda_inc=$(ls -d .venv/lib/python3*/site-packages/nvidia/cu1*/include 2>/dev/null | head -1 || true)
cuda_headers_ok() {
    [ -f "$cuda_inc/crt/host_config.h" ] && { [ -e "$cuda_inc/nv/target" ] || [ -e "$cuda_inc/cccl/nv/target" ]; }
}
if [ -n "$cuda_inc" ] && [ -e .venv/torch/lib/libtorch_cuda.so ] && ! cuda_headers_ok; then
    cu=$(basename "$(dirname "$cuda_inc")")   # cu13
    ver=$(.venv/bin/python -c "import importlib.metadata as m; v = m.version('nvidia-cuda-runtime').split('.'); print(v[0] + '.' + v[1])" 2>/dev/null || echo "${cu#cu}.0")
    echo "setup: installing CUDA ${ver} headers (nvidia-cuda-crt, nvidia-cuda-cccl) for the NCCL part of the c10d shim"
    .venv/bin/pip install --quiet --disable-pip-version-check --no-deps "nvidia-cuda-crt==${ver}.*" "nvidia-cuda-cccl==${ver}.*" ||
        echo "setup: CUDA headers unavailable; the c10d shim will be built without NCCL" >&2
fi

# Extra Python packages some tests read our outputs with (issue-specific; kept optional here).
for req in "$@"; do
    name=${req%%[=<>]*}
    name=${name%%\[*}   # moto[server] is the package moto
    .venv/bin/python -c "import importlib.metadata as m, sys; sys.exit(0 if m.version('$name') == '${req#*==}' else 1)" 2>/dev/null ||
        .venv/bin/pip install --quiet --disable-pip-version-check "$req"
done

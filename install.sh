#!/usr/bin/env bash
# Sets up the engine in .venv at the repository root (idempotent).
# TORCH_SPEC picks the PyTorch build, e.g. TORCH_SPEC='torch==2.13.0' (default) or a CUDA index.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
ROOT=$(pwd)
PYTHON=${PYTHON:-python3}

if [ ! -x .venv/bin/python ]; then
    echo "install.sh: creating .venv with $($PYTHON --version 2>&1)"
    "$PYTHON" -m venv .venv
fi
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
    echo "install.sh: installing ${TORCH_SPEC:-torch==2.13.0}"
    .venv/bin/python -m pip install -q "${TORCH_SPEC:-torch==2.13.0}"
fi
echo "install.sh: installing the engine and its test tools into .venv"
.venv/bin/python -m pip install -q -e "$ROOT[test]"
echo "install.sh: engine ready: $ROOT/.venv/bin/python -m analogy_engine A.png B_PRIME.png --out out/"

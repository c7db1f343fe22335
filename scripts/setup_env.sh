#!/usr/bin/env bash
# Create .venv (if needed) and install the project with everything the tests,
# the evaluation harness and the training stages need. Needs only Python 3.10+.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
export PIP_CONSTRAINT="$PWD/constraints.txt" PIP_DISABLE_PIP_VERSION_CHECK=1 DS_BUILD_OPS=0
stamp=.venv/.salova-installed
if [ -f "$stamp" ] && [ "$stamp" -nt pyproject.toml ] && [ "$stamp" -nt constraints.txt ]; then
    exit 0
fi
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q torch==2.13.0
.venv/bin/python -m pip install -q -e ".[dev]"
# PyPI's torchvision is a CUDA build that cannot import next to the CPU torch, and
# timm hard-requires it; lmms-eval pulls both. Neither is used here (environment.md).
.venv/bin/python -m pip uninstall -q -y torchvision timm 2>/dev/null || true
touch "$stamp"

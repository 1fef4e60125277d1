#!/usr/bin/env bash
# Set up lvbert in ./.venv: torch first (pinned; on the project's CPU machines this
# installs a CPU build from local disk), then the package with its test and deploy extras.
# Idempotent: a second run only checks. Override the torch requirement with TORCH_SPEC,
# e.g. TORCH_SPEC="torch==2.13.0 --index-url https://download.pytorch.org/whl/cu128".
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv with $($PYTHON --version)"
  "$PYTHON" -m venv .venv
fi
PIP=(.venv/bin/python -m pip --disable-pip-version-check -q)
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
  echo "setup: installing $TORCH_SPEC"
  # shellcheck disable=SC2086
  "${PIP[@]}" install $TORCH_SPEC
fi
if ! .venv/bin/python -c "import lvbert, pytest" 2>/dev/null || [ pyproject.toml -nt .venv/.lvbert-installed ]; then
  echo "setup: installing lvbert and its dependencies"
  "${PIP[@]}" install -e ".[dev,deploy]"
  touch .venv/.lvbert-installed
fi
echo "setup: ready ($(.venv/bin/python -c 'import torch, transformers; print(f"torch {torch.__version__}, transformers {transformers.__version__}")'))"

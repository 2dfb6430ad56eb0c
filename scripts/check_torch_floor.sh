#!/usr/bin/env bash
# Does xlcollab run on the oldest torch pyproject.toml allows (torch>=X)? Not part of CI: it needs the network.
#   1. where PyTorch's CPU wheel index is reachable: a venv in /tmp with torch==X (CPU build) runs the core tests;
#   2. else: scripts/torch_floor.py static reads release X's own Python sources (its macOS wheel from PyPI) and
#      the release before it: every API the package relies on must be in X, and not all in the one before.
# Exit 0: the floor holds; 1: it does not; 2: nothing could be fetched to check it.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
FLOOR=$("$PY" scripts/torch_floor.py floor)
VENV=${VENV:-/tmp/xlcollab-torch-floor}
echo "torch floor in pyproject.toml: $FLOOR"

if "$PY" -m venv "$VENV" && "$VENV/bin/pip" install -q --no-cache-dir "torch==$FLOOR.*" \
     --index-url https://download.pytorch.org/whl/cpu 2>/dev/null; then
  "$VENV/bin/pip" install -q -e ".[test]" || exit 2
  echo "running the core tests on torch $("$VENV/bin/python" -c 'import torch; print(torch.__version__)')"
  "$VENV/bin/python" -m pytest -q tests/test_train.py tests/test_fit.py tests/test_optim.py tests/test_models.py \
    tests/test_settings.py tests/test_cli_fit.py tests/test_torch_floor.py
  exit $?
fi
echo "torch==$FLOOR CPU wheel not reachable (download.pytorch.org); checking the release's sources instead"
"$PY" scripts/torch_floor.py static
rc=$?
[ $rc -le 1 ] && exit $rc || exit 2

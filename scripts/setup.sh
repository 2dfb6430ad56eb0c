#!/usr/bin/env bash
# Set up xlcollab in ./.venv on a fresh Debian/Ubuntu machine.
#   scripts/setup.sh          the package (torch CPU build 2.13.0 where available, numpy, pandas, openpyxl, xlwings, ...)
#   scripts/setup.sh --test   also the test tools, LibreOffice headless + python3-uno (the recalculation oracle) and
#                             poppler-utils (pdftotext/pdftoppm: the rendered workbooks are checked as PDF text)
set -euo pipefail
cd "$(dirname "$0")/.."
want_test=0
[ "${1:-}" = "--test" ] && want_test=1

if [ "$want_test" = 1 ] && ! { command -v soffice >/dev/null && command -v pdftotext >/dev/null \
                               && [ -f /usr/lib/python3/dist-packages/uno.py ]; }; then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends libreoffice-calc-nogui python3-uno \
    poppler-utils >/dev/null
fi

PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip >/dev/null 2>&1 || true
# torch 2.13.0: on the project's machines this is a CPU wheel from local disk. Elsewhere pip picks the
# build for your platform (CUDA on Linux); the package itself accepts any torch >= 2.7 (pyproject.toml).
.venv/bin/python -m pip install -q "torch==2.13.0" 2>/dev/null || .venv/bin/python -m pip install -q "torch>=2.7"
if [ "$want_test" = 1 ]; then
  .venv/bin/python -m pip install -q -e ".[test,gpu]"  # gpu: triton, whose interpreter tests the fused kernels
else
  .venv/bin/python -m pip install -q -e .
fi

#!/usr/bin/env bash
# Create .venv (once) and install rsoptd with every extra from this checkout.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip >/dev/null 2>&1 || true
.venv/bin/python -m pip install --quiet -e '.[all]' 2>&1 | grep -v "^WARNING: Location" || true
.venv/bin/python -c "import rsoptd, rsoptctl" # fail loudly if the install did not work

#!/usr/bin/env bash
# Create .venv (once) and install rsoptd with every extra from this checkout.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
log=.venv/setup.log
if ! .venv/bin/python -m pip install -e '.[all]' >"$log" 2>&1; then
    cat "$log" >&2
    echo "setup: installing rsoptd failed; the pip output is above (and in $log)" >&2
    exit 1
fi
.venv/bin/python -c "import rsoptd, rsoptctl" # fail loudly if the install did not work

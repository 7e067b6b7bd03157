#!/usr/bin/env bash
# The main job end to end: set up, then scan the six-hump camel function through rsoptctl;
# the daemon is started on demand and leaves by itself after ten idle minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cd examples
../.venv/bin/rsoptctl sample configuration mesh_scan.yml
../.venv/bin/rsoptctl results last --format csv -o mesh_scan_results.csv
head -5 mesh_scan_results.csv

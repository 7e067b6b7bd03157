#!/usr/bin/env bash
# Make the README's pictures (docs/img/*.png) from the examples: a private rsoptd on a temporary
# socket and state dir runs each example (copied, so run directories land in the temporary dir),
# `rsoptctl plot` draws it, and the daemon is shut down. Needs rsoptd[plot] (part of .[all]).
#   scripts/make_pictures.sh              # uses .venv (scripts/setup.sh makes it)
#   RSOPTD_BIN=/path/to/venv/bin scripts/make_pictures.sh
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${RSOPTD_BIN:-.venv/bin}
if [ ! -x "$BIN/rsoptctl" ]; then scripts/setup.sh; fi
OUT=docs/img
mkdir -p "$OUT"
tmp=$(mktemp -d /tmp/rsoptd-pictures.XXXXXX)
export RSOPTD_SOCKET=$tmp/rsoptd.sock XDG_STATE_HOME=$tmp/state XDG_CONFIG_HOME=$tmp/config
ctl() { "$BIN/rsoptctl" --no-autostart "$@"; }
"$BIN/rsoptd" --socket "$RSOPTD_SOCKET" --state-dir "$tmp/state" --cores 2 2>"$tmp/rsoptd.log" &
daemon=$!
trap 'ctl shutdown >/dev/null 2>&1 || true; wait $daemon 2>/dev/null || true; rm -rf "$tmp"' EXIT
for _ in $(seq 100); do ctl ping >/dev/null 2>&1 && break; sleep 0.1; done
cp examples/*.py examples/*.yml "$tmp/"

picture() {  # picture CONFIG KIND NAME: run the example to its end, then draw it
    local id
    id=$(ctl submit "$tmp/$1" 2>/dev/null)
    ctl watch "$id" >/dev/null   # off a terminal: plain lines, and it returns when the run ends
    ctl plot "$id" --kind "$2" -o "$OUT/$3.png"
}
picture optimize_dfols.yml history optimizer-history
picture line_scan.yml slice scan-1d-slice
picture mesh_scan.yml heatmap mesh-heatmap
picture lh_scan.yml scatter lh-scatter
picture decay_scan.yml parallel scan-3d-parallel

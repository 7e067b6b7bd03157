"""Default locations of the daemon's socket and state, shared with the client."""

from __future__ import annotations

import os
from pathlib import Path

SOCKET_ENV = "RSOPTD_SOCKET"
SOCKET_NAME = "rsoptd.sock"


def runtime_dir() -> Path:
    """`$XDG_RUNTIME_DIR/rsoptd`, or a per-user directory in /tmp."""
    base = os.environ.get("XDG_RUNTIME_DIR")
    if base and os.path.isdir(base):
        return Path(base) / "rsoptd"
    return Path(f"/tmp/rsoptd-{os.getuid()}")


def default_socket() -> Path:
    override = os.environ.get(SOCKET_ENV)
    if override:
        return Path(override)
    return runtime_dir() / SOCKET_NAME


def default_state_dir() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(Path.home(), ".local", "state")
    return Path(base) / "rsoptd"

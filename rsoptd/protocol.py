"""The wire protocol between rsoptctl and rsoptd (standard library only).

Each connection carries newline-delimited JSON frames.  The client sends one
request ``{"op": NAME, ...}``; the daemon answers with one reply
``{"ok": true, "data": ...}`` or ``{"ok": false, "error": {"code", "message"}}``.
Streaming operations (``watch``, ``logs`` with follow, ``results``) send more
frames after the first reply; see docs/protocol.md.
"""

from __future__ import annotations

import json
TYPE_CHECKING = False  # rsoptctl imports this: typing would cost it ~2 ms of start-up
if TYPE_CHECKING:
    from typing import Any

PROTOCOL_VERSION = 1
MAX_REQUEST_BYTES = 16 * 1024 * 1024  # a config plus the submitter's environment
MAX_REPLY_BYTES = 256 * 1024 * 1024

# Stable error codes; the client maps them to exit codes.
CONFIG_ERROR = "config_error"
BAD_REQUEST = "bad_request"
NOT_FOUND = "not_found"
CONFLICT = "conflict"
UNSUPPORTED = "unsupported"
INTERNAL = "internal"

# Client exit codes.
EXIT_OK = 0
EXIT_RUN_FAILED = 1
EXIT_USAGE = 2
EXIT_UNREACHABLE = 3

RUN_STATES = ("queued", "running", "completed", "failed", "cancelled", "interrupted")
FINAL_STATES = ("completed", "failed", "cancelled", "interrupted")
EVAL_STATUSES = ("ok", "failed", "timeout", "cancelled")


class FrameTooLarge(ValueError):
    pass


def encode(message: dict[str, Any]) -> bytes:
    return json.dumps(message, separators=(",", ":"), allow_nan=True).encode() + b"\n"


def decode(line: bytes, limit: int = MAX_REQUEST_BYTES) -> dict[str, Any]:
    """Parse one frame; raise ValueError on anything that is not a JSON object."""
    if len(line) > limit:
        raise FrameTooLarge(f"frame of {len(line)} bytes exceeds the limit of {limit}")
    message = json.loads(line)
    if not isinstance(message, dict):
        raise ValueError("a frame must be a JSON object")
    return message


def ok(data: Any = None) -> dict[str, Any]:
    return {"ok": True, "data": data}


def error(code: str, message: str) -> dict[str, Any]:
    return {"ok": False, "error": {"code": code, "message": message}}

"""The event loop: uvloop when it is installed, asyncio's own otherwise."""

from __future__ import annotations

import asyncio
from typing import Any, Callable, Coroutine


def loop_name() -> str:
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return "asyncio"
    return "uvloop"


def run(main: Callable[[], Coroutine[Any, Any, int]]) -> int:
    if loop_name() == "uvloop":
        import uvloop

        return uvloop.run(main())
    return asyncio.run(main())

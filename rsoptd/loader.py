"""Importing the user's files: one definition for executors, their helpers and MPI ranks.

Standard library only, and only modules that load fast (no typing, no
dataclasses): every rank of every parallel evaluation imports this before the
user's code, so each millisecond here is paid per rank per evaluation.
"""

from __future__ import annotations

import importlib.util
import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable


class Loader:
    """Imports user files once and again only when they change on disk."""

    def __init__(self) -> None:
        self._modules: dict[str, tuple[tuple[int, int], Any]] = {}

    def function(self, ref: tuple[str, str]) -> Callable[..., Any]:
        path, name = ref
        module = self.module(path)
        try:
            return getattr(module, name)
        except AttributeError:
            raise LookupError(f"{path} defines no attribute {name!r}") from None

    def module(self, path: str) -> Any:
        stat = os.stat(path)
        stamp = (stat.st_mtime_ns, stat.st_size)
        cached = self._modules.get(path)
        if cached and cached[0] == stamp:
            return cached[1]
        folder = os.path.dirname(path)
        if folder not in sys.path:
            sys.path.insert(0, folder)  # as when the file runs as a script: siblings import
        name = "rsoptd_user_" + os.path.splitext(os.path.basename(path))[0]
        spec = importlib.util.spec_from_file_location(name, path)
        if spec is None or spec.loader is None:
            raise ImportError(f"cannot import {path}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
        self._modules[path] = (stamp, module)
        return module

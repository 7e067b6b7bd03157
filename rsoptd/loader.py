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
        self._compiled: dict[str, tuple[tuple[int, int], Any, Any]] = {}  # path -> (stamp, spec, code)

    def precompile(self, path: str) -> None:
        """Compile a file without running it (process mode's executor, before each fork): the
        child still executes the module afresh but skips reading and unmarshalling it, which
        costs a fresh child about 0.4 ms.  Errors are left for the child's import to report."""
        try:
            stat = os.stat(path)
            stamp = (stat.st_mtime_ns, stat.st_size)
            cached = self._compiled.get(path)
            if cached and cached[0] == stamp:
                return
            spec = importlib.util.spec_from_file_location(_module_name(path), path)
            if spec is None or spec.loader is None:
                return
            code = spec.loader.get_code(spec.name)  # type: ignore[attr-defined]
        except Exception:
            return
        self._compiled[path] = (stamp, spec, code)

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
        compiled = self._compiled.get(path)
        if compiled and compiled[0] == stamp:
            spec, code = compiled[1], compiled[2]
        else:
            spec, code = importlib.util.spec_from_file_location(_module_name(path), path), None
        if spec is None or spec.loader is None:
            raise ImportError(f"cannot import {path}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        if code is None:
            spec.loader.exec_module(module)
        else:
            exec(code, module.__dict__)  # what exec_module does with the code it reads
        self._modules[path] = (stamp, module)
        return module


def _module_name(path: str) -> str:
    return "rsoptd_user_" + os.path.splitext(os.path.basename(path))[0]

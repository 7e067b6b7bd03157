"""Optimizers: one module per library, each running the library's own blocking loop.

A module (``nlopt_``, ``scipy_``, ``dfols_``; named so they never shadow the
libraries) defines:

- ``LIBRARY`` (import name) and ``PACKAGE`` (PyPI name), for the install check;
- ``METHODS`` and ``DEFAULT_METHOD`` (None: ``options.method`` is required);
- ``check_options(options, method)``: raise ConfigError for a bad ``software_options``;
- ``returns(method)``: what the function returns, "float", "vector" or "gradient";
- ``lanes(method, n_params)``: how many evaluations it can use at once;
- ``minimize(problem)``: run to the end in the optimizer's thread, return why it stopped.

Adding an optimizer is one such module plus its name in SUPPORTED.  Nothing
here imports a library: the config check only asks whether it is installed.
"""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType
from typing import Any

from rsoptd.errors import ConfigError

SUPPORTED = ("nlopt", "scipy", "dfols")
INSTALL_HINT = "pip install 'rsoptd[optimize]'"


def module(software: str) -> ModuleType:
    return importlib.import_module(f"rsoptd.optimizers.{software}_")


def check(software: str, method: Any, options: dict[str, Any]) -> tuple[str, str]:
    """Validate an optimizer config at submit time; returns (method, what the function returns)."""
    if software not in SUPPORTED:
        raise ConfigError("options.software", f"optimizer {software!r} is not supported by rsoptd yet; "
                          f"supported optimizers: {', '.join(SUPPORTED)}")
    mod = module(software)
    if method is None and mod.DEFAULT_METHOD is not None:
        method = mod.DEFAULT_METHOD
    if method not in mod.METHODS:
        given = "missing" if method is None else f"{method!r} is not one of"
        raise ConfigError("options.method", f"{given} the {software} methods rsoptd supports: {', '.join(mod.METHODS)}")
    if importlib.util.find_spec(mod.LIBRARY) is None:
        raise ConfigError("options.software", f"{software} needs the Python package {mod.PACKAGE}, which is not "
                          f"installed where rsoptd runs: install rsoptd[optimize] ({INSTALL_HINT}) and restart rsoptd")
    mod.check_options(options, method)
    return str(method), str(mod.returns(method))


def number(value: Any, path: str) -> float:
    """A number from YAML, where 1e-6 (no dot) arrives as a string."""
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            pass
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(path, f"expected a number, got {value!r}")
    return float(value)

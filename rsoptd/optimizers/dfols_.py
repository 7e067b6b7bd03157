"""DFO-LS: derivative-free least squares; the function returns the residual vector."""

from __future__ import annotations

from typing import Any

import numpy as np

from rsoptd.errors import ConfigError
from rsoptd.optimizers.base import Problem

LIBRARY = "dfols"
PACKAGE = "DFO-LS"
METHODS = ("dfols",)
DEFAULT_METHOD = "dfols"
OPTIONS = ("dfols_kwargs", "user_params")
SET_BY_RSOPTD = ("objfun", "x0", "bounds")  # from the parameters' start, min and max


def check_options(options: dict[str, Any], method: str) -> None:
    for name, value in options.items():
        path = f"options.software_options.{name}"
        if name not in OPTIONS:
            raise ConfigError(path, f"unknown DFO-LS option; expected one of {', '.join(OPTIONS)} "
                              "(dfols_kwargs are passed to dfols.solve, user_params as its user_params)")
        if not isinstance(value, dict):
            raise ConfigError(path, f"expected a mapping, got {value!r}")
    for name in SET_BY_RSOPTD:
        if name in (options.get("dfols_kwargs") or {}):
            raise ConfigError(f"options.software_options.dfols_kwargs.{name}", "set by rsoptd from the parameters")


def returns(method: str) -> str:
    return "vector"


def lanes(method: str, n_params: int) -> int:
    return 1


def minimize(problem: Problem) -> str:
    import dfols

    kwargs = dict(problem.options.get("dfols_kwargs") or {})
    if problem.options.get("user_params"):  # rsopt's documented form
        kwargs["user_params"] = {**problem.options["user_params"], **(kwargs.get("user_params") or {})}
    kwargs.setdefault("do_logging", False)

    def residuals(x: np.ndarray) -> np.ndarray:
        values = problem.evaluate(x).values
        assert values is not None  # the source hands DFO-LS only evaluations with residuals
        return values

    np.random.seed(problem.seed % 2**32)  # DFO-LS draws from NumPy's global stream; replay needs the same draws
    solution = dfols.solve(residuals, problem.start.copy(), bounds=(problem.lower, problem.upper), **kwargs)
    if solution.flag == solution.EXIT_INPUT_ERROR:
        raise ValueError(solution.msg)
    return f"{solution.msg} ({solution.nf} evaluations)"

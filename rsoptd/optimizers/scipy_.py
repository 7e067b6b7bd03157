"""scipy.optimize.minimize: Nelder-Mead, COBYLA and BFGS."""

from __future__ import annotations

from typing import Any

import numpy as np

from rsoptd.errors import ConfigError
from rsoptd.optimizers.base import Answer, Problem

LIBRARY = "scipy"
PACKAGE = "scipy"
METHODS = ("Nelder-Mead", "COBYLA", "BFGS")
DEFAULT_METHOD = None
FD_STEP = float(np.sqrt(np.finfo(float).eps))  # forward differences, as scipy's own '2-point'


def check_options(options: dict[str, Any], method: str) -> None:
    # software_options go to minimize(options=...), except 'tol', which is minimize's own argument;
    # scipy itself names a key it does not know (as an OptimizeWarning, recorded in the log)
    for name in options:
        if not isinstance(name, str):
            raise ConfigError(f"options.software_options.{name}", "expected an option name")


def returns(method: str) -> str:
    return "gradient" if method == "BFGS" else "float"


def lanes(method: str, n_params: int) -> int:
    # BFGS without a gradient from the function: rsoptd evaluates the n finite-difference
    # neighbours of a point at once, on up to nworkers lanes; the others ask one point at a time
    return n_params if method == "BFGS" else 1


def minimize(problem: Problem) -> str:
    from scipy import optimize

    options = dict(problem.options)
    tol = options.pop("tol", None)
    kwargs: dict[str, Any] = {"method": problem.method, "tol": tol, "options": options}
    if problem.method == "BFGS":  # scipy's BFGS has no bounds; min/max are not applied
        gradient = _Gradient(problem)
        kwargs["jac"] = gradient.jac
        fun = gradient.fun
    else:
        kwargs["bounds"] = optimize.Bounds(problem.lower, problem.upper)
        def fun(x: np.ndarray) -> float:
            return problem.evaluate(x).f
    result = optimize.minimize(fun, problem.start, **kwargs)
    return f"{result.message} ({result.nfev} evaluations)"


class _Gradient:
    """f and its gradient at the same x: from the function's (f, grad), or by forward differences."""

    def __init__(self, problem: Problem) -> None:
        self.problem = problem
        self.last: tuple[bytes, Answer] | None = None

    def fun(self, x: np.ndarray) -> float:
        return self._answer(x).f

    def jac(self, x: np.ndarray) -> np.ndarray:
        answer = self._answer(x)
        if answer.values is not None:
            return np.asarray(answer.values, dtype=float)
        steps = FD_STEP * np.maximum(1.0, np.abs(x))
        neighbours = [x + np.eye(len(x))[i] * steps[i] for i in range(len(x))]
        answers = self.problem.evaluate_many(neighbours)
        return np.array([(a.f - answer.f) / h for a, h in zip(answers, steps)])

    def _answer(self, x: np.ndarray) -> Answer:
        key = np.asarray(x, dtype=float).tobytes()
        if self.last is None or self.last[0] != key:
            self.last = (key, self.problem.evaluate(x))
        return self.last[1]

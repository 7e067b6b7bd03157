"""NLopt's local derivative-free methods (rsopt's default optimizer)."""

from __future__ import annotations

from typing import Any

from rsoptd.errors import ConfigError
from rsoptd.optimizers import number
from rsoptd.optimizers.base import Problem

LIBRARY = "nlopt"
PACKAGE = "nlopt"
METHODS = ("LN_BOBYQA", "LN_NELDERMEAD", "LN_SBPLX", "LN_COBYLA", "LN_NEWUOA")
DEFAULT_METHOD = None
# software_options: nlopt.opt's stopping criteria and step, each set with opt.set_<name>(value)
OPTIONS = ("xtol_rel", "xtol_abs", "ftol_rel", "ftol_abs", "maxeval", "maxtime", "stopval", "initial_step")
INTEGER_OPTIONS = ("maxeval",)
RESULTS = {1: "success", 2: "stopval reached", 3: "ftol reached", 4: "xtol reached",
           5: "maxeval reached", 6: "maxtime reached"}


def check_options(options: dict[str, Any], method: str) -> None:
    for name, value in options.items():
        path = f"options.software_options.{name}"
        if name not in OPTIONS:
            raise ConfigError(path, f"not an nlopt option rsoptd passes on; expected one of {', '.join(OPTIONS)}")
        _value(name, value, path)


def returns(method: str) -> str:
    return "float"


def lanes(method: str, n_params: int) -> int:
    return 1  # one point at a time: each step depends on the last value


def minimize(problem: Problem) -> str:
    import nlopt

    opt = nlopt.opt(getattr(nlopt, problem.method), len(problem.start))
    opt.set_lower_bounds(problem.lower)
    opt.set_upper_bounds(problem.upper)
    opt.set_min_objective(lambda x, grad: problem.evaluate(x).f)
    for name, value in problem.options.items():
        getattr(opt, f"set_{name}")(_value(name, value, name))
    try:
        opt.optimize(problem.start)
    except nlopt.RoundoffLimited:  # nlopt's way of saying it cannot improve further: a normal end
        return f"stopped, roundoff limited, after {opt.get_numevals()} evaluations"
    result = opt.last_optimize_result()
    return f"{RESULTS.get(result, f'result {result}')} after {opt.get_numevals()} evaluations"


def _value(name: str, value: Any, path: str) -> Any:
    if name in INTEGER_OPTIONS:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(path, f"expected an integer, got {value!r}")
        return value
    if isinstance(value, list):  # xtol_abs and initial_step may be given per parameter
        return [number(v, path) for v in value]
    return number(value, path)

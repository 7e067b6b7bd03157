"""One evaluation of a user's function, as rsopt defines it (runs in executors).

Standard library only at import time: an executor in process mode forks a
child per evaluation from a lean parent that must not have imported anything
of the user's (numpy is imported only when a return value needs it).
"""

from __future__ import annotations

import math
import os
import sys
import traceback
from dataclasses import dataclass
from typing import Any, Callable

from rsoptd.loader import Loader  # in a module of its own so that MPI ranks import it alone

# libEnsemble's calc_status codes, which rsopt puts in J['sim_status'], so
# objective functions written for rsopt keep working unchanged.
WORKER_KILL_ON_TIMEOUT = 32
TASK_FAILED = 33
WORKER_DONE = 34

MAX_ERROR_CHARS = 64 * 1024  # longer tracebacks keep their last part


@dataclass
class Outcome:
    status: str  # ok | failed
    f: float
    error: str | None = None
    values: list[float] | None = None  # residuals (returns="vector") or a gradient (returns="gradient")


@dataclass(frozen=True)
class Task:
    """What an executor needs to evaluate points of one run (sent once)."""

    function: tuple[str, str]
    preprocess: tuple[str, str] | None
    postprocess: tuple[str, str] | None
    objective: tuple[str, str] | None
    settings: dict[str, Any]
    names: tuple[str, ...]
    mode: str
    run_dir: str
    sim_dirs: bool
    seed: int | None
    worker: int
    # What the function (or objective) returns: "float" (rsopt's rule, for everyone but the
    # optimizers below), "vector" (DFO-LS residuals) or "gradient" (scipy BFGS: f or (f, grad)).
    returns: str = "float"

    @property
    def needs_job_dict(self) -> bool:
        return bool(self.preprocess or self.postprocess or self.objective)


class Evaluator:
    def __init__(self, task: Task, loader: Loader | None = None) -> None:
        self.task = task
        self.loader = loader or Loader()
        self._rng: Any = None

    def evaluate(self, sim_id: int, x: tuple[float, ...]) -> Outcome:
        """Call the function (with pre/post/objective) for one point; never raises."""
        task = self.task
        inputs = dict(task.settings)
        inputs.update(zip(task.names, x))
        try:
            function = self.loader.function(task.function)
        except BaseException:
            return _failed("cannot load the function")
        if not task.needs_job_dict:
            try:
                value = function(**inputs)
            except BaseException:
                return _failed("the function raised")
            return _cast(value, "the function", task.returns)
        return self._with_job_dict(sim_id, inputs, function)

    def _with_job_dict(self, sim_id: int, inputs: dict[str, Any], function: Callable[..., Any]) -> Outcome:
        task = self.task
        J: dict[str, Any] = {
            "inputs": inputs, "sim_id": sim_id, "sim_dir": os.getcwd(),
            "rand_stream": self.rand_stream(), "sim_status": None,
        }
        if task.preprocess and (failure := self.call_hook(task.preprocess, J, "preprocess")):
            return failure
        error = None
        try:
            J["value"] = function(**J["inputs"])
            J["sim_status"] = WORKER_DONE
        except BaseException:
            J["value"] = None
            J["sim_status"] = TASK_FAILED
            error = format_failure("the function raised")
            if task.mode == "worker":  # rsopt: the exception ends the run
                return Outcome("failed", math.nan, error)
        if task.postprocess and (failure := self.call_hook(task.postprocess, J, "postprocess")):
            return failure
        if task.objective:
            try:
                value = self.loader.function(task.objective)(J)
            except BaseException:
                return _failed("the objective function raised")
            outcome = _cast(value, "the objective function", task.returns)
        else:
            outcome = _cast(J["value"], "the function", task.returns) if error is None else Outcome("failed", math.nan)
        if error is not None:  # the objective may have given a penalty; the status still says failed
            return Outcome("failed", outcome.f, error, outcome.values)
        return outcome

    def call_hook(self, ref: tuple[str, str], J: dict[str, Any], what: str) -> Outcome | None:
        """Call a preprocess or postprocess function with J; a failed Outcome if it raised."""
        try:
            self.loader.function(ref)(J)
        except BaseException:
            return _failed(f"the {what} function raised")
        return None

    def rand_stream(self) -> Any:
        """J['rand_stream']: one NumPy generator per worker, seeded from options.seed."""
        if self._rng is None:
            import numpy

            entropy = None if self.task.seed is None else [self.task.seed, self.task.worker]
            self._rng = numpy.random.default_rng(entropy)
        return self._rng


def as_float(value: Any) -> float:
    """rsopt's rule: anything NumPy can cast to one float; None is NaN."""
    if value is None:
        return math.nan
    if isinstance(value, (float, int)):
        return float(value)
    import numpy

    try:
        array = numpy.asarray(value, dtype=float)
    except (TypeError, ValueError):
        raise TypeError(f"returned {_describe(value)}, which NumPy cannot cast to a float") from None
    if array.size != 1:
        raise TypeError(f"returned {_describe(value)} with {array.size} values; expected one float")
    return float(array.reshape(()))


def as_values(value: Any, returns: str) -> tuple[float, list[float] | None]:
    """f and the vector an optimizer needs besides it, by the Task's ``returns`` kind."""
    if returns == "vector":
        residuals = _residuals(value)
        return math.fsum(r * r for r in residuals), residuals
    if returns == "gradient" and _is_pair(value):
        return as_float(value[0]), _vector(value[1], "a gradient")
    return as_float(value), None


def _residuals(value: Any) -> list[float]:
    # rsopt's DFO-LS functions return (sum of squares, residuals); a bare vector is accepted too
    if _is_pair(value):
        value = value[1]
    return _vector(value, "residuals")


def _is_pair(value: Any) -> bool:
    import numpy

    return (isinstance(value, (tuple, list)) and len(value) == 2
            and numpy.ndim(value[0]) == 0 and numpy.ndim(value[1]) == 1)


def _vector(value: Any, what: str) -> list[float]:
    import numpy

    try:
        array = numpy.asarray(value, dtype=float)
    except (TypeError, ValueError):
        raise TypeError(f"returned {_describe(value)}, which NumPy cannot cast to {what} (a vector of floats)") from None
    if array.ndim > 1 or array.size == 0:
        raise TypeError(f"returned {_describe(value)}; expected {what} as a non-empty vector of floats")
    return [float(v) for v in array.reshape(-1)]


def _cast(value: Any, who: str, returns: str = "float") -> Outcome:
    try:
        f, values = as_values(value, returns)
    except TypeError as exc:
        return Outcome("failed", math.nan, f"{who} {exc}")
    return Outcome("ok", f, values=values)


def _failed(what: str) -> Outcome:
    return Outcome("failed", math.nan, format_failure(what))


def format_failure(what: str) -> str:
    """`what` and the current traceback, cut to MAX_ERROR_CHARS (keeping the end)."""
    text = f"{what}:\n{traceback.format_exc()}"
    return text if len(text) <= MAX_ERROR_CHARS else "...\n" + text[-MAX_ERROR_CHARS:]


def _describe(value: Any) -> str:
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"a {type(value).__name__} ({text})"

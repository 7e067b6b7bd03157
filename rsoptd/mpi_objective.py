"""The helper of a parallel run's lane: preprocess, postprocess and objective function.

MPI ranks return nothing, so after each launch the objective function reads
what they wrote and gives f.  That is user code, so it runs here, in a child
of the daemon started once per lane with the run's environment (like an
executor, speaking the same framing), never in the daemon.  Starting it once
per lane rather than per evaluation means numpy and the user's modules are
imported once, not on every evaluation.

Requests: ``(kind, sim_id, sim_dir, inputs, sim_status)`` where kind is
``pre`` (before the launch; the reply carries the inputs the preprocess left)
or ``post`` (after it; the reply carries f).  Replies: ``(kind, value, error)``.
"""

from __future__ import annotations

import math
import os
import traceback
from typing import Any

from rsoptd.evaluate import MAX_ERROR_CHARS, Loader, Task, as_float
from rsoptd.executor import Output, die_with_parent, receive, send


class Helper:
    def __init__(self, task: Task) -> None:
        self.task = task
        self.loader = Loader()
        self.output = Output(task)
        self._rng: Any = None
        self._job: dict[str, Any] | None = None  # J, kept from pre to post of one evaluation

    def handle(self, message: tuple[Any, ...]) -> tuple[Any, ...]:
        kind, sim_id, sim_dir, inputs, sim_status = message
        os.chdir(sim_dir)  # rsopt: these functions run where the evaluation ran
        fds = self.output.begin(sim_dir)
        try:
            if kind == "pre":
                return self._pre(sim_id, sim_dir, inputs)
            return self._post(sim_id, sim_dir, inputs, sim_status)
        finally:
            self.output.end(fds)
            os.chdir(self.task.run_dir)

    def _pre(self, sim_id: int, sim_dir: str, inputs: dict[str, Any]) -> tuple[Any, ...]:
        J = self._job = self._job_dict(sim_id, sim_dir, inputs)
        assert self.task.preprocess is not None
        error = self._call(self.task.preprocess, J, "preprocess")
        return ("pre", J["inputs"], error)

    def _post(self, sim_id: int, sim_dir: str, inputs: dict[str, Any], sim_status: int) -> tuple[Any, ...]:
        J = self._job if self._job is not None and self._job["sim_id"] == sim_id else None
        J = J or self._job_dict(sim_id, sim_dir, inputs)
        self._job = None
        J["sim_status"] = sim_status
        if self.task.postprocess and (error := self._call(self.task.postprocess, J, "postprocess")):
            return ("post", math.nan, error)
        assert self.task.objective is not None  # config requires it for parallel runs
        try:
            value = self.loader.function(self.task.objective)(J)
        except BaseException:
            return ("post", math.nan, _traceback("the objective function raised"))
        try:
            return ("post", as_float(value), None)
        except TypeError as exc:
            return ("post", math.nan, f"the objective function {exc}")

    def _job_dict(self, sim_id: int, sim_dir: str, inputs: dict[str, Any]) -> dict[str, Any]:
        # The same keys as a serial evaluation's J; 'value' is None because ranks return nothing.
        return {"inputs": inputs, "sim_id": sim_id, "sim_dir": sim_dir, "rand_stream": self._rand_stream(),
                "sim_status": None, "value": None}

    def _call(self, ref: tuple[str, str], J: dict[str, Any], what: str) -> str | None:
        try:
            self.loader.function(ref)(J)
        except BaseException:
            return _traceback(f"the {what} function raised")
        return None

    def _rand_stream(self) -> Any:
        if self._rng is None:
            import numpy

            entropy = None if self.task.seed is None else [self.task.seed, self.task.worker]
            self._rng = numpy.random.default_rng(entropy)
        return self._rng


def _traceback(what: str) -> str:
    text = f"{what}:\n{traceback.format_exc()}"
    return text if len(text) <= MAX_ERROR_CHARS else "...\n" + text[-MAX_ERROR_CHARS:]


def main() -> None:
    die_with_parent()
    # fds 0 and 1 carry the framing; move them aside so user code can print freely
    requests = os.fdopen(os.dup(0), "rb")
    replies = os.fdopen(os.dup(1), "wb")
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    task: Task = receive(requests)
    os.chdir(task.run_dir)
    helper = Helper(task)
    send(replies, ("ready", os.getpid()))
    while (message := receive(requests)) is not None:
        send(replies, helper.handle(message))


if __name__ == "__main__":
    main()

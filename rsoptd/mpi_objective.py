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
from typing import Any

from rsoptd.evaluate import Evaluator, Task, as_float, format_failure
from rsoptd.executor import Output, open_channel, receive, send


class Helper:
    def __init__(self, task: Task) -> None:
        self.task = task
        self.evaluator = Evaluator(task)  # its loader, hooks and rand_stream, shared with serial runs
        self.output = Output(task)
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
        failure = self.evaluator.call_hook(self.task.preprocess, J, "preprocess")
        return ("pre", J["inputs"], failure and failure.error)

    def _post(self, sim_id: int, sim_dir: str, inputs: dict[str, Any], sim_status: int) -> tuple[Any, ...]:
        J = self._job if self._job is not None and self._job["sim_id"] == sim_id else None
        J = J or self._job_dict(sim_id, sim_dir, inputs)
        self._job = None
        J["sim_status"] = sim_status
        if self.task.postprocess and (failure := self.evaluator.call_hook(self.task.postprocess, J, "postprocess")):
            return ("post", math.nan, failure.error)
        assert self.task.objective is not None  # config requires it for parallel runs
        try:
            value = self.evaluator.loader.function(self.task.objective)(J)
        except BaseException:
            return ("post", math.nan, format_failure("the objective function raised"))
        try:
            return ("post", as_float(value), None)
        except TypeError as exc:
            return ("post", math.nan, f"the objective function {exc}")

    def _job_dict(self, sim_id: int, sim_dir: str, inputs: dict[str, Any]) -> dict[str, Any]:
        # The same keys as a serial evaluation's J; 'value' is None because ranks return nothing.
        return {"inputs": inputs, "sim_id": sim_id, "sim_dir": sim_dir, "rand_stream": self.evaluator.rand_stream(),
                "sim_status": None, "value": None}


def main() -> None:
    requests, replies, task = open_channel()
    helper = Helper(task)
    send(replies, ("ready", os.getpid()))
    while (message := receive(requests)) is not None:
        send(replies, helper.handle(message))


if __name__ == "__main__":
    main()

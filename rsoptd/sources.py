"""Where a run's points come from: the ask/tell interface shared by samplers and optimizers.

A run's lanes ``ask`` for sim_ids to evaluate, read each point with ``point``,
``tell`` each result, and ``give_back`` what they could not evaluate.  A
sampler's points are all known up front (recomputed from the config and the
stored seed); an optimizer's come one by one from its thread
(rsoptd.optimizers.base).  ``ask`` returns an empty list only when no more
points will come; ``outcome`` then says how the run ends.
"""

from __future__ import annotations

from collections import deque
from typing import Iterable, Protocol

from rsoptd import optimizers, samplers
from rsoptd.config import RunSpec
from rsoptd.errors import Conflict
from rsoptd.store import Store


class PointSource(Protocol):
    planned: int  # evaluations expected: a sampler's points, an optimizer's sim_max (0: unknown)
    lanes: int  # most evaluations that can usefully run at once
    iteration: int | None  # evaluations an optimizer has been told; None for samplers

    @property
    def backlog(self) -> int: ...  # points ready to hand out now
    async def ask(self, n: int) -> list[int]: ...
    def point(self, sim_id: int) -> tuple[float, ...] | None: ...
    def tell(self, sim_id: int, status: str, f: float, values: list[float] | None = None,
             error: str | None = None) -> None: ...
    def give_back(self, sim_ids: list[int]) -> None: ...
    def close(self) -> None: ...
    def outcome(self) -> tuple[str, str | None]: ...  # (final state, message) once ask returned []


class SamplerSource:
    """A scan's points handed out in sim_id order by a cursor, skipping finished ones.

    Nothing here grows with the number of points: each point is computed from its sim_id
    (samplers.Points), a resumed run's finished sim_ids are one bit each, and only the
    sim_ids given back (at most a batch per lane) are kept in a list.
    """

    iteration = None

    def __init__(self, points: samplers.Points, finished: Iterable[int] = ()) -> None:
        self.points = points
        self.planned = len(points)
        self._finished = bytearray(self.planned)
        for sim_id in finished:
            if 0 <= sim_id < self.planned:
                self._finished[sim_id] = 1
        self._left = self.planned - self._finished.count(1)
        self._next = 0  # the cursor: sim_ids below it were handed out or skipped
        self._returned: deque[int] = deque()  # given back, handed out again first
        self.lanes = self._left

    @property
    def backlog(self) -> int:
        return self._left

    async def ask(self, n: int) -> list[int]:
        batch: list[int] = []
        while self._returned and len(batch) < n:
            batch.append(self._returned.popleft())
        finished, planned = self._finished, self.planned
        while len(batch) < n and self._next < planned:
            if not finished[self._next]:
                batch.append(self._next)
            self._next += 1
        self._left -= len(batch)
        return batch

    def point(self, sim_id: int) -> tuple[float, ...] | None:
        return self.points[sim_id] if 0 <= sim_id < self.planned else None

    def tell(self, sim_id: int, status: str, f: float, values: list[float] | None = None,
             error: str | None = None) -> None:
        pass  # a scan's points do not depend on results

    def give_back(self, sim_ids: list[int]) -> None:
        self._returned.extendleft(reversed(sim_ids))
        self._left += len(sim_ids)

    def close(self) -> None:
        pass

    def outcome(self) -> tuple[str, str | None]:
        if self._left:
            return "failed", f"{self._left} points were not evaluated"
        return "completed", None


def is_optimizer(spec: RunSpec) -> bool:
    return spec.software in optimizers.SUPPORTED


def create(spec: RunSpec, seed: int) -> PointSource:
    if is_optimizer(spec):
        from rsoptd.optimizers.base import OptimizerSource

        return OptimizerSource(spec, seed)
    return SamplerSource(samplers.Points(spec, seed))


def resume(spec: RunSpec, seed: int, store: Store, run_id: int, state: str) -> PointSource:
    """The source of a run taken up again, without re-running what it finished."""
    if is_optimizer(spec):
        from rsoptd.optimizers.base import OptimizerSource

        if state == "completed":
            raise Conflict(f"run {run_id} completed; an optimization that ended cannot be resumed")
        return OptimizerSource(spec, seed, list(store.evaluations(run_id)), store.values(run_id))
    source = SamplerSource(samplers.Points(spec, seed), store.finished_sim_ids(run_id))
    if not source.backlog:
        raise Conflict(f"run {run_id} has no unfinished points")
    return source

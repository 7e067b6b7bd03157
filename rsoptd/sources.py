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
from typing import Protocol

import numpy as np

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
    """A precomputed array of points, handed out in sim_id order, skipping finished ones."""

    iteration = None

    def __init__(self, points: np.ndarray, finished: set[int]) -> None:
        self.points = points
        self.pending = deque(i for i in range(len(points)) if i not in finished)
        self.planned = len(points)
        self.lanes = len(self.pending)

    @property
    def backlog(self) -> int:
        return len(self.pending)

    async def ask(self, n: int) -> list[int]:
        return [self.pending.popleft() for _ in range(min(n, len(self.pending)))]

    def point(self, sim_id: int) -> tuple[float, ...] | None:
        return tuple(self.points[sim_id].tolist()) if 0 <= sim_id < len(self.points) else None

    def tell(self, sim_id: int, status: str, f: float, values: list[float] | None = None,
             error: str | None = None) -> None:
        pass  # a scan's points do not depend on results

    def give_back(self, sim_ids: list[int]) -> None:
        self.pending.extendleft(reversed(sim_ids))

    def close(self) -> None:
        pass

    def outcome(self) -> tuple[str, str | None]:
        if self.pending:
            return "failed", f"{len(self.pending)} points were not evaluated"
        return "completed", None


def is_optimizer(spec: RunSpec) -> bool:
    return spec.software in optimizers.SUPPORTED


def create(spec: RunSpec, seed: int) -> PointSource:
    if is_optimizer(spec):
        from rsoptd.optimizers.base import OptimizerSource

        return OptimizerSource(spec, seed)
    return SamplerSource(samplers.plan(spec, seed), set())


def resume(spec: RunSpec, seed: int, store: Store, run_id: int, state: str) -> PointSource:
    """The source of a run taken up again, without re-running what it finished."""
    if is_optimizer(spec):
        from rsoptd.optimizers.base import OptimizerSource

        if state == "completed":
            raise Conflict(f"run {run_id} completed; an optimization that ended cannot be resumed")
        return OptimizerSource(spec, seed, list(store.evaluations(run_id)), store.values(run_id))
    points = samplers.plan(spec, seed)
    finished = store.finished_sim_ids(run_id)
    if len(finished) >= len(points):
        raise Conflict(f"run {run_id} has no unfinished points")
    return SamplerSource(points, finished)

"""The bridge between an optimizer's blocking loop (its own thread) and the event loop.

The optimizer calls ``problem.evaluate(x)``, which hands x to the loop with
``call_soon_threadsafe`` and blocks on a ``concurrent.futures.Future``.  On the
loop, the point waits in ``ready`` until a lane of the run asks for it (the same
``ask``/``tell`` a sampler answers); the lane's result resolves the future.
The optimizer never runs on the event loop and the loop never waits for it.

Resume replays the stored history: the optimizer starts again from the config,
and every point it asks that matches the next stored evaluation is answered
from the store instead of being evaluated.  Deterministic optimizers (all
those here, with their default settings) re-ask exactly the stored points, so a
resumed run goes on exactly where it stopped.  If a point differs, replay ends
with a warning and the optimizer continues from what it has been told.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import math
import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

import numpy as np

from rsoptd import optimizers
from rsoptd.config import RunSpec
from rsoptd.logs import get_logger

log = get_logger()
REPLAY_RTOL = 1e-9  # stored x went through JSON (exact); this only absorbs last-bit noise


class Stopped(Exception):
    """Raised in the optimizer's thread when the run ends: unwinds the library's loop."""


@dataclass(frozen=True)
class Answer:
    f: float
    values: np.ndarray | None = None  # residuals (DFO-LS) or a gradient the function returned


@dataclass
class Problem:
    """What an optimizer module sees (in its thread)."""

    method: str
    options: dict[str, Any]
    names: list[str]
    lower: np.ndarray
    upper: np.ndarray
    start: np.ndarray
    seed: int
    evaluate_many: Callable[[list[np.ndarray]], list[Answer]] = field(repr=False)

    def evaluate(self, x: np.ndarray) -> Answer:
        return self.evaluate_many([x])[0]


@dataclass
class _Stored:
    sim_id: int
    x: tuple[float, ...]
    f: float
    status: str
    values: list[float] | None


class OptimizerSource:
    """A PointSource whose points come from an optimizer running in its own thread."""

    def __init__(self, spec: RunSpec, seed: int, rows: Iterable[tuple[Any, ...]] = (),
                 values: dict[int, list[float]] | None = None) -> None:
        self.spec = spec
        self.seed = seed
        self.module = optimizers.module(spec.software)
        self.planned = spec.sim_max or 0
        self.lanes = max(1, int(self.module.lanes(spec.method, len(spec.code.parameters))))
        self.iteration = 0  # evaluations the optimizer has been told (replayed ones included)
        self._points: dict[int, tuple[float, ...]] = {}
        self._replay: deque[_Stored] = deque()
        self._next_id = 0
        self._load(rows, values or {})
        self._given = 0  # points handed to the optimizer's objective (sim_max counts these)
        self._ready: deque[int] = deque()
        self._waiting: dict[int, concurrent.futures.Future[Answer]] = {}
        self._result: tuple[str, str | None] | None = None
        self._closed = False
        self._changed: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._context: contextvars.Context | None = None  # the run's (its log lines carry run_id)
        self._thread: threading.Thread | None = None

    def _load(self, rows: Iterable[tuple[Any, ...]], values: dict[int, list[float]]) -> None:
        usable = True
        for sim_id, x, f, status, *_ in rows:
            self._points[sim_id] = tuple(x)
            if status == "cancelled":
                continue  # never finished: its sim_id is free again
            self._next_id = max(self._next_id, sim_id + 1)
            stored = _Stored(sim_id, tuple(x), f, status, values.get(sim_id))
            # replay stops at the first evaluation the optimizer could not use (it ended the run):
            # that point is evaluated again, under a new sim_id
            usable = usable and self._usable(stored.f, stored.values)
            if usable:
                self._replay.append(stored)

    # -- PointSource, on the event loop --

    @property
    def backlog(self) -> int:
        return len(self._ready)

    async def ask(self, n: int) -> list[int]:
        self._start()
        assert self._changed is not None
        while not self._ready:
            if self._result is not None or self._closed:
                return []
            self._changed.clear()
            await self._changed.wait()
        return [self._ready.popleft() for _ in range(min(n, len(self._ready)))]

    def point(self, sim_id: int) -> tuple[float, ...] | None:
        return self._points.get(sim_id)

    def tell(self, sim_id: int, status: str, f: float, values: list[float] | None = None,
             error: str | None = None) -> None:
        future = self._waiting.pop(sim_id, None)
        if future is None or future.done():
            return
        if status == "cancelled":
            future.set_exception(Stopped())
            return
        self.iteration += 1
        components = self.spec.components
        if values is not None and components is not None and len(values) != components and self.spec.returns == "vector":
            future.set_exception(Stopped())
            self._finish("failed", f"sim {sim_id} returned {len(values)} residuals but options.components is {components}")
            return
        if self._usable(f, values):
            future.set_result(Answer(f, None if values is None else np.asarray(values, dtype=float)))
            return
        future.set_exception(Stopped())
        self._finish("failed", self._unusable_message(sim_id, status, f, error))

    def give_back(self, sim_ids: list[int]) -> None:
        self._ready.extendleft(reversed([i for i in sim_ids if i in self._waiting]))
        self._wake()

    def close(self) -> None:
        """The run ends: release the optimizer's thread (it unwinds with Stopped)."""
        self._closed = True
        waiting, self._waiting = self._waiting, {}
        for future in waiting.values():
            if not future.done():
                future.set_exception(Stopped())
        self._ready.clear()
        self._wake()

    def outcome(self) -> tuple[str, str | None]:
        return self._result or ("failed", f"{self._name()} ended without saying why")

    # -- the thread --

    def _start(self) -> None:
        if self._thread is not None:
            return
        self._loop = asyncio.get_running_loop()
        self._context = contextvars.copy_context()
        self._changed = asyncio.Event()
        spec = self.spec
        params = spec.code.parameters
        problem = Problem(
            method=str(spec.method), options=dict(spec.software_options), names=[p.name for p in params],
            lower=np.array([p.min for p in params]), upper=np.array([p.max for p in params]),
            start=np.array([p.start for p in params]), seed=self.seed, evaluate_many=self._evaluate_many,
        )
        self._thread = threading.Thread(target=self._run, args=(problem,), daemon=True,
                                        name=f"optimizer-{spec.software}")
        self._thread.start()

    def _run(self, problem: Problem) -> None:
        try:
            message = self.module.minimize(problem)
            outcome: tuple[str, str | None] | None = ("completed", f"{self._name()}: {message}")
        except Stopped:
            outcome = None  # the loop side already knows why
        except Exception as exc:  # the library failed: the run fails, the daemon does not
            outcome = ("failed", f"{self._name()} raised {type(exc).__name__}: {exc}")
        if outcome is not None:
            try:
                self._call(self._finish, *outcome)
            except Stopped:
                pass  # the daemon is gone; nobody is left to tell

    def _evaluate_many(self, xs: list[np.ndarray]) -> list[Answer]:
        futures: list[concurrent.futures.Future[Answer]] = [concurrent.futures.Future() for _ in xs]
        points = [tuple(float(v) for v in np.asarray(x, dtype=float).reshape(-1)) for x in xs]
        self._call(self._offer, points, futures)
        return [future.result() for future in futures]  # raises Stopped when the run ends

    def _call(self, callback: Callable[..., None], *args: Any) -> None:
        assert self._loop is not None
        try:
            self._loop.call_soon_threadsafe(callback, *args, context=self._context)
        except RuntimeError:  # the loop is closed: the daemon is gone
            raise Stopped() from None

    # -- the loop side of an evaluation request --

    def _offer(self, points: list[tuple[float, ...]], futures: list[concurrent.futures.Future[Answer]]) -> None:
        for x, future in zip(points, futures):
            if self._closed or self._result is not None:
                future.set_exception(Stopped())
            elif self.spec.sim_max is not None and self._given >= self.spec.sim_max:
                self._finish("completed", f"sim_max reached: {self._given} evaluations")
                future.set_exception(Stopped())
            else:
                self._given += 1
                self._dispatch(x, future)
        self._wake()

    def _dispatch(self, x: tuple[float, ...], future: concurrent.futures.Future[Answer]) -> None:
        stored = self._replayed(x)
        if stored is not None:
            self.iteration += 1
            values = None if stored.values is None else np.asarray(stored.values, dtype=float)
            future.set_result(Answer(stored.f, values))
            return
        sim_id = self._next_id
        self._next_id += 1
        self._points[sim_id] = x
        self._waiting[sim_id] = future
        self._ready.append(sim_id)

    def _replayed(self, x: tuple[float, ...]) -> _Stored | None:
        if not self._replay:
            return None
        stored = self._replay[0]
        if np.allclose(x, stored.x, rtol=REPLAY_RTOL, atol=1e-12):
            return self._replay.popleft()
        log.warning("replay diverged: the optimizer asked a point other than the stored one; "
                    "stored evaluations from here on are kept but not replayed",
                    sim_id=stored.sim_id, stored=list(stored.x), asked=list(x))
        self._replay.clear()
        return None

    def _finish(self, state: str, message: str | None) -> None:
        if self._result is None:
            self._result = (state, message)
            log.info("optimizer finished", state=state, reason=message)
        self._wake()

    def _wake(self) -> None:
        if self._changed is not None:
            self._changed.set()

    # -- failures --

    def _usable(self, f: float, values: list[float] | None) -> bool:
        """A finite f (a penalty from an objective function counts) and the vector DFO-LS needs."""
        if not math.isfinite(f):
            return False
        return self.spec.returns != "vector" or values is not None

    def _unusable_message(self, sim_id: int, status: str, f: float, error: str | None) -> str:
        what = "failed" if status != "ok" else f"returned no finite value (f = {f})"
        reason = _last_line(error)
        return (f"sim {sim_id} {what}{': ' + reason if reason else ''}; {self._name()} cannot go on without a "
                f"value, so the run ends (an objective_function can return a penalty for failed simulations: "
                f"see J['sim_status'])")

    def _name(self) -> str:
        method = self.spec.method
        return self.spec.software if method in (None, self.spec.software) else f"{self.spec.software} {method}"


def _last_line(text: str | None) -> str:
    lines = [line for line in (text or "").strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else ""

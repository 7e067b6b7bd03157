"""A run: its points, its lanes of executors on the slot pool, and its state.

Each run keeps up to ``nworkers`` lanes.  A lane asks the run's PointSource
(rsoptd.sources: a sampler's planned points, or an optimizer's next ones) for a
batch, waits for a slot, and hands the batch to its executor, which streams
back one result per point, told back to the source.  Exit criteria
(elapsed_wallclock_time, stop_val) are watched here for every kind of run.  Batches grow while evaluations are fast (aiming at
BATCH_SECONDS of work) so the per-point cost of the daemon stays small, and a
lane gives its slot back between batches so runs share the pool fairly.
"""

from __future__ import annotations

import asyncio
import math
import os
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import structlog

from rsoptd import history
from rsoptd.config import RunSpec
from rsoptd.errors import ExecutorDied
from rsoptd.evaluate import Task
from rsoptd.executors import SPARES, ExecutorProcess
from rsoptd.logs import LogHub, get_logger
from rsoptd.mpi import OBJECTIVE_GRACE, MpiLane
from rsoptd.pool import SlotPool
from rsoptd.protocol import FINAL_STATES
from rsoptd.sources import PointSource
from rsoptd.store import Store

BATCH_SECONDS = 0.02
MAX_BATCH = 512
TAIL_LINES = 20
BEST_TRACE = 128  # (done, best f) pairs kept for `rsoptctl watch`'s sparkline; thinned by half when full
log = get_logger()


@dataclass
class Context:
    store: Store
    pool: SlotPool
    hub: LogHub


@dataclass
class RunRecord:
    id: int
    state: str
    config_path: str
    config_text: str
    config_dir: str
    overrides: str
    cwd: str
    env: str
    run_dir: str
    seed: int
    planned: int
    parameters: str
    software: str
    mode: str
    created: float
    started: float | None = None
    ended: float | None = None
    message: str | None = None


class Stop(Exception):
    """Ends a run's lanes: the run failed, was cancelled or is interrupted."""


class Run:
    def __init__(self, record: RunRecord, ctx: Context) -> None:
        self.record = record
        self.ctx = ctx
        self.names: list[str] = history.names(record.parameters)
        self.done, self.failed, best = ctx.store.counts(record.id)
        self.best: tuple[float, int] | None = best
        self.spec: RunSpec | None = None
        self.env: dict[str, str] = {}
        self.source: PointSource | None = None
        self.task: asyncio.Task[None] | None = None
        self._lanes: list[asyncio.Task[None]] = []
        self._stop: tuple[str, str] | None = None  # (final state, message)
        self._record_cancelled = True
        self._mean_seconds: float | None = None
        self._waiters: list[asyncio.Future[None]] = []
        self._running: dict[int, int] = {}  # lane (worker) -> the sim_id its executor is evaluating
        self.slots = 0  # pool slots this run's lanes hold now
        self.best_trace: list[tuple[int, float]] = [(self.done, best[0])] if best else []

    @property
    def id(self) -> int:
        return self.record.id

    @property
    def state(self) -> str:
        return self.record.state

    @property
    def active(self) -> bool:
        return self.task is not None and not self.task.done()

    @property
    def live(self) -> bool:
        """Still going for a watcher: its task runs and its state is not yet final
        (the final state is set a moment before the task ends)."""
        return self.active and self.state not in FINAL_STATES

    # -- lifecycle --

    def launch(self, spec: RunSpec, env: dict[str, str], source: PointSource) -> None:
        self.spec, self.env, self.source = spec, env, source
        self._stop = None
        self._set_state("queued", message=None, ended=None)
        self.task = asyncio.create_task(self._execute(), name=f"run-{self.id}")

    def stop(self, state: str, message: str, record_cancelled: bool = True) -> None:
        """Stop dispatching and end the lanes; in-flight evaluations are killed."""
        if self._stop is None:
            self._stop = (state, message)
            self._record_cancelled = record_cancelled
        current = asyncio.current_task()
        for lane in self._lanes:
            if lane is not current:
                lane.cancel()

    async def _execute(self) -> None:
        structlog.contextvars.bind_contextvars(run_id=self.id)
        source = self.source
        assert self.spec is not None and source is not None
        log.info("run queued", planned=source.planned, pending=source.backlog, software=self.spec.software,
                 mode=self.spec.code.mode, nworkers=self.spec.nworkers, run_dir=self.record.run_dir)
        lanes = min(self.spec.nworkers, source.lanes)
        self._lanes = [asyncio.create_task(self._lane(i + 1), name=f"run-{self.id}-lane-{i + 1}") for i in range(lanes)]
        clock = self._start_clock()
        results = await asyncio.gather(*self._lanes, return_exceptions=True)
        if clock is not None:
            clock.cancel()
        source.close()  # an optimizer's thread still waiting for a value unwinds
        for result in results:
            if isinstance(result, BaseException) and not isinstance(result, (asyncio.CancelledError, Stop)):
                log.error("lane crashed", exc_info=result)
                self._stop = self._stop or ("failed", f"internal error: {result!r}")
        self.ctx.store.flush()
        if not self.spec.parallel:  # the next run from the same shell starts at once (see executors.Spares)
            SPARES.keep(self.env, min(self.spec.nworkers, self.ctx.pool.total))
        state, message = self._stop or source.outcome()
        self._set_state(state, message=message, ended=time.time())
        await self._write_history()
        log.info("run ended", state=state, message=message, done=self.done, failed=self.failed)
        self.notify()

    def _set_state(self, state: str, **fields: Any) -> None:
        self.record.state = state
        for name, value in fields.items():
            setattr(self.record, name, value)
        self.ctx.store.update_run(self.id, state=state, **fields)
        self.notify()

    async def _write_history(self) -> None:
        path = os.path.join(self.record.run_dir, "history.npy")
        try:
            await self.ctx.store.read(self.id, lambda rows: _save_history(path, rows, len(self.names)))
        except OSError as exc:
            log.warning("cannot write history.npy", error=str(exc))

    # -- lanes --

    async def _lane(self, worker: int) -> None:
        spec = self.spec
        assert spec is not None
        executor: ExecutorProcess | MpiLane | None = None
        try:
            while self._stop is None:
                batch = await self._take_batch()
                if not batch:
                    return
                await self.ctx.pool.acquire(self.id, spec.code.cores)
                self.slots += spec.code.cores
                try:
                    if self.state == "queued":
                        self._set_state("running", started=self.record.started or time.time())
                    if executor is None:
                        executor = await self._spawn(worker, batch)
                    executor = await self._run_batch(executor, batch, worker)
                    self._running.pop(worker, None)
                finally:
                    self.slots -= spec.code.cores
                    self.ctx.pool.release(spec.code.cores)
        except asyncio.CancelledError:
            sim_id = self._running.get(worker)
            if sim_id is not None and self._record_cancelled:
                self._record(sim_id, "cancelled", math.nan, self._stop[1] if self._stop else "cancelled", None, None, worker)
            raise
        finally:
            if executor is not None:
                await (executor.kill() if self._stop else executor.close())

    async def _take_batch(self) -> list[int]:
        """Up to a batch of sim_ids; waits while an optimizer thinks; [] when no more will come."""
        source = self.source
        assert source is not None
        if self.spec is not None and self.spec.parallel:
            return await source.ask(1)  # one MPI job per slot grant: its cores go back to the pool at once
        lanes = max(1, sum(not lane.done() for lane in self._lanes))
        fair_share = math.ceil(max(1, source.backlog) / lanes)
        target = 1 if self._mean_seconds is None else int(BATCH_SECONDS / max(self._mean_seconds, 1e-7))
        size = max(1, min(target, fair_share, MAX_BATCH))
        return await source.ask(size)

    def _give_back(self, sim_ids: list[int]) -> None:
        if sim_ids and self.source is not None:
            self.source.give_back(sim_ids)

    def _point(self, sim_id: int) -> tuple[float, ...]:
        x = self.source.point(sim_id) if self.source is not None else None
        return x if x is not None else ()

    def _start_clock(self) -> asyncio.TimerHandle | None:
        """elapsed_wallclock_time counts from the run's (re)start; reaching it completes the run
        (as libEnsemble does, an evaluation still running then is killed and recorded as cancelled)."""
        limit = self.spec.elapsed_wallclock_time if self.spec is not None else None
        if limit is None:
            return None
        message = f"elapsed_wallclock_time reached: {limit:g} s"
        return asyncio.get_running_loop().call_later(limit, self.stop, "completed", message)

    async def _spawn(self, worker: int, batch: list[int]) -> ExecutorProcess | MpiLane:
        assert self.spec is not None
        try:
            if self.spec.parallel:
                return await MpiLane.start(self._task(worker), self.env, self.spec, self.ctx.hub)
            return await ExecutorProcess.start(self._task(worker), self.env)
        except ExecutorDied as exc:
            self._give_back(batch)
            self.stop("failed", f"cannot start an executor: {exc}")
            raise Stop() from None

    def _task(self, worker: int) -> Task:
        spec = self.spec
        assert spec is not None
        code = spec.code

        def ref(r: Any) -> tuple[str, str] | None:
            return (r.file, r.name) if r else None

        return Task(
            function=(code.input_file, code.function), preprocess=ref(code.preprocess),
            postprocess=ref(code.postprocess), objective=ref(spec.objective), settings=code.settings,
            names=tuple(self.names), mode=code.mode, run_dir=self.record.run_dir,
            sim_dirs=spec.sim_dirs or spec.needs_job_dict, seed=self.record.seed, worker=worker,
            returns=spec.returns,
        )

    async def _run_batch(self, executor: ExecutorProcess | MpiLane, batch: list[int],
                         worker: int) -> ExecutorProcess | MpiLane | None:
        """Evaluate a batch; returns the executor, or None when it had to be killed."""
        spec = self.spec
        assert spec is not None
        timeout = spec.code.timeout
        if timeout is not None and spec.parallel:  # the MPI lane kills at `timeout` itself, then runs the objective
            timeout += OBJECTIVE_GRACE
        tail = TAIL_LINES if self.ctx.hub.accepting(self.id) else 0
        done = 0
        self._running[worker] = batch[0]
        try:
            await executor.send(("batch", [(i, self._point(i)) for i in batch], tail))
            while True:
                if timeout is None:
                    message = await executor.receive()
                else:
                    message = await asyncio.wait_for(executor.receive(), timeout)
                if message[0] == "end":
                    break
                _, sim_id, status, f, error, fatal, started, ended, lines, *extra = message
                done += 1
                self._running[worker] = batch[min(done, len(batch) - 1)]
                self._record(sim_id, status, f, error, started, ended, worker, extra[0] if extra else None)
                self._learn(ended - started)
                if lines:
                    self._publish_output(sim_id, lines)
                if fatal:
                    self.stop("failed", f"sim {sim_id} failed in worker mode, which ends the run (as in rsopt): "
                              f"{_last_line(error)}")
        except TimeoutError:
            self._running.pop(worker, None)
            await executor.kill()
            self._record(batch[done], "timeout", math.nan, f"no result within the timeout of {timeout} s; killed", None, None, worker)
            self._give_back(batch[done + 1:])
            log.warning("evaluation timed out", sim_id=batch[done], timeout=timeout)
            return None
        except ExecutorDied as exc:
            self._running.pop(worker, None)
            self._record(batch[done], "failed", math.nan, f"the executor {exc} during this evaluation", None, None, worker)
            self._give_back(batch[done + 1:])
            log.warning("executor died", sim_id=batch[done], reason=str(exc))
            if spec.code.mode == "worker":
                self.stop("failed", f"the worker running sim {batch[done]} died ({exc}); in worker mode that ends the run, as in rsopt")
            return None
        if done < len(batch):
            self._give_back(batch[done:])
        if self._stop:
            raise Stop()
        return executor

    # -- results --

    def _record(self, sim_id: int, status: str, f: float, error: str | None,
                started: float | None, ended: float | None, worker: int | None,
                values: list[float] | None = None) -> None:
        x = list(self._point(sim_id))
        self.ctx.store.add_evaluation(self.id, sim_id, x, f, status, error, started, ended, worker, values)
        if self.source is not None:
            self.source.tell(sim_id, status, f, values, error)
        if status == "cancelled":
            return
        self.done += 1
        if status != "ok":
            self.failed += 1
            log.warning("evaluation failed", sim_id=sim_id, status=status, error=_last_line(error))
        elif not math.isnan(f) and (self.best is None or f < self.best[0]):
            self.best = (f, sim_id)
            self._trace_best(f)
        stop_val = self.spec.stop_val if self.spec is not None else None
        if status == "ok" and stop_val is not None and f < stop_val:
            self.stop("completed", f"stop_val reached: sim {sim_id} has f = {f:.10g} < {stop_val:g}")

    def _trace_best(self, f: float) -> None:
        """Called only on improvement, so it costs nothing per evaluation."""
        self.best_trace.append((self.done, f))
        if len(self.best_trace) > BEST_TRACE:
            del self.best_trace[1:-1:2]  # keep the first and the latest

    def _learn(self, seconds: float) -> None:
        mean = self._mean_seconds
        self._mean_seconds = seconds if mean is None else 0.8 * mean + 0.2 * seconds

    def _publish_output(self, sim_id: int, lines: list[tuple[str, str]]) -> None:
        for stream, line in lines:
            log.info("output", sim_id=sim_id, stream=stream, line=line)

    # -- status --

    def notify(self) -> None:
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    async def changed(self) -> None:
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        await waiter

    def status(self) -> dict[str, Any]:
        r = self.record
        best = None
        if self.best is not None:
            f, sim_id = self.best
            known = self.source.point(sim_id) if self.source is not None else None
            x = list(known) if known is not None else self._stored_x(sim_id)
            best = {"sim_id": sim_id, "f": f, "x": dict(zip(self.names, x))}
        return {
            "id": r.id, "state": r.state, "config": r.config_path, "run_dir": r.run_dir,
            "software": r.software, "mode": r.mode, "parameters": self.names,
            "planned": r.planned, "done": self.done, "failed": self.failed,
            "running": self.active and r.state == "running",
            "best": best, "created": r.created, "started": r.started, "ended": r.ended,
            "message": r.message,
            "method": self.spec.method if self.spec is not None else None,
            "iteration": self.source.iteration if self.source is not None else None,
            "slots": self.slots,
        }

    def _stored_x(self, sim_id: int) -> list[float]:
        return self.ctx.store.point(self.id, sim_id) or []


def _save_history(path: str, rows: Any, n_params: int) -> None:
    with open(path, "wb") as out:  # streamed: a million evaluations never sit in memory at once
        history.write_npy(out, rows, n_params)


def _last_line(text: str | None) -> str:
    lines = [line for line in (text or "").strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else ""

"""The registry of runs: submit, resume, cancel, and interrupt them all at shutdown."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import time
from typing import Any

from rsoptd import config, sources
from rsoptd.errors import ConfigError, Conflict, NotFound
from rsoptd.logs import get_logger
from rsoptd.runs import Context, Run, RunRecord

log = get_logger()
SHUTDOWN_GRACE = 5.0


class Manager:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.runs: dict[int, Run] = {}

    def load(self) -> None:
        interrupted = self.ctx.store.interrupt_unfinished()
        if interrupted:
            log.warning("runs interrupted by the previous daemon", count=interrupted)
        for row in self.ctx.store.runs():
            self.runs[row["id"]] = Run(RunRecord(**dict(row)), self.ctx)

    def get(self, run_id: Any) -> Run:
        if run_id == "last" and self.runs:
            return self.runs[max(self.runs)]
        try:
            return self.runs[int(run_id)]
        except (KeyError, ValueError, TypeError):
            raise NotFound(f"no run {run_id!r}") from None

    def submit(self, text: str, config_path: str, cwd: str, env: dict[str, str],
               overrides: dict[str, Any]) -> tuple[Run, list[str]]:
        config_dir = os.path.dirname(config_path)
        spec = config.load(text, config_dir, overrides)
        self._check_cores(spec)
        seed = spec.seed if spec.seed is not None else secrets.randbits(31)
        source = sources.create(spec, seed)
        warnings = []
        run_dir = _fresh_dir(spec.run_dir)
        if run_dir != spec.run_dir:
            warnings.append(f"run_dir {spec.run_dir} exists; this run uses {run_dir}")
        os.makedirs(run_dir)
        fields = dict(
            state="queued", config_path=config_path, config_text=text, config_dir=config_dir,
            overrides=json.dumps(overrides), cwd=cwd, env=json.dumps(env), run_dir=run_dir, seed=seed,
            planned=source.planned, parameters=json.dumps(spec.parameter_names), software=spec.software,
            mode="parallel" if spec.parallel else spec.code.mode, created=time.time(),
        )
        run_id = self.ctx.store.create_run(**fields)
        run = Run(RunRecord(id=run_id, **fields), self.ctx)
        self.runs[run_id] = run
        run.launch(spec, _job_env(env, spec), source)
        for warning in warnings:
            log.warning(warning, run_id=run_id)
        return run, warnings

    def resume(self, run_id: Any) -> Run:
        run = self.get(run_id)
        if run.active:
            raise Conflict(f"run {run.id} is {run.state}; only a finished run can be resumed")
        record = run.record
        try:
            spec = config.load(record.config_text, record.config_dir, json.loads(record.overrides))
        except ConfigError as exc:
            raise ConfigError(exc.path, f"the config of run {run.id} no longer validates: {exc.detail}") from None
        source = sources.resume(spec, record.seed, self.ctx.store, run.id, record.state)
        os.makedirs(record.run_dir, exist_ok=True)
        run.launch(spec, _job_env(json.loads(record.env), spec), source)
        log.info("run resumed", run_id=run.id, pending=source.backlog)
        return run

    def cancel(self, run_id: Any) -> Run:
        run = self.get(run_id)
        if not run.active:
            raise Conflict(f"run {run.id} is already {run.state}")
        run.stop("cancelled", "cancelled by the user")
        return run

    async def shutdown(self) -> None:
        active = [run for run in self.runs.values() if run.active]
        for run in active:
            run.stop("interrupted", "the daemon shut down", record_cancelled=False)
        tasks = [run.task for run in active if run.task is not None]
        if tasks:
            await asyncio.wait(tasks, timeout=SHUTDOWN_GRACE)

    def counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for run in self.runs.values():
            counts[run.state] = counts.get(run.state, 0) + 1
        return counts

    def _check_cores(self, spec: config.RunSpec) -> None:
        if spec.code.cores > self.ctx.pool.total:
            raise ConfigError("codes[0].python.setup.cores",
                              f"{spec.code.cores} cores requested but the daemon has {self.ctx.pool.total}")


def _fresh_dir(path: str) -> str:
    """rsopt must never overwrite a run directory: add _1, _2, ... until the name is free."""
    candidate, n = path, 0
    while os.path.exists(candidate):
        n += 1
        candidate = f"{path}_{n}"
    return candidate


def _job_env(env: dict[str, str], spec: config.RunSpec) -> dict[str, str]:
    merged = dict(env)
    merged.update(spec.code.environment)
    return merged

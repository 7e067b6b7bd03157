"""Pictures of runs, drawn by the daemon with matplotlib (the optional extra rsoptd[plot]).

The `plot` op reads the run's evaluations in a thread (rsoptd.plotdata: columns
from SQLite, binned and sampled with NumPy) and draws them there with the Agg
backend, through matplotlib's object API (no pyplot, no global figure state),
one plot at a time.  The client receives only the finished PNG, SVG or PDF, so
it stays standard-library only and a million evaluations cost it nothing.
A running run is drawn as a snapshot of what has finished.
"""

from __future__ import annotations

import asyncio
import importlib.util
import io
import json
import math
import os
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from rsoptd import config, optimizers, plotdata, samplers
from rsoptd.errors import BadRequest, ConfigError, Unsupported
from rsoptd.plotdata import MAX_MARKERS, MAX_POINTS, Evaluations

if TYPE_CHECKING:
    from rsoptd.runs import Run
    from rsoptd.store import Store

KINDS = ("history", "slice", "heatmap", "scatter", "parallel")
FORMATS = ("png", "svg", "pdf")
MISSING = "matplotlib is not installed for the daemon's Python: install rsoptd[plot] (pip install 'rsoptd[plot]')"
_draw_lock = threading.Lock()  # matplotlib's font and text caches are not made for concurrent drawing


def default_kind(software: str, n_params: int) -> str:
    if software in optimizers.SUPPORTED or software == "start" or n_params == 0:
        return "history"
    if n_params == 1:
        return "slice"
    if n_params == 2:
        return "heatmap" if software == "mesh_scan" else "scatter"
    return "parallel"


@dataclass
class Job:
    """What drawing needs to know about a run, copied on the event loop."""

    run_id: int
    state: str
    software: str
    method: str | None
    config_path: str
    names: list[str]
    objective: str
    bounds: list[tuple[float, float]] | None
    kind: str
    format: str
    active: bool


async def plot(run: Run, store: Store, kind: str | None, fmt: str) -> tuple[bytes, dict[str, Any]]:
    """Draw `run`; returns the file's bytes and what was drawn."""
    if importlib.util.find_spec("matplotlib") is None:
        raise Unsupported(MISSING)
    if fmt not in FORMATS:
        raise BadRequest(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")
    record = run.record
    kind = kind or default_kind(record.software, len(run.names))
    if kind not in KINDS:
        raise BadRequest(f"unknown kind {kind!r}; expected one of {', '.join(KINDS)}")
    if kind in ("heatmap", "scatter") and len(run.names) < 2:
        raise BadRequest(f"a {kind} needs two parameters; run {run.id} has {len(run.names)}")
    if kind in ("slice", "parallel") and not run.names:
        raise BadRequest(f"run {run.id} has no parameters; try --kind history")
    started = time.perf_counter()
    store.flush()  # what has finished is on disk; the thread reads it on its own connection
    spec, evaluations = await asyncio.to_thread(_load_fast, run, str(store.path))
    if evaluations is None:
        evaluations = await store.read(run.id, lambda rows: plotdata.from_rows(rows, run.names))
    job = Job(run.id, record.state, record.software, spec.method if spec else None, record.config_path,
              list(run.names), _objective(spec), _bounds(spec), kind, fmt, run.active)
    image = await asyncio.to_thread(render, job, evaluations)
    return image, {"id": run.id, "kind": kind, "format": fmt, "bytes": len(image), "count": len(evaluations),
                   "failed": int(np.count_nonzero(evaluations.failed)), "state": record.state,
                   "seconds": round(time.perf_counter() - started, 3)}


def _load_fast(run: Run, database: str) -> tuple[config.RunSpec | None, Evaluations | None]:
    """The run's spec, and a scan's evaluations with x taken from its planned points (None: use the rows)."""
    record = run.record
    try:
        spec: config.RunSpec | None = config.load(record.config_text, record.config_dir, json.loads(record.overrides))
    except ConfigError:
        spec = None  # the config or its function file changed since: draw from the stored rows alone
    if spec is None or spec.software in optimizers.SUPPORTED:
        return spec, None
    try:
        points = np.asarray(samplers.plan(spec, record.seed), dtype=float)  # as a resumed run recomputes them
    except ConfigError:
        return spec, None  # e.g. a mesh_file that has gone
    if points.ndim != 2 or len(points) != record.planned or points.shape[1] != len(run.names):
        return spec, None
    return spec, plotdata.read_with_points(database, run.id, list(run.names), points)


def _objective(spec: config.RunSpec | None) -> str:
    if spec is None:
        return "f"
    if spec.objective is not None:
        return f"f = {spec.objective.name}(J)"
    label = f"f = {spec.code.function}({', '.join(spec.parameter_names)})"
    return label + (" (sum of squares)" if spec.returns == "vector" else "")


def _bounds(spec: config.RunSpec | None) -> list[tuple[float, float]] | None:
    return [(p.min, p.max) for p in spec.code.parameters] if spec is not None else None


# -- drawing -----------------------------------------------------------------


def render(job: Job, ev: Evaluations) -> bytes:
    try:
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise Unsupported(f"{MISSING} ({exc})") from None
    with _draw_lock:
        size = (11, 8.5) if job.kind == "parallel" else (9, 6)
        fig = Figure(figsize=size, dpi=100, layout="constrained")
        if len(ev):
            DRAW[job.kind](fig, job, ev)
        else:
            fig.add_subplot().text(0.5, 0.5, "no evaluation has finished yet", ha="center", va="center")
        fig.suptitle(_title(job, ev), fontsize=11)
        buffer = io.BytesIO()
        fig.savefig(buffer, format=job.format, metadata={"Title": f"rsoptd run {job.run_id} ({job.kind})"})
        return buffer.getvalue()


def _title(job: Job, ev: Evaluations) -> str:
    software = job.software if job.method in (None, job.software) else f"{job.software} {job.method}"
    failed = int(np.count_nonzero(ev.failed))
    counts = f"{len(ev)} evaluations, {failed} failed" + (f", {ev.cancelled} cancelled" if ev.cancelled else "")
    when = f"; running: snapshot at {time.strftime('%H:%M:%S')}" if job.active else f"; {job.state}"
    return f"run {job.run_id}: {software} of {job.objective} ({os.path.basename(job.config_path)})\n{counts}{when}"


def _failed_rug(ax: Any, positions: np.ndarray, total: int) -> None:
    """Failed evaluations as red x along the bottom of the axes (they have no f to place them by)."""
    if not total:
        return
    shown = positions[plotdata.sample(len(positions), MAX_MARKERS)]
    ax.plot(shown, np.full(len(shown), 0.03), "x", color="red", ms=5, mew=1.2, alpha=0.8, transform=ax.get_xaxis_transform(),
            clip_on=False, label=_failed_label(total, len(shown)), zorder=5)


def _failed_label(total: int, shown: int) -> str:
    return f"failed ({total}{'' if shown == total else f', {shown} shown'}), no f"


def _mark_best(ax: Any, x: float, y: float, f: float, sim_id: int) -> None:
    ax.plot([x], [y], marker="*", ms=16, color="gold", mec="black", mew=1.2, ls="none", zorder=6,
            label=f"best f = {f:.6g} (sim {sim_id})")


def _norm(f: np.ndarray) -> Any:
    """The colour scale of f: logarithmic when f is positive over more than two decades."""
    from matplotlib.colors import LogNorm, Normalize

    if not len(f):
        return Normalize(0.0, 1.0)
    lo, hi = float(f.min()), float(f.max())
    return LogNorm(lo, hi) if lo > 0 and hi / lo > 100 else Normalize(lo, hi)


def _maybe_log(ax: Any, f: np.ndarray) -> None:
    good = f[np.isfinite(f)]
    if len(good) and good.min() > 0 and good.max() / good.min() > 1e3:
        ax.set_yscale("log")


def draw_history(fig: Any, job: Job, ev: Evaluations) -> None:
    ax = fig.add_subplot()
    n = len(ev)
    ok = ev.ok
    if n <= MAX_POINTS:
        ax.plot(ev.sim_id[ok], ev.f[ok], ".", ms=5, alpha=0.7, color="C0", label="f", zorder=3)
    elif ok.any():
        starts, lo, hi = plotdata.envelope(np.where(ok, ev.f, np.nan), 1500)
        ax.fill_between(ev.sim_id[starts], lo, hi, step="post", alpha=0.5, color="C0", lw=0,
                        label=f"f (range of each {n // len(starts)} evaluations)")
    if ok.any():
        running = np.fmin.accumulate(np.where(ok, ev.f, np.inf))
        changes = np.flatnonzero(np.r_[True, running[1:] != running[:-1]])
        keep = np.r_[changes, n - 1]
        keep = keep[np.isfinite(running[keep])]
        ax.step(ev.sim_id[keep], running[keep], where="post", color="C3", lw=2, label="best so far")
        best = ev.best()
        assert best is not None
        _mark_best(ax, ev.sim_id[best], ev.f[best], ev.f[best], int(ev.sim_id[best]))
        _maybe_log(ax, ev.f[ok])
    _failed_rug(ax, ev.sim_id[ev.failed], int(np.count_nonzero(ev.failed)))
    ax.set_xlabel("evaluation (sim_id)")
    ax.set_ylabel(job.objective)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper right", fontsize=9)


def _slice(ax: Any, ev: Evaluations, i: int, job: Job, legend: bool) -> None:
    ok = ev.ok
    x, f = ev.x[ok, i], ev.f[ok]
    if len(x) and len(x) <= MAX_POINTS:
        ax.plot(x, f, ".", ms=4, alpha=0.5, color="C0", label="f")
        distinct, inverse = np.unique(x, return_inverse=True)
        if len(distinct) <= 2000 and len(distinct) < len(x) or len(job.names) == 1:
            means = np.bincount(inverse.ravel(), weights=f) / np.bincount(inverse.ravel())
            mins = np.full(len(distinct), np.inf)
            np.minimum.at(mins, inverse.ravel(), f)
            if len(job.names) == 1:
                ax.plot(distinct, means, "-", color="C0", lw=1, alpha=0.8)
            else:
                ax.plot(distinct, mins, "-", color="C2", lw=1.2, label="lowest f at this value")
    elif len(x):
        b = plotdata.bin_1d(x, f)
        ax.fill_between(b.centers, b.low, b.high, alpha=0.35, color="C0", lw=0, label="range of f per bin")
        ax.plot(b.centers, b.mean, color="C0", lw=1, label="mean f per bin")
        ax.plot(b.centers, b.low, color="C2", lw=1.2, label="lowest f per bin")
    best = ev.best()
    if best is not None:
        _mark_best(ax, ev.x[best, i], ev.f[best], ev.f[best], int(ev.sim_id[best]))
        _maybe_log(ax, f)
    _failed_rug(ax, ev.x[ev.failed, i], int(np.count_nonzero(ev.failed)))
    ax.set_xlabel(job.names[i])
    ax.grid(alpha=0.3)
    if legend:
        ax.legend(fontsize=8, loc="best")


def draw_slice(fig: Any, job: Job, ev: Evaluations) -> None:
    d = len(job.names)
    cols = min(d, 3)
    rows = math.ceil(d / cols)
    axes = fig.subplots(rows, cols, squeeze=False, sharey=True)
    for i, ax in enumerate(axes.flat):
        if i >= d:
            ax.set_visible(False)
            continue
        _slice(ax, ev, i, job, legend=i == 0)
        if i % cols == 0:
            ax.set_ylabel(job.objective)


def _plane(fig: Any, job: Job, ev: Evaluations, scatter: bool) -> None:
    ax = fig.add_subplot()
    ok, failed = ev.ok, ev.failed
    x, y = ev.x[:, 0], ev.x[:, 1]
    finite = ev.f[ok]
    norm = _norm(finite)
    ax.set_facecolor("0.85")  # cells or regions with no value
    if scatter and np.count_nonzero(ok) <= MAX_POINTS:
        size = float(np.clip(20000 / max(1, int(np.count_nonzero(ok))), 6, 60))
        mappable = ax.scatter(x[ok], y[ok], c=ev.f[ok], s=size, cmap="viridis", norm=norm, lw=0)
        what = job.objective
    else:
        grid = plotdata.grid_2d(x, y, ev.f, failed)
        mappable = ax.pcolormesh(grid.xedges, grid.yedges, np.ma.masked_invalid(grid.mean), cmap="viridis",
                                 norm=norm, shading="flat", rasterized=True)
        cells = grid.mean.size
        what = job.objective + ("" if grid.exact and len(ev) <= cells else
                                f"\n(mean per cell, {grid.mean.shape[1]}×{grid.mean.shape[0]} cells)")
    fig.colorbar(mappable, ax=ax, label=what)
    total = int(np.count_nonzero(failed))
    if total:
        shown = plotdata.sample(total, MAX_MARKERS)
        many = total > 100
        ax.plot(x[failed][shown], y[failed][shown], "x", color="red", ms=4 if many else 7, mew=1 if many else 1.5,
                alpha=0.7 if many else 1, ls="none", label=_failed_label(total, len(shown)), zorder=5)
    best = ev.best()
    if best is not None:
        _mark_best(ax, ev.x[best, 0], ev.x[best, 1], ev.f[best], int(ev.sim_id[best]))
    ax.set_xlabel(job.names[0])
    ax.set_ylabel(job.names[1])
    if job.bounds:
        ax.set_xlim(*_padded(job.bounds[0], x))
        ax.set_ylim(*_padded(job.bounds[1], y))
    if best is not None or total:
        ax.legend(fontsize=9, loc="upper right", framealpha=0.85)


def _padded(bounds: tuple[float, float], values: np.ndarray) -> tuple[float, float]:
    lo = min(bounds[0], float(values.min())) if len(values) else bounds[0]
    hi = max(bounds[1], float(values.max())) if len(values) else bounds[1]
    pad = 0.02 * (hi - lo) if hi > lo else 0.5
    return lo - pad, hi + pad


def draw_heatmap(fig: Any, job: Job, ev: Evaluations) -> None:
    _plane(fig, job, ev, scatter=False)


def draw_scatter(fig: Any, job: Job, ev: Evaluations) -> None:
    _plane(fig, job, ev, scatter=True)


def draw_parallel(fig: Any, job: Job, ev: Evaluations) -> None:
    from matplotlib import colormaps
    from matplotlib.collections import LineCollection

    d = len(job.names)
    cols = min(d, 4)
    rows = math.ceil(d / cols)
    spec = fig.add_gridspec(1 + rows, cols, height_ratios=[2.2] + [1] * rows)
    ax = fig.add_subplot(spec[0, :])
    lo = np.array([b[0] for b in job.bounds]) if job.bounds else np.nanmin(ev.x, axis=0)
    hi = np.array([b[1] for b in job.bounds]) if job.bounds else np.nanmax(ev.x, axis=0)
    span = np.where(hi > lo, hi - lo, 1.0)
    unit = (ev.x - lo) / span
    axis = np.arange(d)
    ok_index = np.flatnonzero(ev.ok)
    if len(ok_index):
        order = ok_index[np.argsort(ev.f[ok_index])]  # best first
        rest = order[150:][plotdata.sample(max(0, len(order) - 150), 1350)]
        drawn = np.concatenate([order[:150], rest])
        drawn = drawn[np.argsort(-ev.f[drawn])]  # worst drawn first, best on top
        norm = _norm(ev.f[ok_index])
        segments = np.stack([np.broadcast_to(axis, (len(drawn), d)), unit[drawn]], axis=2)
        lines = LineCollection(list(segments), cmap=colormaps["viridis"], norm=norm, linewidths=0.8, alpha=0.55,
                               rasterized=True)
        lines.set_array(ev.f[drawn])
        ax.add_collection(lines)
        fig.colorbar(lines, ax=ax, label=job.objective)
        best = ev.best()
        assert best is not None
        ax.plot(axis, unit[best], color="black", lw=2.5, label=f"best f = {ev.f[best]:.6g} (sim {ev.sim_id[best]})")
    failed = np.flatnonzero(ev.failed)
    if len(failed):
        shown = failed[plotdata.sample(len(failed), 40)]
        for k, i in enumerate(shown):
            ax.plot(axis, unit[i], color="red", lw=0.7, ls="--", alpha=0.5,
                    label=f"failed ({len(failed)}), no f" if k == 0 else None)
    for i in axis:
        ax.axvline(i, color="0.3", lw=0.8)
        ax.annotate(f"{lo[i]:.3g}", (i, 0), xytext=(3, -12), textcoords="offset points", fontsize=7)
        ax.annotate(f"{hi[i]:.3g}", (i, 1), xytext=(3, 4), textcoords="offset points", fontsize=7)
    ax.set_xticks(axis, job.names)
    ax.set_xlim(-0.1, d - 0.9)
    ax.set_ylim(-0.08, 1.08)
    ax.set_yticks([])
    shown_lines = min(len(ok_index), 1500)
    ax.set_title(f"parallel coordinates: {shown_lines} of {len(ok_index)} good evaluations\n"
                 "(the best 150 and a random sample; each axis spans its bounds)", fontsize=9, loc="left")
    ax.legend(fontsize=8, loc="lower right", bbox_to_anchor=(1.0, 1.0), frameon=False, borderaxespad=0.2)
    shared = None
    for i in range(d):
        sub = fig.add_subplot(spec[1 + i // cols, i % cols], sharey=shared)
        shared = shared or sub
        _slice(sub, ev, i, job, legend=False)
        if i % cols == 0:
            sub.set_ylabel("f")


DRAW = {"history": draw_history, "slice": draw_slice, "heatmap": draw_heatmap, "scatter": draw_scatter,
        "parallel": draw_parallel}

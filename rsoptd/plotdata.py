"""What a plot draws: a run's evaluations as arrays, and the small views made of them.

NumPy only (no matplotlib), run in a thread by the `plot` op.  A run of a
million evaluations is read from SQLite once, as columns (a scan's points are
recomputed from its config and seed, as a resumed run does, instead of parsing
a million JSON arrays), then reduced to what a picture can show: per-column
envelopes, per-bin means and minima, a few thousand sampled lines.  Nothing
the size of the history leaves this module.
"""

from __future__ import annotations

import json
import math
import sqlite3
from dataclasses import dataclass
from typing import Any, Iterable

import numpy as np

MAX_POINTS = 20_000  # draw every point up to this many; bin or sample beyond it
MAX_MARKERS = 500  # failed evaluations drawn one by one at most (the legend counts them all)
GRID_UNIQUE = 400  # a 2-D scan with at most this many distinct values per axis is drawn cell by cell
BINS_2D = 300
BINS_1D = 600


@dataclass
class Evaluations:
    """A run's finished evaluations in sim_id order (cancelled ones left out, and counted)."""

    names: list[str]
    sim_id: np.ndarray  # int64
    x: np.ndarray  # (n, len(names)) float
    f: np.ndarray  # float, NaN where there is no value
    failed: np.ndarray  # bool: failed, timed out, or no finite f
    cancelled: int = 0

    def __len__(self) -> int:
        return len(self.sim_id)

    @property
    def ok(self) -> np.ndarray:
        return ~self.failed

    def best(self) -> int | None:
        """Index of the lowest f among the good evaluations."""
        if not self.ok.any():
            return None
        f = np.where(self.ok, self.f, np.inf)
        return int(np.argmin(f))


STATUS_QUERY = (
    "SELECT sim_id, IFNULL(f, 0.0), f IS NULL, CASE status WHEN 'ok' THEN 0 WHEN 'cancelled' THEN 2 ELSE 1 END "
    "FROM evaluations WHERE run_id = ? ORDER BY sim_id"
)


def read_with_points(database: str, run_id: int, names: list[str], points: np.ndarray) -> Evaluations:
    """A scan's evaluations: sim_id, f and status from SQLite, x from the planned points."""
    db = sqlite3.connect(database)
    try:
        columns = np.fromiter(db.execute(STATUS_QUERY, (run_id,)),
                              dtype=[("sim_id", "i8"), ("f", "f8"), ("null", "?"), ("status", "i1")])
    finally:
        db.close()
    cancelled = int(np.count_nonzero(columns["status"] == 2))
    columns = columns[(columns["status"] != 2) & (columns["sim_id"] < len(points))]
    f = np.where(columns["null"], np.nan, columns["f"])
    return _make(names, columns["sim_id"], points[columns["sim_id"]], f, columns["status"] != 0, cancelled)


def from_rows(rows: Iterable[tuple[Any, ...]], names: list[str]) -> Evaluations:
    """Any run's evaluations from Store rows (sim_id, x, f, status, ...): an optimizer's, or a
    scan whose config no longer loads."""
    sim_ids: list[int] = []
    xs: list[list[float]] = []
    fs: list[float] = []
    bad: list[bool] = []
    cancelled = 0
    for sim_id, x, f, status, *_ in rows:
        if status == "cancelled":
            cancelled += 1
            continue
        sim_ids.append(sim_id)
        xs.append(list(x) if len(x) == len(names) else [math.nan] * len(names))
        fs.append(f)
        bad.append(status != "ok")
    x_array = np.array(xs, dtype=float).reshape(len(xs), len(names))
    return _make(names, np.array(sim_ids, dtype=np.int64), x_array, np.array(fs, dtype=float),
                 np.array(bad, dtype=bool), cancelled)


def _make(names: list[str], sim_id: np.ndarray, x: np.ndarray, f: np.ndarray, bad: np.ndarray,
          cancelled: int) -> Evaluations:
    return Evaluations(names, sim_id, x, f, bad | ~np.isfinite(f), cancelled)


def parameter_names(parameters_json: str) -> list[str]:
    return list(json.loads(parameters_json))


# -- views -------------------------------------------------------------------


def sample(n: int, k: int, keep: Iterable[int] = (), seed: int = 0) -> np.ndarray:
    """Sorted indices of at most k of n items, always including `keep` (the same every time)."""
    if n <= k:
        return np.arange(n)
    chosen = np.random.default_rng(seed).choice(n, size=k, replace=False)
    return np.unique(np.concatenate([chosen, np.fromiter(keep, dtype=np.int64)]).astype(np.int64))


def envelope(y: np.ndarray, columns: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(index, lowest, highest) of y in `columns` equal runs of its index (NaN ignored): a
    line plot of a million values that looks the same as the full one."""
    n = len(y)
    edges = np.linspace(0, n, min(columns, n) + 1).astype(np.int64)
    starts = np.unique(edges[:-1])
    clean_lo = np.where(np.isnan(y), np.inf, y)
    clean_hi = np.where(np.isnan(y), -np.inf, y)
    lo = np.minimum.reduceat(clean_lo, starts)
    hi = np.maximum.reduceat(clean_hi, starts)
    lo[~np.isfinite(lo)] = np.nan
    hi[~np.isfinite(hi)] = np.nan
    return starts, lo, hi


@dataclass
class Binned1D:
    centers: np.ndarray
    mean: np.ndarray
    low: np.ndarray
    high: np.ndarray


def bin_1d(x: np.ndarray, f: np.ndarray, bins: int = BINS_1D) -> Binned1D:
    """f's mean, minimum and maximum in equal bins of x (empty bins NaN)."""
    lo, hi = float(np.min(x)), float(np.max(x))
    if hi <= lo:
        hi = lo + 1.0
    index = np.minimum(((x - lo) / (hi - lo) * bins).astype(np.int64), bins - 1)
    count = np.bincount(index, minlength=bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.bincount(index, weights=f, minlength=bins) / count
    low = np.full(bins, np.inf)
    high = np.full(bins, -np.inf)
    np.minimum.at(low, index, f)
    np.maximum.at(high, index, f)
    empty = count == 0
    for a in (mean, low, high):
        a[empty] = np.nan
    centers = lo + (np.arange(bins) + 0.5) * (hi - lo) / bins
    return Binned1D(centers, mean, low, high)


@dataclass
class Grid:
    """f over two parameters: one cell per distinct pair (a mesh) or per bin (anything else)."""

    xedges: np.ndarray
    yedges: np.ndarray
    mean: np.ndarray  # (ny, nx), NaN where no good evaluation fell
    failed: np.ndarray  # (ny, nx) count of failed evaluations
    exact: bool  # one cell per distinct point

    def centers(self) -> tuple[np.ndarray, np.ndarray]:
        return (self.xedges[:-1] + self.xedges[1:]) / 2, (self.yedges[:-1] + self.yedges[1:]) / 2


def grid_2d(x: np.ndarray, y: np.ndarray, f: np.ndarray, failed: np.ndarray, bins: int = BINS_2D) -> Grid:
    xs, xi = np.unique(x, return_inverse=True)
    ys, yi = np.unique(y, return_inverse=True)
    exact = len(xs) <= GRID_UNIQUE and len(ys) <= GRID_UNIQUE and len(xs) * len(ys) <= 4 * len(x)
    if exact:
        xedges, yedges = _edges_around(xs), _edges_around(ys)
    else:
        xedges = np.linspace(xs[0], xs[-1] if xs[-1] > xs[0] else xs[0] + 1, bins + 1)
        yedges = np.linspace(ys[0], ys[-1] if ys[-1] > ys[0] else ys[0] + 1, bins + 1)
        xi = np.clip(np.searchsorted(xedges, x, side="right") - 1, 0, bins - 1)
        yi = np.clip(np.searchsorted(yedges, y, side="right") - 1, 0, bins - 1)
    nx, ny = len(xedges) - 1, len(yedges) - 1
    cell = yi.ravel() * nx + xi.ravel()
    good = ~failed
    count = np.bincount(cell[good], minlength=nx * ny)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.bincount(cell[good], weights=f[good], minlength=nx * ny) / count
    mean[count == 0] = np.nan
    bad = np.bincount(cell[failed], minlength=nx * ny)
    return Grid(xedges, yedges, mean.reshape(ny, nx), bad.reshape(ny, nx), exact)


def _edges_around(values: np.ndarray) -> np.ndarray:
    """Cell edges halfway between sorted distinct values (a value alone gets a unit-wide cell)."""
    if len(values) == 1:
        return np.array([values[0] - 0.5, values[0] + 0.5])
    mids = (values[:-1] + values[1:]) / 2
    return np.concatenate([[2 * values[0] - mids[0]], mids, [2 * values[-1] - mids[-1]]])

"""Samplers: the points a scan evaluates, in sim_id order.

Points are recomputed from the config and the run's stored seed, so a resumed
run evaluates exactly the points it planned without storing them up front.
"""

from __future__ import annotations

import math

import numpy as np

from rsoptd.config import RunSpec
from rsoptd.errors import ConfigError


class Points:
    """A scan's points by sim_id, each computed when asked: the same points as ``plan``, but a
    mesh (of any size) is never held as an array, only its axes; a mesh file is memory-mapped.
    lh_scan keeps its plan as one float array (its strata are permutations of the whole batch)."""

    def __init__(self, spec: RunSpec, seed: int) -> None:
        params = spec.code.parameters
        self._axes: list[list[float]] = []
        self._array: np.ndarray | None = None  # rows are points (lh_scan) or columns are (mesh_file)
        self._start = tuple(float(p.start) for p in params)
        if spec.software == "mesh_scan":
            if spec.mesh_file is not None:
                self._array = _mesh_file(spec.mesh_file, len(params), mmap=True)
                base = self._array.shape[1]
            else:
                self._axes = [[float(p.start)] if p.samples == 1 else np.linspace(p.min, p.max, p.samples or 1).tolist()
                              for p in params]
                base = math.prod(len(axis) for axis in self._axes)
            self._base = base
            count = base * int(spec.software_options.get("sampler_repeats", 1))
        elif spec.software == "lh_scan":
            self._array = _latin_hypercube(spec, seed)
            count = len(self._array)
        else:  # start
            count = spec.batch_size or 1
        self.software = spec.software
        self._count = count if spec.sim_max is None else min(count, max(spec.sim_max, 0))

    def __len__(self) -> int:
        return self._count

    def __getitem__(self, sim_id: int) -> tuple[float, ...]:
        if not 0 <= sim_id < self._count:
            raise IndexError(sim_id)
        if self.software == "lh_scan":
            assert self._array is not None
            return tuple(self._array[sim_id].tolist())
        if self.software != "mesh_scan":
            return self._start
        index = sim_id % self._base
        if self._array is not None:  # a mesh file: one column per point
            return tuple(float(v) for v in self._array[:, index].tolist())
        point = []
        for axis in reversed(self._axes):  # C order: the last parameter varies fastest, as in plan()
            index, i = divmod(index, len(axis))
            point.append(axis[i])
        return tuple(reversed(point))


def plan(spec: RunSpec, seed: int, repeats: int | None = None) -> np.ndarray:
    """All points of a scan as an array of shape (n_points, n_parameters)."""
    if spec.software == "mesh_scan":
        points = _mesh(spec)
        points = np.tile(points, (int(spec.software_options.get("sampler_repeats", 1)), 1))
    elif spec.software == "lh_scan":
        points = _latin_hypercube(spec, seed)
    else:  # start
        count = repeats or spec.batch_size or 1
        points = np.tile([p.start for p in spec.code.parameters], (count, 1))
    if spec.sim_max is not None:
        points = points[: spec.sim_max]
    return points.reshape(len(points), len(spec.code.parameters)).astype(float)


def _mesh(spec: RunSpec) -> np.ndarray:
    params = spec.code.parameters
    if spec.mesh_file is not None:
        return _mesh_file(spec.mesh_file, len(params))
    axes = [
        np.array([p.start]) if p.samples == 1 else np.linspace(p.min, p.max, p.samples or 1)
        for p in params
    ]
    if not axes:
        return np.zeros((1, 0))
    grid = np.meshgrid(*axes, indexing="ij")
    return np.stack([g.ravel() for g in grid], axis=1)


def _mesh_file(path: str, n_params: int, mmap: bool = False) -> np.ndarray:
    try:
        mesh = np.load(path, allow_pickle=False, mmap_mode="r" if mmap else None)
    except (OSError, ValueError) as exc:
        raise ConfigError("options.mesh_file", f"cannot read {path}: {exc}") from None
    if mesh.ndim != 2 or mesh.shape[0] != n_params:
        raise ConfigError("options.mesh_file", f"expected an array of shape ({n_params}, M), got {mesh.shape}")
    return mesh if mmap else np.asarray(mesh, dtype=float).T


def _latin_hypercube(spec: RunSpec, seed: int) -> np.ndarray:
    n = spec.batch_size or 1
    rng = np.random.default_rng(seed)
    lo = np.array([p.min for p in spec.code.parameters])
    hi = np.array([p.max for p in spec.code.parameters])
    strata = np.stack([rng.permutation(n) for _ in lo], axis=1)
    unit = (strata + rng.random((n, len(lo)))) / n
    return lo + unit * (hi - lo)

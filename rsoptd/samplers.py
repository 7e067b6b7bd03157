"""Samplers: the points a scan evaluates, in sim_id order.

Points are recomputed from the config and the run's stored seed, so a resumed
run evaluates exactly the points it planned without storing them up front.
"""

from __future__ import annotations

import numpy as np

from rsoptd.config import RunSpec
from rsoptd.errors import ConfigError


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


def _mesh_file(path: str, n_params: int) -> np.ndarray:
    try:
        mesh = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise ConfigError("options.mesh_file", f"cannot read {path}: {exc}") from None
    if mesh.ndim != 2 or mesh.shape[0] != n_params:
        raise ConfigError("options.mesh_file", f"expected an array of shape ({n_params}, M), got {mesh.shape}")
    return np.asarray(mesh, dtype=float).T


def _latin_hypercube(spec: RunSpec, seed: int) -> np.ndarray:
    n = spec.batch_size or 1
    rng = np.random.default_rng(seed)
    lo = np.array([p.min for p in spec.code.parameters])
    hi = np.array([p.max for p in spec.code.parameters])
    strata = np.stack([rng.permutation(n) for _ in lo], axis=1)
    unit = (strata + rng.random((n, len(lo)))) / n
    return lo + unit * (hi - lo)

"""samplers.Points (computed per sim_id, what runs use) gives exactly the points of samplers.plan."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from rsoptd import config, samplers


def _spec(tmp_path: Path, options: dict[str, Any], parameters: dict[str, Any] | None = None) -> Any:
    (tmp_path / "f.py").write_text("def f(x, y, z):\n    return x\n")
    code = {"parameters": parameters or {
        "x": {"min": 0.0, "max": 1.0, "start": 0.5, "samples": 3},
        "y": {"min": -1.0, "max": 1.0, "start": 0.25, "samples": 1},
        "z": {"min": 2.0, "max": 7.0, "start": 3.0, "samples": 4}},
        "setup": {"input_file": "f.py", "function": "f", "execution_type": "serial"}}
    text = yaml.safe_dump({"codes": [{"python": code}], "options": {"nworkers": 2, **options}})
    return config.load(text, str(tmp_path), {})


@pytest.mark.parametrize("options", [
    {"software": "mesh_scan"},
    {"software": "mesh_scan", "software_options": {"sampler_repeats": 3}, "exit_criteria": {"sim_max": 29}},
    {"software": "lh_scan", "batch_size": 17, "seed": 5},
    {"software": "start", "batch_size": 4},
])
def test_points_match_the_plan(tmp_path: Path, options: dict[str, Any]) -> None:
    spec = _spec(tmp_path, options)
    planned = samplers.plan(spec, 11)
    points = samplers.Points(spec, 11)
    assert len(points) == len(planned)
    assert [points[i] for i in range(len(points))] == [tuple(row) for row in planned.tolist()]
    with pytest.raises(IndexError):
        points[len(points)]


def test_points_of_a_mesh_file_match_the_plan(tmp_path: Path) -> None:
    np.save(tmp_path / "mesh.npy", np.array([[1, 2, 3], [0.5, 0.25, 0.125], [9, 8, 7]]))
    spec = _spec(tmp_path, {"software": "mesh_scan", "mesh_file": "mesh.npy"})
    planned = samplers.plan(spec, 0)
    points = samplers.Points(spec, 0)
    assert [points[i] for i in range(len(points))] == [tuple(row) for row in planned.tolist()]
    assert all(type(v) is float for v in points[0])

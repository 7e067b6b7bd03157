"""mesh_scan, lh_scan and start through the daemon."""

from __future__ import annotations

import numpy as np
import pytest

FUNCTION = "def f(x, y, z=0.0):\n    return x * 10 + y\n"


def _points(daemon, status):
    return [(r["x"]["x"], r["x"]["y"]) for r in daemon.results(status["id"])]


def test_mesh_scan_samples_one_pins_the_start_value(daemon, project):
    project.function(FUNCTION)
    config = project.config("f", parameters={
        "x": {"min": 0, "max": 1, "start": 0.25, "samples": 1},
        "y": {"min": 0, "max": 2, "start": 1, "samples": 3}})
    status = daemon.run(config)
    assert _points(daemon, status) == [(0.25, 0.0), (0.25, 1.0), (0.25, 2.0)]


def test_mesh_file_gives_the_points(daemon, project):
    project.function(FUNCTION)
    mesh = np.array([[0.1, 0.2, 0.3, 0.4], [1.0, 2.0, 3.0, 4.0]])  # (N params, M points)
    np.save(project.root / "mesh.npy", mesh)
    config = project.config("f", options={"mesh_file": "mesh.npy"}, parameters={
        "x": {"min": 0, "max": 1, "start": 0.1}, "y": {"min": 0, "max": 5, "start": 1}})
    status = daemon.run(config)
    assert _points(daemon, status) == list(zip(mesh[0], mesh[1]))


def test_sim_max_and_sampler_repeats(daemon, project):
    project.function(FUNCTION)
    config = project.config("f", options={"software_options": {"sampler_repeats": 2}, "exit_criteria": {"sim_max": 9}})
    status = daemon.run(config)
    points = _points(daemon, status)
    assert status["planned"] == 9 and len(points) == 9
    assert points[6:] == points[:3]


def _lh(project, name, **options):
    return project.config("f", name=name, options={"software": "lh_scan", "batch_size": 8, **options}, parameters={
        "x": {"min": -1, "max": 1, "start": 0}, "y": {"min": 10, "max": 20, "start": 15}})


def test_lh_scan_is_stratified_in_bounds_and_repeatable_by_default(daemon, project):
    project.function(FUNCTION)
    first = _points(daemon, daemon.run(_lh(project, "a.yml")))
    second = _points(daemon, daemon.run(_lh(project, "b.yml")))
    assert first == second  # the default seed is fixed, as in rsopt
    xs = np.array([p[0] for p in first])
    ys = np.array([p[1] for p in first])
    assert ((-1 <= xs) & (xs <= 1)).all() and ((10 <= ys) & (ys <= 20)).all()
    assert sorted(np.floor((xs + 1) / 2 * 8).astype(int)) == list(range(8))  # one point per stratum
    assert sorted(np.floor((ys - 10) / 10 * 8).astype(int)) == list(range(8))


def test_lh_scan_seed_int_and_empty_seed(daemon, project):
    project.function(FUNCTION)
    default = _points(daemon, daemon.run(_lh(project, "a.yml")))
    seeded = _points(daemon, daemon.run(_lh(project, "b.yml", seed=42)))
    again = _points(daemon, daemon.run(_lh(project, "c.yml", seed=42)))
    assert seeded == again and seeded != default
    random1 = _points(daemon, daemon.run(_lh(project, "d.yml", seed=None)))
    random2 = _points(daemon, daemon.run(_lh(project, "e.yml", seed=None)))
    assert random1 != random2


def test_sample_start_evaluates_the_start_point_n_times(daemon, project):
    project.function(FUNCTION)
    config = project.config("f")
    result = daemon.ctl("sample", "start", str(config), "-n", "5", "--json")
    import json

    status = json.loads(result.stdout)
    assert status["software"] == "start" and status["done"] == 5
    assert set(_points(daemon, status)) == {(0.5, 0.0)}


def test_sample_configuration_prints_progress_and_the_result(daemon, project):
    project.function(FUNCTION)
    result = daemon.ctl("sample", "configuration", str(project.config("f")))
    assert "run 1: completed" in result.stdout
    assert "6/6 done, 0 failed" in result.stdout


@pytest.mark.parametrize("count", [1, 2])
def test_an_existing_run_dir_is_never_overwritten(daemon, project, count):
    project.function(FUNCTION)
    config = project.config("f")
    (project.root / "ensemble").mkdir()
    (project.root / "ensemble" / "precious.txt").write_text("keep")
    if count == 2:
        (project.root / "ensemble_1").mkdir()
    result = daemon.ctl("submit", str(config), "--wait")
    expected = project.root / ("ensemble_1" if count == 1 else "ensemble_2")
    assert f"uses {expected}" in result.stderr
    assert (project.root / "ensemble" / "precious.txt").read_text() == "keep"
    assert (expected / "history.npy").exists()

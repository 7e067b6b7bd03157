"""Evaluation semantics through a real daemon, in every serial mode."""

from __future__ import annotations

import math

import numpy as np
import pytest

MODES = ["worker", "thread", "process"]

FUNCTIONS = """
import json, os, sys

def quadratic(x, y, offset=0.0, label="none"):
    return (x - 0.3) ** 2 + y ** 2 + offset

def echo_inputs(**inputs):
    with open("inputs.json", "w") as fh:
        json.dump(inputs, fh)
    return float(len(inputs))

def env_value(x, y):
    return float(os.environ["RSOPTD_TEST_VALUE"]) + x

def returns_none(x, y):
    return None

def returns_numpy(x, y):
    import numpy
    return numpy.array([x + y])

def pre(J):
    J["inputs"]["offset"] = 100.0

def post(J):
    with open("post.txt", "w") as fh:
        fh.write(str(J["sim_status"]))

def objective(J):
    return J["value"] * 2 if J["sim_status"] == 34 else -1.0

def failing(x, y):
    if x > 0.6:
        raise RuntimeError("boom at %s" % x)
    return x
"""


@pytest.mark.parametrize("mode", MODES)
def test_mesh_scan_gives_the_same_results_in_every_mode(daemon, project, mode):
    project.function(FUNCTIONS)
    config = project.config("quadratic", settings={"offset": 1.5}, setup={"serial_python_mode": mode})
    status = daemon.run(config)
    assert status["state"] == "completed", status
    assert (status["done"], status["failed"], status["planned"]) == (6, 0, 6)
    records = daemon.results(status["id"])
    xs = np.linspace(0, 1, 3)
    ys = np.linspace(-1, 1, 2)
    expected = [((x - 0.3) ** 2 + y**2 + 1.5, x, y) for x in xs for y in ys]
    assert [r["sim_id"] for r in records] == list(range(6))
    for record, (f, x, y) in zip(records, expected):
        assert record["x"] == {"x": x, "y": y}
        assert record["f"] == pytest.approx(f)
        assert record["status"] == "ok"
    assert status["best"]["f"] == pytest.approx(min(e[0] for e in expected))


@pytest.mark.parametrize("mode", MODES)
def test_function_gets_the_union_of_settings_and_parameters(daemon, project, mode):
    project.function(FUNCTIONS)
    config = project.config("echo_inputs", settings={"label": "it's \"quoted\"\n", "n": 3, "items": [1, 2]},
                            setup={"serial_python_mode": mode}, options={"sim_dirs_make": True})
    status = daemon.run(config)
    assert status["state"] == "completed", status
    import json
    from pathlib import Path

    seen = json.loads((Path(status["run_dir"]) / "sim_5" / "inputs.json").read_text())
    assert seen == {"label": "it's \"quoted\"\n", "n": 3, "items": [1, 2], "x": 1.0, "y": 1.0}
    assert all(r["f"] == 5.0 for r in daemon.results(status["id"]))


@pytest.mark.parametrize("mode", MODES)
def test_environment_variables_reach_the_function(daemon, project, mode):
    project.function(FUNCTIONS)
    config = project.config("env_value", setup={"serial_python_mode": mode,
                                                "environment_variables": {"RSOPTD_TEST_VALUE": "10"}})
    status = daemon.run(config)
    assert status["state"] == "completed", status
    assert sorted(r["f"] for r in daemon.results(status["id"]))[0] == 10.0


def test_submitters_environment_is_used(daemon, project):
    project.function(FUNCTIONS)
    config = project.config("env_value")
    env = dict(daemon.env, RSOPTD_TEST_VALUE="7")
    result = daemon.ctl("submit", str(config), "--wait", "--json", env=env)
    import json

    status = json.loads(result.stdout)
    assert min(r["f"] for r in daemon.results(status["id"])) == 7.0


@pytest.mark.parametrize("mode", MODES)
def test_pre_post_and_objective_functions_see_the_job_dictionary(daemon, project, mode):
    project.function(FUNCTIONS)
    config = project.config(
        "quadratic", setup={"serial_python_mode": mode, "preprocess": ["functions.py", "pre"],
                            "postprocess": ["functions.py", "post"]},
        options={"objective_function": ["functions.py", "objective"]})
    status = daemon.run(config)
    assert status["state"] == "completed", status
    from pathlib import Path

    for record in daemon.results(status["id"]):
        x, y = record["x"]["x"], record["x"]["y"]
        assert record["f"] == pytest.approx(2 * ((x - 0.3) ** 2 + y**2 + 100.0))
        sim_dir = Path(status["run_dir"]) / f"sim_{record['sim_id']}"
        assert (sim_dir / "post.txt").read_text() == "34"


@pytest.mark.parametrize("mode", ["thread", "process"])
def test_objective_gets_sim_status_of_a_failed_function_and_may_give_a_penalty(daemon, project, mode):
    project.function(FUNCTIONS)
    config = project.config("failing", setup={"serial_python_mode": mode},
                            options={"objective_function": ["functions.py", "objective"]})
    status = daemon.run(config)
    assert status["state"] == "completed"
    failed = [r for r in daemon.results(status["id"]) if r["status"] == "failed"]
    assert len(failed) == 2
    assert all(r["f"] == -1.0 and "boom" in r["error"] for r in failed)


def test_none_is_recorded_as_nan_and_numpy_values_are_cast(daemon, project):
    project.function(FUNCTIONS)
    status = daemon.run(project.config("returns_none"))
    assert status["state"] == "completed"
    assert all(r["f"] is None and r["status"] == "ok" for r in daemon.results(status["id"]))
    status = daemon.run(project.config("returns_numpy", name="numpy.yml"))
    assert status["state"] == "completed"
    assert all(r["f"] == pytest.approx(r["x"]["x"] + r["x"]["y"]) for r in daemon.results(status["id"]))


def test_a_changed_function_file_is_imported_again(daemon, project):
    project.function("def f(x, y):\n    return 1.0\n")
    config = project.config("f", parameters={"x": {"min": 0, "max": 1, "start": 0, "samples": 2},
                                             "y": {"min": 0, "max": 1, "start": 0, "samples": 1}})
    assert daemon.run(config)["best"]["f"] == 1.0
    project.function("def f(x, y):\n    return 2.0 + 0.0\n")
    assert daemon.run(config)["best"]["f"] == 2.0


def test_nan_f_is_not_the_best(daemon, project):
    project.function("import math\ndef f(x, y):\n    return math.nan if x < 0.5 else x\n")
    status = daemon.run(project.config("f"))
    assert status["best"]["f"] == 0.5
    assert math.isclose(status["best"]["x"]["x"], 0.5)

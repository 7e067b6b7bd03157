"""A run that gets a spare executor (started ahead, at the previous run's end) sees what a
freshly started one sees: its run directory as cwd and on sys.path, and its environment."""

from __future__ import annotations

import time

from conftest import processes_under

WHERE = """
import os, sys

def where(x, y):
    return (1.0 * (os.getcwd() == os.environ["RUN_DIR_EXPECTED"]) + 10.0 * (os.getcwd() in sys.path)
            + 100.0 * (os.environ.get("RSOPTD_TEST_SPARE") == "yes"))
"""


def test_a_second_run_on_a_spare_executor_sees_its_run_dir_and_env(daemon, project):
    project.function(WHERE)
    env = dict(daemon.env, RSOPTD_TEST_SPARE="yes", RUN_DIR_EXPECTED=str(project.root / "out"))
    config = project.config("where", options={"run_dir": "out", "nworkers": 2})
    first = daemon.json("submit", str(config), "--wait", env=env)
    assert first["state"] == "completed" and first["run_dir"] == str(project.root / "out")
    assert [r["f"] for r in daemon.results(first["id"])] == [111.0] * 6
    (project.root / "out").rename(project.root / "first")  # the next run gets "out" again
    time.sleep(1.0)  # the spares started at the end of the first run are up
    second = daemon.json("submit", str(config), "--wait", env=env)
    assert second["state"] == "completed", second
    assert [r["f"] for r in daemon.results(second["id"])] == [111.0] * 6
    assert not processes_under(project.root / "out"), "executors and spares live outside run directories once done"

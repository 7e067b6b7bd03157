"""Process mode stays clean however its executor speeds up forking: every evaluation runs a
fresh copy of the module (the executor only compiles the file), and an edit is picked up."""

from __future__ import annotations

import os
import time

COUNTER = """
import os
CALLS = []

def count(x, y):
    CALLS.append(x)
    with open(os.path.join(os.environ["RSOPTD_TEST_OUT"], "pids"), "a") as fh:
        fh.write("%d\\n" % os.getpid())
    return float(len(CALLS)) + {offset}
"""


def test_every_evaluation_sees_a_fresh_module(daemon, project):
    path = project.function(COUNTER.format(offset=0.0))
    env = dict(daemon.env, RSOPTD_TEST_OUT=str(project.root))
    config = project.config("count", setup={"serial_python_mode": "process"}, options={"nworkers": 1})
    status = daemon.json("submit", str(config), "--wait", env=env)
    assert status["state"] == "completed", status
    assert [r["f"] for r in daemon.results(status["id"])] == [1.0] * 6
    pids = (project.root / "pids").read_text().split()
    assert len(set(pids)) == 6

    time.sleep(0.01)
    path.write_text(COUNTER.format(offset=10.0))  # a changed file is compiled again
    os.utime(path, ns=(time.time_ns(), time.time_ns()))
    status = daemon.json("submit", str(config), "--wait", env=env)
    assert [r["f"] for r in daemon.results(status["id"])] == [11.0] * 6

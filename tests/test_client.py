"""rsoptctl: results in every format, logs, exit codes, and a standard-library-only start."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
import time

import numpy as np

from conftest import RSOPTCTL

FUNCTION = """
import sys

def f(x, y):
    print("evaluating x=%s y=%s" % (x, y))
    print("a warning line", file=sys.stderr)
    if x > 0.9:
        raise RuntimeError("too far")
    return x + 2 * y
"""


def _run(daemon, project, **setup):
    project.function(FUNCTION)
    return daemon.run(project.config("f", setup={"serial_python_mode": "thread", **setup}))


def test_results_in_csv_json_and_npy(daemon, project, short_tmp):
    status = _run(daemon, project)
    run = str(status["id"])
    rows = list(csv.reader(io.StringIO(daemon.ctl("results", run, "--format", "csv").stdout)))
    assert rows[0] == ["sim_id", "x", "y", "f", "status"]
    assert len(rows) == 7 and rows[1] == ["0", "0.0", "-1.0", "-2.0", "ok"]
    assert rows[-1][-2:] == ["", "failed"]

    records = json.loads(daemon.ctl("results", run, "--format", "json").stdout)
    assert set(records[0]) >= {"sim_id", "x", "f", "status", "error"}
    assert records[-1]["status"] == "failed" and "too far" in records[-1]["error"]

    path = short_tmp / "h.npy"
    daemon.ctl("results", run, "--format", "npy", "-o", str(path))
    history = np.load(path)
    assert history.dtype.names[:4] == ("sim_id", "x", "f", "sim_ended")
    assert history["x"].shape == (6, 2) and list(history["sim_id"]) == list(range(6))
    assert history["x"][1].tolist() == [0.0, 1.0] and history["f"][1] == 2.0
    assert np.isnan(history["f"][-1]) and history["status"][-1] == "failed"
    saved = np.load(f"{status['run_dir']}/history.npy")  # written into the run directory at the end
    assert (saved["sim_id"] == history["sim_id"]).all()


def test_status_and_list(daemon, project):
    status = _run(daemon, project)
    shown = daemon.json("status", str(status["id"]))
    assert {"id", "state", "done", "failed", "planned", "best", "run_dir"} <= set(shown)
    assert (shown["done"], shown["failed"], shown["planned"]) == (6, 2, 6)
    assert shown["best"] == {"sim_id": 0, "f": -2.0, "x": {"x": 0.0, "y": -1.0}}
    table = daemon.ctl("list").stdout
    assert "completed" in table and "6/6" in table
    assert daemon.json("status", "last")["id"] == status["id"]


def test_exit_codes(daemon, project):
    project.function(FUNCTION)
    worker = project.config("f", name="worker.yml")  # the exception ends a worker-mode run
    assert daemon.ctl("submit", str(worker), "--wait", check=False).returncode == 1
    assert daemon.ctl("status", "12345", check=False).returncode == 2
    assert daemon.ctl("results", "12345", check=False).returncode == 2
    assert daemon.ctl("resume", "1", check=False).returncode == 0
    assert daemon.ctl("frobnicate", check=False).returncode == 2


def test_logs_show_run_events_and_captured_output_tagged_with_sim_ids(daemon, project):
    follower = subprocess.Popen([RSOPTCTL, "--no-autostart", "logs", "-f", "--json", "-n", "0"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=daemon.env)
    try:
        time.sleep(0.5)  # let the follower subscribe
        status = _run(daemon, project, timeout=30)
        events = []
        deadline = time.monotonic() + 10
        assert follower.stdout is not None
        while time.monotonic() < deadline:
            line = follower.stdout.readline()
            assert line, follower.stderr.read() if follower.stderr else ""
            events.append(json.loads(line))
            outputs = [e for e in events if e["event"] == "output"]
            if len({e["sim_id"] for e in outputs}) == 6 and any(e["event"] == "run ended" for e in events):
                break
    finally:
        follower.terminate()
        follower.communicate(timeout=5)  # reaps it and closes its pipes
    assert all(e["run_id"] == status["id"] for e in outputs)
    lines = {(e["sim_id"], e["stream"], e["line"]) for e in outputs}
    assert (0, "stdout", "evaluating x=0.0 y=-1.0") in lines
    assert (0, "stderr", "a warning line") in lines
    failed = [e for e in events if e["event"] == "evaluation failed"]
    assert {e["sim_id"] for e in failed} == {4, 5}

    text = daemon.ctl("logs", str(status["id"]), "--level", "warning").stdout
    assert "[run 1 sim 4] evaluation failed" in text
    assert "run queued" not in text


def test_the_client_imports_only_the_standard_library():
    code = (
        "import sys\n"
        "before = set(sys.modules)\n"  # the interpreter's and the install's own start-up modules
        "import rsoptctl.main\n"
        "ours = {'rsoptd', 'rsoptctl'}\n"
        "bad = sorted(m for m in set(sys.modules) - before if m.split('.')[0] not in sys.stdlib_module_names | ours)\n"
        "print(bad); print('asyncio' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split("\n")
    assert out[0] == "[]", out
    assert out[1] == "False"  # asyncio alone costs more than the whole client should
    started = time.perf_counter()
    subprocess.run([RSOPTCTL, "--help"], capture_output=True, check=True)
    print(f"rsoptctl --help took {1000 * (time.perf_counter() - started):.0f} ms")

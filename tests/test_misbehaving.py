"""Functions that raise, exit, crash, hang, return junk or print megabytes, in every mode.

Worker mode follows rsopt: a failure ends the run (but never the daemon);
thread and process modes mark the evaluation failed and go on.  Timeouts end
one evaluation in every mode.
"""

from __future__ import annotations

import pytest

from conftest import executor_pids

BAD = """
import ctypes, os, sys, time

def raises(x, y):
    if x > 0.6:
        raise ValueError("x is too big: %s" % x)
    return x

def exits(x, y):
    if x > 0.6:
        os._exit(7)
    return x

def segfaults(x, y):
    if x > 0.6:
        ctypes.string_at(0)
    return x

def hangs(x, y):
    if x > 0.6:
        time.sleep(600)
    return x

def not_a_float(x, y):
    if x > 0.6:
        return {"f": x}
    return x

def shouts(x, y):
    sys.stdout.write("y" * 3_000_000 + "\\n")
    sys.stderr.write("e" * 1_000_000 + "\\n")
    return x
"""

# (function, the error text expected for the failed evaluations)
CASES = [
    ("raises", "ValueError: x is too big"),
    ("exits", "exited with status 7"),
    ("segfaults", "SIGSEGV"),
    ("not_a_float", "NumPy cannot cast to a float"),
]


def _scan(project, function, mode, **setup):
    project.function(BAD)
    return project.config(function, setup={"serial_python_mode": mode, **setup},
                          options={"nworkers": 2}, name=f"{function}-{mode}.yml")


@pytest.mark.parametrize("function,error", CASES)
@pytest.mark.parametrize("mode", ["thread", "process"])
def test_failures_are_per_evaluation_in_thread_and_process_modes(daemon, project, function, error, mode):
    status = daemon.run(_scan(project, function, mode))
    assert status["state"] == "completed", status
    assert (status["done"], status["failed"]) == (6, 2)
    records = daemon.results(status["id"])
    failed = [r for r in records if r["status"] == "failed"]
    assert [r["x"]["x"] for r in failed] == [1.0, 1.0]
    assert all(error in r["error"] and r["f"] is None for r in failed), failed
    assert all(r["status"] == "ok" for r in records if r["x"]["x"] < 0.6)


@pytest.mark.parametrize("function,error", CASES)
def test_a_failure_ends_a_worker_mode_run_but_not_the_daemon(daemon, project, function, error):
    status = daemon.run(_scan(project, function, "worker"))
    assert status["state"] == "failed"
    assert error in status["message"] or error in str(daemon.results(status["id"]))
    finished = [r for r in daemon.results(status["id"]) if r["status"] == "ok"]
    assert finished and all(r["x"]["x"] < 0.6 for r in finished)  # what finished is kept
    # the daemon and its other runs carry on
    again = daemon.run(_scan(project, "shouts", "worker"))
    assert again["state"] == "completed"


@pytest.mark.parametrize("mode", ["worker", "thread", "process"])
def test_a_hanging_function_times_out_and_leaves_no_process(daemon, project, mode):
    status = daemon.run(_scan(project, "hangs", mode, timeout=1.0))
    assert status["state"] == "completed", status
    timed_out = [r for r in daemon.results(status["id"]) if r["status"] == "timeout"]
    assert len(timed_out) == 2 and all("timeout" in r["error"] for r in timed_out)
    assert executor_pids(daemon.home) == set()


@pytest.mark.parametrize("mode", ["worker", "thread", "process"])
def test_megabytes_of_output_go_to_files_without_stalling(daemon, project, mode):
    status = daemon.run(_scan(project, "shouts", mode, timeout=60))
    assert status["state"] == "completed" and status["failed"] == 0
    from pathlib import Path

    run_dir = Path(status["run_dir"])
    out = sum(p.stat().st_size for p in run_dir.glob("worker-*.stdout.log"))
    err = sum(p.stat().st_size for p in run_dir.glob("worker-*.stderr.log"))
    assert out >= 6 * 3_000_000 and err >= 6 * 1_000_000


def test_a_failing_run_does_not_disturb_another_running_at_the_same_time(daemon, project):
    project.function(BAD + "\ndef slow(x, y=0.0):\n    time.sleep(0.05)\n    return x\n")
    slow = project.config("slow", setup={"serial_python_mode": "worker"}, name="slow.yml",
                          parameters={"x": {"min": 0, "max": 1, "start": 0, "samples": 20}})
    slow_id = daemon.ctl("submit", str(slow)).stdout.strip()
    crash = daemon.run(project.config("segfaults", name="crash.yml"))
    assert crash["state"] == "failed"
    final = daemon.wait_state(int(slow_id), ("completed", "failed"))
    assert final["state"] == "completed" and final["done"] == 20
